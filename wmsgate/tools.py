"""Where the pinned external tools live: Keycloak, OPA and a JDK for Keycloak.

Versions are pinned in ``deploy/local/versions.env``; downloads and builds are
cached in ``$WMSGATE_CACHE`` (default ``~/.cache/wmsgate``) by ``deploy/local/setup.sh``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


class ToolMissing(RuntimeError):
    """A tool the local stack needs is not installed; the message says how to get it."""


@dataclass(frozen=True)
class Tools:
    """Paths of the pinned tools.

    Attributes:
        keycloak_home: unpacked ``keycloak-quarkus-dist``.
        opa: the OPA binary.
        java_home: the JDK used to run Keycloak (newest 21+ found, else 17+).
        keycloak_version, opa_version: the pinned versions.
    """

    keycloak_home: Path
    opa: Path
    java_home: Path
    keycloak_version: str
    opa_version: str


def pinned_versions(repo: Path = REPO) -> dict[str, str]:
    """Read ``deploy/local/versions.env`` as a dict (``KEYCLOAK_VERSION``, ``OPA_VERSION``)."""
    out = {}
    for line in (repo / "deploy/local/versions.env").read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            out[key.strip()] = value.strip()
    return out


def cache_dir() -> Path:
    """The download/build cache (``$WMSGATE_CACHE`` or ``~/.cache/wmsgate``)."""
    return Path(os.environ.get("WMSGATE_CACHE", Path.home() / ".cache" / "wmsgate"))


def _java_major(home: Path) -> int:
    release = home / "release"
    if release.exists():
        m = re.search(r'JAVA_VERSION="(\d+)', release.read_text(encoding="utf-8", errors="replace"))
        if m:
            return int(m.group(1))
    m = re.search(r"(?:jdk|java)-?(\d+)", home.name)
    return int(m.group(1)) if m else 0


def find_java_home(minimum: int = 17, preferred: int = 21) -> Path:
    """Pick a JDK for Keycloak: the newest with major >= ``preferred`` in /usr/lib/jvm or
    ``$JAVA_HOME``, else the newest >= ``minimum``.

    Raises:
        ToolMissing: no suitable JDK.
    """
    candidates = [Path(p) for p in (os.environ.get("JAVA_HOME"),) if p]
    jvm = Path("/usr/lib/jvm")
    if jvm.is_dir():
        candidates += sorted(p for p in jvm.iterdir() if (p / "bin" / "java").exists() and not p.is_symlink())
    usable = [(major, p) for p in candidates if (p / "bin" / "java").exists() and (major := _java_major(p)) >= minimum]
    if not usable:
        raise ToolMissing(f"no JDK {minimum}+ found in /usr/lib/jvm or $JAVA_HOME; install openjdk-17-jdk-headless")
    preferred_ones = [u for u in usable if u[0] >= preferred]
    return max(preferred_ones or usable, key=lambda u: u[0])[1]


def locate_tools(repo: Path = REPO) -> Tools:
    """Find the pinned Keycloak, OPA and a JDK.

    Raises:
        ToolMissing: something is not installed; run ``make setup`` (deploy/local/setup.sh).
    """
    versions = pinned_versions(repo)
    cache = cache_dir()
    kc = cache / f"keycloak-{versions['KEYCLOAK_VERSION']}"
    opa = cache / f"opa-{versions['OPA_VERSION']}" / "bin" / "opa"
    if not (kc / "bin" / "kc.sh").exists():
        raise ToolMissing(f"Keycloak {versions['KEYCLOAK_VERSION']} is not in {kc}; run deploy/local/setup.sh")
    if not opa.exists():
        raise ToolMissing(f"OPA {versions['OPA_VERSION']} is not at {opa}; run deploy/local/setup.sh")
    return Tools(kc, opa, find_java_home(), versions["KEYCLOAK_VERSION"], versions["OPA_VERSION"])


def compose_schema() -> Path:
    """The Compose Specification JSON schema fetched by ``make setup`` (pinned compose-go version).

    Raises:
        ToolMissing: not fetched yet (run ``make setup``).
    """
    version = pinned_versions()["COMPOSE_GO_VERSION"]
    path = cache_dir() / f"compose-spec-{version}.json"
    if not path.is_file():
        raise ToolMissing(f"{path} is missing: run `make setup` (it fetches compose-go {version}'s schema)")
    return path


def go_tool(name: str) -> Path:
    """A Go tool ``make setup`` builds at its pinned version: ``helm`` or ``kubeconform``.

    Raises:
        ToolMissing: not built yet (run ``make setup``).
    """
    version = pinned_versions()[f"{name.upper()}_VERSION"]
    path = cache_dir() / f"{name}-{version}" / "bin" / name
    if not path.is_file():
        raise ToolMissing(f"{path} is missing: run `make setup` (it builds {name} {version})")
    return path

"""Checks OPA cannot make: names in policy data and the route map that point at nothing.

A permission with a typo (``goods:craete``) compiles and tests fine and silently grants
nothing; a route whose module no policy layer defines refuses everything. These checks
name each such place (``wmsgate policy check``, ``wmsgate routes check``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from authorizer.authz.routes import VERBS, RouteMap


def _data(layer: Path, name: str) -> dict[str, Any]:
    path = layer / "wms" / name / "data.yaml"
    if not path.exists():
        return {}
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    return data if isinstance(data, dict) else {}


def defined_modules(base: Path, site: Path) -> set[str]:
    """The modules both layers define (the base layer's under ``wms/base``)."""
    return set(_data(base, "base/modules")) | set(_data(site, "modules"))


def _permission_problem(perm: Any, modules: set[str]) -> str | None:
    module, _, verb = str(perm).rpartition(":")
    if not module:
        return f"{perm!r} is not module:verb"
    if verb not in VERBS:
        return f"{perm!r}: verb {verb!r} is not one of {', '.join(sorted(VERBS))}"
    if module not in modules:
        return f"{perm!r}: no layer defines module {module!r} (add it to wms/modules/data.yaml)"
    return None


def policy_problems(base: Path, site: Path) -> list[str]:
    """Permissions (of roles, masks, high-risk operations) that name an unknown module or verb.

    Args:
        base: the product's base layer (``rego/base``).
        site: the deployment's policy layer.

    Returns:
        One line per problem, naming the file; empty when everything resolves.
    """
    modules = defined_modules(base, site)
    out = []
    for role, spec in _data(site, "roles").items():
        for perm in (spec or {}).get("permissions") or []:
            if problem := _permission_problem(perm, modules):
                out.append(f"wms/roles/data.yaml: role {role}: {problem}")
    for group, rules in _data(site, "masks").items():
        for rule in rules or []:
            if problem := _permission_problem((rule or {}).get("permission"), modules):
                out.append(f"wms/masks/data.yaml: {group}: {problem}")
    for op, spec in ((_data(site, "high_risk").get("operations")) or {}).items():
        when = (spec or {}).get("when") or {}
        if when.get("module") in set(_data(base, "base/modules")):
            out.append(f"wms/high_risk/data.yaml: {op}: module {when.get('module')!r} is the gateway's own; how its "
                       "operations are held is the base layer's (this entry is ignored)")
        elif when.get("module") not in modules:
            out.append(f"wms/high_risk/data.yaml: {op}: no layer defines module {when.get('module')!r}")
        for verb in when.get("verbs") or []:
            if verb not in VERBS:
                out.append(f"wms/high_risk/data.yaml: {op}: verb {verb!r} is not one of {', '.join(sorted(VERBS))}")
    return out


def route_problems(route_file: Path, route_map: RouteMap, modules: set[str] | None) -> list[str]:
    """Routes left undecided (``TODO(wmsgate)`` comments of a drafted map) and, when the
    policy's modules are known, routes whose module no policy layer defines.

    Returns:
        One line per problem (``file:line: ...``).
    """
    out = []
    for number, line in enumerate(route_file.read_text(encoding="utf-8").splitlines(), start=1):
        if "TODO(wmsgate)" in line:
            out.append(f"{route_file}:{number}: undecided: {line.split('TODO(wmsgate):', 1)[-1].strip()}")
    if modules is not None:
        for route in route_map.routes:
            if route.module not in modules:
                out.append(f"{route_file}:{route.line}: {route.key}: module {route.module!r} is in no policy layer "
                           "(every request to it would be refused: unknown_module)")
    return out

#!/usr/bin/env bash
# Idempotent set-up of everything the gateway needs on this machine:
#   - a Python virtual environment (.venv) with the project installed (console script `wmsgate`)
#   - Keycloak (Maven artifact org.keycloak:keycloak-quarkus-dist) unpacked into the cache
#   - OPA built with `go install` into the cache
# Downloads and builds live in $WMSGATE_CACHE (default ~/.cache/wmsgate), keyed by version,
# so a second run (or a fresh clone on the same machine) downloads and builds nothing.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
# shellcheck source=versions.env
source "$here/versions.env"
cache="${WMSGATE_CACHE:-$HOME/.cache/wmsgate}"
mkdir -p "$cache"

say() { printf '[setup] %s\n' "$*"; }
die() { printf '[setup] ERROR: %s\n' "$*" >&2; exit 1; }
need() { command -v "$1" >/dev/null 2>&1 || die "'$1' is required but not installed. $2"; }

need python3 "Install Python 3.11+ (Debian: apt-get install python3 python3-venv)."
need go "Install Go 1.22+ (https://go.dev/dl/)."
need curl "Install curl (Debian: apt-get install curl)."
need unzip "Install unzip (Debian: apt-get install unzip)."
python3 -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' \
  || die "Python 3.11 or newer is required (found $(python3 --version 2>&1))."
ls /usr/lib/jvm/*/bin/java >/dev/null 2>&1 || command -v java >/dev/null 2>&1 \
  || die "A Java 17+ JDK is required for Keycloak (Debian: apt-get install openjdk-17-jdk-headless)."

# --- Python virtual environment -------------------------------------------------------
stamp_src="$(cat "$repo/pyproject.toml" | sha256sum | cut -c1-16)"
venv="$repo/.venv"
if [ ! -x "$venv/bin/wmsgate" ] || [ "$(cat "$venv/.wmsgate-stamp" 2>/dev/null)" != "$stamp_src" ]; then
  say "creating Python virtual environment in .venv"
  python3 -m venv "$venv"
  PIP_CACHE_DIR="$cache/pip" "$venv/bin/pip" install --quiet --disable-pip-version-check -e "$repo[test]"
  echo "$stamp_src" > "$venv/.wmsgate-stamp"
else
  say "Python environment up to date"
fi

# --- Keycloak -----------------------------------------------------------------------
kc_home="$cache/keycloak-$KEYCLOAK_VERSION"
if [ ! -x "$kc_home/bin/kc.sh" ]; then
  zip="$cache/downloads/keycloak-quarkus-dist-$KEYCLOAK_VERSION.zip"
  mkdir -p "$cache/downloads"
  if [ ! -s "$zip" ]; then
    say "downloading Keycloak $KEYCLOAK_VERSION from Maven Central"
    url="https://repo1.maven.org/maven2/org/keycloak/keycloak-quarkus-dist/$KEYCLOAK_VERSION/keycloak-quarkus-dist-$KEYCLOAK_VERSION.zip"
    curl -fsSL --retry 3 -o "$zip.part" "$url" || die "could not download $url"
    curl -fsSL --retry 3 -o "$zip.sha1" "$url.sha1" || die "could not download $url.sha1"
    echo "$(cut -c1-40 "$zip.sha1")  $zip.part" | sha1sum -c --quiet - || die "checksum mismatch for $url"
    mv "$zip.part" "$zip"
  fi
  say "unpacking Keycloak into $kc_home"
  tmp="$(mktemp -d "$cache/kc-unpack.XXXXXX")"
  unzip -q "$zip" -d "$tmp"
  rm -rf "$kc_home"
  mv "$tmp/keycloak-$KEYCLOAK_VERSION" "$kc_home"
  rmdir "$tmp"
else
  say "Keycloak $KEYCLOAK_VERSION present"
fi

# --- Keycloak event listener (our provider, Java) --------------------------------------
# Built with Maven against the pinned Keycloak SPI and copied into that Keycloak's
# providers/ (Keycloak re-augments itself at the next start). Rebuilt when its sources change.
plugin_src="$repo/keycloak/event-listener"
plugin_dst="$kc_home/providers/wmsgate-keycloak-events.jar"
plugin_hash="$(cd "$plugin_src" && find pom.xml src -type f -print0 | sort -z | xargs -0 sha256sum | sha256sum | cut -d' ' -f1)"
if [ ! -f "$plugin_dst" ] || [ "$(cat "$plugin_dst.sha256" 2>/dev/null)" != "$plugin_hash" ]; then
  say "building the Keycloak event listener (Maven)"
  command -v mvn >/dev/null || die "Maven (mvn) is needed to build the Keycloak event listener"
  mvn -q -B -f "$plugin_src/pom.xml" -DskipTests clean package || die "building the Keycloak event listener failed"
  mkdir -p "$kc_home/providers"
  cp "$plugin_src/target/wmsgate-keycloak-events-0.1.0.jar" "$plugin_dst"
  echo "$plugin_hash" > "$plugin_dst.sha256"
else
  say "Keycloak event listener present"
fi

# --- OPA ----------------------------------------------------------------------------
opa_bin="$cache/opa-$OPA_VERSION/bin/opa"
if [ ! -x "$opa_bin" ]; then
  say "building OPA $OPA_VERSION with go install (first time only)"
  GOBIN="$cache/opa-$OPA_VERSION/bin" GOFLAGS=-buildvcs=false \
    go install "github.com/open-policy-agent/opa@$OPA_VERSION" || die "go install of OPA $OPA_VERSION failed"
else
  say "OPA $OPA_VERSION present"
fi
# --- Regal (Rego linter) -------------------------------------------------------------
# Built from a throw-away module pinning the exact version (the module proxy serves the
# version but not its version list, which `go install pkg@version` would ask for).
regal_dir="$cache/regal-$REGAL_VERSION"
if [ ! -x "$regal_dir/bin/regal" ]; then
  say "building Regal $REGAL_VERSION (first time only)"
  rm -rf "$regal_dir/src" && mkdir -p "$regal_dir/src" "$regal_dir/bin"
  (
    cd "$regal_dir/src"
    go mod init wmsgate-regal-build >/dev/null 2>&1
    printf 'package main\n\nimport _ "github.com/open-policy-agent/regal"\n' > tools.go
    GOFLAGS=-mod=mod go get "github.com/open-policy-agent/regal@$REGAL_VERSION" >"$regal_dir/build.log" 2>&1 \
      || { tail -20 "$regal_dir/build.log" >&2; exit 1; }
    GOFLAGS=-mod=mod go build -o "$regal_dir/bin/regal" github.com/open-policy-agent/regal
  ) || die "building Regal $REGAL_VERSION failed"
else
  say "Regal $REGAL_VERSION present"
fi
# --- Helm and kubeconform (the Kubernetes chart's checks) -------------------------------
for tool in helm kubeconform; do
  if [ "$tool" = helm ]; then version="$HELM_VERSION"; pkg="helm.sh/helm/v3/cmd/helm"
  else version="$KUBECONFORM_VERSION"; pkg="github.com/yannh/kubeconform/cmd/kubeconform"; fi
  if [ ! -x "$cache/$tool-$version/bin/$tool" ]; then
    say "building $tool $version with go install (first time only)"
    GOBIN="$cache/$tool-$version/bin" GOFLAGS=-buildvcs=false go install "$pkg@$version" \
      || die "go install of $tool $version failed"
  else
    say "$tool $version present"
  fi
done

# --- Compose Specification schema ---------------------------------------------------
# deploy/compose/ is validated against it (no container engine here); it ships inside the
# compose-go module, fetched through the Go module proxy.
compose_schema="$cache/compose-spec-$COMPOSE_GO_VERSION.json"
if [ ! -s "$compose_schema" ]; then
  say "fetching the Compose Specification schema (compose-go $COMPOSE_GO_VERSION)"
  dir="$(cd "$(mktemp -d)" && go mod init wmsgate-compose-schema >/dev/null 2>&1 \
    && go mod download -json "github.com/compose-spec/compose-go/v2@$COMPOSE_GO_VERSION" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')" \
    || die "could not fetch compose-go $COMPOSE_GO_VERSION"
  cp "$dir/schema/compose-spec.json" "$compose_schema.part" && mv "$compose_schema.part" "$compose_schema"
else
  say "Compose Specification schema present"
fi
say "ready (cache: $cache)"

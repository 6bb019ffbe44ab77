#!/usr/bin/env bash
# Policy checks that gate every change to rego/: formatting, strict compile against the
# input schema, Regal lint, tests with a coverage threshold. The policy is two layers:
# rego/base (the gateway's rules and own data) and rego/demo (the demo WMS's roles,
# modules, masks, high-risk table and their tests), checked and tested together.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
source "$here/versions.env"
cache="${WMSGATE_CACHE:-$HOME/.cache/wmsgate}"
opa="$cache/opa-$OPA_VERSION/bin/opa"
regal="$cache/regal-$REGAL_VERSION/bin/regal"
for tool in "$opa" "$regal"; do
  [ -x "$tool" ] || { echo "[rego] $tool is not installed; run deploy/local/setup.sh" >&2; exit 1; }
done
min="${REGO_COVERAGE_MIN:-95}"
cd "$repo"
echo "[rego] opa fmt --list --fail rego/"
"$opa" fmt --list --fail rego/
echo "[rego] opa check --strict --schema rego/base/schemas rego/base rego/demo"
"$opa" check --strict --schema rego/base/schemas --ignore schemas rego/base rego/demo
echo "[rego] regal lint rego/"
"$regal" lint --no-color rego/
echo "[rego] opa test rego/base rego/demo --coverage --threshold $min"
report="$(mktemp)"
trap 'rm -f "$report"' EXIT
if ! "$opa" test rego/base rego/demo --ignore schemas --coverage --threshold "$min" --format=json > "$report"; then
  "$opa" test rego/base rego/demo --ignore schemas --var-values || true
  python3 -c "import json,sys; print(f\"[rego] coverage {json.load(open(sys.argv[1])).get('coverage', 0):.1f}%\")" "$report" || true
  echo "[rego] tests failed or coverage below $min%" >&2
  exit 1
fi
python3 -c "import json,sys; print(f\"[rego] coverage {json.load(open(sys.argv[1]))['coverage']:.1f}%\")" "$report"
"$opa" test rego/base rego/demo --ignore schemas
# the base layer alone (what a deployment builds on) passes its own tests
"$opa" test rego/base --ignore schemas

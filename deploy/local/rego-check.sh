#!/usr/bin/env bash
# Policy checks that gate every change to rego/: formatting, strict compile against the
# input schema, Regal lint, tests with a coverage threshold.
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
echo "[rego] opa check --strict --schema rego/schemas rego/"
"$opa" check --strict --schema rego/schemas --ignore schemas rego/
echo "[rego] regal lint rego/"
"$regal" lint --no-color rego/
echo "[rego] opa test rego/ --coverage --threshold $min"
report="$(mktemp)"
trap 'rm -f "$report"' EXIT
if ! "$opa" test rego/ --ignore schemas --coverage --threshold "$min" --format=json > "$report"; then
  "$opa" test rego/ --ignore schemas --var-values || true
  python3 -c "import json,sys; print(f\"[rego] coverage {json.load(open(sys.argv[1])).get('coverage', 0):.1f}%\")" "$report" || true
  echo "[rego] tests failed or coverage below $min%" >&2
  exit 1
fi
python3 -c "import json,sys; print(f\"[rego] coverage {json.load(open(sys.argv[1]))['coverage']:.1f}%\")" "$report"
"$opa" test rego/ --ignore schemas

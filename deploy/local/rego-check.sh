#!/usr/bin/env bash
# Policy checks that gate every change to rego/: formatting, strict compile, tests with coverage.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
source "$here/versions.env"
opa="${WMSGATE_CACHE:-$HOME/.cache/wmsgate}/opa-$OPA_VERSION/bin/opa"
[ -x "$opa" ] || { echo "[rego] OPA not installed; run deploy/local/setup.sh" >&2; exit 1; }
cd "$repo"
echo "[rego] opa fmt --list --fail rego/"
"$opa" fmt --list --fail rego/
echo "[rego] opa check --strict rego/"
"$opa" check --strict rego/
echo "[rego] opa test rego/ --coverage --threshold ${REGO_COVERAGE_MIN:-95}"
"$opa" test rego/ --coverage --threshold "${REGO_COVERAGE_MIN:-95}" --format=json > /tmp/wmsgate-rego-coverage.$$.json \
  || { "$opa" test rego/ -v; echo "[rego] tests failed or coverage below threshold" >&2; exit 1; }
python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(f\"[rego] coverage {d['coverage']:.1f}%\")" /tmp/wmsgate-rego-coverage.$$.json
rm -f /tmp/wmsgate-rego-coverage.$$.json
"$opa" test rego/

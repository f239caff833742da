#!/usr/bin/env bash
# The policy's checks, in the order a failure is cheapest to read: compile the data, opa fmt, opa check
# --strict, opa test with coverage (>= 95 %), then the Wasm build and its parity with `opa eval`.
set -euo pipefail

policies="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$policies")"
python="${PYTHON:-$repo/.venv/bin/python}"
min_coverage=95
opa="$("$python" -c 'from sovereign import toolchain; print(toolchain.binary("opa"))')"
rego="$policies/sovereign"
build="$(mktemp -d)"
trap 'rm -rf "$build"' EXIT

echo "[policy] compiling policies/data -> data.json"
mkdir -p "$build/data"
# Only the compiled document is handed to OPA: it would also load the raw YAML of policies/data as data.
"$python" -m sovereign.policydata --out "$build/data/data.json"

echo "[policy] opa fmt --list"
unformatted="$("$opa" fmt --list "$rego")"
if [[ -n "$unformatted" ]]; then
  echo "not formatted (run: $opa fmt -w policies/sovereign):" >&2
  echo "$unformatted" >&2
  exit 1
fi

echo "[policy] opa check --strict"
"$opa" check --strict "$rego" "$build/data"

echo "[policy] opa test"
"$opa" test "$rego" "$build/data"
"$opa" test --coverage --format=json "$rego" "$build/data" >"$build/coverage.json"
"$python" - "$build/coverage.json" "$min_coverage" <<'PY'
import json, sys

report = json.load(open(sys.argv[1]))
coverage, minimum = report["coverage"], float(sys.argv[2])
print(f"[policy] coverage {coverage:.2f} % (minimum {minimum:g} %)")
if coverage < minimum:
    for path, entry in sorted(report["files"].items()):
        rows = [f"{r['start']['row']}-{r['end']['row']}" for r in entry.get("not_covered", [])]
        if rows:
            print(f"  {path}: not covered {', '.join(rows)}", file=sys.stderr)
    sys.exit(1)
PY

echo "[policy] opa build -t wasm, and parity with opa eval on policies/examples and policies/documents"
cp -r "$rego" "$build/data/sovereign"
"$opa" build -t wasm -e sovereign/decision/result -e sovereign/batch/results --ignore '*_test.rego' \
  -b "$build/data" -o "$build/bundle.tar.gz"
for example in "$policies"/examples/*.json "$policies"/documents/*.json; do
  "$opa" eval -f json -d "$rego" -d "$build/data/data.json" -i "$example" --ignore '*_test.rego' \
    'data.sovereign.decision.result' >"$build/$(basename "$example").eval"
done
"$python" - "$build" "$policies/examples" "$policies/documents" <<'PY'
import json, logging, sys, tarfile
from pathlib import Path

from opapywasm import PolicyConfig

from sovereign.policy.wasm_engine import policy_from_wasm

# Growing the initial memory to fit the policy's static data is opa-py-wasm's normal path, not a problem.
logging.getLogger("opapywasm.runtime").setLevel(logging.ERROR)

build = Path(sys.argv[1])
examples = [path for folder in sys.argv[2:] for path in sorted(Path(folder).glob("*.json"))]
with tarfile.open(build / "bundle.tar.gz") as bundle:
    wasm = bundle.extractfile("/policy.wasm").read()
policy = policy_from_wasm(wasm, PolicyConfig(default_entrypoint="sovereign/decision/result"))
if policy.builtins:
    sys.exit(f"the Wasm policy needs built-ins the Wasm runtime lacks: {sorted(policy.builtins)}")
policy.set_data(json.loads((build / "data" / "data.json").read_text()))
inputs = [json.loads(example.read_text()) for example in examples]
batch = policy.evaluate({"items": inputs}, entrypoint="sovereign/batch/results")
for example, request, batched in zip(examples, inputs, batch, strict=True):
    expected = json.loads((build / f"{example.name}.eval").read_text())["result"][0]["expressions"][0]["value"]
    if policy.evaluate(request) != expected or batched != expected:
        sys.exit(f"Wasm and opa eval disagree on {example.name}")
print(f"[policy] Wasm == opa eval on {len(examples)} examples (single and batched)")
PY
echo "[policy] ok"

#!/usr/bin/env bash
# Narrated end-to-end run over the bundled sample corpus, on the embedded event log and chains.
set -euo pipefail
cd "$(dirname "$0")/.."

export BYR_HOME="${BYR_HOME:-var/demo}"
export ETH_HASH_BACKEND="${ETH_HASH_BACKEND:-pysha3}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
BYR=.venv/bin/byr

say() { printf '\n\033[1;36m== %s\033[0m\n' "$*"; }
run() { printf '\033[2m$ %s\033[0m\n' "$*"; "$@"; }

rm -rf "$BYR_HOME"

say "1. Create the embedded ledger: SQLite event log, two in-process chains, contracts, demo institutions"
run $BYR init

say "2. The institutions registered on the academic chain"
run $BYR institution list

say "3. BUPT submits the sample corpus; malformed lines are reported with file, line and field"
run $BYR submit examples/sample_corpus.jsonl --institution bupt --wait --json > "$BYR_HOME/submit.json" || true
run .venv/bin/python -m json.tool "$BYR_HOME/submit.json" | head -40

say "4. Ledger status"
run $BYR status

RECORD_ID=$(.venv/bin/python -c "import json,sys; print(json.load(open(sys.argv[1]))['record_ids'][0])" "$BYR_HOME/submit.json")

say "5. An auditor asks for the proof bundle of record $RECORD_ID"
run $BYR proof "$RECORD_ID" > "$BYR_HOME/bundle.json"
run head -c 600 "$BYR_HOME/bundle.json"; echo

say "6. The auditor verifies it: offline (hash, leaf, proof) and online (anchored by that contract in that transaction)"
run $BYR verify "$BYR_HOME/bundle.json"

say "7. A tampered bundle fails with a reason"
.venv/bin/python - "$BYR_HOME/bundle.json" "$BYR_HOME/tampered.json" <<'PY'
import json, sys
bundle = json.load(open(sys.argv[1]))
bundle["record"]["output"] += " (edited)"
json.dump(bundle, open(sys.argv[2], "w"), ensure_ascii=False)
PY
if $BYR verify "$BYR_HOME/tampered.json"; then echo "tampered bundle was accepted"; exit 1; fi

say "8. Rebuild every projection from the event log and compare with the live state"
run $BYR replay

say "9. Verify the proof bundle once more, as the last step"
run $BYR verify "$BYR_HOME/bundle.json"

#!/usr/bin/env bash
# Narrated end-to-end run over the bundled sample corpus, on the embedded event log and chains:
# intake -> governance -> anchor -> reward -> audit -> training -> lineage -> audit.
set -euo pipefail
cd "$(dirname "$0")/.."

export BYR_HOME="${BYR_HOME:-var/demo}"
export ETH_HASH_BACKEND="${ETH_HASH_BACKEND:-pysha3}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
BYR=.venv/bin/byr
PY=.venv/bin/python
DEMO_BASE="${DEMO_BASE:-smollm2-135m}"
DEMO_STEPS="${DEMO_STEPS:-12}"

say() { printf '\n\033[1;36m== %s\033[0m\n' "$*"; }
run() { printf '\033[2m$ %s\033[0m\n' "$*" >&2; "$@"; }
field() { $PY -c "import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2], {}, {'d': d}))" "$@"; }

rm -rf "$BYR_HOME"

say "1. Create the embedded ledger: SQLite event log, two in-process chains, both contracts, demo institutions"
run $BYR init

say "2. The institutions registered on the academic chain"
run $BYR institution list

say "3. BUPT submits the sample corpus (216 records, zh + en, six disciplines, 7 malformed lines)."
say "   Malformed lines are reported with file, line and field; the rest is governed, anchored and rewarded."
set +e
run $BYR submit examples/sample_corpus.jsonl --institution bupt --wait --json > "$BYR_HOME/submit.json"
code=$?
set -e
[ "$code" -eq 3 ] || { echo "expected exit 3 (recorded with rejected lines), got $code"; exit 1; }
field "$BYR_HOME/submit.json" "'\n'.join(i['message'] for i in d['issues'] if i['severity'] == 'error')"
field "$BYR_HOME/submit.json" "f\"batch {d['batch_id']}: {d['accepted']} of {len(d['record_ids'])} records accepted, anchored in tx {d['tx_hash']}, reward {int(d['reward_wei'])/1e18:.4f} BYR\""
BATCH=$(field "$BYR_HOME/submit.json" "d['batch_id']")
RECORD_ID=$(field "$BYR_HOME/submit.json" "d['record_ids'][0]")

say "4. Xidian submits records with planted problems: PII, near-duplicates, off-topic, garbled, truncated"
set +e
run $BYR submit examples/governance_cases.jsonl --institution xidian --wait --json > "$BYR_HOME/cases.json"
set -e
CASES=$(field "$BYR_HOME/cases.json" "d['batch_id']")
run $BYR report "$CASES" --json > "$BYR_HOME/report.json"
field "$BYR_HOME/report.json" "'\n'.join(f\"  {x['source_line']:>3} {'accept' if x['accepted'] else 'REJECT'} {','.join(x['reasons']) or '-'}\" + (f\" (duplicates {x['duplicate_of']})\" if x['duplicate_of'] else '') for x in d['decisions'])"
field "$BYR_HOME/report.json" "f\"accepted {d['accepted']}, rejected {d['rejected']}, redactions {d['redactions']}, reward {d['reward_byr']}\""

say "5. Ledger status and BYR balances"
run $BYR status

say "6. An auditor asks for the proof bundle of record $RECORD_ID and verifies it"
run $BYR proof "$RECORD_ID" --output "$BYR_HOME/bundle.json"
run $BYR verify "$BYR_HOME/bundle.json"

say "7. A tampered bundle fails with a reason"
$PY - "$BYR_HOME/bundle.json" "$BYR_HOME/tampered.json" <<'PY'
import json, sys
bundle = json.load(open(sys.argv[1]))
bundle["record"]["output"] += " (edited)"
json.dump(bundle, open(sys.argv[2], "w"), ensure_ascii=False)
PY
if run $BYR verify "$BYR_HOME/tampered.json"; then echo "a tampered bundle was accepted"; exit 1; fi

say "8. A LoRA run on the accepted English corpus ($DEMO_BASE, $DEMO_STEPS steps), anchored on the academic chain"
run $BYR train --recipe knowledge_qa --base "$DEMO_BASE" --max-steps "$DEMO_STEPS" --language en \
    --set training.max_seq_length=192 --set training.learning_rate=1e-3 --json > "$BYR_HOME/train.json"
field "$BYR_HOME/train.json" "'loss by step: ' + ' '.join(f'{x:.3f}' for x in d['losses'])"
field "$BYR_HOME/train.json" "f\"mean loss of the first 3 steps {sum(d['losses'][:3])/3:.3f} -> last 3 steps {sum(d['losses'][-3:])/3:.3f}\""
field "$BYR_HOME/train.json" "f\"run {d['run_id']} on {d['records']} records, adapter {d['adapter_dir']}, anchored in tx {d['anchor_tx_hash']}\""
ADAPTER=$(field "$BYR_HOME/train.json" "d['adapter_dir']")

say "9. Lineage: adapter hash -> run anchor -> dataset root -> records -> batches -> institutions"
run $BYR lineage "$ADAPTER"

ERASED=$($PY -c "import json,sys; m=json.load(open(sys.argv[1]+'/byr_manifest.json')); print(next(i for i in m['dataset']['train_record_ids'] if i != sys.argv[2]))" "$ADAPTER" "$RECORD_ID")
say "10. BUPT withdraws record $ERASED, which the adapter was trained on: its text, salt and hash are erased"
run $BYR erase "$ERASED" --reason "withdrawn by the author" --institution bupt
say "    its proof bundle can no longer be produced; the lineage still verifies and lists it as erased"
if run $BYR proof "$ERASED" > /dev/null; then echo "an erased record still has a proof"; exit 1; fi
run $BYR lineage "$ADAPTER"

say "11. Rebuild every projection from the event log and compare with the live state"
run $BYR replay

say "12. Finally, the auditor's proof bundle (of another record) verifies against the chain"
run $BYR verify "$BYR_HOME/bundle.json"

RUN=$(field "$BYR_HOME/train.json" "d['run_id']")
say "13. Evaluate the base and run $RUN on a few English seed-benchmark items: answers, metrics, perplexity,"
say "    contamination refusal against its training records, forgetting on the control set, glossary knowledge"
run $BYR eval --models "base,$RUN" --base "$DEMO_BASE" \
    --cells information_theory:knowledge_qa,computer_networks:knowledge_qa --language en \
    --limit 2 --max-new-tokens 24 --glossary-terms 4 --json > "$BYR_HOME/eval.json"
field "$BYR_HOME/eval.json" "'\n'.join(f\"  {n}: overall {s['overall']:.3f}, reference perplexity {s['perplexity']:.1f} over {s['items_scored']} items\" for n, s in d['summary'].items())"
field "$BYR_HOME/eval.json" "'\n'.join(f\"  {n}: {len(f)} forgetting flag(s)\" + ''.join(f\"\n    {x['scope']}: {x['reason']}\" for x in f) for n, f in d['forgetting'].items())"
field "$BYR_HOME/eval.json" "'\n'.join(f\"  {n}: refused as found in its training records: {', '.join(i) or 'none'}\" for n, i in d['contaminated'].items())"
field "$BYR_HOME/eval.json" "f\"report {d['report_html']} (sha256 {d['report_sha256'][:16]}..., recorded as {d['report_id']})\""

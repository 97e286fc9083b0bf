"""``byr export`` and ``GET /v1/exports/{format}`` on a real embedded home: byte-identical
exports of one snapshot, multi-turn records carried in every layout, the ``hf`` folder read by
Hugging Face ``datasets`` and the ``llamafactory`` folder by LLaMA-Factory's own dataset loader."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.app import ApiSettings, create_app
from api.composition import Parts
from api.services.export import LLAMAFACTORY_DATASET, ExportFormat, export_files
from ledger.batching import RecordInput
from ledger.events import BatchAnchored, BatchGoverned
from ledger.ids import batch_stream
from ledger.settings import LedgerSettings
from tests.api.test_feed import add_batch, canonical
from tests.cli import byr, ok_json
from tests.homes import TestKeys, issue_keys

LLAMAFACTORY = "llamafactory==0.9.5"

MULTI_TURN = {
    "system": "You are a patient teaching assistant for a signals course.",
    "history": [
        ["What is a sampling rate?", "How many samples of a signal are taken per second."],
        ["And aliasing?", "Distinct frequencies becoming indistinguishable after sampling."],
    ],
}


DIALOGUE: dict[str, Any] = {
    "record_id": "rec_dialogue",
    "batch_id": "batch_dialogue",
    "leaf": "0x" + "01" * 32,
    **canonical(1, "bupt"),
    "instruction": "Which filter removes aliasing?",
    "input": "Before an ADC.",
    "output": "An anti-aliasing low-pass.",
    **MULTI_TURN,
}
MANIFEST = {"dataset_root": "0x" + "ab" * 32, "record_count": 1, "feed_position": 1}


def multi_instruction() -> str:
    return str(canonical(9000, "bupt")["instruction"])


def test_every_layout_carries_a_dialogue_in_order() -> None:
    plain = {**DIALOGUE, "record_id": "rec_plain"}
    del plain["system"], plain["history"]
    files = export_files(ExportFormat.ALPACA, [DIALOGUE, plain], MANIFEST)
    alpaca = json.loads(files["data.json"])
    assert alpaca[0]["system"] == MULTI_TURN["system"]
    assert alpaca[0]["history"] == MULTI_TURN["history"]
    assert (alpaca[1]["system"], alpaca[1]["history"]) == ("", [])
    share = json.loads(export_files(ExportFormat.SHAREGPT, [DIALOGUE], MANIFEST)["data.json"])
    assert [t["from"] for t in share[0]["conversations"]] == ["system"] + ["human", "gpt"] * 3
    assert (
        share[0]["conversations"][-2]["value"] == "Which filter removes aliasing?\nBefore an ADC."
    )
    hf = export_files(ExportFormat.HF, [DIALOGUE], MANIFEST)
    (row,) = [json.loads(x) for x in hf["data/train.jsonl"].splitlines()]
    assert row["history"] == MULTI_TURN["history"] and row["leaf"] == DIALOGUE["leaf"]
    info = json.loads(
        export_files(ExportFormat.LLAMAFACTORY, [DIALOGUE], MANIFEST)["dataset_info.json"]
    )
    assert info[LLAMAFACTORY_DATASET]["columns"]["history"] == "history"
    again = export_files(ExportFormat.ALPACA, [DIALOGUE, plain], MANIFEST)
    assert again == files


# -- a dialogue in each submitted shape, through intake, the ledger and every export ----------

SOURCE_TURNS = [
    ("What does a parity bit detect?", "Any single flipped bit of the protected word."),
    ("Can it correct that error?", "No: it tells that a bit flipped, not which one."),
    ("What can correct it?", "A Hamming code, whose syndrome points at the flipped bit."),
]
SOURCE_SYSTEM = "You tutor a channel coding course."


def dialogue_files(folder: Path) -> dict[str, Path]:
    """The same dialogue written as ShareGPT, OpenAI-style messages and Alpaca with history."""
    meta = {"discipline": "information_theory", "task_type": "teaching_dialogue"}
    sharegpt = {
        "conversations": [{"from": "system", "value": SOURCE_SYSTEM}]
        + [
            {"from": tag, "value": text}
            for user, answer in SOURCE_TURNS
            for tag, text in (("human", user), ("gpt", answer))
        ],
        **meta,
    }
    messages = {
        "messages": [{"role": "system", "content": SOURCE_SYSTEM}]
        + [
            {"role": role, "content": text}
            for user, answer in SOURCE_TURNS
            for role, text in (("user", user), ("assistant", answer))
        ],
        **meta,
    }
    alpaca = {
        "instruction": SOURCE_TURNS[-1][0],
        "input": "",
        "output": SOURCE_TURNS[-1][1],
        "system": SOURCE_SYSTEM,
        "history": [list(pair) for pair in SOURCE_TURNS[:-1]],
        **meta,
    }
    folder.mkdir(parents=True, exist_ok=True)
    files = {}
    for name, item in (("sharegpt", sharegpt), ("messages", messages), ("alpaca", alpaca)):
        path = folder / f"{name}.jsonl"
        path.write_text(json.dumps(item) + "\n", encoding="utf-8")
        files[name] = path
    files["alpaca_array"] = folder / "alpaca.json"
    files["alpaca_array"].write_text(json.dumps([alpaca], indent=2), encoding="utf-8")
    return files


def exported_turns(fmt: ExportFormat, files: dict[str, bytes]) -> list[tuple[str, list[Any]]]:
    """``(system, [(user, assistant), ...])`` of every row of an export."""
    if fmt is ExportFormat.SHAREGPT:
        out = []
        for row in json.loads(files["data.json"]):
            turns = row["conversations"]
            system = turns[0]["value"] if turns[0]["from"] == "system" else ""
            rest = [t["value"] for t in turns if t["from"] != "system"]
            out.append((system, list(zip(rest[::2], rest[1::2], strict=True))))
        return out
    if fmt is ExportFormat.HF:
        rows = [json.loads(line) for line in files["data/train.jsonl"].splitlines()]
    else:
        name = f"{LLAMAFACTORY_DATASET}.json" if fmt is ExportFormat.LLAMAFACTORY else "data.json"
        rows = json.loads(files[name])
    return [
        (
            row["system"],
            [tuple(pair) for pair in row["history"]]
            + [("\n".join(p for p in (row["instruction"], row["input"]) if p), row["output"])],
        )
        for row in rows
    ]


def test_a_dialogue_in_each_shape_exports_with_its_turns(tmp_path: Path) -> None:
    from api.services.export import ExportRequest, ExportService
    from ingest.intake import read_batch
    from tests.ledger.test_application import anchor, close, open_ledger, register_bupt

    ledger = open_ledger(tmp_path / "events.db", tmp_path / "state.db")
    register_bupt(ledger)
    for path in dialogue_files(tmp_path / "in").values():
        intake = read_batch(path, institution_id="bupt")
        assert intake.ok, intake.summary()
        submitted = ledger.submit_batch(
            institution_id="bupt",
            source_name=path.name,
            records=[
                RecordInput(canonical=r.canonical(), source_line=r.line) for r in intake.records
            ],
            policy_version="test-1",
        )
        ledger.append(
            batch_stream(submitted.batch_id),
            [
                BatchGoverned(
                    batch_id=submitted.batch_id,
                    institution_id="bupt",
                    policy_version="test-1",
                    accepted_record_ids=list(submitted.record_ids),
                    rejected={},
                    decisions=[],
                    contribution_score=1.0,
                    reward_wei="0",
                )
            ],
        )
        anchor(ledger, submitted.batch_id)
    expected = (SOURCE_SYSTEM, [tuple(pair) for pair in SOURCE_TURNS])
    service = ExportService(ledger=ledger)
    for fmt in ExportFormat:
        export = service.build(ExportRequest(format=fmt))
        assert export.record_count == 4
        assert exported_turns(fmt, export.files) == [expected] * 4, fmt
    # Every shape gave the same canonical record, so the same hash.
    hashes = {ledger.record(r.record_id).record_hash for r, _ in ledger.accepted_feed()}
    assert len(hashes) == 1
    close(ledger)


@pytest.fixture(scope="module")
def keys(ledger_settings: LedgerSettings) -> TestKeys:
    return issue_keys(ledger_settings)


@pytest.fixture(scope="module")
def corpus(ledger_settings: LedgerSettings) -> dict[str, Any]:
    """Accepted records of both institutions, one of them multi-turn, one erased."""
    with Parts(ledger_settings) as parts:
        ledger = parts.ledger
        bupt = add_batch(ledger, "bupt")
        xidian = add_batch(ledger, "xidian")
        ledger.erase(bupt[0], reason="withdrawn", requested_by="bupt")

        def submit(record: dict[str, Any]) -> Any:
            return ledger.submit_batch(
                institution_id="bupt",
                source_name="dialogue.jsonl",
                records=[RecordInput(canonical=record, source_line=1)],
                policy_version="test-1",
            )

        submitted = submit({**canonical(9000, "bupt"), **MULTI_TURN})
        (multi,) = submitted.record_ids
        stream = batch_stream(submitted.batch_id)
        ledger.append(
            stream,
            [
                BatchGoverned(
                    batch_id=submitted.batch_id,
                    institution_id="bupt",
                    policy_version="test-1",
                    accepted_record_ids=[multi],
                    rejected={},
                    decisions=[],
                    contribution_score=1.0,
                    reward_wei="0",
                )
            ],
        )
        ledger.append(
            stream,
            [
                BatchAnchored(
                    batch_id=submitted.batch_id,
                    merkle_root=submitted.merkle_root,
                    metadata_hash=submitted.metadata_hash,
                    chain_id=31337,
                    contract_address="0x" + "22" * 20,
                    tx_hash="0x" + "cd" * 32,
                    block_number=7,
                )
            ],
        )
    live = bupt[1:] + xidian + [multi]
    return {"live": live, "erased": bupt[0], "multi": multi}


@pytest.fixture(scope="module")
def client(
    ledger_settings: LedgerSettings, keys: TestKeys, corpus: dict[str, Any]
) -> Iterator[TestClient]:
    app = create_app(settings=ledger_settings, api_settings=ApiSettings())
    with TestClient(app, headers=keys.trainer) as client:
        yield client


def turns_of(corpus: dict[str, Any]) -> tuple[str, list[list[str]]]:
    """The system prompt and history the dialogue record was stored with."""
    return MULTI_TURN["system"], MULTI_TURN["history"]  # type: ignore[return-value]


def files_of(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


def export_dir(home: Path, target: Path, fmt: str, *args: str) -> dict[str, Any]:
    return dict(ok_json(byr(home, "export", "--format", fmt, "-o", str(target), "--json", *args)))


def test_cli_exports_are_byte_identical_and_carry_multi_turn_records(
    ledger_settings: LedgerSettings, corpus: dict[str, Any], tmp_path: Path
) -> None:
    home = ledger_settings.home
    first = export_dir(home, tmp_path / "a", "alpaca")
    second = export_dir(home, tmp_path / "b", "alpaca")
    assert files_of(tmp_path / "a") == files_of(tmp_path / "b")
    assert first["files"] == second["files"] and set(first["files"]) == {
        "data.json",
        "manifest.json",
    }
    rows = json.loads((tmp_path / "a" / "data.json").read_text(encoding="utf-8"))
    assert [r["record_id"] for r in rows] == corpus["live"]
    system, history = turns_of(corpus)
    multi = next(r for r in rows if r["record_id"] == corpus["multi"])
    assert (multi["system"], multi["history"]) == (system, history)
    manifest = json.loads((tmp_path / "a" / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["dataset_root"] == first["dataset_root"]
    assert manifest["record_count"] == len(corpus["live"])
    assert corpus["erased"] not in (tmp_path / "a" / "data.json").read_text(encoding="utf-8")
    for folder in (tmp_path / "a",):
        assert all(b"salt" not in data for data in files_of(folder).values())

    export_dir(home, tmp_path / "s", "sharegpt")
    rows = json.loads((tmp_path / "s" / "data.json").read_text(encoding="utf-8"))
    turns = next(r for r in rows if r["record_id"] == corpus["multi"])["conversations"]
    expected = [{"from": "system", "value": system}] if system else []
    for user, assistant in history:
        expected += [{"from": "human", "value": user}, {"from": "gpt", "value": assistant}]
    assert turns[: len(expected)] == expected
    assert [t["from"] for t in turns[len(expected) :]] == ["human", "gpt"]

    only = export_dir(home, tmp_path / "x", "hf", "--institution", "xidian")
    assert only["record_count"] == 3  # xidian's three accepted records


def test_cli_refuses_bad_input_with_exit_2(
    ledger_settings: LedgerSettings, corpus: dict[str, Any], tmp_path: Path
) -> None:
    home = ledger_settings.home
    bad = byr(home, "export", "--format", "csv", "-o", str(tmp_path / "c"), "--json")
    assert bad.returncode == 2 and "format" in json.loads(bad.stdout)["message"]
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine", encoding="utf-8")
    busy = byr(home, "export", "--format", "hf", "-o", str(tmp_path / "full"), "--json")
    assert busy.returncode == 2 and "empty" in json.loads(busy.stdout)["message"]
    empty = byr(home, "export", "--format", "hf", "-o", str(tmp_path / "e"), "--language", "zh")
    assert empty.returncode == 2
    assert not (tmp_path / "e").exists()


def test_http_archives_are_byte_identical_and_deterministic(client: TestClient) -> None:
    first = client.get("/v1/exports/llamafactory")
    second = client.get("/v1/exports/llamafactory")
    assert first.status_code == 200, first.text
    assert first.headers["content-type"] == "application/gzip"
    assert first.content == second.content
    assert first.content[4:8] == b"\0\0\0\0"  # gzip header time
    with tarfile.open(fileobj=io.BytesIO(first.content), mode="r:gz") as tar:
        members = tar.getmembers()
        names = [m.name for m in members]
        assert names == sorted(names)
        assert {m.mtime for m in members} == {0} and {m.uid for m in members} == {0}
        folder = names[0]
        assert f"{folder}/dataset_info.json" in names and f"{folder}/manifest.json" in names
        manifest = json.load(tar.extractfile(f"{folder}/manifest.json"))  # type: ignore[arg-type]
    assert manifest["dataset_root"] == first.headers["x-dataset-root"]


def test_who_may_export(client: TestClient, keys: TestKeys, corpus: dict[str, Any]) -> None:
    assert client.get("/v1/exports/alpaca", headers=keys.trainer).status_code == 200
    assert client.get("/v1/exports/alpaca", headers=keys.admin).status_code == 403
    own = client.get("/v1/exports/alpaca", headers=keys.bupt)
    assert own.status_code == 200
    with tarfile.open(fileobj=io.BytesIO(own.content), mode="r:gz") as tar:
        data = next(m for m in tar.getmembers() if m.name.endswith("/data.json"))
        rows = json.load(tar.extractfile(data))  # type: ignore[arg-type]
    assert {r["record_id"] for r in rows} == {corpus["live"][i] for i in (0, 1, 5)}
    assert (
        client.get(
            "/v1/exports/alpaca", headers=keys.bupt, params={"institution": "xidian"}
        ).status_code
        == 403
    )
    assert client.get("/v1/exports/alpaca", headers=keys.auditor).status_code == 403
    assert client.get("/v1/exports/alpaca", headers={"Authorization": ""}).status_code == 401
    assert client.get("/v1/exports/csv").status_code == 422
    assert client.get("/v1/exports/hf", params={"language": "zh"}).status_code == 404


def test_the_hf_export_is_read_by_datasets(
    ledger_settings: LedgerSettings, corpus: dict[str, Any], tmp_path: Path
) -> None:
    datasets = pytest.importorskip("datasets")
    export_dir(ledger_settings.home, tmp_path / "hf", "hf")
    cache = str(tmp_path / "cache")
    by_card = datasets.load_dataset(str(tmp_path / "hf"), split="train", cache_dir=cache)
    by_file = datasets.load_dataset(
        "json",
        data_files=str(tmp_path / "hf" / "data" / "train.jsonl"),
        split="train",
        cache_dir=cache,
    )
    assert by_card.to_list() == by_file.to_list()
    assert by_card["record_id"] == corpus["live"]
    multi = by_card[corpus["live"].index(corpus["multi"])]
    assert (multi["system"], multi["history"]) == turns_of(corpus)
    assert {"instruction", "output", "discipline", "leaf", "batch_id"} <= set(by_card.column_names)


# -- LLaMA-Factory's own loader ---------------------------------------------------------------

LOADER = """
import json, sys
from transformers import Seq2SeqTrainingArguments
from llamafactory.hparams import DataArguments, ModelArguments
from llamafactory.data.loader import _get_merged_dataset

out_dir, pairs = sys.argv[1], sys.argv[2:]
loaded = {}
for folder, name in zip(pairs[::2], pairs[1::2]):
    key = "byr_dialogue" if "dialogue" in folder else name
    data_args = DataArguments(dataset=name, dataset_dir=folder)
    model_args = ModelArguments(model_name_or_path="unused")
    training_args = Seq2SeqTrainingArguments(output_dir=out_dir)
    rows = _get_merged_dataset(data_args.dataset, model_args, data_args, training_args, stage="sft")
    loaded[key] = [
        {"prompt": r["_prompt"], "response": r["_response"], "system": r["_system"]} for r in rows
    ]
print("RESULT " + json.dumps(loaded))
"""


def _uv() -> str:
    found = shutil.which("uv") or next(
        (p for p in (Path.home() / ".local/bin/uv", Path("/root/.local/bin/uv")) if p.exists()),
        None,
    )
    if found is None:
        pytest.skip("uv is not installed: it builds LLaMA-Factory's isolated environment")
    return str(found)


def llamafactory_python() -> Path:
    """A Python with LLaMA-Factory from PyPI, in its own environment under ~/.cache (it pins
    peft and transformers versions this project cannot share)."""
    venv = Path(
        os.environ.get(
            "BYR_TEST_LLAMAFACTORY_VENV", Path.home() / ".cache" / "byr-tests" / LLAMAFACTORY
        )
    )
    python = venv / "bin" / "python"
    probe = [str(python), "-c", "import llamafactory.data.loader"]
    if python.exists() and subprocess.run(probe, capture_output=True).returncode == 0:
        return python
    uv = _uv()
    subprocess.run([uv, "venv", "--python", sys.executable, str(venv)], check=True)
    installed = subprocess.run(
        [uv, "pip", "install", "--python", str(python), LLAMAFACTORY],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    if installed.returncode != 0:
        text = installed.stderr.lower()
        if any(s in text for s in ("connect", "dns", "network", "timed out", "resolve host")):
            pytest.skip(f"PyPI is unreachable, so {LLAMAFACTORY} cannot be installed")
        raise AssertionError(installed.stderr)
    return python


@pytest.mark.slow
def test_the_llamafactory_export_is_read_by_llamafactory(
    ledger_settings: LedgerSettings, corpus: dict[str, Any], tmp_path: Path
) -> None:
    python = llamafactory_python()
    folder = tmp_path / "lf"
    export_dir(ledger_settings.home, folder, "llamafactory")
    # The sharegpt export, described as LLaMA-Factory's documentation says for that layout.
    share = tmp_path / "share"
    export_dir(ledger_settings.home, share, "sharegpt")
    (share / "dataset_info.json").write_text(
        json.dumps(
            {
                "byr_sharegpt": {
                    "file_name": "data.json",
                    "formatting": "sharegpt",
                    "columns": {"messages": "conversations"},
                    "tags": {
                        "role_tag": "from",
                        "content_tag": "value",
                        "user_tag": "human",
                        "assistant_tag": "gpt",
                        "system_tag": "system",
                    },
                }
            }
        ),
        encoding="utf-8",
    )
    dialogue_folder = tmp_path / "dialogue"
    for name, data in export_files(ExportFormat.LLAMAFACTORY, [DIALOGUE], MANIFEST).items():
        (dialogue_folder / name).parent.mkdir(parents=True, exist_ok=True)
        (dialogue_folder / name).write_bytes(data)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("BYR_", "PYTHON"))},
        "HF_DATASETS_CACHE": str(tmp_path / "cache"),
        "HF_HUB_OFFLINE": "1",
    }
    ran = subprocess.run(
        [
            str(python),
            "-c",
            LOADER,
            str(tmp_path / "out"),
            str(folder),
            LLAMAFACTORY_DATASET,
            str(share),
            "byr_sharegpt",
            str(dialogue_folder),
            LLAMAFACTORY_DATASET,
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=600,
    )
    assert ran.returncode == 0, ran.stderr[-4000:]
    line = next(x for x in ran.stdout.splitlines() if x.startswith("RESULT "))
    loaded = json.loads(line[len("RESULT ") :])
    rows = loaded[LLAMAFACTORY_DATASET]
    assert len(rows) == len(corpus["live"])
    multi = rows[corpus["live"].index(corpus["multi"])]
    system, history = turns_of(corpus)
    assert multi["system"] == system
    contents = [m["content"] for m in multi["prompt"]]
    assert contents == [t for pair in history for t in pair] + [multi_instruction()]
    assert multi["prompt"][-1]["role"] == "user"
    assert multi["response"][0]["content"].startswith("Concept 9000")
    # the sharegpt layout reads to the same conversations
    assert loaded["byr_sharegpt"] == rows
    # a multi-turn dialogue, as the export layer writes it, reads with its turns in order
    (dialogue,) = loaded["byr_dialogue"]
    assert dialogue["system"] == MULTI_TURN["system"]
    assert [m["content"] for m in dialogue["prompt"]] == [
        *(t for pair in MULTI_TURN["history"] for t in pair),
        "Which filter removes aliasing?\nBefore an ADC.",
    ]
    assert [m["role"] for m in dialogue["prompt"]] == ["user", "assistant"] * 2 + ["user"]
    assert dialogue["response"] == [{"role": "assistant", "content": "An anti-aliasing low-pass."}]

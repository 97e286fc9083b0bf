"""``byr convert``, ``byr submit`` of a question bank with a mapping, and ``POST /v1/batches``
with a question bank and a ``mapping`` form field, against a real home."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from api.app import ApiSettings, create_app
from api.cli import app
from api.composition import Parts
from ledger.settings import LedgerSettings
from tests.homes import TestKeys, issue_keys

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
MAPPING = EXAMPLES / "question_bank_mapping.yaml"
BANK = EXAMPLES / "question_bank_zh.csv"
SECRET = "李娜 13912345678"

ROWS = pd.DataFrame(
    {
        "试题": ["奈奎斯特采样定理要求采样频率至少为信号最高频率的几倍？", "什么是数字签名？"],
        "备选": ["A. 一倍 B. 两倍 C. 三倍 D. 四倍", ""],
        "标答": ["B", "数字签名用私钥对消息摘要签名，接收方用公钥验证来源与完整性。"],
        "课程": ["信号处理", "网络安全"],
    }
)
MAP = "instruction=试题,options=备选,answer=标答"


def run(*args: str, home: Path | None = None) -> Any:
    env = {"BYR_HOME": str(home)} if home is not None else {}
    return CliRunner().invoke(app, list(args), env=env)


def bank_csv(tmp_path: Path, rows: pd.DataFrame = ROWS, name: str = "bank.csv") -> Path:
    path = tmp_path / name
    rows.to_csv(path, index=False)
    return path


# ---------------------------------------------------------------------------------------------
# byr convert
# ---------------------------------------------------------------------------------------------


def test_convert_writes_alpaca_next_to_the_file(tmp_path: Path) -> None:
    result = run("convert", str(bank_csv(tmp_path)), "--map", MAP)
    assert result.exit_code == 0, result.output
    written = json.loads((tmp_path / "bank.alpaca.json").read_text(encoding="utf-8"))
    assert [r["discipline"] for r in written] == ["signal_processing", "network_security"]
    assert written[0]["instruction"].endswith("\nA. 一倍\nB. 两倍\nC. 三倍\nD. 四倍")
    assert written[0]["output"] == "答案：B"
    assert set(written[0]) == {
        "instruction", "input", "output", "discipline", "task_type", "language", "license",
    }  # fmt: skip
    assert "2 rows, 2 converted, 0 refused" in result.output


def test_convert_sharegpt_json_summary(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    result = run(
        "convert", str(bank_csv(tmp_path)), "--map", MAP, "--to", "sharegpt", "-o", str(out),
        "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary | {"issues": []} == {
        "source": "bank.csv", "format": "csv", "to": "sharegpt", "output": str(out),
        "sheets": [], "rows": 2, "converted": 2, "refused": 0, "issues": [],
    }  # fmt: skip
    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [c["from"] for c in lines[1]["conversations"]] == ["human", "gpt"]
    assert lines[1]["discipline"] == "network_security"


def test_convert_does_not_desensitize(tmp_path: Path) -> None:
    rows = ROWS.copy()
    rows.loc[1, "标答"] = "如有疑问请联系 13912345678。"
    out = tmp_path / "o.json"
    result = run("convert", str(bank_csv(tmp_path, rows)), "--map", MAP, "-o", str(out))
    assert result.exit_code == 0
    assert "13912345678" in out.read_text(encoding="utf-8")


def test_convert_refused_rows_exit_3_located(tmp_path: Path) -> None:
    rows = ROWS.copy()
    rows.loc[0, "标答"] = "F"
    rows.loc[1, "课程"] = SECRET
    result = run("convert", str(bank_csv(tmp_path, rows)), "--map", MAP, "--json")
    assert result.exit_code == 3, result.output
    summary = json.loads(result.stdout)
    assert (summary["rows"], summary["converted"], summary["refused"]) == (2, 0, 2)
    located = [(i["line"], i["column"], i["code"]) for i in summary["issues"]]
    assert located == [(2, "标答", "wrong_type"), (3, "课程", "unknown_discipline")]
    assert SECRET not in result.output and "13912345678" not in result.output


def test_convert_the_example_with_its_mapping_file(tmp_path: Path) -> None:
    out = tmp_path / "zh.json"
    result = run("convert", str(BANK), "--mapping", str(MAPPING), "-o", str(out), "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["converted"] >= 10
    assert len(json.loads(out.read_text(encoding="utf-8"))) >= 10


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("bank.xlsx", b"question,answer\nq,a\n", "not an XLSX workbook"),
        ("bank.xlsx", b"PK\x03\x04 broken", "not an XLSX workbook"),
        ("bank.json", b"[]", "byr convert reads question banks"),
        ("bank.csv", "内容,说明\n一,二\n".encode(), "no column for field 'instruction'"),
    ],
)
def test_convert_unusable_files_exit_2(
    tmp_path: Path, name: str, content: bytes, expected: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    result = run("convert", str(path))
    assert result.exit_code == 2, result.output
    assert expected in result.output


def test_convert_bad_mapping_exits_2(tmp_path: Path) -> None:
    result = run("convert", str(bank_csv(tmp_path)), "--map", "instruction=试题,anser=标答")
    assert result.exit_code == 2
    assert "unknown field in the mapping" in result.output


# ---------------------------------------------------------------------------------------------
# byr submit and POST /v1/batches on a home
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def keys(ledger_settings: LedgerSettings) -> TestKeys:
    return issue_keys(ledger_settings)


@pytest.fixture(scope="module")
def client(ledger_settings: LedgerSettings, keys: TestKeys) -> Iterator[TestClient]:
    app_ = create_app(settings=ledger_settings, api_settings=ApiSettings())
    with TestClient(app_, headers=keys.bupt) as client:
        yield client


def test_submit_the_example_with_its_mapping(ledger_settings: LedgerSettings) -> None:
    result = run(
        "submit", str(BANK), "--mapping", str(MAPPING), "--institution", "bupt", "--json",
        home=ledger_settings.home,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    submitted = json.loads(result.stdout)
    assert submitted["recorded"] and submitted["issues"] == []
    assert len(submitted["record_ids"]) == submitted["items"] >= 10
    with Parts(ledger_settings) as parts:
        stored = parts.ledger.records(submitted["batch_id"])
    assert len({r.discipline for r in stored}) == 6
    assert all(r.source_line is not None and r.source_line >= 2 for r in stored)


def test_submit_a_bad_workbook_exits_2(ledger_settings: LedgerSettings, tmp_path: Path) -> None:
    path = tmp_path / "bank.xlsx"
    path.write_bytes(b"question,answer\nq,a\n")
    result = run(
        "submit", str(path), "--institution", "bupt", "--sheet", "x", home=ledger_settings.home
    )
    assert result.exit_code == 2
    assert "not an XLSX workbook" in result.output


def upload(
    client: TestClient, data: bytes, name: str, headers: dict[str, str] | None = None, **fields: str
) -> Any:
    return client.post(
        "/v1/batches",
        files={"file": (name, data, "application/octet-stream")},
        data={"institution_id": "bupt", **fields},
        headers=headers,
    )


def test_http_upload_of_a_csv_with_a_mapping(client: TestClient) -> None:
    rows = ROWS.copy()
    rows.loc[2] = ["第三题？", "A. 甲 B. 乙", "C", "信号处理"]
    data = rows.to_csv(index=False).encode()
    mapping = json.dumps({"instruction": "试题", "options": "备选", "answer": "标答"})
    response = upload(client, data, "bank.csv", mapping=mapping)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["items"] == 3 and body["valid_records"] == 2
    (issue,) = body["issues"]
    assert (issue["line"], issue["code"], issue["column"]) == (4, "wrong_type", "标答")
    assert issue["message"].startswith("bank.csv: row 4, column '标答'")
    records = client.get(f"/v1/batches/{body['batch_id']}/records").json()
    assert records[0]["record"]["output"] == "答案：B"
    assert records[0]["record"]["discipline"] == "signal_processing"


def test_http_upload_refusals(client: TestClient, keys: TestKeys) -> None:
    data = ROWS.to_csv(index=False).encode()
    mapping = json.dumps({"instruction": "试题", "answer": "标答"})
    not_json = upload(client, data, "bank.csv", mapping="instruction=试题")
    assert not_json.status_code == 422 and "form field 'mapping'" in not_json.json()["message"]
    deep = upload(client, data, "bank.csv", mapping="[" * 10_000)
    assert deep.status_code == 422
    unknown = upload(client, data, "bank.csv", mapping=json.dumps({"anser": "标答"}))
    assert unknown.status_code == 422 and "unknown field" in unknown.json()["message"]
    fake = upload(client, data, "bank.xlsx", mapping=mapping)
    assert fake.status_code == 422 and "not an XLSX workbook" in fake.json()["message"]
    buffer = io.BytesIO()
    ROWS.to_excel(buffer, sheet_name="题库", index=False, engine="openpyxl")
    corrupt = upload(client, buffer.getvalue()[:2000], "bank.xlsx")
    assert corrupt.status_code == 422
    other = upload(client, data, "bank.csv", headers=keys.xidian, mapping=mapping)
    assert other.status_code == 403


def test_http_upload_of_one_sheet(client: TestClient) -> None:
    buffer = io.BytesIO()
    with pd.ExcelWriter(buffer, engine="openpyxl") as writer:
        ROWS.to_excel(writer, sheet_name="选择", index=False)
        ROWS.iloc[1:].to_excel(writer, sheet_name="简答", index=False)
    mapping = json.dumps({"instruction": "试题", "options": "备选", "answer": "标答"})
    response = upload(client, buffer.getvalue(), "bank.xlsx", mapping=mapping, sheet="简答")
    assert response.status_code == 201, response.text
    assert response.json()["valid_records"] == 1


def test_http_upload_with_a_mapping_without_the_worker_process(
    ledger_settings: LedgerSettings, keys: TestKeys
) -> None:
    settings = ledger_settings.model_copy(update={"intake_processes": 0})
    mapping = json.dumps({"instruction": "试题", "options": "备选", "answer": "标答"})
    app_ = create_app(settings=settings, api_settings=ApiSettings())
    with TestClient(app_, headers=keys.bupt) as client:
        rows = ROWS.copy()
        rows.loc[1, "标答"] = "数字签名可以验证消息来源，联系电话 13912345678。"
        response = upload(client, rows.to_csv(index=False).encode(), "bank.csv", mapping=mapping)
        assert response.status_code == 201, response.text
        assert response.json()["redactions"] == {"PHONE": 1}
        records = client.get(f"/v1/batches/{response.json()['batch_id']}/records").json()
    assert "13912345678" not in records[1]["record"]["output"]

"""Question banks (CSV, TSV, XLSX, Parquet): reading, column mappings, choice questions, located
issues, broken files, and the round trip through intake into the ledger and back."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from ingest.banks import (
    BankUnreadable,
    ColumnMapping,
    ConversionOptions,
    ExportFormat,
    InvalidMapping,
    convert_bank,
    export,
)
from ingest.formats import BatchFormat
from ingest.intake import read_batch, read_batch_bytes
from ingest.records import Discipline, IssueCode, Language, TaskType
from ingest.validation import DEFAULT_LIMITS, IntakeLimits
from ledger.settings import LedgerSettings

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SECRET = "张伟 13812345678"
"""A value planted in bad cells: no message may repeat it."""

ROWS: list[dict[str, str]] = [
    {
        "题目": "TCP 协议工作在 OSI 参考模型的哪一层？",
        "A": "网络层",
        "B": "传输层",
        "C": "会话层",
        "D": "数据链路层",
        "答案": "B",
        "解析": "TCP 提供端到端的可靠字节流服务，属于传输层协议。",
        "科目": "计算机网络",
        "题型": "单选题",
    },
    {
        "题目": "什么是信道容量？",
        "A": "",
        "B": "",
        "C": "",
        "D": "",
        "答案": "信道容量是对所有输入分布求互信息的最大值，是信道可靠传输信息的最高速率。",
        "解析": "",
        "科目": "信息论",
        "题型": "简答题",
    },
    {
        "题目": "Which of these ciphers are symmetric?",
        "A": "AES",
        "B": "RSA",
        "C": "ChaCha20",
        "D": "ECDSA",
        "答案": "A,C",
        "解析": "AES and ChaCha20 use one shared key; RSA and ECDSA are public-key schemes.",
        "科目": "network security",
        "题型": "",
    },
]


def frame(rows: list[dict[str, str]] = ROWS) -> pd.DataFrame:
    return pd.DataFrame(rows)


def xlsx_bytes(sheets: dict[str, pd.DataFrame]) -> bytes:
    buffer = io.BytesIO()
    with pd.ExcelWriter(buffer, engine="openpyxl") as writer:
        for name, sheet in sheets.items():
            sheet.to_excel(writer, sheet_name=name, index=False)
    return buffer.getvalue()


def parquet_bytes(df: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    df.to_parquet(buffer, index=False)
    return buffer.getvalue()


WRITERS: dict[str, Callable[[pd.DataFrame], bytes]] = {
    "bank.csv": lambda df: df.to_csv(index=False).encode("utf-8"),
    "bank.tsv": lambda df: df.to_csv(index=False, sep="\t").encode("utf-8"),
    "bank.xlsx": lambda df: xlsx_bytes({"题库": df}),
    "bank.parquet": parquet_bytes,
}


def convert(data: bytes, name: str, **options: Any) -> Any:
    return convert_bank(
        data,
        source=name,
        fmt=BatchFormat(name.rsplit(".", 1)[1]),
        options=ConversionOptions(**options),
        limits=DEFAULT_LIMITS,
    )


# ---------------------------------------------------------------------------------------------
# formats and choice questions
# ---------------------------------------------------------------------------------------------

EXPECTED = [
    {
        "instruction": "TCP 协议工作在 OSI 参考模型的哪一层？\nA. 网络层\nB. 传输层\nC. 会话层\n"
        "D. 数据链路层",
        "output": "答案：B\n解析：TCP 提供端到端的可靠字节流服务，属于传输层协议。",
        "discipline": "computer_networks",
        "task_type": "knowledge_qa",
        "language": "zh",
    },
    {
        "instruction": "什么是信道容量？",
        "output": ROWS[1]["答案"],
        "discipline": "information_theory",
        "task_type": "knowledge_qa",
        "language": "zh",
    },
    {
        "instruction": "Which of these ciphers are symmetric?\nA. AES\nB. RSA\nC. ChaCha20\n"
        "D. ECDSA",
        "output": "Answer: A,C\nExplanation: AES and ChaCha20 use one shared key; RSA and ECDSA "
        "are public-key schemes.",
        "discipline": "network_security",
        "task_type": "knowledge_qa",
        "language": "en",
    },
]


@pytest.mark.parametrize("name", sorted(WRITERS))
def test_every_format_reads_to_the_same_records(name: str) -> None:
    result = read_batch_bytes(WRITERS[name](frame()), source_name=name, institution_id="bupt")
    assert result.ok, [i.message for i in result.issues]
    assert result.format is BatchFormat(name.rsplit(".", 1)[1])
    assert [r.line for r in result.records] == [2, 3, 4]
    got = [
        {
            k: r.canonical()[k]
            for k in ("instruction", "output", "discipline", "task_type", "language")
        }
        for r in result.records
    ]
    assert got == EXPECTED


def test_one_options_column_inline_or_json_list() -> None:
    df = pd.DataFrame(
        {
            "question": ["Which layer routes packets?", "Which code detects errors?"],
            "options": ["A. Physical B. Network C. Transport", '["Parity", "Gray", "Huffman"]'],
            "answer": ["b", "A"],
            "subject": ["computer networks", "communication principles"],
        }
    )
    result = read_batch_bytes(
        df.to_csv(index=False).encode(), source_name="q.csv", institution_id="bupt"
    )
    assert result.ok
    first, second = (r.canonical() for r in result.records)
    assert first["instruction"].endswith("\nA. Physical\nB. Network\nC. Transport")
    assert first["output"] == "Answer: B"
    assert second["instruction"].endswith("\nA. Parity\nB. Gray\nC. Huffman")


def test_chinese_headers_need_and_take_a_mapping() -> None:
    df = pd.DataFrame(
        {
            "试题内容": ["简述香农公式的含义。"],
            "参考解答": ["香农公式 C = B log2(1 + S/N) 给出了带限高斯白噪声信道的容量。"],
            "课程名称": ["通信原理"],
        }
    )
    data = df.to_csv(index=False).encode()
    with pytest.raises(InvalidMapping) as refused:
        read_batch_bytes(data, source_name="题库.csv", institution_id="bupt")
    assert "field 'instruction'" in str(refused.value)
    assert "'试题内容', '参考解答', '课程名称'" in str(refused.value)
    mapping = ColumnMapping.from_option("instruction=试题内容,output=参考解答,discipline=课程名称")
    result = read_batch_bytes(
        data,
        source_name="题库.csv",
        institution_id="bupt",
        conversion=ConversionOptions(mapping=mapping),
    )
    assert result.ok
    (record,) = result.records
    assert record.fields.discipline is Discipline.COMMUNICATION_PRINCIPLES
    assert record.fields.language is Language.ZH
    assert record.fields.output.startswith("香农公式")


def test_mapping_files_yaml_and_json(tmp_path: Path) -> None:
    (tmp_path / "m.json").write_text(json.dumps({"instruction": "Q", "options": ["x", "y"]}))
    (tmp_path / "m.yaml").write_text("columns:\n  instruction: Q\n  options: [x, y]\n")
    assert ColumnMapping.load(tmp_path / "m.json") == ColumnMapping.load(tmp_path / "m.yaml")
    (tmp_path / "bad.yaml").write_text("columns:\n  instruction: Q\n  answre: K\n")
    with pytest.raises(InvalidMapping, match=r"bad\.yaml: unknown field in the mapping"):
        ColumnMapping.load(tmp_path / "bad.yaml")
    with pytest.raises(InvalidMapping, match="only 'options' may"):
        ColumnMapping.from_option("instruction=a|b")


def test_workbook_reads_every_sheet_or_the_one_asked_for() -> None:
    data = xlsx_bytes(
        {"网络": frame(ROWS[:1]), "信息论": frame(ROWS[1:2]), "Sheet3": pd.DataFrame()}
    )
    every = convert(data, "bank.xlsx")
    assert [(o.sheet, o.row) for o in every.origins] == [("网络", 2), ("信息论", 2)]
    assert every.sheets == ("网络", "信息论", "Sheet3")
    one = convert(data, "bank.xlsx", sheet="信息论")
    assert [i.discipline for i in one.items] == [Discipline.INFORMATION_THEORY]
    with pytest.raises(BankUnreadable, match="no sheet of that name; sheets: '网络', '信息论'"):
        convert(data, "bank.xlsx", sheet="missing")


def test_empty_rows_are_skipped_and_rows_keep_spreadsheet_numbers() -> None:
    blank = dict.fromkeys(ROWS[0], "")
    result = read_batch_bytes(
        frame([ROWS[0], blank, ROWS[1]]).to_csv(index=False).encode(),
        source_name="b.csv",
        institution_id="bupt",
    )
    assert result.items_seen == 2 and [r.line for r in result.records] == [2, 4]


def test_question_types_become_task_types() -> None:
    rows = [ROWS[1] | {"题型": "计算题"}, ROWS[0] | {"题型": "论述题"}]
    items = convert(frame(rows).to_csv(index=False).encode(), "b.csv").items
    assert [i.task_type for i in items] == [TaskType.PROBLEM_SOLVING, TaskType.CONCEPT_EXPLANATION]


# ---------------------------------------------------------------------------------------------
# located issues
# ---------------------------------------------------------------------------------------------


def test_a_bad_row_is_located_by_sheet_row_and_column_without_its_value() -> None:
    rows = [
        ROWS[0],
        ROWS[0] | {"题目": "第二题？", "答案": "E"},  # no option E
        ROWS[1] | {"科目": SECRET},  # unknown discipline
        ROWS[1] | {"题目": "", "答案": "有答案没有题目"},  # empty instruction
        ROWS[0] | {"题目": "第五题？", "答案": SECRET},  # not an answer key
    ]
    result = read_batch_bytes(
        xlsx_bytes({"单选": frame(rows)}), source_name="bank.xlsx", institution_id="bupt"
    )
    located = [(i.sheet, i.line, i.column, i.field, i.code) for i in result.errors]
    assert located == [
        ("单选", 3, "答案", "answer", IssueCode.WRONG_TYPE),
        ("单选", 4, "科目", "discipline", IssueCode.UNKNOWN_DISCIPLINE),
        ("单选", 5, "题目", "instruction", IssueCode.EMPTY_FIELD),
        ("单选", 6, "答案", "answer", IssueCode.WRONG_TYPE),
    ]
    assert result.errors[0].message.startswith("bank.xlsx: sheet '单选', row 3, column '答案'")
    assert "does not have (its options are A, B, C, D)" in result.errors[0].message
    assert [r.line for r in result.records] == [2]
    for issue in result.issues:
        shown = issue.message + json.dumps(issue.to_dict(), ensure_ascii=False)
        assert SECRET not in shown and "13812345678" not in shown
    assert result.errors[0].to_dict()["sheet"] == "单选"
    assert result.errors[0].to_dict()["column"] == "答案"


def test_duplicates_across_sheets_name_the_first_copy() -> None:
    data = xlsx_bytes({"一": frame(ROWS[:2]), "二": frame(ROWS[1:2])})
    (issue,) = convert(data, "b.xlsx").issues
    assert issue.code is IssueCode.DUPLICATE_IN_BATCH
    assert issue.message == (
        "b.xlsx: sheet '二', row 2: same instruction, input and output as sheet '一', row 3"
    )


def test_too_many_rows_are_cut_with_one_issue() -> None:
    limits = IntakeLimits(max_records=2)
    bank = convert_bank(
        frame().to_csv(index=False).encode(), source="b.csv", fmt=BatchFormat.CSV, limits=limits
    )
    assert len(bank.items) == 2
    (issue,) = bank.issues
    assert issue.code is IssueCode.TOO_MANY_RECORDS and issue.line == 4


# ---------------------------------------------------------------------------------------------
# files that are not what they say
# ---------------------------------------------------------------------------------------------


def test_a_csv_named_xlsx_is_refused_clearly() -> None:
    with pytest.raises(BankUnreadable, match=r"bank.xlsx: not an XLSX workbook .*named \.csv"):
        read_batch_bytes(b"question,answer\nq,a\n", source_name="bank.xlsx", institution_id="bupt")


def test_a_corrupt_workbook_is_refused_clearly() -> None:
    good = xlsx_bytes({"s": frame()})
    with pytest.raises(BankUnreadable, match="not an XLSX workbook"):
        read_batch_bytes(good[: len(good) // 2], source_name="b.xlsx", institution_id="bupt")
    broken = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(good)) as source, zipfile.ZipFile(broken, "w") as target:
        for member in source.infolist():
            body = source.read(member)
            target.writestr(member, body[:40] if member.filename.endswith(".xml") else body)
    with pytest.raises(BankUnreadable, match=r"b.xlsx: not a readable XLSX workbook \("):
        read_batch_bytes(broken.getvalue(), source_name="b.xlsx", institution_id="bupt")


def test_a_workbook_that_expands_too_far_is_refused_before_parsing() -> None:
    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("xl/workbook.xml", "<workbook/>")
        archive.writestr("xl/worksheets/sheet1.xml", b" " * (5 * 1024 * 1024))
    limits = IntakeLimits(max_batch_bytes=1024 * 1024, max_field_chars=100, max_record_chars=100)
    with pytest.raises(BankUnreadable, match="expands to more than 4194304 bytes"):
        read_batch_bytes(
            bomb.getvalue(), source_name="b.xlsx", institution_id="bupt", limits=limits
        )


def test_binary_named_csv_and_text_named_parquet_are_refused() -> None:
    with pytest.raises(BankUnreadable, match=r"b\.csv: not a CSV file: it holds binary data"):
        read_batch_bytes(xlsx_bytes({"s": frame()}), source_name="b.csv", institution_id="bupt")
    with pytest.raises(BankUnreadable, match="not a Parquet file"):
        read_batch_bytes(b"question,answer\n", source_name="b.parquet", institution_id="bupt")


def test_a_row_with_more_cells_than_the_header_is_located() -> None:
    data = b"question,answer\nq1,a1\nq2,a2," + SECRET.encode() + b"\n"
    with pytest.raises(BankUnreadable, match=r"b\.csv: row 3: not a readable CSV file") as refused:
        read_batch_bytes(data, source_name="b.csv", institution_id="bupt")
    assert SECRET not in str(refused.value)


def test_gb18030_csv_from_excel_is_read() -> None:
    data = frame(ROWS[:2]).to_csv(index=False).encode("gb18030")
    result = read_batch_bytes(data, source_name="b.csv", institution_id="bupt")
    assert result.ok and result.records[1].fields.instruction == "什么是信道容量？"


def test_a_mapping_is_refused_for_a_json_batch() -> None:
    from ingest.errors import InvalidIntakeArgument

    with pytest.raises(InvalidIntakeArgument, match="CSV, TSV, XLSX and Parquet files only"):
        read_batch_bytes(
            b"[]",
            source_name="b.json",
            institution_id="bupt",
            conversion=ConversionOptions(sheet="x"),
        )


# ---------------------------------------------------------------------------------------------
# the example, exports, and the round trip through the ledger
# ---------------------------------------------------------------------------------------------


def example_options() -> ConversionOptions:
    return ConversionOptions(mapping=ColumnMapping.load(EXAMPLES / "question_bank_mapping.yaml"))


def test_example_question_bank_is_accepted_whole() -> None:
    result = read_batch(
        EXAMPLES / "question_bank_zh.csv", institution_id="bupt", conversion=example_options()
    )
    assert result.ok, [i.message for i in result.issues]
    assert len(result.records) >= 10
    assert set(result.discipline_counts()) == {d.value for d in Discipline}
    assert all(r.fields.language is Language.ZH for r in result.records)
    choices = [r for r in result.records if "\nA. " in r.fields.instruction]
    assert choices and all(r.fields.output.startswith("答案：") for r in choices)
    assert any(r.fields.task_type is TaskType.PROBLEM_SOLVING for r in result.records)


def test_export_alpaca_and_sharegpt() -> None:
    items = convert(frame().to_csv(index=False).encode(), "b.csv").items
    alpaca = json.loads(export(items, ExportFormat.ALPACA))
    assert [{k: a[k] for k in EXPECTED[0]} for a in alpaca] == EXPECTED
    assert set(alpaca[0]) == {*EXPECTED[0], "input", "license"}
    lines = export(items, ExportFormat.SHAREGPT).decode().splitlines()
    first = json.loads(lines[0])
    assert first["conversations"] == [
        {"from": "human", "value": EXPECTED[0]["instruction"]},
        {"from": "gpt", "value": EXPECTED[0]["output"]},
    ]
    assert first["discipline"] == "computer_networks" and len(lines) == 3


@pytest.mark.parametrize("name", sorted(WRITERS))
def test_submitted_bank_reads_back_from_the_ledger(
    name: str, ledger_settings: LedgerSettings
) -> None:
    from api.composition import Parts

    data = WRITERS[name](frame())
    converted = json.loads(export(convert(data, name).items, ExportFormat.ALPACA))
    with Parts(ledger_settings) as parts:
        outcome = parts.submission.submit_bytes(data, source_name=name, institution_id="bupt")
        assert outcome.batch is not None
        stored = parts.ledger.records(outcome.batch.batch_id)
    assert [r.source_line for r in stored] == [2, 3, 4]
    assert [{k: r.record[k] for k in converted[0]} for r in stored if r.record] == converted

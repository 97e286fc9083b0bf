"""The HTTP API's public models: what requests carry (``ThingCreate``) and what responses return
(``ThingPublic``).

Response models mirror the application views (``ledger.application``) field for field, so the API,
the CLI's ``--json`` output and the views stay one vocabulary. Wei amounts are decimal strings
(they overflow JSON numbers).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import cache
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema
from pydantic.json_schema import JsonDict

from ledger.canonical import RecordValue
from ledger.ids import INSTITUTION_ID_RE

INSTITUTION_ID_PATTERN = INSTITUTION_ID_RE.pattern
ACCOUNT_PATTERN = r"^(0[xX])?[0-9a-fA-F]{40}$"
"""What ``eth_utils.is_address`` takes from a string (the registry's check)."""

Account = Annotated[str, WithJsonSchema({"type": "string", "pattern": ACCOUNT_PATTERN})]
"""An Ethereum address as text; the registry checks it (the pattern documents that check)."""


def _char_class(admits: Callable[[str], bool]) -> str:
    """A regex character class of the code points ``admits``: its members, or ``[^...]`` and the
    others when they are fewer, since generators such as Hypothesis's walk every listed code
    point. Surrogates are never listed (Rust's regexes have none; a negated class admits them).
    ``\\uXXXX`` escapes in the BMP and the characters themselves above it, which Python's,
    ECMA-262's (``u``) and Rust's regexes all read alike."""
    admitted: list[tuple[int, int]] = []
    refused: list[tuple[int, int]] = []
    for code in range(sys.maxunicode + 1):
        if 0xD800 <= code <= 0xDFFF:
            continue
        ranges = admitted if admits(chr(code)) else refused
        if ranges and ranges[-1][1] == code - 1:
            ranges[-1] = (ranges[-1][0], code)
        else:
            ranges.append((code, code))
    negate = sum(b - a + 1 for a, b in refused) < sum(b - a + 1 for a, b in admitted)

    def spelled(code: int) -> str:
        return f"\\u{code:04x}" if code <= 0xFFFF else chr(code)

    listed = refused if negate else admitted
    parts = "".join(spelled(a) if a == b else f"{spelled(a)}-{spelled(b)}" for a, b in listed)
    return f"[{'^' if negate else ''}{parts}]"


@cache
def _trimmed_pattern(admits: Callable[[str], bool]) -> str:
    space = _char_class(str.isspace)
    first = _char_class(lambda c: admits(c) and not c.isspace())
    return f"^{space}*{first}{_char_class(admits)}*{space}*$"


def trimmed_text(admits: Callable[[str], bool]) -> Callable[[JsonDict], None]:
    """A ``json_schema_extra`` for text that the server trims (``str.strip()``) and then takes
    only when something is left and ``admits`` every character of it.

    The pattern is built from that rule when the schema is generated; the server's check stays
    the rule, with its own message."""

    def extra(schema: JsonDict) -> None:
        schema["pattern"] = _trimmed_pattern(admits)

    return extra


class ErrorIssue(BaseModel):
    """One located problem. Intake issues carry ``source``/``line``/``index``/``field``/``code``;
    request-validation issues carry ``loc``."""

    model_config = ConfigDict(extra="allow")

    message: str


class ErrorPublic(BaseModel):
    """The body of every error response."""

    error: str = Field(description="Type of the error, e.g. NotFound or BatchNotRecorded.")
    message: str = Field(description="What went wrong, complete on its own.")
    issues: list[ErrorIssue] | None = Field(
        None, description="Located problems, when the error has several (intake, validation)."
    )


class HealthPublic(BaseModel):
    status: str = "ok"


# ---------------------------------------------------------------------------------------------
# institutions
# ---------------------------------------------------------------------------------------------


class InstitutionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    institution_id: str = Field(
        pattern=INSTITUTION_ID_PATTERN, description="Short slug, e.g. bupt.", examples=["bupt"]
    )
    name: str = Field(min_length=1, max_length=200, description="Full name.")
    account: Account | None = Field(
        None,
        description="Address that receives BYR rewards; on the embedded chains a free development "
        "account when omitted.",
    )


class InstitutionPublic(BaseModel):
    institution_id: str
    name: str
    account: str
    active: bool
    registered_at: str
    academic_tx_hash: str | None


# ---------------------------------------------------------------------------------------------
# batches and submissions
# ---------------------------------------------------------------------------------------------


class BatchCreate(BaseModel):
    """A batch submitted as JSON: the records are read exactly like a JSON-array file."""

    model_config = ConfigDict(extra="forbid")

    institution_id: str = Field(description="Submitting institution id.", examples=["bupt"])
    records: list[Any] = Field(
        description="Records, each in one of three shapes: Alpaca (instruction, input, output, "
        "optional system and history of [user, assistant] pairs), ShareGPT (conversations of "
        "from/value turns) or OpenAI style (messages of role/content turns); with discipline, "
        "task_type and license. Invalid items are reported as issues with their index and field.",
        # intake refuses an empty batch (BatchNotRecorded, with its issue)
        json_schema_extra={"minItems": 1},
        examples=[
            [
                {
                    "instruction": "What does TCP slow start do?",
                    "output": "It doubles the congestion window every round trip until a loss "
                    "or the slow-start threshold.",
                    "discipline": "computer_networks",
                }
            ]
        ],
    )
    discipline: str | None = Field(None, description="Discipline for records that name none.")
    strict: bool = Field(False, description="Record nothing when any item is rejected.")
    wait: bool = Field(
        False, description="Carry the batch through governance, anchoring and reward first."
    )
    source_name: str = Field(
        "records.json", description="File name recorded as the batch's source (no directories)."
    )


class SubmissionOptions(BaseModel):
    """Options of a file upload (form fields, or query parameters of a raw upload)."""

    model_config = ConfigDict(extra="forbid")

    institution_id: str
    discipline: str | None = None
    strict: bool = False
    wait: bool = False


class IntakeIssuePublic(BaseModel):
    source: str
    line: int | None = Field(
        description="1-based line where the item starts; for a table, the row as a spreadsheet "
        "shows it (the header is row 1)."
    )
    index: int | None = Field(description="0-based position of the item in the batch.")
    field: str | None
    code: str
    severity: str
    message: str
    sheet: str | None = Field(default=None, description="The workbook sheet (XLSX only).")
    column: str | None = Field(
        default=None, description="The header of the table column the problem is in."
    )


class SubmissionPublic(BaseModel):
    """What happened to one submitted batch (the ``byr submit --json`` document)."""

    source: str
    items: int
    valid_records: int
    issues: list[IntakeIssuePublic]
    redactions: dict[str, int] = Field(description="PII type -> replacements made at intake.")
    recorded: bool
    batch_id: str | None = None
    merkle_root: str | None = None
    metadata_hash: str | None = None
    record_ids: list[str] = []
    status: str | None = None
    accepted: int | None = None
    policy_version: str | None = None
    tx_hash: str | None = None
    block_number: int | None = None
    chain_id: int | None = None
    contract_address: str | None = None
    reward_wei: str | None = None
    reward_tx_hash: str | None = None
    anchor_error: str | None = None
    pipeline: list[dict[str, Any]] = Field(
        [], description="Governance/anchor/reward rounds run before answering (wait=true)."
    )


class BatchPublic(BaseModel):
    batch_id: str
    institution_id: str
    source_name: str
    merkle_root: str
    metadata_hash: str
    manifest: dict[str, Any]
    record_count: int
    status: str
    submitted_at: str
    rejected_at_intake: list[dict[str, Any]]
    policy_version: str | None
    accepted_count: int | None
    contribution_score: float | None
    reward_wei: str | None
    chain_id: int | None
    contract_address: str | None
    tx_hash: str | None
    block_number: int | None
    anchor_error: str | None
    reward_tx_hash: str | None


class SubmissionAccepted(BaseModel):
    """A submission answered 202 (``Prefer: respond-async``), or its status later: ``status`` is
    queued, reading, recording, done or failed; once finished, ``http_status`` and ``result`` are
    what the synchronous request would have answered (201 and the submission document, or the
    error's status and body)."""

    submission_id: str
    institution_id: str
    source_name: str
    status: str
    created_at: str
    finished_at: str | None = None
    http_status: int | None = None
    result: dict[str, Any] | None = None
    status_url: str


class RecordPublic(BaseModel):
    record_id: str
    batch_id: str
    index: int
    source_line: int | None
    record: dict[str, RecordValue] | None = Field(
        description="Canonical fields (strings; `history` is an array of [user, assistant] "
        "pairs, present with `system` only when not empty); null once erased."
    )
    salt: str | None = Field(description="0x hex; null once erased.")
    record_hash: str | None = Field(description="Unsalted sha256 of the record; null once erased.")
    leaf: str
    discipline: str
    language: str
    task_type: str
    redactions: dict[str, int]
    status: str
    reasons: list[str]
    decision: dict[str, Any] | None
    erased_at: str | None = Field(None, description="When the record was erased, if it was.")


class GovernanceReportPublic(BaseModel):
    """A batch's governance report (``byr report --json``). Before governance only the batch and
    chain fields are present and ``governed`` is false."""

    model_config = ConfigDict(extra="allow")

    batch_id: str
    institution_id: str
    source: str
    governed: bool
    status: str
    records: int = Field(description="Records in the batch.")
    merkle_root: str
    anchor_tx_hash: str | None
    anchor_chain_id: int | None
    reward_tx_hash: str | None
    anchor_error: str | None
    policy_version: str | None = None
    accepted: int | None = None
    rejected: int | None = None
    reasons: dict[str, int] | None = Field(
        None, description="Reason code -> number of records it applies to."
    )
    redactions: dict[str, int] | None = None
    contribution_score: float | None = None
    reward_wei: str | None = None
    reward_byr: str | None = None
    decisions: list[dict[str, Any]] | None = Field(
        None,
        description="Per record: accepted, reasons, scores, flags with character spans and "
        "excerpts, duplicate_of, redactions, source_line.",
    )


# ---------------------------------------------------------------------------------------------
# status, balances, dispatch, verification
# ---------------------------------------------------------------------------------------------


class BatchSummaryPublic(BaseModel):
    """A batch in one line of ``byr status``."""

    batch_id: str
    institution_id: str
    source: str
    records: int
    accepted: int | None
    status: str
    tx_hash: str | None


class StatusPublic(BaseModel):
    head_position: int
    institutions: int
    batches_by_status: dict[str, int]
    records_by_status: dict[str, int]
    pending_jobs: dict[str, int]
    failed_jobs: dict[str, int]
    rewarded_wei_total: str
    training_runs_by_status: dict[str, int]
    projection_positions: dict[str, int]
    projection_lag: int = Field(
        description="Events the slowest projection has still to apply (head minus its position)."
    )
    batches: list[BatchSummaryPublic] = Field(description="Every batch, oldest first.")


class BalancePublic(BaseModel):
    account: str
    institution_id: str
    amount_wei: str
    rewards: int


class DispatchPublic(BaseModel):
    rounds: list[dict[str, Any]] = Field(
        description="One entry per round: what governance, anchoring and rewarding did."
    )


class CheckPublic(BaseModel):
    name: str
    ok: bool
    reason: str


class VerificationPublic(BaseModel):
    """A verification report: ``ok`` is true when every check passed."""

    ok: bool
    batch_id: str
    record_id: str | None
    root: str
    checks: list[CheckPublic]


class AnchorCheckPublic(BaseModel):
    name: str
    ok: bool
    detail: str


class BatchAnchorPublic(BaseModel):
    """A batch's anchor checked on the academic chain, step by step: ``ok`` is true when every
    check passed; each check says what was compared and, when it failed, what differed."""

    batch_id: str
    ok: bool
    checks: list[AnchorCheckPublic]
    chain_id: int
    contract_address: str
    tx_hash: str
    block_number: int | None

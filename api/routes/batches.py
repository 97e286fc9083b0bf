"""Corpus batches: submission (JSON records or a file), listing, records, governance report.

A submission goes through exactly the intake and recording path of ``byr submit``
(:meth:`api.services.submission.SubmissionService.submit_bytes`): the received bytes are handed
to it as a file named like the upload, so the CLI and the API record identical batches from
identical bytes.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import unicodedata
from dataclasses import dataclass
from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from api.deps import (
    AnyRole,
    ApiState,
    LedgerDep,
    PrincipalDep,
    StateDep,
    exclusive,
    require,
)
from api.errors import (
    BatchNotRecorded,
    UnsupportedUpload,
    UploadRejected,
    UploadTooLarge,
    error_responses,
    status_and_body,
)
from api.schemas import (
    AnchorCheckPublic,
    BatchAnchorPublic,
    BatchCreate,
    BatchPublic,
    GovernanceReportPublic,
    RecordPublic,
    SubmissionAccepted,
    SubmissionOptions,
    SubmissionPublic,
)
from api.services.governance_report import batch_report
from api.services.keys import NotAuthorized, Principal, Role
from api.services.submission import SubmissionReport
from api.submissions import SubmissionStatus, TrackedSubmission
from api.visibility import check_institution, record_for
from ingest.banks import ColumnMapping, ConversionOptions
from ingest.formats import source_label
from ingest.validation import DEFAULT_LIMITS
from ledger.audit.online import AnchorClaim, verify_batch_anchor

router = APIRouter(prefix="/batches", tags=["batches"])

#: Room for multipart framing and form fields on top of the largest batch intake reads.
_BODY_SLACK_BYTES = 1024 * 1024
_RAW_DEFAULT_NAME = "batch"
_MAX_NAME_BYTES = 200
#: A column mapping is a few field names and headers: anything larger or deeper is not one, and
#: the JSON decoder must never meet deep nesting (web3 raises the recursion limit).
_MAX_MAPPING_CHARS = 16 * 1024
_MAX_MAPPING_BRACKETS = 64
_CONVERSION_FIELDS = ("mapping", "sheet")
#: The form's fields: the file, the submission options and the question-bank options.
_MAX_FORM_FIELDS = 16


@dataclass(frozen=True, slots=True)
class Submission:
    """A batch as received: its bytes, the file name to record, and the submission options."""

    data: bytes
    source_name: str
    options: SubmissionOptions
    conversion: ConversionOptions | None = None
    """Question banks (CSV, TSV, XLSX, Parquet): the ``mapping`` and ``sheet`` form fields."""


def records_document(records: list[Any]) -> bytes:
    """``records`` as a JSON array with one item per line (item ``i`` starts on line ``i + 2``).

    ASCII escapes keep any string, even one intake will reject, encodable."""
    body = ",\n".join(json.dumps(item, ensure_ascii=True) for item in records)
    return f"[\n{body}\n]\n".encode("ascii")


def upload_name(name: str | None) -> str:
    """The last component of a submitted file name; raises :class:`UploadRejected` when nothing
    usable as a file name remains."""
    label = source_label(name or _RAW_DEFAULT_NAME)
    if (
        label in (".", "..")
        or len(label.encode("utf-8", "surrogatepass")) > _MAX_NAME_BYTES
        or any(unicodedata.category(c) in ("Cc", "Cs") for c in label)
    ):
        raise UploadRejected(
            "unusable file name: it needs a last component of at most 200 bytes, without"
            " control characters"
        )
    return label


def _validated(model: type[SubmissionOptions] | type[BatchCreate], data: Any, *, where: str) -> Any:
    try:
        if isinstance(data, bytes):
            return model.model_validate_json(data)
        return model.model_validate(data)
    except ValidationError as exc:
        raise RequestValidationError(
            [err | {"loc": (where, *err["loc"])} for err in exc.errors(include_url=False)]
        ) from None


def _check_declared_size(request: Request) -> None:
    declared = request.headers.get("content-length")
    limit = DEFAULT_LIMITS.max_batch_bytes + _BODY_SLACK_BYTES
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise UploadTooLarge(
            f"the request body ({declared} bytes) is larger than a batch may be "
            f"({DEFAULT_LIMITS.max_batch_bytes} bytes)"
        )


async def read_submission(
    request: Request,
    institution_id: Annotated[
        str | None, Query(description="File uploads: submitting institution id.")
    ] = None,
    discipline: Annotated[
        str | None, Query(description="File uploads: discipline for records that name none.")
    ] = None,
    strict: Annotated[
        bool | None, Query(description="File uploads: record nothing when any item is rejected.")
    ] = None,
    wait: Annotated[
        bool | None,
        Query(description="File uploads: carry the batch through governance, anchoring, reward."),
    ] = None,
    filename: Annotated[
        str | None, Query(description="Raw uploads: the file name to record (format hint).")
    ] = None,
) -> Submission:
    """Read a submission from a JSON body (:class:`BatchCreate`), a multipart form (``file`` part;
    options as form fields or query parameters) or a raw file body (options as query parameters)."""
    _check_declared_size(request)
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "application/json" or content_type.endswith("+json"):
        batch: BatchCreate = _validated(BatchCreate, await request.body(), where="body")
        return Submission(
            data=records_document(batch.records),
            source_name=upload_name(batch.source_name),
            options=SubmissionOptions(
                institution_id=batch.institution_id,
                discipline=batch.discipline,
                strict=batch.strict,
                wait=batch.wait,
            ),
        )
    query = {
        name: value
        for name, value in (
            ("institution_id", institution_id),
            ("discipline", discipline),
            ("strict", strict),
            ("wait", wait),
        )
        if value is not None
    }
    if content_type == "multipart/form-data":
        return await _read_multipart(request, query)
    if content_type == "application/x-www-form-urlencoded":
        raise UnsupportedUpload("send the batch as JSON, as a multipart file, or as the raw body")
    options = _validated(SubmissionOptions, query, where="query")
    return Submission(data=await request.body(), source_name=upload_name(filename), options=options)


async def _read_multipart(request: Request, query: dict[str, Any]) -> Submission:
    if importlib.util.find_spec("python_multipart") is None:
        raise UnsupportedUpload(
            "this server cannot read multipart forms (python-multipart is not installed); "
            "send the file as the raw request body with ?institution_id=...&filename=..."
        )
    try:
        form = await InMemoryMultiPartParser(
            request.headers, request.stream(), max_files=1, max_fields=_MAX_FORM_FIELDS
        ).parse()
    except MultiPartException as exc:
        # The parser's own message may quote the body, so only the rule is named.
        raise UploadRejected(
            "the multipart body is malformed or has more than one file or too many fields"
            " (boundaries, part headers or encoding)"
        ) from exc
    try:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise UploadRejected("the multipart form has no file part named 'file'")
        fields = {k: v for k, v in form.items() if k != "file" and isinstance(v, str)}
        conversion = conversion_options(
            mapping=fields.pop("mapping", None), sheet=fields.pop("sheet", None)
        )
        options = _validated(SubmissionOptions, query | fields, where="form")
        data = await upload.read(DEFAULT_LIMITS.max_batch_bytes + 1)
        return Submission(
            data=data,
            source_name=upload_name(upload.filename),
            options=options,
            conversion=conversion,
        )
    finally:
        await form.close()


def conversion_options(*, mapping: str | None, sheet: str | None) -> ConversionOptions | None:
    """The question-bank options of the ``mapping`` (a JSON object of field to column header) and
    ``sheet`` form fields, ``None`` when neither is sent. Raises :class:`UploadRejected` for a
    ``mapping`` that is not a JSON object, and ``InvalidMapping`` (422) for one naming an unknown
    field; neither message repeats what was sent."""
    if mapping is None and sheet is None:
        return None
    column_mapping = None
    if mapping is not None:
        if (
            len(mapping) > _MAX_MAPPING_CHARS
            or mapping.count("[") + mapping.count("{") > _MAX_MAPPING_BRACKETS
        ):
            raise UploadRejected(
                f"form field 'mapping': a column mapping is at most {_MAX_MAPPING_CHARS} "
                "characters of JSON, one object of field to column header"
            )
        try:
            document = json.loads(mapping)
        except ValueError:
            raise UploadRejected(
                "form field 'mapping': not JSON; expected an object of field to column header, "
                'e.g. {"instruction": "题目", "output": "答案"}'
            ) from None
        column_mapping = ColumnMapping.from_document(document, where="form field 'mapping'")
    if sheet is not None and not sheet.strip():
        raise UploadRejected("form field 'sheet': empty; leave it out to read every sheet")
    return ConversionOptions(mapping=column_mapping, sheet=sheet)


class InMemoryMultiPartParser(MultiPartParser):
    """Starlette's multipart parser with the file part kept in memory up to the largest batch.

    Starlette spools a file part larger than 1 MB to a temporary file; a batch holds personal data
    until intake has desensitized it, so no part of it may reach the disk. The size is bounded by
    the body guard in front of every route and by the read of the part below."""

    spool_max_size = DEFAULT_LIMITS.max_batch_bytes + _BODY_SLACK_BYTES


SubmissionDep = Annotated[Submission, Depends(read_submission)]


async def submit(
    state: ApiState,
    submission: Submission,
    who: Principal,
    item: TrackedSubmission | None = None,
) -> SubmissionReport:
    """Submit received bytes through the same two steps as ``byr submit``: intake (validation
    and desensitization, the slow part) one at a time, outside the writer's turn and in a worker
    process (:mod:`api.intake_pool`), so reads, status and other writers go on meanwhile; then
    recording. On the embedded SQLite log the worker records the batch too and the server only
    catches up (and, with ``wait``, drains the pipeline) in the writer's turn; otherwise the
    server records it there. The batch records the key it came with."""
    options = submission.options
    if not who.owns(options.institution_id):
        raise NotAuthorized("a contributor key submits for its own institution only")
    service = state.parts.submission
    await run_in_threadpool(service.ledger.institution, options.institution_id)
    pool = state.parts.intake_pool
    if pool is not None and pool.records:
        async with state.intake_lock:
            report = await pool.submit(
                submission.data,
                source_name=submission.source_name,
                institution_id=options.institution_id,
                discipline=options.discipline,
                conversion=submission.conversion,
                strict=options.strict,
                submitted_by=who.attribution,
            )
        if item is not None:
            item.status = SubmissionStatus.RECORDING
        async with exclusive(state):
            return await run_in_threadpool(partial(service.complete, report, wait=options.wait))
    async with state.intake_lock:
        if pool is not None:
            intake = await pool.read(
                submission.data,
                source_name=submission.source_name,
                institution_id=options.institution_id,
                discipline=options.discipline,
                limits=service.limits,
                conversion=submission.conversion,
            )
        else:
            intake = await run_in_threadpool(
                partial(
                    service.read_bytes,
                    submission.data,
                    source_name=submission.source_name,
                    institution_id=options.institution_id,
                    discipline=options.discipline,
                    conversion=submission.conversion,
                )
            )
    if item is not None:
        item.status = SubmissionStatus.RECORDING
    async with exclusive(state):
        outcome = await run_in_threadpool(
            service.record,
            intake,
            institution_id=options.institution_id,
            strict=options.strict,
            wait=options.wait,
            submitted_by=who.attribution,
        )
    return outcome.report()


def recorded(report: SubmissionReport) -> SubmissionPublic:
    """The submission document, or ``BatchNotRecorded`` with every issue."""
    if report.batch_id is None:
        raise BatchNotRecorded(f"nothing recorded: {report.summary}", issues=report.issues)
    return SubmissionPublic.model_validate(report.document)


async def submit_later(
    state: ApiState, item: TrackedSubmission, submission: Submission, who: Principal
) -> None:
    """A submission answered 202: run it, and keep what the synchronous answer would have been."""
    try:
        item.status = SubmissionStatus.READING
        result = recorded(await submit(state, submission, who, item))
        state.submissions.finish(item, http_status=201, result=result.model_dump(mode="json"))
    except Exception as exc:  # every outcome is reported through the status URL
        status, body = status_and_body(exc)
        state.submissions.finish(item, http_status=status, result=body)


_BACKGROUND: set[asyncio.Task[None]] = set()
"""Submissions running after their 202 (referenced, so they are not collected mid-way)."""


_UPLOAD_BODY_DOC: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": BatchCreate.model_json_schema()},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {"type": "string", "format": "binary"},
                        "institution_id": {"type": "string"},
                        "discipline": {"type": "string"},
                        "strict": {"type": "boolean"},
                        "wait": {"type": "boolean"},
                        "mapping": {
                            "type": "string",
                            "description": "Question banks (CSV, TSV, XLSX, Parquet): a JSON "
                            "object of field to column header, e.g. "
                            '{"instruction": "题目", "answer": "答案", "options": ["A", "B"]}.',
                        },
                        "sheet": {
                            "type": "string",
                            "description": "XLSX workbooks: read only this sheet.",
                        },
                    },
                }
            },
            "application/x-ndjson": {"schema": {"type": "string", "format": "binary"}},
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
        },
    }
}


@router.post(
    "",
    status_code=201,
    dependencies=[require(Role.CONTRIBUTOR)],
    openapi_extra=_UPLOAD_BODY_DOC,
    responses={
        **error_responses(401, 403, 404, 413, 415, 422, 503),
        202: {
            "description": "With `Prefer: respond-async`: accepted; poll the status URL "
            "(`Location`, `status_url`).",
            "model": SubmissionAccepted,
        },
    },
)
async def submit_batch(
    submission: SubmissionDep,
    state: StateDep,
    who: PrincipalDep,
    prefer: Annotated[
        str | None,
        Header(description="`respond-async`: answer 202 at once and record the batch after."),
    ] = None,
) -> Any:
    """Validate, desensitize and record a batch (``byr submit``).

    201 when a batch was recorded; ``issues`` lists every rejected item with its line, index and
    field (the batch holds the valid ones). 422 ``BatchNotRecorded`` with the same issues when
    nothing valid remains, or with ``strict`` when any item was rejected. With ``wait`` the batch
    is governed, anchored and rewarded before the answer (governance loads its models on first
    use, which takes a while). With ``Prefer: respond-async`` the answer is 202 at once, with a
    status URL that holds this same outcome once it is known."""
    if prefer is not None and "respond-async" in prefer.lower():
        if not who.owns(submission.options.institution_id):
            raise NotAuthorized("a contributor key submits for its own institution only")
        item = state.submissions.start(
            institution_id=submission.options.institution_id,
            key_id=who.attribution,
            source_name=submission.source_name,
        )
        task = asyncio.create_task(submit_later(state, item, submission, who))
        _BACKGROUND.add(task)
        task.add_done_callback(_BACKGROUND.discard)
        accepted = SubmissionAccepted(**item.to_dict())
        return JSONResponse(
            accepted.model_dump(mode="json"),
            status_code=202,
            headers={"Location": accepted.status_url, "Preference-Applied": "respond-async"},
        )
    return recorded(await submit(state, submission, who))


@router.get("", dependencies=[AnyRole], responses=error_responses(401, 403))
def list_batches(
    ledger: LedgerDep,
    who: PrincipalDep,
    institution_id: Annotated[str | None, Query(description="Only this institution's.")] = None,
) -> list[BatchPublic]:
    """Every batch, oldest first (a contributor's own only)."""
    if who.role is Role.CONTRIBUTOR:
        if institution_id is not None:
            check_institution(who, institution_id)
        institution_id = who.institution_id
    return [BatchPublic(**v.to_dict()) for v in ledger.batches(institution_id=institution_id)]


@router.get("/{batch_id}", dependencies=[AnyRole], responses=error_responses(401, 403, 404))
def read_batch(batch_id: str, ledger: LedgerDep, who: PrincipalDep) -> BatchPublic:
    """One batch: Merkle root, manifest, status, governance totals, anchor and reward."""
    batch = ledger.batch(batch_id)
    check_institution(who, batch.institution_id)
    return BatchPublic(**batch.to_dict())


@router.get("/{batch_id}/records", dependencies=[AnyRole], responses=error_responses(401, 403, 404))
def list_records(
    batch_id: str,
    ledger: LedgerDep,
    who: PrincipalDep,
    status: Annotated[
        str | None, Query(description="Only records in this status (pending, accepted, ...).")
    ] = None,
) -> list[RecordPublic]:
    """The batch's records in tree order; texts, salts and hashes for the owner only."""
    batch = ledger.batch(batch_id)  # 404 for an unknown batch rather than an empty list
    check_institution(who, batch.institution_id)
    return [
        RecordPublic(**record_for(r, who, batch.institution_id).to_dict())
        for r in ledger.records(batch_id, status=status)
    ]


@router.get("/{batch_id}/report", dependencies=[AnyRole], responses=error_responses(401, 403, 404))
def read_report(batch_id: str, ledger: LedgerDep, who: PrincipalDep) -> GovernanceReportPublic:
    """The batch's governance report (``byr report``): per-record decisions, scores, flags,
    reason and redaction counts, the reward, and the anchor; excerpts of the flagged text for the
    owner only. Before governance ``governed`` is false and only the batch and chain fields are
    present."""
    batch = ledger.batch(batch_id)
    check_institution(who, batch.institution_id)
    report = batch_report(ledger, batch_id, with_texts=who.owns(batch.institution_id))
    return GovernanceReportPublic.model_validate(report)


@router.get(
    "/{batch_id}/anchor",
    dependencies=[require(Role.AUDITOR, Role.ADMIN, Role.CONTRIBUTOR)],
    responses=error_responses(401, 403, 404, 409, 502, 503),
)
async def check_anchor(batch_id: str, state: StateDep, who: PrincipalDep) -> BatchAnchorPublic:
    """The batch's anchor checked on the academic chain: the contract's code at the recorded
    address, the anchoring transaction's receipt (mined, succeeded, on the recorded chain and
    block), its ``BatchAnchored`` event (the batch, the Merkle root, the metadata hash) and the
    root the contract stores for the batch, each compared with what the ledger recorded. 200 with
    ``ok`` false names the failing checks; 409 ``BatchNotAnchored`` before the batch is anchored.
    Auditors, admins and the owning institution."""
    batch = await run_in_threadpool(state.parts.ledger.batch, batch_id)
    check_institution(who, batch.institution_id)
    claim = AnchorClaim.of_batch(batch)
    async with exclusive(state) as parts:
        academic = await run_in_threadpool(parts.academic_at, claim.contract_address)
        checks = await run_in_threadpool(partial(verify_batch_anchor, claim, academic=academic))
    return BatchAnchorPublic(
        batch_id=batch.batch_id,
        ok=bool(checks) and all(c.ok for c in checks),
        checks=[AnchorCheckPublic(name=c.name, ok=c.ok, detail=c.reason) for c in checks],
        chain_id=batch.chain_id,
        contract_address=batch.contract_address,
        tx_hash=batch.tx_hash,
        block_number=batch.block_number,
    )

"""Field rules for submitted records, and duplicate detection inside one batch.

Accepted fields of a submitted object:

=============  ========  =====================================================================
field          required  rule
=============  ========  =====================================================================
instruction    yes [2]_  non-empty string
output         yes [2]_  non-empty string
input          no        string, may be empty; ``null`` means empty
system         no        string, the system prompt; empty or ``null`` means none
history        no        array of ``[user, assistant]`` pairs of non-empty strings, the turns
                         before the last one; empty or ``null`` means none
conversations  [2]_      ShareGPT turns ``{"from": tag, "value": text}``
messages       [2]_      OpenAI-style turns ``{"role": role, "content": text}``
discipline     yes [1]_  a :class:`~ingest.records.Discipline` value or human name (English/Chinese)
task_type      no        a :class:`~ingest.records.TaskType` value or name; default ``knowledge_qa``
license        no        one SPDX-style identifier such as ``CC-BY-4.0``; default ``CC-BY-4.0``
=============  ========  =====================================================================

.. [1] unless the batch has a default discipline. ``null`` means "not given" in optional fields.
.. [2] an item gives its texts in one of three shapes: Alpaca (``instruction``, ``input``,
   ``output``, ``system``, ``history``), ShareGPT (``conversations``) or OpenAI style
   (``messages``), each with an optional ``system``. The turn rules and how every shape becomes
   one canonical record are in :mod:`ingest.dialogue`; every turn is a text field here (same
   normalization, same length limit), and :attr:`IntakeLimits.max_turns` bounds their number.

Any other field is an ``unknown_field`` **warning**: it is dropped and the record is kept, because
exports often carry extra keys (``id``, ``category``, ``tags``). ``language`` and
``institution_id`` are such fields too: intake computes the first and takes the second from the
submitting institution.

Texts are stored with surrounding whitespace removed, ``\\r\\n`` turned into ``\\n`` and every
format character (Unicode category Cf, :data:`FORMAT_CHARACTERS`) removed, before the desensitizer
reads them and before anything is hashed. Format characters are invisible or change how the text
around them is displayed: bidi embedding, override and isolate controls (U+202A-U+202E,
U+2066-U+2069) and marks (U+200E, U+200F, U+061C) make a stored text display differently from what
it holds; zero-width spaces and joiners (U+200B-U+200D), the word joiner (U+2060), the BOM (U+FEFF)
and the soft hyphen (U+00AD) split a word or a number without showing, so that two texts that read
the same do not compare equal (exact and near-duplicate detection miss them) and a value escapes a
pattern; tag characters (U+E0020-U+E007F) spell ASCII text that no one sees but a tokenizer reads.
None is kept, not even the zero-width joiner of emoji sequences: this corpus is Chinese and English
teaching text, where no word needs a joiner (unlike Persian or Indic scripts), and inside an emoji
sequence a joiner only draws as one glyph what its parts already say (man, laptop: technologist).
The few visible format characters (Arabic, Syriac and Kaithi number signs, Egyptian hieroglyph
format controls) belong to scripts this corpus does not hold. Variation selectors (which pick CJK
ideograph variants and emoji presentation) and line or paragraph separators are not format
characters and stay. Lengths are counted in characters after that. A text holding NUL (U+0000) is
rejected (``nul_character``) rather than cleaned: a NUL in a text field usually means binary
content pasted or converted by mistake, which the submitter should look at. Two records are
duplicates when all their texts (system prompt, earlier turns, instruction, input and output) are
equal after NFKC normalization, case folding and collapsing whitespace; the later one is reported.

Messages say where, never what. An issue names the file, line, index, field and the rule broken;
it never repeats submitted text, because issues are stored in the event log (which is immutable)
and served by the API, and a bad value is as likely as any other to be personal data. Where it
helps, a message lists the *accepted* values instead. A field name is submitter text too: an
unknown field is named (in the message and in ``IntakeIssue.field``) only when its name is one of
:data:`NAMED_EXTRA_FIELDS`, a fixed list of keys that common exports carry; any other unknown field
is counted, one issue per record, without its name. A pattern such as ``^[A-Za-z_]\\w{0,40}$`` was
not used for this: a romanized name (``zhang_san``) or an account token matches it. The same holds
for repeated keys. Messages may show one byte or UTF-16 code unit that is *not* text (an invalid
UTF-8 byte, an unpaired surrogate): it says which encoding problem the file has and cannot spell a
value.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ingest.dialogue import Dialogue, read_dialogue
from ingest.errors import InvalidIntakeArgument
from ingest.formats import BatchFormat, ParsedBatch, RawItem, json_type_name, make_issue
from ingest.records import (
    DEFAULT_LICENSE,
    DEFAULT_TASK_TYPE,
    WARNING_CODES,
    Discipline,
    IntakeIssue,
    IssueCode,
    Severity,
    TaskType,
)

TEXT_FIELDS = ("instruction", "input", "output")
ACCEPTED_FIELDS = (
    *TEXT_FIELDS,
    "system",
    "history",
    "conversations",
    "messages",
    "discipline",
    "task_type",
    "license",
)
_ACCEPTED_LIST = ", ".join(ACCEPTED_FIELDS)
NAMED_EXTRA_FIELDS: dict[str, str] = {
    "language": "intake detects the language itself",
    "institution_id": "the institution is the one that submits the batch",
    **{
        name: f"accepted fields are {_ACCEPTED_LIST}"
        for name in ("id", "category", "source", "tags", "metadata", "text")
    },
}
"""Unknown fields that messages name, with why they are ignored. These names are ours, not the
submitter's: any other unknown field is counted without its name (see the module docstring)."""
_LICENSE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.+\-]{0,63}$")
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
FORMAT_CHARACTERS = re.compile(
    "[\u00ad\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u180e\u200b-\u200f"
    "\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb\U000110bd\U000110cd"
    "\U00013430-\U00013438\U0001bca0-\U0001bca3\U0001d173-\U0001d17a\U000e0001"
    "\U000e0020-\U000e007f]"
)
"""The format characters (category Cf) of Unicode 14.0, which texts are stored without. A fixed
list rather than the running Python's Unicode data, so that what a stored text may hold does not
change with the interpreter."""
_FIELD_SPELLING = re.compile(r"[\s\-]+")
_NAMES_WITHHELD = "names not repeated: a field name may be personal data"


@dataclass(frozen=True, slots=True)
class IntakeLimits:
    """Size limits applied at intake. Lengths are in characters, sizes in bytes."""

    max_field_chars: int = 8_000
    """Longest instruction, input or output, system prompt or turn."""
    max_record_chars: int = 16_000
    """Longest record: every text of it together (instruction, input, output, and for a
    multi-turn record the system prompt and every earlier turn)."""
    max_records: int = 100_000
    """Most items read from one batch."""
    max_batch_bytes: int = 64 * 1024 * 1024
    """Largest batch file."""
    max_turns: int = 64
    """Most user and assistant turns in one record, the last two included (the system prompt is
    not counted): 32 exchanges."""

    def __post_init__(self) -> None:
        for name in ("max_field_chars", "max_record_chars", "max_records", "max_batch_bytes"):
            if getattr(self, name) <= 0:
                raise InvalidIntakeArgument(f"IntakeLimits.{name} must be positive")
        if self.max_field_chars > self.max_record_chars:
            raise InvalidIntakeArgument(
                "IntakeLimits.max_field_chars cannot exceed max_record_chars"
            )
        if self.max_turns < 2:
            raise InvalidIntakeArgument(
                "IntakeLimits.max_turns must allow a question and its answer (at least 2)"
            )


DEFAULT_LIMITS = IntakeLimits()


@dataclass(frozen=True, slots=True)
class ValidItem:
    """A submitted object that passed every field rule (texts normalized, not yet desensitized),
    in the canonical shape whatever shape it was submitted in (see :mod:`ingest.dialogue`)."""

    line: int
    index: int
    instruction: str
    input: str
    output: str
    discipline: Discipline
    task_type: TaskType
    license: str
    system: str = ""
    history: tuple[tuple[str, str], ...] = ()

    def texts(self) -> tuple[str, ...]:
        """Every text: the system prompt, each earlier turn, instruction, input, output."""
        return Dialogue(
            instruction=self.instruction,
            input=self.input,
            output=self.output,
            system=self.system,
            history=self.history,
        ).texts()

    def duplicate_key(self) -> tuple[str, ...]:
        """What an in-batch duplicate of this item shares with it (:func:`duplicate_key`)."""
        return duplicate_key(
            self.instruction, self.input, self.output, system=self.system, history=self.history
        )


@dataclass(frozen=True, slots=True)
class ValidatedBatch:
    """Valid items in file order, and every issue of the batch ordered by line."""

    items: tuple[ValidItem, ...]
    issues: tuple[IntakeIssue, ...]


def normalize_text(text: str) -> str:
    """The stored form of a text: format characters (:data:`FORMAT_CHARACTERS`: zero-width spaces
    and joiners, the word joiner, the BOM, the soft hyphen, bidi controls, tag characters...) and
    NUL removed; ``\\r\\n`` and ``\\r`` become ``\\n``; outer spaces removed.

    Intake rejects a text with NUL before it gets here; removing it too keeps this function safe
    for texts from elsewhere (a desensitizer's output)."""
    text = FORMAT_CHARACTERS.sub("", text).replace("\0", "")
    return text.replace("\r\n", "\n").replace("\r", "\n").strip()


def duplicate_key(
    instruction: str,
    input: str,
    output: str,
    *,
    system: str = "",
    history: tuple[tuple[str, str], ...] = (),
) -> tuple[str, ...]:
    """What duplicates share: their texts after NFKC, case folding and collapsing whitespace.
    A single-turn record's key is its three folded texts; a multi-turn record's key adds the
    system prompt and every earlier turn."""

    def fold(text: str) -> str:
        return " ".join(unicodedata.normalize("NFKC", text).casefold().split())

    key = (fold(instruction), fold(input), fold(output))
    if not system and not history:
        return key
    return (*key, fold(system), *(fold(text) for pair in history for text in pair))


class _ItemCheck:
    """Collects the issues of one item while its fields are read."""

    def __init__(self, item: RawItem, *, source: str, fmt: BatchFormat, limits: IntakeLimits):
        self.item = item
        self.source = source
        self.fmt = fmt
        self.limits = limits
        self.issues: list[IntakeIssue] = []

    def add(self, code: IssueCode, detail: str, *, field: str | None = None) -> None:
        self.issues.append(
            make_issue(
                source=self.source,
                fmt=self.fmt,
                line=self.item.line,
                index=self.item.index,
                code=code,
                detail=detail,
                field=field,
                severity=Severity.WARNING if code in WARNING_CODES else Severity.ERROR,
            )
        )

    @property
    def failed(self) -> bool:
        return any(issue.is_error for issue in self.issues)

    def text(
        self, obj: Mapping[str, Any], name: str, *, required: bool, field: str | None = None
    ) -> str | None:
        """The normalized text of key ``name`` of ``obj``; ``None`` (with an issue) when it is
        unusable. Issues name ``field`` (default: ``name``), the key's path in the item."""
        field = field or name
        if name not in obj or (obj[name] is None and not required):
            if required:
                self.add(IssueCode.MISSING_FIELD, "required field is missing", field=field)
                return None
            return ""
        value = obj[name]
        if not isinstance(value, str):
            self.add(
                IssueCode.WRONG_TYPE, f"expected a string, got {json_type_name(value)}", field=field
            )
            return None
        surrogate = _LONE_SURROGATE.search(value)
        if surrogate is not None:
            self.add(
                IssueCode.NOT_UTF8,
                f"contains an unpaired surrogate (\\u{ord(surrogate.group()):04x}) at character "
                f"{surrogate.start()}, which is not valid Unicode text",
                field=field,
            )
            return None
        nul = value.find("\0")
        if nul >= 0:
            self.add(
                IssueCode.NUL_CHARACTER,
                f"contains a NUL character (U+0000) at character {nul}; text fields may not hold "
                "NUL, which usually means binary content",
                field=field,
            )
            return None
        text = normalize_text(value)
        if required and not text:
            self.add(IssueCode.EMPTY_FIELD, "must not be empty", field=field)
            return None
        if len(text) > self.limits.max_field_chars:
            self.add(
                IssueCode.TOO_LONG,
                f"has {len(text)} characters, more than the limit of {self.limits.max_field_chars}",
                field=field,
            )
            return None
        return text

    def word(self, obj: dict[str, Any], name: str) -> str | None:
        """An optional short string field without format characters: ``None`` when not given or
        unusable."""
        value = obj.get(name)
        if value is None:
            return None
        if not isinstance(value, str):
            self.add(
                IssueCode.WRONG_TYPE, f"expected a string, got {json_type_name(value)}", field=name
            )
            return None
        value = FORMAT_CHARACTERS.sub("", value).strip()
        if not value:
            self.add(IssueCode.EMPTY_FIELD, "must not be empty when given", field=name)
            return None
        return value


def validate_item(
    item: RawItem,
    *,
    source: str,
    fmt: BatchFormat,
    limits: IntakeLimits,
    default_discipline: Discipline | None = None,
) -> tuple[ValidItem | None, list[IntakeIssue]]:
    """Apply the field rules to one decoded item: the valid item (or ``None``) and its issues."""
    check = _ItemCheck(item, source=source, fmt=fmt, limits=limits)
    obj = item.value
    if not isinstance(obj, dict):
        check.add(IssueCode.NOT_AN_OBJECT, f"expected a JSON object, got {json_type_name(obj)}")
        return None, check.issues

    _check_keys(check, obj, item.duplicate_keys)

    dialogue = read_dialogue(check, obj)

    discipline = default_discipline
    discipline_name = check.word(obj, "discipline")
    if discipline_name is not None:
        discipline = Discipline.lookup(discipline_name)
        if discipline is None:
            accepted = ", ".join(d.value for d in Discipline)
            check.add(
                IssueCode.UNKNOWN_DISCIPLINE,
                f"unknown discipline; expected one of {accepted} "
                "(or their English or Chinese names)",
                field="discipline",
            )
    elif obj.get("discipline") is None and default_discipline is None:
        check.add(
            IssueCode.MISSING_FIELD,
            "required field is missing (and the batch has no default discipline)",
            field="discipline",
        )

    task_type: TaskType | None = DEFAULT_TASK_TYPE
    task_name = check.word(obj, "task_type")
    if task_name is not None:
        task_type = TaskType.lookup(task_name)
        if task_type is None:
            accepted = ", ".join(t.value for t in TaskType)
            check.add(
                IssueCode.UNKNOWN_TASK_TYPE,
                f"unknown task type; expected one of {accepted} "
                "(or their English or Chinese names)",
                field="task_type",
            )

    license_id: str | None = DEFAULT_LICENSE
    license_name = check.word(obj, "license")
    if license_name is not None:
        license_id = license_name
        if not _LICENSE.match(license_name):
            license_id = None
            check.add(
                IssueCode.INVALID_LICENSE,
                "not a license identifier: expected one SPDX-style id such as "
                f"{DEFAULT_LICENSE} (letters, digits, '.', '+' and '-', at most 64 characters)",
                field="license",
            )

    if dialogue is not None:
        total = sum(len(text) for text in dialogue.texts())
        if total > limits.max_record_chars:
            where = (
                "its texts (system prompt and every turn)"
                if dialogue.multi_turn
                else "instruction, input and output"
            )
            check.add(
                IssueCode.TOO_LONG,
                f"record has {total} characters in {where}, more than the limit of "
                f"{limits.max_record_chars}",
            )

    if (
        check.failed
        or dialogue is None
        or discipline is None
        or task_type is None
        or license_id is None
    ):
        return None, check.issues
    valid = ValidItem(
        line=item.line,
        index=item.index,
        instruction=dialogue.instruction,
        input=dialogue.input,
        output=dialogue.output,
        discipline=discipline,
        task_type=task_type,
        license=license_id,
        system=dialogue.system,
        history=dialogue.history,
    )
    return valid, check.issues


def _check_keys(check: _ItemCheck, obj: dict[str, Any], repeated: tuple[str, ...]) -> None:
    """Issues for repeated and unknown keys, naming only keys from our own vocabularies."""
    unnamed_repeats = 0
    for key in repeated:
        if key in ACCEPTED_FIELDS or key in NAMED_EXTRA_FIELDS:
            check.add(IssueCode.DUPLICATE_KEY, "appears more than once in the object", field=key)
        else:
            unnamed_repeats += 1
    if unnamed_repeats:
        check.add(
            IssueCode.DUPLICATE_KEY,
            f"{_count(unnamed_repeats, 'field')} other than the accepted ones "
            f"{'appears' if unnamed_repeats == 1 else 'appear'} more than once in the object "
            f"({_NAMES_WITHHELD})",
        )
    unnamed: list[str] = []
    for key in obj:
        if key in ACCEPTED_FIELDS:
            continue
        why = NAMED_EXTRA_FIELDS.get(key)
        if why is None:
            unnamed.append(key)
        else:
            check.add(IssueCode.UNKNOWN_FIELD, f"unknown field, ignored ({why})", field=key)
    if unnamed:
        detail = f"{_count(len(unnamed), 'unknown field')} ignored ({_NAMES_WITHHELD})"
        lookalikes = sorted(
            {spelled for spelled in map(_accepted_spelling, unnamed) if spelled is not None},
            key=ACCEPTED_FIELDS.index,
        )
        if lookalikes:
            detail += (
                f"; among them, {', '.join(lookalikes)} written in another case or with spaces "
                "or dashes"
            )
        check.add(IssueCode.UNKNOWN_FIELD, f"{detail}; accepted fields are {_ACCEPTED_LIST}")


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'s' if n != 1 else ''}"


def _accepted_spelling(key: str) -> str | None:
    """The accepted field ``key`` is a variant of (``"Instruction"``, ``"task-type"``), if any."""
    folded = _FIELD_SPELLING.sub("_", key.strip().casefold())
    return folded if folded in ACCEPTED_FIELDS else None


def validate_batch(
    parsed: ParsedBatch,
    *,
    limits: IntakeLimits,
    default_discipline: Discipline | None = None,
) -> ValidatedBatch:
    """Validate every item of ``parsed`` and drop in-batch duplicates (the later copy is reported,
    naming the line of the first)."""
    issues = list(parsed.issues)
    valid: list[ValidItem] = []
    first_seen: dict[tuple[str, ...], ValidItem] = {}
    for item in parsed.items:
        checked, item_issues = validate_item(
            item,
            source=parsed.source,
            fmt=parsed.format,
            limits=limits,
            default_discipline=default_discipline,
        )
        issues.extend(item_issues)
        if checked is None:
            continue
        key = checked.duplicate_key()
        first = first_seen.get(key)
        if first is not None:
            issues.append(
                make_issue(
                    source=parsed.source,
                    fmt=parsed.format,
                    line=checked.line,
                    index=checked.index,
                    code=IssueCode.DUPLICATE_IN_BATCH,
                    detail=(
                        "same turns, system prompt, instruction, input and output as "
                        if checked.system or checked.history
                        else "same instruction, input and output as "
                    )
                    + _first_location(first, parsed.format),
                )
            )
            continue
        first_seen[key] = checked
        valid.append(checked)
    issues.sort(key=lambda issue: issue.line if issue.line is not None else 0)
    return ValidatedBatch(items=tuple(valid), issues=tuple(issues))


def _first_location(first: ValidItem, fmt: BatchFormat) -> str:
    if fmt is BatchFormat.JSON:
        return f"line {first.line} (index {first.index})"
    return f"line {first.line}"

"""The three shapes a submitted record can take, and the turn rules that bring each to one record.

Each item of a batch is read by its keys:

* **ShareGPT**: ``conversations``, a list of ``{"from": tag, "value": text}`` turns. Tags as
  LLaMA-Factory reads them: ``human`` or ``user``; ``gpt``, ``assistant`` or ``model``; ``system``.
* **OpenAI style**: ``messages``, a list of ``{"role": role, "content": text}`` turns, roles
  ``system``, ``user`` and ``assistant``.
* **Alpaca** (anything else): ``instruction``, ``input``, ``output``, and optionally ``system`` and
  ``history``, a list of ``[user, assistant]`` pairs of the turns before the last one (the layout
  LLaMA-Factory documents).

ShareGPT and OpenAI-style turns start with an optional system turn, then alternate user and
assistant and end with an assistant turn; a top-level ``system`` string may stand in for the system
turn (not both). All three become the same :class:`Dialogue`: the last user turn is the
``instruction`` (``input`` is empty), the last assistant turn the ``output``, earlier exchanges the
``history``, the system prompt ``system``. An empty ``system`` and an empty ``history`` mean none,
as in the Alpaca files LLaMA-Factory and our own exports write.

Issues name the field as the submitted file spells it (``conversations[3].from``,
``history[1][0]``) and never repeat a turn's text or an unknown tag (see :mod:`ingest.validation`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol

from ingest.formats import json_type_name
from ingest.records import IssueCode

if TYPE_CHECKING:
    from ingest.validation import IntakeLimits


class Role(StrEnum):
    SYSTEM = "system"
    USER = "user"
    ASSISTANT = "assistant"


class RecordShape(StrEnum):
    """How a submitted item gives its texts."""

    ALPACA = "alpaca"
    SHAREGPT = "sharegpt"
    MESSAGES = "messages"


@dataclass(frozen=True, slots=True)
class TurnFormat:
    """Where a shape keeps its turns and how a turn names its role and text."""

    container: str
    role_key: str
    content_key: str
    roles: Mapping[str, Role]


SHAREGPT = TurnFormat(
    container="conversations",
    role_key="from",
    content_key="value",
    roles={
        "human": Role.USER,
        "user": Role.USER,
        "gpt": Role.ASSISTANT,
        "assistant": Role.ASSISTANT,
        "model": Role.ASSISTANT,
        "system": Role.SYSTEM,
    },
)
MESSAGES = TurnFormat(
    container="messages",
    role_key="role",
    content_key="content",
    roles={"system": Role.SYSTEM, "user": Role.USER, "assistant": Role.ASSISTANT},
)
TURN_FORMATS: dict[RecordShape, TurnFormat] = {
    RecordShape.SHAREGPT: SHAREGPT,
    RecordShape.MESSAGES: MESSAGES,
}


@dataclass(frozen=True, slots=True)
class Dialogue:
    """The texts of one record, normalized, in the canonical shape."""

    instruction: str
    input: str
    output: str
    system: str = ""
    history: tuple[tuple[str, str], ...] = ()

    def texts(self) -> tuple[str, ...]:
        """Every text: the system prompt, each earlier turn, instruction, input, output."""
        earlier = tuple(text for pair in self.history for text in pair)
        return (self.system, *earlier, self.instruction, self.input, self.output)

    @property
    def multi_turn(self) -> bool:
        """Whether the record has more than instruction, input and output."""
        return bool(self.system or self.history)


class ItemCheck(Protocol):
    """What the turn rules need from the item being checked (:mod:`ingest.validation`)."""

    @property
    def limits(self) -> IntakeLimits: ...

    def add(self, code: IssueCode, detail: str, *, field: str | None = None) -> None: ...

    def text(
        self, obj: Mapping[str, Any], name: str, *, required: bool, field: str | None = None
    ) -> str | None: ...


def detect_shape(obj: Mapping[str, Any]) -> RecordShape:
    """The shape of an item: ShareGPT when it has ``conversations``, OpenAI style when it has
    ``messages`` (``null`` counts as absent), Alpaca otherwise."""
    if obj.get("conversations") is not None:
        return RecordShape.SHAREGPT
    if obj.get("messages") is not None:
        return RecordShape.MESSAGES
    return RecordShape.ALPACA


def read_dialogue(check: ItemCheck, obj: Mapping[str, Any]) -> Dialogue | None:
    """The dialogue of an item in any shape, or ``None`` (with issues) when its texts or turns
    break a rule."""
    shape = detect_shape(obj)
    mixed = _mixed_shapes(check, obj, shape)
    if shape is RecordShape.ALPACA:
        dialogue = _read_alpaca(check, obj)
    else:
        dialogue = _read_turns(check, obj, TURN_FORMATS[shape])
    return None if mixed else dialogue


def _mixed_shapes(check: ItemCheck, obj: Mapping[str, Any], shape: RecordShape) -> bool:
    if shape is RecordShape.ALPACA:
        return False
    container = TURN_FORMATS[shape].container
    mixed = False
    if shape is RecordShape.SHAREGPT and obj.get("messages") is not None:
        check.add(
            IssueCode.CONFLICTING_FIELDS,
            "an item gives its turns in conversations (ShareGPT) or in messages (OpenAI style), "
            "not in both",
            field="messages",
        )
        mixed = True
    for name in ("instruction", "input", "output", "history"):
        if obj.get(name) not in (None, "", []):
            check.add(
                IssueCode.CONFLICTING_FIELDS,
                f"{name} belongs to Alpaca-style records; an item with {container} gives every "
                "turn there",
                field=name,
            )
            mixed = True
    return mixed


def _read_alpaca(check: ItemCheck, obj: Mapping[str, Any]) -> Dialogue | None:
    instruction = check.text(obj, "instruction", required=True)
    input_text = check.text(obj, "input", required=False)
    output = check.text(obj, "output", required=True)
    system = check.text(obj, "system", required=False)
    history = _read_history(check, obj.get("history"))
    if instruction is None or input_text is None or output is None:
        return None
    if system is None or history is None:
        return None
    return Dialogue(
        instruction=instruction, input=input_text, output=output, system=system, history=history
    )


def _read_history(check: ItemCheck, value: Any) -> tuple[tuple[str, str], ...] | None:
    """The ``history`` pairs of an Alpaca item (``null`` and ``[]``: none)."""
    if value is None:
        return ()
    if not isinstance(value, list):
        check.add(
            IssueCode.WRONG_TYPE,
            f"expected an array of [user, assistant] pairs, got {json_type_name(value)}",
            field="history",
        )
        return None
    turns = 2 * len(value) + 2
    if turns > check.limits.max_turns:
        check.add(
            IssueCode.TOO_MANY_TURNS,
            f"the record has {turns} user and assistant turns with the last one, more than the "
            f"limit of {check.limits.max_turns}",
            field="history",
        )
        return None
    pairs: list[tuple[str, str]] = []
    ok = True
    for index, pair in enumerate(value):
        where = f"history[{index}]"
        if not isinstance(pair, list) or len(pair) != 2:
            got = (
                f"an array of {len(pair)} item{'s' if len(pair) != 1 else ''}"
                if isinstance(pair, list)
                else json_type_name(pair)
            )
            check.add(
                IssueCode.WRONG_TYPE,
                f"expected a [user, assistant] pair of two strings, got {got}",
                field=where,
            )
            ok = False
            continue
        texts = {"user": pair[0], "assistant": pair[1]}
        user = check.text(texts, "user", required=True, field=f"{where}[0]")
        assistant = check.text(texts, "assistant", required=True, field=f"{where}[1]")
        if user is None or assistant is None:
            ok = False
            continue
        pairs.append((user, assistant))
    return tuple(pairs) if ok else None


def _read_turns(check: ItemCheck, obj: Mapping[str, Any], fmt: TurnFormat) -> Dialogue | None:
    """The dialogue of a ShareGPT or OpenAI-style item."""
    value = obj[fmt.container]
    if not isinstance(value, list):
        check.add(
            IssueCode.WRONG_TYPE,
            f"expected an array of turns, got {json_type_name(value)}",
            field=fmt.container,
        )
        return None
    first = value[0] if value and isinstance(value[0], dict) else {}
    leading_system = fmt.roles.get(str(first.get(fmt.role_key))) is Role.SYSTEM
    count = len(value) - leading_system
    if count > check.limits.max_turns:
        check.add(
            IssueCode.TOO_MANY_TURNS,
            f"has {count} user and assistant turns, more than the limit of "
            f"{check.limits.max_turns}",
            field=fmt.container,
        )
        return None
    roles: list[Role | None] = []
    texts: list[str | None] = []
    unknown_keys = 0
    for index, turn in enumerate(value):
        where = f"{fmt.container}[{index}]"
        if not isinstance(turn, dict):
            check.add(
                IssueCode.WRONG_TYPE,
                f"expected a turn object with {fmt.role_key} and {fmt.content_key}, got "
                f"{json_type_name(turn)}",
                field=where,
            )
            roles.append(None)
            texts.append(None)
            continue
        for key in getattr(turn, "duplicate_keys", ()):
            if key in (fmt.role_key, fmt.content_key):
                check.add(
                    IssueCode.DUPLICATE_KEY,
                    "appears more than once in the turn",
                    field=f"{where}.{key}",
                )
        unknown_keys += sum(1 for key in turn if key not in (fmt.role_key, fmt.content_key))
        roles.append(_role(check, turn, fmt, where))
        texts.append(
            check.text(turn, fmt.content_key, required=True, field=f"{where}.{fmt.content_key}")
        )
    if unknown_keys:
        check.add(
            IssueCode.UNKNOWN_FIELD,
            f"{unknown_keys} unknown key{'s' if unknown_keys != 1 else ''} in turns ignored "
            f"(names not repeated: a key may be personal data); a turn holds {fmt.role_key} and "
            f"{fmt.content_key}",
            field=fmt.container,
        )
    system = check.text(obj, "system", required=False)
    if None in roles or not _turn_order(check, roles, fmt):
        return None
    start = 1 if roles and roles[0] is Role.SYSTEM else 0
    if start and system:
        check.add(
            IssueCode.CONFLICTING_FIELDS,
            f"the system prompt is given both here and as the first turn of {fmt.container}; "
            "give it once",
            field="system",
        )
        return None
    if system is None or any(text is None for text in texts):
        return None
    turns = [text for text in texts if text is not None]
    users, answers = turns[start::2], turns[start + 1 :: 2]
    return Dialogue(
        instruction=users[-1],
        input="",
        output=answers[-1],
        system=turns[0] if start else system,
        history=tuple(zip(users[:-1], answers[:-1], strict=True)),
    )


def _role(check: ItemCheck, turn: Mapping[str, Any], fmt: TurnFormat, where: str) -> Role | None:
    field = f"{where}.{fmt.role_key}"
    tag = turn.get(fmt.role_key)
    if tag is None:
        other = MESSAGES if fmt is SHAREGPT else SHAREGPT
        detail = "required field is missing"
        if other.role_key in turn:
            detail += (
                f"; turns of {fmt.container} hold {fmt.role_key} and {fmt.content_key} "
                f"({other.role_key} and {other.content_key} belong in {other.container})"
            )
        check.add(IssueCode.MISSING_FIELD, detail, field=field)
        return None
    if not isinstance(tag, str):
        check.add(
            IssueCode.WRONG_TYPE, f"expected a string, got {json_type_name(tag)}", field=field
        )
        return None
    role = fmt.roles.get(tag)
    if role is None:
        check.add(
            IssueCode.UNKNOWN_ROLE,
            f"unknown role; expected one of {', '.join(fmt.roles)}",
            field=field,
        )
    return role


def _turn_order(check: ItemCheck, roles: list[Role | None], fmt: TurnFormat) -> bool:
    """Whether the turns alternate user, assistant after an optional system turn and end with an
    assistant turn; the first break is reported."""
    start = 1 if roles and roles[0] is Role.SYSTEM else 0
    for index in range(start, len(roles)):
        expected = Role.USER if (index - start) % 2 == 0 else Role.ASSISTANT
        if roles[index] is expected:
            continue
        field = f"{fmt.container}[{index}].{fmt.role_key}"
        if roles[index] is Role.SYSTEM:
            detail = "a system turn may only be the first turn"
        else:
            detail = (
                f"expected {_a(expected)} turn, found {_a(roles[index])} turn: after an optional "
                "system turn, turns alternate user, assistant, user, assistant..."
            )
        check.add(IssueCode.TURN_ORDER, detail, field=field)
        return False
    if len(roles) == start:
        check.add(
            IssueCode.EMPTY_FIELD,
            "holds no user or assistant turn; a record needs a question and its answer",
            field=fmt.container,
        )
        return False
    if roles[-1] is not Role.ASSISTANT:
        check.add(
            IssueCode.LAST_TURN_NOT_ASSISTANT,
            "the last turn must be the assistant's answer",
            field=f"{fmt.container}[{len(roles) - 1}].{fmt.role_key}",
        )
        return False
    return True


def _a(role: Role | None) -> str:
    return f"an {role}" if role is Role.ASSISTANT else f"a {role}"

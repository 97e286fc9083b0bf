"""Building validated config dataclasses from plain mappings (YAML, JSON, CLI overrides).

Every config of this package is a dataclass whose fields carry ``metadata={"help": ...}`` and whose
``__post_init__`` rejects bad combinations. :func:`from_mapping` adds what a dataclass alone does
not check: unknown keys and value types, with an error that names the offending field.
"""

from __future__ import annotations

import dataclasses
import enum
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar, Union, get_args, get_origin, get_type_hints

from trainer.errors import ConfigError

T = TypeVar("T")


def help_text(cls: type, name: str) -> str:
    """The ``help`` metadata of field ``name`` of dataclass ``cls``."""
    for f in dataclasses.fields(cls):
        if f.name == name:
            return str(f.metadata.get("help", ""))
    raise KeyError(name)


def from_mapping(cls: type[T], data: Mapping[str, Any], *, where: str) -> T:
    """An instance of dataclass ``cls`` built from ``data``.

    Unknown keys, values of the wrong type and violations found by ``__post_init__`` all raise
    :class:`ConfigError` whose message starts with ``where`` and names the field.
    Numbers written as strings (YAML reads ``2e-4`` as a string) are accepted for numeric fields.
    """
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: expected a mapping, got {type(data).__name__}")
    names = {f.name for f in dataclasses.fields(cls) if f.init}  # type: ignore[arg-type]
    unknown = sorted(str(k) for k in data if k not in names)
    if unknown:
        known = ", ".join(sorted(names))
        raise ConfigError(f"{where}: unknown field(s) {', '.join(unknown)}; known fields: {known}")
    hints = get_type_hints(cls)
    kwargs = {
        name: coerce(value, hints[name], where=f"{where}.{name}") for name, value in data.items()
    }
    try:
        return cls(**kwargs)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: {exc}") from exc


def to_mapping(obj: Any) -> dict[str, Any]:
    """The JSON-ready field values of a config dataclass (enums as their values)."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(obj):
        out[f.name] = _plain(getattr(obj, f.name))
    return out


def _plain(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def coerce(value: Any, hint: Any, *, where: str) -> Any:
    """``value`` checked against (and, for numbers in strings and lists, converted to) ``hint``."""
    origin = get_origin(hint)
    if origin is Union or origin is types.UnionType:
        args = get_args(hint)
        if value is None:
            if type(None) in args:
                return None
            raise ConfigError(f"{where}: must not be null")
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return coerce(value, arg, where=where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(
            errors[0] if len(errors) == 1 else f"{where}: {value!r} matches no allowed type"
        )
    if origin is typing.Literal:
        choices = get_args(hint)
        if value not in choices:
            raise ConfigError(f"{where}: {value!r} is not one of {', '.join(map(repr, choices))}")
        return value
    if origin in (list, tuple):
        if isinstance(value, str) or not isinstance(value, list | tuple):
            raise ConfigError(f"{where}: expected a list, got {type(value).__name__}")
        item = get_args(hint)[0] if get_args(hint) else Any
        items = [coerce(v, item, where=f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if hint is Any:
        return value
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        try:
            return hint(value)
        except ValueError:
            allowed = ", ".join(str(m.value) for m in hint)
            raise ConfigError(f"{where}: {value!r} is not one of {allowed}") from None
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                pass
        raise ConfigError(f"{where}: expected an integer, got {value!r}")
    if hint is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(f"{where}: expected a number, got {value!r}")
    if hint is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{where}: expected a string, got {type(value).__name__}")
    return value

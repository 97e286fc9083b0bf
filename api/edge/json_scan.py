"""Checks on JSON bytes as they stream in, before any JSON parser sees them.

Every JSON parser in the process recurses once per level of nesting, and web3 raises Python's
recursion limit to 100,000 at import, so a body nested ~80,000 deep overflows the C stack and
kills the process (SIGSEGV) instead of raising. :class:`JsonBodyCheck` counts the nesting
without parsing (and without recursion): ``[`` and ``{`` outside strings open a level, ``]`` and
``}`` close one, and strings are skipped whole, escapes included, even when a string or an escape
is split between two chunks. It also checks that the bytes are UTF-8 (RFC 8259 §8.1), the only
encoding both of our parsers (``json`` for FastAPI's bodies, pydantic's for batches) agree on.

It checks; it does not validate. Malformed JSON passes here and is refused by the parser, which
then only ever sees bounded nesting.
"""

from __future__ import annotations

import codecs
import re

from api.edge.errors import JsonNotUtf8, JsonTooDeep

# Outside a string: a bracket, or a whole string. The string's closing quote is group 1, absent when
# the chunk ends inside the string (then the match stops at the chunk's end, or just before a
# backslash that is the chunk's last byte and escapes the next chunk's first byte).
_OUTSIDE = re.compile(rb'[\[\]{}]|"(?:[^"\\]++|\\.)*+(")?', re.DOTALL)
# Inside a string continued from the previous chunk: the rest of it, closing quote in group 1.
_INSIDE = re.compile(rb'(?:[^"\\]++|\\.)*+(")?', re.DOTALL)
_QUOTE = ord('"')
_OPEN = frozenset(b"[{")


class JsonBodyCheck:
    """Feed a body's chunks in order (:meth:`feed`), then call :meth:`finish`; each raises
    :class:`~api.edge.errors.JsonTooDeep` or :class:`~api.edge.errors.JsonNotUtf8` as soon as the
    bytes seen so far show the problem."""

    def __init__(self, *, max_depth: int) -> None:
        if max_depth < 1:
            raise ValueError("max_depth must be at least 1")
        self.max_depth = max_depth
        self.depth = 0
        self._in_string = False
        self._escaped = False
        self._utf8 = codecs.getincrementaldecoder("utf-8")("strict")

    def feed(self, chunk: bytes) -> None:
        if self._too_deep(chunk):
            raise JsonTooDeep(
                f"the JSON body nests arrays and objects deeper than {self.max_depth} levels"
            )
        self._decode(chunk, final=False)

    def finish(self) -> None:
        self._decode(b"", final=True)

    def _decode(self, chunk: bytes, *, final: bool) -> None:
        try:
            self._utf8.decode(chunk, final)
        except UnicodeDecodeError:
            raise JsonNotUtf8("the JSON body is not UTF-8 text (RFC 8259)") from None

    def _too_deep(self, chunk: bytes) -> bool:
        pos, end = 0, len(chunk)
        if self._in_string:
            if self._escaped:
                if end == 0:
                    return False
                pos, self._escaped = 1, False
            match = _INSIDE.match(chunk, pos)
            assert match is not None  # the pattern matches the empty string
            if match.start(1) < 0:
                self._escaped = match.end() < end
                return False
            self._in_string = False
            pos = match.end()
        for match in _OUTSIDE.finditer(chunk, pos):
            byte = chunk[match.start()]
            if byte == _QUOTE:
                if match.start(1) < 0:
                    self._in_string = True
                    self._escaped = match.end() < end
                    return False
            elif byte in _OPEN:
                self.depth += 1
                if self.depth > self.max_depth:
                    return True
            elif self.depth > 0:
                self.depth -= 1
        return False

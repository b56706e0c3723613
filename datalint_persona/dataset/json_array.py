"""Stream the elements of a ``.json`` file that holds one array, with the line each element starts on.

The file is read in chunks, so memory follows the largest element rather than the file. Errors
name the line: invalid UTF-8 (found by a first pass over the raw lines), broken syntax, a
top-level value that is not an array, and nesting too deep to parse.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable, Iterator
from typing import IO

from datalint_persona.errors import InputError

CHUNK_CHARS = 1 << 20
# A value that ends (or fails) this close to the end of the buffer may have been cut by the chunk
# boundary ("1e" of "1e5", "tru" of "true"), so it is parsed again with more text.
_MARGIN = 64
_WHITESPACE = re.compile(r"[ \t\n\r]*")
_SYNTAX_FIX = "repair the JSON so the file is one array of objects, [{...}, {...}]"
_UTF8_BOM = b"\xef\xbb\xbf"


def iter_json_array(
    handle: IO[bytes],
    shown: str,
    not_utf8: Callable[[UnicodeDecodeError, int, int], InputError],
    too_deep: Callable[[int], InputError],
) -> Iterator[tuple[int, object]]:
    """(line, element) for each element of the array in ``handle`` (a binary file, at its start).

    ``not_utf8(error, line, column)`` and ``too_deep(line)`` build the loader's errors.

    >>> import io
    >>> never = lambda *args: AssertionError()
    >>> list(iter_json_array(io.BytesIO(b'[{"a": 1},\\n {"b": 2}]'), "x.json", never, never))
    [(1, {'a': 1}), (2, {'b': 2})]
    """
    for line, raw in enumerate(handle, start=1):
        if line == 1 and raw.startswith(_UTF8_BOM):
            raw = raw[len(_UTF8_BOM) :]
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as error:
            raise not_utf8(error, line, error.start + 1) from None
    handle.seek(0)
    text = io.TextIOWrapper(handle, encoding="utf-8-sig", newline="")
    try:
        yield from _Parser(text, shown, too_deep).elements()
    finally:
        text.detach()  # leave the binary handle to its owner


class _Parser:
    def __init__(self, text: IO[str], shown: str, too_deep: Callable[[int], InputError]) -> None:
        self.text, self.shown, self.too_deep = text, shown, too_deep
        self.buffer = ""
        self.base_line = 1  # the line of buffer[0]
        self.base_column = 0  # characters before buffer[0] on its line
        self.counted_to, self.counted_lines = 0, 0  # newlines in buffer[:counted_to], counted once
        self.eof = False
        self.decoder = json.JSONDecoder()

    def more(self) -> bool:
        """Append at least a chunk (doubling, so a huge element costs linear time); False at EOF."""
        if self.eof:
            return False
        chunk = self.text.read(max(CHUNK_CHARS, len(self.buffer)))
        if not chunk:
            self.eof = True
            return False
        self.buffer += chunk
        return True

    def line_at(self, position: int) -> int:
        if position < self.counted_to:  # only for an error behind the last element
            return self.base_line + self.buffer.count("\n", 0, position)
        self.counted_lines += self.buffer.count("\n", self.counted_to, position)
        self.counted_to = position
        return self.base_line + self.counted_lines

    def column_at(self, position: int) -> int:
        """The 1-based column of ``position`` on its line, as json.JSONDecodeError.colno counts."""
        newline = self.buffer.rfind("\n", 0, position)
        return position - newline if newline >= 0 else self.base_column + position + 1

    def drop_before(self, position: int) -> int:
        """Forget the text before ``position``; return the same place in the shortened buffer."""
        if position < CHUNK_CHARS:
            return position
        self.base_line = self.line_at(position)
        self.base_column = self.column_at(position) - 1
        self.counted_to, self.counted_lines = 0, 0
        self.buffer = self.buffer[position:]
        return 0

    def skip_space(self, position: int) -> int:
        while True:
            match = _WHITESPACE.match(self.buffer, position)
            end = position if match is None else match.end()
            if end < len(self.buffer) or not self.more():
                return end

    def peek(self, position: int) -> str:
        if position >= len(self.buffer):
            self.more()
        return self.buffer[position : position + 1]

    def error(self, problem: str, position: int) -> InputError:
        line = self.line_at(position)
        return InputError(f"invalid JSON: {problem}", path=self.shown, line=line, fix=_SYNTAX_FIX)

    def value(self, position: int) -> tuple[object, int]:
        while True:
            try:
                value, end = self.decoder.raw_decode(self.buffer, position)
            except json.JSONDecodeError as error:
                cut = error.pos > len(self.buffer) - _MARGIN or error.msg.startswith("Unterminated string")
                if cut and self.more():
                    continue
                raise self.error(f"{error.msg} (column {self.column_at(error.pos)})", error.pos) from None
            except RecursionError:
                raise self.too_deep(self.line_at(position)) from None
            if end > len(self.buffer) - _MARGIN and self.more():
                continue
            return value, end

    def elements(self) -> Iterator[tuple[int, object]]:
        position = self.skip_space(0)
        if position >= len(self.buffer):
            return
        if self.buffer[position] != "[":
            opening = "an object" if self.buffer[position] == "{" else "not an array"
            # A config file (package.json, tsconfig.json) handed over by a broad file pattern lands here.
            raise InputError(
                f"the top-level JSON value is {opening}, so this is not a dataset (an array of records)",
                path=self.shown,
                line=self.line_at(position),
                fix="leave the file out if it isn't a dataset (in pre-commit: the hook's `exclude:`); "
                "else wrap the records in [ ... ], or write one record per line in a .jsonl file",
            )
        position = self.skip_space(position + 1)
        while self.peek(position) != "]":
            position = self.drop_before(position)
            value, end = self.value(position)
            yield self.line_at(position), value
            position = self.skip_space(end)
            if self.peek(position) == ",":
                position = self.skip_space(position + 1)
                if self.peek(position) == "]":
                    raise self.error("trailing comma before ']'", position)
            elif self.peek(position) != "]":
                raise self.error("expected ',' or ']' after an array element", position)
        after = self.skip_space(position + 1)
        if after != len(self.buffer):
            raise self.error("extra data after the closing ']'", after)

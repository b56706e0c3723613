"""Read a saved JSON report incrementally: every member but ``samples`` as data, the samples one by one.

``persona-lint merge`` reads shard reports this way, so its memory does not grow with the number
of samples: only one sample entry is parsed at a time. Numbers read as :func:`json.loads` reads
them (an integer as ``int``, any other number as the ``float`` nearest its text), so a value
written with Python's shortest repr comes back bit for bit.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import ijson

from datalint_persona.errors import InputError
from datalint_persona.reporters.json_report import REPORT_SCHEMA_ID

__all__ = ["read_report_streaming"]

_WRITE_JSON = "pass a report written with --format json."
_OPEN = ("start_map", "start_array")
_CLOSE = ("end_map", "end_array")

Event = tuple[str, Any]
SampleHandler = Callable[[dict[str, Any], dict[str, Any]], None]


def read_report_streaming(path: str, on_sample: SampleHandler) -> dict[str, Any]:
    """The JSON report at ``path`` without its ``samples``; each ``samples`` entry goes, in file
    order, to ``on_sample(entry, head)``, where ``head`` holds the members read before ``samples``
    (in a report persona-lint wrote, keys are sorted: ``rules`` comes before ``samples``).

    An :class:`InputError` that names the file if it is not JSON or not a persona-lint report.

    >>> import json, tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "r.json"
    >>> _ = path.write_text(json.dumps({"a": [1.5], "samples": [{"index": 0}, {"index": 1}],
    ...                                 "schema": "persona-lint/report/v1"}))
    >>> seen = []
    >>> read_report_streaming(str(path), lambda entry, head: seen.append((entry, sorted(head))))
    {'a': [1.5], 'schema': 'persona-lint/report/v1'}
    >>> seen
    [({'index': 0}, ['a']), ({'index': 1}, ['a'])]
    """
    try:
        with open(path, "rb") as handle:
            head = _read_members(ijson.basic_parse(handle, use_float=True), on_sample)
    except OSError as error:
        raise InputError(
            f"can't read the report ({error.strerror}).", path=path, fix="check the path."
        ) from None
    except ijson.JSONError as error:
        raise InputError(f"not JSON ({_first_line(error)}).", path=path, fix=_WRITE_JSON) from None
    if head is None or head.get("schema") != REPORT_SCHEMA_ID:
        raise InputError("not a persona-lint JSON report.", path=path, fix=_WRITE_JSON)
    return head


def _read_members(events: Iterator[Event], on_sample: SampleHandler) -> dict[str, Any] | None:
    """The top-level object's members (None if the document is not an object)."""
    first = next(events, None)
    if first is None:
        raise ijson.IncompleteJSONError("the file is empty")
    if first[0] != "start_map":
        for _ in events:  # still refuse what is not JSON at all
            pass
        return None
    head: dict[str, Any] = {}
    for event, key in events:
        if event == "end_map":
            break
        start = next(events)
        if key == "samples" and start[0] == "start_array":
            for entry_start in events:
                if entry_start[0] == "end_array":
                    break
                on_sample(_value(entry_start, events), head)
        else:
            head[key] = _value(start, events)
    for _ in events:  # anything after the object is refused as the parser finds it
        pass
    return head


def _value(start: Event, events: Iterator[Event]) -> Any:
    """The value that begins with event ``start``, built from the events that follow."""
    event, value = start
    if event not in _OPEN:
        return value
    builder = ijson.ObjectBuilder()
    builder.event(event, value)
    depth = 1
    for event, value in events:
        builder.event(event, value)
        if event in _OPEN:
            depth += 1
        elif event in _CLOSE:
            depth -= 1
            if depth == 0:
                return builder.value
    raise ijson.IncompleteJSONError("the file ends inside a value")


def _first_line(error: Exception) -> str:
    """The parser's message without the excerpt it draws under it."""
    text = str(error)
    if text.startswith(("b'", 'b"')):  # the C parser gives some messages as a bytes repr
        text = text[2:-1].replace("\\n", "\n")
    return text.strip().splitlines()[0] if text.strip() else "incomplete"

"""Read each dataset format as a stream of (line or row, raw record) pairs.

:mod:`datalint_persona.dataset.loaders` turns the raw records into Samples. A record whose text cannot be
parsed arrives as :class:`Unreadable`, so the loader can raise or skip it (``--skip-invalid``);
problems that stop a whole file from being read raise :class:`InputError` here. Files are only
ever opened for reading.
"""

from __future__ import annotations

import csv
import importlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from datalint_persona.errors import InputError, MissingDependencyError

_UTF8_BOM = b"\xef\xbb\xbf"
_NOT_UTF8_FIX = "re-encode the file as UTF-8, e.g. iconv -f latin1 -t utf-8 old.jsonl > new.jsonl"
_TOO_DEEP_FIX = "flatten the record: a training sample needs only a few levels of nesting"
# A CSV field may hold a long response; the csv module's default cap is 128 KiB.
_CSV_FIELD_LIMIT = 1 << 30


@dataclass(frozen=True)
class Unreadable:
    """A record whose text could not be parsed; ``skip_invalid`` decides whether it raises."""

    error: InputError


@dataclass(frozen=True)
class Located:
    kind: str  # a suffix from SUPPORTED_SUFFIXES, "disk" (save_to_disk directory) or "hub"
    path: Path
    shown: str  # the display path, or the dataset id for the hub


# (line or row, parsed record or Unreadable)
RawRecords = Iterator[tuple[int, object]]


def _not_utf8(error: UnicodeDecodeError, shown: str, line: int, column: int) -> InputError:
    byte = error.object[error.start]
    return InputError(
        f"byte 0x{byte:02x} at column {column} is not valid UTF-8",
        path=shown,
        line=line,
        fix=_NOT_UTF8_FIX,
    )


def _too_deep(shown: str, line: int) -> InputError:
    return InputError("the JSON is nested too deeply to read", path=shown, line=line, fix=_TOO_DEEP_FIX)


def _decoded_lines(handle: IO[bytes], shown: str) -> Iterator[tuple[int, str | InputError]]:
    """Each physical line, decoded on its own so a bad byte is reported at its line."""
    for line, raw in enumerate(handle, start=1):
        if line == 1 and raw.startswith(_UTF8_BOM):
            raw = raw[len(_UTF8_BOM) :]
        try:
            yield line, raw.decode("utf-8")
        except UnicodeDecodeError as error:
            yield line, _not_utf8(error, shown, line, error.start + 1)


def read_jsonl(where: Located) -> RawRecords:
    with open(where.path, "rb") as handle:
        for line, text in _decoded_lines(handle, where.shown):
            if isinstance(text, InputError):
                yield line, Unreadable(text)
            elif text.strip():
                try:
                    yield line, json.loads(text)
                except json.JSONDecodeError as error:
                    problem = f"invalid JSON: {error.msg} (column {error.colno})"
                    fix = "write exactly one complete JSON object on each line"
                    yield line, Unreadable(InputError(problem, path=where.shown, line=line, fix=fix))
                except RecursionError:
                    yield line, Unreadable(_too_deep(where.shown, line))


def read_json_array(where: Located) -> RawRecords:
    from datalint_persona.dataset.json_array import iter_json_array

    def not_utf8(error: UnicodeDecodeError, line: int, column: int) -> InputError:
        return _not_utf8(error, where.shown, line, column)

    with open(where.path, "rb") as handle:
        yield from iter_json_array(handle, where.shown, not_utf8, lambda line: _too_deep(where.shown, line))


def read_csv(where: Located) -> RawRecords:
    def text_lines(handle: IO[bytes]) -> Iterator[str]:
        for _, text in _decoded_lines(handle, where.shown):
            if isinstance(text, InputError):
                raise text  # the csv parser cannot resume mid-record, so this is fatal
            yield text

    if csv.field_size_limit() < _CSV_FIELD_LIMIT:
        csv.field_size_limit(_CSV_FIELD_LIMIT)
    with open(where.path, "rb") as handle:
        reader = csv.reader(text_lines(handle), strict=True)
        header: list[str] | None = None
        while True:
            start = reader.line_num + 1  # the physical line where the next record begins
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as error:
                runs_on = reader.line_num > start
                problem = f"invalid CSV: {error}" + (
                    f" (in the record from here to line {reader.line_num})" if runs_on else ""
                )
                fix = "close every quoted field and double any quote inside it"
                raise InputError(problem, path=where.shown, line=start, fix=fix) from None
            if not row:
                continue  # a blank line
            if header is None:
                header = [name.strip() for name in row]
                continue
            if len(row) != len(header):
                problem = f"the row has {len(row)} field(s) but the header has {len(header)}"
                fix = "quote fields that contain commas or line breaks"
                row_error = InputError(problem, path=where.shown, line=start, fix=fix)
                yield start, Unreadable(row_error)
                continue
            yield start, dict(zip(header, row, strict=True))


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split())


def _require(module: str, package: str, why: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise MissingDependencyError(package, why=why) from error


def read_parquet(where: Located) -> RawRecords:
    pyarrow = _require("pyarrow", "pyarrow", "reading Parquet files")
    parquet = _require("pyarrow.parquet", "pyarrow", "reading Parquet files")
    with open(where.path, "rb") as handle:
        try:
            reader = parquet.ParquetFile(handle)
        except (pyarrow.ArrowException, OSError, ValueError) as error:
            raise InputError(
                f"not a readable Parquet file ({_one_line(error)})",
                path=where.shown,
                fix="check that the file was written completely, e.g. by DataFrame.to_parquet",
            ) from None
        row = 0
        for batch in reader.iter_batches(batch_size=1024):
            for record in batch.to_pylist():
                row += 1
                yield row, record


def load_from_disk(where: Located, split: str) -> Iterable[object]:
    datasets = _require("datasets", "datasets", "reading Hugging Face datasets")
    try:
        loaded = datasets.load_from_disk(str(where.path))
    except (FileNotFoundError, ValueError, OSError):
        raise InputError(
            "the directory is not a dataset saved with save_to_disk",
            path=where.shown,
            fix="point at the directory that Dataset.save_to_disk wrote, or at a data file",
        ) from None
    if isinstance(loaded, datasets.DatasetDict):
        if split not in loaded:
            raise InputError(
                f"the dataset has no split '{split}' (it has: {', '.join(loaded)})",
                path=where.shown,
                fix=f"choose one of its splits with --split: {', '.join(loaded)}",
            )
        loaded = loaded[split]
    rows: Iterable[object] = loaded
    return rows


def load_from_hub(where: Located, split: str) -> Iterable[object]:
    datasets = _require("datasets", "datasets", "loading Hugging Face hub datasets")
    try:
        rows: Iterable[object] = datasets.load_dataset(where.shown, split=split)
    except Exception as error:  # the hub raises many kinds: not found, offline, bad split
        raise InputError(
            f"could not load the Hugging Face dataset (split '{split}'): "
            f"{type(error).__name__}: {_one_line(error)[:300]}",
            path=where.shown,
            fix="check the dataset id, the split and your network, or pass a local file",
        ) from error
    return rows

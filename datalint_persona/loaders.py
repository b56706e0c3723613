"""Load a finetuning dataset from files or the Hugging Face hub and stream it as Samples.

Sources: ``.jsonl``, ``.json`` (an array of records), ``.csv``, ``.parquet``, a directory written
by ``datasets``' ``save_to_disk``, or a hub dataset id ``owner/name`` when no such path exists.
Each record is converted by :mod:`datalint_persona.records`. Input files are only ever opened
for reading.

Problems with a single record (bad JSON on a JSONL line, unknown role, empty response, ...)
become :class:`InvalidRecord` when ``skip_invalid`` is on. Problems that stop the file from
being read at all always raise: a missing or empty file, an unsupported extension, broken
syntax in a ``.json`` array or ``.csv`` file, and non-UTF-8 bytes in a ``.json`` or ``.csv``
file, since nothing after them can be located reliably.
"""

from __future__ import annotations

import csv
import hashlib
import importlib
import json
import re
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from datalint_persona.errors import ConfigError, InputError, MissingDependencyError
from datalint_persona.paths import display_path
from datalint_persona.records import record_to_sample
from datalint_persona.types import InvalidRecord, Sample

SUPPORTED_SUFFIXES = (".jsonl", ".json", ".csv", ".parquet")
SUPPORTED_SOURCES = (
    "a .jsonl, .json, .csv or .parquet file, a directory written by datasets' save_to_disk, "
    "or a Hugging Face dataset id such as owner/name"
)
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")
_UTF8_BOM = b"\xef\xbb\xbf"
_NOT_UTF8_FIX = "re-encode the file as UTF-8, e.g. iconv -f latin1 -t utf-8 old.jsonl > new.jsonl"
_TOO_DEEP_FIX = "flatten the record: a training sample needs only a few levels of nesting"
# A CSV field may hold a long response; the csv module's default cap is 128 KiB.
_CSV_FIELD_LIMIT = 1 << 30


@dataclass(frozen=True)
class _Unreadable:
    """A record whose text could not be parsed; ``skip_invalid`` decides whether it raises."""

    error: InputError


@dataclass(frozen=True)
class Located:
    kind: str  # a suffix from SUPPORTED_SUFFIXES, "disk" (save_to_disk directory) or "hub"
    path: Path
    shown: str  # the display path, or the dataset id for the hub


# (line or row, parsed record or _Unreadable)
_RawRecords = Iterator[tuple[int, object]]


def iter_records(
    source: str, *, skip_invalid: bool = False, split: str = "train"
) -> Iterator[Sample | InvalidRecord]:
    """Stream the samples of one source, in file order.

    A missing file or unsupported extension raises at once; record problems raise (or, with
    ``skip_invalid``, are yielded as InvalidRecord) when the stream reaches them.

    >>> import pathlib, tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = pathlib.Path(folder, "train.jsonl")
    ...     _ = path.write_text('{"prompt": "Hi", "response": "Hello!"}\\n')
    ...     [(s.line, s.response) for s in iter_records(str(path))]
    [(1, 'Hello!')]
    """
    return stream_located(locate(source), skip_invalid=skip_invalid, split=split)


@dataclass(frozen=True)
class LoadedDataset:
    """What :func:`load_dataset` read: samples, invalid records, the inputs' hashes, what was skipped."""

    samples: list[Sample]
    invalid: list[InvalidRecord]
    # One entry per source: {"path": display path, "sha256": hex digest or None (hub dataset)}.
    inputs: tuple[dict[str, str | None], ...]
    # Set when --max-samples stopped reading while records were left: the last sample read.
    stopped_after: str | None = None


def load_samples(
    sources: Sequence[str],
    *,
    skip_invalid: bool = False,
    split: str = "train",
    max_samples: int | None = None,
) -> tuple[list[Sample], list[InvalidRecord]]:
    """Load every source in order and return (samples, invalid records).

    All sources are checked to exist before any is read. Reading stops as soon as
    ``max_samples`` samples have been collected (invalid records do not count).

    >>> import pathlib, tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = pathlib.Path(folder, "train.jsonl")
    ...     _ = path.write_text('{"prompt": "Hi", "response": "Hello!"}\\n[1]\\n')
    ...     samples, invalid = load_samples([str(path)], skip_invalid=True)
    ...     len(samples), invalid[0].line, invalid[0].problem
    (1, 2, 'the record is a list, not an object')
    """
    loaded = load_dataset(
        sources, skip_invalid=skip_invalid, split=split, max_samples=max_samples, hash_inputs=False
    )
    return loaded.samples, loaded.invalid


def load_dataset(
    sources: Sequence[str],
    *,
    skip_invalid: bool = False,
    split: str = "train",
    max_samples: int | None = None,
    hash_inputs: bool = True,
) -> LoadedDataset:
    """:func:`load_samples`, plus each input's sha256 and where ``max_samples`` stopped reading.

    >>> import hashlib, pathlib, tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = pathlib.Path(folder, "train.jsonl")
    ...     _ = path.write_text('{"prompt": "Hi", "response": "Hello!"}\\n' * 3)
    ...     loaded = load_dataset([str(path)], max_samples=2)
    ...     digest = hashlib.sha256(path.read_bytes()).hexdigest()
    >>> len(loaded.samples), loaded.stopped_after, loaded.inputs[0]["sha256"] == digest
    (2, 'train.jsonl:2', True)
    """
    if isinstance(sources, str):  # a bare string is a Sequence[str] of characters
        sources = [sources]
    if max_samples is not None and max_samples < 1:
        raise ConfigError(
            f"max_samples (--max-samples) is {max_samples}; it must be at least 1",
            fix="pass a positive number, or leave it out to load every sample",
        )
    located = [locate(source) for source in sources]
    inputs = tuple(
        {"path": where.shown, "sha256": input_sha256(where) if hash_inputs else None} for where in located
    )
    samples: list[Sample] = []
    invalid: list[InvalidRecord] = []
    for position, where in enumerate(located):
        with closing(stream_located(where, skip_invalid=skip_invalid, split=split)) as stream:
            for item in stream:
                if isinstance(item, InvalidRecord):
                    invalid.append(item)
                    continue
                samples.append(item)
                if max_samples is not None and len(samples) >= max_samples:
                    more = position + 1 < len(located) or _has_more(stream)
                    stopped = item.location if more else None
                    return LoadedDataset(samples, invalid, inputs, stopped)
    return LoadedDataset(samples, invalid, inputs)


def input_sha256(where: Located) -> str | None:
    """The sha256 of a data file, or of a save_to_disk folder's files (None for a hub dataset).

    A folder's digest is the sha256 of its sorted ``relative/path\\0<file sha256>\\n`` listing.
    """
    if where.kind == "hub":
        return None
    if where.kind != "disk":
        return _file_sha256(where.path)
    listing = hashlib.sha256()
    for path in sorted(p for p in where.path.rglob("*") if p.is_file()):
        listing.update(f"{path.relative_to(where.path).as_posix()}\0{_file_sha256(path)}\n".encode())
    return listing.hexdigest()


def _file_sha256(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _has_more(stream: Iterator[Sample | InvalidRecord]) -> bool:
    """Whether the stream holds another record (a bad one counts: it was not read either)."""
    try:
        next(stream)
    except StopIteration:
        return False
    except InputError:
        return True
    return True


def locate(source: str) -> Located:
    """Find what kind of source ``source`` is; a missing file or unsupported type raises here."""
    path = Path(source)
    if path.is_dir():
        return Located("disk", path, display_path(path))
    suffix = path.suffix.lower()
    if path.exists():
        if suffix not in SUPPORTED_SUFFIXES:
            raise InputError(
                f"unsupported file type '{suffix or '(no extension)'}'",
                path=display_path(path),
                fix=f"give {SUPPORTED_SOURCES}",
            )
        return Located(suffix, path, display_path(path))
    if suffix not in SUPPORTED_SUFFIXES and _HUB_ID.fullmatch(source):
        return Located("hub", path, source)
    raise InputError(
        "file not found",
        path=display_path(path),
        fix=f"check the path and the current directory; a source is {SUPPORTED_SOURCES}",
    )


def stream_located(where: Located, *, skip_invalid: bool, split: str) -> Generator[Sample | InvalidRecord]:
    """Each record of a located source as a Sample (or InvalidRecord with ``skip_invalid``)."""
    readers: dict[str, Callable[[], _RawRecords]] = {
        ".jsonl": lambda: _read_jsonl(where),
        ".json": lambda: _read_json_array(where),
        ".csv": lambda: _read_csv(where),
        ".parquet": lambda: _read_parquet(where),
        "disk": lambda: enumerate(_load_from_disk(where, split), start=1),
        "hub": lambda: enumerate(_load_from_hub(where, split), start=1),
    }
    n_records = 0
    for line, value in readers[where.kind]():
        n_records += 1
        item: Sample | InvalidRecord
        try:
            if isinstance(value, _Unreadable):
                raise value.error
            item = record_to_sample(value, source=where.shown, line=line)
        except InputError as error:
            if not skip_invalid:
                raise
            item = InvalidRecord(where.shown, line, error.problem, error.fix)
        yield item
    if n_records == 0:
        raise InputError(
            "no records found",
            path=where.shown,
            fix="the file has no records: add at least one record, or leave this source out",
        )


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


def _read_jsonl(where: Located) -> _RawRecords:
    with open(where.path, "rb") as handle:
        for line, text in _decoded_lines(handle, where.shown):
            if isinstance(text, InputError):
                yield line, _Unreadable(text)
            elif text.strip():
                try:
                    yield line, json.loads(text)
                except json.JSONDecodeError as error:
                    problem = f"invalid JSON: {error.msg} (column {error.colno})"
                    fix = "write exactly one complete JSON object on each line"
                    yield line, _Unreadable(InputError(problem, path=where.shown, line=line, fix=fix))
                except RecursionError:
                    yield line, _Unreadable(_too_deep(where.shown, line))


def _read_json_array(where: Located) -> _RawRecords:
    from datalint_persona.json_array import iter_json_array

    def not_utf8(error: UnicodeDecodeError, line: int, column: int) -> InputError:
        return _not_utf8(error, where.shown, line, column)

    with open(where.path, "rb") as handle:
        yield from iter_json_array(handle, where.shown, not_utf8, lambda line: _too_deep(where.shown, line))


def _read_csv(where: Located) -> _RawRecords:
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
                yield start, _Unreadable(row_error)
                continue
            yield start, dict(zip(header, row, strict=True))


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split())


def _require(module: str, package: str, why: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise MissingDependencyError(package, why=why) from error


def _read_parquet(where: Located) -> _RawRecords:
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


def _load_from_disk(where: Located, split: str) -> Iterable[object]:
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


def _load_from_hub(where: Located, split: str) -> Iterable[object]:
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

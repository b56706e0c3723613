"""Load a finetuning dataset from files or the Hugging Face hub and stream it as Samples.

Sources: ``.jsonl``, ``.json`` (an array of records), ``.csv``, ``.parquet``, a folder of them, a
directory written by ``datasets``' ``save_to_disk``, ``-`` (JSONL on standard input), or a hub
dataset id ``owner/name``; :mod:`datalint_persona.dataset.sources` tells them apart. Each record is
converted by :mod:`datalint_persona.dataset.records`, with the prompt and response fields of
``names`` when a dataset calls them otherwise. Input files are only ever opened
for reading.

Problems with a single record (bad JSON on a JSONL line, unknown role, empty response, ...)
become :class:`InvalidRecord` when ``skip_invalid`` is on. Problems that stop the file from
being read at all always raise: a missing or empty file, an unsupported extension, broken
syntax in a ``.json`` array or ``.csv`` file, and non-UTF-8 bytes in a ``.json`` or ``.csv``
file, since nothing after them can be located reliably.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Generator, Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

from datalint_persona.dataset.field_names import FieldNames
from datalint_persona.dataset.formats import (
    Located,
    RawRecords,
    Unreadable,
    load_from_disk,
    load_from_hub,
    read_csv,
    read_json_array,
    read_jsonl,
    read_parquet,
)
from datalint_persona.dataset.oversize import OversizeSamples
from datalint_persona.dataset.records import record_to_sample
from datalint_persona.dataset.sources import locate, locate_all
from datalint_persona.errors import ConfigError, InputError
from datalint_persona.run_records import InputInfo
from datalint_persona.types import InvalidRecord, Sample


def iter_records(
    source: str, *, skip_invalid: bool = False, split: str = "train", names: FieldNames | None = None
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
    return stream_located(locate(source), skip_invalid=skip_invalid, split=split, names=names)


@dataclass(frozen=True)
class DatasetScan:
    """What :func:`scan_dataset` found: samples per source, invalid records, hashes, where it stopped."""

    sizes: dict[str, int]  # samples per source (display path), in reading order
    invalid: list[InvalidRecord]
    inputs: tuple[InputInfo, ...]
    stopped_after: str | None = None
    # A running sha256 of each source's samples, to compare with a second read (input_check).
    sample_digests: dict[str, str] = field(default_factory=dict)
    # Each trait name that a record's "persona_lint" key ignores, and where it is first named.
    ignored_traits: dict[str, tuple[str, int]] = field(default_factory=dict)
    # Per source, the samples longer than scan_dataset's oversize_chars (none without it).
    oversize: dict[str, OversizeSamples] = field(default_factory=dict)

    @property
    def n_samples(self) -> int:
        return sum(self.sizes.values())


def scan_dataset(
    sources: Sequence[str],
    *,
    skip_invalid: bool = False,
    split: str = "train",
    max_samples: int | None = None,
    names: FieldNames | None = None,
    oversize_chars: int | None = None,
) -> DatasetScan:
    """Read every record once, as :func:`iter_dataset` does, keeping only counts, invalid records,
    each input's sha256 and where ``max_samples`` stopped reading (and, with ``oversize_chars``,
    each source's samples longer than that many characters).

    Folders are expanded (:func:`~datalint_persona.dataset.sources.expand_sources`), and all
    sources are checked to exist before any is read. Reading stops as soon as
    ``max_samples`` samples have been read (invalid records do not count).

    >>> import hashlib, pathlib, tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = pathlib.Path(folder, "train.jsonl")
    ...     _ = path.write_text('{"prompt": "Hi", "response": "Hello!"}\\n' * 3)
    ...     scan = scan_dataset([str(path)], max_samples=2)
    ...     digest = hashlib.sha256(path.read_bytes()).hexdigest()
    >>> scan.sizes, scan.stopped_after, scan.inputs[0].sha256 == digest
    ({'train.jsonl': 2}, 'train.jsonl:2', True)
    """
    from datalint_persona.dataset.input_check import SampleTally

    located, inputs = _prepare(sources, max_samples, True)
    sizes: dict[str, int] = {}
    invalid: list[InvalidRecord] = []
    stopped: list[str] = []
    ignored: dict[str, tuple[str, int]] = {}
    oversize: dict[str, OversizeSamples] = {}
    tally = SampleTally()
    for item in _read(
        located, skip_invalid=skip_invalid, split=split, max_samples=max_samples, names=names, stopped=stopped
    ):
        if isinstance(item, InvalidRecord):
            invalid.append(item)
        else:
            sizes[item.source] = sizes.get(item.source, 0) + 1
            tally.add(item)
            if oversize_chars is not None:
                oversize.setdefault(item.source, OversizeSamples(oversize_chars)).add(item)
            named = item.ignore.traits if item.ignore is not None else None
            for trait in named or ():
                ignored.setdefault(trait, (item.source, item.line))
    stopped_after = stopped[0] if stopped else None
    return DatasetScan(sizes, invalid, inputs, stopped_after, tally.digests(), ignored, oversize)


def _prepare(
    sources: Sequence[str], max_samples: int | None, hash_inputs: bool
) -> tuple[list[Located], tuple[InputInfo, ...]]:
    """Check ``max_samples``, locate every source before any is read, and hash the inputs."""
    if isinstance(sources, str):  # a bare string is a Sequence[str] of characters
        sources = [sources]
    if max_samples is not None and max_samples < 1:
        raise ConfigError(
            f"max_samples (--max-samples) is {max_samples}; it must be at least 1",
            fix="pass a positive number, or leave it out to load every sample",
        )
    located = locate_all(sources)
    inputs = tuple(InputInfo(where.shown, input_sha256(where) if hash_inputs else None) for where in located)
    return located, inputs


def iter_dataset(
    sources: Sequence[str],
    *,
    skip_invalid: bool = False,
    split: str = "train",
    max_samples: int | None = None,
    names: FieldNames | None = None,
) -> Iterator[Sample | InvalidRecord]:
    """Stream the samples (and, with ``skip_invalid``, invalid records) of every source in order,
    up to ``max_samples`` samples, keeping nothing; each call reads the sources again.

    All sources are checked to exist before any is read.

    >>> import pathlib, tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = pathlib.Path(folder, "train.jsonl")
    ...     _ = path.write_text('{"prompt": "Hi", "response": "Hello!"}\\n[1]\\n')
    ...     items = list(iter_dataset([str(path)], skip_invalid=True))
    >>> [(type(item).__name__, item.line) for item in items]
    [('Sample', 1), ('InvalidRecord', 2)]
    """
    located, _ = _prepare(sources, max_samples, False)
    yield from _read(
        located, skip_invalid=skip_invalid, split=split, max_samples=max_samples, names=names, stopped=[]
    )


def _read(
    located: Sequence[Located],
    *,
    skip_invalid: bool,
    split: str,
    max_samples: int | None,
    names: FieldNames | None,
    stopped: list[str],
) -> Iterator[Sample | InvalidRecord]:
    """Records of every source in order, up to ``max_samples`` samples; when that stops reading
    while records are left, the last sample's location is appended to ``stopped``."""
    count = 0
    for position, where in enumerate(located):
        with closing(stream_located(where, skip_invalid=skip_invalid, split=split, names=names)) as stream:
            for item in stream:
                yield item
                if isinstance(item, InvalidRecord):
                    continue
                count += 1
                if max_samples is not None and count >= max_samples:
                    if position + 1 < len(located) or _has_more(stream):
                        stopped.append(item.location)
                    return


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


def stream_located(
    where: Located, *, skip_invalid: bool, split: str, names: FieldNames | None = None
) -> Generator[Sample | InvalidRecord]:
    """Each record of a located source as a Sample (or InvalidRecord with ``skip_invalid``)."""
    readers: dict[str, Callable[[], RawRecords]] = {
        ".jsonl": lambda: read_jsonl(where),
        ".json": lambda: read_json_array(where),
        ".csv": lambda: read_csv(where),
        ".parquet": lambda: read_parquet(where),
        "disk": lambda: enumerate(load_from_disk(where, split), start=1),
        "hub": lambda: enumerate(load_from_hub(where, split), start=1),
    }
    n_records = 0
    for line, value in readers[where.kind]():
        n_records += 1
        item: Sample | InvalidRecord
        try:
            if isinstance(value, Unreadable):
                raise value.error
            item = record_to_sample(value, source=where.shown, line=line, names=names)
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

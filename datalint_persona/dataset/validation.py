"""Check that datasets load, without a model, in memory that does not grow with their size.

:func:`validate_sources` streams every record through the same reader and record converter
that screening uses (:func:`datalint_persona.dataset.loaders.iter_records`), but keeps only counts,
each file's sha256 and the first few invalid records. JSONL, CSV and Parquet readers stream;
a ``.json`` array is the exception: it is parsed as one document.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import closing
from dataclasses import dataclass

from datalint_persona.dataset.field_names import FieldNames
from datalint_persona.dataset.loaders import input_sha256, stream_located
from datalint_persona.dataset.sources import locate_all
from datalint_persona.types import InvalidRecord


@dataclass(frozen=True)
class SourceCheck:
    """One source's counts and digest."""

    path: str  # display path
    sha256: str | None  # None for a hub dataset
    samples: int
    invalid: int


@dataclass(frozen=True)
class ValidationReport:
    sources: tuple[SourceCheck, ...]
    first_invalid: tuple[InvalidRecord, ...]  # at most ``keep_invalid`` of them, in file order

    @property
    def n_samples(self) -> int:
        return sum(source.samples for source in self.sources)

    @property
    def n_invalid(self) -> int:
        return sum(source.invalid for source in self.sources)


def validate_sources(
    sources: Sequence[str],
    *,
    skip_invalid: bool = False,
    split: str = "train",
    keep_invalid: int = 20,
    names: FieldNames | None = None,
) -> ValidationReport:
    """Read every record of every source; raise the first problem, or count them with ``skip_invalid``.

    >>> import pathlib, tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = pathlib.Path(folder, "train.jsonl")
    ...     _ = path.write_text('{"prompt": "Hi", "response": "Hello!"}\\n[1]\\n')
    ...     report = validate_sources([str(path)], skip_invalid=True)
    >>> report.n_samples, report.n_invalid, report.first_invalid[0].line
    (1, 1, 2)
    """
    located = locate_all(sources)
    checks: list[SourceCheck] = []
    first_invalid: list[InvalidRecord] = []
    for where in located:
        samples = invalid = 0
        with closing(stream_located(where, skip_invalid=skip_invalid, split=split, names=names)) as stream:
            for item in stream:
                if isinstance(item, InvalidRecord):
                    invalid += 1
                    if len(first_invalid) < keep_invalid:
                        first_invalid.append(item)
                else:
                    samples += 1
        checks.append(SourceCheck(where.shown, input_sha256(where), samples, invalid))
    return ValidationReport(tuple(checks), tuple(first_invalid))

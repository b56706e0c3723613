"""Links in the README and the docs: every relative target exists, and none leaves the repository.

Markdown links ``[text](target)`` and images ``![alt](target)`` outside fenced code blocks and
inline code are checked; a ``#anchor`` is ignored (only the file must exist).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

PAGES = sorted(
    {
        REPO / "README.md",
        *REPO.glob("docs/*.md"),
        *REPO.glob("examples/**/README.md"),
        *REPO.glob("evaluation/**/README.md"),
        *(REPO / name / "README.md" for name in ("training", "vectors", "calibration", "traits")),
    }
)
PAGES = [page for page in PAGES if page.is_file()]

LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*<?([^)\s>]*)>?(?:\s+\"[^\"]*\")?\s*\)")
INLINE_CODE = re.compile(r"(`+)(?:(?!\1).)+?\1", re.DOTALL)
FENCE = re.compile(r"^\s*(```|~~~)")


def _prose(text: str) -> str:
    """The page without fenced code blocks and inline code."""
    lines, inside = [], False
    for line in text.splitlines():
        if FENCE.match(line):
            inside = not inside
            lines.append("")
            continue
        lines.append("" if inside else line)
    return INLINE_CODE.sub("", "\n".join(lines))


def _targets(page: Path) -> list[str]:
    return LINK.findall(_prose(page.read_text(encoding="utf-8")))


def test_pages_are_found() -> None:
    assert REPO / "README.md" in PAGES
    assert any(page.parent == REPO / "docs" for page in PAGES)


def test_link_extraction_skips_code() -> None:
    text = 'see [a](a.md) and `[b](b.md)`\n```md\n[c](c.md)\n```\n![img](d.png) [e](f.md#x "title")\n'
    assert LINK.findall(_prose(text)) == ["a.md", "d.png", "f.md#x"]


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(REPO)))
def test_links_resolve_inside_the_repository(page: Path) -> None:
    problems = []
    for target in _targets(page):
        if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", target) or target.startswith("//"):
            problems.append(f"{target}: links outside the repository")
            continue
        path = target.split("#", 1)[0]
        if not path:
            continue  # an anchor on the same page
        resolved = (REPO / path.lstrip("/")) if path.startswith("/") else (page.parent / path)
        resolved = resolved.resolve()
        if not resolved.is_relative_to(REPO):
            problems.append(f"{target}: points outside the repository")
        elif not resolved.exists():
            problems.append(f"{target}: no such file")
    assert not problems, f"{page.relative_to(REPO)}: " + "; ".join(problems)

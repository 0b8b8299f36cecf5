"""The documentation pages (docs/*.md) as the tests read them, to compare their tables with the code."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
_HEADING = re.compile(r"^(#+) ")
_CELL_SEPARATOR = re.compile(r"(?<!\\)\|")  # a `\|` inside a cell is part of its text


def page(name: str) -> str:
    """The Markdown of ``docs/<name>``."""
    return (DOCS / name).read_text(encoding="utf-8")


def section(name: str, heading: str) -> str:
    """The text under ``heading`` (a whole heading line such as ``"## Exit codes"``) of ``docs/<name>``, up to the
    next heading of the same or a higher level. Outside code blocks only: a ``#`` comment in one is not a heading."""
    lines = page(name).splitlines()
    start = lines.index(heading)
    level = len(heading) - len(heading.lstrip("#"))
    body: list[str] = []
    in_code = False
    for line in lines[start + 1 :]:
        if line.startswith("```"):
            in_code = not in_code
        heading_match = None if in_code else _HEADING.match(line)
        if heading_match and len(heading_match.group(1)) <= level:
            break
        body.append(line)
    return "\n".join(body)


def table_rows(text: str) -> list[list[str]]:
    """The cells of every Markdown table row in ``text`` (stripped; header separators left out).

    ``| `a` | b |`` gives ``["`a`", "b"]``."""
    rows = []
    for line in text.splitlines():
        line = line.strip()
        if not (line.startswith("|") and line.endswith("|")):
            continue
        cells = [cell.strip() for cell in _CELL_SEPARATOR.split(line[1:-1])]
        if all(set(cell) <= set("-: ") for cell in cells):
            continue
        rows.append(cells)
    return rows


def code_name(cell: str) -> str | None:
    """``"input.empty"`` of the cell ``"`input.empty`"``; None when the cell is not one code span."""
    match = re.fullmatch(r"`([^`]+)`", cell)
    return match.group(1) if match else None

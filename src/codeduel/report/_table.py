"""A report table as cells, so Markdown and HTML show the same figures formatted once."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Table", "markdown_table"]


@dataclass(frozen=True)
class Table:
    head: tuple[str, ...]
    body: tuple[tuple[str, ...], ...]
    # A sentence above the table and one below it; empty when there is none.
    caption: str = ""
    note: str = ""


def markdown_table(table: Table) -> list[str]:
    """The table's lines, without its caption and note."""
    lines = ["| " + " | ".join(table.head) + " |", "|" + "---|" * len(table.head)]
    lines += ["| " + " | ".join(row) + " |" for row in table.body]
    return lines

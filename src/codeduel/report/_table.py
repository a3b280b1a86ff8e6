"""A report table as cells, so Markdown and HTML show the same figures formatted once."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from codeduel.metrics import Estimate

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


def usd(value: float | None) -> str:
    """Dollars for a table cell: cents for large sums, three significant digits for tiny ones."""
    if value is None:
        return "–"
    if value >= 1:
        return f"${value:,.2f}"
    # Local energy costs run to fractions of a cent: show three significant digits.
    return f"${value:.3g}" if value < 0.001 else f"${value:.4f}"


def pct(x: float) -> str:
    """A share as a percentage cell, one decimal."""
    return f"{100 * x:.1f}"


def estimate(est: Estimate | None) -> str:
    """A share with its interval: `62.3 (54.1–69.8)`."""
    return "–" if est is None else f"{pct(est.value)} ({pct(est.low)}–{pct(est.high)})"

"""Plain-text tables (Markdown pipe syntax, so they paste into docs/ unchanged) and number formats."""

from __future__ import annotations

from typing import Sequence

from nnunet_rdvit.number_format import MISSING

Cell = str | int | float | None


def fmt(value: Cell, digits: int = 3) -> str:
    """Numbers to a few significant digits; None (not measured here) to an em dash."""
    if value is None:
        return MISSING
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:.{digits}g}" if abs(value) < 10 ** digits else f"{value:,.0f}"


def ratio(value: float | None, reference: float | None) -> str:
    if value is None or not reference:
        return MISSING
    return f"{value / reference:.2f}×"


def table(title: str, header: Sequence[str], rows: Sequence[Sequence[Cell]], notes: Sequence[str] = ()) -> str:
    cells = [[fmt(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(header)]
    lines = [f"### {title}", ""]
    lines.append("| " + " | ".join(h.ljust(w) for h, w in zip(header, widths)) + " |")
    lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    # the first column names the row (left-aligned); the others hold numbers (right-aligned)
    lines += ["| " + " | ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))
              + " |" for row in cells]
    lines += [""] + [f"{note}  " for note in notes]
    return "\n".join(lines) + "\n"

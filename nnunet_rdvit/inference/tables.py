"""CSV output, written atomically; ``None`` becomes an empty cell and floats keep 4 decimals."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Iterable, Mapping

from nnunet_rdvit.atomic import atomic_path


def write_csv(target: Path, rows: Iterable[Mapping[str, object]]) -> None:
    rows = list(rows)
    columns: list[str] = []
    for row in rows:
        columns += [key for key in row if key not in columns]
    with atomic_path(target) as temporary, open(temporary, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        for row in rows:
            writer.writerow({key: _cell(value) for key, value in row.items()})


def _cell(value: object) -> object:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4f}"
    return value

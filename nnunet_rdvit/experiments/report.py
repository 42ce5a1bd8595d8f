"""Writing an experiment's results: CSV tables, a Markdown report and the Dice-vs-fraction figure, atomically."""

from __future__ import annotations

import csv
import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from nnunet_rdvit.ablation_names import FULL_MODEL
from nnunet_rdvit.atomic import atomic_path, write_text_atomic
from nnunet_rdvit.experiments.ablation import AblationRow
from nnunet_rdvit.experiments.aggregate import OVERALL, CaseScore, SummaryRow
from nnunet_rdvit.experiments.grid import ExperimentGrid, Job
from nnunet_rdvit.experiments.plot import plot_dice_vs_fraction
from nnunet_rdvit.experiments.stats import Comparison
from nnunet_rdvit.number_format import MISSING, format_number

FIGURE = "dice_vs_fraction.png"
MARKDOWN = "results.md"


@dataclass
class ExperimentResults:
    grid: ExperimentGrid
    structures: list[str]
    validation_scores: list[CaseScore]
    validation_rows: list[SummaryRow]
    comparisons: list[Comparison]
    missing: list[Job]
    hd95_unavailable: int
    test_scores: list[CaseScore] | None = None
    test_rows: list[SummaryRow] | None = None
    ablation: list[AblationRow] = field(default_factory=list)  # see experiments.ablation; empty: no ablation grid


def write_report(results: ExperimentResults, out_dir: Path) -> dict[str, Path]:
    """Writes every output into ``out_dir``; returns {description: path}."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "validation summary (CSV)": write_csv(out_dir / "validation_summary.csv", results.validation_rows,
                                               SummaryRow),
        "validation per case (CSV)": write_csv(out_dir / "validation_per_case.csv", results.validation_scores,
                                                CaseScore),
        "paired comparisons (CSV)": write_csv(out_dir / "comparisons.csv", results.comparisons, Comparison),
    }
    if results.ablation:
        paths["ablation table (CSV)"] = write_csv(out_dir / "ablation.csv", results.ablation, AblationRow)
    if results.test_rows is not None:
        paths["test-set summary (CSV)"] = write_csv(out_dir / "test_summary.csv", results.test_rows, SummaryRow)
        paths["test-set per case (CSV)"] = write_csv(out_dir / "test_per_case.csv", results.test_scores or [],
                                                      CaseScore)
    if results.validation_rows:
        plot_dice_vs_fraction(results.validation_rows, results.grid.trainers, out_dir / FIGURE,
                              f"{results.grid.dataset}\n{_budget(results.grid)}")
        paths["figure"] = out_dir / FIGURE
    write_text_atomic(out_dir / MARKDOWN, markdown_report(results))
    paths["report (Markdown)"] = out_dir / MARKDOWN
    return paths


def markdown_report(results: ExperimentResults) -> str:
    grid = results.grid
    title = "RD-ViT ablations" if results.ablation else "Low-data experiment"
    lines = [f"# {title} on {grid.dataset}", "",
             f"Budget: {_budget(grid)}. Trainers: {', '.join(grid.trainers)}; fractions of training patients: "
             f"{', '.join(f'{p} %' for p in grid.percents)}; folds {', '.join(map(str, grid.folds))}; plans "
             f"{grid.plans}. Result folders: `<trainer>_frac<P>{_suffix(grid)}__{grid.plans}__<configuration>`.", ""]
    if results.missing:
        lines += [f"**Not finished ({len(results.missing)}):** " + "; ".join(job.label() for job in results.missing),
                  ""]
    if results.ablation:
        lines += [f"## Ablations (validation, mean ± std over folds; Δ and p against {FULL_MODEL})", "",
                  "Δ: mean over the validation cases both models predicted of variant − full model; p: paired "
                  "Wilcoxon signed-rank test over those cases, two-sided, no correction for multiple comparisons.",
                  "", "### Dice", "", *ablation_table(results.ablation, "dice"), ""]
        if any(row.metric == "hd95" for row in results.ablation):
            lines += ["### HD95 in mm", "", *ablation_table(results.ablation, "hd95"), ""]
    lines += ["## Validation Dice (mean ± std over folds)", "", *dice_table(results.validation_rows, grid, "dice")]
    if any(math.isfinite(row.hd95_mean) for row in results.validation_rows):  # not with --no-hd95
        lines += ["", "## Validation HD95 in mm (mean ± std over folds)", "",
                  *dice_table(results.validation_rows, grid, "hd95"), "",
                  "HD95 is averaged over the cases where prediction and reference both contain the structure; the "
                  "overall HD95 needs all structures."]
    if results.hd95_unavailable:
        lines += [f"HD95 could not be computed for {results.hd95_unavailable} case(s): prediction or reference file "
                  f"not found."]
    dice_comparisons = [c for c in results.comparisons if c.metric == "dice"]
    if dice_comparisons:
        lines += ["", "## Paired comparisons of Dice (Wilcoxon signed-rank over validation cases, two-sided)", "",
                  "| A | B | fraction | configuration | structure | n | Dice A | Dice B | A − B | W | p |",
                  "|---|---|---:|---|---|---:|---:|---:|---:|---:|---:|"]
        lines += [f"| {c.trainer_a} | {c.trainer_b} | {c.percent} % | {c.configuration} | {c.structure} | {c.n} | "
                  f"{_number(c.mean_a)} | {_number(c.mean_b)} | {_number(c.mean_difference, signed=True)} | "
                  f"{_number(c.statistic, 1)} | {_p(c.p_value)} |" for c in dice_comparisons]
    if results.test_rows is not None:
        lines += ["", "## Test set: ensemble of the folds (mean ± std over test cases)", "",
                  "### Dice", "", *dice_table(results.test_rows, grid, "dice", unit="cases"),
                  "", "### HD95 in mm", "", *dice_table(results.test_rows, grid, "hd95", unit="cases")]
    return "\n".join(lines) + "\n"


def dice_table(rows: Sequence[SummaryRow], grid: ExperimentGrid, metric: str, unit: str = "folds") -> list[str]:
    """Markdown table: one row per configuration × fraction × trainer, one column per structure and the mean."""
    structures = list(dict.fromkeys(row.structure for row in rows))
    header = [f"| trainer | fraction | configuration | {unit} | " + " | ".join(structures) + " |",
              "|---|---:|---|---:|" + "---:|" * len(structures)]
    keyed: dict[tuple, dict[str, SummaryRow]] = {}
    for row in rows:
        keyed.setdefault((row.configuration, row.percent, row.trainer), {})[row.structure] = row
    order = {trainer: index for index, trainer in enumerate(grid.trainers)}
    body = []
    for configuration, percent, trainer in sorted(keyed, key=lambda k: (k[0], k[1], order.get(k[2], len(order)))):
        cells = keyed[(configuration, percent, trainer)]
        n = cells[OVERALL].n if OVERALL in cells else next(iter(cells.values())).n
        values = [_mean_std(cells[s], metric) if s in cells else MISSING for s in structures]
        body.append(f"| {trainer} | {percent} % | {configuration} | {n} | " + " | ".join(values) + " |")
    return header + (body or ["| (no finished results) |"])


def ablation_table(rows: Sequence[AblationRow], metric: str) -> list[str]:
    """Markdown table: one row per configuration × fraction × variant (full model first), one column per
    structure and the mean, each cell ``mean ± std (Δ …, p …)``."""
    rows = [row for row in rows if row.metric == metric]
    structures = list(dict.fromkeys(row.structure for row in rows))
    header = ["| variant | fraction | configuration | folds | " + " | ".join(structures) + " | change |",
              "|---|---:|---|---:|" + "---:|" * len(structures) + "---|"]
    keyed: dict[tuple, dict[str, AblationRow]] = {}
    for row in rows:  # already in table order (experiments.ablation.ablation_rows)
        keyed.setdefault((row.configuration, row.percent, row.trainer), {})[row.structure] = row
    body = []
    for (configuration, percent, trainer), cells in keyed.items():
        first = next(iter(cells.values()))
        values = [_ablation_cell(cells[s], metric) if s in cells else MISSING for s in structures]
        body.append(f"| {trainer} | {percent} % | {configuration} | {first.n_folds} | " + " | ".join(values)
                    + f" | {first.change} |")
    return header + (body or ["| (no finished results) |"])


def _ablation_cell(row: AblationRow, metric: str) -> str:
    digits = 3 if metric == "dice" else 1
    text = _format_mean_std(row.mean, row.std, digits)
    if text == MISSING or row.is_reference or math.isnan(row.difference):
        return text
    return f"{text} (Δ {_number(row.difference, digits, signed=True)}, p {_p(row.p_value)})"


def _mean_std(row: SummaryRow, metric: str) -> str:
    mean, std = (row.dice_mean, row.dice_std) if metric == "dice" else (row.hd95_mean, row.hd95_std)
    return _format_mean_std(mean, std, 3 if metric == "dice" else 1)


def _format_mean_std(mean: float, std: float, digits: int) -> str:
    if math.isnan(mean):
        return MISSING
    return _number(mean, digits) + ("" if math.isnan(std) else f" ± {_number(std, digits)}")


def _number(value: float, digits: int = 3, signed: bool = False) -> str:
    return format_number(value, f"{'+' if signed else ''}.{digits}f")


def _p(value: float) -> str:
    return MISSING if math.isnan(value) else (f"{value:.2g}" if value < 0.001 else f"{value:.3f}")


def _budget(grid: ExperimentGrid) -> str:
    text = grid.budget.describe() if grid.budget else "nnU-Net's default budget (1000 epochs × 250 iterations)"
    return text + ("" if grid.test_time_mirroring else ", no test-time mirroring")


def _suffix(grid: ExperimentGrid) -> str:
    return (grid.budget.suffix if grid.budget else "") + ("" if grid.test_time_mirroring else "_notta")


def write_csv(path: Path, rows: Sequence, row_type: type) -> Path:
    """``rows`` (instances of the dataclass ``row_type``) as a CSV with one column per field, NaN as empty."""
    fields = [field.name for field in dataclasses.fields(row_type)]
    with atomic_path(path) as temporary:
        with open(temporary, "w", newline="", encoding="utf-8") as file:
            writer = csv.writer(file)
            writer.writerow(fields)
            for row in rows:
                writer.writerow(["" if isinstance(v, float) and math.isnan(v) else v
                                 for v in (getattr(row, f) for f in fields)])
    return path

"""The evaluation's outputs: eval.json, the per-token depth histogram and accuracy against inference
steps, each written atomically."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nnunet_rdvit.atomic import atomic_path, write_json_atomic


def write_report(output: Path, report: dict[str, Any]) -> list[Path]:
    """Write ``eval.json`` and, when the report has them, ``depth_histogram.png`` and
    ``accuracy_vs_loops.png``; return the paths written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    output = Path(output)
    written = [output / "eval.json"]
    write_json_atomic(written[0], report)
    figures = []
    counts = report.get("depth_histogram")
    if counts:
        fig, ax = plt.subplots(figsize=(6, 3.5))
        total = sum(counts)
        ax.bar(range(1, len(counts)), [100 * c / total for c in counts[1:]], color="tab:blue")  # depth ≥ 1
        ax.set_xlabel(report.get("depth_unit", "depth"))
        ax.set_ylabel("% of patch tokens")
        ax.set_title(f"{report['model_name']}: per-token depth (mean {report['mean_depth']:.2f})")
        figures.append((fig, output / "depth_histogram.png"))
    sweep = report.get("loops_sweep")
    if sweep:
        fig, ax = plt.subplots(figsize=(6, 3.5))
        ax.plot([row["n_loops"] for row in sweep], [row["top1"] for row in sweep], "o-", label="top-1")
        ax.plot([row["n_loops"] for row in sweep], [row["top5"] for row in sweep], "s--", label="top-5")
        ax.axvline(report["trained_loops"], color="grey", linestyle=":", label="trained")
        ax.set_xlabel("inference steps (n_loops)")
        ax.set_ylabel("accuracy (%)")
        ax.set_title(f"{report['model_name']}: depth extrapolation")
        ax.legend()
        figures.append((fig, output / "accuracy_vs_loops.png"))
    for fig, path in figures:
        fig.tight_layout()
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=120, format="png")
        plt.close(fig)
        written.append(path)
    return written

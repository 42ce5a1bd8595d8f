"""The report folder: ``report.json`` (everything), ``report.md`` (the tables) and the PNGs, written atomically."""

from __future__ import annotations

from pathlib import Path

from nnunet_rdvit.analysis.depth import MEAN
from nnunet_rdvit.atomic import write_json_atomic, write_text_atomic
from nnunet_rdvit.number_format import MISSING, format_number

REPORT_JSON, REPORT_MD = "report.json", "report.md"


def write_report(folder: Path, report: dict) -> list[Path]:
    write_json_atomic(folder / REPORT_JSON, report)
    write_text_atomic(folder / REPORT_MD, markdown(report))
    return [folder / REPORT_JSON, folder / REPORT_MD]


def markdown(report: dict) -> str:
    model, cases = report["model"], report["cases"]
    experts = f"MoE with {model['experts']} experts" if model["experts"] else "no MoE"
    lines = [f"# RD-ViT analysis: {model['trainer']} {model['configuration']} fold {model['fold']}", "",
             f"Model: `{model['folder']}` ({model['checkpoint']}); T = {model['trained_loops']} loops, "
             f"ACT {'on' if model['act'] else 'off'}, "
             f"{experts}, token size "
             f"{'×'.join(map(str, model['token_size']))}.",
             f"Cases: {len(cases['names'])} ({cases['source']}), in nnU-Net's preprocessed space; "
             f"device {model['device']}, mirroring {'on' if model['mirroring'] else 'off'}.", ""]
    lines += _depth(report["depth_extrapolation"]) + _halting(report["halting"]) + _experts(report["experts"])
    lines += _dynamics(report["training_dynamics"])
    lines += ["## Files", ""] + [f"- `{name}`" for name in report["files"]] + [""]
    return "\n".join(lines)


def _depth(section: dict) -> list[str]:
    lines = ["## Depth extrapolation", "", section["method"], ""]
    settings, structures = section["settings"], section["structures"]
    names = [*structures, MEAN]
    header = ["loops"] + [f"{_SETTING[s]} {n}" for s in settings for n in names] + \
             [f"{_SETTING[s]} loops/token" for s in settings]
    lines += [_row(header), _row(["---"] * len(header))]
    for row in section["rows"]:
        cells = [f"**{row['loops']}** (T)" if row["trained"] else str(row["loops"])]
        cells += [_mean_std(row[s]["dice"][n]) for s in settings for n in names]
        cells += [_mean_std(row[s]["loops_per_token"], 2) for s in settings]
        lines.append(_row(cells))
    return lines + ["", "![depth extrapolation](depth_extrapolation.png)", ""]


def _halting(section: dict) -> list[str]:
    lines = ["## ACT halting: boundaries, interiors, background", ""]
    if not section["applicable"]:
        return lines + [f"Not applicable: {section['reason']}", ""]
    lines += [section["method"], "", _row(["token category", "mean loops (mean ± std over cases)", "cases"]),
              _row(["---"] * 3)]
    for name, value in section["summary"]["categories"].items():
        lines.append(_row([name, _mean_std(value, 3), str(value["cases"])]))
    lines += ["", _row(["paired test (Wilcoxon signed-rank)", "pairs", "mean difference", "first greater in",
                        "p"]), _row(["---"] * 5)]
    for name, test in section["summary"]["tests"].items():
        p = format_number(test["p_value"], ".3g")
        difference = format_number(test["mean_difference"], "+.3f")
        greater = MISSING if test["first_greater"] is None else f"{test['first_greater']} / {test['pairs']}"
        lines.append(_row([name, str(test["pairs"]), difference, greater, p + (f" ({test['note']})"
                                                                                 if test.get("note") else "")]))
    return lines + ["", "![halting by category](halting.png)", "", "![halting examples](halting_examples.png)", ""]


def _experts(section: dict) -> list[str]:
    lines = ["## MoE experts and structures", ""]
    if not section["applicable"]:
        return lines + [f"Not applicable: {section['reason']}", ""]
    lines += [section["method"], ""]
    for scope, result in section["specialisation"].items():
        labels = result["labels"]
        shuffled = result["shuffled_mutual_information_bits"]
        lines += [f"### {scope} ({result['tokens']} tokens, {result['routed_slots']} routed slots)", "",
                  f"Mutual information I(expert; structure) = {result['mutual_information_bits']:.4f} bits, "
                  f"normalised {result['normalised_mutual_information']:.3f}; shuffled baseline "
                  f"{_number(shuffled['mean'], 4)} ± {_number(shuffled['std'], 4)} bits (normalised "
                  f"{_number(result['shuffled_normalised_mutual_information'], 3)}, {shuffled['permutations']} "
                  f"permutations), permutation p = {_number(result['p_value'], 3)}.", "",
                  _row(["expert"] + [f"{name} share" for name in labels]), _row(["---"] * (len(labels) + 1))]
        for expert, shares in enumerate(result["share_of_structure"]):
            lines.append(_row([str(expert)] + [f"{s:.3f}" for s in shares]))
        lines.append("")
    return lines + ["Columns sum to 1: where each structure's routed slots go.", "",
                    "![experts](experts.png)", ""]


def _dynamics(section: dict) -> list[str]:
    lines = ["## Training dynamics", ""]
    if not section["available"]:
        return lines + [f"Not available: {section['reason']}", ""]
    lines += [f"{section['epochs']} epoch(s), from `{section['source']}`.", "",
              _row(["series", "first epoch", "last epoch"]), _row(["---"] * 3)]
    for name, values in section["first_and_last"].items():
        lines.append(_row([name, _number(values["first"], 4), _number(values["last"], 4)]))
    figure = ["", "![training dynamics](training_dynamics.png)"] if section.get("figure") else []
    return lines + figure + [""]


_SETTING = {"act_on": "ACT on", "act_off": "ACT off"}


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _mean_std(value: dict, digits: int = 3) -> str:
    if value["mean"] is None:
        return MISSING
    return f"{value['mean']:.{digits}f} ± {value['std']:.{digits}f}"


def _number(value: float | None, digits: int) -> str:
    return format_number(value, f".{digits}f")

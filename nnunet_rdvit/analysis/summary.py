"""The few lines ``analyze`` prints: one per section, each answering the paper's claim for this model."""

from __future__ import annotations

from nnunet_rdvit.analysis.depth import MEAN
from nnunet_rdvit.analysis.halting import ALL_STRUCTURES
from nnunet_rdvit.number_format import format_number

_SETTING = {"act_on": "ACT on", "act_off": "ACT off"}


def summary_lines(report: dict) -> list[str]:
    model, cases = report["model"], report["cases"]
    lines = [f"{model['trainer']} {model['configuration']} fold {model['fold']}: {len(cases['names'])} case(s) "
             f"({cases['source']}), T = {model['trained_loops']}"]
    depth = report["depth_extrapolation"]
    rows = depth["rows"]
    shown = {row["loops"]: row for row in rows if row["trained"] or row is rows[-1]}  # at T and the deepest
    for setting in depth["settings"]:
        parts = [f"{_dice(row, setting)} at {loops} loops{' (T)' if row['trained'] else ''}"
                 for loops, row in shown.items()]
        lines.append(f"  depth ({_SETTING[setting]}): mean Dice {', '.join(parts)}")
    halting = report["halting"]
    if halting["applicable"]:
        categories = halting["summary"]["categories"]
        test = halting["summary"]["tests"][f"{ALL_STRUCTURES}: boundary vs interior"]
        lines.append(f"  halting: {_loops(categories[f'{ALL_STRUCTURES} boundary'])} loops on boundaries vs "
                     f"{_loops(categories[f'{ALL_STRUCTURES} interior'])} in interiors vs "
                     f"{_loops(categories['background'])} on background; boundary longer in "
                     f"{test['first_greater'] or 0}/{test['pairs']} cases (Wilcoxon p = {_number(test['p_value'], '.3g')})")
    else:
        lines.append(f"  halting: not applicable ({halting['reason']})")
    experts = report["experts"]
    if experts["applicable"]:
        for scope, result in experts["specialisation"].items():
            shuffled, p = result["shuffled_normalised_mutual_information"], result["p_value"]
            lines.append(f"  experts ({scope}): normalised MI {result['normalised_mutual_information']:.3f} vs "
                         f"{_number(shuffled, '.3f')} shuffled (p = {_number(p, '.3g')})")
    else:
        lines.append(f"  experts: not applicable ({experts['reason']})")
    dynamics = report["training_dynamics"]
    if dynamics["available"] and "ponder_time" in dynamics["first_and_last"]:
        ponder = dynamics["first_and_last"]["ponder_time"]
        lines.append(f"  training: ponder time {ponder['first']:.2f} → {ponder['last']:.2f} loops over "
                     f"{dynamics['epochs']} epoch(s)")
    elif not dynamics["available"]:
        lines.append(f"  training: {dynamics['reason']}")
    return lines


def _dice(row: dict, setting: str) -> str:
    return _number(row[setting]["dice"][MEAN]["mean"], ".3f")


def _loops(value: dict) -> str:
    return _number(value["mean"], ".2f")


def _number(value: float | None, spec: str) -> str:
    return format_number(value, spec)

"""``analyze``: one trained fold, its labelled cases, every section of the report, the report folder."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from nnunet_rdvit.analysis.cases import (LabelledCase, PreprocessedCase, check_case_files, folder_cases,
                                         label_names, preprocess, structures, validation_cases)
from nnunet_rdvit.analysis.depth import depth_rows, dice_per_structure, predict_at_depth
from nnunet_rdvit.analysis.dynamics import training_dynamics
from nnunet_rdvit.analysis.experts import specialisation
from nnunet_rdvit.analysis.halting import ALL_STRUCTURES, case_halting, halting_summary
from nnunet_rdvit.analysis.network import RecurrentNetwork, recurrent_network
from nnunet_rdvit.analysis.report import REPORT_JSON, REPORT_MD, write_report
from nnunet_rdvit.analysis.token_labels import majority_label
from nnunet_rdvit.analysis.tokens import CaseTokens, collect_tokens
from nnunet_rdvit.errors import UserError
from nnunet_rdvit.inference.model import LoadedModel, available_folds, load_model
from nnunet_rdvit.output_lock import output_lock
from nnunet_rdvit.paths import check_output_outside, prepare_output_folder, remove_if_empty


# Depth extrapolation runs up to this many times the trained loops (the default goes to 2 T).
MAX_LOOPS_PER_TRAINED_LOOP = 10


@dataclass
class AnalyzeSettings:
    model: Path
    fold: int | str | None = None  # None: the first fold with the checkpoint
    checkpoint: str = "checkpoint_final.pth"
    images: Path | None = None  # with ``labels``: any labelled folder instead of the validation cases
    labels: Path | None = None
    max_cases: int | None = None
    loops: list[int] | None = None  # None: 1 … 2T
    act_off: bool = True  # also run every loop count with halting off (models trained with ACT)
    mirroring: bool = False
    step_size: float = 0.5
    device: str = "auto"
    output: Path | None = None  # None: MODEL/fold_N/analysis
    permutations: int = 1000
    examples: int = 3
    log: Callable[[str], None] = field(default=print)


@dataclass
class AnalysisResult:
    report: dict
    output: Path
    files: list[Path]


def analyze(settings: AnalyzeSettings) -> AnalysisResult:
    started = time.time()
    if (settings.images is None) != (settings.labels is None):
        raise UserError("--images and --labels go together: pass both (a labelled folder) or neither (the fold's "
                        "validation cases)")
    model = _load(settings)
    fold = model.folds[0]
    recurrent = recurrent_network(model.predictor.network, model.trainer)
    recurrent.network.load_state_dict(model.predictor.list_of_parameters[0])  # the one fold; every pass uses it
    loops = _loops(settings.loops, recurrent)
    depth_settings = (["act_on"] + (["act_off"] if settings.act_off else [])) if recurrent.act else ["act_off"]
    structures(model)  # refuses region-based models before any case is read
    cases = (validation_cases(model.folder, fold, model.predictor.dataset_json) if settings.images is None else
             folder_cases(settings.images, settings.labels, model.predictor.dataset_json))
    cases = cases[:settings.max_cases] if settings.max_cases else cases
    check_case_files(cases)
    output = settings.output or model.folder / f"fold_{fold}" / "analysis"
    _check_output(output, model.folder, [p for p in (settings.images, settings.labels) if p is not None])
    created = prepare_output_folder(output)
    try:
        with output_lock(output, "analyze", clean_depth=0):
            return _analyze(settings, model, recurrent, cases, loops, depth_settings, output, started)
    finally:
        remove_if_empty(output, created)


def _analyze(settings: AnalyzeSettings, model: LoadedModel, recurrent: RecurrentNetwork,
             cases: list[LabelledCase], loops: list[int], depth_settings: list[str], output: Path,
             started: float) -> AnalysisResult:
    fold = model.folds[0]
    named = structures(model)
    names = label_names(model)
    depth_results, tokens, examples = [], [], []
    for index, case in enumerate(cases, 1):
        settings.log(f"[{index}/{len(cases)}] {case.name}: preprocessing, token pass, "
                     f"{len(loops) * len(depth_settings)} depth settings")
        preprocessed = preprocess(model, case)
        tokens.append(collect_tokens(model, preprocessed, max(names) + 1))
        for n_loops in loops:
            for setting in depth_settings:
                prediction, loops_per_token = predict_at_depth(model, preprocessed.data, n_loops, setting == "act_on")
                depth_results.append({"case": case.name, "loops": n_loops, "setting": setting,
                                      "dice": dice_per_structure(prediction, preprocessed.labels, named),
                                      "loops_per_token": loops_per_token})
        if recurrent.act and len(examples) < settings.examples:
            examples.append(_example(model, preprocessed))

    report = {
        "model": {**model.describe(), "fold": fold, "trained_loops": recurrent.num_loops, "act": recurrent.act,
                  "min_loops": recurrent.min_loops, "experts": recurrent.num_experts,
                  "token_size": list(recurrent.token_size),
                  "mirroring": bool(settings.mirroring and model.predictor.allowed_mirroring_axes)},
        "cases": {"source": f"validation cases of fold {fold}" if settings.images is None else
                  f"{settings.images} with labels {settings.labels}", "names": [c.name for c in cases]},
        "depth_extrapolation": {
            "method": "Dice per structure on nnU-Net's preprocessed grid against the preprocessed reference, "
                      "nnU-Net's sliding window at a fixed number of loops; ACT on: loops capped at n (tokens "
                      "still halt), ACT off: every token runs n loops. Mean ± std over cases; Dice undefined "
                      "(structure absent from prediction and reference) cases left out.",
            "structures": list(named), "settings": depth_settings, "trained_loops": recurrent.num_loops,
            "rows": depth_rows(depth_results, loops, recurrent.num_loops, depth_settings, list(named)),
            "per_case": depth_results},
        "halting": _halting_section(tokens, named, recurrent),
        "experts": _experts_section(tokens, names, recurrent, settings.permutations),
        "training_dynamics": training_dynamics(model.folder / f"fold_{fold}", settings.checkpoint),
        "files": [],
    }
    report["seconds"] = round(time.time() - started, 1)
    files = _write(output, report, examples, names, named, recurrent)
    return AnalysisResult(report, output, files)


def _load(settings: AnalyzeSettings) -> LoadedModel:
    fold = settings.fold
    if fold is None and settings.model.is_dir():
        fold = next(iter(available_folds(settings.model, settings.checkpoint)), None)
    return load_model(settings.model, None if fold is None else [fold], settings.checkpoint, settings.device,
                      settings.mirroring, settings.step_size, acdc_nifti=False)


def _loops(requested: list[int] | None, recurrent: RecurrentNetwork) -> list[int]:
    loops = sorted(set(requested)) if requested else list(range(1, 2 * recurrent.num_loops + 1))
    low = [n for n in loops if n < recurrent.min_loops]
    if low:
        raise UserError(f"--loops {' '.join(map(str, low))}: the model runs at least min_loops = "
                        f"{recurrent.min_loops} loops")
    most = MAX_LOOPS_PER_TRAINED_LOOP * recurrent.num_loops
    high = [n for n in loops if n > most]
    if high:
        raise UserError(f"--loops {' '.join(map(str, high))}: at most {most} loops ({MAX_LOOPS_PER_TRAINED_LOOP} × "
                        f"the trained T = {recurrent.num_loops}); each loop count is a full sliding-window "
                        f"prediction of every case, its time grows with the loops, and states this far past the "
                        f"trained depth have long converged or diverged")
    return loops


def _check_output(output: Path, model_folder: Path, input_folders: list[Path]) -> None:
    check_output_outside(output, input_folders)
    if output.resolve() in (model_folder.resolve(), *model_folder.resolve().parents):
        raise UserError(f"output {output} would write the report into the model folder itself; pass a folder of "
                        f"its own (the default is MODEL_DIR/fold_N/analysis)")


def _halting_section(tokens: list[CaseTokens], named: dict[str, int], recurrent: RecurrentNetwork) -> dict:
    if not recurrent.act:
        return {"applicable": False, "reason": "the model was trained without ACT; every token runs all "
                                               f"{recurrent.num_loops} loops"}
    per_case = [case_halting(t, named) for t in tokens]
    return {"applicable": True,
            "method": "Mean loops per token at the trained T with ACT, over the tokens of nnU-Net's sliding-window "
                      "tiles (a region covered by overlapping tiles counts once per tile). boundary(s): tokens "
                      "holding s and any other label; interior(s): tokens holding only s; background: only label 0; "
                      f"'{ALL_STRUCTURES}' pools every boundary and every single-structure interior token. Paired "
                      "two-sided Wilcoxon signed-rank tests across cases; mean difference > 0 means the first "
                      "category looped longer.",
            "per_case": per_case, "summary": halting_summary(per_case, list(named))}


def _experts_section(tokens: list[CaseTokens], names: dict[int, str], recurrent: RecurrentNetwork,
                     permutations: int) -> dict:
    if not recurrent.num_experts:
        return {"applicable": False, "reason": "the model's shared block has no Mixture of Experts"}
    counts = np.concatenate([t.expert_counts for t in tokens])
    labels = np.concatenate([majority_label(t.histogram) for t in tokens])
    scopes = {"all labels": list(names), "structures only": [label for label in names if label]}
    specialisations = {}
    for scope, chosen in scopes.items():
        result = specialisation(counts, labels, chosen, permutations)
        specialisations[scope] = {"labels": [names[label] for label in chosen], **result}
    return {"applicable": True, "experts": recurrent.num_experts,
            "method": "Each token takes the majority label of its reference voxels; each of its routed slots (per "
                      "loop and top-k choice, at the trained T with ACT as trained) counts for (expert, label). "
                      "Mutual information between expert and label over routed slots, normalised by "
                      "min(H(expert), H(label)); baseline: labels permuted across tokens. 'structures only' "
                      "leaves out background tokens, which asks whether experts separate the structures.",
            "specialisation": specialisations}


def _example(model: LoadedModel, case: PreprocessedCase) -> dict:
    """The middle foreground slice of the case with its halting map, along the slice axis: the first axis for 2d
    models (their tiles are slices), else the axis with the largest spacing."""
    from nnunet_rdvit.inference.introspection import window_maps

    halting = window_maps(model, case.data).halting[0].numpy()
    spacing = case.spacing
    two_d = len(model.predictor.configuration_manager.patch_size) < case.labels.ndim
    axis = 0 if two_d else int(np.argmax(spacing))
    other = tuple(a for a in range(case.labels.ndim) if a != axis)
    with_foreground = np.flatnonzero((case.labels > 0).any(axis=other))
    index = int(with_foreground[len(with_foreground) // 2]) if with_foreground.size else case.labels.shape[axis] // 2
    rows_spacing, columns_spacing = (spacing[a] for a in other)
    return {"name": case.name, "slice": index, "aspect": rows_spacing / columns_spacing,
            "image": np.take(case.data[0].numpy(), index, axis), "labels": np.take(case.labels, index, axis),
            "halting": np.take(halting, index, axis)}


def _write(output: Path, report: dict, examples: list[dict], names: dict[int, str], named: dict[str, int],
           recurrent: RecurrentNetwork) -> list[Path]:
    from nnunet_rdvit.analysis import figures
    from nnunet_rdvit.training.progress_plot import plot_aux_progress

    output.mkdir(parents=True, exist_ok=True)
    depth = report["depth_extrapolation"]
    figures.depth_figure(output / "depth_extrapolation.png", depth["rows"], depth["settings"], named,
                         recurrent.num_loops)
    written = [output / "depth_extrapolation.png"]
    if report["halting"]["applicable"]:
        figures.halting_figure(output / "halting.png", report["halting"]["per_case"], list(named))
        figures.halting_examples_figure(output / "halting_examples.png", examples, names, recurrent.num_loops)
        written += [output / "halting.png", output / "halting_examples.png"]
    if report["experts"]["applicable"]:
        figures.experts_figure(output / "experts.png", report["experts"]["specialisation"]["all labels"],
                               report["experts"]["specialisation"]["all labels"]["labels"])
        written.append(output / "experts.png")
    dynamics = report["training_dynamics"]
    if dynamics["available"]:
        dynamics["figure"] = any(dynamics["series"].get(key) for key in ("ponder_time", "balance_loss", "expert_load"))
        if dynamics["figure"]:  # the same keys plot_aux_progress draws
            plot_aux_progress(dynamics["series"], output / "training_dynamics.png")
            written.append(output / "training_dynamics.png")
    report["files"] = [REPORT_JSON, REPORT_MD] + [p.name for p in written]
    return write_report(output, report) + written

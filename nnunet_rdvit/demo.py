"""The built-in end-to-end run: synthetic ACDC-layout data → conversion → nnU-Net planning and
preprocessing → RD-ViT training → prediction of held-out patients → evaluation, all through the
stock ``nnUNetv2_*`` commands, in one self-contained output folder."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from nnunet_rdvit.acdc_labels import LABEL_NAMES
from nnunet_rdvit.devices import resolve_device_name
from nnunet_rdvit.errors import UserError
from nnunet_rdvit.stock_commands import nnunet_environment, run_stock_command

MARKER = ".nnunet_rdvit_demo"  # only folders carrying this marker may be replaced with --overwrite


@dataclass
class DemoSettings:
    output: Path
    overwrite: bool = False
    train_patients: int = 10
    test_patients: int = 4
    configuration: str = "2d"
    trainer: str = "RDViTTrainer_demo"
    device: str = "auto"
    seed: int = 0
    dataset_id: int = 990


@dataclass
class DemoResult:
    dice: dict[str, float]  # per structure and "mean"
    paths: dict[str, Path]
    seconds: float


def check_output_folder(output: Path, overwrite: bool) -> None:
    """The refusals of :func:`prepare_output_folder`, touching nothing: a file in the way, an earlier run there
    without ``overwrite``, or a non-empty folder the demo did not create."""
    if output.exists() and not output.is_dir():
        raise UserError(f"{output} exists and is not a folder; choose another --output")
    if output.is_dir() and any(output.iterdir()):
        if not overwrite:
            raise UserError(f"{output} already exists and is not empty; pass --overwrite to replace an earlier "
                            "demo run there, or choose another --output")
        if not (output / MARKER).exists():
            raise UserError(f"{output} was not created by `nnunet-rdvit demo` (no {MARKER} file); refusing to "
                            "delete it even with --overwrite — choose another --output")


def prepare_output_folder(output: Path, overwrite: bool) -> None:
    """Create ``output``; an existing non-empty folder is replaced only with ``overwrite`` and only if
    an earlier demo made it — the demo never deletes a folder it did not create."""
    check_output_folder(output, overwrite)
    if output.is_dir() and any(output.iterdir()):
        shutil.rmtree(output)
    try:
        output.mkdir(parents=True, exist_ok=True)
        (output / MARKER).write_text("created by nnunet-rdvit demo\n")
    except OSError as error:
        raise UserError(f"cannot write the demo output folder {output}: {error.strerror}; choose a writable "
                        "--output") from error


def check_settings(settings: DemoSettings) -> None:
    """Refuse what would fail only after minutes of data generation and planning: a CUDA device that is not
    there, an nnU-Net worker count nnU-Net cannot parse, a trainer nnU-Net cannot find."""
    resolve_device_name(settings.device)
    workers = os.environ.get("nnUNet_n_proc_DA")
    if workers is not None and not workers.strip().isdigit():
        raise UserError(f"nnUNet_n_proc_DA={workers!r} is not a whole number of data-augmentation workers; set it "
                        "to 0 (augment in the main process, fastest on a CPU) or more, or unset it")
    _check_trainer_exists(settings.trainer)


def _check_trainer_exists(name: str) -> None:
    """nnU-Net's own trainer lookup (the one ``nnUNetv2_train -tr`` uses; a few seconds: it imports every trainer)."""
    from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name

    with contextlib.redirect_stdout(io.StringIO()):  # nnU-Net narrates its search
        try:
            recursive_find_trainer_class_by_name(name)
        except (RuntimeError, AssertionError):  # no class of that name; a class that is not an nnUNetTrainer
            raise UserError(f"nnU-Net finds no trainer named {name!r} (searched nnU-Net's trainers and "
                            f"nnUNet_extTrainer={os.environ.get('nnUNet_extTrainer', '')!r}); use e.g. "
                            "RDViTTrainer_demo, RDViTTrainer or nnUNetTrainer, or point nnUNet_extTrainer to the "
                            "folder with your trainer's module") from None


def _stage(number: int, total: int, text: str) -> None:
    print(f"\n[{number}/{total}] {text}", flush=True)


def run_demo(settings: DemoSettings) -> DemoResult:
    from nnunet_rdvit.dataset_conversion import convert_acdc
    from nnunet_rdvit.synthetic_acdc import generate_synthetic_acdc

    start = time.time()
    out = settings.output.resolve()
    check_output_folder(out, settings.overwrite)  # the quick refusals first, then the trainer lookup
    check_settings(settings)
    prepare_output_folder(out, settings.overwrite)
    raw, nn_raw, nn_pre, nn_res, logs = (out / "acdc_raw", out / "nnUNet_raw", out / "nnUNet_preprocessed",
                                         out / "nnUNet_results", out / "logs")
    device = resolve_device_name(settings.device)
    total = 6

    _stage(1, total, f"Generating a synthetic ACDC-layout dataset ({settings.train_patients} training + "
                     f"{settings.test_patients} held-out patients, ED/ES frames, anisotropic spacing)")
    generate_synthetic_acdc(raw, settings.train_patients, seed=settings.seed)
    held_out = generate_synthetic_acdc(out / ".held_out", settings.test_patients, seed=settings.seed + 1,
                                       first_patient_id=101)
    (held_out / "training").rename(raw / "testing")
    shutil.rmtree(held_out)

    env = nnunet_environment(nn_raw, nn_pre, nn_res)  # the demo's own folders, never the user's nnU-Net folders
    _stage(2, total, "Converting it to nnU-Net's raw format (patient-grouped 5-fold split)")
    conversion = convert_acdc(raw, nn_raw, settings.dataset_id, progress=True, environment=env)
    dataset = conversion.dataset_dir.name
    print(f"  {conversion.n_training_cases} training cases, {conversion.n_test_cases} test cases -> "
          f"{conversion.dataset_dir}")

    did = str(settings.dataset_id)
    _stage(3, total, f"nnU-Net planning and preprocessing ({settings.configuration})")
    # Planning sets torch's thread count from nnUNet_n_proc_DA and needs >= 1, whatever training uses (0 is the
    # CPU users' setting for training).
    run_stock_command("nnUNetv2_plan_and_preprocess",
                      ["-d", did, "-c", settings.configuration, "-np", "1", "--verify_dataset_integrity"],
                      {**env, "nnUNet_n_proc_DA": "1"}, logs / "plan_and_preprocess.log")

    _stage(4, total, f"Training {settings.trainer} on fold 0 ({device})")
    run_stock_command("nnUNetv2_train", [did, settings.configuration, "0", "-tr", settings.trainer, "-device", device],
                      {**env, "nnUNet_n_proc_DA": env.get("nnUNet_n_proc_DA", "0" if device == "cpu" else "4")},
                      logs / "train.log")

    predictions = out / "predictions"
    _stage(5, total, "Predicting the held-out patients")
    run_stock_command("nnUNetv2_predict", ["-i", nn_raw / dataset / "imagesTs", "-o", predictions, "-d", did,
                                           "-c", settings.configuration, "-tr", settings.trainer, "-f", "0",
                                           "-device", device, "-npp", "1", "-nps", "1"], env, logs / "predict.log")

    _stage(6, total, "Evaluating against the held-out labels")
    model = nn_res / dataset / f"{settings.trainer}__nnUNetPlans__{settings.configuration}"
    run_stock_command("nnUNetv2_evaluate_folder", [nn_raw / dataset / "labelsTs", predictions,
                                                   "-djfile", model / "dataset.json", "-pfile", model / "plans.json",
                                                   "-np", "1"], env, logs / "evaluate.log")
    summary = json.loads((predictions / "summary.json").read_text())
    dice = {LABEL_NAMES.get(label, label): float(values["Dice"])
            for label, values in summary["mean"].items()}
    dice["mean"] = float(summary["foreground_mean"]["Dice"])
    paths = {
        "synthetic ACDC-layout data": raw,
        "nnU-Net raw dataset": conversion.dataset_dir,
        "preprocessed data and plans": nn_pre / dataset,
        "trained model (fold 0)": model / "fold_0",
        "training curves": model / "fold_0" / "progress.png",
        "RD-ViT curves (ponder time, MoE)": model / "fold_0" / "aux_progress.png",
        "predictions": predictions,
        "evaluation summary": predictions / "summary.json",
        "logs of every step": logs,
    }
    return DemoResult(dice, paths, time.time() - start)


def print_result(result: DemoResult, settings: DemoSettings) -> None:
    print("\nDice on the held-out patients (synthetic data, short training: a pipeline check, not a benchmark)")
    for name, value in result.dice.items():
        print(f"  {name:>5}: {value:.3f}")
    print("\nOutputs:")
    for name, path in result.paths.items():
        print(f"  {name:<34} {path}")
    print(f"\nDone in {result.seconds / 60:.1f} min. The same stock commands work on your data, e.g.\n"
          f"  nnUNetv2_train DATASET {settings.configuration} FOLD -tr RDViTTrainer")

"""Finding nnU-Net's folders, datasets and preprocessed configurations, with errors that say the fix.

Read from the environment at call time (not import time), so tests, the runner and the demo can set them per
run. Every command, the converter and the trainers read the variables here.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Mapping

from nnunet_rdvit.errors import UserError, first_sentence
from nnunet_rdvit.paths import creatable_folder_problem, kind_of


def folder_variable(variable: str, environment: Mapping[str, str] | None = None) -> Path | None:
    """``$variable`` (from ``environment``, default ``os.environ``) as an absolute path; None when unset or blank."""
    value = (os.environ if environment is None else environment).get(variable, "").strip()
    return Path(value).expanduser().resolve() if value else None


def nnunet_folder(variable: str, must_exist: bool = True, alternative: str | None = None) -> Path:
    """The folder named by ``$variable`` (one of nnUNet_raw, nnUNet_preprocessed, nnUNet_results): an existing
    folder, or with ``must_exist=False`` one that can be created. Every refusal names the fix, followed by
    ", or ``alternative``" when the caller has another way in (analysis: labelled folders instead)."""
    otherwise = f", or {alternative}" if alternative else ""
    path = folder_variable(variable)
    if path is None:
        raise UserError(f"{variable} is not set: export {variable}=/path/to/{variable} (nnU-Net's folder "
                        f"variables must be set as for nnUNetv2_train){otherwise}")
    if not must_exist:
        problem = creatable_folder_problem(path)
        if problem is not None:
            raise UserError(f"{variable}: {problem}; point {variable} to a folder you can write to{otherwise}")
        return path
    kind = kind_of(path)
    if kind != "a folder":
        what = "does not exist" if kind.startswith("missing") else f"is {kind}, not a folder"
        raise UserError(f"{variable}: {path} {what}; point {variable} to the existing nnU-Net folder{otherwise}")
    return path


def read_json(path: Path, fix: str) -> object:
    """The parsed JSON file, or a UserError naming the file, what is wrong with it and ``fix``."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{path} is missing; {fix}") from None
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise UserError(f"{path} is not a readable JSON file ({first_sentence(error)}); {fix}") from None


def resolve_dataset(dataset: str, preprocessed: Path) -> str:
    """``"27"``, ``"027"`` or ``"Dataset027_ACDC"`` -> ``"Dataset027_ACDC"``, looked up in ``preprocessed``."""
    text = str(dataset).strip()
    if re.fullmatch(r"\d{1,3}", text):
        prefix = f"Dataset{int(text):03d}_"
        names = sorted(p.name for p in preprocessed.iterdir() if p.is_dir() and p.name.startswith(prefix))
    elif re.fullmatch(r"Dataset\d{3}_.+", text):
        names = [text] if (preprocessed / text).is_dir() else []
    else:
        raise UserError(f"{dataset!r} is not a dataset id (e.g. 27) or name (e.g. Dataset027_ACDC)")
    if len(names) > 1:
        raise UserError(f"dataset id {text} matches {', '.join(names)} in {preprocessed}; nnU-Net needs unique ids")
    if not names:
        available = sorted(p.name for p in preprocessed.iterdir() if p.is_dir() and p.name.startswith("Dataset"))
        raise UserError(f"dataset {text} is not in nnUNet_preprocessed ({preprocessed}; has: "
                        f"{', '.join(available) or 'nothing'}); run nnUNetv2_plan_and_preprocess -d {text} first")
    return names[0]


def check_preprocessed(dataset_dir: Path, plans: str, configurations: tuple[str, ...]) -> int:
    """Checks plans and preprocessed data exist for each configuration; returns the number of folds in the split."""
    plans_file = dataset_dir / f"{plans}.json"
    if not plans_file.is_file():
        raise UserError(f"no plans {plans_file.name} in {dataset_dir}; run nnUNetv2_plan_and_preprocess for this "
                        f"dataset (or pass the right -p)")
    rerun = f"run nnUNetv2_plan_and_preprocess -d {dataset_dir.name} again"
    plans_content = read_json(plans_file, rerun)
    all_configurations = plans_content.get("configurations") if isinstance(plans_content, dict) else None
    if not isinstance(all_configurations, dict):
        raise UserError(f"{plans_file} has no 'configurations'; it is not an nnU-Net plans file: {rerun}")
    for configuration in configurations:
        if configuration not in all_configurations:
            raise UserError(f"configuration {configuration!r} is not in {plans_file.name} (has: "
                            f"{', '.join(all_configurations)})")
        data_dir = dataset_dir / _data_identifier(all_configurations, configuration)
        if not data_dir.is_dir():
            raise UserError(f"no preprocessed data for {configuration} ({data_dir} is missing); run "
                            f"nnUNetv2_plan_and_preprocess -d {dataset_dir.name} -c {configuration} -p {plans}")
    splits_file = dataset_dir / "splits_final.json"
    if not splits_file.exists():
        return 5  # nnU-Net's default 5 folds, written on the first training
    splits = read_json(splits_file, "delete it (nnU-Net writes a new 5-fold split) or restore it")
    if not isinstance(splits, list) or not splits:
        raise UserError(f"{splits_file} is not a list of folds; delete it (nnU-Net writes a new 5-fold split) or "
                        "restore it")
    return len(splits)


def _data_identifier(configurations: dict, name: str) -> str:
    configuration = configurations[name]
    while "data_identifier" not in configuration and "inherits_from" in configuration:
        configuration = configurations[configuration["inherits_from"]]
    return configuration["data_identifier"]

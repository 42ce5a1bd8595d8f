"""One command-line convention for every parser: the package's sub-commands and the benchmark scripts.

nnU-Net's spellings where nnU-Net has the flag, one meaning per flag, the same help for the same flag, and no
integer option that takes a value out of its range (0 where it must be positive, negatives anywhere).
"""

from __future__ import annotations

import argparse
import importlib
from typing import Iterator

import pytest

from nnunet_rdvit import cli
from nnunet_rdvit.commands import common_arguments
from script_support import BENCHMARKS

BENCHMARK_SCRIPTS = ("learning_curves", "merge_learning_curves", "bench_models", "nnunet_iteration_time",
                     "classification_digits")
# Spellings of the 0.x releases before issue 14; none is accepted any more.
OLD_SPELLINGS = ("--no-mirroring", "--mirroring", "--no-tta", "--device", "--step-size", "--no-progress",
                 "--model-arg")
# Flags defined once in common_arguments: wherever they appear, they are the same argument.
SHARED_FLAGS = ("-m", "-chk", "-device", "-step_size", "--disable_tta", "--enable_tta", "--disable_progress_bar",
                "-p")
# Integer options for which 0 means something: a seed, no worker processes, no warm-up, no extra saves, no
# example figure, no permutation baseline, fold 0.
ZERO_ALLOWED = {"seed", "workers", "warmup_epochs", "save_every", "examples", "permutations", "fold", "folds"}


def _subcommands(parser: argparse.ArgumentParser, name: str) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """Every leaf parser under ``parser`` (``classify train``, ``predict``, …) with its full name."""
    groups = [action for action in parser._actions if isinstance(action, argparse._SubParsersAction)]
    if not groups:
        yield name, parser
    for group in groups:
        for child_name, child in group.choices.items():
            yield from _subcommands(child, f"{name} {child_name}".strip())


@pytest.fixture(scope="module")
def parsers() -> dict[str, argparse.ArgumentParser]:
    found = dict(_subcommands(cli.build_parser(), ""))
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(BENCHMARKS))  # the scripts import their siblings, as when run directly
        for script in BENCHMARK_SCRIPTS:
            if script == "classification_digits":
                pytest.importorskip("sklearn")
            found[f"benchmarks/{script}.py"] = importlib.import_module(script).build_parser()
    return found


def _options(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {flag: action for action in parser._actions for flag in action.option_strings}


def _integer_options(parser: argparse.ArgumentParser) -> Iterator[argparse.Action]:
    """Options whose type turns "1" or "50" into an int: every integer option, whatever validator it uses."""
    for action in parser._actions:
        if action.option_strings and action.type is not None and any(
                isinstance(_converted(action, probe), int) for probe in ("1", "50")):
            yield action


def _converted(action: argparse.Action, text: str) -> object:
    try:
        return action.type(text)
    except (argparse.ArgumentTypeError, ValueError):
        return None


def test_every_command_is_walked(parsers) -> None:
    assert {"predict", "analyze", "demo", "convert-acdc", "index-agreement", "classify train", "classify distill",
            "classify eval", "classify models", "experiment run", "experiment aggregate",
            "benchmarks/learning_curves.py"} <= set(parsers)


def test_no_old_spelling_is_accepted(parsers) -> None:
    for name, parser in parsers.items():
        options = _options(parser)
        assert not set(OLD_SPELLINGS) & set(options), name
        if name in ("predict", "analyze"):
            assert "--checkpoint" not in options, name  # a checkpoint name is nnU-Net's -chk
        for action in parser._actions:
            assert action.type not in (int, float), f"{name} {action.option_strings}: unvalidated number"


def test_old_spelling_is_refused_while_parsing(capsys) -> None:
    with pytest.raises(SystemExit) as stop:
        cli.build_parser().parse_args(["predict", "-i", "x", "-o", "y", "-m", "z", "--no-mirroring"])
    assert stop.value.code == 2 and "unrecognized arguments: --no-mirroring" in capsys.readouterr().err


def test_shared_flags_are_one_argument_everywhere(parsers) -> None:
    for flag in SHARED_FLAGS:
        defined = {name: _options(parser)[flag] for name, parser in parsers.items() if flag in _options(parser)}
        assert defined, flag
        described = {(tuple(a.option_strings), a.dest, a.help, a.metavar, a.choices, a.default, a.type)
                     for a in defined.values()}
        assert len(described) == 1, f"{flag} differs between {sorted(defined)}: {described}"


def test_output_dataset_and_fold_flags_read_alike(parsers) -> None:
    for name, parser in parsers.items():
        options = _options(parser)
        if "-d" in options:  # an existing dataset by id or name; convert-acdc's is the id of the one it writes
            assert options["-d"].option_strings[1] == ("--dataset-id" if name == "convert-acdc" else "--dataset")
        if "-o" in options:
            output = options["-o"]
            assert output.option_strings == ["-o", "--output"] and output.metavar == common_arguments.OUTPUT_FOLDER
            assert output.help.startswith("output folder: "), name
        if "-f" in options:
            fold = options["-f"]
            assert fold.option_strings[1] == ("--folds" if fold.nargs == "+" else "--fold"), name
            assert fold.help.startswith(("folds of nnU-Net's split", "fold of nnU-Net's split")), name


def test_model_folder_flag_has_one_meaning(parsers) -> None:
    for name, parser in parsers.items():
        options = _options(parser)
        if name in ("predict", "analyze"):
            assert options["-m"].metavar == common_arguments.MODEL_FOLDER and options["-m"].required
        else:  # a registered classifier is --arch; nothing else takes -m/--model
            assert "-m" not in options and "--model" not in options, name
    assert "--arch" in _options(parsers["classify train"])


def test_test_time_mirroring_is_one_setting(parsers) -> None:
    """--disable_tta wherever mirroring is on by default; analyze, which predicts every case many times, mirrors
    only with --enable_tta. Both set args.mirroring."""
    switches = {name: flag for name, parser in parsers.items() for flag in ("--disable_tta", "--enable_tta")
                if flag in _options(parser)}
    assert switches == {"predict": "--disable_tta", "analyze": "--enable_tta", "experiment run": "--disable_tta",
                        "experiment aggregate": "--disable_tta", "benchmarks/learning_curves.py": "--disable_tta"}
    for name, flag in switches.items():
        action = _options(parsers[name])[flag]
        assert action.dest == "mirroring" and action.default is (flag == "--disable_tta"), name


def test_integer_options_refuse_values_out_of_range(parsers, capsys) -> None:
    checked = 0
    for name, parser in parsers.items():
        for action in _integer_options(parser):
            flag = action.option_strings[0]
            bad = ["-1"] if action.dest in ZERO_ALLOWED else ["-1", "0"]
            for value in bad:
                with pytest.raises(SystemExit) as stop:
                    parser.parse_args([flag, value])
                error = capsys.readouterr().err.strip().splitlines()[-1]
                assert stop.value.code == 2 and f"argument {'/'.join(action.option_strings)}: " in error, \
                    f"{name} {flag} {value}: {error}"
            checked += 1
    assert checked > 30  # the walk found the integer options

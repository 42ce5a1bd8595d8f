"""One run per output folder (``nnunet_rdvit.output_lock``): a live run's lock refuses a second run and names it,
a lock left by a dead run is taken over, and atomic-write temporaries of killed runs are removed, never a live
run's."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from inference_support import run_cli
from nnunet_rdvit.atomic import atomic_path
from nnunet_rdvit.errors import UserError
from nnunet_rdvit.output_lock import LOCK_FILE, output_lock

pytestmark = pytest.mark.usefixtures("inference_env")


def _dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _killed_write(target: Path) -> Path:
    """The temporary a run killed inside ``atomic_path`` leaves behind (the block never finished)."""
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(target) as temporary:
            temporary.write_text("half")
            kept = temporary.with_name(temporary.name + ".kept")
            os.link(temporary, kept)  # atomic_path removes its temporary on the way out; a kill -9 would not
            raise KeyboardInterrupt
    os.replace(kept, temporary)
    return temporary


def test_a_live_run_refuses_a_second_and_names_itself(tmp_path, capsys) -> None:
    out = tmp_path / "out"
    out.mkdir()
    with output_lock(out, "predict"):
        holder = json.loads((out / LOCK_FILE).read_text())
        assert holder["pid"] == os.getpid() and holder["host"] == socket.gethostname()
        with pytest.raises(UserError) as refused:
            with output_lock(out, "analyze"):
                pass
        assert str(refused.value) == (f"another run is writing into {out} (nnunet-rdvit predict, pid {os.getpid()} on "
                                      f"{socket.gethostname()}, started {holder['started']}); wait for it to finish "
                                      f"or choose another output folder (its lock is {out / LOCK_FILE})")
        scan = tmp_path / "in" / "scan.nii.gz"  # never read: the lock is checked before the model and the inputs
        scan.parent.mkdir()
        scan.write_bytes(b"")
        code, _, err = run_cli(capsys, "predict", "-i", scan, "-o", out, "-m", tmp_path / "model",
                               "--disable_progress_bar")
        assert code == 2 and err.strip().splitlines() == [f"nnunet-rdvit predict: error: {refused.value}"]
    assert list(out.iterdir()) == []  # the lock goes with its run


def test_a_dead_runs_lock_is_taken_over(tmp_path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / LOCK_FILE).write_text(json.dumps({"command": "predict", "pid": _dead_pid(), "host": socket.gethostname(),
                                             "started": "2026-01-01T00:00:00+0000"}))
    with output_lock(out, "predict"):
        assert json.loads((out / LOCK_FILE).read_text())["pid"] == os.getpid()
    assert not (out / LOCK_FILE).exists()


def test_a_lock_held_by_another_process_is_respected_until_it_dies(tmp_path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from pathlib import Path; "
                               "from nnunet_rdvit.output_lock import output_lock\n"
                               f"with output_lock(Path({str(out)!r}), 'predict'):\n"
                               "    print('held', flush=True); time.sleep(60)"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(UserError, match=rf"nnunet-rdvit predict, pid {holder.pid} on "):
            with output_lock(out, "predict"):
                pass
    finally:
        holder.kill()  # like kill -9: no clean-up runs, the lock file stays
        holder.wait()
    assert (out / LOCK_FILE).exists()
    with output_lock(out, "predict"):
        pass


def test_stale_temporaries_are_removed_but_never_a_live_runs(tmp_path) -> None:
    out = tmp_path / "out"
    stale = [_killed_write(out / "summary.json"), _killed_write(out / "patient001" / "patient001_frame01.nii.gz")]
    others = [out / ".hidden_notes.txt", out / "patient001" / ".summary.json.swp", out / "a" / "b" / ".x.json.abcdefgh.json"]
    for path in others:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("not ours, or too deep to be an output")
    assert all(path.exists() for path in stale)
    with output_lock(out, "predict", clean_depth=1):  # the next run clears what the killed one left
        assert not any(path.exists() for path in stale)
        with atomic_path(out / "patient001" / "cardiac_indices.json") as live:  # this run, mid-write
            live.write_text("{}")
            with pytest.raises(UserError):  # a second run is refused before it touches anything
                with output_lock(out, "predict", clean_depth=1):
                    pass
            assert live.exists()
    assert all(path.exists() for path in others)

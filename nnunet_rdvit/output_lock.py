"""One run at a time per output folder: a lock file that names its run, and clean-up of what killed runs left.

The lock is ``OUTDIR/.nnunet-rdvit.lock``, held with ``flock`` for the whole run; it records the holder's
command, pid, host and start time so a refused run can say which run holds the folder. The operating system
drops a ``flock`` when its process dies (however it dies), so a lock file left by a killed run is stale by
construction: the next run takes it over. Where the file system has no ``flock``, liveness falls back to the
recorded pid (same host only).

While the lock is held no other run can be writing in the folder, so atomic-write temporaries found there
(``.NAME.XXXXXXXX<suffix>``, see :mod:`nnunet_rdvit.atomic`) were left by killed runs and are removed.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from nnunet_rdvit.atomic import leftover_temporaries
from nnunet_rdvit.errors import UserError

LOCK_FILE = ".nnunet-rdvit.lock"
_NOT_SUPPORTED = (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL)


@contextmanager
def output_lock(folder: Path, command: str, clean_depth: int = 1) -> Iterator[Path]:
    """Hold ``folder``'s lock for the block; :class:`UserError` naming the holder if another live run has it.

    On entry, atomic-write temporaries in ``folder`` and up to ``clean_depth`` levels of sub-folders are
    removed (they can only be left over from killed runs). The lock file is removed on exit.
    """
    path = folder / LOCK_FILE
    fd = _acquire(path, command)
    try:
        remove_stale_temporaries(folder, clean_depth)
        yield path
    finally:
        path.unlink(missing_ok=True)  # before releasing: a waiting run then re-checks and creates a fresh file
        os.close(fd)


def remove_stale_temporaries(folder: Path, depth: int) -> list[Path]:
    """Delete the atomic-write temporaries in ``folder`` and ``depth`` levels below it; call only under the lock."""
    folders = [folder] + [sub for level in range(1, depth + 1) for sub in folder.glob("/".join(["*"] * level))
                          if sub.is_dir() and not sub.is_symlink()]
    removed = [path for sub in folders for path in leftover_temporaries(sub)
               if path.is_file() and not path.is_symlink()]
    for path in removed:
        path.unlink(missing_ok=True)
    return removed


def _acquire(path: Path, command: str) -> int:
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            if not _lock(fd, path):
                holder = _holder(path)
                raise UserError(f"another run is writing into {path.parent} ({holder}); wait for it to finish or "
                                f"choose another output folder (its lock is {path})")
            if not _same_file(fd, path):  # the previous holder removed the file after we opened it: retry
                os.close(fd)
                continue
            _record(fd, command)
            return fd
        except BaseException:
            os.close(fd)
            raise


def _lock(fd: int, path: Path) -> bool:
    """True if this process now holds the lock."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    except OSError as error:
        if error.errno not in _NOT_SUPPORTED:
            raise UserError(f"cannot lock {path} ({error.strerror or error})") from None
        return not _recorded_run_alive(path)


def _recorded_run_alive(path: Path) -> bool:
    record = _read(path)
    if not record or record.get("host") != socket.gethostname():
        return bool(record) and record.get("pid") != os.getpid()  # another host's run cannot be checked
    try:
        os.kill(int(record["pid"]), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, KeyError, ValueError, TypeError):
        return True
    return int(record["pid"]) != os.getpid()


def _same_file(fd: int, path: Path) -> bool:
    try:
        return os.stat(path).st_ino == os.fstat(fd).st_ino
    except FileNotFoundError:
        return False


def _record(fd: int, command: str) -> None:
    record = {"command": command, "pid": os.getpid(), "host": socket.gethostname(),
              "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "argv": sys.argv}
    os.ftruncate(fd, 0)
    os.pwrite(fd, (json.dumps(record) + "\n").encode(), 0)


def _read(path: Path) -> dict:
    try:
        record = json.loads(path.read_text())
        return record if isinstance(record, dict) else {}
    except (OSError, ValueError):
        return {}


def _holder(path: Path) -> str:
    record = _read(path)
    if not record:
        return "a run that has not written its details yet"
    return (f"nnunet-rdvit {record.get('command', '?')}, pid {record.get('pid', '?')} on {record.get('host', '?')}, "
            f"started {record.get('started', '?')}")

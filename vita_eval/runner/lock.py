"""One process per run directory: an advisory `fcntl.flock` on `RUN_DIR/.lock`.

Two commands on one directory would both infer the same samples, interleave their
appends and rewrite each other's fingerprint.json. A second process does not wait (a
run can take days; a silent hang looks like a dead job): it exits at once, non-zero,
saying which process holds the directory. The kernel drops the lock when its holder
exits, however it exits (a SIGKILL included), so a stale `.lock` file never blocks a
later run. Under torchrun only rank 0 takes it; if rank 0 exits, torchrun stops the
other ranks of its job.
"""
from __future__ import annotations

import fcntl
import json
import logging
import os
import sys
import time
from pathlib import Path

LOCK_NAME = ".lock"
log = logging.getLogger(__name__)


class RunDirBusy(SystemExit):
    """Another live process holds the run directory (exit status 1, message on stderr)."""


class RunDirLock:
    """The held lock of one run directory; `release()` (or process exit) gives it back."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the only descriptor of the open file drops its flock
            self._fd = None

    def __enter__(self) -> "RunDirLock":
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def lock_run_dir(run_dir: Path) -> RunDirLock:
    """Take the run directory's lock or raise RunDirBusy naming its holder."""
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _holder(fd)
        os.close(fd)
        raise RunDirBusy(f"{run_dir} is in use by another vita-eval process ({holder}); "
                         "wait for it to finish or choose another --out") from None
    except OSError as exc:  # a filesystem without locks (ENOLCK on some network mounts): go on, loudly
        log.warning("%s: cannot lock the run directory (%s); make sure no other run uses it", run_dir, exc)
    # who holds it, for the message a second process prints (informational: the flock is the lock)
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps({"pid": os.getpid(), "since": time.strftime("%Y-%m-%dT%H:%M:%S"),
                              "argv": sys.argv}).encode(), 0)
    return RunDirLock(path, fd)


def _holder(fd: int) -> str:
    try:
        info = json.loads(os.pread(fd, 1 << 16, 0).decode("utf-8"))
        return f"pid {info['pid']}, since {info['since']}: {' '.join(map(str, info['argv']))}"
    except (OSError, ValueError, KeyError, TypeError):
        return "holder unknown"

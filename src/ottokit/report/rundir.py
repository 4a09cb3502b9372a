"""Run directories that are never overwritten, atomic file writes, and the run log.

A run lives in ``root/EXPERIMENT/<UTC YYYYmmdd-HHMMSS>-<6 hex>/``. While it runs,
its files go into the hidden sibling ``.<name>.tmp``; :meth:`RunDir.finalize`
renames that to the final name, and :meth:`RunDir.mark_failed` to ``<name>-failed``.
If a directory of that name already exists, a fresh id is drawn instead.
:func:`interrupt_on_signals` turns SIGINT and SIGTERM into :class:`RunInterrupted`
meanwhile, so a killed run is closed like any failed one.
"""

from __future__ import annotations

import errno
import logging
import os
import secrets
import signal
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

__all__ = [
    "RunDir",
    "RunInterrupted",
    "atomic_write_bytes",
    "atomic_write_text",
    "interrupt_on_signals",
    "new_run_dir",
    "new_unique_dir",
    "run_logging",
]

_MAX_ATTEMPTS = 100


@dataclass
class RunDir:
    """A run directory: ``path`` is the temporary directory until it is finalized."""

    parent: Path
    stamp: str
    run_id: str
    path: Path
    state: Literal["running", "finished", "failed"] = "running"

    @property
    def name(self) -> str:
        """The final directory name, ``<stamp>-<id>``."""
        return f"{self.stamp}-{self.run_id}"

    @property
    def final_path(self) -> Path:
        """Where :meth:`finalize` will put the run (unless that name gets taken first)."""
        return self.parent / self.name

    @property
    def figures(self) -> Path:
        """The ``figures/`` subdirectory."""
        return self.path / "figures"

    def finalize(self) -> Path:
        """Rename the temporary directory to its final name and return the new path."""
        return self._close("finished", "")

    def mark_failed(self) -> Path:
        """Rename the temporary directory to ``<name>-failed`` and return the new path."""
        return self._close("failed", "-failed")

    def _close(self, state: Literal["finished", "failed"], suffix: str) -> Path:
        if self.state != "running":
            raise RuntimeError(f"run directory {self.path} is already {self.state}")
        for _ in range(_MAX_ATTEMPTS):
            target = self.parent / f"{self.name}{suffix}"
            if not target.exists():
                try:
                    # POSIX rename replaces an *empty* directory only; a non-empty
                    # one raises, so a finished run can never be overwritten.
                    os.rename(self.path, target)
                except OSError as exc:
                    if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                        raise
                else:
                    self.path, self.state = target, state
                    return target
            self.run_id = _short_id()
        raise RuntimeError(f"could not find a free run directory name in {self.parent}")


def new_run_dir(root: Path, experiment: str) -> RunDir:
    """Create the temporary directory (with ``figures/``) of a new run of ``experiment``."""
    if not experiment or Path(experiment).name != experiment or experiment.startswith("."):
        raise ValueError(f"experiment name {experiment!r} is not a plain directory name")
    parent = Path(root) / experiment
    parent.mkdir(parents=True, exist_ok=True)
    stamp = _utc_stamp()
    for _ in range(_MAX_ATTEMPTS):
        run = RunDir(parent=parent, stamp=stamp, run_id=_short_id(), path=Path())
        run.path = parent / f".{run.name}.tmp"
        if run.final_path.exists() or (parent / f"{run.name}-failed").exists():
            continue
        try:
            run.path.mkdir()
        except FileExistsError:
            continue
        run.figures.mkdir()
        return run
    raise RuntimeError(f"could not find a free run directory name in {parent}")


def new_unique_dir(parent: Path) -> Path:
    """Create and return a new directory ``parent/<UTC stamp>-<6 hex>`` (never an existing one)."""
    parent = Path(parent)
    parent.mkdir(parents=True, exist_ok=True)
    stamp = _utc_stamp()
    for _ in range(_MAX_ATTEMPTS):
        path = parent / f"{stamp}-{_short_id()}"
        try:
            path.mkdir()
        except FileExistsError:
            continue
        return path
    raise RuntimeError(f"could not find a free directory name in {parent}")


def atomic_write_bytes(path: Path, data: bytes, *, overwrite: bool = False) -> Path:
    """Write ``data`` to ``path`` via a temporary file in the same directory.

    Raises :class:`FileExistsError` if ``path`` exists, unless ``overwrite`` is true.
    """
    path = Path(path)
    if not overwrite and path.exists():
        raise FileExistsError(f"refusing to overwrite existing file {path}")
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        # mkstemp creates 0600; give the file the mode an ordinary open() would
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        if overwrite:
            os.replace(tmp, path)
        else:
            _link_without_overwrite(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def atomic_write_text(path: Path, text: str, *, overwrite: bool = False) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically; see :func:`atomic_write_bytes`."""
    return atomic_write_bytes(path, text.encode("utf-8"), overwrite=overwrite)


@contextmanager
def run_logging(path: Path) -> Iterator[logging.Logger]:
    """Log the ``ottokit`` logger (INFO and above, UTC timestamps) to ``path`` meanwhile."""
    logger = logging.getLogger("ottokit")
    handler = logging.FileHandler(path, encoding="utf-8")
    formatter = logging.Formatter(
        "%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%Y-%m-%dT%H:%M:%SZ"
    )
    formatter.converter = time.gmtime
    handler.setFormatter(formatter)
    handler.setLevel(logging.INFO)
    previous_level = logger.level
    if logger.getEffectiveLevel() > logging.INFO:
        logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    try:
        yield logger
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous_level)
        handler.close()


class RunInterrupted(KeyboardInterrupt):
    """A run stopped by a signal (SIGINT or SIGTERM).

    ``signal_name`` names the signal; ``run_dir`` is where the stopped run was kept,
    once the runner knows.
    """

    def __init__(self, signum: int) -> None:
        self.signum = int(signum)
        self.signal_name = signal.Signals(signum).name
        self.run_dir: Path | None = None
        super().__init__(f"interrupted by {self.signal_name}")


@contextmanager
def interrupt_on_signals() -> Iterator[None]:
    """Raise :class:`RunInterrupted` on the first SIGINT or SIGTERM meanwhile.

    Later signals are ignored until the block ends, so the cleanup that the first one
    starts is not cut short. Only handlers still at Python's defaults are replaced
    (SIGINT's ``default_int_handler``, SIGTERM's ``SIG_DFL``), and only in the main
    thread; the previous handlers are restored afterwards.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    fired = False

    def handler(signum: int, _frame: object) -> None:
        nonlocal fired
        if not fired:
            fired = True
            raise RunInterrupted(signum)

    defaults = {signal.SIGINT: signal.default_int_handler, signal.SIGTERM: signal.SIG_DFL}
    previous = {}
    for signum, default in defaults.items():
        if signal.getsignal(signum) is default:
            previous[signum] = signal.signal(signum, handler)
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


def _link_without_overwrite(src: Path, dst: Path) -> None:
    """Give ``src`` the name ``dst``, failing if ``dst`` exists (atomically where possible)."""
    try:
        os.link(src, dst)
    except FileExistsError:
        raise FileExistsError(f"refusing to overwrite existing file {dst}") from None
    except OSError:
        # File systems without hard links: check, then rename.
        if dst.exists():
            raise FileExistsError(f"refusing to overwrite existing file {dst}") from None
        os.replace(src, dst)


def _utc_stamp() -> str:
    return datetime.now(UTC).strftime("%Y%m%d-%H%M%S")


def _short_id() -> str:
    return secrets.token_hex(3)

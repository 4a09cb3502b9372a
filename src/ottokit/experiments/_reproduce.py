"""``ottokit reproduce``: every experiment, scheduled across the cores, into one report.

Independent experiments run concurrently in ``jobs`` worker processes (the standard
library's ``ProcessPoolExecutor``), each with ``cores // jobs`` CPU threads for torch
and the BLAS libraries, longest first by the durations of the last runs (kept in the
cache directory, ``timings.json``). A live table shows each experiment's state,
elapsed time and estimate. ``jobs=1`` runs them one after the other in this process.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import time
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.live import Live
from rich.table import Table

from ottokit import cache
from ottokit.experiments._registry import Experiment
from ottokit.experiments._runner import (
    PRESETS,
    RunOutputError,
    failure_result,
    reason,
    run_experiment,
    select_experiments,
)
from ottokit.progress import is_quiet, set_quiet
from ottokit.report.html import build_html
from ottokit.report.result import Result
from ottokit.report.rundir import new_unique_dir

__all__ = ["available_cores", "estimated_seconds", "reproduce"]

log = logging.getLogger("ottokit.runner")

_DEFAULT_SECONDS = {True: 300.0, False: 30.0}  # training experiments, the others


def available_cores() -> int:
    """CPU cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _timings_file() -> Path:
    return cache.cache_dir() / "timings.json"


def _read_timings() -> dict[str, dict[str, float]]:
    try:
        data = json.loads(_timings_file().read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def estimated_seconds(exp: Experiment, preset: str) -> float:
    """The duration of the last finished run of ``exp`` with ``preset`` (computed, not
    from the cache); a rough default for one never run here."""
    seconds = _read_timings().get(preset, {}).get(exp.name)
    if isinstance(seconds, int | float) and seconds > 0:
        return float(seconds)
    return _DEFAULT_SECONDS[exp.distributed]


def _record_timings(preset: str, results: list[Result]) -> None:
    data = _read_timings()
    table = data.setdefault(preset, {})
    for r in results:
        if not r.error and r.cache.get("run") != "hit" and r.wall_time > 0:
            table[r.experiment] = round(r.wall_time, 1)
    try:
        _timings_file().parent.mkdir(parents=True, exist_ok=True)
        _timings_file().write_text(json.dumps(data, indent=1, sort_keys=True), encoding="utf-8")
    except OSError as err:
        log.warning("could not record the run times in %s: %s", _timings_file(), err)


@dataclass
class _Row:
    exp: Experiment
    estimate: float
    state: str = "queued"
    started: float | None = None
    ended: float | None = None

    def elapsed(self) -> float:
        if self.started is None:
            return 0.0
        return (self.ended or time.monotonic()) - self.started


def reproduce(
    preset: str = "quick",
    only: Sequence[str] | None = None,
    out_root: Path = Path("runs"),
    quiet: bool = False,
    jobs: int | None = None,
) -> Path:
    """Run the selected experiments with ``preset`` and return the path of ``report.html``.

    Each experiment gets its own run directory inside ``out_root/reproduce/<UTC>-<id>/``;
    a failing experiment is recorded as an error and the others still run. ``jobs``
    experiments run at once (default: the number of cores); each gets an equal share of
    the cores as its thread budget.
    """
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; allowed: {', '.join(PRESETS)}")
    cores = available_cores()
    jobs = cores if jobs is None else jobs
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs must be an integer >= 1, got {jobs!r}")
    selected = select_experiments(only)
    if not selected:
        raise ValueError("no experiments registered; nothing to reproduce")
    try:
        out_dir = new_unique_dir(Path(out_root) / "reproduce")
    except OSError as err:
        raise RunOutputError(
            f"cannot create a reproduce directory in {Path(out_root) / 'reproduce'}: "
            f"{reason(err)}; choose a writable directory with --out",
            started=False,
        ) from err
    rows = sorted(
        (_Row(e, estimated_seconds(e, preset)) for e in selected),
        key=lambda r: r.estimate,
        reverse=True,
    )
    jobs = min(jobs, len(rows))
    threads = max(1, cores // jobs)
    was_quiet = is_quiet()
    set_quiet(True)  # the experiments' own bars would fight the live table
    try:
        with _live(rows, preset, enabled=not (quiet or was_quiet)) as refresh:
            if jobs == 1:
                results = [_sequential(row, preset, out_dir, threads, refresh) for row in rows]
            else:
                results = _parallel(rows, preset, out_dir, jobs, threads, refresh)
    finally:
        set_quiet(was_quiet)
    _record_timings(preset, results)
    title = f"ottokit reproduce ({preset} preset)"
    return build_html(results, title, out_dir / "report.html")


def _sequential(row: _Row, preset: str, out_dir: Path, threads: int, refresh) -> Result:
    row.state, row.started = "running", time.monotonic()
    refresh()
    result = _run_one(row.exp, preset, out_dir, threads)
    _finish(row, result)
    refresh()
    return result


def _parallel(
    rows: list[_Row], preset: str, out_dir: Path, jobs: int, threads: int, refresh
) -> list[Result]:
    results: dict[str, Result] = {}
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=jobs, mp_context=context) as pool:
        pending: dict[Future[Result], _Row] = {}
        queue = list(rows)
        while queue or pending:
            while queue and len(pending) < jobs:
                row = queue.pop(0)
                row.state, row.started = "running", time.monotonic()
                pending[pool.submit(_run_one, row.exp, preset, out_dir, threads)] = row
            refresh()
            done, _ = wait(pending, timeout=1.0, return_when=FIRST_COMPLETED)
            for future in done:
                row = pending.pop(future)
                try:
                    result = future.result()
                except Exception as exc:  # the worker process itself died
                    result = failure_result(row.exp, exc, out_dir / row.exp.name)
                _finish(row, result)
                results[row.exp.name] = result
    refresh()
    return [results[r.exp.name] for r in rows]


def _finish(row: _Row, result: Result) -> None:
    row.ended = time.monotonic()
    if result.error:
        row.state = "error"
    elif result.cache.get("run") == "hit":
        row.state = "from cache"
    else:
        row.state = "done"


def _run_one(exp: Experiment, preset: str, out_dir: Path, threads: int) -> Result:
    """One experiment, in a worker process (or this one), with ``threads`` CPU threads."""
    import torch
    from threadpoolctl import threadpool_limits

    name = exp.name
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with threadpool_limits(limits=threads):
            return run_experiment(exp, exp.preset(preset), out_root=out_dir, quiet=True)
    except Exception as exc:
        log.error("experiment %s failed: %s: %s", name, type(exc).__name__, exc)
        failed = sorted((out_dir / name).glob("*-failed"))
        if failed:
            try:
                return Result.load(failed[-1])
            except ValueError:
                pass
        return failure_result(exp, exc, out_dir / name)
    finally:
        torch.set_num_threads(previous)


class _live:
    """A live table of the experiments (state, elapsed, estimate) on stderr; log lines
    instead when the table is off."""

    def __init__(self, rows: list[_Row], preset: str, enabled: bool) -> None:
        self.rows, self.preset = rows, preset
        console = Console(stderr=True)
        self.enabled = enabled and console.is_terminal
        self.live = Live(self._table(), console=console, refresh_per_second=2,
                         transient=False) if self.enabled else None
        self.reported: set[str] = set()

    def _table(self) -> Table:
        table = Table(title=f"ottokit reproduce ({self.preset})", box=None, pad_edge=False)
        for column in ("experiment", "state", "elapsed", "estimate"):
            table.add_column(column, justify="right" if column != "experiment" else "left")
        style = {"done": "green", "from cache": "cyan", "error": "red", "running": "yellow"}
        for r in self.rows:
            state = f"[{style[r.state]}]{r.state}[/]" if r.state in style else r.state
            table.add_row(r.exp.name, state, _clock(r.elapsed()), _clock(r.estimate))
        return table

    def __enter__(self):
        if self.live is not None:
            self.live.__enter__()
        return self.refresh

    def refresh(self) -> None:
        if self.live is not None:
            self.live.update(self._table())
            return
        for r in self.rows:
            if r.state in ("done", "from cache", "error") and r.exp.name not in self.reported:
                self.reported.add(r.exp.name)
                log.info("%s: %s in %s", r.exp.name, r.state, _clock(r.elapsed()))

    def __exit__(self, *exc: object) -> None:
        if self.live is not None:
            self.live.update(self._table())
            self.live.__exit__(*exc)


def _clock(seconds: float) -> str:
    m, s = divmod(int(round(seconds)), 60)
    return f"{m}:{s:02d}"

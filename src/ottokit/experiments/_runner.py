"""Run experiments into run directories, and build their HTML reports.

:func:`run_experiment` gives one run its directory::

    runs/EXPERIMENT/<UTC>-<id>/
        config.toml   the resolved config, written before the run starts
        run.json      the experiment, the package version, the world size, and the run
                      this one resumed, if any
        log.txt       the ``ottokit`` log (with the traceback if the run fails)
        figures/      PNG figures
        metrics.json  result.metrics
        result.json   the whole Result (the HTML report is rebuilt from it)
        report.md     the per-run report

A run that raises, or is stopped by SIGINT or SIGTERM, keeps its directory as
``<UTC>-<id>-failed`` with ``log.txt``, ``config.toml`` and a ``result.json``
recording the error. :func:`resume_run` continues an interrupted training run in a new
directory from the old one's checkpoints (the old directory is left as it is). A
finished run whose experiment, config and source are unchanged is copied from the
cache (:mod:`ottokit.cache`) instead of recomputed. Under ``torch.distributed`` only
rank 0 owns a run directory; the other ranks compute into a private temporary one.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import shutil
import tempfile
import time
import tomllib
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ottokit import __version__, cache, distributed
from ottokit._config import ConfigError, config_from_toml, config_to_toml, validate_config
from ottokit.experiments._registry import Experiment, all_experiments, get, names
from ottokit.progress import is_quiet, set_quiet
from ottokit.report.html import build_html, write_markdown
from ottokit.report.result import Result, ResultFileError
from ottokit.report.rundir import (
    RunDir,
    RunInterrupted,
    atomic_write_text,
    interrupt_on_signals,
    new_run_dir,
    run_logging,
)

__all__ = [
    "PRESETS",
    "RunOutputError",
    "rebuild_report",
    "failure_result",
    "reason",
    "resume_run",
    "run_experiment",
    "select_experiments",
    "to_jsonable",
]

PRESETS = ("quick", "paper")

log = logging.getLogger("ottokit.runner")


class RunOutputError(OSError):
    """The run directory could not be created or written.

    ``started`` says whether the experiment had run; ``run_dir`` is where what was
    written is kept (None when nothing was).
    """

    def __init__(self, message: str, *, started: bool, run_dir: Path | None = None) -> None:
        super().__init__(message)
        self.started = started
        self.run_dir = run_dir


def run_experiment(
    exp: Experiment,
    config: Any,
    out_root: Path = Path("runs"),
    quiet: bool = False,
    *,
    resume_dir: Path | None = None,
) -> Result:
    """Run ``exp`` with ``config`` in a new run directory under ``out_root/exp.name``.

    ``config`` is validated first (:func:`~ottokit._config.validate_config`), before any
    directory is created. Returns the Result with ``run_dir`` set to the final directory.
    If ``exp.run`` raises, or SIGINT or SIGTERM stops the run
    (:class:`~ottokit.report.rundir.RunInterrupted`), the directory is kept as
    ``<name>-failed`` with the reason in ``result.json`` and ``log.txt``, and the
    exception re-raised. :class:`RunOutputError` reports a run directory that could not
    be created or written, with where its files are. ``resume_dir`` is an earlier run of
    the same experiment and config whose ``checkpoints/`` are copied in first, so its
    training continues where it stopped.
    Under several ``torch.distributed`` ranks, ranks other than 0 run into a temporary
    directory and return their (identical) Result with ``run_dir`` None.
    """
    if not isinstance(config, exp.config_cls):
        raise TypeError(
            f"config for {exp.name!r} must be a {exp.config_cls.__name__}, "
            f"got {type(config).__name__}"
        )
    validate_config(config)
    if distributed.world_size() > 1 and not exp.distributed:
        raise ValueError(
            f"{exp.name} runs in one process; experiments that take several ranks: "
            + ", ".join(n for n in names() if get(n).distributed)
        )
    if not distributed.is_main_process():
        return _run_as_worker(exp, config)
    # absolute, so the paths an experiment builds from ``out`` stay valid whatever the CWD
    root = Path(out_root).resolve()
    was_quiet = is_quiet()
    set_quiet(was_quiet or quiet)
    try:
        with interrupt_on_signals():
            return _run_in_dir(exp, config, root, resume_dir)
    finally:
        set_quiet(was_quiet)


def _run_in_dir(exp: Experiment, config: Any, root: Path, resume_dir: Path | None) -> Result:
    try:
        run = new_run_dir(root, exp.name)
    except OSError as err:
        raise RunOutputError(
            f"cannot create a run directory in {root / exp.name}: {reason(err)}; "
            "choose a writable directory with --out",
            started=False,
        ) from err
    try:
        try:
            atomic_write_text(run.path / "config.toml", config_to_toml(config))
            _write_json(run.path / "run.json", _provenance(exp, resume_dir))
            if resume_dir is not None and (Path(resume_dir) / "checkpoints").is_dir():
                shutil.copytree(Path(resume_dir) / "checkpoints", run.path / "checkpoints")
        except OSError as err:
            raise RunOutputError(
                f"could not prepare the run directory: {reason(err)}", started=False
            ) from err
        with run_logging(run.path / "log.txt"):
            log.info("experiment %s (seed %s) into %s", exp.name, exp.seed_id, run.final_path)
            log.info("config: %r", config)
            try:
                started = time.perf_counter()
                cache.reset_events()
                key, entry = cache.run_entry(
                    exp.name,
                    {"config": config_to_toml(config), "world_size": distributed.world_size()},
                )
                result = _from_cache(exp, key, entry, run.path) if resume_dir is None else None
                from_cache = result is not None
                if result is None:
                    result = exp.run(config, run.path)
                    if not isinstance(result, Result):
                        raise TypeError(
                            f"{exp.name}.run returned {type(result).__name__}, expected a Result"
                        )
                    result.wall_time = time.perf_counter() - started
                    result.figures = _relative_figures(result.figures, run.path)
                    trained = [e for e in cache.events() if e.kind == "training"]
                    result.cache = {
                        "run": "miss" if cache.enabled() and resume_dir is None else "off",
                        "trained_from_cache": [e.label for e in trained if e.hit],
                        "trained": [e.label for e in trained if not e.hit],
                    }
                result.run_dir = run.final_path
                _write_outputs(result, run.path)
                if not from_cache and cache.enabled() and resume_dir is None:
                    cache.store_run(entry, run.path, f"{exp.name} {_short_config(config)}")
            except BaseException as exc:
                if isinstance(exc, RunInterrupted):
                    log.error("experiment %s %s", exp.name, exc)
                else:
                    log.exception("experiment %s failed", exp.name)
                _write_failure(exp, exc, run.path, run.final_path.name + "-failed")
                raise
            n_hold = sum(c.holds for c in result.checks)
            log.info("finished: %d of %d checks hold", n_hold, len(result.checks))
    except BaseException as exc:
        kept = _keep_failed(run)
        if isinstance(exc, RunInterrupted | RunOutputError):
            exc.run_dir = kept
        exc.add_note(f"run directory kept at {kept}")
        raise

    expected = run.final_path
    try:
        final = run.finalize()
        result.run_dir = final
        if final != expected:  # the name was taken meanwhile: record the new one
            _write_json(final / "result.json", result.to_json(), overwrite=True)
    except OSError as err:
        kept = _keep_failed(run) if run.state == "running" else run.path
        raise RunOutputError(
            f"could not close the finished run: {reason(err)}", started=True, run_dir=kept
        ) from err
    return result


def _from_cache(exp: Experiment, key: str, entry: Path, path: Path) -> Result | None:
    """The cached result of this run copied into ``path``, or None (a miss, or the cache
    is off)."""
    if not cache.enabled():
        return None
    files = cache.verified_run_files(entry) if entry.is_dir() else None
    cache.log_event("run", exp.name, key, files is not None)
    if files is None:
        return None
    result = Result.load(files)
    for item in files.iterdir():  # the figures and other files; the records are rewritten
        if item.name in ("config.toml", "run.json", "metrics.json", "result.json", "report.md"):
            continue
        target = path / item.name
        if item.is_dir():
            shutil.copytree(item, target, dirs_exist_ok=True)
        else:
            shutil.copy2(item, target)
    result.cache = {**result.cache, "run": "hit", "cached_run": str(entry)}
    log.info("the finished run was found in the cache (%s); nothing was recomputed", entry)
    return result


def _short_config(config: Any) -> str:
    text = " ".join(config_to_toml(config).split())
    return text if len(text) <= 120 else text[:117] + "..."


def _keep_failed(run: RunDir) -> Path:
    """Rename a run that did not finish to ``<name>-failed``; where it is if that fails."""
    try:
        return run.mark_failed()
    except OSError:
        return run.path


def reason(err: OSError) -> str:
    """An OSError in a few words: its message and the file it names."""
    if err.strerror:
        return f"{err.strerror} ({err.filename})" if err.filename else err.strerror
    return str(err)


def resume_run(run_dir: Path, out_root: Path = Path("runs"), quiet: bool = False) -> Result:
    """Continue an interrupted run of a training experiment in a new run directory.

    ``run_dir`` is the interrupted run: its ``-failed`` directory, or the hidden
    ``.<name>.tmp`` directory a killed process leaves. Its experiment (``run.json``, or
    the name of the directory above it) and ``config.toml`` are read back, its
    ``checkpoints/`` copied into a new run directory, and the experiment run again: each
    training resumes from its last checkpoint (bit-identically on the CPU), the rest is
    recomputed. ``run_dir`` itself is left untouched.
    """
    run_dir = Path(run_dir)
    if not (run_dir / "config.toml").is_file():
        raise ValueError(f"{run_dir} is not a run directory (no config.toml)")
    name = run_dir.resolve().parent.name
    meta = run_dir / "run.json"
    if meta.is_file():
        try:
            name = json.loads(meta.read_text(encoding="utf-8"))["experiment"]
        except (ValueError, KeyError, TypeError) as err:
            raise ValueError(f"{meta} is not a run record: {err}") from None
    try:
        exp = get(name)
    except KeyError:
        raise ValueError(
            f"cannot tell which experiment {run_dir} ran (found {name!r}); pass a run directory "
            "made by `ottokit run`"
        ) from None
    if not exp.distributed:
        raise ValueError(
            f"{name} does not train, so there is nothing to resume; run it again instead"
        )
    if not (run_dir / "checkpoints").is_dir():
        raise ValueError(
            f"{run_dir} holds no checkpoints/ (the run stopped before its first checkpoint); "
            f"run it again with: ottokit run {name} --config {run_dir / 'config.toml'}"
        )
    toml_path = run_dir / "config.toml"
    try:
        config = config_from_toml(exp.config_cls, toml_path, base=exp.preset("quick"))
        # config.toml leaves out exactly the fields that were None
        named = set(tomllib.loads(toml_path.read_text(encoding="utf-8")))
        unnamed = {f.name: None for f in dataclasses.fields(config) if f.init}
        config = dataclasses.replace(config, **{k: v for k, v in unnamed.items() if k not in named})
    except (ConfigError, tomllib.TOMLDecodeError) as err:
        raise ValueError(str(err)) from None
    return run_experiment(exp, config, out_root, quiet, resume_dir=run_dir)


def select_experiments(only: Sequence[str] | None = None) -> list[Experiment]:
    """The experiments named in ``only`` (all if None), in registry order."""
    allowed = names()
    if only is None:
        return all_experiments()
    unknown = [n for n in only if n not in allowed]
    if unknown:
        raise ValueError(
            f"unknown experiment(s) {', '.join(map(repr, unknown))}; "
            f"allowed: {', '.join(allowed) or '(none registered)'}"
        )
    wanted = set(only)
    return [e for e in all_experiments() if e.name in wanted]


def rebuild_report(run_dir: Path) -> Path:
    """Rebuild ``report.html`` in ``run_dir`` from its ``result.json`` file(s); return its path.

    A run directory gives a one-run report; a directory holding run directories (a
    reproduce directory, or ``runs/EXPERIMENT``) gives the combined report. Only files
    inside ``run_dir`` are read: a ``result.json`` or a figure that lies outside it
    (an absolute path, ``..``, a symbolic link) raises
    :class:`~ottokit.report.result.ResultFileError`, as does a malformed ``result.json``.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ValueError(f"not a directory: {run_dir}")
    if (run_dir / "result.json").is_file():
        result = _load_inside(run_dir, run_dir)
        return build_html([result], f"ottokit: {result.experiment}", run_dir / "report.html")
    found = [
        p.parent
        for pattern in ("*/result.json", "*/*/result.json")
        for p in sorted(run_dir.glob(pattern))
        if not any(part.startswith(".") for part in p.relative_to(run_dir).parts)
    ]
    if not found:
        raise ValueError(
            f"no result.json in {run_dir} or the run directories inside it; "
            "pass a run directory or a reproduce directory"
        )
    results = [_load_inside(d, run_dir) for d in found]
    return build_html(results, f"ottokit report: {run_dir.name}", run_dir / "report.html")


def _load_inside(path: Path, root: Path) -> Result:
    """``Result.load(path)``, refusing a ``result.json`` that resolves outside ``root``."""
    file = path / "result.json"
    if not file.resolve().is_relative_to(root.resolve()):
        raise ResultFileError(
            f"{file}: leads outside {root} (to {file.resolve()}); a report reads only files "
            "inside the directory it is built in"
        )
    return Result.load(path)


def to_jsonable(value: Any) -> Any:
    """``value`` with arrays and tensors as lists and NaN/inf as the strings "nan"/"inf"/"-inf"."""
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, str | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "tolist"):  # NumPy arrays and scalars, torch tensors
        return to_jsonable(value.tolist())
    raise TypeError(f"cannot write {type(value).__name__} to JSON: {value!r}")


def _run_as_worker(exp: Experiment, config: Any) -> Result:
    """A rank other than 0: compute the same run into a temporary directory, then drop it."""
    was_quiet = is_quiet()
    set_quiet(True)
    try:
        with tempfile.TemporaryDirectory(prefix=f"ottokit-rank{distributed.rank()}-") as tmp:
            result = exp.run(config, Path(tmp))
    finally:
        set_quiet(was_quiet)
    result.run_dir = None
    return result


def _provenance(exp: Experiment, resume_dir: Path | None) -> dict[str, Any]:
    return {
        "experiment": exp.name,
        "ottokit_version": __version__,
        "started_utc": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "world_size": distributed.world_size(),
        "resumed_from": None if resume_dir is None else str(Path(resume_dir).resolve()),
    }


def failure_result(exp: Experiment, exc: BaseException, run_dir: Path) -> Result:
    """The Result of a run that raised: the error instead of checks."""
    return Result(
        experiment=exp.name,
        seed_file=exp.seed_file,
        claim=exp.title,
        run_dir=run_dir,
        error=f"{type(exc).__name__}: {exc}",
    )


def _write_outputs(result: Result, path: Path) -> None:
    try:
        _write_json(path / "metrics.json", result.metrics)
        _write_json(path / "result.json", result.to_json())
        atomic_write_text(path / "report.md", write_markdown(result))
    except OSError as err:
        raise RunOutputError(
            f"could not write the results of the finished run: {reason(err)}", started=True
        ) from err


def _write_failure(exp: Experiment, exc: BaseException, path: Path, failed_name: str) -> None:
    """Record the error as ``result.json`` so the report shows the failed experiment."""
    result = failure_result(exp, exc, path.parent / failed_name)
    try:
        _write_json(path / "result.json", result.to_json(), overwrite=True)
    except Exception:  # the original error matters more than this record
        log.exception("could not write result.json for the failed run")


def _write_json(path: Path, data: Any, *, overwrite: bool = False) -> None:
    text = json.dumps(to_jsonable(data), indent=2, allow_nan=False, ensure_ascii=False)
    atomic_write_text(path, text + "\n", overwrite=overwrite)


def _relative_figures(figures: dict[str, str], run_path: Path) -> dict[str, str]:
    """Figure paths relative to the run directory; each must exist."""
    out = {}
    for caption, raw in figures.items():
        path = Path(raw)
        full = path if path.is_absolute() else run_path / path
        if not full.is_file():
            raise FileNotFoundError(f"figure {caption!r} not found at {full}")
        try:
            out[caption] = full.resolve().relative_to(run_path.resolve()).as_posix()
        except ValueError:
            raise ValueError(
                f"figure {caption!r} at {full} is outside the run directory {run_path}"
            ) from None
    return out

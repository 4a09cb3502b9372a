"""The ``ottokit`` command line: ``list``, ``show``, ``run``, ``reproduce`` and ``report``.

The CLI only parses and validates; the work is done by
:func:`ottokit.experiments.run_experiment` and friends, which are callable
from Python too. A bad argument (unknown experiment, key, preset or device, a value
of the wrong type or out of its range, a missing config file, an unusable ``--out``,
a malformed or escaping ``result.json``) prints one ``error:`` line to stderr and
exits with status 2, before any run directory is created. Ctrl-C or SIGTERM keeps
the run as ``...-failed``, says where, and exits with 128 + the signal number.
Errors raised inside an experiment propagate unchanged, after the run directory has
been kept as ``...-failed``.
"""

from __future__ import annotations

import os
import re
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.table import Table
from torch.distributed.elastic.multiprocessing.errors import record

from ottokit import cache, distributed, progress
from ottokit._config import (
    ConfigError,
    apply_overrides,
    config_from_toml,
    describe_config,
    validate_config,
)
from ottokit.experiments import (
    PRESETS,
    Experiment,
    RunOutputError,
    all_experiments,
    available_cores,
    distributed_names,
    get,
    rebuild_report,
    reproduce,
    resume_run,
    run_experiment,
    select_experiments,
)
from ottokit.report.result import Result
from ottokit.report.rundir import RunInterrupted

__all__ = ["app", "main"]

DEVICE_PATTERN = r"cpu|cuda(:[0-9]+)?"
DEVICES_TEXT = "cpu, cuda or cuda:N"

T = TypeVar("T")

# the options that several commands share
_Preset = Annotated[str, typer.Option(help="Config preset: quick or paper.")]
_Overrides = Annotated[
    list[str] | None,
    typer.Option("--set", help="Override one config field, key=value (repeatable)."),
]
_ConfigFile = Annotated[
    Path | None, typer.Option("--config", help="Flat TOML file of config values.")
]
_Out = Annotated[Path, typer.Option("--out", help="Root directory for runs.")]
_Quiet = Annotated[bool, typer.Option("--quiet", help="No progress bars.")]

app = typer.Typer(
    name="ottokit",
    help="Optimal-transport geometry of generative models: run and report the seeds' experiments.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)


@app.command("list")
def list_experiments() -> None:
    """List the experiments: name, seed, and what each reproduces."""
    experiments = all_experiments()
    if not experiments:
        typer.echo("no experiments registered")
        return
    table = Table(box=None, pad_edge=False)
    table.add_column("experiment", style="bold", no_wrap=True)
    table.add_column("seed", no_wrap=True)
    table.add_column("seed file", no_wrap=True)
    table.add_column("title")
    for exp in experiments:
        table.add_row(exp.name, exp.seed_id, exp.seed_file, exp.title)
    Console().print(table)


@app.command("show")
def show_command(
    experiment: Annotated[str, typer.Argument(help="Experiment name (see `ottokit list`).")],
    preset: _Preset = "quick",
    set_: _Overrides = None,
    config: _ConfigFile = None,
) -> None:
    """Print the resolved config of EXPERIMENT: each key, its value, type, allowed values and
    meaning (the keys `ottokit run --set` takes)."""
    exp, cfg = _resolve(experiment, preset, config, set_ or [], None, None)
    typer.echo(_config_text(exp, preset, cfg))


@app.command("run")
def run_command(
    experiment: Annotated[
        str | None, typer.Argument(help="Experiment name (see `ottokit list`).")
    ] = None,
    preset: _Preset = "quick",
    set_: _Overrides = None,
    config: _ConfigFile = None,
    out: _Out = Path("runs"),
    seed: Annotated[str | None, typer.Option(help="Random seed (overrides the config).")] = None,
    device: Annotated[
        str | None, typer.Option(help="cpu, cuda or cuda:N (overrides the config).")
    ] = None,
    quiet: _Quiet = False,
    nproc: Annotated[
        int,
        typer.Option(
            "--nproc",
            help="Processes (ranks) on this node, started by torch's launcher; "
            "for the experiments that train or post-process.",
        ),
    ] = 1,
    nnodes: Annotated[
        str, typer.Option("--nnodes", help="Nodes taking part (with --rdzv-endpoint).")
    ] = "1",
    node_rank: Annotated[int, typer.Option("--node-rank", help="This node's rank.")] = 0,
    rdzv_endpoint: Annotated[
        str | None,
        typer.Option("--rdzv-endpoint", help="host:port of the rendezvous, for several nodes."),
    ] = None,
    no_cache: Annotated[
        bool,
        typer.Option("--no-cache", help="Recompute everything; neither read nor fill the cache."),
    ] = False,
    resume: Annotated[
        Path | None,
        typer.Option(
            "--resume",
            help="An interrupted run directory of a training experiment: continue it from "
            "its checkpoints in a new run directory.",
        ),
    ] = None,
) -> None:
    """Run one experiment into a new run directory.

    The config is resolved in order: preset, --config file, --set, then --seed/--device,
    and validated before anything is written. `ottokit show EXPERIMENT` lists the keys
    with their values, allowed ranges and meaning. A run whose experiment, config and
    source are unchanged since an earlier one is copied from the cache (--no-cache
    recomputes it).
    """
    if quiet:
        progress.set_quiet(True)
    if no_cache:
        os.environ["OTTOKIT_CACHE"] = "off"
    if resume is not None:
        if experiment is not None or set_ or config is not None or seed or device:
            _fail(ValueError("--resume takes the run's own experiment and config; give no others"))
        _check_out(out)
        try:
            result = _guarded(lambda: resume_run(resume, out_root=out, quiet=quiet))
        except ValueError as exc:
            _fail(exc)
        typer.echo(f"run directory: {result.run_dir} (resumed from {resume})")
        _print_checks(result)
        return
    if experiment is None:
        _fail(ValueError("missing the experiment name; see `ottokit list`"))
    exp, cfg = _resolve(experiment, preset, config, set_ or [], seed, device)
    _check_out(out)
    if nproc < 1:
        _fail(ValueError(f"--nproc = {nproc}: must be an integer >= 1 (e.g. --nproc 2)"))
    if (nproc > 1 or distributed.launched_by_torchrun()) and not exp.distributed:
        if nproc > 1 or int(os.environ.get("WORLD_SIZE", "1")) > 1:
            _fail(
                ValueError(
                    f"{exp.name} runs in one process and does not take --nproc; experiments "
                    f"that do: {', '.join(distributed_names())}"
                )
            )
    if nproc > 1 and not distributed.launched_by_torchrun():
        child = ["run", exp.name, "--preset", preset, "--out", str(Path(out).resolve())]
        for item in set_ or []:
            child += ["--set", item]
        if config is not None:
            child += ["--config", str(Path(config).resolve())]
        if seed is not None:
            child += ["--seed", seed]
        if device is not None:
            child += ["--device", device]
        if quiet:
            child += ["--quiet"]
        try:
            distributed.launch(
                child, nproc, nnodes=nnodes, node_rank=node_rank, rdzv_endpoint=rdzv_endpoint
            )
        except distributed.DistributedError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(code=1) from None
        except ValueError as exc:
            _fail(exc)
        return
    if distributed.launched_by_torchrun() and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        # torch's launcher stops the other ranks with SIGTERM when one fails: end like
        # Ctrl-C, so the run directory is kept as -failed
        signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
        distributed.init_from_env(str(getattr(cfg, "device", "cpu")))
    try:
        result = _guarded(lambda: run_experiment(exp, cfg, out_root=out, quiet=quiet))
    except SystemExit as exc:  # stopped by a signal: say where the run was kept
        for note in getattr(exc, "__notes__", []):
            typer.echo(f"stopped: {note}", err=True)
        raise
    if distributed.is_main_process():
        typer.echo(f"run directory: {result.run_dir}")
        _print_checks(result)


@app.command("reproduce")
def reproduce_command(
    preset: _Preset = "quick",
    only: Annotated[
        str | None, typer.Option(help="Comma-separated experiment names (default: all).")
    ] = None,
    out: _Out = Path("runs"),
    quiet: _Quiet = False,
    jobs: Annotated[
        int | None,
        typer.Option(
            "--jobs",
            help="Experiments run at once, each with an equal share of the cores "
            "(default: the number of cores).",
        ),
    ] = None,
    no_cache: Annotated[
        bool,
        typer.Option("--no-cache", help="Recompute everything; neither read nor fill the cache."),
    ] = False,
) -> None:
    """Run every (or each --only) experiment and write one self-contained report.html.

    Independent experiments run concurrently, longest first; finished runs and trained
    networks whose inputs and source are unchanged come from the cache
    (`ottokit cache list`), and the report says which.
    """
    if quiet:
        progress.set_quiet(True)
    if jobs is not None and jobs < 1:
        _fail(f"--jobs = {jobs}: must be an integer >= 1 (e.g. --jobs {available_cores()})")
    if no_cache:
        os.environ["OTTOKIT_CACHE"] = "off"
    selected = [n.strip() for n in only.split(",") if n.strip()] if only is not None else None
    try:
        _check_preset(preset)
        if not select_experiments(selected):
            raise ValueError("no experiments selected")
    except ValueError as exc:
        _fail(exc)
    _check_out(out)
    typer.echo(
        str(_guarded(lambda: reproduce(preset, selected, out_root=out, quiet=quiet, jobs=jobs)))
    )


cache_app = typer.Typer(
    help="The cache of finished runs and trained networks (in $OTTOKIT_CACHE_DIR, else "
    "~/.cache/ottokit).",
    no_args_is_help=True,
)
app.add_typer(cache_app, name="cache")


@cache_app.command("list")
def cache_list() -> None:
    """List the cached entries: kind, what they hold, size and age."""
    found = cache.entries()
    if not found:
        typer.echo(f"the cache at {cache.cache_dir()} is empty")
        return
    table = Table(box=None, pad_edge=False)
    for column in ("kind", "entry", "size", "age", "key"):
        table.add_column(column)
    now = time.time()
    for e in found:
        table.add_row(
            e.kind, e.label, f"{e.size_bytes / 2**20:.1f} MiB", _age(now - e.created), e.key[:12]
        )
    Console().print(table)
    total = sum(e.size_bytes for e in found)
    typer.echo(f"{len(found)} entries, {total / 2**20:.1f} MiB in {cache.cache_dir()}")


@cache_app.command("clear")
def cache_clear() -> None:
    """Delete every cached entry."""
    typer.echo(f"deleted {cache.clear()} entries from {cache.cache_dir()}")


def _age(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f} {unit}"
    return f"{seconds:.0f} s"


@app.command("report")
def report_command(
    run_dir: Annotated[Path, typer.Argument(help="A run directory or a reproduce directory.")],
) -> None:
    """Rebuild report.html from the result.json file(s) in RUN_DIR.

    Only files inside RUN_DIR are embedded; a figure path that leads outside it, or a
    malformed result.json, is refused.
    """
    try:
        path = rebuild_report(run_dir)
    except OSError as exc:
        _fail(f"cannot write the report in {run_dir}: {exc.strerror or exc}")
    except ValueError as exc:
        _fail(exc)
    typer.echo(str(path))


@record
def main() -> None:
    """Entry point of the ``ottokit`` script (under torchrun, a failing rank's error is
    recorded for the launcher's report)."""
    app()


def _resolve(
    name: str,
    preset: str,
    config_file: Path | None,
    overrides: list[str],
    seed: str | None,
    device: str | None,
) -> tuple[Experiment, Any]:
    """The experiment and its config: preset, then config file, then --set, then flags."""
    try:
        exp = get(name)
        _check_preset(preset)
        cfg = exp.preset(preset)
        if config_file is not None:
            cfg = config_from_toml(type(cfg), config_file, base=cfg)
        cfg = apply_overrides(cfg, overrides)
        if seed is not None:
            try:
                seed_value = int(seed)
            except ValueError:
                raise ValueError(f"--seed: expected int, got {seed!r}") from None
            if seed_value < 0:
                raise ConfigError.for_key("--seed", seed_value, "an integer >= 0", 0)
            cfg = apply_overrides(cfg, [f"seed={seed_value}"])
        if device is not None:
            if re.fullmatch(DEVICE_PATTERN, device) is None:
                raise ValueError(f"unknown device {device!r}; allowed: {DEVICES_TEXT}")
            cfg = apply_overrides(cfg, [f"device={device}"])
        _check_common(validate_config(cfg))
    except (ConfigError, KeyError, ValueError) as exc:
        _fail(exc)
    return exp, cfg


def _check_preset(preset: str) -> None:
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; allowed: {', '.join(PRESETS)}")


def _check_common(cfg: Any) -> None:
    """The ``seed`` and ``device`` every experiment has, also in configs without ranges."""
    seed = getattr(cfg, "seed", 0)
    if seed < 0:
        raise ConfigError.for_key("seed", seed, "an integer >= 0", 0)
    device = str(getattr(cfg, "device", "cpu"))
    if re.fullmatch(DEVICE_PATTERN, device) is None:
        raise ConfigError.for_key("device", device, DEVICES_TEXT, "cpu")
    if device.startswith("cuda") and not _cuda_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available; use cpu")


def _check_out(out: Path) -> None:
    """One ``error:`` line unless runs can be written under ``out`` (nothing is created)."""
    path = Path(out).absolute()
    existing = next(p for p in (path, *path.parents) if p.exists())
    if not existing.is_dir():
        where = "" if existing == path else f" ({existing} is not a directory)"
        _fail(f"--out {out}: not a directory{where}; choose a directory for the runs")
    if not os.access(existing, os.W_OK | os.X_OK):
        _fail(f"--out {out}: {existing} is not writable; choose a writable directory")


def _guarded(work: Callable[[], T]) -> T:
    """``work()``, turning an interruption or an unwritable run directory into one line."""
    try:
        return work()
    except RunInterrupted as exc:
        where = f"; run directory kept at {exc.run_dir}" if exc.run_dir is not None else ""
        typer.echo(f"error: {exc}{where}", err=True)
        raise typer.Exit(code=128 + exc.signum) from None
    except RunOutputError as exc:
        where = f"; run directory kept at {exc.run_dir}" if exc.run_dir is not None else ""
        typer.echo(f"error: {' '.join(str(exc).split())}{where}", err=True)
        raise typer.Exit(code=1 if exc.started else 2) from None


def _config_text(exp: Experiment, preset: str, cfg: Any) -> str:
    """The resolved config, two or three lines per key: value, meaning, type and range."""
    lines = [
        f"{exp.name} ({preset} preset, {type(cfg).__name__}); "
        f"change a key with --set KEY=VALUE or --config FILE.toml",
        "",
    ]
    for fd in describe_config(cfg):
        lines.append(f"{fd.name} = {fd.value_text}")
        if fd.doc:
            lines.append(f"    {fd.doc}")
        if fd.choices is not None:
            kind = "each of" if fd.type.startswith("comma-separated") else "one of"
            lines.append(f"    {kind}: {fd.allowed}")
        else:
            lines.append("    " + "; ".join(x for x in (fd.type, fd.allowed) if x))
    return "\n".join(lines)


def _cuda_available() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def _print_checks(result: Result) -> None:
    n_hold = sum(c.holds for c in result.checks)
    table = Table(box=None, pad_edge=False, show_header=False)
    table.add_column("mark", no_wrap=True)
    table.add_column("check")
    table.add_column("detail")
    for c in result.checks:
        mark = "[green]✓[/green]" if c.holds else "[red]✗[/red]"
        table.add_row(mark, c.name, c.detail)
    console = Console()
    console.print(table)
    console.print(f"{n_hold} of {len(result.checks)} checks hold", highlight=False)


def _fail(exc: BaseException | str) -> NoReturn:
    """Print one ``error:`` line to stderr and exit with status 2."""
    message = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
    typer.echo(f"error: {' '.join(str(message).split())}", err=True)
    raise typer.Exit(code=2)

"""The ``ottokit`` command line: ``list``, ``run``, ``reproduce`` and ``report``.

The CLI only parses and validates; the work is done by
:func:`ottokit.experiments._runner.run_experiment` and friends, which are callable
from Python too. A bad argument (unknown experiment, key, preset or device, a value
of the wrong type, a missing config file) prints one ``error:`` line to stderr and
exits with status 2. Errors raised inside an experiment propagate unchanged, after
the run directory has been kept as ``...-failed``.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.table import Table
from torch.distributed.elastic.multiprocessing.errors import record

from ottokit import distributed
from ottokit._config import ConfigError, apply_overrides, config_from_toml
from ottokit.experiments._registry import Experiment, all_experiments, distributed_names, get
from ottokit.experiments._runner import (
    PRESETS,
    rebuild_report,
    reproduce,
    resume_run,
    run_experiment,
    select_experiments,
)
from ottokit.report import progress
from ottokit.report.result import Result

__all__ = ["app", "main"]

DEVICES = ("cpu", "cuda")

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


@app.command("run")
def run_command(
    experiment: Annotated[
        str | None, typer.Argument(help="Experiment name (see `ottokit list`).")
    ] = None,
    preset: Annotated[str, typer.Option(help="Config preset: quick or paper.")] = "quick",
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override one config field, key=value (repeatable)."),
    ] = None,
    config: Annotated[
        Path | None, typer.Option("--config", help="Flat TOML file of config values.")
    ] = None,
    out: Annotated[Path, typer.Option("--out", help="Root directory for runs.")] = Path("runs"),
    seed: Annotated[str | None, typer.Option(help="Random seed (overrides the config).")] = None,
    device: Annotated[str | None, typer.Option(help="cpu or cuda (overrides the config).")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bars.")] = False,
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

    The config is resolved in order: preset, --config file, --set, then --seed/--device.
    """
    if quiet:
        progress.set_quiet(True)
    if resume is not None:
        if experiment is not None or set_ or config is not None or seed or device:
            _fail(ValueError("--resume takes the run's own experiment and config; give no others"))
        try:
            result = resume_run(resume, out_root=out, quiet=quiet)
        except ValueError as exc:
            _fail(exc)
        typer.echo(f"run directory: {result.run_dir} (resumed from {resume})")
        _print_checks(result)
        return
    if experiment is None:
        _fail(ValueError("missing the experiment name; see `ottokit list`"))
    exp, cfg = _resolve(experiment, preset, config, set_ or [], seed, device)
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
        result = run_experiment(exp, cfg, out_root=out, quiet=quiet)
    except SystemExit as exc:  # stopped by a signal: say where the run was kept
        for note in getattr(exc, "__notes__", []):
            typer.echo(f"stopped: {note}", err=True)
        raise
    if distributed.is_main_process():
        typer.echo(f"run directory: {result.run_dir}")
        _print_checks(result)


@app.command("reproduce")
def reproduce_command(
    preset: Annotated[str, typer.Option(help="Config preset: quick or paper.")] = "quick",
    only: Annotated[
        str | None, typer.Option(help="Comma-separated experiment names (default: all).")
    ] = None,
    out: Annotated[Path, typer.Option("--out", help="Root directory for runs.")] = Path("runs"),
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bars.")] = False,
) -> None:
    """Run every (or each --only) experiment and write one self-contained report.html."""
    if quiet:
        progress.set_quiet(True)
    selected = [n.strip() for n in only.split(",") if n.strip()] if only is not None else None
    try:
        _check_preset(preset)
        if not select_experiments(selected):
            raise ValueError("no experiments selected")
    except ValueError as exc:
        _fail(exc)
    typer.echo(str(reproduce(preset, selected, out_root=out, quiet=quiet)))


@app.command("report")
def report_command(
    run_dir: Annotated[Path, typer.Argument(help="A run directory or a reproduce directory.")],
) -> None:
    """Rebuild report.html from the result.json file(s) in RUN_DIR."""
    try:
        path = rebuild_report(run_dir)
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
            cfg = apply_overrides(cfg, [f"seed={seed_value}"])
        if device is not None:
            if device not in DEVICES:
                raise ValueError(f"unknown device {device!r}; allowed: {', '.join(DEVICES)}")
            cfg = apply_overrides(cfg, [f"device={device}"])
        _check_device(str(getattr(cfg, "device", "cpu")))
    except (ConfigError, KeyError, ValueError) as exc:
        _fail(exc)
    return exp, cfg


def _check_preset(preset: str) -> None:
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; allowed: {', '.join(PRESETS)}")


def _check_device(device: str) -> None:
    if device.startswith("cuda") and not _cuda_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available; use cpu")


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


def _fail(exc: BaseException) -> NoReturn:
    """Print one ``error:`` line to stderr and exit with status 2."""
    message = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
    typer.echo(f"error: {' '.join(str(message).split())}", err=True)
    raise typer.Exit(code=2)

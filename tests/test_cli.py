"""The ``ottokit`` command line, and the progress bars it switches off with --quiet."""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ottokit import cli, progress
from ottokit.experiments import _registry
from ottokit.experiments._registry import Experiment
from ottokit.report.figures import new_figure, save_figure
from ottokit.report.result import Check, Result

runner = CliRunner()


@dataclass(frozen=True)
class TinyConfig:
    n: int = 3
    method: str = "otto"
    fail: bool = False
    seed: int = 0
    device: str = "cpu"

    @classmethod
    def quick(cls) -> TinyConfig:
        return cls()

    @classmethod
    def paper(cls) -> TinyConfig:
        return cls(n=10)


def tiny_run(cfg: TinyConfig, out: Path) -> Result:
    if cfg.fail:
        raise FloatingPointError("step size too large")
    fig, ax = new_figure()
    ax.plot(range(cfg.n))
    save_figure(fig, out / "figures" / "line.png")
    return Result(
        experiment="tiny",
        seed_file="000_tiny.txt",
        claim="a line is straight",
        run_dir=out,
        metrics={"n": cfg.n},
        figures={"line": "figures/line.png"},
        checks=[Check("straight", True, "slope 1"), Check("curved", False, "it is not")],
    )


@pytest.fixture(autouse=True)
def tiny_experiment() -> Iterator[Experiment]:
    exp = _registry.register(
        Experiment("tiny", "000", "000_tiny.txt", "draws a straight line", TinyConfig, tiny_run)
    )
    yield exp
    _registry._REGISTRY.pop("tiny", None)
    progress.set_quiet(False)


def _run_dirs(out: Path) -> list[Path]:
    return sorted((out / "tiny").iterdir()) if (out / "tiny").exists() else []


def _config_text(out: Path) -> str:
    (run_dir,) = _run_dirs(out)
    return (run_dir / "config.toml").read_text()


def test_list_shows_each_experiment() -> None:
    result = runner.invoke(cli.app, ["list"])
    assert result.exit_code == 0
    line = next(ln for ln in result.stdout.splitlines() if ln.startswith("tiny"))
    assert "000" in line and "000_tiny.txt" in line and "draws a straight line" in line


def test_run_with_overrides(tmp_path: Path) -> None:
    out = tmp_path / "runs"
    args = ["run", "tiny", "--set", "n=6", "--set", "method=linear", "--seed", "3"]
    result = runner.invoke(cli.app, [*args, "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    (run_dir,) = _run_dirs(out)
    assert f"run directory: {run_dir}" in result.stdout
    assert "1 of 2 checks hold" in result.stdout
    assert "✓" in result.stdout and "✗" in result.stdout
    text = _config_text(out)
    assert "n = 6" in text and 'method = "linear"' in text and "seed = 3" in text
    assert (run_dir / "figures" / "line.png").is_file()


def test_resolution_order_preset_file_set_flags(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text('method = "file"\nseed = 5\n')
    out = tmp_path / "runs"
    args = ["run", "tiny", "--preset", "paper", "--config", str(config), "--set", "seed=6"]
    result = runner.invoke(cli.app, [*args, "--seed", "7", "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    text = _config_text(out)
    assert "n = 10" in text  # preset
    assert 'method = "file"' in text  # config file over preset
    assert "seed = 7" in text  # --seed over --set over the file


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "nope"], "error: unknown experiment 'nope'; allowed: "),
        (["run", "tiny", "--set", "m=3"], "error: --set unknown key 'm'; allowed: n, method, fail"),
        (["run", "tiny", "--set", "n=abc"], "error: --set n: expected int, got 'abc'"),
        (["run", "tiny", "--set", "n"], "error: --set expects key=value, got 'n'"),
        (["run", "tiny", "--preset", "fast"], "error: unknown preset 'fast'; allowed: quick"),
        (["run", "tiny", "--device", "tpu"], "error: unknown device 'tpu'; allowed: cpu, cuda"),
        (["run", "tiny", "--seed", "x"], "error: --seed: expected int, got 'x'"),
        (["run", "tiny", "--config", "missing.toml"], "error: config file not found: missing"),
        (["reproduce", "--only", "tiny,nope"], "error: unknown experiment(s) 'nope'; allowed:"),
        (["reproduce", "--preset", "slow"], "error: unknown preset 'slow'"),
    ],
)
def test_bad_arguments_give_one_line_and_exit_2(
    tmp_path: Path, args: list[str], message: str
) -> None:
    result = runner.invoke(cli.app, [*args, "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert result.stderr.startswith(message)
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.output
    assert not any(tmp_path.iterdir())  # nothing was run


def test_cuda_without_a_gpu_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli, "_cuda_available", lambda: False)
    for args in (["--device", "cuda"], ["--set", "device=cuda"]):
        result = runner.invoke(cli.app, ["run", "tiny", *args, "--out", str(tmp_path)])
        assert result.exit_code == 2
        assert result.stderr.startswith("error: device 'cuda' requested but CUDA is not available")
    assert not any(tmp_path.iterdir())


def test_errors_inside_an_experiment_propagate(tmp_path: Path) -> None:
    args = ["run", "tiny", "--set", "fail=true", "--out", str(tmp_path), "--quiet"]
    result = runner.invoke(cli.app, args)
    assert result.exit_code == 1
    assert isinstance(result.exception, FloatingPointError)
    (failed,) = _run_dirs(tmp_path)
    assert failed.name.endswith("-failed")
    assert "FloatingPointError: step size too large" in (failed / "log.txt").read_text()


def test_reproduce_prints_the_report_path(tmp_path: Path) -> None:
    result = runner.invoke(cli.app, ["reproduce", "--only", "tiny", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    html_path = Path(result.stdout.strip())
    assert html_path.name == "report.html" and html_path.is_file()
    assert html_path.parent.parent == tmp_path / "reproduce"
    assert "a line is straight" in html_path.read_text(encoding="utf-8")


def test_report_rebuilds_from_a_run_dir(tmp_path: Path) -> None:
    runner.invoke(cli.app, ["run", "tiny", "--out", str(tmp_path), "--quiet"])
    (run_dir,) = _run_dirs(tmp_path)
    result = runner.invoke(cli.app, ["report", str(run_dir)])
    assert result.exit_code == 0, result.output
    assert Path(result.stdout.strip()) == run_dir / "report.html"
    assert "data:image/png;base64," in (run_dir / "report.html").read_text(encoding="utf-8")

    empty = tmp_path / "empty"
    empty.mkdir()
    result = runner.invoke(cli.app, ["report", str(empty)])
    assert result.exit_code == 2
    assert result.stderr.startswith("error: no result.json in")


def test_quiet_flag_turns_progress_off(tmp_path: Path) -> None:
    runner.invoke(cli.app, ["run", "tiny", "--out", str(tmp_path), "--quiet"])
    assert progress.is_quiet()
    with progress.progress_bar(3, "work", enabled=True) as bar:
        assert not bar.shown


def test_progress_bar_counts_and_nests() -> None:
    with progress.progress_bar(10, "outer", enabled=True) as outer:
        assert outer.shown
        with progress.progress_bar(4, "inner", enabled=True) as inner:
            assert inner.shown
            inner.advance()
            inner.advance(2)
            assert inner.completed == 3
        outer.update(completed=7)
        outer.advance()
        assert outer.completed == 8
    assert progress._active is None


def test_progress_bar_is_off_without_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    with progress.progress_bar(2, "work") as bar:
        bar.advance(2)
        assert not bar.shown and bar.completed == 2
    assert sys.stderr.getvalue() == ""


def test_show_prints_every_key_with_value_type_range_and_meaning() -> None:
    from ottokit._config import describe_config
    from ottokit.experiments._registry import get

    result = runner.invoke(cli.app, ["show", "graph-heat", "--preset", "paper"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("graph-heat (paper preset, GraphHeatConfig)")
    docs = describe_config(get("graph-heat").preset("paper"))
    for fd in docs:
        k = lines.index(f"{fd.name} = {fd.value_text}")
        assert lines[k + 1] == f"    {fd.doc}"
        assert fd.allowed in lines[k + 2]
    assert "n_nodes = 500" in lines and "    int; >= 2" in lines
    assert "    one of: auto, lsoda, bdf, adams, rk45, radau, scipy-bdf" in lines
    assert "t_long = 3.0" in lines  # paper, not quick (1.0)


def test_show_applies_overrides_and_refuses_bad_ones(tmp_path: Path) -> None:
    result = runner.invoke(cli.app, ["show", "gan-geometry", "--set", "divergences=kl,jsd"])
    assert result.exit_code == 0, result.output
    assert "divergences = kl,jsd" in result.stdout.splitlines()
    assert "    each of: kl, reverse_kl, jsd, chi2, hellinger; no repeats" in result.stdout
    result = runner.invoke(cli.app, ["show", "gan-geometry", "--set", "edi_sizes=8"])
    assert result.exit_code == 2
    assert result.stderr.startswith("error: edi_sizes = 8: must be a list of at least 2 items")
    result = runner.invoke(cli.app, ["show", "tiny"])
    assert result.exit_code == 0 and "n = 3" in result.stdout.splitlines()


def test_run_help_points_to_show() -> None:
    result = runner.invoke(cli.app, ["run", "--help"])
    assert result.exit_code == 0
    assert "ottokit show" in " ".join(result.stdout.split())


@pytest.mark.parametrize("kind", ["file", "below-a-file", "proc", "read-only"])
def test_an_unusable_out_is_one_line_before_the_run(
    tmp_path: Path, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    out = {
        "file": a_file,
        "below-a-file": a_file / "runs",
        "proc": Path("/proc/runs"),
        "read-only": tmp_path / "ro" / "runs",
    }[kind]
    if kind == "read-only":
        (tmp_path / "ro").mkdir(mode=0o555)
        if os.geteuid() == 0:  # root may write anywhere: let the check see what a user would
            access = os.access

            def no_write(p: Path, mode: int) -> bool:
                return False if Path(p) == out.parent else access(p, mode)

            monkeypatch.setattr(os, "access", no_write)
    for command in (["run", "tiny"], ["reproduce", "--only", "tiny"]):
        result = runner.invoke(cli.app, [*command, "--out", str(out), "--quiet"])
        assert result.exit_code == 2, result.output
        (line,) = result.stderr.strip().splitlines()
        assert line.startswith("error: ") and str(out.parent) in line
        assert "Traceback" not in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["a-file", *(["ro"] if kind == "read-only" else [])]
    )

"""Run directories, atomic writes, the run log, and the experiment runner."""

from __future__ import annotations

import base64
import errno
import json
import logging
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from ottokit import cli
from ottokit.experiments import _registry, _runner
from ottokit.experiments._registry import Experiment
from ottokit.experiments._reproduce import reproduce
from ottokit.experiments._runner import (
    RunOutputError,
    rebuild_report,
    run_experiment,
    select_experiments,
)
from ottokit.report import rundir
from ottokit.report.figures import new_figure, save_figure
from ottokit.report.html import render_html
from ottokit.report.result import Check, Comparison, Result, ResultFileError
from ottokit.report.rundir import (
    RunInterrupted,
    atomic_write_bytes,
    atomic_write_text,
    new_run_dir,
    new_unique_dir,
    run_logging,
)

NAME_RE = re.compile(r"\d{8}-\d{6}-[0-9a-f]{6}")


@dataclass(frozen=True)
class FakeConfig:
    n: int = 3
    fail: bool = False
    seed: int = 0
    device: str = "cpu"

    @classmethod
    def quick(cls) -> FakeConfig:
        return cls()

    @classmethod
    def paper(cls) -> FakeConfig:
        return cls(n=10)


@dataclass(frozen=True)
class FailingConfig(FakeConfig):
    fail: bool = True


def fake_run(cfg: FakeConfig, out: Path) -> Result:
    assert (out / "config.toml").is_file(), "config.toml must exist before the run starts"
    logging.getLogger("ottokit.fake").info("fake run with n=%d", cfg.n)
    if cfg.fail:
        raise RuntimeError("boom: the flow diverged")
    fig, ax = new_figure()
    ax.plot(np.arange(cfg.n), np.arange(cfg.n) ** 2)
    save_figure(fig, out / "figures" / "parabola.png")
    return Result(
        experiment="fake-ok",
        seed_file="000_fake.txt",
        claim="parabolas are convex",
        run_dir=out,
        metrics={"n": cfg.n, "ratio": math.nan, "growth": math.inf, "xs": np.arange(3)},
        figures={"a parabola": str(out / "figures" / "parabola.png")},
        checks=[Check("convex", True, "second difference 2 > 0"), Check("linear", False, "no")],
        comparisons=[Comparison("second difference", 2.0, 2, "exact")],
        summary="Parabolas bend upward.",
    )


@pytest.fixture
def fake_experiments() -> Iterator[list[Experiment]]:
    exps = [
        Experiment("fake-ok", "000", "000_fake.txt", "a fake that works", FakeConfig, fake_run),
        Experiment("fake-bad", "001", "001_fake.txt", "a fake that fails", FailingConfig, fake_run),
    ]
    # reproduce() runs the whole registry: hide the real experiments while the fakes run
    saved = dict(_registry._REGISTRY)
    _registry._load_all()
    real = dict(_registry._REGISTRY)
    _registry._REGISTRY.clear()
    for exp in exps:
        _registry.register(exp)
    try:
        yield exps
    finally:
        _registry._REGISTRY.clear()
        _registry._REGISTRY.update(real or saved)


def _fixed_clock(monkeypatch: pytest.MonkeyPatch, ids: list[str]) -> None:
    """Freeze the UTC stamp and hand out the given ids in order."""
    supply = iter(ids)
    monkeypatch.setattr(rundir, "_utc_stamp", lambda: "20240101-120000")
    monkeypatch.setattr(rundir, "_short_id", lambda: next(supply))


def test_new_run_dir_works_in_a_hidden_temp_dir_then_renames(tmp_path: Path) -> None:
    run = new_run_dir(tmp_path, "heat")
    assert NAME_RE.fullmatch(run.name)
    assert run.path == tmp_path / "heat" / f".{run.name}.tmp"
    assert run.figures.is_dir()
    assert not run.final_path.exists()
    (run.path / "x.txt").write_text("data")

    final = run.finalize()
    assert final == tmp_path / "heat" / run.name == run.path
    assert (final / "x.txt").read_text() == "data"
    assert (final / "figures").is_dir()
    assert [p.name for p in (tmp_path / "heat").iterdir()] == [run.name]
    with pytest.raises(RuntimeError, match="already finished"):
        run.finalize()


def test_finalize_never_overwrites_an_existing_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fixed_clock(monkeypatch, ["aaaaaa", "bbbbbb"])
    run = new_run_dir(tmp_path, "heat")
    taken = tmp_path / "heat" / "20240101-120000-aaaaaa"
    taken.mkdir()
    (taken / "keep.txt").write_text("older run")

    final = run.finalize()
    assert final.name == "20240101-120000-bbbbbb"
    assert (taken / "keep.txt").read_text() == "older run"


def test_empty_existing_directory_is_not_taken_over(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fixed_clock(monkeypatch, ["aaaaaa", "cccccc"])
    run = new_run_dir(tmp_path, "heat")
    (tmp_path / "heat" / "20240101-120000-aaaaaa").mkdir()
    assert run.finalize().name == "20240101-120000-cccccc"


def test_same_second_same_id_gives_two_directories(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fixed_clock(monkeypatch, ["aaaaaa", "aaaaaa", "bbbbbb"])
    first = new_run_dir(tmp_path, "heat").finalize()
    second = new_run_dir(tmp_path, "heat").finalize()
    assert first != second
    assert first.is_dir() and second.is_dir()


def test_mark_failed_keeps_the_directory(tmp_path: Path) -> None:
    run = new_run_dir(tmp_path, "heat")
    (run.path / "log.txt").write_text("trace")
    failed = run.mark_failed()
    assert failed.name == f"{run.name}-failed"
    assert (failed / "log.txt").read_text() == "trace"
    assert run.state == "failed"


def test_new_run_dir_rejects_path_like_names(tmp_path: Path) -> None:
    for bad in ["", "a/b", "..", ".hidden"]:
        with pytest.raises(ValueError, match="plain directory name"):
            new_run_dir(tmp_path, bad)


def test_new_unique_dir_never_reuses_a_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fixed_clock(monkeypatch, ["aaaaaa", "aaaaaa", "dddddd"])
    first = new_unique_dir(tmp_path)
    (first / "report.html").write_text("old")
    second = new_unique_dir(tmp_path)
    assert (first.name, second.name) == ("20240101-120000-aaaaaa", "20240101-120000-dddddd")
    assert (first / "report.html").read_text() == "old"


def test_atomic_write_refuses_to_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "a.txt"
    atomic_write_text(path, "first ∂ρ")
    assert path.read_text(encoding="utf-8") == "first ∂ρ"
    with pytest.raises(FileExistsError, match="refusing to overwrite"):
        atomic_write_text(path, "second")
    assert path.read_text(encoding="utf-8") == "first ∂ρ"
    atomic_write_bytes(path, b"third", overwrite=True)
    assert path.read_bytes() == b"third"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]  # no temporary files left


def test_run_logging_writes_and_detaches(tmp_path: Path) -> None:
    logger = logging.getLogger("ottokit")
    n_handlers, level = len(logger.handlers), logger.level
    path = tmp_path / "log.txt"
    with run_logging(path):
        logging.getLogger("ottokit.graph").info("step %d", 7)
        logging.getLogger("ottokit.graph").debug("hidden detail")
    logging.getLogger("ottokit.graph").warning("after the run")
    text = path.read_text()
    assert re.search(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ INFO ottokit.graph: step 7$", text, re.M)
    assert "hidden detail" not in text
    assert "after the run" not in text
    assert (len(logger.handlers), logger.level) == (n_handlers, level)


def test_run_experiment_writes_the_run_directory(
    tmp_path: Path, fake_experiments: list[Experiment]
) -> None:
    result = run_experiment(fake_experiments[0], FakeConfig(n=4), out_root=tmp_path)
    run_dir = result.run_dir
    assert run_dir.parent == tmp_path / "fake-ok" and NAME_RE.fullmatch(run_dir.name)
    assert sorted(p.name for p in run_dir.parent.iterdir()) == [run_dir.name]  # no temp dir
    for name in ["config.toml", "metrics.json", "result.json", "report.md", "log.txt"]:
        assert (run_dir / name).is_file(), name
    assert (run_dir / "figures" / "parabola.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    assert "n = 4" in (run_dir / "config.toml").read_text()
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics == {"n": 4, "ratio": "nan", "growth": "inf", "xs": [0, 1, 2]}

    stored = json.loads((run_dir / "result.json").read_text())
    assert Path(stored["run_dir"]) == run_dir
    assert stored["figures"] == {"a parabola": "figures/parabola.png"}
    assert result.figures == {"a parabola": "figures/parabola.png"}
    assert Result.load(run_dir).checks == result.checks

    report = (run_dir / "report.md").read_text()
    assert "| ✓ | convex |" in report and "| ✗ | linear |" in report
    assert "![a parabola](figures/parabola.png)" in report
    assert "fake run with n=4" in (run_dir / "log.txt").read_text()


def test_two_runs_in_the_same_second_get_two_directories(
    tmp_path: Path, fake_experiments: list[Experiment], monkeypatch: pytest.MonkeyPatch
) -> None:
    _fixed_clock(monkeypatch, ["aaaaaa", "aaaaaa", "bbbbbb"])
    first = run_experiment(fake_experiments[0], FakeConfig(n=2), out_root=tmp_path).run_dir
    second = run_experiment(fake_experiments[0], FakeConfig(n=5), out_root=tmp_path).run_dir
    assert (first.name, second.name) == ("20240101-120000-aaaaaa", "20240101-120000-bbbbbb")
    assert "n = 2" in (first / "config.toml").read_text()
    assert "n = 5" in (second / "config.toml").read_text()


def test_failed_run_is_kept_with_its_traceback(
    tmp_path: Path, fake_experiments: list[Experiment]
) -> None:
    with pytest.raises(RuntimeError, match="boom") as info:
        run_experiment(fake_experiments[1], FailingConfig(), out_root=tmp_path)
    (failed,) = list((tmp_path / "fake-bad").iterdir())
    assert failed.name.endswith("-failed") and NAME_RE.fullmatch(failed.name[: -len("-failed")])
    assert f"run directory kept at {failed}" in info.value.__notes__
    log = (failed / "log.txt").read_text()
    assert "Traceback" in log and "RuntimeError: boom: the flow diverged" in log
    assert (failed / "config.toml").is_file()
    record = Result.load(failed)
    # an error is recorded as an error, never as a seed claim that does not hold
    assert record.checks == [] and not record.all_hold
    assert record.error == "RuntimeError: boom: the flow diverged"


def test_run_experiment_checks_the_config_type(
    tmp_path: Path, fake_experiments: list[Experiment]
) -> None:
    with pytest.raises(TypeError, match="must be a FakeConfig"):
        run_experiment(fake_experiments[0], {"n": 3}, out_root=tmp_path)
    assert not (tmp_path / "fake-ok").exists()


def test_reproduce_continues_past_a_failure(
    tmp_path: Path, fake_experiments: list[Experiment]
) -> None:
    html_path = reproduce("quick", None, out_root=tmp_path, quiet=True)
    assert html_path.name == "report.html" and html_path.parent.parent == tmp_path / "reproduce"
    html = html_path.read_text(encoding="utf-8")
    assert "fake-ok" in html and "fake-bad" in html
    assert "This run did not finish" in html and "boom: the flow diverged" in html
    ok_runs = list((html_path.parent / "fake-ok").iterdir())
    bad_runs = list((html_path.parent / "fake-bad").iterdir())
    assert len(ok_runs) == 1 and not ok_runs[0].name.endswith("-failed")
    assert len(bad_runs) == 1 and bad_runs[0].name.endswith("-failed")


def test_reproduce_only_and_unknown_names(
    tmp_path: Path, fake_experiments: list[Experiment]
) -> None:
    html_path = reproduce("paper", ["fake-ok"], out_root=tmp_path)
    assert [p.name for p in html_path.parent.iterdir() if p.is_dir()] == ["fake-ok"]
    (run,) = (html_path.parent / "fake-ok").iterdir()
    assert "n = 10" in (run / "config.toml").read_text()  # the paper preset

    with pytest.raises(ValueError, match=r"unknown experiment\(s\) 'nope'; allowed: .*fake-ok"):
        reproduce("quick", ["nope"], out_root=tmp_path / "other")
    assert not (tmp_path / "other").exists()
    with pytest.raises(ValueError, match="unknown preset 'fast'"):
        reproduce("fast", None, out_root=tmp_path)


def test_select_experiments_keeps_registry_order(fake_experiments: list[Experiment]) -> None:
    chosen = select_experiments(["fake-bad", "fake-ok"])
    assert [e.name for e in chosen] == ["fake-ok", "fake-bad"]


def test_rebuild_report_for_one_run_and_for_a_reproduce_dir(
    tmp_path: Path, fake_experiments: list[Experiment]
) -> None:
    result = run_experiment(fake_experiments[0], FakeConfig(), out_root=tmp_path / "runs")
    single = rebuild_report(result.run_dir)
    assert single == result.run_dir / "report.html"
    assert "parabolas are convex" in single.read_text(encoding="utf-8")

    html_path = reproduce("quick", None, out_root=tmp_path / "runs", quiet=True)
    html_path.unlink()
    rebuilt = rebuild_report(html_path.parent)
    assert rebuilt == html_path
    text = rebuilt.read_text(encoding="utf-8")
    assert "fake-ok" in text and "fake-bad" in text

    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no result.json"):
        rebuild_report(tmp_path / "empty")


def test_run_experiment_with_a_relative_out_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_experiments: list[Experiment]
) -> None:
    """An experiment that records figures as str(out / ...) must work when the output
    root is relative to the working directory (as `ottokit reproduce` passes it)."""
    monkeypatch.chdir(tmp_path)
    result = run_experiment(fake_experiments[0], FakeConfig(), out_root=Path("rel") / "runs")
    assert result.run_dir.is_absolute() and result.run_dir.is_dir()
    assert result.figures == {"a parabola": "figures/parabola.png"}
    assert (result.run_dir / "figures" / "parabola.png").is_file()


@dataclass(frozen=True)
class SignalConfig(FakeConfig):
    signum: int = signal.SIGTERM


def signal_run(cfg: SignalConfig, out: Path) -> Result:
    os.kill(os.getpid(), cfg.signum)
    time.sleep(5)  # the handler interrupts this
    raise AssertionError("the signal was not delivered")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_keeps_the_run_as_failed_with_the_reason(
    tmp_path: Path, fake_experiments: list[Experiment], signum: int
) -> None:
    exp = Experiment("fake-signal", "000", "000_fake.txt", "killed", SignalConfig, signal_run)
    previous = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    with pytest.raises(RunInterrupted) as info:
        run_experiment(exp, SignalConfig(signum=signum), out_root=tmp_path)
    name = signal.Signals(signum).name
    (failed,) = list((tmp_path / "fake-signal").iterdir())  # no hidden .tmp left behind
    assert failed.name.endswith("-failed") and info.value.run_dir == failed
    assert (info.value.signum, str(info.value)) == (signum, f"interrupted by {name}")
    assert f"experiment fake-signal interrupted by {name}" in (failed / "log.txt").read_text()
    record = Result.load(failed)
    assert record.checks == [] and record.error == f"RunInterrupted: interrupted by {name}"
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == previous


def test_ctrl_c_at_the_command_line_says_where_the_run_was_kept(
    tmp_path: Path, fake_experiments: list[Experiment]
) -> None:
    exp = Experiment("fake-signal", "000", "000_fake.txt", "killed", SignalConfig, signal_run)
    _registry.register(exp)
    args = ["run", "fake-signal", "--set", f"signum={int(signal.SIGINT)}", "--out", str(tmp_path)]
    result = CliRunner().invoke(cli.app, [*args, "--quiet"])
    assert result.exit_code == 128 + signal.SIGINT
    (failed,) = list((tmp_path / "fake-signal").iterdir())
    assert failed.name.endswith("-failed")
    assert result.stderr.strip() == f"error: interrupted by SIGINT; run directory kept at {failed}"


SLEEPY_SCRIPT = """
import sys, time
from dataclasses import dataclass
from pathlib import Path
from ottokit.experiments import _registry
from ottokit.experiments._registry import Experiment

BASE = Path(sys.argv[1])

@dataclass(frozen=True)
class SleepyConfig:
    seed: int = 0
    device: str = "cpu"

    @classmethod
    def quick(cls):
        return cls()

    @classmethod
    def paper(cls):
        return cls()

def run(cfg, out):
    (BASE / "started").write_text(str(out))
    time.sleep(120)
    raise AssertionError("not interrupted")

_registry.register(Experiment("sleepy", "000", "000_x.txt", "sleeps", SleepyConfig, run))
from ottokit.cli import main
sys.argv = ["ottokit", "run", "sleepy", "--out", str(BASE / "runs"), "--quiet"]
main()
"""


def test_sigterm_to_the_command_line_keeps_the_run_and_says_where(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen(
        [sys.executable, "-c", SLEEPY_SCRIPT, str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        started = tmp_path / "started"
        deadline = time.monotonic() + 120
        while not started.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert started.exists(), proc.communicate(timeout=30)
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM
    (failed,) = list((tmp_path / "runs" / "sleepy").iterdir())
    assert failed.name.endswith("-failed")
    assert stderr.strip() == f"error: interrupted by SIGTERM; run directory kept at {failed}"
    record = Result.load(failed)
    assert record.checks == [] and record.error == "RunInterrupted: interrupted by SIGTERM"
    assert "interrupted by SIGTERM" in (failed / "log.txt").read_text()


_write_json = _runner._write_json


def _no_space(path: Path, *args: object, **kwargs: object) -> None:
    """``_write_json``, with a full disk when the finished run's metrics are written."""
    if path.name == "metrics.json":
        raise OSError(errno.ENOSPC, "No space left on device", "metrics.json")
    _write_json(path, *args, **kwargs)


def test_results_are_kept_visible_when_writing_them_fails(
    tmp_path: Path, fake_experiments: list[Experiment], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_runner, "_write_json", _no_space)
    with pytest.raises(RunOutputError) as info:
        run_experiment(fake_experiments[0], FakeConfig(), out_root=tmp_path)
    (failed,) = list((tmp_path / "fake-ok").iterdir())
    assert failed.name.endswith("-failed") and info.value.run_dir == failed
    assert info.value.started
    assert str(info.value) == (
        "could not write the results of the finished run: No space left on device "
        "(metrics.json)"
    )
    assert (failed / "figures" / "parabola.png").is_file()
    assert "No space left on device" in (failed / "log.txt").read_text()


def test_the_error_says_where_results_are_when_no_rename_works(
    tmp_path: Path, fake_experiments: list[Experiment], monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(self: rundir.RunDir) -> Path:
        raise PermissionError(errno.EACCES, "Permission denied", str(self.parent))

    monkeypatch.setattr(rundir.RunDir, "finalize", refuse)
    monkeypatch.setattr(rundir.RunDir, "mark_failed", refuse)
    with pytest.raises(RunOutputError) as info:
        run_experiment(fake_experiments[0], FakeConfig(), out_root=tmp_path)
    (kept,) = list((tmp_path / "fake-ok").iterdir())
    assert kept.name.startswith(".") and kept.name.endswith(".tmp")
    assert info.value.run_dir == kept and (kept / "result.json").is_file()
    assert str(info.value).startswith("could not close the finished run: Permission denied")


def test_cli_reports_an_output_failure_in_one_line(
    tmp_path: Path, fake_experiments: list[Experiment], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_runner, "_write_json", _no_space)
    result = CliRunner().invoke(cli.app, ["run", "fake-ok", "--out", str(tmp_path), "--quiet"])
    assert result.exit_code == 1
    (failed,) = list((tmp_path / "fake-ok").iterdir())
    assert result.stderr.strip() == (
        "error: could not write the results of the finished run: No space left on device "
        f"(metrics.json); run directory kept at {failed}"
    )


def _run_with_figure(tmp_path: Path, exp: Experiment) -> Path:
    return run_experiment(exp, FakeConfig(), out_root=tmp_path / "runs").run_dir


def _point_figure_at(run_dir: Path, rel: str) -> None:
    path = run_dir / "result.json"
    data = json.loads(path.read_text())
    data["figures"]["a parabola"] = rel
    path.write_text(json.dumps(data))


SECRET = "do-not-leak-3141592653"


@pytest.mark.parametrize(
    ("how", "fragment"),
    [
        ("traversal", "leads outside the run directory"),
        ("deep-traversal", "leads outside the run directory"),
        ("absolute", "is absolute"),
        ("symlink", "leads outside the run directory"),
        ("symlinked-dir", "leads outside the run directory"),
    ],
)
def test_report_embeds_nothing_outside_the_run_directory(
    tmp_path: Path, fake_experiments: list[Experiment], how: str, fragment: str
) -> None:
    run_dir = _run_with_figure(tmp_path, fake_experiments[0])
    secret = tmp_path / "secret.png"
    secret.write_text(SECRET)
    depth = len(run_dir.relative_to(tmp_path).parts)
    if how == "traversal":
        _point_figure_at(run_dir, "../../../secret.png")
    elif how == "deep-traversal":
        _point_figure_at(run_dir, "figures/" + "../" * (depth + 12) + str(secret).lstrip("/"))
    elif how == "absolute":
        _point_figure_at(run_dir, str(secret))
    elif how == "symlink":
        (run_dir / "figures" / "parabola.png").unlink()
        (run_dir / "figures" / "parabola.png").symlink_to(secret)
    else:
        shutil.rmtree(run_dir / "figures")
        (run_dir / "figures").symlink_to(tmp_path)
        _point_figure_at(run_dir, "figures/secret.png")
    (run_dir / "report.html").unlink(missing_ok=True)
    for target in (run_dir, run_dir.parent, run_dir.parent.parent):
        result = CliRunner().invoke(cli.app, ["report", str(target)])
        assert result.exit_code == 2, result.output
        (line,) = result.stderr.strip().splitlines()
        assert line.startswith(f"error: {run_dir / 'result.json'}: figure 'a parabola': ")
        assert fragment in line
        assert not (target / "report.html").exists()
    # a Result in memory (as reproduce renders them) shows the figure as refused
    record = Result.from_json(json.loads((run_dir / "result.json").read_text()))
    record.run_dir = run_dir
    text = render_html([record], "report")
    assert "figure refused" in text
    assert base64.b64encode(SECRET.encode()).decode() not in text and SECRET not in text


def test_report_follows_dot_dot_and_links_that_stay_inside(
    tmp_path: Path, fake_experiments: list[Experiment]
) -> None:
    run_dir = _run_with_figure(tmp_path, fake_experiments[0])
    (run_dir / "figures" / "again.png").symlink_to(run_dir / "figures" / "parabola.png")
    _point_figure_at(run_dir, "figures/../figures/again.png")
    result = CliRunner().invoke(cli.app, ["report", str(run_dir)])
    assert result.exit_code == 0, result.output
    text = (run_dir / "report.html").read_text(encoding="utf-8")
    png = (run_dir / "figures" / "parabola.png").read_bytes()
    assert base64.b64encode(png).decode() in text


def test_report_refuses_a_result_file_linked_from_outside(
    tmp_path: Path, fake_experiments: list[Experiment]
) -> None:
    run_dir = _run_with_figure(tmp_path / "elsewhere", fake_experiments[0])
    top = tmp_path / "shared"
    (top / "fake-ok").mkdir(parents=True)
    (top / "fake-ok" / "linked").symlink_to(run_dir)
    result = CliRunner().invoke(cli.app, ["report", str(top)])
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: {top / 'fake-ok' / 'linked' / 'result.json'}: leads")
    assert not (top / "report.html").exists()


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ('{"hello": 1}', "not a result: missing key(s) experiment, seed_file, claim, run_dir"),
        ("[1, 2, 3]", "not a result: expected a JSON object with the keys"),
        ('"text"', "not a result: expected a JSON object"),
        ("null", "not a result: expected a JSON object"),
        ('{"experiment": "x", "seed_file": "s", "claim": "c", "run_dir', "may be truncated"),
        ("", "not valid JSON"),
        ("\udcff", "not UTF-8 text"),
        ("CHECKS", "checks[0] must be an object with the keys name, holds, detail"),
        ("METRICS", "metrics must be an object"),
        ("FIGURES", "figures must be an object mapping captions to file paths"),
        ("EXPERIMENT", "experiment must be a string, got a number"),
        ("COMPARISONS", "comparisons[0] must be an object with the keys quantity, ours"),
    ],
)
def test_a_malformed_result_file_is_one_line_naming_it(
    tmp_path: Path, fake_experiments: list[Experiment], content: str, fragment: str
) -> None:
    run_dir = _run_with_figure(tmp_path, fake_experiments[0])
    path = run_dir / "result.json"
    good = json.loads(path.read_text())
    broken = {
        "CHECKS": {**good, "checks": [{"name": "x", "holds": "yes"}]},
        "METRICS": {**good, "metrics": [1, 2]},
        "FIGURES": {**good, "figures": {"a": 3}},
        "EXPERIMENT": {**good, "experiment": 7},
        "COMPARISONS": {**good, "comparisons": [{"quantity": "q", "ours": [1], "x": 0}]},
    }
    if content in broken:
        path.write_text(json.dumps(broken[content]))
    elif content == "\udcff":
        path.write_bytes(b"\xff\xfe{")
    else:
        path.write_text(content)
    result = CliRunner().invoke(cli.app, ["report", str(run_dir)])
    assert result.exit_code == 2, result.output
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"error: {path}: ")
    assert fragment in line
    assert "Traceback" not in result.output
    with pytest.raises(ResultFileError, match=re.escape(str(path))):
        Result.load(run_dir)

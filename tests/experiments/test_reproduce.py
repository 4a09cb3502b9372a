"""reproduce: experiments scheduled across worker processes, longest first; finished runs
reused from the cache; a report that separates seed claims, software checks and errors."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ottokit import cache
from ottokit.experiments import _registry
from ottokit.experiments._registry import Experiment
from ottokit.experiments._reproduce import estimated_seconds, reproduce
from ottokit.experiments._runner import run_experiment
from ottokit.report.figures import new_figure, save_figure
from ottokit.report.html import READING_GUIDE
from ottokit.report.result import Check, Result


@dataclass(frozen=True)
class SlowConfig:
    seconds: float = 0.0
    fail: bool = False
    seed: int = 0
    device: str = "cpu"

    @classmethod
    def quick(cls) -> SlowConfig:
        return cls()

    @classmethod
    def paper(cls) -> SlowConfig:
        return cls()


@dataclass(frozen=True)
class LongConfig(SlowConfig):
    seconds: float = 1.5


@dataclass(frozen=True)
class BrokenConfig(SlowConfig):
    fail: bool = True


def slow_run(cfg: SlowConfig, out: Path) -> Result:
    """Sleeps, records the process it ran in, draws a figure; fails when asked."""
    started = time.time()
    time.sleep(cfg.seconds)
    if cfg.fail:
        raise RuntimeError("the solver diverged")
    fig, ax = new_figure()
    ax.plot([0, 1], [0, 1])
    save_figure(fig, out / "figures" / "line.png")
    return Result(
        experiment=out.parent.name,
        seed_file="000_fake.txt",
        claim="lines are straight",
        run_dir=out,
        metrics={"pid": os.getpid(), "started": started, "ended": time.time()},
        figures={"a line": "figures/line.png"},
        checks=[
            Check("the seed's slope holds", False, "slope 1.1 vs 1", kind="claim"),
            Check("mass is conserved", True, "drift 1e-16", kind="software"),
        ],
    )


EXPS = [
    Experiment("fake-long", "000", "000_fake.txt", "long", LongConfig, slow_run),
    Experiment("fake-short", "000", "000_fake.txt", "short", SlowConfig, slow_run),
    Experiment("fake-broken", "001", "001_fake.txt", "broken", BrokenConfig, slow_run),
]


@pytest.fixture
def fakes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Experiment]]:
    monkeypatch.setenv("OTTOKIT_CACHE_DIR", str(tmp_path / "cache"))
    _registry._load_all()
    real = dict(_registry._REGISTRY)
    _registry._REGISTRY.clear()
    for exp in EXPS:
        _registry.register(exp)
    try:
        yield EXPS
    finally:
        _registry._REGISTRY.clear()
        _registry._REGISTRY.update(real)


def _metrics(html_dir: Path, name: str) -> dict:
    (run,) = (html_dir / name).iterdir()
    return json.loads((run / "metrics.json").read_text())


def test_two_jobs_run_concurrently_in_worker_processes(tmp_path: Path, fakes) -> None:
    html = reproduce("quick", ["fake-long", "fake-short"], out_root=tmp_path, quiet=True, jobs=2)
    long, short = _metrics(html.parent, "fake-long"), _metrics(html.parent, "fake-short")
    assert os.getpid() not in (long["pid"], short["pid"]) and long["pid"] != short["pid"]
    assert short["started"] < long["ended"]  # they overlapped in time
    # the durations are remembered, so the next reproduce starts the longest first
    assert estimated_seconds(fakes[0], "quick") >= 1.5 > estimated_seconds(fakes[1], "quick")


def test_one_job_runs_longest_first_in_this_process(tmp_path: Path, fakes) -> None:
    reproduce("quick", ["fake-long", "fake-short"], out_root=tmp_path / "a", quiet=True, jobs=1)
    html = reproduce("quick", ["fake-short", "fake-long"], out_root=tmp_path / "b", quiet=True,
                     jobs=1)
    long, short = _metrics(html.parent, "fake-long"), _metrics(html.parent, "fake-short")
    assert long["pid"] == short["pid"] == os.getpid()
    assert long["ended"] <= short["started"]
    with pytest.raises(ValueError, match="jobs must be an integer >= 1"):
        reproduce("quick", None, out_root=tmp_path, jobs=0)


def test_report_separates_findings_software_checks_and_errors(tmp_path: Path, fakes) -> None:
    html = reproduce("quick", None, out_root=tmp_path, quiet=True, jobs=2)
    text = html.read_text(encoding="utf-8")
    assert READING_GUIDE.split(".")[0] in text
    assert "seed claims not confirmed (findings)" in text and "software checks holding" in text
    assert "Seed claims</h4>" in text and "Software checks</h4>" in text
    assert "This run did not finish" in text and "RuntimeError: the solver diverged" in text
    assert '<span class="fail">error</span>' in text and '<span class="ok">ok</span>' in text


def test_a_finished_run_comes_from_the_cache_when_nothing_changed(
    tmp_path: Path, fakes, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTTOKIT_CACHE", "on")
    first = run_experiment(fakes[1], SlowConfig(), out_root=tmp_path)
    second = run_experiment(fakes[1], SlowConfig(), out_root=tmp_path)
    assert (first.cache["run"], second.cache["run"]) == ("miss", "hit")
    assert second.metrics == first.metrics and second.run_dir != first.run_dir
    assert (second.run_dir / "figures" / "line.png").read_bytes() == (
        first.run_dir / "figures" / "line.png"
    ).read_bytes()
    other = run_experiment(fakes[1], SlowConfig(seconds=0.01), out_root=tmp_path)
    assert other.cache["run"] == "miss"  # another config: computed
    # a damaged entry is recomputed, never used
    entry = Path(second.cache["cached_run"])
    assert entry in [e.path for e in cache.entries()]
    (entry / "files" / "metrics.json").write_text("{}")
    third = run_experiment(fakes[1], SlowConfig(), out_root=tmp_path)
    assert third.cache["run"] == "miss" and third.metrics["pid"] == os.getpid()
    monkeypatch.setenv("OTTOKIT_CACHE", "off")
    assert run_experiment(fakes[1], SlowConfig(), out_root=tmp_path).cache["run"] == "off"

"""`ottokit run --nproc N` through torch's launcher, a failing rank, and `--resume` after a
SIGKILL, each in a real subprocess."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ottokit.engine import load_checkpoint

TESTS = Path(__file__).parent
TINY_GAN = [
    "--set", "optimizers=sgd,adam,natural-momentum", "--set", "steps=12", "--set", "n_seeds=1",
    "--set", "eval_every=4", "--set", "eval_samples=200", "--set", "final_samples=1000",
    "--set", "batch_size=64",
]


def _ottokit(*args: str, env: dict | None = None, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ottokit", *args],
        capture_output=True, text=True, timeout=300, env={**os.environ, **(env or {})}, **kw,
    )


def _numbers(x, path=""):
    """Every numeric leaf of a metrics tree, by path, timings left out."""
    if isinstance(x, dict):
        for k, v in x.items():
            yield from _numbers(v, f"{path}/{k}")
    elif isinstance(x, list):
        for i, v in enumerate(x):
            yield from _numbers(v, f"{path}[{i}]")
    elif isinstance(x, int | float) and not isinstance(x, bool):
        if not any(t in path for t in ("time", "_ms", "per_s", "wall")):
            yield path, float(x)


def _run_dirs(root: Path, name: str) -> list[Path]:
    return sorted(p for p in (root / name).iterdir())


def test_nproc_2_gives_the_numbers_of_nproc_1(tmp_path: Path) -> None:
    two = _ottokit("run", "gan-optimizers", *TINY_GAN, "--nproc", "2", "--quiet",
                   "--out", str(tmp_path / "two"))
    assert two.returncode == 0, two.stderr
    one = _ottokit("run", "gan-optimizers", *TINY_GAN, "--quiet", "--out", str(tmp_path / "one"))
    assert one.returncode == 0, one.stderr
    (d2,), (d1,) = _run_dirs(tmp_path / "two", "gan-optimizers"), _run_dirs(
        tmp_path / "one", "gan-optimizers"
    )  # rank 1 made no run directory of its own
    assert json.loads((d2 / "run.json").read_text())["world_size"] == 2
    m2 = dict(_numbers(json.loads((d2 / "metrics.json").read_text())))
    m1 = dict(_numbers(json.loads((d1 / "metrics.json").read_text())))
    assert m2.keys() == m1.keys() and len(m1) > 10
    # float32 networks: the two ranks' gradient average rounds differently from the
    # single process's batch mean, by ~1e-7 per step
    for key, v in m1.items():
        assert m2[key] == pytest.approx(v, rel=1e-4, abs=1e-9), key


def test_nproc_is_refused_where_an_experiment_runs_in_one_process(tmp_path: Path) -> None:
    res = _ottokit("run", "graph-heat", "--nproc", "2", "--out", str(tmp_path))
    assert res.returncode == 2
    assert res.stderr.count("\n") == 1 and "does not take --nproc" in res.stderr
    assert "gan-optimizers" in res.stderr and "dot-toy" in res.stderr
    assert not (tmp_path / "graph-heat").exists()


def test_a_failing_rank_fails_the_job_and_marks_the_run_failed(tmp_path: Path) -> None:
    env = {"PYTHONPATH": os.pathsep.join([str(TESTS / "fail_rank1"), os.environ.get(
        "PYTHONPATH", "")])}
    res = _ottokit("run", "gan-optimizers", *TINY_GAN, "--nproc", "2", "--quiet",
                   "--out", str(tmp_path), env=env)
    assert res.returncode == 1
    assert "rank 1 failed" in res.stderr and "on purpose" in res.stderr
    (run,) = _run_dirs(tmp_path, "gan-optimizers")
    assert run.name.endswith("-failed")
    assert not any(p.suffix == ".tmp" for p in run.rglob("*"))  # no half-written checkpoint


def test_resume_after_sigkill_is_bit_identical(tmp_path: Path) -> None:
    args = ["run", "gan-optimizers", "--set", "optimizers=adam", "--set", "n_seeds=1",
            "--set", "steps=3000", "--set", "checkpoint_every=100", "--set", "eval_every=500",
            "--set", "eval_samples=200", "--set", "final_samples=1000", "--set", "batch_size=32",
            "--quiet"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "ottokit", *args, "--out", str(tmp_path / "killed")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    ckpt = None
    while time.monotonic() < deadline and proc.poll() is None:
        found = list((tmp_path / "killed").glob("gan-optimizers/.*.tmp/checkpoints/*/gan.pt"))
        if found:
            ckpt = found[0]
            break
        time.sleep(0.02)
    assert ckpt is not None, "no checkpoint appeared before the run ended"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    interrupted = ckpt.parents[2]
    step = load_checkpoint(ckpt, "gan")["state"]["step"]
    assert 100 <= step < 3000
    resumed = _ottokit("run", "--resume", str(interrupted), "--quiet", "--out", str(tmp_path / "r"))
    assert resumed.returncode == 0, resumed.stderr
    straight = _ottokit(*args, "--out", str(tmp_path / "s"))
    assert straight.returncode == 0, straight.stderr
    (dr,), (ds,) = _run_dirs(tmp_path / "r", "gan-optimizers"), _run_dirs(
        tmp_path / "s", "gan-optimizers"
    )
    assert json.loads((dr / "run.json").read_text())["resumed_from"] == str(interrupted.resolve())
    mr = dict(_numbers(json.loads((dr / "metrics.json").read_text())))
    ms = dict(_numbers(json.loads((ds / "metrics.json").read_text())))
    assert mr == ms
    assert interrupted.is_dir()  # the interrupted run is left as it was

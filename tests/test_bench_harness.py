"""The benchmark harness: its JSON record on a trivial timed function (no benchmark runs here)."""

from __future__ import annotations

import importlib.util
import json
import math
import statistics
import sys
from pathlib import Path

import numpy as np
import pytest

HARNESS = Path(__file__).resolve().parents[1] / "benchmarks" / "_harness.py"


@pytest.fixture(scope="module")
def h():
    spec = importlib.util.spec_from_file_location("_harness", HARNESS)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("_harness", module)
    spec.loader.exec_module(module)
    return module


def test_record_structure_on_a_trivial_timed_function(h, tmp_path: Path) -> None:
    bench = h.Benchmark("trivial", ["--quick"], out=tmp_path / "trivial.json", settings={"n": 3})
    timer = h.Timer(memory=False, trace_python=True)
    results = [timer.run(lambda: sum(range(1000))) for _ in range(5)]
    assert results == [499500] * 5
    memory = h.Timer()  # resets the peak resident size: a full garbage collection per call
    block = memory.run(lambda: np.ones(2_000_000))  # 16 MB
    calls = {"a": lambda: 1, "b": lambda: np.ones(10)}
    timers, last = h.interleave(calls, repeats=3, memory=False)
    bench.record["cases"] = {
        "sum": timer.summary(),
        "memory": memory.summary(),
        "pair": {k: t.summary() for k, t in timers.items()},
        "numpy_scalars": {"i": np.int64(3), "x": np.float32(0.5), "nan": math.nan},
    }
    path = bench.save()
    assert path == tmp_path / "trivial.json" and not list(tmp_path.glob("*.tmp"))
    record = json.loads(path.read_text())  # strict JSON: NaN is written as null

    assert record["benchmark"] == "trivial"
    meta = record["meta"]
    assert meta["argv"] == ["--quick"] and meta["settings"] == {"n": 3}
    for package in ("numpy", "scipy", "torch", "POT"):
        assert isinstance(meta["versions"][package], str)
    assert meta["python"].count(".") == 2
    assert isinstance(meta["cpu_count"], int) and meta["cpu_count"] >= 1
    assert set(meta["threads"]["env"]) == set(h.THREAD_VARS)
    assert set(meta["git"]) == {"commit", "dirty", "changes"}
    for key in ("load_avg_start", "load_avg_end"):
        assert meta[key] is None or meta[key] >= 0
    assert meta["wall_s"] >= 0 and meta["max_rss_mb"] > 0

    s = record["cases"]["sum"]
    assert s["status"] == "ok" and len(s["times_s"]) == 5
    assert s["time_s"] == pytest.approx(statistics.median(s["times_s"]), rel=1e-12)
    assert s["time_min_s"] == min(s["times_s"])
    q25, q75 = np.percentile(s["times_s"], [25, 75])
    assert s["time_iqr_s"] == pytest.approx(q75 - q25, rel=1e-12, abs=1e-15)
    assert s["cpu_s"] >= 0 and s["peak_python_mb"] >= 0
    m = record["cases"]["memory"]
    if m["peak_is_own"]:  # Linux: the call's own peak, at least the block it allocated
        assert m["peak_extra_mb"] >= 0.9 * block.nbytes / 1e6
    for k in ("a", "b"):
        pair = record["cases"]["pair"][k]
        assert len(pair["times_s"]) == 3 and pair["peak_rss_mb"] is None
        assert pair["peak_is_own"] is False
    assert last["a"] == 1
    assert record["cases"]["numpy_scalars"] == {"i": 3, "x": 0.5, "nan": None}


def test_child_process_reports_failure_instead_of_raising(h, monkeypatch) -> None:
    monkeypatch.syspath_prepend(str(HARNESS.parent))  # the spawned child imports the harness
    r = h.run_in_child(_boom, {}, limit_s=30.0)
    assert r.status == "error" and "ZeroDivisionError" in r.reason
    assert h.summarize([3.0, 1.0, 2.0])["time_s"] == 2.0
    assert h.ratio(1.0, 0.0) is None and h.ratio(3.0, 2.0) == 1.5


def _boom(conn) -> dict:
    conn.send(("ready", None))
    return {"value": 1 / 0}

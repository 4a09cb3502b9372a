"""Side-by-side benchmark of ottokit's flow-matching pieces against plain baselines.

Three comparisons, all in one process run of this script:

1. ``ExactVelocity``: ``ottokit.flowmatch.ExactVelocity(schedule, data)(t, x)`` (a chunked,
   streaming log-sum-exp) against a dense torch implementation written here
   (``torch.cdist`` + ``softmax`` over all data at once, then
   nu = (d_sigma/sigma) x + (d_m - m d_sigma/sigma) ybar). The dense one is skipped,
   not run, where its (queries x data) logits matrix would reach the memory limit.
2. Flow-matching training: ``ottokit.flowmatch.train_velocity`` against the
   training loop of TorchCFM (``ConditionalFlowMatcher(sigma=0.0)``) with the same
   ``VelocityMLP``, batch, optimiser and data; steps per second, torch single-threaded
   on both sides.
3. Exact W1: ``ottokit.ot.w1`` (POT network simplex with a large iteration limit and a
   convergence check) beside POT's ``ot.emd2`` at its default iteration limit.

Timings are medians over repeats, interleaved so that a burst of load from other
processes hits both sides alike; ratios are baseline time / ottokit time. Peak memory
is the process's ``VmHWM``, reset before each measurement through
``/proc/self/clear_refs``. Results go to a JSON file
(``benchmarks/results/flowmatch.json`` by default) and tables on the terminal.

Usage::

    python benchmarks/flowmatch.py --quick       # smoke run, under 2 minutes
    python benchmarks/flowmatch.py               # everything (4 to 5 minutes on 2 cores)
    python benchmarks/flowmatch.py --sections velocity,w1 --repeats 5 --out /tmp/fm.json
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import importlib.metadata
import json
import os
import platform
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import ot as pot
import torch
from torch import Tensor

from ottokit import ot as ottokit_ot
from ottokit.data import gaussians_ring
from ottokit.flowmatch import (
    CondOT,
    ExactVelocity,
    Schedule,
    TrainConfig,
    VelocityMLP,
    train_velocity,
)
from ottokit.report.progress import is_quiet, set_quiet

ROOT = Path(__file__).resolve().parent
DEFAULT_OUT = ROOT / "results" / "flowmatch.json"
SECTIONS = ("velocity", "training", "w1")
MB = 1e6

# --- 1. exact velocity
VELOCITY_T = 0.5  # timed evaluation time (CondOT: m = sigma = 0.5)
AGREEMENT_TIMES = (0.5, 0.05)
VELOCITY_CASES = ((2_000, 2_000), (20_000, 2_000), (100_000, 10_000))  # (data, queries)
DENSE_LIMIT_GB = 4.0
SPOT_CHECK_QUERIES = 1_000  # where the dense one is skipped: checked on this many queries
SMALL_CASE_REPEATS = 7  # cases under 1e8 pairs take under a second: repeat them more

# --- 2. training
TRAIN_DATA = 10_000
BATCH = 256
LR = 1e-3
HIDDEN = 64
DEPTH = 3
TIME_DIM = 32
TRAIN_STEPS = 1_000
TRAIN_STEPS_QUICK = 300
WARMUP_STEPS = 50
LOSS_TAIL = 100
TRAIN_MIN_REPEATS = 5  # a training run takes about 2 s: repeat it more than the rest

# --- 3. exact W1
W1_SIZES = (2_000, 5_000, 10_000)
W1_SIZES_QUICK = (2_000,)
POT_DEFAULT_ITER = 100_000  # ot.emd2's numItermax default

DEFINITIONS = {
    "time": (
        "wall-clock seconds of one call, median over the repeats (time_min_s: the fastest; "
        "other load only slows a run down). The two sides of a comparison alternate within "
        "each repeat, after one untimed warm-up call of each."
    ),
    "speedup": "baseline median time / ottokit median time (> 1: ottokit faster); "
    "speedup_min uses the fastest runs.",
    "throughput_ratio": "ottokit steps/s / TorchCFM steps/s, by medians (> 1: ottokit faster).",
    "peak_rss_mb": (
        "VmHWM of this process after the measurement, with freed heap memory returned to the "
        "system (glibc malloc_trim) and the high-water mark reset to the current resident "
        "size (write '5' to /proc/self/clear_refs) just before it; "
        "maximum over the repeats. base_rss_mb: VmRSS just before (interpreter, imports, "
        "inputs); peak_extra_mb = peak_rss_mb - base_rss_mb. MB = 1e6 bytes."
    ),
    "max_rel_error": (
        "max_ij |v_ottokit - v_dense|_ij / max_ij |v_dense|_ij over all queries and "
        "coordinates; error_vs_float64: the same for each float32 result against the dense "
        "float64 result (the reference)."
    ),
    "dense_skip_rule": (
        "the dense velocity materialises the (queries, data) logits matrix and its softmax "
        "(two such matrices at once, in place otherwise); it is skipped, status 'oom', when "
        "the logits matrix alone would take at least dense_limit_bytes."
    ),
    "steps_per_s": (
        "n_steps / wall time of a whole training run (model and optimiser construction "
        "included), median over the repeats, after one warm-up run of each side."
    ),
    "loss": (
        "both sides minimise mean over the batch of |v(t, x_t) - target|^2 summed over "
        "coordinates (ottokit's loss); loss_tail: mean over the last "
        f"{LOSS_TAIL} steps of the last timed run."
    ),
    "w1": (
        "ottokit.ot.w1(x, y) is ottokit.ot.emd(x, y, p=1).distance; the timed call is "
        "emd(x, y, p=1) so that its converged / num_iter_max are recorded. pot_default is "
        "ot.dist(x, y, 'euclidean') + ot.emd2(unif, unif, M) with POT's default numItermax; "
        "rel_diff = (pot cost - ottokit W1) / ottokit W1."
    ),
}


# --------------------------------------------------------------------------- helpers


def _status_kb(field: str) -> float | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return float(line.split()[1])
    except OSError:
        return None
    return None


def rss_mb() -> float | None:
    kb = _status_kb("VmRSS")
    return None if kb is None else kb * 1024 / MB


def hwm_mb() -> float | None:
    kb = _status_kb("VmHWM")
    return None if kb is None else kb * 1024 / MB


def _trim_heap() -> None:
    """Hand freed heap memory back to the system (glibc), so that it is not counted as base."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def reset_peak() -> bool:
    """Reset this process's peak resident size to its current size (Linux only)."""
    gc.collect()
    _trim_heap()
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        return False
    return True


def load_avg() -> float | None:
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


def version_of(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def median(xs: list[float]) -> float:
    return float(statistics.median(xs))


def ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return a / b


@dataclass
class Timing:
    """Repeated timings of one callable, with its peak memory."""

    times_s: list[float]
    peak_rss_mb: float | None
    base_rss_mb: float | None
    peak_reset: bool
    load_avg_1min: list[float | None]

    def summary(self) -> dict[str, Any]:
        return {
            "status": "ok",
            "time_s": median(self.times_s),
            "time_min_s": min(self.times_s),
            "times_s": self.times_s,
            "peak_rss_mb": self.peak_rss_mb,
            "base_rss_mb": self.base_rss_mb,
            "peak_extra_mb": (
                None
                if self.peak_rss_mb is None or self.base_rss_mb is None
                else self.peak_rss_mb - self.base_rss_mb
            ),
            "peak_is_own": self.peak_reset,
            "load_avg_1min": self.load_avg_1min,
        }


class Timer:
    """Accumulates timed calls of one side of a comparison."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self.peak: float | None = None
        self.base: float | None = None
        self.reset_ok = True
        self.loads: list[float | None] = []

    def run(self, fn: Callable[[], Any]) -> Any:
        reset_ok = reset_peak()
        base = rss_mb()
        self.loads.append(load_avg())
        t0 = time.perf_counter()
        out = fn()
        elapsed = time.perf_counter() - t0
        peak = hwm_mb()
        self.times.append(elapsed)
        self.reset_ok = self.reset_ok and reset_ok
        if peak is not None:
            self.peak = peak if self.peak is None else max(self.peak, peak)
        if base is not None:
            self.base = base if self.base is None else max(self.base, base)
        return out

    def result(self) -> Timing:
        return Timing(self.times, self.peak, self.base, self.reset_ok, self.loads)


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- 1. velocity


def dense_velocity(schedule: Schedule, data: Tensor, t: Tensor, x: Tensor) -> Tensor:
    """nu_t(x) with the posterior mean from one dense (queries, data) softmax."""
    out = schedule(t)
    m, sigma, d_m, d_sigma = out.m_t, out.sigma_t, out.d_m_t, out.d_sigma_t
    logits = torch.cdist(x, m * data)  # |x - m y_k|
    logits.square_().mul_(-0.5 / (sigma * sigma))
    weights = torch.softmax(logits, dim=1)
    del logits
    ybar = weights @ data
    return (d_sigma / sigma) * x + (d_m - m * d_sigma / sigma) * ybar


def max_rel_error(a: Tensor, ref: Tensor) -> float:
    return float((a.double() - ref.double()).abs().max() / ref.double().abs().max())


def velocity_case(
    n_data: int, n_query: int, repeats: int, dense_limit_bytes: float
) -> dict[str, Any]:
    schedule = CondOT(1.0)
    data64 = torch.as_tensor(gaussians_ring(n_data, seed=0))
    data = data64.float()
    gen = torch.Generator().manual_seed(1)
    x64 = ExactVelocity(schedule, data64).sample_marginal(VELOCITY_T, n_query, generator=gen)
    x = x64.float()
    t = torch.tensor(VELOCITY_T, dtype=torch.float32)

    ev = ExactVelocity(schedule, data)
    logits_bytes = n_query * n_data * x.element_size()
    dense_fits = logits_bytes < dense_limit_bytes
    ev(t, x[:16])  # warm-up (data cast cache, first-call costs)
    if dense_fits:
        dense_velocity(schedule, data, t, x[:16])

    ott, den = Timer(), Timer()
    v_ott: Tensor | None = None
    v_den: Tensor | None = None
    for rep in range(repeats):
        sides = [("ottokit", ott), ("dense", den)]
        if rep % 2:
            sides.reverse()
        for name, timer in sides:
            if name == "ottokit":
                v_ott = timer.run(lambda: ev(t, x))
            elif dense_fits:
                v_den = timer.run(lambda: dense_velocity(schedule, data, t, x))
    assert v_ott is not None
    ott_res = ott.result().summary()
    entry: dict[str, Any] = {
        "n_data": n_data,
        "n_query": n_query,
        "dim": 2,
        "dtype": "float32",
        "repeats": repeats,
        "dense_logits_bytes": logits_bytes,
        "dense_working_set_bytes": 2 * logits_bytes,
        "ottokit": ott_res,
    }
    if dense_fits:
        assert v_den is not None
        den_res = den.result().summary()
        entry["dense"] = den_res
        entry["speedup"] = ratio(den_res["time_s"], ott_res["time_s"])
        entry["speedup_min"] = ratio(den_res["time_min_s"], ott_res["time_min_s"])
        entry["peak_extra_ratio"] = ratio(den_res["peak_extra_mb"], ott_res["peak_extra_mb"])
        agreement: dict[str, Any] = {}
        ev64 = ExactVelocity(schedule, data64)
        for tv in AGREEMENT_TIMES:
            # queries drawn from the marginal at the time of the check
            q64 = ev64.sample_marginal(tv, n_query, generator=torch.Generator().manual_seed(2))
            q32 = q64.float()
            t32 = torch.tensor(tv, dtype=torch.float32)
            t64 = torch.tensor(tv, dtype=torch.float64)
            a = ev(t32, q32)
            b = dense_velocity(schedule, data, t32, q32)
            ref = dense_velocity(schedule, data64, t64, q64)
            agreement[f"t={tv:g}"] = {
                "max_rel_error": max_rel_error(a, b),
                "max_rel_error_float64": max_rel_error(ev64(t64, q64), ref),
                "error_vs_float64": {
                    "ottokit": max_rel_error(a, ref),
                    "dense": max_rel_error(b, ref),
                },
            }
        entry["agreement"] = agreement
    else:
        entry["dense"] = {
            "status": "oom",
            "reason": (
                f"skipped, not run: the dense logits matrix alone would take "
                f"{logits_bytes / 1e9:.1f} GB (>= limit {dense_limit_bytes / 1e9:.1f} GB), "
                f"{2 * logits_bytes / 1e9:.1f} GB with its softmax"
            ),
        }
        entry["speedup"] = None
        # the dense formula on a slice of the queries, in float64, as a reference
        k = min(SPOT_CHECK_QUERIES, n_query)
        ref = dense_velocity(schedule, data64, t.double(), x64[:k])
        entry["spot_check"] = {
            "queries": k,
            "reference": "dense float64 on the first queries",
            "error_vs_float64": {"ottokit": max_rel_error(v_ott[:k], ref)},
        }
    return entry


def velocity_threads(args: argparse.Namespace) -> list[int]:
    """Torch thread counts to run the velocity comparison at: 1 and the default."""
    if args.velocity_threads:
        return [int(v) for v in args.velocity_threads.split(",")]
    default = torch.get_num_threads()
    return [1] if default == 1 else [1, default]


def run_velocity(args: argparse.Namespace) -> dict[str, Any]:
    limit = args.dense_limit_gb * 1e9
    threads_before = torch.get_num_threads()
    by_threads: dict[str, Any] = {}
    try:
        for i, threads in enumerate(velocity_threads(args)):
            torch.set_num_threads(threads)
            cases: dict[str, Any] = {}
            for n_data, n_query in VELOCITY_CASES:
                name = f"{n_data:.0e}x{n_query:.0e}".replace("e+0", "e")
                big = n_data * n_query >= 10**8
                if big and args.quick and i > 0:
                    continue  # quick: the largest case at the first thread count only
                if big:
                    repeats = 1 if args.quick else args.repeats
                else:
                    repeats = max(args.repeats, SMALL_CASE_REPEATS)
                log(f"velocity {name}, {threads} torch thread(s): {repeats} repeat(s)")
                cases[name] = velocity_case(n_data, n_query, repeats, limit)
                o, d = cases[name]["ottokit"], cases[name]["dense"]
                log(
                    f"  ottokit {o['time_s']:.3f} s, dense "
                    + (f"{d['time_s']:.3f} s" if d["status"] == "ok" else d["status"])
                )
            by_threads[str(threads)] = {"torch_threads": threads, "cases": cases}
    finally:
        torch.set_num_threads(threads_before)
    return {
        "settings": {
            "schedule": "CondOT(tau=1.0)",
            "t": VELOCITY_T,
            "agreement_times": list(AGREEMENT_TIMES),
            "data": "ottokit.data.gaussians_ring(n_data, seed=0), as float32",
            "queries": f"ExactVelocity.sample_marginal({VELOCITY_T}, n_query), as float32",
            "dense_limit_bytes": limit,
            "torch_threads": [int(k) for k in by_threads],
            "torch_threads_note": (
                "the whole comparison runs once per thread count (torch.set_num_threads, the "
                "same for both sides); on a loaded 2-core machine the many mid-sized "
                "operations of the chunked loop suffer more from a busy second core than the "
                "few large dense ones"
            ),
            "ottokit_chunks": {"query_chunk": 1024, "data_chunk": 4096},
        },
        "by_threads": by_threads,
    }


# --------------------------------------------------------------------------- 2. training


def train_ottokit(data: np.ndarray, n_steps: int, seed: int) -> tuple[float, list[float]]:
    """Seconds of one train_velocity run, and its losses."""
    config = TrainConfig(
        n_steps=n_steps,
        batch_size=BATCH,
        lr=LR,
        hidden=HIDDEN,
        depth=DEPTH,
        time_dim=TIME_DIM,
        seed=seed,
        dtype="float32",
    )
    t0 = time.perf_counter()
    result = train_velocity(CondOT(1.0), data, config, checkpoint_dir=None)
    elapsed = time.perf_counter() - t0
    return elapsed, result.losses.tolist()


def train_torchcfm(data: Tensor, n_steps: int, seed: int) -> tuple[float, list[float]]:
    """Seconds of TorchCFM's training loop with ottokit's VelocityMLP, and its losses.

    TorchCFM runs time the other way (t = 0 noise, t = 1 data), with
    x_t = t x1 + (1 - t) x0 and u_t = x1 - x0. ottokit's CondOT path at tau = 1 - t has
    the same x_t and velocity -u_t, so the network is fed (1 - t, x_t) and regressed on
    -u_t: the same learning problem as ottokit's, at the cost of one subtraction.
    """
    from torchcfm.conditional_flow_matching import ConditionalFlowMatcher

    t0 = time.perf_counter()
    torch.manual_seed(seed)
    model = VelocityMLP(data.shape[1], HIDDEN, DEPTH, TIME_DIM, 1.0)
    optimizer = torch.optim.Adam(model.parameters(), lr=LR)
    matcher = ConditionalFlowMatcher(sigma=0.0)
    losses: list[float] = []
    for _ in range(n_steps):
        optimizer.zero_grad(set_to_none=True)
        x1 = data[torch.randint(data.shape[0], (BATCH,))]
        x0 = torch.randn_like(x1)
        t, xt, ut = matcher.sample_location_and_conditional_flow(x0, x1)
        vt = model(1.0 - t, xt)
        loss = ((vt + ut) ** 2).sum(dim=1).mean()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return time.perf_counter() - t0, losses


def run_training(args: argparse.Namespace) -> dict[str, Any]:
    n_steps = args.train_steps or (TRAIN_STEPS_QUICK if args.quick else TRAIN_STEPS)
    repeats = args.repeats if args.quick else max(args.repeats, TRAIN_MIN_REPEATS)
    data_np = gaussians_ring(TRAIN_DATA, seed=0)
    data_t = torch.as_tensor(data_np, dtype=torch.float32)
    threads_before = torch.get_num_threads()
    quiet_before = is_quiet()
    torch.set_num_threads(1)
    set_quiet(True)
    settings = {
        "data": f"ottokit.data.gaussians_ring({TRAIN_DATA}, seed=0) (8 Gaussians, radius 2)",
        "model": (
            f"ottokit.flowmatch.VelocityMLP(dim=2, hidden={HIDDEN}, depth={DEPTH}, "
            f"time_dim={TIME_DIM}, tau=1.0) on both sides"
        ),
        "batch_size": BATCH,
        "optimizer": f"torch.optim.Adam(lr={LR})",
        "dtype": "float32",
        "n_steps": n_steps,
        "warmup_steps": WARMUP_STEPS,
        "repeats": repeats,
        "torch_threads": 1,
        "torch_threads_note": "torch.set_num_threads(1) on both sides, restored afterwards",
        "ottokit_call": (
            "train_velocity(CondOT(1.0), data, TrainConfig(n_steps, batch_size=256, lr=1e-3, "
            "hidden=64, depth=3, time_dim=32, dtype='float32'), checkpoint_dir=None)"
        ),
        "ottokit_progress_bar": "off (ottokit.report.progress.set_quiet(True))",
        "torchcfm_loop": (
            "ConditionalFlowMatcher(sigma=0.0).sample_location_and_conditional_flow(x0, x1) "
            "on x1 = data[randint], x0 = randn; model(1 - t, x_t) regressed on -u_t; "
            "zero_grad / backward / Adam step; loss.item() every step (ottokit also reads "
            "every step's loss)"
        ),
    }
    result: dict[str, Any] = {"settings": settings}
    try:
        import torchcfm  # noqa: F401
        from torchcfm.conditional_flow_matching import ConditionalFlowMatcher  # noqa: F401

        cfm_error: str | None = None
    except ImportError as err:
        cfm_error = f"torchcfm cannot be imported: {err}"
    try:
        log(f"training: warm-up ({WARMUP_STEPS} steps each)")
        train_ottokit(data_np, WARMUP_STEPS, seed=0)
        if cfm_error is None:
            train_torchcfm(data_t, WARMUP_STEPS, seed=0)
        runs: dict[str, list[float]] = {"ottokit": [], "torchcfm": []}
        last_losses: dict[str, list[float]] = {}
        for rep in range(repeats):
            sides = ["ottokit", "torchcfm"] if rep % 2 == 0 else ["torchcfm", "ottokit"]
            for side in sides:
                if side == "ottokit":
                    elapsed, losses = train_ottokit(data_np, n_steps, seed=rep)
                elif cfm_error is None:
                    elapsed, losses = train_torchcfm(data_t, n_steps, seed=rep)
                else:
                    continue
                runs[side].append(n_steps / elapsed)
                last_losses[side] = losses
                log(f"  {side} repeat {rep}: {n_steps / elapsed:.0f} steps/s")
    finally:
        torch.set_num_threads(threads_before)
        set_quiet(quiet_before)

    def side_result(side: str) -> dict[str, Any]:
        rates = runs[side]
        return {
            "status": "ok",
            "steps_per_s": median(rates),
            "steps_per_s_max": max(rates),
            "steps_per_s_runs": rates,
            "loss_tail": float(np.mean(last_losses[side][-LOSS_TAIL:])),
        }

    result["ottokit"] = side_result("ottokit")
    if cfm_error is None:
        result["torchcfm"] = side_result("torchcfm")
        result["torchcfm"]["version"] = version_of("torchcfm")
        result["throughput_ratio"] = ratio(
            result["ottokit"]["steps_per_s"], result["torchcfm"]["steps_per_s"]
        )
        result["throughput_ratio_best"] = ratio(
            result["ottokit"]["steps_per_s_max"], result["torchcfm"]["steps_per_s_max"]
        )
    else:
        result["torchcfm"] = {"status": "unavailable", "reason": cfm_error}
        result["throughput_ratio"] = None
    return result


# --------------------------------------------------------------------------- 3. exact W1


def pot_default_w1(x: np.ndarray, y: np.ndarray) -> tuple[float, list[str]]:
    """POT's plain call at its default iteration limit: the cost and any warnings."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cost_matrix = pot.dist(x, y, metric="euclidean")
        cost = pot.emd2(pot.unif(x.shape[0]), pot.unif(y.shape[0]), cost_matrix)
    return float(cost), [str(w.message) for w in caught]


def w1_case(n: int, repeats: int) -> dict[str, Any]:
    x = gaussians_ring(n, seed=0)
    y = np.random.default_rng(1).standard_normal((n, 2))
    ott, ref = Timer(), Timer()
    ott_out: ottokit_ot.OTResult | None = None
    pot_out: tuple[float, list[str]] | None = None
    for rep in range(repeats):
        sides = ["ottokit", "pot"] if rep % 2 == 0 else ["pot", "ottokit"]
        for side in sides:
            if side == "ottokit":
                ott_out = ott.run(lambda: ottokit_ot.emd(x, y, p=1))
            else:
                pot_out = ref.run(lambda: pot_default_w1(x, y))
    assert ott_out is not None and pot_out is not None
    pot_cost, pot_warnings = pot_out
    w1 = float(ott_out.distance)
    entry: dict[str, Any] = {
        "n": n,
        "data": "x = gaussians_ring(n, seed=0), y = N(0, I) (numpy seed 1)",
        "repeats": repeats,
        "ottokit": {
            **ott.result().summary(),
            "w1": w1,
            "converged": bool(ott_out.converged),
            "num_iter_max": int(ott_out.num_iter_max),
        },
        "pot_default": {
            **ref.result().summary(),
            "num_iter_max": POT_DEFAULT_ITER,
            "cost": pot_cost,
            "warned": bool(pot_warnings),
            "warnings": sorted(set(pot_warnings)),
            "rel_diff": (pot_cost - w1) / w1,
        },
    }
    entry["speedup"] = ratio(entry["pot_default"]["time_s"], entry["ottokit"]["time_s"])
    # ottokit given POT's default limit: it must refuse, not return a wrong cost
    try:
        ottokit_ot.emd(x, y, p=1, num_iter_max=POT_DEFAULT_ITER)
        entry["ottokit_at_pot_default_limit"] = {"raised": False}
    except ottokit_ot.OTConvergenceError as err:
        entry["ottokit_at_pot_default_limit"] = {"raised": True, "error": str(err)}
    return entry


def run_w1(args: argparse.Namespace) -> dict[str, Any]:
    sizes = W1_SIZES_QUICK if args.quick else W1_SIZES
    cases: dict[str, Any] = {}
    for n in sizes:
        log(f"w1 n={n}: {args.repeats} repeat(s)")
        cases[str(n)] = w1_case(n, args.repeats)
        c = cases[str(n)]
        log(
            f"  ottokit {c['ottokit']['time_s']:.2f} s, POT default "
            f"{c['pot_default']['time_s']:.2f} s, rel diff {c['pot_default']['rel_diff']:.2e}"
        )
    return {"settings": {"dim": 2, "pot_threads": "POT default (1)"}, "cases": cases}


# --------------------------------------------------------------------------- targets


def targets(results: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    vel = results.get("velocity")
    if vel is not None:
        per_threads: dict[str, Any] = {}
        big_cases: dict[str, Any] = {}
        for threads, run in vel["by_threads"].items():
            cases = run["cases"]
            compared = {k: c["speedup"] for k, c in cases.items() if c["dense"]["status"] == "ok"}
            per_threads[f"threads={threads}"] = {
                "met": bool(compared)
                and all(s is not None and s >= 1.0 for s in compared.values()),
                "speedups": compared,
            }
            for c in cases.values():
                if c["dense"]["status"] != "ok":
                    big_cases[f"{c['n_data']}x{c['n_query']}@threads={threads}"] = {
                        "ran": c["ottokit"]["status"] == "ok",
                        "time_s": c["ottokit"]["time_s"],
                        "peak_rss_mb": c["ottokit"]["peak_rss_mb"],
                        "peak_extra_mb": c["ottokit"]["peak_extra_mb"],
                        "dense": c["dense"]["status"],
                    }
        out["velocity_at_least_as_fast_as_dense"] = {
            "met": all(v["met"] for v in per_threads.values()),
            "met_by_threads": {k: v["met"] for k, v in per_threads.items()},
            "speedups": {k: v["speedups"] for k, v in per_threads.items()},
        }
        out["velocity_runs_where_dense_does_not"] = {
            "met": bool(big_cases) and all(v["ran"] for v in big_cases.values()),
            "cases": big_cases,
        }
    tr = results.get("training")
    if tr is not None:
        r = tr.get("throughput_ratio")
        out["training_throughput_at_least_torchcfm"] = {
            "met": None if r is None else bool(r >= 1.0),
            "throughput_ratio": r,
            "note": None if r is not None else tr["torchcfm"].get("reason"),
        }
    w1 = results.get("w1")
    if w1 is not None:
        cases = w1["cases"]
        out["w1_converged_and_checked"] = {
            "met": all(
                c["ottokit"]["converged"]
                and (
                    # where POT's default limit is too small, ottokit must refuse it
                    c["ottokit_at_pot_default_limit"]["raised"] or not c["pot_default"]["warned"]
                )
                for c in cases.values()
            ),
            "pot_default_rel_diff": {k: c["pot_default"]["rel_diff"] for k, c in cases.items()},
        }
    return out


# --------------------------------------------------------------------------- output


def fmt(v: float | None, spec: str = ".3g", suffix: str = "") -> str:
    return "-" if v is None else f"{v:{spec}}{suffix}"


def print_tables(results: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=150)
    vel = results["sections"].get("velocity")
    if vel is not None:
        t = Table(title="ExactVelocity vs dense cdist + softmax (float32, d = 2, median s)")
        for col in (
            "data x queries",
            "threads",
            "ottokit s",
            "dense s",
            "speedup",
            "max rel err",
            "err vs f64 (ott / dense)",
            "extra MB (ott / dense)",
        ):
            t.add_column(col, justify="right")
        for threads, run in vel["by_threads"].items():
            for name, c in run["cases"].items():
                o, d = c["ottokit"], c["dense"]
                if d["status"] == "ok":
                    ag = c["agreement"][f"t={VELOCITY_T:g}"]
                    err = fmt(ag["max_rel_error"], ".1e")
                    ev = ag["error_vs_float64"]
                    f64 = f"{ev['ottokit']:.1e} / {ev['dense']:.1e}"
                    dense_s = fmt(d["time_s"], ".3f")
                    peak = f"{fmt(o['peak_extra_mb'], '.0f')} / {fmt(d['peak_extra_mb'], '.0f')}"
                else:
                    err = "-"
                    f64 = f"{c['spot_check']['error_vs_float64']['ottokit']:.1e} / - (spot)"
                    dense_s = f"{d['status']} (skipped)"
                    peak = f"{fmt(o['peak_extra_mb'], '.0f')} / -"
                t.add_row(
                    name,
                    threads,
                    fmt(o["time_s"], ".3f"),
                    dense_s,
                    fmt(c["speedup"], ".2f", "x"),
                    err,
                    f64,
                    peak,
                )
        console.print(t)
    tr = results["sections"].get("training")
    if tr is not None:
        t = Table(
            title=f"Flow-matching training, {tr['settings']['n_steps']} steps, "
            "batch 256, 3x64 MLP, 1 torch thread"
        )
        for col in ("side", "steps/s (median)", "steps/s (best)", "loss (last 100)"):
            t.add_column(col, justify="right")
        for side in ("ottokit", "torchcfm"):
            s = tr[side]
            if s["status"] == "ok":
                t.add_row(
                    side,
                    f"{s['steps_per_s']:.0f}",
                    f"{s['steps_per_s_max']:.0f}",
                    f"{s['loss_tail']:.3f}",
                )
            else:
                t.add_row(side, s["status"], "-", "-")
        t.add_row("ratio ottokit/torchcfm", fmt(tr.get("throughput_ratio"), ".2f", "x"), "", "")
        console.print(t)
    w1 = results["sections"].get("w1")
    if w1 is not None:
        t = Table(title="Exact W1 in 2-D: ottokit.ot.w1 vs POT emd2 at its default limit")
        for col in (
            "n",
            "ottokit s",
            "converged",
            "POT default s",
            "POT warned",
            "POT rel diff",
            "ottokit @ 1e5 iters",
            "extra MB (ott / POT)",
        ):
            t.add_column(col, justify="right")
        for name, c in w1["cases"].items():
            o, p = c["ottokit"], c["pot_default"]
            t.add_row(
                name,
                f"{o['time_s']:.2f}",
                str(o["converged"]),
                f"{p['time_s']:.2f}",
                str(p["warned"]),
                f"{p['rel_diff']:+.1e}",
                "raises" if c["ottokit_at_pot_default_limit"]["raised"] else "returns",
                f"{fmt(o['peak_extra_mb'], '.0f')} / {fmt(p['peak_extra_mb'], '.0f')}",
            )
        console.print(t)
    t = Table(title="Targets")
    t.add_column("target")
    t.add_column("met")
    t.add_column("numbers")
    for name, v in results["targets"].items():
        numbers = {k: val for k, val in v.items() if k != "met" and val is not None}
        t.add_row(name, str(v["met"]), json.dumps(numbers, default=str)[:90])
    console.print(t)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="smoke run (under 2 minutes)")
    ap.add_argument("--sections", help=f"comma list from {','.join(SECTIONS)} (default: all)")
    ap.add_argument("--repeats", type=int, default=3, help="timed repeats per measurement (3)")
    ap.add_argument(
        "--train-steps",
        type=int,
        help=f"steps per timed training run ({TRAIN_STEPS}; quick {TRAIN_STEPS_QUICK})",
    )
    ap.add_argument(
        "--dense-limit-gb",
        type=float,
        default=DENSE_LIMIT_GB,
        help=f"skip the dense velocity from this logits size, GB ({DENSE_LIMIT_GB})",
    )
    ap.add_argument(
        "--velocity-threads",
        help="comma list of torch thread counts for the velocity comparison (1 and the default)",
    )
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"JSON path ({DEFAULT_OUT})")
    args = ap.parse_args(argv)
    args.sections = SECTIONS if not args.sections else tuple(args.sections.split(","))
    unknown = set(args.sections) - set(SECTIONS)
    if unknown:
        ap.error(f"unknown sections {sorted(unknown)}; choose from {SECTIONS}")
    if args.repeats < 1:
        ap.error("--repeats must be >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    meta: dict[str, Any] = {
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "argv": sys.argv[1:] if argv is None else argv,
        "quick": args.quick,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "torch_threads_default": torch.get_num_threads(),
        "versions": {
            name: version_of(name)
            for name in ("ottokit", "torch", "numpy", "POT", "torchcfm", "rich")
        },
        "load_avg_start": list(os.getloadavg()),
    }
    runners: dict[str, Callable[[argparse.Namespace], dict[str, Any]]] = {
        "velocity": run_velocity,
        "training": run_training,
        "w1": run_w1,
    }
    sections = {name: runners[name](args) for name in SECTIONS if name in args.sections}
    meta["load_avg_end"] = list(os.getloadavg())
    meta["wall_s"] = time.perf_counter() - started
    results: dict[str, Any] = {
        "meta": meta,
        "definitions": DEFINITIONS,
        "sections": sections,
    }
    results["targets"] = targets(sections)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, allow_nan=False) + "\n")
    print_tables(results)
    log(f"wrote {args.out} ({meta['wall_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

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

Timings are medians over repeats, the two sides interleaved (``_harness.interleave``);
ratios are baseline time / ottokit time; peak memory is each call's own (``_harness.Timer``).
See benchmarks/README.md.

Usage::

    python benchmarks/flowmatch.py --quick       # smoke run
    python benchmarks/flowmatch.py               # everything
    python benchmarks/flowmatch.py --sections velocity,w1 --repeats 5 --out /tmp/fm.json
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import _harness as h
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
from ottokit.progress import is_quiet, set_quiet

DEFAULT_OUT = h.RESULTS / "flowmatch.json"
SECTIONS = ("velocity", "training", "w1")

VELOCITY_T = 0.5  # timed evaluation time (CondOT: m = sigma = 0.5)
AGREEMENT_TIMES = (0.5, 0.05)
VELOCITY_CASES = ((2_000, 2_000), (20_000, 2_000), (100_000, 10_000))  # (data, queries)
DENSE_LIMIT_GB = 4.0
SPOT_CHECK_QUERIES = 1_000  # where the dense one is skipped: checked on this many queries
SMALL_CASE_REPEATS = 7  # cases under 1e8 pairs take under a second: repeat them more

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

    calls = {"ottokit": lambda: ev(t, x)}
    if dense_fits:
        calls["dense"] = lambda: dense_velocity(schedule, data, t, x)
    timers, last = h.interleave(calls, repeats, warmup=0)
    v_ott = last["ottokit"]
    ott_res = timers["ottokit"].summary()
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
        den_res = timers["dense"].summary()
        entry["dense"] = den_res
        entry["speedup"] = h.ratio(den_res["time_s"], ott_res["time_s"])
        entry["speedup_min"] = h.ratio(den_res["time_min_s"], ott_res["time_min_s"])
        entry["peak_extra_ratio"] = h.ratio(den_res["peak_extra_mb"], ott_res["peak_extra_mb"])
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
                h.log(f"velocity {name}, {threads} torch thread(s): {repeats} repeat(s)")
                cases[name] = velocity_case(n_data, n_query, repeats, limit)
                o, d = cases[name]["ottokit"], cases[name]["dense"]
                h.log(
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
        "ottokit_progress_bar": "off (ottokit.progress.set_quiet(True))",
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
        h.log(f"training: warm-up ({WARMUP_STEPS} steps each)")
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
                h.log(f"  {side} repeat {rep}: {n_steps / elapsed:.0f} steps/s")
    finally:
        torch.set_num_threads(threads_before)
        set_quiet(quiet_before)

    def side_result(side: str) -> dict[str, Any]:
        rates = runs[side]
        return {
            "status": "ok",
            "steps_per_s": statistics.median(rates),
            "steps_per_s_max": max(rates),
            "steps_per_s_runs": rates,
            "loss_tail": float(np.mean(last_losses[side][-LOSS_TAIL:])),
        }

    result["ottokit"] = side_result("ottokit")
    if cfm_error is None:
        result["torchcfm"] = side_result("torchcfm")
        result["torchcfm"]["version"] = h.version_of("torchcfm")
        result["throughput_ratio"] = h.ratio(
            result["ottokit"]["steps_per_s"], result["torchcfm"]["steps_per_s"]
        )
        result["throughput_ratio_best"] = h.ratio(
            result["ottokit"]["steps_per_s_max"], result["torchcfm"]["steps_per_s_max"]
        )
    else:
        result["torchcfm"] = {"status": "unavailable", "reason": cfm_error}
        result["throughput_ratio"] = None
    return result


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
    calls = {"ottokit": lambda: ottokit_ot.emd(x, y, p=1), "pot": lambda: pot_default_w1(x, y)}
    timers, last = h.interleave(calls, repeats, warmup=0)
    ott_out = last["ottokit"]
    pot_cost, pot_warnings = last["pot"]
    w1 = float(ott_out.distance)
    entry: dict[str, Any] = {
        "n": n,
        "data": "x = gaussians_ring(n, seed=0), y = N(0, I) (numpy seed 1)",
        "repeats": repeats,
        "ottokit": {
            **timers["ottokit"].summary(),
            "w1": w1,
            "converged": bool(ott_out.converged),
            "num_iter_max": int(ott_out.num_iter_max),
        },
        "pot_default": {
            **timers["pot"].summary(),
            "num_iter_max": POT_DEFAULT_ITER,
            "cost": pot_cost,
            "warned": bool(pot_warnings),
            "warnings": sorted(set(pot_warnings)),
            "rel_diff": (pot_cost - w1) / w1,
        },
    }
    entry["speedup"] = h.ratio(entry["pot_default"]["time_s"], entry["ottokit"]["time_s"])
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
        h.log(f"w1 n={n}: {args.repeats} repeat(s)")
        cases[str(n)] = w1_case(n, args.repeats)
        c = cases[str(n)]
        h.log(
            f"  ottokit {c['ottokit']['time_s']:.2f} s, POT default "
            f"{c['pot_default']['time_s']:.2f} s, rel diff {c['pot_default']['rel_diff']:.2e}"
        )
    return {"settings": {"dim": 2, "pot_threads": "POT default (1)"}, "cases": cases}


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


def print_tables(results: dict[str, Any]) -> None:
    fmt = h.fmt
    vel = results["sections"].get("velocity")
    if vel is not None:
        rows = []
        for threads, run in vel["by_threads"].items():
            for name, c in run["cases"].items():
                o, d = c["ottokit"], c["dense"]
                if d["status"] == "ok":
                    ag = c["agreement"][f"t={VELOCITY_T:g}"]
                    ev = ag["error_vs_float64"]
                    err = fmt(ag["max_rel_error"], ".1e")
                    f64 = f"{ev['ottokit']:.1e} / {ev['dense']:.1e}"
                    dense_s, dense_mb = fmt(d["time_s"], ".3f"), fmt(d["peak_extra_mb"], ".0f")
                else:
                    err = "-"
                    f64 = f"{c['spot_check']['error_vs_float64']['ottokit']:.1e} / - (spot)"
                    dense_s, dense_mb = f"{d['status']} (skipped)", "-"
                peak = f"{fmt(o['peak_extra_mb'], '.0f')} / {dense_mb}"
                rows.append(
                    (name, threads, fmt(o["time_s"], ".3f"), dense_s,
                     fmt(c["speedup"], ".2f", "x"), err, f64, peak)
                )  # fmt: skip
        h.print_table(
            "ExactVelocity vs dense cdist + softmax (float32, d = 2, median s)",
            ("data x queries", "threads", "ottokit s", "dense s", "speedup", "max rel err",
             "err vs f64 (ott / dense)", "extra MB (ott / dense)"),
            rows,
            left=0,
        )  # fmt: skip
    tr = results["sections"].get("training")
    if tr is not None:
        rows = []
        for side in ("ottokit", "torchcfm"):
            s = tr[side]
            if s["status"] == "ok":
                rows.append(
                    (side, f"{s['steps_per_s']:.0f}", f"{s['steps_per_s_max']:.0f}",
                     f"{s['loss_tail']:.3f}")
                )  # fmt: skip
            else:
                rows.append((side, s["status"], "-", "-"))
        rows.append(("ratio ottokit/torchcfm", fmt(tr.get("throughput_ratio"), ".2f", "x"), "", ""))
        h.print_table(
            f"Flow-matching training, {tr['settings']['n_steps']} steps, "
            "batch 256, 3x64 MLP, 1 torch thread",
            ("side", "steps/s (median)", "steps/s (best)", "loss (last 100)"),
            rows,
            left=0,
        )
    w1 = results["sections"].get("w1")
    if w1 is not None:
        rows = []
        for name, c in w1["cases"].items():
            o, p = c["ottokit"], c["pot_default"]
            rows.append(
                (name, f"{o['time_s']:.2f}", o["converged"], f"{p['time_s']:.2f}", p["warned"],
                 f"{p['rel_diff']:+.1e}",
                 "raises" if c["ottokit_at_pot_default_limit"]["raised"] else "returns",
                 f"{fmt(o['peak_extra_mb'], '.0f')} / {fmt(p['peak_extra_mb'], '.0f')}")
            )  # fmt: skip
        h.print_table(
            "Exact W1 in 2-D: ottokit.ot.w1 vs POT emd2 at its default limit",
            ("n", "ottokit s", "converged", "POT default s", "POT warned", "POT rel diff",
             "ottokit @ 1e5 iters", "extra MB (ott / POT)"),
            rows,
            left=0,
        )  # fmt: skip
    h.print_targets(results["targets"])


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
    bench = h.Benchmark(
        "flowmatch",
        argv,
        out=args.out,
        packages=("torchcfm", "rich"),
        settings={"quick": args.quick, "torch_threads_default": torch.get_num_threads()},
    )
    runners = {"velocity": run_velocity, "training": run_training, "w1": run_w1}
    sections = {name: runners[name](args) for name in SECTIONS if name in args.sections}
    bench.record.update(definitions=DEFINITIONS, sections=sections, targets=targets(sections))
    path = bench.save()
    print_tables(bench.record)
    h.log(f"wrote {path} ({bench.record['meta']['wall_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

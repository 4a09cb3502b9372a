"""Wasserstein gradient flows on graphs: three solvers side by side (see benchmarks/README.md).

* ``seed``: the seed's method, ``scipy.integrate.odeint`` (LSODA) on a plain NumPy
  edge-list right-hand side, no Jacobian, output at 10 equal steps.
* ``solve_ivp_bdf``: ``scipy.integrate.solve_ivp(method="BDF", jac_sparsity=...)`` on
  the same right-hand side (finite-difference Jacobian with column grouping, sparse LU).
* ``ottokit``: ``ottokit.graph.solve(flow, rho0, ..., method="auto")``.

Every solve runs in fresh spawned processes (``_harness.IsolatedRuns``) under a wall-clock
and an address-space limit, so that a baseline that cannot run is recorded as
``timeout``/``oom``/``crashed`` and each run's peak memory is its own. End states are
compared with a tight-tolerance reference; one right-hand side with a memory-bandwidth
floor measured in the same process.

Usage::

    python benchmarks/graph_flows.py --quick          # smallest sizes
    python benchmarks/graph_flows.py                  # everything
    python benchmarks/graph_flows.py --cases seed500,fp256 --repeats 5 --out /tmp/b.json
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Literal

import _harness as h
import numpy as np

DEFAULT_OUT = h.RESULTS / "graph_flows.json"

RTOL = 1e-6
ATOL = 1e-12
REF_ATOL = 1e-16
SWEEP_RTOLS = (1e-5, 1e-6, 1e-7)
QUICK_SWEEP_RTOLS = (1e-5, 1e-6)  # --quick: enough points to exercise the matching
CHECK_RTOL = {"dop853": 1e-11, "solve_ivp_bdf": 1e-10}
SOLVERS = ("seed", "solve_ivp_bdf", "ottokit")
BASELINES = ("seed", "solve_ivp_bdf")
ODEINT_MXSTEP = 200_000  # the same step budget as ottokit's solve (default 500 would stop early)
BANDWIDTH_ELEMENTS = 20_000_000
RHS_CALLS = 20
MIN_TIMED_S = 0.5  # short solves are repeated inside a child until this much time is spent
MAX_INNER = 10
BLAS_THREAD_VARS = ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS")

FLOOR_DEFINITION = (
    "floor_time = floor_bytes / B. B = bytes moved by np.copyto(a, b) on two float64 "
    f"arrays of {BANDWIDTH_ELEMENTS:.0e} elements (read + write = 16 bytes per element) "
    "divided by its median time over 5 calls (after one warm-up), measured in the same "
    "process as the right-hand side. floor_bytes = bytes of the CSR adjacency of the "
    "graph (indptr + indices + data of g.adjacency) + 3 node vectors x 8n (read rho, "
    "read a work vector, write the output). rhs_time is the median of "
    f"{RHS_CALLS} calls of flow.rhs(rho) after 3 warm-up calls, at a positive density; "
    "ratio = rhs_time / floor_time (1 = as fast as streaming its data once)."
)
ERROR_DEFINITION = (
    "relative max error of the end state: ||rho_T - rho_ref||_inf / ||rho_ref||_inf, "
    "rho_ref from ottokit solve(method='bdf', rtol=reference.rtol, atol=1e-16). Where "
    "reference_check is present, a second reference from a different integrator is "
    "compared with rho_ref the same way (difference_to_reference: an estimate of the "
    "reference's own error), and each solver's error_vs_reference_check is its end "
    "state's error measured against that second reference."
)
MATCHED_DEFINITION = (
    "For each ottokit point (rtol, error e, time t) of the work-precision sweep, the "
    "solve_ivp BDF time at the same error e is read off the solve_ivp points by linear "
    "interpolation of log10(time) against log10(error) (linear extrapolation from the "
    "two nearest points when e is outside their error range; flagged 'extrapolated'). "
    "speedup = that time / t. The headline value is the one at ottokit's rtol=1e-6 point."
)
TIME_DEFINITION = (
    "wall-clock seconds of one solve, median over all timed runs; each run is in a fresh "
    "spawned process after loading the problem and a warm-up solve of a tiny problem of "
    "the same kind (one-off imports and first calls are excluded). Short solves are "
    f"repeated inside a process until {MIN_TIMED_S} s is spent (at most {MAX_INNER}). "
    "time_min_s is the fastest run (other load only ever slows a run down). "
    "The timed region includes everything a user calls per problem: building the "
    "right-hand side closure and jac_sparsity (solve_ivp), or WassersteinFlow(...) on a "
    "fresh Graph object plus solve() with its output checks (ottokit)."
)
MEMORY_DEFINITION = (
    "peak_rss_mb: ru_maxrss of the child process (MB = 1e6 bytes) at the end of its run, "
    "or VmHWM just before it was killed; includes the interpreter, imports and the loaded "
    "problem (base_rss_mb: the same high-water mark just before the timed solve). Maximum "
    "over the processes of a measurement."
)


@dataclass(frozen=True)
class CaseSpec:
    """One benchmark problem."""

    name: str
    kind: Literal["rgg", "fp"]
    size: int  # nodes (rgg) or grid side (fp)
    t_end: float
    ref_rtol: float = 1e-10
    big: bool = False  # its baselines run under --big-limit (when below --limit)
    # an independent second reference: "dop853" (ottokit's explicit 8th-order
    # Runge-Kutta, rtol 1e-11) on the non-stiff rgg cases, "solve_ivp_bdf" (SciPy, rtol
    # 1e-10) on the smallest grid; None: none (too slow)
    reference_check: Literal["dop853", "solve_ivp_bdf"] | None = None

    @property
    def n(self) -> int:
        return self.size if self.kind == "rgg" else self.size**2

    @property
    def radius(self) -> float:
        return 0.1 if self.size == 500 else math.sqrt(15.0 / (math.pi * self.size))


CASES: dict[str, CaseSpec] = {
    c.name: c
    for c in (
        CaseSpec("seed500", "rgg", 500, 0.1, reference_check="dop853"),
        CaseSpec("rgg1e4", "rgg", 10_000, 0.1, reference_check="dop853"),
        CaseSpec("rgg1e5", "rgg", 100_000, 0.1, reference_check="dop853"),
        CaseSpec("rgg1e6", "rgg", 1_000_000, 0.1, 1e-9, big=True, reference_check="dop853"),
        CaseSpec("fp128", "fp", 128, 0.01, reference_check="solve_ivp_bdf"),
        CaseSpec("fp256", "fp", 256, 0.01),
        CaseSpec("fp512", "fp", 512, 0.01, 1e-9, big=True),
    )
}
QUICK_CASES = ("seed500", "rgg1e4", "fp128")
RHS_CASES = ("rgg1e4", "rgg1e5", "rgg1e6")


@dataclass
class Problem:
    """A loaded problem: graph, initial density, optional potential, output times."""

    graph: Any  # ottokit.graph.Graph
    rho0: np.ndarray
    potential: np.ndarray | None
    t_end: float
    t_eval: np.ndarray


def build_arrays(spec: CaseSpec) -> dict[str, np.ndarray]:
    """Build a case with ottokit's graph builders; return what a child needs to load it."""
    from ottokit.graph import grid, random_geometric

    if spec.kind == "rgg":
        g = random_geometric(spec.size, spec.radius, seed=0, center=(0.5, 0.5))
        rho0 = np.full(g.n, 1e-10)
        rho0[0] = 1.0 - (g.n - 1) * 1e-10
        potential = np.empty(0)
    else:
        g = grid((spec.size, spec.size), 1.0 / spec.size)
        x = g.positions
        potential = 10.0 * np.sum((x - 0.5) ** 2, axis=1)
        rho0 = np.exp(-np.sum((x - 0.3) ** 2, axis=1) / (2 * 0.1**2)) + 1e-3
        rho0 /= rho0.sum()
    return {
        "n": np.array(g.n),
        "edges": g.edges,
        "weights": g.weights,
        "positions": g.positions,
        "rho0": rho0,
        "potential": potential,
        "t_end": np.array(spec.t_end),
        "n_components": np.array(g.n_components),
    }


def load_problem(path: str) -> Problem:
    from ottokit.graph import Graph

    with np.load(path) as z:
        graph = Graph(
            n=int(z["n"]), edges=z["edges"], weights=z["weights"], positions=z["positions"]
        )
        potential = z["potential"] if z["potential"].size else None
        t_end = float(z["t_end"])
        return Problem(graph, z["rho0"], potential, t_end, np.linspace(0.0, t_end, 11))


def tiny_problem(kind: str) -> Problem:
    """A small problem of the same kind, for warming up code paths before timing."""
    spec = CaseSpec("warmup", kind, 300 if kind == "rgg" else 12, 0.1 if kind == "rgg" else 0.01)  # type: ignore[arg-type]
    a = build_arrays(spec)
    from ottokit.graph import Graph

    g = Graph(n=int(a["n"]), edges=a["edges"], weights=a["weights"], positions=a["positions"])
    pot = a["potential"] if a["potential"].size else None
    return Problem(g, a["rho0"], pot, spec.t_end, np.linspace(0.0, spec.t_end, 11))


def seed_rhs(
    tail: np.ndarray,
    head: np.ndarray,
    weights: np.ndarray,
    n: int,
    potential: np.ndarray | None = None,
) -> Callable[[np.ndarray], np.ndarray]:
    """The seed's right-hand side on the edge list (arithmetic mean, entropy [+ V])."""

    def rhs(r: np.ndarray) -> np.ndarray:
        phi = np.log(r) if potential is None else np.log(r) + potential
        flux = weights * (r[tail] + r[head]) / 2 * (phi[head] - phi[tail])
        return np.bincount(tail, flux, n) - np.bincount(head, flux, n)

    return rhs


@dataclass
class SolveOutput:
    y_end: np.ndarray
    n_rhs: int
    n_jac: int
    method: str
    info: dict[str, Any] = field(default_factory=dict)


class SolverFailed(RuntimeError):
    """A solver returned without success."""


def solve_seed(p: Problem, rtol: float, atol: float) -> SolveOutput:
    """The seed's method: odeint (LSODA), no Jacobian, output every T/10."""
    from scipy.integrate import odeint

    g = p.graph
    rhs = seed_rhs(g.tail, g.head, g.weights, g.n, p.potential)
    calls = [0]

    def f(y: np.ndarray, _t: float) -> np.ndarray:
        calls[0] += 1
        return rhs(y)

    y, info = odeint(
        f, p.rho0, p.t_eval, rtol=rtol, atol=atol, mxstep=ODEINT_MXSTEP, full_output=True
    )
    if info["message"] != "Integration successful.":
        raise SolverFailed(f"odeint: {info['message']}")
    used = sorted({int(u) for u in info["mused"]})
    return SolveOutput(
        y[-1].copy(),
        calls[0],
        int(info["nje"][-1]),
        "odeint LSODA",
        {"lsoda_methods_used": ["adams" if u == 1 else "bdf" for u in used]},
    )


def solve_ivp_bdf(p: Problem, rtol: float, atol: float) -> SolveOutput:
    """solve_ivp BDF with the Jacobian's sparsity (W + I) on the seed's right-hand side."""
    import scipy.sparse as sp
    from scipy.integrate import solve_ivp

    g = p.graph
    n, idx = g.n, np.arange(g.n)
    rhs = seed_rhs(g.tail, g.head, g.weights, n, p.potential)
    rows = np.concatenate([g.tail, g.head, idx])
    cols = np.concatenate([g.head, g.tail, idx])
    sparsity = sp.csc_matrix((np.ones(rows.size), (rows, cols)), shape=(n, n))
    sol = solve_ivp(
        lambda _t, y: rhs(y),
        (0.0, p.t_end),
        p.rho0,
        method="BDF",
        t_eval=p.t_eval,
        rtol=rtol,
        atol=atol,
        jac_sparsity=sparsity,
    )
    if not sol.success:
        raise SolverFailed(f"solve_ivp BDF: {sol.message}")
    return SolveOutput(sol.y[:, -1].copy(), sol.nfev, sol.njev, "solve_ivp BDF", {"n_lu": sol.nlu})


def _functional(p: Problem) -> Any:
    from ottokit.functionals import Entropy, PotentialEnergy

    return Entropy() if p.potential is None else Entropy() + PotentialEnergy(p.potential)


def _ottokit(p: Problem, rtol: float, atol: float, method: str) -> SolveOutput:
    from ottokit.graph import Graph, WassersteinFlow, solve

    g = p.graph
    fresh = Graph(n=g.n, edges=g.edges, weights=g.weights, positions=g.positions)  # no caches
    flow = WassersteinFlow(fresh, _functional(p))
    tr = solve(flow, p.rho0, (0.0, p.t_end), p.t_eval, method=method, rtol=rtol, atol=atol)  # type: ignore[arg-type]
    info = {
        "integrator_wall_s": tr.wall_time,
        "mass_drift": tr.mass_drift,
        **{k: v for k, v in tr.info.items() if isinstance(v, int | float | str)},
    }
    return SolveOutput(tr.rho[-1].copy(), tr.n_rhs, tr.n_jac, tr.method, info)


def solve_ottokit(p: Problem, rtol: float, atol: float) -> SolveOutput:
    return _ottokit(p, rtol, atol, "auto")


def solve_reference(p: Problem, rtol: float, atol: float) -> SolveOutput:
    return _ottokit(p, rtol, atol, "bdf")


def solve_dop853(p: Problem, rtol: float, atol: float) -> SolveOutput:
    return _ottokit(p, rtol, atol, "dop853")


SOLVE_FUNCTIONS: dict[str, Callable[[Problem, float, float], SolveOutput]] = {
    "seed": solve_seed,
    "solve_ivp_bdf": solve_ivp_bdf,
    "ottokit": solve_ottokit,
    "reference": solve_reference,
    "dop853": solve_dop853,
}


def task_build(conn: Connection, case: str, path: str) -> dict[str, Any]:
    conn.send(("ready", None))
    start = time.perf_counter()
    arrays = build_arrays(CASES[case])
    build_s = time.perf_counter() - start
    np.savez(path, **{k: v for k, v in arrays.items() if v is not None})
    return {
        "n": int(arrays["n"]),
        "m": int(arrays["edges"].shape[0]),
        "n_components": int(arrays["n_components"]),
        "build_s": build_s,
    }


def task_solve(
    conn: Connection, path: str, solver: str, rtol: float, atol: float, inner: bool
) -> dict[str, Any]:
    fn = SOLVE_FUNCTIONS[solver]
    if solver in ("ottokit", "reference"):
        import pyamg  # noqa: F401  (imported lazily by solve(); load them before timing)
        import sksundae  # noqa: F401
        import torch  # noqa: F401
    p = load_problem(path)
    with np.errstate(divide="ignore", invalid="ignore"):
        if inner:  # warm-up on a tiny problem of the same kind
            fn(tiny_problem("rgg" if p.potential is None else "fp"), rtol, atol)
        base = h.max_rss_mb()
        conn.send(("ready", None))
        times, cpu_times, out = h.time_repeated(
            lambda: fn(p, rtol, atol), min_s=MIN_TIMED_S, max_calls=MAX_INNER if inner else 1
        )
    return {
        "times": times,
        "cpu_times": cpu_times,
        "y_end": out.y_end,
        "n_rhs": out.n_rhs,
        "n_jac": out.n_jac,
        "method": out.method,
        "info": out.info,
        "base_rss_mb": base,
    }


def task_rhs(conn: Connection, path: str) -> dict[str, Any]:
    """One right-hand side against the memory-bandwidth floor, in the same process."""
    import torch

    from ottokit.functionals import Entropy
    from ottokit.graph import WassersteinFlow

    conn.send(("ready", None))
    p = load_problem(path)
    g = p.graph
    n = g.n
    rho = np.random.default_rng(0).uniform(0.5, 1.5, n)
    rho /= rho.sum()
    flow = WassersteinFlow(g, Entropy())
    seed = seed_rhs(g.tail, g.head, g.weights, n)
    adj = g.adjacency
    agreement = float(np.max(np.abs(flow.rhs(rho) - seed(rho))) / np.max(np.abs(seed(rho))))
    rhs_s = h.median_time(lambda: flow.rhs(rho), RHS_CALLS, 3)
    seed_s = h.median_time(lambda: seed(rho), RHS_CALLS, 3)

    bandwidth, copy_s = h.copy_bandwidth(BANDWIDTH_ELEMENTS)

    csr_bytes = adj.indptr.nbytes + adj.indices.nbytes + adj.data.nbytes
    floor_bytes = csr_bytes + 3 * 8 * n
    floor_s = floor_bytes / bandwidth
    return {
        "n": n,
        "m": g.m,
        "adjacency_nnz": int(adj.nnz),
        "adjacency_dtypes": {
            "indptr": str(adj.indptr.dtype),
            "indices": str(adj.indices.dtype),
            "data": str(adj.data.dtype),
        },
        "csr_bytes": int(csr_bytes),
        "floor_bytes": int(floor_bytes),
        "bandwidth_GBps": bandwidth / 1e9,
        "copyto_s": copy_s,
        "floor_s": floor_s,
        "rhs_s": rhs_s,
        "rhs_over_floor": rhs_s / floor_s,
        "seed_rhs_s": seed_s,
        "seed_rhs_over_floor": seed_s / floor_s,
        "seed_rhs_over_rhs": seed_s / rhs_s,
        "rhs_path": "torch CSR" if flow._torch_adjacency is not None else "scipy CSR",
        "torch_threads": torch.get_num_threads(),
        "rhs_vs_seed_rhs_rel_diff": agreement,
    }


@dataclass
class Measurement:
    """One solver on one case at one tolerance: times, accuracy, memory, work."""

    case: str
    solver: str
    rtol: float
    atol: float
    limit_s: float
    status: str  # ok | timeout | oom | crashed | error
    reason: str | None
    time_s: float | None  # median of times_s
    time_min_s: float | None  # fastest run: the one least disturbed by other load
    times_s: list[float]
    cpu_s: float | None  # median CPU time of the process (all its threads)
    cpu_times_s: list[float]
    processes: int
    peak_rss_mb: float | None
    base_rss_mb: float | None
    load_avg_1min: float | None
    error: float | None = None
    error_vs_reference_check: float | None = None
    n_rhs: int | None = None
    n_jac: int | None = None
    method: str | None = None
    min_density: float | None = None
    mass_drift: float | None = None
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "ok" and self.time_s is not None


@dataclass
class Settings:
    limit_s: float
    big_limit_s: float
    ref_limit_s: float
    repeats: int
    repeat_cutoff_s: float
    mem_limit: int
    sweep: bool
    sweep_rtols: tuple[float, ...]
    reference_check: bool


@dataclass
class Job:
    """A measurement in progress: one solver at one tolerance, in fresh processes."""

    case: str
    solver: str
    rtol: float
    atol: float
    runs: h.IsolatedRuns


def new_job(
    path: str, case: str, solver: str, rtol: float, atol: float, limit_s: float, s: Settings
) -> Job:
    # the compared solvers warm up and repeat short solves inside a process
    kwargs = dict(path=path, solver=solver, rtol=rtol, atol=atol, inner=solver in SOLVERS)
    name = f"[{case}] {solver} rtol={rtol:g}"
    runs = h.IsolatedRuns(task_solve, kwargs, limit_s, s.mem_limit, name)
    return Job(case, solver, rtol, atol, runs)


def y_end(job: Job) -> np.ndarray | None:
    return None if job.runs.payload is None else job.runs.payload["y_end"]


def finish(job: Job, ref: np.ndarray | None, ref2: np.ndarray | None = None) -> Measurement:
    """Medians, end-state error against ``ref`` (and ``ref2``, the second reference)."""
    r, pl, y = job.runs, job.runs.payload or {}, y_end(job)
    info = dict(pl.get("info", {}))
    if r.failed_repeats:
        info["failed_repeats"] = r.failed_repeats
    return Measurement(
        job.case, job.solver, job.rtol, job.atol, r.limit_s, **r.summary(),
        error=rel_error(y, ref),
        error_vs_reference_check=None if ref2 is None else rel_error(y, ref2),
        n_rhs=pl.get("n_rhs"), n_jac=pl.get("n_jac"), method=pl.get("method"),
        min_density=None if y is None else float(y.min()),
        mass_drift=None if y is None else float(abs(y.sum() - 1.0)),
        info=info,
    )  # fmt: skip


def rel_error(y: np.ndarray | None, ref: np.ndarray | None) -> float | None:
    if y is None or ref is None or y.shape != ref.shape:
        return None
    return float(np.max(np.abs(y - ref)) / np.max(np.abs(ref)))


def time_at_error(points: list[tuple[float, float]], err: float) -> tuple[float, bool] | None:
    """Time at error ``err`` by linear interpolation of log10 t against log10 error."""
    pts = sorted((math.log10(e), math.log10(t)) for e, t in points if e > 0 and t > 0)
    if len(pts) < 2 or err <= 0:
        return None
    xs, ys = np.array([p[0] for p in pts]), np.array([p[1] for p in pts])
    x = math.log10(err)
    if xs[0] <= x <= xs[-1]:
        return 10 ** float(np.interp(x, xs, ys)), False
    i = 0 if x < xs[0] else len(xs) - 2
    if xs[i + 1] == xs[i]:
        return None
    slope = (ys[i + 1] - ys[i]) / (xs[i + 1] - xs[i])
    return 10 ** float(ys[i] + slope * (x - xs[i])), True


def work_precision(sweep: dict[str, list[Measurement]]) -> dict[str, Any]:
    """The speed ratio ottokit vs solve_ivp BDF at matched end-state error."""
    curves = {
        solver: [
            {"rtol": m.rtol, "error": m.error, "time_s": m.time_s, "status": m.status} for m in ms
        ]
        for solver, ms in sweep.items()
    }
    ivp_pts = [(m.error, m.time_s) for m in sweep["solve_ivp_bdf"] if m.ok and m.error]
    matched = []
    for m in sweep["ottokit"]:
        if not (m.ok and m.error):
            continue
        hit = time_at_error(ivp_pts, m.error)  # type: ignore[arg-type]
        if hit is None:
            continue
        t_ivp, extrapolated = hit
        matched.append(
            {
                "rtol": m.rtol,
                "ottokit_error": m.error,
                "ottokit_time_s": m.time_s,
                "solve_ivp_bdf_time_at_error_s": t_ivp,
                "extrapolated": extrapolated,
                "speedup": t_ivp / m.time_s,  # type: ignore[operator]
            }
        )
    headline = next((x for x in matched if x["rtol"] == RTOL), None)
    return {
        "method": MATCHED_DEFINITION,
        "curves": curves,
        "matched": matched,
        "speedup_at_matched_error": headline["speedup"] if headline else None,
        "speedup_at_matched_error_extrapolated": headline["extrapolated"] if headline else None,
    }


def _ratio(num: Measurement, den: Measurement, key: str = "time_s") -> float | None:
    return h.ratio(getattr(num, key), getattr(den, key)) if num.ok and den.ok else None


def run_case(spec: CaseSpec, s: Settings, workdir: str, log: Callable[[str], None]) -> dict:
    path = os.path.join(workdir, f"{spec.name}.npz")
    log(f"[{spec.name}] building the graph")
    b = h.run_in_child(task_build, {"case": spec.name, "path": path}, h.SETUP_LIMIT_S, s.mem_limit)
    if b.status != "ok":
        return {"status": b.status, "reason": f"building the case failed: {b.reason}"}
    out: dict[str, Any] = {
        "n": b.payload["n"],
        "m": b.payload["m"],
        "n_components": b.payload["n_components"],
        "t_end": spec.t_end,
        "t_eval": "11 equally spaced times in [0, t_end]",
        "build": {"time_s": b.payload["build_s"], "peak_rss_mb": b.peak_rss_mb},
    }
    log(f"[{spec.name}] n={out['n']} m={out['m']}; reference (bdf, rtol={spec.ref_rtol:g})")
    ref_job = new_job(path, spec.name, "reference", spec.ref_rtol, REF_ATOL, s.ref_limit_s, s)
    h.round_robin([ref_job.runs], 1)
    ref = y_end(ref_job)
    ref2: np.ndarray | None = None
    ref_entry: dict[str, Any] = asdict(finish(ref_job, None))
    if spec.ref_rtol != 1e-10:
        ref_entry["note"] = (
            "rtol 1e-9 instead of 1e-10 on the two largest cases, to bound the run time"
        )
    out["reference"] = ref_entry
    if spec.reference_check and s.reference_check:
        rtol = CHECK_RTOL[spec.reference_check]
        log(f"[{spec.name}] second reference: {spec.reference_check}, rtol={rtol:g}")
        chk_job = new_job(path, spec.name, spec.reference_check, rtol, REF_ATOL, s.ref_limit_s, s)
        h.round_robin([chk_job.runs], 1)
        chk = finish(chk_job, ref)
        ref2 = y_end(chk_job)
        out["reference_check"] = {
            "solver": spec.reference_check,
            "method": chk.method,
            "status": chk.status,
            "reason": chk.reason,
            "rtol": rtol,
            "atol": REF_ATOL,
            "time_s": chk.time_s,
            "difference_to_reference": chk.error,
        }
        if ref is None and ref2 is not None:
            ref = ref2
            ref_entry["note"] = (
                f"the bdf reference failed ({ref_entry['reason']}); errors are measured "
                f"against the second reference ({spec.reference_check}, rtol={rtol:g})"
            )
    limit = {
        solver: min(s.limit_s, s.big_limit_s if spec.big else math.inf)
        if solver in BASELINES
        else s.limit_s
        for solver in SOLVERS
    }
    main_jobs = {k: new_job(path, spec.name, k, RTOL, ATOL, limit[k], s) for k in SOLVERS}
    sweep_jobs: dict[str, list[Job]] = {"solve_ivp_bdf": [], "ottokit": []}
    if spec.kind == "fp" and s.sweep:
        for solver, jobs in sweep_jobs.items():
            for rtol in s.sweep_rtols:
                same = rtol == RTOL
                jobs.append(
                    main_jobs[solver]
                    if same
                    else new_job(path, spec.name, solver, rtol, ATOL, limit[solver], s)
                )
    extra = [j for jobs in sweep_jobs.values() for j in jobs if j.rtol != RTOL]
    h.round_robin([j.runs for j in [*main_jobs.values(), *extra]], s.repeats, s.repeat_cutoff_s)
    runs = {solver: finish(job, ref, ref2) for solver, job in main_jobs.items()}
    seed, n = runs["seed"], out["n"]
    if seed.status in ("crashed", "oom") and n * n >= 2**31:
        seed.reason = (
            f"{seed.reason}; without a Jacobian, odeint gives LSODA a dense n x n matrix "
            f"({8 * n * n / 1e9:.0f} GB), and n^2 >= 2^31 overflows its 32-bit work-array "
            "length (cf. scipy/scipy#9094)"
        )
    swept = {id(j): finish(j, ref, ref2) for jobs in sweep_jobs.values() for j in jobs}
    for solver, m in runs.items():
        log(f"[{spec.name}] {solver}: {_fmt_measurement(m)}")
    if spec.kind == "fp" and s.sweep:
        out["work_precision"] = work_precision(
            {solver: [swept[id(j)] for j in jobs] for solver, jobs in sweep_jobs.items()}
        )
    out["solvers"] = {k: asdict(v) for k, v in runs.items()}
    out["ratios"] = {
        f"{baseline}_{key}": _ratio(runs[baseline], runs["ottokit"], attr)
        for key, attr in (
            ("time_over_ottokit_time", "time_s"),
            ("min_time_over_ottokit_min_time", "time_min_s"),
            ("cpu_over_ottokit_cpu", "cpu_s"),
            ("peak_rss_over_ottokit", "peak_rss_mb"),
        )
        for baseline in BASELINES
    }
    return out


def _fmt_measurement(m: Measurement) -> str:
    if not m.ok:
        return f"{m.status}: {m.reason}"
    err = "n/a" if m.error is None else f"{m.error:.2e}"
    return (
        f"{m.time_s:.3f} s (cpu {m.cpu_s:.3f} s, {len(m.times_s)} timed), err {err}, "
        f"peak {m.peak_rss_mb or 0:.0f} MB, rhs {m.n_rhs}, {m.method}"
    )


def evaluate_targets(cases: dict[str, Any], rhs: dict[str, Any]) -> dict[str, Any]:
    def solver(case: str, name: str) -> dict[str, Any] | None:
        c = cases.get(case)
        return None if c is None or "solvers" not in c else c["solvers"].get(name)

    targets: dict[str, Any] = {}
    o, sd = solver("seed500", "ottokit"), solver("seed500", "seed")
    if o and sd:
        ok = o["status"] == "ok" and sd["status"] == "ok"
        targets["seed500_ottokit_at_least_as_fast_as_seed"] = {
            "met": bool(ok and o["time_s"] <= sd["time_s"]),
            "ottokit_s": o["time_s"],
            "seed_s": sd["time_s"],
            "seed_over_ottokit": cases["seed500"]["ratios"]["seed_time_over_ottokit_time"],
            "seed_over_ottokit_fastest_runs": cases["seed500"]["ratios"][
                "seed_min_time_over_ottokit_min_time"
            ],
            "ottokit_error": o["error"],
            "seed_error": sd["error"],
        }
    if "fp256" in cases and "ratios" in cases["fp256"]:
        r = cases["fp256"]["ratios"]["solve_ivp_bdf_time_over_ottokit_time"]
        wp = cases["fp256"].get("work_precision", {})
        mr = wp.get("speedup_at_matched_error")
        targets["fp256_5x_faster_than_solve_ivp_bdf_equal_rtol"] = {
            "met": bool(r is not None and r >= 5.0),
            "speedup": r,
            "speedup_fastest_runs": cases["fp256"]["ratios"][
                "solve_ivp_bdf_min_time_over_ottokit_min_time"
            ],
        }
        targets["fp256_5x_faster_than_solve_ivp_bdf_matched_error"] = {
            "met": bool(mr is not None and mr >= 5.0),
            "speedup": mr,
            "extrapolated": wp.get("speedup_at_matched_error_extrapolated"),
        }
    o6 = solver("rgg1e6", "ottokit")
    if o6:
        ok = o6["status"] == "ok"
        peak = o6["peak_rss_mb"]
        targets["rgg1e6_ottokit_within_180s_and_4GB"] = {
            "met": bool(ok and o6["time_s"] <= 180.0 and peak is not None and peak <= 4000.0),
            "time_s": o6["time_s"],
            "peak_rss_mb": peak,
            "error": o6["error"],
            "status": o6["status"],
        }
    if "rgg1e6" in rhs and "rhs_over_floor" in rhs["rgg1e6"]:
        ratio = rhs["rgg1e6"]["rhs_over_floor"]
        targets["rgg1e6_rhs_within_3x_of_bandwidth_floor"] = {
            "met": bool(ratio <= 3.0),
            "rhs_over_floor": ratio,
            "rhs_s": rhs["rgg1e6"]["rhs_s"],
            "floor_s": rhs["rgg1e6"]["floor_s"],
        }
    return targets


def _fmt(x: float | None, spec: str) -> str:
    return "-" if x is None else format(x, spec)


def print_tables(results: dict[str, Any]) -> None:
    rows: list[Any] = []
    for name, c in results["cases"].items():
        if "solvers" not in c:
            rows += [(name, "-", "-", c.get("status", "?"), *["-"] * 8), None]
            continue
        ref = c["reference"]
        rows.append(
            (name, c["n"], f"reference (bdf {ref['rtol']:g})", ref["status"],
             h.fmt(ref["time_s"], ".2f"), h.fmt(ref["cpu_s"], ".2f"), "1", "-", "-",
             h.fmt(ref["peak_rss_mb"], ".0f"), h.fmt(ref["n_rhs"], "d"), ref["method"] or "")
        )  # fmt: skip
        for solver, m in c["solvers"].items():
            ratio = c["ratios"].get(f"{solver}_time_over_ottokit_time")
            status = m["status"] if m["status"] == "ok" else f"{m['status']}: {m['reason']}"
            rows.append(
                ("", "", solver, status[:60], h.fmt(m["time_s"], ".3f"), h.fmt(m["cpu_s"], ".3f"),
                 len(m["times_s"]), h.fmt(m["error"], ".1e"), h.fmt(ratio, ".1f"),
                 h.fmt(m["peak_rss_mb"], ".0f"), h.fmt(m["n_rhs"], "d"), m["method"] or "")
            )  # fmt: skip
        rows.append(None)
    h.print_table(
        f"Graph flows, rtol={RTOL:g}, atol={ATOL:g}: median times; "
        "wall ratio = baseline wall time / ottokit wall time",
        ("case", "n", "solver", "status", "wall [s]", "cpu [s]", "runs", "error",
         "wall ratio", "peak MB", "rhs", "method"),
        rows,
        left=4,
    )  # fmt: skip
    rows = []
    for name, c in results["cases"].items():
        w = c.get("work_precision")
        if not w:
            continue
        ivp = {p["rtol"]: p for p in w["curves"]["solve_ivp_bdf"]}
        ott = {p["rtol"]: p for p in w["curves"]["ottokit"]}
        matched = {x["rtol"]: x for x in w["matched"]}
        for rtol in sorted(ott, reverse=True):
            o, i, mm = ott.get(rtol, {}), ivp.get(rtol, {}), matched.get(rtol, {})
            rows.append(
                (name, f"{rtol:g}", h.fmt(o.get("error"), ".1e"), h.fmt(o.get("time_s"), ".3f"),
                 h.fmt(i.get("error"), ".1e"), h.fmt(i.get("time_s"), ".3f"),
                 h.fmt(mm.get("solve_ivp_bdf_time_at_error_s"), ".3f"),
                 h.fmt(mm.get("speedup"), ".1f"), mm.get("extrapolated", "-"))
            )  # fmt: skip
        rows.append(None)
    if rows:
        h.print_table(
            "Work-precision (grid cases): ottokit vs solve_ivp BDF at matched error",
            ("case", "rtol", "ottokit err", "ottokit s", "ivp err", "ivp s",
             "ivp s @ ottokit err", "speedup", "extrap."),
            rows,
        )  # fmt: skip
    rows = []
    for name, r in results["rhs"].items():
        if "rhs_s" not in r:
            rows.append((name, "-", "-", "-", "-", "-", r.get("status", "?"), "-", "-", "-"))
            continue
        rows.append(
            (name, r["n"], r["adjacency_nnz"], f"{r['bandwidth_GBps']:.1f}",
             f"{1e3 * r['floor_s']:.2f}", f"{1e3 * r['rhs_s']:.2f}", f"{r['rhs_over_floor']:.2f}",
             f"{1e3 * r['seed_rhs_s']:.2f}", f"{r['seed_rhs_over_floor']:.1f}", r["rhs_path"])
        )  # fmt: skip
    if rows:
        h.print_table(
            "One right-hand side vs memory-bandwidth floor",
            ("case", "n", "nnz", "B [GB/s]", "floor [ms]", "flow.rhs [ms]", "rhs/floor",
             "seed rhs [ms]", "seed/floor", "path"),
            rows,
        )  # fmt: skip
    h.print_targets(results["targets"])


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", help=f"comma list from {','.join(CASES)} (default: all)")
    ap.add_argument("--repeats", type=int, help="processes per measurement (default 3; quick 1)")
    ap.add_argument("--quick", action="store_true", help=f"only {','.join(QUICK_CASES)}")
    ap.add_argument("--limit", type=float, help="per-run wall-clock limit, s (600; quick 10)")
    ap.add_argument(
        "--big-limit",
        type=float,
        default=300.0,
        help="per-run limit for the baselines of rgg1e6 and fp512, s (default 300: keeps a "
        "full run near an hour on 2 cores)",
    )
    ap.add_argument("--ref-limit", type=float, default=900.0, help="limit for references, s (900)")
    ap.add_argument(
        "--repeat-cutoff",
        type=float,
        default=60.0,
        help="a run longer than this (s) is not repeated (default 60)",
    )
    ap.add_argument(
        "--mem-limit-gb",
        type=float,
        help="address-space limit per child, GB (default: half the physical memory)",
    )
    ap.add_argument(
        "--blas-threads",
        type=int,
        help="set OPENBLAS/MKL/BLIS_NUM_THREADS for every child process (all solvers alike; "
        "default: the libraries' own default)",
    )
    ap.add_argument("--no-sweep", action="store_true", help="skip the work-precision sweep")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"JSON path ({DEFAULT_OUT})")
    args = ap.parse_args(argv)
    if args.cases:
        names = [c.strip() for c in args.cases.split(",") if c.strip()]
        unknown = [c for c in names if c not in CASES]
        if unknown:
            ap.error(f"unknown case(s) {unknown}; choose from {list(CASES)}")
    else:
        names = list(QUICK_CASES if args.quick else CASES)
    args.case_names = names
    args.repeats = args.repeats or (1 if args.quick else 3)
    args.limit = args.limit or (10.0 if args.quick else 600.0)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.blas_threads:
        for var in BLAS_THREAD_VARS:  # inherited by the spawned children
            os.environ[var] = str(args.blas_threads)
    mem_total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    mem_limit = int(args.mem_limit_gb * 1e9) if args.mem_limit_gb else mem_total // 2
    s = Settings(
        limit_s=args.limit,
        big_limit_s=args.big_limit,
        ref_limit_s=args.ref_limit,
        repeats=args.repeats,
        repeat_cutoff_s=args.repeat_cutoff,
        mem_limit=mem_limit,
        sweep=not args.no_sweep,
        sweep_rtols=QUICK_SWEEP_RTOLS if args.quick else SWEEP_RTOLS,
        reference_check=not args.quick,
    )
    bench = h.Benchmark(
        "graph_flows",
        argv,
        out=args.out,
        packages=("pyamg", "scikit-sundae"),
        settings={
            "quick": args.quick,
            "rtol": RTOL,
            "atol": ATOL,
            "reference_atol": REF_ATOL,
            "sweep_rtols": list(s.sweep_rtols) if s.sweep else [],
            "repeats": s.repeats,
            "repeat_cutoff_s": s.repeat_cutoff_s,
            "limit_s": s.limit_s,
            "reference_limit_s": s.ref_limit_s,
            "baseline_limit_s_on_largest_cases": {
                c.name: min(s.limit_s, s.big_limit_s) for c in CASES.values() if c.big
            },
            "mem_limit_gb": mem_limit / 1e9,
        },
    )
    results = bench.record
    results["definitions"] = {
        "solvers": {
            "seed": "scipy.integrate.odeint (LSODA) on the NumPy edge-list rhs, no "
            f"Jacobian, outputs at 11 equally spaced times, mxstep={ODEINT_MXSTEP}",
            "solve_ivp_bdf": "scipy.integrate.solve_ivp(method='BDF', jac_sparsity=W+I) "
            "on the same NumPy rhs",
            "ottokit": "ottokit.graph.solve(WassersteinFlow(g, F), method='auto')",
        },
        "time": TIME_DEFINITION,
        "error": ERROR_DEFINITION,
        "peak_memory": MEMORY_DEFINITION,
        "floor_definition": FLOOR_DEFINITION,
        "matched_error": MATCHED_DEFINITION,
        "status": "ok | timeout (killed past limit_s) | oom (MemoryError under the "
        "address-space limit, or SIGKILL) | crashed (killed by a signal, e.g. SIGSEGV) | "
        "error (the solver reported failure; see reason)",
    }
    results.update(cases={}, rhs={}, targets={})
    with tempfile.TemporaryDirectory(prefix="ottokit-bench-") as workdir:
        for name in args.case_names:
            results["cases"][name] = run_case(CASES[name], s, workdir, h.log)
            path = os.path.join(workdir, f"{name}.npz")  # written by run_case
            if name in RHS_CASES and os.path.exists(path):
                h.log(f"[{name}] one right-hand side vs the bandwidth floor")
                r = h.run_in_child(task_rhs, {"path": path}, s.ref_limit_s, mem_limit)
                results["rhs"][name] = (
                    r.payload if r.status == "ok" else {"status": r.status, "reason": r.reason}
                )
            if os.path.exists(path):
                os.remove(path)
            bench.save()
    results["targets"] = evaluate_targets(results["cases"], results["rhs"])
    bench.save()
    print_tables(results)
    print(f"wrote {bench.path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

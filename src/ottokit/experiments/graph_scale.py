"""graph-scale: Wasserstein gradient flows at scale (beyond seed 000).

1. The Wasserstein heat equation (27) from the seed's initial data on a random
   geometric graph of 10^6 nodes (mean degree about 15), to t = 0.1.
2. A stiff case: the Fokker-Planck flow (entropy + potential energy) on a
   512 x 512 grid with weights 1/h^2, a consistent discretisation of
   d rho/dt = Laplace rho + div(rho grad V), relaxing towards rho* ~ exp(-V).

Each case runs in a fresh child process so its wall time and peak memory
(``ru_maxrss``) are its own.
"""

from __future__ import annotations

import multiprocessing as mp
import resource
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ottokit._config import (
    ConfigError,
    ValidatedConfig,
    check_config_memory,
    device_param,
    param,
    seed_param,
)
from ottokit.experiments._graph_sizes import heat_flow_bytes
from ottokit.experiments._registry import Experiment, register
from ottokit.experiments._studies import FIGURE_ONLY, run_study
from ottokit.progress import progress_bar
from ottokit.report.figures import new_figure, save_figure
from ottokit.report.result import Check, Comparison, Result

__all__ = ["GraphScaleConfig", "ScaleStudy", "checks", "grid_case", "rgg_case", "run", "study"]

SEED_FILE = "000_7ec3962b43dcb9c8.txt"
CLAIM = (
    "The structure-preserving discretisation of Wasserstein gradient flows on graphs "
    "(seed §2.2) is practical: finite-difference flows on graphs conserve mass, keep "
    "densities positive and dissipate the free energy, here at a million nodes and on a "
    "stiff 512^2 Fokker-Planck grid."
)
TIME_TARGET_S = 180.0
MEMORY_TARGET_GB = 4.0


@dataclass
class GraphScaleConfig(ValidatedConfig):
    """Settings of the two large cases (beyond the seed: its graph has 500 nodes)."""

    n_nodes: int = param(
        1_000_000,
        doc="nodes of the random geometric graph (all but one start at density 1e-10)",
        ge=2,
        le=10**9,
    )
    mean_degree: float = param(
        15.0, doc="target mean degree (sets the radius of the random graph)", ge=1
    )
    t_end: float = param(0.1, doc="end time of the heat flow on the random graph", gt=0)
    grid_size: int = param(512, doc="side N of the N x N Fokker-Planck grid", ge=2)
    potential_strength: float = param(
        10.0, doc="trap strength s of the potential V = s |x - (0.5, 0.5)|^2", ge=0, le=1000
    )
    grid_t_end: float = param(0.1, doc="end time of the Fokker-Planck flow on the grid", gt=0)
    rtol: float = param(1e-6, doc="relative tolerance of both solves", ge=1e-13, lt=1)
    seed: int = seed_param()
    device: str = device_param()

    def check(self) -> None:
        """The random graph must be able to reach its degree; both cases must fit in memory."""
        if self.mean_degree > self.n_nodes - 1:
            raise ConfigError.for_key(
                "mean_degree",
                self.mean_degree,
                f"<= n_nodes - 1 = {self.n_nodes - 1} (a node has at most that many neighbours)",
                min(15, self.n_nodes - 1),
            )
        n, m = self.n_nodes, self.n_nodes * self.mean_degree / 2.0
        check_config_memory(
            "n_nodes",
            self.n_nodes,
            heat_flow_bytes(n, m),
            what=f"the heat flow on a random graph of {n} nodes and about {m:.3g} edges",
            knob="lower n_nodes or mean_degree",
        )
        N = self.grid_size
        check_config_memory(
            "grid_size",
            N,
            heat_flow_bytes(N * N, 2 * N * (N - 1)),
            what=f"the Fokker-Planck flow on a {N} x {N} grid",
            knob="lower grid_size",
        )

    @classmethod
    def paper(cls) -> GraphScaleConfig:
        return cls()

    @classmethod
    def quick(cls) -> GraphScaleConfig:
        return cls(n_nodes=100_000, grid_size=128)


def _peak_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6  # Linux: kilobytes


def _solver_stats(tr: Any) -> dict[str, Any]:
    """What both cases report about their solve (in the child process)."""
    return {
        "peak_gb": _peak_gb(),
        "method": tr.method,
        "n_rhs": tr.n_rhs,
        "n_jac": tr.n_jac,
        "info": tr.info,
        "mass_drift": tr.mass_drift,
        "min_density": tr.min_density,
        "t": tr.t.tolist(),
    }


def _image(values: np.ndarray, N: int) -> list:
    """An N x N field as nested lists, every 4th cell above 128^2 (keeps metrics small)."""
    a = values.reshape(N, N)
    return (a if N <= 128 else a[::4, ::4]).tolist()


def rgg_case(n: int, mean_degree: float, t_end: float, rtol: float, seed: int) -> dict[str, Any]:
    """The seed's heat-flow experiment on ``n`` nodes; returns numbers (run in a child)."""
    from ottokit.functionals import Entropy
    from ottokit.graph import WassersteinFlow, random_geometric, solve

    t0 = time.perf_counter()
    # points near the border have fewer neighbours: inflate the radius a little
    radius = float(np.sqrt(mean_degree / (np.pi * n)) * 1.02)
    g = random_geometric(n, radius, seed=seed, center=(0.5, 0.5))
    build = time.perf_counter() - t0
    rho0 = np.full(n, 1e-10)
    rho0[0] = 1.0 - (n - 1) * 1e-10
    flow = WassersteinFlow(g, Entropy())
    t1 = time.perf_counter()
    tr = solve(flow, rho0, (0.0, t_end), np.linspace(0.0, t_end, 11), rtol=rtol, atol=1e-14)
    solve_time = time.perf_counter() - t1
    dist = np.linalg.norm(g.positions - g.positions[0], axis=1)
    edges = np.linspace(0.0, 0.05, 26)
    which = np.digitize(dist, edges) - 1
    inside = which < len(edges) - 1
    profile = np.bincount(which[inside], tr.final[inside], len(edges) - 1) / np.maximum(
        np.bincount(which[inside], minlength=len(edges) - 1), 1
    )
    return {
        "n": g.n,
        "m": g.m,
        "radius": radius,
        "mean_degree": g.mean_degree(),
        "components": g.n_components,
        "build_s": build,
        "solve_s": solve_time,
        "total_s": time.perf_counter() - t0,
        **_solver_stats(tr),
        "entropy": tr.energy.tolist(),
        "dissipation": tr.dissipation.tolist(),
        "radial_edges": edges.tolist(),
        "radial_profile": profile.tolist(),
    }


def grid_case(N: int, strength: float, t_end: float, rtol: float) -> dict[str, Any]:
    """Fokker-Planck flow on an N x N grid of [0, 1]^2; returns numbers (run in a child)."""
    from ottokit.functionals import Entropy, PotentialEnergy
    from ottokit.graph import WassersteinFlow, grid, solve

    t0 = time.perf_counter()
    g = grid((N, N), 1.0 / N)
    x = g.positions
    V = strength * ((x - 0.5) ** 2).sum(axis=1)
    rho0 = np.exp(-((x - 0.3) ** 2).sum(axis=1) / (2 * 0.1**2)) + 1e-3
    rho0 /= rho0.sum()
    gibbs = np.exp(-V)
    gibbs /= gibbs.sum()
    flow = WassersteinFlow(g, Entropy() + PotentialEnergy(V))
    t_eval = np.linspace(0.0, t_end, 11)
    t1 = time.perf_counter()
    tr = solve(flow, rho0, (0.0, t_end), t_eval, rtol=rtol, atol=1e-14)
    solve_time = time.perf_counter() - t1
    kl = [float(np.sum(r * np.log(r / gibbs))) for r in tr.rho]
    return {
        "N": N,
        "n": g.n,
        "stiffness_bound_x_T": float(flow.stiffness_bound(np.full(g.n, 1.0 / g.n)) * t_end),
        "solve_s": solve_time,
        "total_s": time.perf_counter() - t0,
        **_solver_stats(tr),
        "free_energy": tr.energy.tolist(),
        "kl_to_gibbs": kl,
        "images": {
            "rho0": _image(rho0, N),
            "rhoT": _image(tr.final, N),
            "gibbs": _image(gibbs, N),
        },
    }


def _in_child(fn: Any, *args: Any) -> dict[str, Any]:
    """Run ``fn(*args)`` in a fresh process (spawn) and return its result."""
    ctx = mp.get_context("spawn")
    with ctx.Pool(1) as pool:
        return pool.apply(fn, args)


@dataclass(frozen=True)
class ScaleStudy:
    """The two large cases, each run in its own child process.

    Attributes:
        rgg: the heat flow on the random geometric graph: size, build and solve times, peak
            memory, solver statistics, entropy and dissipation against time, and the radial
            density profile at the end.
        fokker_planck: the Fokker-Planck flow on the grid: size, stiffness bound x T, solve
            time, peak memory, solver statistics, free energy and KL to the Gibbs state.
        t_end: end time of the heat flow.
        grid_size: side N of the grid.
        grid_t_end: end time of the Fokker-Planck flow.
        images: rho(0), rho(T) and the Gibbs state on the grid (figures only).
    """

    rgg: dict[str, Any]
    fokker_planck: dict[str, Any]
    t_end: float
    grid_size: int
    grid_t_end: float
    images: dict[str, list] = field(metadata=FIGURE_ONLY)


def study(config: GraphScaleConfig) -> ScaleStudy:
    """Both cases, each in a fresh process so its wall time and peak memory are its own."""
    with progress_bar(2, "graph-scale: 2 cases") as bar:
        rgg = _in_child(
            rgg_case, config.n_nodes, config.mean_degree, config.t_end, config.rtol, config.seed
        )
        bar.advance()
        fp = _in_child(
            grid_case, config.grid_size, config.potential_strength, config.grid_t_end, config.rtol
        )
        bar.advance()
    images = fp.pop("images")
    return ScaleStudy(rgg, fp, config.t_end, config.grid_size, config.grid_t_end, images)


def checks(s: ScaleStudy) -> list[Check]:
    """The time and memory targets, mass and positivity, energy decrease, and relaxation."""
    rgg, fp = s.rgg, s.fokker_planck
    rgg_ok_time = rgg["total_s"] <= TIME_TARGET_S
    rgg_ok_mem = rgg["peak_gb"] <= MEMORY_TARGET_GB
    decreasing = bool(
        np.all(np.diff(rgg["entropy"]) <= 1e-12) and np.all(np.diff(fp["free_energy"]) <= 1e-12)
    )
    kl = np.asarray(fp["kl_to_gibbs"])
    return [
        Check(
            f"Heat flow on {rgg['n']:,} nodes completes within {TIME_TARGET_S:.0f} s and "
            f"{MEMORY_TARGET_GB:g} GB",
            bool(rgg_ok_time and rgg_ok_mem),
            f"{rgg['total_s']:.1f} s (graph {rgg['build_s']:.1f} s, solve {rgg['solve_s']:.1f} s), "
            f"peak {rgg['peak_gb']:.2f} GB; method {rgg['method']}, {rgg['n_rhs']} rhs",
            kind="software",
        ),
        Check(
            "Mass conserved (relative drift <= 1e-10) and densities positive in both cases",
            bool(
                max(rgg["mass_drift"], fp["mass_drift"]) <= 1e-10
                and min(rgg["min_density"], fp["min_density"]) > 0
            ),
            f"drift {rgg['mass_drift']:.1e} / {fp['mass_drift']:.1e}; min density "
            f"{rgg['min_density']:.1e} / {fp['min_density']:.1e}",
            kind="software",
        ),
        Check(
            "Free energy decreases along both flows",
            decreasing,
            f"H: {rgg['entropy'][0]:.4f} -> {rgg['entropy'][-1]:.4f}; F: "
            f"{fp['free_energy'][0]:.4f} -> {fp['free_energy'][-1]:.4f}",
        ),
        Check(
            "The Fokker-Planck flow relaxes towards the Gibbs state: KL(rho(t) || exp(-V)/Z) "
            "decreases",
            bool(np.all(np.diff(kl) < 0)),
            f"KL: {kl[0]:.3f} -> {kl[-1]:.3e}",
        ),
    ]


def comparisons(s: ScaleStudy) -> list[Comparison]:
    """Time and memory beside the targets (the seed's graph has 500 nodes)."""
    rgg, fp = s.rgg, s.fokker_planck
    return [
        Comparison(
            f"random geometric graph ({rgg['n']:,} nodes, mean degree {rgg['mean_degree']:.1f}, "
            f"{rgg['components']} component(s))",
            f"{rgg['total_s']:.1f} s, {rgg['peak_gb']:.2f} GB",
            f"target <= {TIME_TARGET_S:.0f} s, <= {MEMORY_TARGET_GB:g} GB (seed: 500 nodes)",
        ),
        Comparison(
            f"Fokker-Planck grid {s.grid_size}^2 (stiffness |J| T = "
            f"{fp['stiffness_bound_x_T']:.2e})",
            f"{fp['solve_s']:.1f} s, {fp['peak_gb']:.2f} GB, method {fp['method']}, "
            f"{fp['n_rhs']} rhs, {fp['n_jac']} Jacobians",
            None,
        ),
    ]


def summary(s: ScaleStudy) -> str:
    """Sizes, times, memory and the relaxation of both cases."""
    rgg, fp = s.rgg, s.fokker_planck
    kl = fp["kl_to_gibbs"]
    disconnected = (
        f"it has {rgg['components']} connected components (each keeps its own mass); "
        if rgg["components"] > 1
        else "it is connected; "
    )
    return (
        f"The random geometric graph has {rgg['n']:,} nodes and {rgg['m']:,} edges (radius "
        f"{rgg['radius']:.5f}, mean degree {rgg['mean_degree']:.2f}); {disconnected}"
        f"the Wasserstein heat flow to t = {s.t_end:g} took {rgg['solve_s']:.1f} s "
        f"({rgg['method']}, {rgg['n_rhs']} right-hand sides) after {rgg['build_s']:.1f} s to "
        f"build the graph, peak memory {rgg['peak_gb']:.2f} GB. The {s.grid_size}^2 "
        f"Fokker-Planck grid (stiffness bound x T = {fp['stiffness_bound_x_T']:.1e}) took "
        f"{fp['solve_s']:.1f} s with {fp['method']}, peak {fp['peak_gb']:.2f} GB; "
        f"KL to the Gibbs state fell from {kl[0]:.3f} to {kl[-1]:.2e}."
    )


def figures(s: ScaleStudy, directory: Path) -> dict[str, Path]:
    """Entropy and the radial profile on the graph; the grid's densities and energies."""
    return {
        f"Random geometric graph, n = {s.rgg['n']:,}: entropy and -dH/dt against time": (
            _figure_energy(
                s.rgg, "entropy", "dissipation", ("H", "-dH/dt"), directory / "rgg_entropy.png"
            )
        ),
        f"Random geometric graph: mean density against distance from the centre at t = "
        f"{s.t_end:g}": _figure_profile(s.rgg, directory / "rgg_profile.png"),
        f"Fokker-Planck on a {s.grid_size}^2 grid: rho(0), rho({s.grid_t_end:g}) and "
        "the Gibbs state exp(-V)/Z": _figure_grid(
            s.images, s.grid_t_end, directory / "fp_grid.png"
        ),
        "Fokker-Planck: free energy and KL(rho(t) || rho*) against time": _figure_energy(
            s.fokker_planck,
            "free_energy",
            "kl_to_gibbs",
            ("F = H + <V, rho>", "KL(rho(t) || rho*)"),
            directory / "fp_energy.png",
        ),
    }


def run(config: GraphScaleConfig, out: Path) -> Result:
    """Run both cases and check that the flows stay structure-preserving at scale."""
    return run_study(sys.modules[__name__], config, out, experiment="graph-scale", timed=False)


def _figure_energy(
    record: dict, energy: str, log_quantity: str, labels: tuple[str, str], path: Path
) -> Path:
    """``record[energy]`` (left) and ``record[log_quantity]`` on a log scale (right) against t."""
    fig, (a1, a2) = new_figure(1, 2, figsize=(9.0, 3.5))
    a1.plot(record["t"], record[energy], "o-")
    a1.set_xlabel("t")
    a1.set_ylabel(labels[0])
    a2.semilogy(record["t"], record[log_quantity], "o-")
    a2.set_xlabel("t")
    a2.set_ylabel(labels[1])
    return save_figure(fig, path)


def _figure_profile(rgg: dict, path: Path) -> Path:
    fig, ax = new_figure()
    e = np.asarray(rgg["radial_edges"])
    prof = np.asarray(rgg["radial_profile"])
    ok = prof > 0
    ax.semilogy(0.5 * (e[1:] + e[:-1])[ok], prof[ok], "o-")
    ax.set_xlabel("distance from the centre node")
    ax.set_ylabel("mean rho_i")
    return save_figure(fig, path)


def _figure_grid(images: dict, t_end: float, path: Path) -> Path:
    fig, axes = new_figure(1, 3, figsize=(11.0, 3.6))
    vmax = max(float(np.max(images[k])) for k in ("rho0", "rhoT", "gibbs"))
    for ax, key, title in zip(
        axes,
        ("rho0", "rhoT", "gibbs"),
        ("rho(0)", f"rho({t_end:g})", "Gibbs exp(-V)/Z"),
        strict=True,
    ):
        im = ax.imshow(
            np.asarray(images[key]).T,
            origin="lower",
            extent=(0, 1, 0, 1),
            vmin=0,
            vmax=vmax,
            cmap="viridis",
        )
        ax.set_title(title)
    fig.colorbar(im, ax=axes, shrink=0.8)
    return save_figure(fig, path)


register(
    Experiment(
        name="graph-scale",
        seed_id="000",
        seed_file=SEED_FILE,
        title="Heat flow on a 10^6-node random graph and a stiff 512^2 Fokker-Planck grid",
        config_cls=GraphScaleConfig,
        run=run,
    )
)

"""graph-heat: the Wasserstein heat equation (27) against the linear one (28) (seed 000 §3).

500 random points in the unit square, edges shorter than 0.1, one node at
(0.5, 0.5) holding almost all the mass, weights 1; both flows to t = 0.1.
Reproduces Figure 1 (densities, node radius proportional to rho_i) and
Figure 2 (entropy against time), checks Theorem 2.14 at every output time, and
checks that (28) is the linearisation of (27) at the uniform state.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ottokit._config import ConfigError, ValidatedConfig, device_param, param, seed_param
from ottokit.experiments._graph_sizes import check_random_graph
from ottokit.experiments._registry import Experiment, register
from ottokit.experiments._studies import FIGURE_ONLY, run_study
from ottokit.functionals import Entropy
from ottokit.graph import (
    Graph,
    LinearHeatFlow,
    Trajectory,
    WassersteinFlow,
    random_geometric,
    solve,
)
from ottokit.report.figures import draw_graph_density, new_figure, save_figure
from ottokit.report.result import Check, Comparison, Result

__all__ = [
    "GraphHeatConfig",
    "HeatStudy",
    "checks",
    "linearisation_errors",
    "run",
    "seed_initial_density",
    "study",
]

SEED_FILE = "000_7ec3962b43dcb9c8.txt"
CLAIM = (
    "On a graph, the Wasserstein heat equation (27), the W2 gradient flow of the entropy "
    "with the arithmetic edge mean, dissipates the Boltzmann entropy faster than the "
    "linear heat equation (28): dH/dt (Wasserstein) <= dH/dt (linear) <= 0 (Thm 2.14), "
    "so it spreads mass from a point faster (Fig. 1, Fig. 2); (28) is the linearisation "
    "of (27) at the uniform state."
)


@dataclass
class GraphHeatConfig(ValidatedConfig):
    """Settings of the seed's §3 experiment (the ``paper`` preset is the seed's exactly)."""

    n_nodes: int = param(500, doc="random points in the unit square (node 0 at the centre)", ge=2)
    radius: float = param(0.1, doc="edge between points closer than this", gt=0, le=1.5)
    floor: float = param(
        1e-10, doc="initial density on every node but the centre", gt=0, lt=1, example=1e-10
    )
    t_end: float = param(0.1, doc="end time of both flows (Fig. 1, Fig. 2)", gt=0)
    n_out: int = param(101, doc="output times on [0, t_end]", ge=2)
    snapshot_times: tuple[float, ...] = param(
        (0.0, 0.02, 0.06, 0.10), doc="times of the Fig. 1 snapshots, each an output time", ge=0
    )
    far_radius: float = param(
        0.2, doc='"far from the centre" distance for the spreading comparison', gt=0
    )
    t_long: float = param(3.0, doc="longer horizon for Thm 2.14 along the trajectories", gt=0)
    method: Literal["auto", "lsoda", "bdf", "adams", "rk45", "radau", "scipy-bdf"] = param(
        "auto", doc="ODE integrator (see ottokit.graph.solve)"
    )
    rtol: float = param(1e-8, doc="relative tolerance of the integrator", ge=1e-13, lt=1)
    atol: float = param(1e-14, doc="absolute tolerance of the integrator", gt=0, lt=1)
    linearisation_eps: tuple[float, ...] = param(
        (1e-1, 3e-2, 1e-2, 3e-3, 1e-3),
        doc="perturbation sizes of the linearisation check (27) -> (28)",
        gt=0,
        le=1,
        min_items=2,
    )
    seed: int = seed_param()
    device: str = device_param()

    def check(self) -> None:
        """The graph must have edges and fit in memory, the initial density must be a
        probability vector, and the snapshots must be output times."""
        check_random_graph(self.n_nodes, self.radius)
        if (self.n_nodes - 1) * self.floor >= 1:
            raise ConfigError.for_key(
                "floor", self.floor, f"< 1/(n_nodes - 1) = {1 / (self.n_nodes - 1):.3g}", 1e-10
            )
        grid = np.linspace(0.0, self.t_end, self.n_out)
        for t in self.snapshot_times:
            if np.min(np.abs(grid - t)) > 1e-9 * max(self.t_end, 1.0):
                raise ConfigError.for_key(
                    "snapshot_times",
                    self.snapshot_times,
                    f"output times: multiples of t_end/(n_out - 1) = "
                    f"{self.t_end / (self.n_out - 1):g} in [0, t_end]",
                    "0,0.02,0.06,0.1",
                )

    @classmethod
    def paper(cls) -> GraphHeatConfig:
        return cls()

    @classmethod
    def quick(cls) -> GraphHeatConfig:
        # the seed's setting is already cheap; quick only shortens the long horizon
        return cls(t_long=1.0)


def seed_initial_density(n: int, floor: float, centre: int = 0) -> np.ndarray:
    """``rho_c = 1 - (n - 1) floor`` at the centre node, ``floor`` elsewhere (seed §3.1)."""
    rho0 = np.full(n, floor)
    rho0[centre] = 1.0 - (n - 1) * floor
    return rho0


def linearisation_errors(
    g: Graph, eps: tuple[float, ...], seed: int
) -> tuple[np.ndarray, float, float]:
    """``||rhs_27 - rhs_28|| / ||rhs_28||`` at ``u (1 + eps delta)`` for each eps.

    Args:
        g: the graph.
        eps: the perturbation sizes.
        seed: seeds the random direction delta (mean 0, max |delta| = 1).

    Returns:
        The relative errors, the fitted order of ``||rhs_27 - rhs_28||`` in eps, and
        ``||J_27(u) + L||_max``, the distance of the Jacobian at the uniform state u from
        the linear operator.
    """
    rng = np.random.default_rng(seed)
    delta = rng.uniform(-1.0, 1.0, g.n)
    delta -= delta.mean()
    delta /= np.abs(delta).max()
    u = np.full(g.n, 1.0 / g.n)
    w, lin = WassersteinFlow(g, Entropy()), LinearHeatFlow(g)
    abs_err, rel_err = [], []
    for e in eps:
        rho = u * (1.0 + e * delta)
        diff = np.linalg.norm(w.rhs(rho) - lin.rhs(rho))
        abs_err.append(diff)
        rel_err.append(diff / np.linalg.norm(lin.rhs(rho)))
    order = float(np.polyfit(np.log(eps), np.log(abs_err), 1)[0])
    gap = abs(w.jacobian(u) + g.laplacian())
    jac_gap = float(gap.max()) if gap.nnz else 0.0
    return np.asarray(rel_err), order, jac_gap


def _mass_far(g: Graph, rho: np.ndarray, radius: float) -> np.ndarray:
    """Mass on nodes farther than ``radius`` from the centre node, per time."""
    far = np.linalg.norm(g.positions - g.positions[0], axis=1) > radius
    return rho[:, far].sum(axis=1)


def _dhdt_both(traj: Trajectory, w: WassersteinFlow, lin: LinearHeatFlow) -> np.ndarray:
    """dH/dt of both flows evaluated at the *same* states (the content of the seed's proof)."""
    return np.array([[-w.dissipation(r), -lin.dissipation(r)] for r in traj.rho])


@dataclass(frozen=True)
class HeatStudy:
    """Both heat flows from the seed's initial data, and Thm 2.14 along and beside them.

    Attributes:
        graph: nodes n, edges m, mean degree and connected components.
        times: the output times on the seed's grid (multiples of 0.01).
        entropy_wasserstein: H along the Wasserstein flow (27) at ``times``.
        entropy_linear: H along the linear flow (28).
        dHdt_wasserstein: dH/dt along (27).
        dHdt_linear: dH/dt along (28).
        thm_2_14_along_trajectories_t_le_t_end: dH/dt (27) <= dH/dt (28) <= 0 at every
            output time up to ``t_end``, each along its own trajectory.
        thm_2_14_same_state_all_outputs: the same at every state of either trajectory
            (what the seed's proof shows).
        thm_2_14_min_gap_same_state: the smallest dH/dt(28) - dH/dt(27) there.
        thm_2_14_trajectory_crossing_time: first output time where the trajectory-wise
            statement fails (None if never, up to ``t_long``).
        mass_far_wasserstein: mass farther than ``far_radius`` from the centre, (27).
        mass_far_linear: the same for (28).
        mass_drift: the larger relative mass drift of the two flows.
        min_density: the smaller minimum density of the two flows.
        solver: per flow, the integrator, its right-hand-side and Jacobian evaluations and
            wall time.
        linearisation_eps: perturbation sizes of the linearisation check.
        linearisation_rel_error: ||(27) - (28)|| / ||(28)|| at uniform (1 + eps delta).
        linearisation_order: observed order of ||(27) - (28)|| in eps.
        jacobian_at_uniform_minus_laplacian: max |J_27(u) + L|.
        states_compared: states at which Thm 2.14 was checked at the same state.
        long_horizon_same_state: the same-state inequality held at every state up to
            ``t_long``.
        t_end: end time of the flows.
        t_long: the longer horizon.
        n_out: output times on [0, t_end].
        far_radius: the "far from the centre" distance.
        g: the graph (figures only).
        flows: the trajectories of (27) and (28) to ``t_end`` (figures only).
        long_flows: the same to ``t_long`` (figures only).
        same_w: dH/dt of both flows at the states of (27), shape (times, 2) (figures only).
        snapshot_times: the times of Fig. 1 (figures only).
    """

    graph: dict[str, float]
    times: list[float]
    entropy_wasserstein: list[float]
    entropy_linear: list[float]
    dHdt_wasserstein: list[float]
    dHdt_linear: list[float]
    thm_2_14_along_trajectories_t_le_t_end: bool
    thm_2_14_same_state_all_outputs: bool
    thm_2_14_min_gap_same_state: float
    thm_2_14_trajectory_crossing_time: float | None
    mass_far_wasserstein: list[float]
    mass_far_linear: list[float]
    mass_drift: float
    min_density: float
    solver: dict[str, dict[str, Any]]
    linearisation_eps: list[float]
    linearisation_rel_error: list[float]
    linearisation_order: float
    jacobian_at_uniform_minus_laplacian: float
    states_compared: int
    long_horizon_same_state: bool
    t_end: float
    t_long: float
    n_out: int
    far_radius: float
    g: Graph = field(metadata=FIGURE_ONLY)
    flows: tuple[Trajectory, Trajectory] = field(metadata=FIGURE_ONLY)
    long_flows: tuple[Trajectory, Trajectory] = field(metadata=FIGURE_ONLY)
    same_w: np.ndarray = field(metadata=FIGURE_ONLY)
    snapshot_times: tuple[float, ...] = field(metadata=FIGURE_ONLY)

    def mass_far_at(self, t: float) -> tuple[float, float]:
        """Mass beyond ``far_radius`` at the output time nearest ``t``, (27) and (28)."""
        tw, tl = self.flows
        k = int(np.argmin(np.abs(tw.t - t)))
        return (
            float(_mass_far(self.g, tw.rho[k : k + 1], self.far_radius)[0]),
            float(_mass_far(self.g, tl.rho[k : k + 1], self.far_radius)[0]),
        )


def study(config: GraphHeatConfig) -> HeatStudy:
    """Run both flows from the seed's initial data and measure the seed's claims."""
    g = random_geometric(config.n_nodes, config.radius, seed=config.seed, center=(0.5, 0.5))
    rho0 = seed_initial_density(g.n, config.floor)
    wflow, lflow = WassersteinFlow(g, Entropy()), LinearHeatFlow(g)
    t_eval = np.linspace(0.0, config.t_end, config.n_out)
    opts = dict(method=config.method, rtol=config.rtol, atol=config.atol)
    tw = solve(wflow, rho0, (0.0, config.t_end), t_eval, **opts)
    tl = solve(lflow, rho0, (0.0, config.t_end), t_eval, **opts)

    # Theorem 2.14 as stated (along the two trajectories) and as proved (same state)
    dh_w, dh_l = -tw.dissipation, -tl.dissipation
    along = bool(np.all(dh_w <= dh_l + 1e-12 * np.abs(dh_l)) and np.all(dh_l <= 0))
    same_w, same_l = _dhdt_both(tw, wflow, lflow), _dhdt_both(tl, wflow, lflow)
    same = np.concatenate([same_w, same_l])
    pointwise = bool(np.all(same[:, 0] <= same[:, 1] * (1 - 1e-12)) and np.all(same[:, 1] <= 0))

    # a longer horizon: where does the trajectory-wise statement stop holding?
    t_long = np.linspace(0.0, config.t_long, 301)
    lw = solve(wflow, rho0, (0.0, config.t_long), t_long, **opts)
    ll = solve(lflow, rho0, (0.0, config.t_long), t_long, **opts)
    # first output time where dH/dt (27) > dH/dt (28) along the trajectories (fine grid first)
    fine = np.flatnonzero(dh_w > dh_l)
    coarse = np.flatnonzero(-lw.dissipation > -ll.dissipation)
    t_cross = (
        float(t_eval[fine[0]]) if fine.size else float(t_long[coarse[0]]) if coarse.size else None
    )
    long_same = _dhdt_both(lw, wflow, lflow)[1:]

    far_w = _mass_far(g, tw.rho, config.far_radius)
    far_l = _mass_far(g, tl.rho, config.far_radius)
    rel_err, lin_order, jac_gap = linearisation_errors(g, config.linearisation_eps, config.seed)
    seed_grid = np.isclose(np.mod(t_eval / 0.01 + 1e-9, 1.0), 0.0, atol=1e-6)
    return HeatStudy(
        graph={"n": g.n, "m": g.m, "mean_degree": g.mean_degree(), "components": g.n_components},
        times=t_eval[seed_grid].tolist(),
        entropy_wasserstein=tw.energy[seed_grid].tolist(),
        entropy_linear=tl.energy[seed_grid].tolist(),
        dHdt_wasserstein=dh_w[seed_grid].tolist(),
        dHdt_linear=dh_l[seed_grid].tolist(),
        thm_2_14_along_trajectories_t_le_t_end=along,
        thm_2_14_same_state_all_outputs=pointwise,
        thm_2_14_min_gap_same_state=float(np.min(same[:, 1] - same[:, 0])),
        thm_2_14_trajectory_crossing_time=t_cross,
        mass_far_wasserstein=far_w[seed_grid].tolist(),
        mass_far_linear=far_l[seed_grid].tolist(),
        mass_drift=max(tw.mass_drift, tl.mass_drift),
        min_density=min(tw.min_density, tl.min_density),
        solver={
            name: {
                "method": tr.method,
                "n_rhs": tr.n_rhs,
                "n_jac": tr.n_jac,
                "wall_time_s": tr.wall_time,
            }
            for name, tr in (("wasserstein", tw), ("linear", tl))
        },
        linearisation_eps=list(config.linearisation_eps),
        linearisation_rel_error=rel_err.tolist(),
        linearisation_order=lin_order,
        jacobian_at_uniform_minus_laplacian=jac_gap,
        states_compared=len(same),
        long_horizon_same_state=bool(np.all(long_same[:, 0] <= long_same[:, 1])),
        t_end=config.t_end,
        t_long=config.t_long,
        n_out=config.n_out,
        far_radius=config.far_radius,
        g=g,
        flows=(tw, tl),
        long_flows=(lw, ll),
        same_w=same_w,
        snapshot_times=config.snapshot_times,
    )


def checks(s: HeatStudy) -> list[Check]:
    """Thm 2.14 at the same state and along the trajectories, entropy decrease, spreading,
    the linearisation, and mass and positivity."""
    tw, tl = s.flows
    far_w, far_l = s.mass_far_at(s.t_end)
    decreasing = bool(np.all(np.diff(tw.energy) <= 1e-12) and np.all(np.diff(tl.energy) <= 1e-12))
    return [
        Check(
            "Thm 2.14 at the same state: dH/dt (27) <= dH/dt (28) <= 0 at every output state of "
            "both trajectories (what the seed's proof shows)",
            s.thm_2_14_same_state_all_outputs,
            f"{s.states_compared} states; smallest gap dH/dt(28) - dH/dt(27) = "
            f"{s.thm_2_14_min_gap_same_state:.3e}",
        ),
        Check(
            f"Thm 2.14 as stated, along the two trajectories, at every output time t <= "
            f"{s.t_end:g}",
            s.thm_2_14_along_trajectories_t_le_t_end,
            f"{s.n_out} output times; at t = {s.t_end:g}: dH/dt (27) = "
            f"{-tw.dissipation[-1]:.4f}, (28) = {-tl.dissipation[-1]:.4f}",
        ),
        Check(
            "Entropy decreases along both flows",
            decreasing,
            f"H(0) = {tw.energy[0]:.3g}; H({s.t_end:g}) = {tw.energy[-1]:.4f} (27), "
            f"{tl.energy[-1]:.4f} (28)",
        ),
        Check(
            "The Wasserstein flow spreads mass farther (Fig. 1): more mass beyond "
            f"{s.far_radius:g} of the centre at t = {s.t_end:g}",
            bool(far_w > far_l),
            f"{far_w:.4e} (27) vs {far_l:.4e} (28)",
        ),
        Check(
            "(28) is the linearisation of (27) at the uniform state: the Jacobian of (27) there "
            "is -L and the difference of right-hand sides is o(eps)",
            bool(s.linearisation_order > 1.8 and s.jacobian_at_uniform_minus_laplacian < 1e-10),
            f"observed order of ||(27) - (28)|| in eps: {s.linearisation_order:.2f} (3 expected: "
            "the arithmetic and logarithmic means agree to second order); max|J + L| = "
            f"{s.jacobian_at_uniform_minus_laplacian:.1e}",
        ),
        Check(
            "Mass conserved (relative drift <= 1e-10) and densities stay positive",
            bool(s.mass_drift <= 1e-10 and s.min_density > 0),
            f"drift {s.mass_drift:.1e}, min density {s.min_density:.2e}",
            kind="software",
        ),
    ]


def comparisons(s: HeatStudy) -> list[Comparison]:
    """The seed's qualitative statements beside our numbers."""
    tw, tl = s.flows
    far = [s.mass_far_at(t) for t in (0.02, 0.06, 0.10)]
    t_cross = s.thm_2_14_trajectory_crossing_time
    return [
        Comparison(
            f"H({s.t_end:g}): Wasserstein (27) / linear (28)",
            f"{tw.energy[-1]:.4f} / {tl.energy[-1]:.4f}",
            "(27) below (28) (Fig. 2)",
            "no numbers in the seed; our graph is a new draw of the seed's random graph",
        ),
        Comparison(
            f"mass beyond r = {s.far_radius:g} at t = 0.02 / 0.06 / 0.10, (27)",
            " / ".join(f"{w:.2e}" for w, _ in far),
            "larger than (28) (Fig. 1)",
        ),
        Comparison(
            f"mass beyond r = {s.far_radius:g} at t = 0.02 / 0.06 / 0.10, (28)",
            " / ".join(f"{lin:.2e}" for _, lin in far),
            None,
        ),
        Comparison(
            "integrator",
            f"{tw.method}: {tw.n_rhs} rhs, {tw.n_jac} Jacobians, {tw.wall_time:.3f} s",
            "odeint (LSODA), output step 0.01",
        ),
        Comparison(
            "first time dH/dt (27) > dH/dt (28) along the trajectories",
            "never" if t_cross is None else f"t = {t_cross:.3f}",
            "never (Thm 2.14 as stated, 'for any t >= 0')",
            "the proof compares both flows at the same state; along different trajectories the "
            "Wasserstein flow, being closer to equilibrium, eventually dissipates less",
        ),
    ]


def summary(s: HeatStudy) -> str:
    """What the flows did, and where the trajectory-wise statement stops holding."""
    tw, tl = s.flows
    g = s.graph
    t_cross = s.thm_2_14_trajectory_crossing_time
    crossing = (
        "did not cross on the horizon examined"
        if t_cross is None
        else f"crossed at t = {t_cross:.3f}, after which the Wasserstein flow, already nearer "
        "equilibrium, dissipates less entropy per unit time than the linear flow"
    )
    return (
        f"Graph: {g['n']} nodes, {g['m']} edges (mean degree {g['mean_degree']:.1f}, "
        f"{g['components']} component(s)). Over t <= {s.t_end:g} the Wasserstein heat flow "
        f"lowers the entropy faster than the linear one: H({s.t_end:g}) = "
        f"{tw.energy[-1]:.4f} against {tl.energy[-1]:.4f}, and at every one of the "
        f"{s.states_compared} states visited the Wasserstein dH/dt is below the linear one "
        f"(the inequality the seed's proof establishes, because the arithmetic mean exceeds "
        f"the logarithmic mean). The trajectory-wise reading of Thm 2.14 {crossing} "
        f"(horizon t <= {s.t_long:g}; the same-state inequality held at every state there: "
        f"{s.long_horizon_same_state}). The difference of right-hand sides near the uniform "
        f"state shrinks like eps^{s.linearisation_order:.2f}: (28) is the linearisation of "
        "(27), with no second-order term."
    )


def figures(s: HeatStudy, directory: Path) -> dict[str, Path]:
    """Figs. 1-2 of the seed, dH/dt along and beside the flows, the longer horizon, and the
    linearisation; caption -> file."""
    tw, tl = s.flows
    lw, ll = s.long_flows
    rel = np.asarray(s.linearisation_rel_error)
    return {
        "Figure 1 of the seed: densities at t = 0, 0.02, 0.06, 0.10; node radius proportional "
        "to rho_i (scale shared within a row); Wasserstein (27) left, linear (28) right": (
            _figure_snapshots(s.g, tw, tl, s.snapshot_times, directory / "fig1_snapshots.png")
        ),
        "Figure 2 of the seed: Boltzmann entropy H against time, both flows": _figure_entropy(
            tw, tl, directory / "fig2_entropy.png"
        ),
        "-dH/dt along each flow (left; the curves cross), and the gap of Thm 2.14 evaluated at "
        "the same state (right; positive throughout)": _figure_dhdt(
            tw, tl, s.same_w, directory / "dhdt.png"
        ),
        f"Longer horizon t <= {s.t_long:g}: -dH/dt along each trajectory (log scale)": (
            _figure_long(lw, ll, s.thm_2_14_trajectory_crossing_time, directory / "dhdt_long.png")
        ),
        "Linearisation: ||(27) - (28)|| / ||(28)|| at uniform(1 + eps delta)": (
            _figure_linearisation(s.linearisation_eps, rel, directory / "linearisation.png")
        ),
    }


def run(config: GraphHeatConfig, out: Path) -> Result:
    """Run both flows from the seed's initial data and check the seed's claims."""
    return run_study(sys.modules[__name__], config, out, experiment="graph-heat")


def _figure_snapshots(
    g: Graph, tw: Trajectory, tl: Trajectory, times: tuple[float, ...], path: Path
) -> Path:
    fig, axes = new_figure(len(times), 2, figsize=(7.0, 3.3 * len(times)), squeeze=False)
    for row, t in enumerate(times):
        k = int(np.argmin(np.abs(tw.t - t)))
        scale = max(tw.rho[k].max(), tl.rho[k].max())
        for col, (tr, name) in enumerate(((tw, "Wasserstein (27)"), (tl, "linear (28)"))):
            ax = axes[row, col]
            draw_graph_density(ax, g, tr.rho[k], scale=scale)
            ax.set_title(f"{name}, t = {tr.t[k]:.2f}", fontsize=9)
    return save_figure(fig, path)


def _figure_entropy(tw: Trajectory, tl: Trajectory, path: Path) -> Path:
    fig, ax = new_figure()
    ax.plot(tw.t, tw.energy, label="Wasserstein heat equation (27)")
    ax.plot(tl.t, tl.energy, "--", label="linear heat equation (28)")
    ax.set_xlabel("t")
    ax.set_ylabel(r"$H = \sum_i \rho_i \log \rho_i$")
    ax.legend()
    return save_figure(fig, path)


def _figure_dhdt(tw: Trajectory, tl: Trajectory, same_w: np.ndarray, path: Path) -> Path:
    fig, (a1, a2) = new_figure(1, 2, figsize=(9.5, 3.6))
    a1.semilogy(tw.t, tw.dissipation, label="along (27)")
    a1.semilogy(tl.t, tl.dissipation, "--", label="along (28)")
    a1.set_xlabel("t")
    a1.set_ylabel("-dH/dt")
    a1.legend()
    a2.semilogy(tw.t, same_w[:, 1] - same_w[:, 0])
    a2.set_xlabel("t")
    a2.set_ylabel("dH/dt(28) - dH/dt(27) at the state of (27)")
    return save_figure(fig, path)


def _figure_long(lw: Trajectory, ll: Trajectory, t_cross: float | None, path: Path) -> Path:
    fig, ax = new_figure()
    ax.semilogy(lw.t[1:], lw.dissipation[1:], label="-dH/dt along (27)")
    ax.semilogy(ll.t[1:], ll.dissipation[1:], "--", label="-dH/dt along (28)")
    if t_cross is not None:
        ax.axvline(t_cross, color="grey", lw=0.8, label=f"crossing t = {t_cross:.2f}")
    ax.set_xlabel("t")
    ax.legend()
    return save_figure(fig, path)


def _figure_linearisation(eps: list[float], rel: np.ndarray, path: Path) -> Path:
    fig, ax = new_figure()
    e = np.asarray(eps)
    ax.loglog(e, rel, "o-", label="||(27) - (28)|| / ||(28)||")
    ax.loglog(e, rel[0] * (e / e[0]) ** 2, ":", label="slope 2 (relative), i.e. O(eps^3)")
    ax.set_xlabel("eps")
    ax.legend()
    return save_figure(fig, path)


register(
    Experiment(
        name="graph-heat",
        seed_id="000",
        seed_file=SEED_FILE,
        title="Wasserstein vs linear heat equation on a random graph (§3, Figs. 1-2, Thm 2.14)",
        config_cls=GraphHeatConfig,
        run=run,
    )
)

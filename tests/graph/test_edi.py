"""Energy-dissipation equality on grids (seed 001 Thm 5.2): dF/dt measured along a grid
W2 flow of an f-divergence against the continuum dissipation -int rho |grad phi|^2,
with second-order convergence under grid refinement; closed forms; input validation."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from ottokit.functionals import FDivergence
from ottokit.graph import WassersteinFlow, from_edges, grid, random_geometric, solve
from ottokit.graph._edi import (
    EDIReport,
    continuum_dissipation,
    edi_check,
    energy_dissipation,
    grid_density,
    grid_geometry,
    observed_order,
)

F_NAMES = ["kl", "reverse_kl", "jsd", "chi2", "hellinger"]


def q_1d(x):
    """A smooth reference: a Gaussian bump on a constant, on [0, 1]."""
    return 1.0 + 3.0 * np.exp(-((x - 0.3) ** 2) / (2 * 0.08**2))


def rho0_1d(x):
    # rho0/q = 1 + cos(pi x)/2 has zero normal derivative: the no-flux condition holds at t = 0
    return q_1d(x) * (1.0 + 0.5 * np.cos(np.pi * x))


def problem_1d(f: str, n: int):
    g = grid(n, 1.0 / n)
    q = grid_density(q_1d, g)
    return WassersteinFlow(g, FDivergence(f, q)), grid_density(rho0_1d, g)


@pytest.mark.parametrize("f", F_NAMES)
def test_edi_1d_second_order(f):
    sizes = [25, 50, 100, 200]
    errs = []
    for n in sizes:
        flow, r0 = problem_1d(f, n)
        rep = edi_check(flow, r0, [0.0, 0.005, 0.02, 0.05])
        assert isinstance(rep, EDIReport)
        assert np.all(rep.dFdt < 0)
        # measured dF/dt is the discrete Otto dissipation up to the time differencing
        assert rep.rel_error_discrete.max() < 1e-5
        errs.append(rep.max_rel_error)
    errs = np.array(errs)
    detail = f"EDI {f}: n = {sizes}, max rel error = {errs}"
    assert errs[-1] <= 1e-3, detail
    assert np.all(np.diff(errs) < 0), detail
    order = observed_order(1.0 / np.array(sizes), errs)
    assert 1.8 < order < 2.2, order


def test_edi_2d_jsd():
    def q2(x, y):
        return 1.0 + 2.0 * np.exp(-((x - 0.4) ** 2 + (y - 0.6) ** 2) / (2 * 0.2**2))

    errs, sizes = [], [16, 32, 64]
    for n in sizes:
        g = grid((n, n), 1.0 / n)
        q = grid_density(q2, g)
        r0 = grid_density(
            lambda x, y: q2(x, y) * (1 + 0.5 * np.cos(np.pi * x) * np.cos(np.pi * y)), g
        )
        flow = WassersteinFlow(g, FDivergence("jsd", q))
        rep = edi_check(flow, r0, [0.0, 0.01, 0.03], method="radau")
        assert rep.shape == (n, n)
        assert rep.rel_error_discrete.max() < 1e-5
        errs.append(rep.max_rel_error)
    assert np.all(np.diff(errs) < 0), f"EDI 2-D jsd: n = {sizes}, max rel error = {errs}"
    assert errs[-1] <= 1e-3
    assert observed_order(1.0 / np.array(sizes), errs) > 1.7


def test_energy_dissipation_on_plain_trajectory_matches_solver_dissipation():
    flow, r0 = problem_1d("kl", 60)
    t = np.linspace(0.0, 0.02, 201)
    traj = solve(flow, r0, (0.0, 0.02), t, rtol=1e-11, atol=1e-15)
    rep = energy_dissipation(flow, traj, at=np.arange(1, 200))
    # the trajectory's own dissipation is -dE/dt of the discrete flow
    np.testing.assert_allclose(rep.dissipation_discrete, traj.dissipation[1:200], rtol=1e-12)
    # three-point differences with dt = 1e-4 on a flow of time scale ~0.01: O(dt^2) error
    assert rep.rel_error_discrete.max() < 1e-3
    np.testing.assert_allclose(rep.energy, traj.energy[1:200], rtol=1e-12)


def test_continuum_dissipation_closed_form():
    # chi2 with q uniform and rho/q = 1 + a cos(pi x): phi = 2 a cos(pi x) and
    # int rho |phi'|^2 = int (1 + a cos) 4 a^2 pi^2 sin^2 = 2 a^2 pi^2 exactly
    a = 0.4
    errs = []
    for n in [20, 40, 80]:
        g = grid(n, 1.0 / n)
        q = np.full(n, 1.0 / n)
        flow = WassersteinFlow(g, FDivergence("chi2", q))
        m = grid_density(lambda x: 1.0 + a * np.cos(np.pi * x), g)
        errs.append(abs(continuum_dissipation(flow, m) / (2 * a**2 * np.pi**2) - 1.0))
    assert errs[-1] < 1e-3
    assert 1.8 < observed_order([1 / 20, 1 / 40, 1 / 80], errs) < 2.3


def test_grid_geometry_and_density():
    g = grid((4, 6), (0.5, 0.25))
    geo = grid_geometry(g)
    assert geo.shape == (4, 6)
    np.testing.assert_allclose(geo.spacing, (0.5, 0.25))
    np.testing.assert_allclose(geo.lower, (0.0, 0.0))
    np.testing.assert_allclose(geo.upper, (2.0, 1.5))
    np.testing.assert_allclose(geo.edges(1), np.linspace(0, 1.5, 7))
    m = grid_density(lambda x, y: x + 2 * y, g)
    assert m.sum() == pytest.approx(1.0)
    pos = g.positions
    expected = pos[:, 0] + 2 * pos[:, 1]
    np.testing.assert_allclose(m, expected / expected.sum())


def test_grid_validation_errors():
    with pytest.raises(ValueError, match="not a grid|no node positions"):
        grid_geometry(from_edges([(0, 1), (1, 2)]))
    with pytest.raises(ValueError, match="not equally spaced|full lattice"):
        grid_geometry(random_geometric(30, 0.4, seed=0))
    with pytest.raises(ValueError, match="nearest-neighbour"):
        grid_geometry(grid(5, 0.2, periodic=True))
    with pytest.raises(TypeError):
        grid_geometry(np.zeros(3))
    g = grid(8, 0.125)
    with pytest.raises(ValueError, match="one value per grid node"):
        grid_density(lambda x: np.ones(5), g)
    with pytest.raises(ValueError, match="negative"):
        grid_density(lambda x: x - 0.5, g)
    with pytest.raises(ValueError, match="non-finite"):
        grid_density(lambda x: np.where(x > 0.5, np.inf, 1.0), g)
    with pytest.raises(ValueError, match="zero on every node"):
        grid_density(lambda x: 0.0 * x, g)
    with pytest.raises(TypeError):
        grid_density(np.ones(8), g)


def test_edi_validation_errors():
    flow, r0 = problem_1d("kl", 20)
    # q not a density: sums to 2
    g = flow.graph
    bad = WassersteinFlow(g, FDivergence("kl", 2 * flow.functional.q))
    with pytest.raises(ValueError, match="sum 1"):
        edi_check(bad, r0, [0.0, 0.01])
    # q negative or zero: FDivergence rejects it
    with pytest.raises(ValueError, match="strictly positive"):
        FDivergence("kl", np.r_[0.0, np.full(19, 1 / 19)])
    # grid and density of different shapes
    with pytest.raises(ValueError, match="vector of length 20"):
        edi_check(flow, np.full(21, 1 / 21), [0.0, 0.01])
    other_flow, other_r0 = problem_1d("kl", 30)
    traj = solve(other_flow, other_r0, (0, 0.01), [0, 0.005, 0.01])
    with pytest.raises(ValueError, match="30 nodes but the flow's grid has 20"):
        energy_dissipation(flow, traj)
    with pytest.raises(ValueError, match="at least 3 output times"):
        energy_dissipation(flow, solve(flow, r0, (0, 0.01), [0, 0.01]))
    with pytest.raises(TypeError, match="WassersteinFlow"):
        energy_dissipation("flow", traj)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="dt must be a positive number"):
        edi_check(flow, r0, [0.0, 0.01], dt=-1.0)
    with pytest.raises(ValueError, match="strictly increasing"):
        edi_check(flow, r0, [0.02, 0.01])
    with pytest.raises(ValueError, match="apart"):
        edi_check(flow, r0, [0.01, 0.01 + 1e-7], dt=1e-6)
    with pytest.raises(ValueError, match=">= 0"):
        edi_check(flow, r0, [-0.01, 0.01])
    # a Wasserstein flow on a non-grid graph
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rg = random_geometric(20, 0.5, seed=3)
    q = np.full(20, 0.05)
    with pytest.raises(ValueError, match="grid"):
        edi_check(WassersteinFlow(rg, FDivergence("kl", q)), q, [0.0, 0.01])
    with pytest.raises(ValueError, match="same length"):
        observed_order([0.1], [0.1])
    with pytest.raises(ValueError, match="positive"):
        observed_order([0.1, 0.2], [0.0, 1.0])


def _grid_with(g, *, weights=None, positions=None):
    """The graph ``g`` rebuilt with its edges and one of weights or positions replaced."""
    return from_edges(
        g.edges,
        g.weights if weights is None else weights,
        n=g.n,
        positions=g.positions if positions is None else positions,
    )


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (
            lambda: from_edges([(0, 1), (0, 2)], positions=[[0.5, 0.5], [1.5, 0.5], [0.5, 1.5]]),
            r"do not form a full lattice \(2, 2\)",
        ),
        (
            lambda: _grid_with(grid((3, 2), 0.5), positions=grid((3, 2), 0.5).positions[::-1]),
            r"not in C order on the lattice \(3, 2\)",
        ),
        (
            lambda: _grid_with(grid((3, 2), 0.5), weights=2.0 * grid((3, 2), 0.5).weights),
            "weights must be 1/h.2 along each axis",
        ),
    ],
    ids=["three-of-four-nodes", "reversed-nodes", "doubled-weights"],
)
def test_grid_geometry_refuses_a_graph_that_is_almost_a_grid(build, match):
    with pytest.raises(ValueError, match=match):
        grid_geometry(build())


def test_energy_dissipation_refuses_an_index_outside_the_output_times():
    flow, r0 = problem_1d("kl", 20)
    traj = solve(flow, r0, (0, 0.01), [0, 0.005, 0.01])
    assert energy_dissipation(flow, traj, at=[-1]).t[0] == pytest.approx(0.01, rel=1e-15)
    for at in ([3], [-4], []):
        with pytest.raises(ValueError, match=r"at must index traj.t \(size 3\)"):
            energy_dissipation(flow, traj, at=at)

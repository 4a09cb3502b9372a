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
    GridGeometry,
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
    with pytest.raises(ValueError, match=r"of shape \(3, 30\) but the flow's grid has 20 nodes"):
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


def _linear_ratio_masses(g, slopes):
    """Masses with rho/q = 1 + sum_k b_k (x_k - centre_k) for q uniform on the grid ``g``."""
    geo = grid_geometry(g)
    centre = [0.5 * (lo + hi) for lo, hi in zip(geo.lower, geo.upper, strict=True)]
    return grid_density(
        lambda *xs: 1.0 + sum(b * (x - c) for b, x, c in zip(slopes, xs, centre, strict=True)), g
    )


@pytest.mark.parametrize(
    ("shape", "spacing", "slopes"),
    [
        ((3,), 1 / 3, (0.6,)),
        ((3,), 1 / 3, (3.0,)),
        ((1, 5), (0.7, 0.2), (0.0, 0.5)),
        ((4, 3), (0.25, 1 / 3), (0.3, -0.4)),
    ],
    ids=["three-nodes", "an-empty-cell", "one-layer-2d", "4x3"],
)
def test_continuum_dissipation_of_a_linear_potential_is_exact_on_every_axis(shape, spacing, slopes):
    """chi2 with q uniform and rho/q linear: phi = 2 (rho/q - 1) is linear with gradient 2 b, so
    int rho |grad phi|^2 = 4 |b|^2 exactly (mass 1); the second-order differences are exact from
    3 nodes per axis on, and an axis of 1 node adds nothing. chi2 takes no logarithm: a cell
    with rho = 0 (rho/q = 1 - 3 * 1/3) is allowed."""
    g = grid(shape, spacing)
    flow = WassersteinFlow(g, FDivergence("chi2", np.full(g.n, 1.0 / g.n)))
    m = _linear_ratio_masses(g, slopes)
    expected = 4.0 * sum(b**2 for b in slopes)
    assert continuum_dissipation(flow, m) == pytest.approx(expected, rel=1e-12)


def test_continuum_dissipation_validates_the_masses():
    flow, r0 = problem_1d("kl", 20)
    with pytest.raises(ValueError, match="masses must sum to 1"):
        continuum_dissipation(flow, 2.0 * r0)
    with pytest.raises(ValueError, match=r"masses must be strictly positive .* masses\[3\] = 0"):
        continuum_dissipation(flow, np.r_[r0[:3], 0.0, r0[4:] + r0[3] / 16])


def test_energy_dissipation_with_the_logarithmic_mean_is_the_solver_dissipation():
    """The discrete Otto dissipation uses the flow's own edge mean: along a logarithmic-mean flow
    it is the solver's -dE/dt, and all output times are reported by default."""
    g = grid(30, 1.0 / 30)
    flow = WassersteinFlow(g, FDivergence("kl", grid_density(q_1d, g)), mean="logarithmic")
    traj = solve(flow, grid_density(rho0_1d, g), (0.0, 0.004), np.linspace(0, 0.004, 9))
    rep = energy_dissipation(flow, traj)
    np.testing.assert_allclose(rep.t, traj.t, rtol=0, atol=0)
    np.testing.assert_allclose(rep.dissipation_discrete, traj.dissipation, rtol=1e-12)
    cont = [continuum_dissipation(flow, r) for r in traj.rho]
    np.testing.assert_allclose(rep.dissipation, cont, rtol=1e-12)
    np.testing.assert_allclose(
        rep.rel_error, np.abs(rep.dFdt + rep.dissipation) / rep.dissipation, rtol=1e-12
    )
    assert rep.spacing == (1.0 / 30,) and rep.h == 1.0 / 30
    assert energy_dissipation(flow, traj, at=[-9]).t[0] == 0.0
    # whole-number floats (e.g. from linspace) are indices too
    np.testing.assert_allclose(energy_dissipation(flow, traj, at=np.linspace(0, 8, 3)).t,
                               traj.t[[0, 4, 8]], rtol=0, atol=0)


def test_energy_dissipation_at_equilibrium_and_on_a_grid_too_thin_for_a_gradient():
    """At rho = q both dissipations and dF/dt vanish (0/0: NaN relative errors, no warning); on
    2 nodes the continuum gradient is undefined (0) while the discrete flow dissipates."""
    g = grid(20, 0.05)
    q = grid_density(q_1d, g)
    flow = WassersteinFlow(g, FDivergence("kl", q))
    rep = energy_dissipation(flow, solve(flow, q, (0.0, 0.01), [0.0, 0.005, 0.01]))
    for zero in (rep.energy, rep.dFdt, rep.dissipation, rep.dissipation_discrete):
        np.testing.assert_allclose(zero, 0.0, rtol=0, atol=1e-15)
    assert np.all(np.isnan(rep.rel_error)) and np.all(np.isnan(rep.rel_error_discrete))
    g2 = grid(2, 0.5)
    flow2 = WassersteinFlow(g2, FDivergence("kl", np.array([0.5, 0.5])))
    traj = solve(flow2, np.array([0.8, 0.2]), (0.0, 0.002), [0.0, 0.001, 0.002])
    rep2 = energy_dissipation(flow2, traj)
    assert np.all(rep2.dissipation == 0.0) and np.all(np.isinf(rep2.rel_error))
    assert np.all(rep2.dFdt < 0) and np.all(rep2.rel_error_discrete < 1e-3)


def test_energy_dissipation_names_its_arguments():
    flow, r0 = problem_1d("kl", 20)
    traj = solve(flow, r0, (0, 0.01), [0, 0.005, 0.01])
    with pytest.raises(TypeError, match="flow must be an ottokit.graph.WassersteinFlow"):
        energy_dissipation("flow", traj)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="traj must be an ottokit.graph.Trajectory"):
        energy_dissipation(flow, "traj")  # type: ignore[arg-type]


def test_edi_check_differences_the_energy_on_triplets_around_each_time():
    """dF/dt at t = 0 is the one-sided (-3 F(0) + 4 F(dt) - F(2 dt)) / (2 dt), elsewhere the
    centred (F(t + dt) - F(t - dt)) / (2 dt), t = dt included, on the trajectory solved with the
    requested method and tolerances (loose here, so that another solve would differ)."""
    flow, r0 = problem_1d("kl", 20)
    dt, opts = 1e-3, {"method": "rk45", "rtol": 1e-6, "atol": 1e-4}
    rep = edi_check(flow, r0, [0.0, 0.004, 0.01], dt=dt, **opts)
    pts = [0.0, dt, 2 * dt, 0.004 - dt, 0.004, 0.004 + dt, 0.01 - dt, 0.01, 0.01 + dt]
    e = solve(flow, r0, (0.0, pts[-1]), pts, **opts).energy
    np.testing.assert_allclose(rep.t, [0.0, 0.004, 0.01], rtol=0, atol=0)
    expected = [(-3 * e[0] + 4 * e[1] - e[2]) / (2 * dt), (e[5] - e[3]) / (2 * dt)]
    expected.append((e[8] - e[6]) / (2 * dt))
    np.testing.assert_allclose(rep.dFdt, expected, rtol=1e-10)
    np.testing.assert_allclose(rep.energy, e[[0, 4, 7]], rtol=1e-12)
    at_dt = edi_check(flow, r0, [dt], dt=dt, **opts)
    e = solve(flow, r0, (0.0, 2 * dt), [0.0, dt, 2 * dt], **opts).energy
    assert at_dt.dFdt[0] == pytest.approx((e[2] - e[0]) / (2 * dt), rel=1e-10)


def test_edi_check_at_a_single_time_differences_over_1e4_of_unit_time():
    """One time t: dt defaults to 1e-4, and the report is the centred difference at t."""
    flow, r0 = problem_1d("kl", 20)
    rep = edi_check(flow, r0, [0.01])
    pts = [0.01 - 1e-4, 0.01, 0.01 + 1e-4]
    e = solve(flow, r0, (0.0, pts[-1]), pts, method="lsoda", rtol=1e-11, atol=1e-15).energy
    assert rep.t.tolist() == [0.01]
    assert rep.dFdt[0] == pytest.approx((e[2] - e[0]) / 2e-4, rel=1e-9)
    assert rep.rel_error_discrete[0] < 1e-5


def test_edi_check_spaces_the_triplets_by_the_time_span():
    """The default dt is 1e-4 of times[-1] - times[0]; the triplets of two times may not touch:
    times exactly 2 dt apart are refused, 2.5 dt apart accepted."""
    flow, r0 = problem_1d("kl", 20)
    with pytest.raises(ValueError, match=r"^times must be more than 2 dt = 0\.0001 apart$"):
        edi_check(flow, r0, [0.5, 0.5 + 1e-5, 1.0])
    with pytest.raises(ValueError, match=r"more than 2 dt = 0\.5 apart"):
        edi_check(flow, r0, [0.25, 0.75], dt=0.25)
    rep = edi_check(flow, r0, [0.002, 0.007], dt=0.002)
    assert rep.t.tolist() == [0.002, 0.007] and np.all(rep.dFdt < 0)


def test_edi_check_names_what_is_wrong_with_its_arguments():
    flow, r0 = problem_1d("kl", 20)
    with pytest.raises(ValueError, match=r"^times must be strictly increasing$"):
        edi_check(flow, r0, [0.01, 0.01])
    with pytest.raises(ValueError, match="times must be one or more numbers >= 0, got"):
        edi_check(flow, r0, [])
    with pytest.raises(ValueError, match=r"times must be finite \(no NaN or inf\)"):
        edi_check(flow, r0, [0.0, np.nan])
    with pytest.raises(TypeError, match="times must be an array of real numbers"):
        edi_check(flow, r0, "0.01")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="dt must be a positive number, got -1; try 1e-4 of the"):
        edi_check(flow, r0, [0.0, 0.01], dt=-1.0)
    with pytest.raises(ValueError, match="unknown method 'euler'"):
        edi_check(flow, r0, [0.0, 0.01], method="euler")  # type: ignore[arg-type]
    zero = np.r_[r0[:5], 0.0, r0[6:] + r0[5] / 14]
    with pytest.raises(ValueError, match=r"rho0 must be strictly positive .* rho0\[5\] = 0"):
        edi_check(flow, zero, [0.0, 0.01])


@pytest.mark.parametrize(
    ("centre", "spacing"), [(0.35, 0.7), (0.0, 1.0), (-0.5, 1.0)], ids=["positive", "zero", "neg"]
)
def test_grid_geometry_of_an_axis_with_one_node(centre, spacing):
    """A single node at c > 0 is the centre of a cell [0, 2c]; at c <= 0 the cell has width 1."""
    g = from_edges([(0, 1), (1, 2)], [25.0, 25.0], positions=[[centre, y] for y in (0.1, 0.3, 0.5)])
    geo = grid_geometry(g)
    assert geo.shape == (1, 3)
    np.testing.assert_allclose(geo.spacing, (spacing, 0.2), rtol=1e-12)
    np.testing.assert_allclose(geo.lower, (centre - spacing / 2, 0.0), rtol=0, atol=1e-15)
    cell = [centre - spacing / 2, centre + spacing / 2]
    np.testing.assert_allclose(geo.edges(), cell, rtol=1e-12)


def test_grid_geometry_tolerates_rounded_positions_relative_to_the_spacing():
    """Positions stored with 11 significant digits are still the grid (h = 1/7); a node moved by
    3e-7 h is not, on a fine (h = 0.01) as on a coarse (h = 100) grid."""
    g = grid(12, 1 / 7)
    rounded = np.array([[float(f"{x:.11g}")] for x in g.positions[:, 0]])
    geo = grid_geometry(_grid_with(g, positions=rounded))
    assert geo.shape == (12,) and geo.spacing[0] == pytest.approx(1 / 7, rel=1e-9)
    for h in (0.01, 100.0):
        g = grid(10, h)
        moved = g.positions.copy()
        moved[4, 0] += 3e-7 * h
        with pytest.raises(ValueError, match="along axis 0 are not equally spaced"):
            grid_geometry(_grid_with(g, positions=moved))
    with pytest.raises(ValueError, match="along axis 0 are not equally spaced"):
        grid_geometry(from_edges([(0, 1), (1, 2)], positions=[[0.0], [1.0], [3.0]]))


def test_grid_geometry_is_translation_invariant():
    """A grid moved by (1, -2) has the same shape and spacing, its lower corner moved along;
    an axis of two nodes takes its spacing from their distance, not from the origin."""
    g = grid((2, 3), (0.5, 0.25))
    geo = grid_geometry(_grid_with(g, positions=g.positions + [1.0, -2.0]))
    assert geo.shape == (2, 3)
    np.testing.assert_allclose(geo.spacing, (0.5, 0.25), rtol=1e-12)
    np.testing.assert_allclose(geo.lower, (1.0, -2.0), rtol=1e-12)


@pytest.mark.parametrize(
    ("h", "shift", "perm"),
    [(1e-9, 0.0, [2, 1, 0]), (1.0, 1e6, [2, 1, 0]), (1.0, 0.0, [1, 0, 2])],
    ids=["fine-reversed", "far-reversed", "neighbours-swapped"],
)
def test_grid_geometry_refuses_nodes_out_of_order_at_any_scale_and_place(h, shift, perm):
    """The order check is absolute in units of h: neither a tiny spacing, nor coordinates far
    from the origin, nor a swap of two neighbours (off by exactly h) lets a permutation pass."""
    g = grid(3, h)
    assert grid_geometry(_grid_with(g, positions=g.positions + shift)).shape == (3,)
    with pytest.raises(ValueError, match=r"not in C order on the lattice \(3,\)"):
        grid_geometry(_grid_with(g, positions=g.positions[perm] + shift))


def test_grid_geometry_refuses_wrong_edges_or_weights():
    with pytest.raises(ValueError, match=r"not the nearest-neighbour edges .* \(2 edges, expected"):
        grid_geometry(from_edges([(0, 1), (0, 2)], positions=grid(3, 1.0).positions))
    with pytest.raises(ValueError, match=r"of a \(5,\) grid \(5 edges, expected 4\); build it"):
        grid_geometry(grid(5, 0.2, periodic=True))
    g = grid(4, 2.0)
    with pytest.raises(ValueError, match="weights must be 1/h.2"):
        grid_geometry(_grid_with(g, weights=g.weights * (1 + 1e-6)))
    g = grid(4, 1e4)
    with pytest.raises(ValueError, match="weights must be 1/h.2"):
        grid_geometry(_grid_with(g, weights=2 * g.weights))
    with pytest.raises(TypeError, match="g must be an ottokit.graph.Graph"):
        grid_geometry(np.zeros(3))
    with pytest.raises(ValueError, match=r"spacing\) \(non-periodic\)$"):
        grid_geometry(from_edges([(0, 1), (1, 2)]))


def test_grid_geometry_coordinates_need_one_entry_per_axis():
    geo = GridGeometry((3,), (0.1, 0.2), (0.0,))
    with pytest.raises(ValueError, match="zip"):
        geo.coordinates()


def test_grid_density_is_scale_invariant_and_float64():
    """The masses are fn's values normalised: a factor (1e-3) does not change them, and a float32
    fn gives float64 masses equal to the float64 ones to float32 precision."""
    g = grid((5, 4), (0.2, 0.25))

    def fn(x, y):
        return 1.0 + x * y

    m = grid_density(fn, g)
    np.testing.assert_allclose(grid_density(lambda x, y: 1e-3 * fn(x, y), g), m, rtol=1e-14)
    m32 = grid_density(lambda x, y: fn(x, y).astype(np.float32), g)
    assert m32.dtype == np.float64
    np.testing.assert_allclose(m32, m, rtol=1e-6)
    with pytest.raises(TypeError, match="fn must be a callable density, got ndarray"):
        grid_density(np.ones(20), g)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"^fn returned non-finite values; the density must be"):
        grid_density(lambda x, y: np.full_like(x, np.inf), g)
    with pytest.raises(ValueError, match=r"^fn is zero on every node; it has no mass to normalise"):
        grid_density(lambda x, y: 0.0 * x, g)


def test_observed_order_of_a_power_law_is_its_exponent():
    h = np.array([0.1, 0.05, 0.025, 0.0125])
    assert observed_order(h, 3.0 * h**2.5) == pytest.approx(2.5, rel=1e-12)
    assert observed_order(h, 0.2 / h) == pytest.approx(-1.0, rel=1e-12)
    with pytest.raises(ValueError, match=r"h must be finite \(no NaN or inf\)"):
        observed_order([0.1, np.nan], [1.0, 2.0])
    with pytest.raises(ValueError, match=r"err must be finite \(no NaN or inf\)"):
        observed_order([0.1, 0.2], [1.0, np.inf])
    with pytest.raises(ValueError, match=r"^h and err must be positive to fit an order on a log"):
        observed_order([0.0, 0.1], [1.0, 2.0])

"""Integrating graph flows (seed 000 §2.3, §3): conservation laws along
trajectories, the energy identity in time, agreement between integrators and
with the matrix exponential, spectral decay rates (2 lambda_2; 4/d on the
hypercube), Gibbs and per-component equilibria, and loud failure."""

from __future__ import annotations

import itertools
import time
import warnings

import numpy as np
import pytest
from conftest import graphs_and_densities, random_connected_graph, random_density, seed_like_initial
from hypothesis import given, settings
from scipy.integrate import odeint, solve_ivp, trapezoid
from scipy.linalg import expm
from scipy.optimize import brentq
from scipy.special import kl_div

from ottokit._memory import MemoryEstimateError
from ottokit.functionals import Entropy, FDivergence, PorousMedium, PotentialEnergy
from ottokit.graph import (
    MASS_TOL,
    METHODS,
    DisconnectedGraphWarning,
    LinearHeatFlow,
    SolverError,
    WassersteinFlow,
    from_edges,
    grid,
    random_geometric,
    solve,
)

CONCRETE_METHODS = [m for m in METHODS if m != "auto"]


def hypercube(d: int):
    """{0,1}^d with omega = 1/d: Laplacian spectrum 2k/d, so lambda_2 = 2/d."""
    n = 2**d
    edges = [(a, a ^ (1 << k)) for a in range(n) for k in range(d) if a < a ^ (1 << k)]
    return from_edges(edges, np.full(len(edges), 1.0 / d), n=n)


def relative_entropy_to_uniform(rho: np.ndarray) -> np.ndarray:
    """H(rho) - H(1/n) = sum rho log(n rho), as a sum of non-negative terms (no cancellation)."""
    n = rho.shape[-1]
    return kl_div(rho, 1.0 / n).sum(axis=-1)


def late_time_rate(t: np.ndarray, excess: np.ndarray) -> float:
    """Minus the slope of log(H - H*) fitted by least squares."""
    return -float(np.polyfit(t, np.log(excess), 1)[0])


class NaNOnceSpread(LinearHeatFlow):
    """The linear heat flow, except that its rhs is NaN once node 0 has lost 30% of its mass."""

    def rhs(self, rho):
        out = super().rhs(rho)
        return np.full_like(out, np.nan) if rho[0] < 0.7 else out


@pytest.mark.parametrize("method", METHODS)
def test_every_method_conserves_mass_and_positivity_from_the_seed_data(method, rgg30):
    g = rgg30
    rho0 = seed_like_initial(g.n)
    t_eval = np.linspace(0.0, 0.1, 11)
    flow = WassersteinFlow(g, Entropy(), "arithmetic")
    tr = solve(flow, rho0, (0.0, 0.1), t_eval, method=method, rtol=1e-7, atol=1e-13)
    assert tr.converged
    assert tr.method == ("lsoda" if method == "auto" else method)
    np.testing.assert_array_equal(tr.t, t_eval)
    assert tr.rho.shape == (11, g.n)
    np.testing.assert_allclose(tr.rho[0], rho0, rtol=1e-14, atol=0)
    assert np.abs(tr.rho.sum(axis=1) - 1.0).max() <= 1e-10
    assert tr.mass_drift <= 1e-10
    assert tr.rho.min() > 0
    assert tr.min_density == tr.rho.min()
    assert np.all(np.diff(tr.energy) <= 1e-12)
    assert tr.n_rhs > 0


@settings(max_examples=12, deadline=None)
@given(gd=graphs_and_densities(max_n=16, max_log10_ratio=8.0))
def test_auto_conserves_mass_and_positivity_on_random_graphs(gd):
    g, rho0 = gd
    flow = WassersteinFlow(g, Entropy(), "arithmetic")
    t1 = 1.0 / g.degree.max()
    tr = solve(flow, rho0, (0.0, t1), method="auto")
    assert np.abs(tr.rho.sum(axis=1) - 1.0).max() <= 1e-10
    assert tr.rho.min() > 0
    # the entropy never increases along the flow (up to the tolerance of the integrator)
    assert np.all(np.diff(tr.energy) <= 1e-6 * np.abs(tr.energy).max())


FLOWS = {
    "entropy-arithmetic": lambda g, v, q: WassersteinFlow(g, Entropy(), "arithmetic"),
    "free-energy-logarithmic": lambda g, v, q: WassersteinFlow(
        g, Entropy() + PotentialEnergy(v), "logarithmic"
    ),
    "porous-2-arithmetic": lambda g, v, q: WassersteinFlow(g, PorousMedium(2.0), "arithmetic"),
    "kl-arithmetic": lambda g, v, q: WassersteinFlow(g, FDivergence("kl", q), "arithmetic"),
    "linear-heat": lambda g, v, q: LinearHeatFlow(g),
}


@pytest.mark.parametrize("name", FLOWS)
def test_energy_decreases_and_dissipation_integrates_to_the_energy_drop(name, rgg30):
    """E(0) - E(T) = int_0^T D(t) dt, with D = -dE/dt >= 0 (trapezoid on 401 outputs).

    The outputs crowd quadratically towards t = 0, where D falls fastest.
    """
    g = rgg30
    v = np.random.default_rng(2).uniform(-1.0, 1.0, g.n)
    q = random_density(g.n, seed=3, log10_ratio=1.0)
    flow = FLOWS[name](g, v, q)
    rho0 = random_density(g.n, seed=4, log10_ratio=3.0)
    t = 0.4 * np.linspace(0.0, 1.0, 401) ** 2
    tr = solve(flow, rho0, (0.0, 0.4), t, rtol=1e-10, atol=1e-14)
    drop = tr.energy[0] - tr.energy[-1]
    assert drop > 0
    assert np.all(np.diff(tr.energy) <= 1e-12 * np.abs(tr.energy).max())
    assert np.all(tr.dissipation >= 0)
    assert abs(trapezoid(tr.dissipation, tr.t) - drop) <= 1e-3 * drop


def test_all_methods_agree_on_the_end_state(rgg30):
    g = rgg30
    rho0 = random_density(g.n, seed=5, log10_ratio=4.0)
    flow = WassersteinFlow(g, Entropy(), "arithmetic")
    ends = {
        m: solve(flow, rho0, (0.0, 0.3), method=m, rtol=1e-9, atol=1e-14).final
        for m in CONCRETE_METHODS
    }
    ref = ends["lsoda"]
    for m, end in ends.items():
        assert np.abs(end - ref).max() <= 1e-5 * np.abs(ref).max(), m


@pytest.mark.parametrize("method", CONCRETE_METHODS)
def test_linear_and_log_mean_entropy_flows_follow_the_matrix_exponential(method, rgg30):
    """rho(t) = exp(-t L) rho0 for eq. (28) and, by Maas' identity, for the log-mean W flow."""
    g = rgg30
    rho0 = random_density(g.n, seed=6, log10_ratio=3.0)
    t = np.array([0.0, 0.05, 0.2, 0.5])
    lap = g.laplacian().toarray()
    exact = np.stack([expm(-tk * lap) @ rho0 for tk in t])
    for flow in (LinearHeatFlow(g), WassersteinFlow(g, Entropy(), "logarithmic")):
        tr = solve(flow, rho0, (0.0, 0.5), t, method=method, rtol=1e-9, atol=1e-14)
        assert np.abs(tr.rho - exact).max() <= 1e-6 * np.abs(exact).max(), flow


@pytest.mark.parametrize("kind", ["linear", "logarithmic", "arithmetic"])
def test_relative_entropy_decays_at_twice_the_spectral_gap(kind):
    g = random_geometric(30, 0.35, seed=1)
    assert g.is_connected
    eig, vec = np.linalg.eigh(g.laplacian().toarray())
    lam2 = eig[1]
    assert eig[2] > 1.3 * lam2  # a clear gap, so the slowest mode dominates late
    node = int(np.argmax(np.abs(vec[:, 1])))
    rho0 = np.full(g.n, 0.5 / (g.n - 1))
    rho0[node] = 0.5
    flow = LinearHeatFlow(g) if kind == "linear" else WassersteinFlow(g, Entropy(), kind)
    t1 = 10.0 / lam2
    t = np.linspace(0.0, t1, 201)
    tr = solve(flow, rho0, (0.0, t1), t, rtol=1e-11, atol=1e-16)
    late = t >= t1 / 2
    excess = relative_entropy_to_uniform(tr.rho[late])
    assert excess[-1] > 1e-12  # still far above rounding
    rate = late_time_rate(t[late], excess)
    assert abs(rate - 2 * lam2) <= 0.02 * 2 * lam2, (rate, 2 * lam2)


@pytest.mark.parametrize("d", [4, 5])
@pytest.mark.parametrize("kind", ["linear", "logarithmic", "arithmetic"])
def test_hypercube_entropy_decay_rate_is_4_over_d(d, kind):
    """Erbar-Maas: on {0,1}^d with omega = 1/d the log-mean entropy decay rate is 4/d.

    The arithmetic-mean flow has the same linearisation -L at the uniform state,
    hence the same late-time rate.
    """
    g = hypercube(d)
    eig = np.linalg.eigvalsh(g.laplacian().toarray())
    assert abs(eig[1] - 2.0 / d) <= 1e-12
    rho0 = np.full(g.n, 0.1 / (g.n - 1))
    rho0[0] = 0.9
    flow = LinearHeatFlow(g) if kind == "linear" else WassersteinFlow(g, Entropy(), kind)
    t1 = 5.0 * d
    t = np.linspace(0.0, t1, 201)
    tr = solve(flow, rho0, (0.0, t1), t, rtol=1e-11, atol=1e-16)
    late = t >= t1 / 2
    rate = late_time_rate(t[late], relative_entropy_to_uniform(tr.rho[late]))
    assert abs(rate - 4.0 / d) <= 0.02 * 4.0 / d, rate


@pytest.mark.parametrize("mean", ["arithmetic", "logarithmic"])
def test_gibbs_equilibrium_is_reached_on_a_1d_grid(mean):
    n = 24
    g = grid(n, spacing=1.0 / n)
    x = g.positions[:, 0]
    v = 3.0 * np.cos(2 * np.pi * x) + 2.0 * x
    gibbs = np.exp(-v) / np.exp(-v).sum()
    flow = WassersteinFlow(g, Entropy() + PotentialEnergy(v), mean)
    rho0 = np.full(n, 1.0 / n)
    tr = solve(flow, rho0, (0.0, 4.0), np.linspace(0.0, 4.0, 41), rtol=1e-10, atol=1e-14)
    assert np.linalg.norm(tr.final - gibbs) <= 1e-6
    # min over densities of H + V is -log Z, reached from above
    assert abs(tr.energy[-1] + np.log(np.exp(-v).sum())) <= 1e-10
    assert np.all(np.diff(tr.energy) <= 1e-12)


@pytest.mark.parametrize("kind", ["linear", "arithmetic", "logarithmic"])
def test_disconnected_graph_each_component_keeps_its_mass_and_equilibrium(kind):
    blocks = [random_connected_graph(k, seed=s, extra=1.0) for s, k in [(1, 6), (2, 9), (3, 4)]]
    edges, weights, offset = [], [], 0
    for b in blocks:
        edges.append(b.edges + offset)
        weights.append(b.weights)
        offset += b.n
    with pytest.warns(DisconnectedGraphWarning):
        g = from_edges(np.concatenate(edges), np.concatenate(weights), n=offset)
    labels = g.components()
    sizes = np.bincount(labels)
    rho0 = random_density(g.n, seed=7, log10_ratio=3.0)
    mass0 = np.bincount(labels, rho0)
    flow = LinearHeatFlow(g) if kind == "linear" else WassersteinFlow(g, Entropy(), kind)
    tr = solve(flow, rho0, (0.0, 60.0), np.linspace(0.0, 60.0, 7), rtol=1e-10, atol=1e-15)
    for row in tr.rho:
        assert np.abs(np.bincount(labels, row) - mass0).max() <= 1e-10
    expected = (mass0 / sizes)[labels]
    assert np.abs(tr.final - expected).max() <= 1e-6 * expected.max()


@pytest.mark.parametrize("method", CONCRETE_METHODS)
def test_a_failing_rhs_raises_solver_error_not_a_partial_trajectory(method):
    g = grid(10)
    rho0 = np.full(10, 1e-3)
    rho0[0] = 1.0 - 9e-3
    result = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        with pytest.raises(SolverError) as info:
            result = solve(NaNOnceSpread(g), rho0, (0.0, 1.0), method=method, max_steps=2000)
    assert result is None
    assert info.value.diagnostics["method"] == method
    assert info.value.diagnostics["n_rhs"] > 0


@pytest.mark.filterwarnings("ignore:Excess work done")
@pytest.mark.parametrize("method", ["lsoda", "bdf", "adams"])
def test_too_few_steps_raises_solver_error(method, rgg30):
    flow = WassersteinFlow(rgg30, Entropy(), "arithmetic")
    with pytest.raises(SolverError, match=method):
        solve(flow, seed_like_initial(rgg30.n), (0.0, 1.0), method=method, max_steps=3)


def _stiff_grid_case():
    g = grid((48, 48), spacing=1.0 / 48)
    x, y = g.positions.T
    v = 2.0 * np.cos(2 * np.pi * x) * np.sin(2 * np.pi * y)
    rho0 = np.exp(-((x - 0.3) ** 2 + (y - 0.6) ** 2) / 0.02) + 1e-3
    return WassersteinFlow(g, Entropy() + PotentialEnergy(v)), rho0 / rho0.sum(), "bdf"


def _non_stiff_case():
    g = random_geometric(3000, 0.05, seed=0)
    rho0 = random_density(g.n, seed=1, log10_ratio=2.0)
    return WassersteinFlow(g, Entropy(), "arithmetic"), rho0, "rk45"


@pytest.mark.parametrize(
    ("case", "reference"), [(_stiff_grid_case, "scipy-bdf"), (_non_stiff_case, "dop853")]
)
def test_auto_on_large_graphs_keeps_the_conservation_laws(case, reference):
    """Beyond 2,000 nodes "auto" picks CVODE BDF (GMRES + multigrid) or RK45 by stiffness."""
    flow, rho0, expected_method = case()
    tr = solve(flow, rho0, (0.0, 0.01), method="auto", rtol=1e-8, atol=1e-14)
    assert tr.method == expected_method
    assert np.abs(tr.rho.sum(axis=1) - 1.0).max() <= 1e-10
    assert tr.rho.min() > 0
    assert np.all(np.diff(tr.energy) <= 1e-12 * np.abs(tr.energy).max())
    ref = solve(flow, rho0, (0.0, 0.01), method=reference, rtol=1e-8, atol=1e-14)
    assert np.abs(tr.final - ref.final).max() <= 1e-5 * np.abs(ref.final).max()


def test_theorem_2_14_at_every_output_state_of_both_flows():
    """The seed's §3 setting in small: n = 100, radius 0.2, centre node, rho = 1e-10 elsewhere."""
    g = random_geometric(100, 0.2, seed=0, center=(0.5, 0.5))
    assert g.is_connected
    rho0 = seed_like_initial(g.n, node=0)
    t = np.linspace(0.0, 0.1, 11)
    w_flow = WassersteinFlow(g, Entropy(), "arithmetic")
    lin = LinearHeatFlow(g)
    for flow in (w_flow, lin):
        tr = solve(flow, rho0, (0.0, 0.1), t)
        for rho in tr.rho:
            dh_w = -w_flow.dissipation(rho)
            dh_lin = -lin.dissipation(rho)
            assert dh_w < dh_lin < 0


def test_normalize_rescales_the_initial_density(rgg30):
    rho = random_density(rgg30.n, seed=8, log10_ratio=2.0)
    flow = WassersteinFlow(rgg30, Entropy(), "arithmetic")
    tr = solve(flow, 3.0 * rho, (0.0, 0.01), normalize=True)
    np.testing.assert_allclose(tr.rho[0], rho, rtol=1e-15)
    assert np.abs(tr.rho.sum(axis=1) - 1.0).max() <= 1e-12


def test_solve_rejects_bad_input(rgg30):
    g = rgg30
    flow = WassersteinFlow(g, Entropy(), "arithmetic")
    rho = random_density(g.n, seed=9, log10_ratio=1.0)
    bad_values = {
        r"rho0 must be non-negative": np.where(np.arange(g.n) == 3, -1e-3, rho),
        r"rho0 must be strictly positive": np.where(np.arange(g.n) == 3, 0.0, rho),
        r"rho0 must be finite": np.where(np.arange(g.n) == 3, np.nan, rho),
        r"rho0 must be finite;.*inf": np.where(np.arange(g.n) == 3, np.inf, rho),
        r"rho0 must sum to 1.*normalize=True": 1.01 * rho,
        r"rho0 must be a vector of length 30": rho[:-1],
    }
    for match, rho0 in bad_values.items():
        with pytest.raises(ValueError, match=match):
            solve(flow, rho0, (0.0, 0.1))
    with pytest.raises(ValueError, match=r"t_eval must lie inside t_span"):
        solve(flow, rho, (0.0, 0.1), [0.0, 0.2])
    with pytest.raises(ValueError, match=r"t_eval must lie inside t_span"):
        solve(flow, rho, (0.1, 0.2), [0.0, 0.2])
    with pytest.raises(ValueError, match=r"t_eval must be strictly increasing"):
        solve(flow, rho, (0.0, 0.1), [0.05, 0.01])
    with pytest.raises(ValueError, match=r"t_span must have t1 > t0"):
        solve(flow, rho, (0.1, 0.0))
    with pytest.raises(ValueError, match=r"unknown method 'euler'"):
        solve(flow, rho, (0.0, 0.1), method="euler")
    with pytest.raises(ValueError, match=r"rtol must be a positive number, got 0"):
        solve(flow, rho, (0.0, 0.1), rtol=0.0)
    with pytest.raises(TypeError, match=r"flow must be"):
        solve(Entropy(), rho, (0.0, 0.1))
    # the linear heat flow takes no logarithm: zeros are admissible initial data
    delta = np.zeros(g.n)
    delta[0] = 1.0
    tr = solve(LinearHeatFlow(g), delta, (0.0, 0.1))
    assert np.abs(tr.rho.sum(axis=1) - 1.0).max() <= 1e-12


def test_linear_heat_energy_at_a_density_with_zeros_uses_0_log_0_eq_0(rgg30):
    delta = np.zeros(rgg30.n)
    delta[0] = 1.0
    tr = solve(LinearHeatFlow(rgg30), delta, (0.0, 0.1))
    assert tr.energy[0] == 0.0
    assert np.all(np.isfinite(tr.energy))


def test_mass_drift_with_an_empty_component():
    with pytest.warns(DisconnectedGraphWarning):
        g = from_edges([(0, 1), (1, 2), (3, 4)], n=5)
    rho0 = np.array([0.25, 0.5, 0.25, 0.0, 0.0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        tr = solve(LinearHeatFlow(g), rho0, (0.0, 1.0))
    assert np.all(tr.rho[:, 3:] == 0.0)
    assert np.isfinite(tr.mass_drift) and tr.mass_drift <= 1e-10


def test_hypercube_builder_is_the_d_cube():
    g = hypercube(3)
    assert (g.n, g.m) == (8, 12)
    # neighbours differ in exactly one bit
    for i, j in g.edges.tolist():
        assert bin(i ^ j).count("1") == 1
    spectrum = np.sort([2 * sum(bits) / 3 for bits in itertools.product((0, 1), repeat=3)])
    np.testing.assert_allclose(np.linalg.eigvalsh(g.laplacian().toarray()), spectrum, atol=1e-13)


class LeakyHeat(LinearHeatFlow):
    """The linear heat flow with a mass leak: d rho/dt = -L rho - rate rho (mass ~ e^(-rate t))."""

    def __init__(self, g, rate: float):
        super().__init__(g)
        self.rate = rate

    def rhs(self, rho):
        return super().rhs(rho) - self.rate * rho

    def jacobian_data(self, rho):
        data = super().jacobian_data(rho).copy()
        data[self.pattern.slot_diag] -= self.rate
        return data


@pytest.fixture(scope="module")
def rgg500():
    g = random_geometric(500, 0.1, seed=0, center=(0.5, 0.5))
    return g, seed_like_initial(g.n)


def test_long_horizon_mass_tolerance_scales_with_span_and_stiffness(rgg500):
    """At t1 = 1e8 the Laplacian product D rho - W rho rounds with one sign step after step:
    the drift exceeds 1e-10 but stays under eps (n + n_rhs + S t1), S = 2 max degree."""
    g, rho0 = rgg500
    tr = solve(LinearHeatFlow(g), rho0, (0.0, 1e8), method="bdf", rtol=1e-8, atol=1e-14)
    stiffness = 2.0 * g.degree.max()  # Gershgorin: column j of |L| sums to 2 d_j
    bound = np.finfo(float).eps * (g.n + tr.n_rhs + stiffness * 1e8)
    assert tr.mass_tol == pytest.approx(bound, rel=1e-12)
    assert MASS_TOL < tr.mass_drift <= tr.mass_tol
    short = solve(LinearHeatFlow(g), rho0, (0.0, 0.1), rtol=1e-8, atol=1e-14)
    assert short.mass_tol == MASS_TOL and short.mass_drift <= 1e-13


@pytest.mark.parametrize(("rate", "t1"), [(1e-6, 0.1), (1e-12, 1e8)])
def test_a_leaking_rhs_is_refused_on_short_and_long_horizons(rgg500, rate, t1):
    """A leak of rate r loses r t1 of the mass; above the rounding rate eps S it raises."""
    g, rho0 = rgg500
    with pytest.raises(SolverError, match="mass drifted by .* does not conserve mass") as info:
        solve(LeakyHeat(g, rate), rho0, (0.0, t1), method="bdf", rtol=1e-8, atol=1e-14)
    diag = info.value.diagnostics
    assert diag["mass_drift"] == pytest.approx(-np.expm1(-rate * t1), rel=0.05)
    assert diag["mass_drift"] > 50 * diag["mass_tol"]


class CrossComponentTransfer(LinearHeatFlow):
    """The linear heat flow plus a transfer at rate r from node ``src`` to node ``dst`` of
    another component: total mass is conserved, each component's is not."""

    def __init__(self, g, rate: float, src: int, dst: int):
        super().__init__(g)
        self.rate, self.src, self.dst = rate, src, dst

    def matrix(self) -> np.ndarray:
        a = -self.graph.laplacian().toarray()
        a[self.src, self.src] -= self.rate
        a[self.dst, self.src] += self.rate
        return a

    def rhs(self, rho):
        out = super().rhs(rho)
        out[self.src] -= self.rate * rho[self.src]
        out[self.dst] += self.rate * rho[self.src]
        return out


@pytest.mark.parametrize("method", ["lsoda", "rk45"])
def test_mass_moving_between_components_is_refused_though_the_total_is_conserved(method):
    """rho(t) = expm(A t) rho0 for the linear transfer flow: component 0 loses what component 1
    gains, so the total mass stays 1 to rounding while each component drifts by about 1e-4."""
    with pytest.warns(DisconnectedGraphWarning):
        g = from_edges([(0, 1), (1, 2), (2, 3), (4, 5), (5, 6)], [1.0, 2.0, 0.5, 1.0, 1.5], n=7)
    flow = CrossComponentTransfer(g, rate=1e-3, src=0, dst=5)
    rho0 = np.array([0.3, 0.1, 0.05, 0.05, 0.2, 0.1, 0.2])
    te = np.linspace(0.0, 1.0, 11)
    states = np.stack([expm(flow.matrix() * t) @ rho0 for t in te])
    assert np.abs(states.sum(axis=1) - 1.0).max() <= 1e-14
    component_drift = np.abs(states[:, :4].sum(axis=1) - rho0[:4].sum()).max()
    assert component_drift > 1e-5
    with pytest.raises(SolverError, match="mass drifted by .* does not conserve mass") as info:
        solve(flow, rho0, (0.0, 1.0), te, method=method, rtol=1e-10, atol=1e-14)
    diag = info.value.diagnostics
    assert diag["mass_drift"] == pytest.approx(component_drift, rel=1e-6)
    assert diag["mass_tol"] == MASS_TOL


def test_lsoda_dense_jacobian_on_a_large_graph_is_refused_before_allocating(monkeypatch):
    """Three dense n x n float64 matrices: 3 * 8 * 90000^2 bytes = 181.0 GiB."""
    monkeypatch.setenv("OTTOKIT_MEMORY_LIMIT", "1G")
    g = grid((300, 300))
    refused = (
        r"dense Jacobian on 90000 nodes needs about 181.0 GiB but 1.0 GiB is available; "
        r"use method=.bdf. or .auto., whose Jacobians are sparse"
    )
    with pytest.raises(MemoryEstimateError, match=refused):
        solve(LinearHeatFlow(g), np.full(g.n, 1.0 / g.n), (0.0, 1.0), method="lsoda")


@pytest.mark.parametrize("t_eval", [[], [0.0, np.nan], [np.inf]], ids=["empty", "nan", "inf"])
def test_t_eval_must_hold_finite_times(t_eval, rgg30):
    with pytest.raises(ValueError, match="^t_eval must be a non-empty array of finite times$"):
        solve(LinearHeatFlow(rgg30), seed_like_initial(rgg30.n), (0.0, 1.0), t_eval)


def test_an_initial_state_without_mass_cannot_be_normalised(rgg30):
    with pytest.raises(ValueError, match="rho0 has zero total mass"):
        solve(LinearHeatFlow(rgg30), np.zeros(rgg30.n), (0.0, 1.0), normalize=True)


class PositiveHeatFlow(LinearHeatFlow):
    """The linear heat flow declared to need rho > 0, as every entropy flow does: its exact
    solution expm(-L t) rho0 stays positive, but an explicit step at loose tolerance may not."""

    needs_positive = True


def _path(n: int):
    return from_edges([(i, i + 1) for i in range(n - 1)])


def _spike(n: int) -> np.ndarray:
    rho0 = np.full(n, 1e-12)
    rho0[n // 2] = 1.0
    return rho0 / rho0.sum()


def test_an_undershoot_below_zero_raises_instead_of_returning_negative_densities():
    g = _path(2001)
    with pytest.raises(SolverError, match=r"rk45: density became non-positive.*method='bdf'") as e:
        solve(PositiveHeatFlow(g), _spike(g.n), (0.0, 10.0), method="rk45", rtol=1e-2, atol=1e-6)
    assert e.value.diagnostics["min_density"] < 0


def test_auto_abandons_rk45_when_its_densities_go_non_positive():
    """Beyond 2,000 nodes "auto" tries RK45 on a mildly stiff flow; an undershoot below zero
    sends it to CVODE BDF with positivity constraints, which follows expm(-L t) rho0."""
    g = _path(2001)
    rho0 = _spike(g.n)
    tr = solve(PositiveHeatFlow(g), rho0, (0.0, 1.0), method="auto", rtol=1e-2, atol=1e-7)
    assert tr.method == "bdf"
    assert tr.info["abandoned"].startswith("rk45 after")
    assert tr.min_density > 0
    ref = solve(LinearHeatFlow(g), rho0, (0.0, 1.0), method="lsoda", rtol=1e-10, atol=1e-16)
    assert np.abs(tr.rho - ref.rho).max() <= 0.05 * ref.rho.max()


def test_auto_abandons_rk45_past_its_budget_of_right_hand_sides(monkeypatch):
    """The budget is 5,000 right-hand sides, more than any flow here that "auto" judges non-stiff
    needs within a fast test; it is lowered to 20 so that RK45 runs out of it."""
    import ottokit.graph._solve as solve_module

    monkeypatch.setattr(solve_module, "_EXPLICIT_BUDGET", 20)
    g = _path(2001)
    rho0 = _spike(g.n)
    tr = solve(LinearHeatFlow(g), rho0, (0.0, 1.0), [0.5, 1.0], rtol=1e-8, atol=1e-14)
    assert tr.method == "bdf"
    assert tr.info["abandoned"] == "rk45 after 21 right-hand sides"
    ref = solve(LinearHeatFlow(g), rho0, (0.0, 1.0), [0.5, 1.0], method="lsoda", rtol=1e-10)
    np.testing.assert_allclose(tr.rho, ref.rho, rtol=0, atol=1e-6 * ref.rho.max())


@pytest.mark.parametrize("t_span", [(0.0,), (0.0, np.inf), (0.0, 1.0, 2.0)], ids=str)
def test_t_span_must_be_two_finite_times(t_span, rgg30):
    with pytest.raises(ValueError, match=r"t_span must be two finite times \(t0, t1\)"):
        solve(LinearHeatFlow(rgg30), seed_like_initial(rgg30.n), t_span)


def test_porous_medium_flow_starts_from_a_density_with_zeros_unless_the_mean_is_logarithmic():
    """F = sum rho^2 (m = 2) has no logarithm: with the arithmetic mean its flow starts from
    a density that vanishes on some nodes, keeps the mass and fills the empty nodes; the
    logarithmic mean (log rho_i - log rho_j) needs rho > 0 and refuses the same start."""
    g = _path(6)
    rho0 = np.array([0.5, 0.5, 0.0, 0.0, 0.0, 0.0])
    tr = solve(WassersteinFlow(g, PorousMedium(2.0), "arithmetic"), rho0, (0.0, 1.0),
               method="lsoda", rtol=1e-10, atol=1e-14)
    assert np.abs(tr.rho.sum(axis=1) - 1.0).max() <= 1e-12
    assert tr.final.min() > 0
    assert np.all(np.diff(tr.energy) <= 1e-14)
    with pytest.raises(ValueError, match="rho0 must be strictly positive"):
        solve(WassersteinFlow(g, PorousMedium(2.0), "logarithmic"), rho0, (0.0, 1.0))


def _heat_semigroup(g, rho0: np.ndarray, t: np.ndarray) -> np.ndarray:
    lap = g.laplacian().toarray()
    return np.stack([expm(-tk * lap) @ rho0 for tk in t])


def test_output_times_off_zero_follow_the_heat_semigroup_and_are_clipped_to_t_span(rgg30):
    """On t_span = (1, 1.5) the linear heat flow is rho(t) = exp(-(t - 1) L) rho0 (autonomous);
    by default (rtol 1e-6, atol 1e-12) at 11 equally spaced times; output times that miss
    t_span by less than 1e-12 of its length are moved onto it, by more are refused."""
    g = rgg30
    flow = LinearHeatFlow(g)
    rho0 = random_density(g.n, seed=31, log10_ratio=2.0)
    tr = solve(flow, rho0, (1.0, 1.5))
    np.testing.assert_array_equal(tr.t, np.linspace(1.0, 1.5, 11))
    exact = _heat_semigroup(g, rho0, tr.t - 1.0)
    assert np.abs(tr.rho - exact).max() <= 1e-4 * exact.max()
    tr = solve(flow, rho0, (1.0, 1.5), [1.0 - 2e-13, 1.25, 1.5 + 2e-13])
    np.testing.assert_array_equal(tr.t, [1.0, 1.25, 1.5])
    np.testing.assert_allclose(tr.rho[0], rho0, rtol=1e-14, atol=0)
    outside = r"inside t_span = \(1.0, 1.5\); got "
    with pytest.raises(ValueError, match=outside + r"\[0.999999999999, 1.5\]"):
        solve(flow, rho0, (1.0, 1.5), [1.0 - 1e-12, 1.25, 1.5])
    with pytest.raises(ValueError, match=outside + r"\[1.0, 1.500000000001\]"):
        solve(flow, rho0, (1.0, 1.5), [1.0, 1.25, 1.5 + 1e-12])
    with pytest.raises(ValueError, match=r"^t_eval must be strictly increasing$"):
        solve(flow, rho0, (1.0, 1.5), [1.0, 1.25, 1.25, 1.5])
    with pytest.raises(ValueError, match=r"t_span must have t1 > t0, got \(1.0, 1.0\)"):
        solve(flow, rho0, (1.0, 1.0))


@pytest.mark.parametrize("method", CONCRETE_METHODS)
def test_a_single_output_time(method, rgg30):
    """t_eval = [t1] gives the one state exp(-(t1 - t0) L) rho0; t_eval = [t0] gives rho0."""
    g = rgg30
    flow = LinearHeatFlow(g)
    rho0 = random_density(g.n, seed=32, log10_ratio=2.0)
    tr = solve(flow, rho0, (1.0, 1.5), [1.5], method=method, rtol=1e-10, atol=1e-14)
    assert tr.rho.shape == (1, g.n)
    exact = _heat_semigroup(g, rho0, np.array([0.5]))
    assert np.abs(tr.rho - exact).max() <= 1e-6 * exact.max()
    start = solve(flow, rho0, (1.0, 1.5), [1.0], method=method)
    np.testing.assert_array_equal(start.t, [1.0])
    np.testing.assert_allclose(start.rho, rho0[None, :], rtol=1e-15, atol=0)


def test_max_steps_must_be_at_least_one_and_tolerances_positive(rgg30):
    """max_steps = 0 is refused; max_steps = 1 is admissible, and one step is too few; a
    non-positive tolerance is refused with an example of a good one."""
    flow = LinearHeatFlow(rgg30)
    rho0 = seed_like_initial(rgg30.n)
    refused = r"^max_steps must be a positive integer, got 0 \(e.g. max_steps=200000\)$"
    with pytest.raises(ValueError, match=refused):
        solve(flow, rho0, (0.0, 1.0), method="lsoda", max_steps=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(SolverError, match="lsoda"):
            solve(flow, rho0, (0.0, 1.0), [0.0, 1.0], method="lsoda", max_steps=1)
    for name, bad, example in [("atol", -1.0, "1e-12"), ("rtol", 0.0, "1e-06")]:
        match = rf"{name} must be a positive number, got {bad:g} \(e.g. {name}={example}\)"
        with pytest.raises(ValueError, match=match):
            solve(flow, rho0, (0.0, 1.0), **{name: bad})


def test_auto_rule_by_size_and_stiffness_times_the_horizon(rgg30, monkeypatch):
    """Up to _SMALL nodes "auto" takes lsoda; beyond, CVODE BDF when the Gershgorin bound S at
    the uniform state times t1 - t0 exceeds 50, else RK45 (here t0 = 10, so t1 + t0 would
    not do). The porous-medium Jacobian scales with the density, so S is that of the uniform
    state of rho0's mass (at rho = 1 it would be 30 times larger). The threshold is brought
    down to the 30 nodes of the graph."""
    import ottokit.graph._solve as solve_module

    g = rgg30
    flow = WassersteinFlow(g, PorousMedium(2.0), "arithmetic")
    rho0 = random_density(g.n, seed=33, log10_ratio=1.0)
    s = flow.stiffness_bound(np.full(g.n, 1.0 / g.n))
    monkeypatch.setattr(solve_module, "_SMALL", g.n)
    assert solve(flow, rho0, (10.0, 10.0 + 75.0 / s)).method == "lsoda"
    monkeypatch.setattr(solve_module, "_SMALL", g.n - 1)
    assert solve(flow, rho0, (10.0, 10.0 + 25.0 / s)).method == "rk45"
    assert solve(flow, rho0, (10.0, 10.0 + 75.0 / s)).method == "bdf"


def test_long_horizon_mass_tolerance_takes_the_stiffness_at_each_components_uniform_state():
    """For the porous-medium flow (m = 2) the Jacobian scales with the density, so S in
    mass_tol = eps (n + n_rhs + S (t1 - t0)) depends on where it is taken: at each
    component's mass spread evenly over its nodes; t1 - t0 is the length of the horizon."""
    with pytest.warns(DisconnectedGraphWarning):
        g = from_edges([(0, 1), (1, 2), (2, 3), (4, 5), (5, 6)], [1.0, 2.0, 0.5, 1.0, 1.5], n=7)
    flow = WassersteinFlow(g, PorousMedium(2.0), "arithmetic")
    rho0 = np.array([0.05, 0.03, 0.01, 0.01, 0.5, 0.2, 0.2])
    uniform = np.array([0.025] * 4 + [0.3] * 3)
    tr = solve(flow, rho0, (1e8, 2e8), [1e8, 2e8], method="bdf", rtol=1e-8, atol=1e-14)
    np.testing.assert_allclose(tr.final, uniform, rtol=1e-6)
    bound = np.finfo(float).eps * (g.n + tr.n_rhs + flow.stiffness_bound(uniform) * 1e8)
    assert bound > MASS_TOL
    assert tr.mass_tol == pytest.approx(bound, rel=1e-12, abs=0)


def test_a_leak_is_measured_from_t0_off_zero(rgg30):
    """d rho/dt = -L rho - r rho from t0 = 5 loses 1 - exp(-r (t1 - t0)) of the mass."""
    with pytest.raises(SolverError, match=r"right-hand sides and t1 - t0 = 0.1; the flow") as info:
        solve(LeakyHeat(rgg30, 1e-6), seed_like_initial(rgg30.n), (5.0, 5.1), rtol=1e-10)
    diag = info.value.diagnostics
    assert diag["mass_drift"] == pytest.approx(-np.expm1(-1e-6 * 0.1), rel=1e-4)
    assert diag["mass_tol"] == MASS_TOL


def test_a_non_finite_solution_is_refused():
    """lsoda returns the NaNs of a right-hand side that turns NaN without failing itself."""
    g = grid(10)
    rho0 = np.full(10, 1e-3)
    rho0[0] = 1.0 - 9e-3
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        with pytest.raises(SolverError, match="lsoda: non-finite density in the solution"):
            solve(NaNOnceSpread(g), rho0, (0.0, 1.0), method="lsoda", max_steps=2000)


@pytest.mark.parametrize(
    ("method", "name"), [("radau", "Radau"), ("scipy-bdf", "BDF"), ("rk45", "RK45")]
)
def test_trajectory_counts_the_work_as_scipy_does_and_times_it(method, name, rgg30):
    """n_rhs and n_jac are SciPy's own nfev and njev for the same solve (none for an explicit
    method); the wall time lies within the time the call took."""
    flow = WassersteinFlow(rgg30, Entropy(), "arithmetic")
    rho0 = seed_like_initial(rgg30.n)
    te = np.linspace(0.0, 0.1, 11)
    start = time.perf_counter()
    tr = solve(flow, rho0, (0.0, 0.1), method=method)
    elapsed = time.perf_counter() - start
    with np.errstate(invalid="ignore", divide="ignore"):
        ref = solve_ivp(
            lambda _t, y: flow.rhs(y), (0.0, 0.1), rho0, method=name, t_eval=te, rtol=1e-6,
            atol=1e-12, **({} if method == "rk45" else {"jac": lambda _t, y: flow.jacobian(y)}),
        )
    assert (tr.n_rhs, tr.n_jac) == (ref.nfev, ref.njev)
    assert (tr.n_jac > 0) == (method != "rk45")
    assert "abandoned" not in tr.info  # nothing was tried and given up
    assert 0.0 < tr.wall_time <= elapsed


@pytest.mark.filterwarnings("ignore:Excess work done")
def test_lsoda_takes_the_analytic_jacobian_once_the_flow_is_stiff(rgg30):
    """Near equilibrium (t up to 100, rates up to 2 max degree) LSODA switches to BDF and
    evaluates the flow's Jacobian; its counts are odeint's own nfe and nje."""
    flow = WassersteinFlow(rgg30, Entropy(), "arithmetic")
    rho0 = seed_like_initial(rgg30.n)
    te = np.linspace(0.0, 100.0, 11)
    tr = solve(flow, rho0, (0.0, 100.0), te, method="lsoda")
    with np.errstate(invalid="ignore", divide="ignore"):
        _, info = odeint(
            lambda y, _t: flow.rhs(y), rho0, te, Dfun=lambda y, _t: flow.jacobian(y).toarray(),
            rtol=1e-6, atol=1e-12, mxstep=200_000, full_output=True,
        )
    assert tr.n_jac > 0
    assert (tr.n_rhs, tr.n_jac) == (int(info["nfe"][-1]), int(info["nje"][-1]))


@pytest.mark.parametrize("method", [m for m in CONCRETE_METHODS if m != "lsoda"])
def test_a_failed_integration_says_how_far_it_got(method):
    """The rhs turns NaN at t* where (exp(-t L) rho0)_0 = 0.7: CVODE fails there, the
    solve_ivp methods after their last output time before it (0.4 of 0, 0.1, ..., 1)."""
    g = grid(10)
    rho0 = np.full(10, 1e-3)
    rho0[0] = 1.0 - 9e-3
    lap = g.laplacian().toarray()
    t_star = brentq(lambda t: (expm(-t * lap) @ rho0)[0] - 0.7, 0.0, 1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        with pytest.raises(SolverError) as info:
            solve(NaNOnceSpread(g), rho0, (0.0, 1.0), method=method, max_steps=2000)
    diag = info.value.diagnostics
    assert 0.4 <= diag["t_reached"] <= t_star + 1e-6
    implicit = method in ("bdf", "adams", "radau", "scipy-bdf")
    assert diag["n_rhs"] > 0 and (diag["n_jac"] > 0) == implicit


@pytest.mark.filterwarnings("ignore:Excess work done")
def test_lsoda_out_of_steps_says_how_far_it_got():
    """3, 6 and 9 steps of lsoda end inside the first output interval (0, 0.1), each further."""
    g = grid(10)
    rho0 = np.full(10, 1e-3)
    rho0[0] = 1.0 - 9e-3
    reached = []
    for steps in (3, 6, 9):
        with pytest.raises(SolverError, match="lsoda: Excess work done") as info:
            solve(LinearHeatFlow(g), rho0, (0.0, 1.0), method="lsoda", max_steps=steps)
        reached.append(info.value.diagnostics["t_reached"])
    assert 0.0 < reached[0] < reached[1] < reached[2] < 0.1


@pytest.mark.parametrize("t_span", ["soon", (0.0, "1"), None], ids=["str", "mixed", "none"])
def test_t_span_of_non_numbers_is_refused_by_name(t_span, rgg30):
    with pytest.raises(TypeError, match=r"^t_span must be an array of real numbers"):
        solve(LinearHeatFlow(rgg30), seed_like_initial(rgg30.n), t_span)


@pytest.mark.parametrize("t_eval", ["later", [0.0, "1"]], ids=["str", "mixed"])
def test_t_eval_of_non_numbers_is_refused_by_name(t_eval, rgg30):
    with pytest.raises(TypeError, match=r"^t_eval must be an array of real numbers"):
        solve(LinearHeatFlow(rgg30), seed_like_initial(rgg30.n), (0.0, 1.0), t_eval)


def test_trial_states_outside_the_domain_are_rejected_quietly():
    """RK45 at loose tolerance tries stages with negative densities on an entropy flow from a
    spike (log of a negative number): the integrator rejects those steps without a warning,
    and the trajectory is positive and keeps its mass."""
    g = _path(50)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tr = solve(WassersteinFlow(g, Entropy()), _spike(g.n), (0.0, 10.0), method="rk45",
                   rtol=1e-2, atol=1e-6)
    assert tr.min_density > 0
    assert np.abs(tr.rho.sum(axis=1) - 1.0).max() <= 1e-10


def _cvode_reference(flow, rho0, te, method, **options):
    """CVODE called directly with the flow's dense Jacobian (an independent run of the library)."""
    import sksundae as sun

    def rhsfn(_t, y, yp):
        yp[:] = flow.rhs(y)

    def jacfn(_t, y, _yp, jj):
        jj[:, :] = flow.jacobian(y).toarray()

    name = {"bdf": "BDF", "adams": "Adams"}[method]
    solver = sun.cvode.CVODE(
        rhsfn, method=name, linsolver="dense", jacfn=jacfn, **{
            "rtol": 1e-6, "atol": 1e-12, "max_num_steps": 200_000, **options}
    )
    with np.errstate(invalid="ignore", divide="ignore"):
        return solver.solve(te, rho0)


@pytest.mark.parametrize("method", ["bdf", "adams"])
def test_bdf_and_adams_are_cvodes_methods_with_the_flows_jacobian(method):
    """On a small graph "bdf" and "adams" are CVODE's BDF and Adams methods with a dense Newton
    solver on the flow's Jacobian: the same states and counts as the library called directly.
    With two or three output times (CVODE then steps on its own) the states still follow
    exp(-t L) rho0, and the first is rho0 itself."""
    g = grid(20, spacing=0.05)  # stiff: the Laplacian's rates reach 4 / h^2 = 1600
    rho0 = np.linspace(1.0, 2.0, g.n)
    rho0 /= rho0.sum()
    flow = LinearHeatFlow(g)
    te = np.linspace(0.0, 2.0, 5)
    tr = solve(flow, rho0, (0.0, 2.0), te, method=method)
    ref = _cvode_reference(flow, rho0, te, method)
    np.testing.assert_array_equal(tr.rho, ref.y)
    assert (tr.n_rhs, tr.n_jac) == (ref.nfev, ref.njev)
    for t_eval in ([1.0, 3.0], [1.0, 1.1, 3.0]):  # autonomous: rho(t) = exp(-(t - 1) L) rho0
        tr = solve(flow, rho0, (1.0, 3.0), t_eval, method=method, rtol=1e-10, atol=1e-14)
        np.testing.assert_array_equal(tr.rho[0], rho0)
        exact = _heat_semigroup(g, rho0, np.array(t_eval) - 1.0)
        np.testing.assert_allclose(tr.rho, exact, rtol=0, atol=1e-7 * rho0.max())


@pytest.mark.parametrize("method", ["bdf", "rk45"])
def test_a_failed_integration_passes_on_the_integrators_message(method):
    """The SolverError carries the integrator's own reason, as the library reports it for the
    same failing flow; CVODE stops where the right-hand side turns NaN, at t* where
    (exp(-t L) rho0)_0 = 0.7."""
    g = grid(10)
    rho0 = np.full(10, 1e-3)
    rho0[0] = 1.0 - 9e-3
    flow = NaNOnceSpread(g)
    te = np.linspace(0.0, 1.0, 11)
    if method == "rk45":
        with np.errstate(invalid="ignore"):
            ref = solve_ivp(lambda _t, y: flow.rhs(y), (0.0, 1.0), rho0, t_eval=te, rtol=1e-6,
                            atol=1e-12)
        t_star = None
    else:
        ref = _cvode_reference(flow, rho0, te, method, max_num_steps=2000)
        lap = g.laplacian().toarray()
        t_star = brentq(lambda t: (expm(-t * lap) @ rho0)[0] - 0.7, 0.0, 1.0)
    assert not ref.success
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        with pytest.raises(SolverError) as info:
            solve(flow, rho0, (0.0, 1.0), method=method, max_steps=2000)
    assert str(info.value).startswith(f"{method}: {ref.message} (diagnostics: ")
    if t_star is not None:
        assert info.value.diagnostics["t_reached"] == pytest.approx(t_star, abs=1e-6)


def test_a_leak_is_named_with_the_method_that_ran(rgg30):
    with pytest.raises(SolverError, match=(
        r"^lsoda: mass drifted by .* \(relative\) > 1e-10, more than rounding explains over "
        r"\d+ right-hand sides and t1 - t0 = 0.1; the flow's right-hand side does not conserve "
        r"mass \(diagnostics: ")
    ) as info:
        solve(LeakyHeat(rgg30, 1e-6), seed_like_initial(rgg30.n), (0.0, 0.1), method="lsoda")
    assert info.value.diagnostics["method"] == "lsoda"


def test_an_undershoot_names_the_node_and_time_of_the_most_negative_density():
    """The same RK45 run through solve_ivp: its most negative output density is the one named."""
    g = _path(2001)
    flow, rho0 = PositiveHeatFlow(g), _spike(g.n)
    te = np.linspace(0.0, 10.0, 11)
    ref = solve_ivp(lambda _t, y: flow.rhs(y), (0.0, 10.0), rho0, t_eval=te, rtol=1e-2, atol=1e-6)
    y = ref.y.T
    bad_t, bad_i = np.unravel_index(np.argmin(y), y.shape)
    assert y.min() < 0 and bad_t > 0
    with pytest.raises(SolverError, match=(
        rf"^rk45: density became non-positive \(rho\[{bad_i}\] = {y.min():.3g} "
        rf"at t = {te[bad_t]:.6g}\); use method='bdf' \(positivity constraints\) or tighter "
        r"tolerances \(diagnostics: ")
    ):
        solve(flow, rho0, (0.0, 10.0), method="rk45", rtol=1e-2, atol=1e-6)


@pytest.fixture(scope="module")
def grid1600():
    """1,600 nodes: beyond the dense CVODE path, so "bdf" runs GMRES with multigrid."""
    g = grid((40, 40), spacing=1.0 / 40)
    x, y = g.positions.T
    v = 2.0 * np.cos(2 * np.pi * x) * np.sin(2 * np.pi * y)
    rho0 = np.exp(-((x - 0.3) ** 2 + (y - 0.6) ** 2) / 0.02) + 1e-3
    return WassersteinFlow(g, Entropy() + PotentialEnergy(v)), rho0 / rho0.sum()


def test_multigrid_preconditioned_bdf_conserves_mass_to_rounding(grid1600, monkeypatch):
    """Each preconditioned vector keeps its component sums, so every Krylov correction keeps
    the mass: even at a loose rtol = 1e-4 the drift is rounding, below n eps. The count of
    preconditioner set-ups is the number of multigrid hierarchies built."""
    import pyamg

    built = []
    original = pyamg.smoothed_aggregation_solver

    def counting(*args, **kwargs):
        built.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(pyamg, "smoothed_aggregation_solver", counting)
    flow, rho0 = grid1600
    tr = solve(flow, rho0, (0.0, 0.01), method="bdf", rtol=1e-4, atol=1e-12)
    assert tr.mass_drift <= flow.graph.n * np.finfo(float).eps
    assert tr.info["n_precond_setups"] == len(built) >= 1


def test_multigrid_preconditioned_bdf_refreshes_the_jacobian_as_the_state_moves(grid1600):
    """CVODE asks for a new Jacobian at least every 50 steps; the preconditioner takes it."""
    flow, rho0 = grid1600
    tr = solve(flow, rho0, (0.0, 1.0), method="bdf", rtol=1e-4, atol=1e-12)
    assert tr.n_jac > 1
    assert tr.mass_drift <= flow.graph.n * np.finfo(float).eps

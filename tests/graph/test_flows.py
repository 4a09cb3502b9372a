"""Gradient flows on graphs (seed 000 eqs. 26-29): Jacobians against finite
differences, conservation of mass, the energy identity, the Otto-metric
gradient-flow identity, Maas' identity, the linearisation at the uniform state,
Theorem 2.14 and Gibbs equilibria."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from conftest import (
    graphs_and_densities,
    random_connected_graph,
    random_density,
    random_graph,
    random_tangent,
)
from hypothesis import given, settings

from ottokit.functionals import Entropy, FDivergence, PorousMedium, PotentialEnergy
from ottokit.graph import (
    MEANS,
    DisconnectedGraphWarning,
    LinearHeatFlow,
    WassersteinFlow,
    edge_mean,
    from_edges,
    grid,
    otto_inner,
    weighted_laplacian,
)
from ottokit.graph import _flows as flows_module

F_NAMES = ["kl", "reverse_kl", "jsd", "chi2", "hellinger"]


def make_functional(name: str, n: int):
    rng = np.random.default_rng(17)
    q = random_density(n, seed=18, log10_ratio=1.0)
    v = rng.uniform(-2.0, 2.0, n)
    if name == "entropy":
        return Entropy()
    if name.startswith("porous_"):
        return PorousMedium(float(name.split("_")[1]))
    if name == "potential":
        return PotentialEnergy(v)
    if name == "entropy+potential":
        return Entropy() + PotentialEnergy(v)
    return FDivergence(name.removeprefix("f_"), q)


FLOW_FUNCTIONALS = [
    "entropy",
    "porous_0.5",
    "porous_2",
    "porous_3",
    "potential",
    "entropy+potential",
    *[f"f_{name}" for name in F_NAMES],
]


def fd_jacobian(flow, rho: np.ndarray, rel_step: float = 1e-6) -> np.ndarray:
    n = rho.size
    jac = np.empty((n, n))
    for j in range(n):
        h = rel_step * rho[j]
        up, down = rho.copy(), rho.copy()
        up[j] += h
        down[j] -= h
        jac[:, j] = (flow.rhs(up) - flow.rhs(down)) / (2 * h)
    return jac


@pytest.mark.parametrize("mean", MEANS)
@pytest.mark.parametrize("name", FLOW_FUNCTIONALS)
def test_analytic_jacobian_matches_finite_differences(name, mean):
    g = random_connected_graph(11, seed=5, extra=1.0)
    rho = random_density(g.n, seed=6, log10_ratio=2.0)
    flow = WassersteinFlow(g, make_functional(name, g.n), mean)
    jac = flow.jacobian(rho).toarray()
    fd = fd_jacobian(flow, rho)
    assert np.linalg.norm(fd - jac) <= 1e-6 * np.linalg.norm(jac)
    # sparsity: only edges and the diagonal
    pattern = g.adjacency.toarray() != 0
    np.fill_diagonal(pattern, True)
    assert np.all(jac[~pattern] == 0)


def test_linear_heat_flow_jacobian_is_minus_laplacian():
    g = random_connected_graph(13, seed=8, extra=1.0)
    rho = random_density(g.n, seed=9, log10_ratio=3.0)
    flow = LinearHeatFlow(g)
    lap = g.laplacian().toarray()
    np.testing.assert_allclose(flow.jacobian(rho).toarray(), -lap, rtol=0, atol=0)
    np.testing.assert_allclose(flow.rhs(rho), -lap @ rho, rtol=1e-14, atol=1e-16)


def flux_scale(g, rho, phi, mean) -> float:
    """``sum_edges 2 omega theta |phi_j - phi_i|``: the size of what cancels in sum_i rhs_i."""
    i, j = g.edges[:, 0], g.edges[:, 1]
    theta = edge_mean(rho[i], rho[j], mean)
    return float(2.0 * np.sum(g.weights * theta * np.abs(phi[j] - phi[i])))


@pytest.mark.parametrize("mean", MEANS)
@settings(max_examples=20, deadline=None)
@given(gd=graphs_and_densities())
def test_mass_is_conserved_rhs_and_jacobian_columns_sum_to_zero(mean, gd):
    g, rho = gd
    for name in FLOW_FUNCTIONALS:
        flow = WassersteinFlow(g, make_functional(name, g.n), mean)
        f = flow.rhs(rho)
        scale = flux_scale(g, rho, flow.functional.first_variation(rho), mean)
        assert abs(f.sum()) <= 1e-13 * scale + 1e-300, name
        jac = flow.jacobian(rho)
        col = np.asarray(jac.sum(axis=0)).ravel()
        assert np.all(np.abs(col) <= 1e-13 * np.asarray(abs(jac).sum(axis=0)).ravel()), name


def test_mass_is_conserved_on_each_component():
    g = random_graph(25, seed=3, p=0.08)
    assert g.n_components > 2
    rho = random_density(g.n, seed=4, log10_ratio=3.0)
    labels = g.components()
    i, j = g.edges[:, 0], g.edges[:, 1]
    lin_scale = 2.0 * np.sum(g.weights * np.abs(rho[j] - rho[i]))
    f = LinearHeatFlow(g).rhs(rho)
    assert np.all(np.abs(np.bincount(labels, f, g.n_components)) <= 1e-14 * lin_scale)
    for mean in MEANS:
        f = WassersteinFlow(g, Entropy(), mean).rhs(rho)
        scale = flux_scale(g, rho, np.log(rho), mean)
        assert np.all(np.abs(np.bincount(labels, f, g.n_components)) <= 1e-14 * scale)


@pytest.mark.parametrize("mean", MEANS)
@settings(max_examples=20, deadline=None)
@given(gd=graphs_and_densities(max_log10_ratio=6.0))
def test_dissipation_is_minus_dE_dt_and_the_otto_norm_of_the_velocity(mean, gd):
    """-dF/dt = -<dF/drho, rhs> = |grad_W F|^2_rho = <rhs, rhs>_rho (a gradient flow)."""
    g, rho = gd
    for name in ["entropy", "porous_2", "entropy+potential", "f_jsd", "f_hellinger"]:
        flow = WassersteinFlow(g, make_functional(name, g.n), mean)
        f = flow.rhs(rho)
        phi = flow.functional.first_variation(rho)
        diss = flow.dissipation(rho)
        assert diss >= 0
        scale = np.abs(phi - phi.mean()) @ np.abs(f) + 1e-300
        assert abs(diss + phi @ f) <= 1e-11 * scale, name
        otto = otto_inner(g, rho, f, f, mean)
        assert abs(diss - otto) <= 1e-8 * diss + 1e-300, name


@pytest.mark.parametrize("mean", MEANS)
@pytest.mark.parametrize("name", ["entropy", "porous_3", "potential", "f_reverse_kl"])
def test_energy_derivative_along_the_flow_by_finite_differences(name, mean):
    g = random_connected_graph(10, seed=12, extra=1.0)
    rho = random_density(g.n, seed=13, log10_ratio=1.0)
    flow = WassersteinFlow(g, make_functional(name, g.n), mean)
    f = flow.rhs(rho)
    tau = 1e-5 / np.abs(f / rho).max()
    de_dt = (flow.energy(rho + tau * f) - flow.energy(rho - tau * f)) / (2 * tau)
    diss = flow.dissipation(rho)
    assert abs(de_dt + diss) <= 1e-6 * diss


@settings(max_examples=30, deadline=None)
@given(gd=graphs_and_densities())
def test_maas_identity_log_mean_entropy_flow_is_the_linear_heat_equation(gd):
    g, rho = gd
    w_flow = WassersteinFlow(g, Entropy(), "logarithmic")
    lin = LinearHeatFlow(g)
    f_w, f_lin = w_flow.rhs(rho), lin.rhs(rho)
    scale = np.abs(g.laplacian()) @ rho
    assert np.all(np.abs(f_w - f_lin) <= 1e-13 * scale + 1e-300)
    d_w, d_lin = w_flow.dissipation(rho), lin.dissipation(rho)
    assert abs(d_w - d_lin) <= 1e-12 * d_lin
    jac_w = w_flow.jacobian(rho).toarray()
    lap = g.laplacian().toarray()
    # d/drho_j [theta (log rho_j - log rho_i)] = 1 comes out of two terms of size
    # ~ r / log r (r the density ratio on the edge), which cancel: rounding scales with r
    r = rho[g.edges[:, 1]] / rho[g.edges[:, 0]]
    tol = 1e-11 * np.abs(lap).max() + 1e-14 * np.max(g.weights * np.maximum(r, 1 / r))
    assert np.abs(jac_w + lap).max() <= tol


def _linearisation_remainders(flow, u, delta, jac, eps):
    base = flow.rhs(u)
    return np.array(
        [np.linalg.norm(flow.rhs(u + e * delta) - base - e * (jac @ delta)) for e in eps]
    )


def test_linearisation_at_uniform_state():
    """At rho = 1/n: J = -L for the entropy flow; the remainder of rhs_W - rhs_lin is O(eps^3).

    The arithmetic-mean flux (rho_i + rho_j)/2 log(rho_j/rho_i) agrees with
    rho_j - rho_i to second order (the quadratic terms cancel exactly), so the
    linearisation error of eq. (27) against eq. (28) decays with slope 3; a
    generic functional (porous medium) has the generic slope 2.
    """
    g = random_connected_graph(20, seed=21, extra=1.5, log10_weight_spread=0.0)
    n = g.n
    u = np.full(n, 1.0 / n)
    delta = random_tangent(n, seed=22) / n
    eps = np.array([1e-2, 3e-3, 1e-3, 3e-4, 1e-4])
    lap = g.laplacian()
    entropy_flow = WassersteinFlow(g, Entropy(), "arithmetic")
    assert np.abs(entropy_flow.rhs(u)).max() <= 1e-30
    jac = entropy_flow.jacobian(u).toarray()
    np.testing.assert_allclose(jac, -lap.toarray(), rtol=0, atol=1e-12 * np.abs(lap).max())
    lin = LinearHeatFlow(g)
    diff = np.array(
        [np.linalg.norm(entropy_flow.rhs(u + e * delta) - lin.rhs(u + e * delta)) for e in eps]
    )
    slope = np.polyfit(np.log(eps), np.log(diff), 1)[0]
    assert abs(slope - 3.0) <= 0.2, slope
    halving = np.linalg.norm(
        entropy_flow.rhs(u + 1e-3 * delta) - lin.rhs(u + 1e-3 * delta)
    ) / np.linalg.norm(entropy_flow.rhs(u + 5e-4 * delta) - lin.rhs(u + 5e-4 * delta))
    assert 7.5 <= halving <= 8.5, halving
    porous = WassersteinFlow(g, PorousMedium(2.0), "arithmetic")
    rem = _linearisation_remainders(porous, u, delta, porous.jacobian(u).toarray(), eps)
    slope2 = np.polyfit(np.log(eps), np.log(rem), 1)[0]
    assert abs(slope2 - 2.0) <= 0.2, slope2


def _theorem_2_14_gap(g, rho) -> float:
    """dH/dt(lin) - dH/dt(W) in the seed's closed form (proof of Thm 2.14).

    ``sum_edges omega rho_i log r ((r + 1)/2 log r - r + 1)`` with ``r = rho_j / rho_i``.
    """
    i, j = g.edges[:, 0], g.edges[:, 1]
    r = rho[j] / rho[i]
    lr = np.log(r)
    return float(np.sum(g.weights * rho[i] * lr * ((r + 1) / 2 * lr - r + 1)))


@settings(max_examples=30, deadline=None)
@given(gd=graphs_and_densities(max_log10_ratio=8.0))
def test_theorem_2_14_pointwise(gd):
    """dH/dt under eq. (27) <= dH/dt under eq. (28) <= 0 at every positive rho."""
    g, rho = gd
    dh_w = -WassersteinFlow(g, Entropy(), "arithmetic").dissipation(rho)
    dh_lin = -LinearHeatFlow(g).dissipation(rho)
    assert dh_lin < 0
    assert dh_w <= dh_lin
    # the gap is the seed's closed form, each edge term log r (...) >= 0
    gap = _theorem_2_14_gap(g, rho)
    assert gap > 0
    assert abs((dh_lin - dh_w) - gap) <= 1e-10 * abs(dh_w)
    # and the flows' own dH/dt = <log rho + 1, rhs>
    phi = np.log(rho) + 1
    assert abs(dh_w - phi @ WassersteinFlow(g, Entropy()).rhs(rho)) <= 1e-10 * abs(dh_w)
    assert abs(dh_lin - phi @ LinearHeatFlow(g).rhs(rho)) <= 1e-10 * abs(dh_lin)


def test_theorem_2_14_equality_at_uniform():
    g = random_connected_graph(15, seed=30, extra=1.0)
    u = np.full(g.n, 1.0 / g.n)
    assert WassersteinFlow(g, Entropy(), "arithmetic").dissipation(u) == 0.0
    assert LinearHeatFlow(g).dissipation(u) == 0.0
    # centring the first variation leaves rounding of order eps * (1/n) * eps
    assert np.abs(WassersteinFlow(g, Entropy(), "arithmetic").rhs(u)).max() <= 1e-30


@pytest.mark.parametrize("mean", MEANS)
def test_gibbs_state_is_stationary_with_the_reference_linearisation(mean):
    """rhs(rho*) = 0 at rho* ~ exp(-V); J(rho*) = -B^T diag(w theta(rho*)) B diag(1/rho*)."""
    g = random_connected_graph(14, seed=40, extra=1.0)
    v = np.random.default_rng(41).uniform(-3.0, 3.0, g.n)
    gibbs = np.exp(-v) / np.exp(-v).sum()
    flow = WassersteinFlow(g, Entropy() + PotentialEnergy(v), mean)
    scale = g.degree.max() * gibbs.max() * np.abs(v).max()
    assert np.abs(flow.rhs(gibbs)).max() <= 1e-14 * scale
    b = g.incidence.toarray()
    theta = edge_mean(gibbs[g.edges[:, 0]], gibbs[g.edges[:, 1]], mean)
    expected = -b.T @ np.diag(g.weights * theta) @ b @ np.diag(1.0 / gibbs)
    jac = flow.jacobian(gibbs).toarray()
    np.testing.assert_allclose(jac, expected, rtol=0, atol=1e-12 * np.abs(expected).max())
    # J diag(rho*) = -L_theta is symmetric negative semi-definite: a stable equilibrium
    sym = jac @ np.diag(gibbs)
    np.testing.assert_allclose(
        sym, -weighted_laplacian(g, gibbs, mean).toarray(), rtol=0, atol=1e-12 * np.abs(sym).max()
    )
    assert np.linalg.eigvalsh(0.5 * (sym + sym.T)).max() <= 1e-12 * np.abs(sym).max()


@pytest.mark.parametrize("mean", MEANS)
@pytest.mark.parametrize("name", F_NAMES)
def test_f_divergence_flows_vanish_at_q(name, mean):
    g = random_connected_graph(12, seed=50, extra=1.0)
    q = random_density(g.n, seed=51, log10_ratio=3.0)
    flow = WassersteinFlow(g, FDivergence(name, q), mean)
    assert np.abs(flow.rhs(q)).max() <= 1e-15 * g.degree.max()
    assert flow.dissipation(q) <= 1e-30
    assert abs(flow.energy(q)) <= 1e-15


def test_large_graph_rhs_matches_the_edge_formula():
    """Vectorised right-hand sides on a 518,400-node grid against a per-edge bincount of (26)."""
    g = grid((720, 720), spacing=(1.0 / 720, 1.0 / 500))
    n = g.n
    rho = random_density(n, seed=4, log10_ratio=4.0)
    i, j = g.edges[:, 0], g.edges[:, 1]
    logr = np.log(rho)
    flux = g.weights * 0.5 * (rho[i] + rho[j]) * (logr[j] - logr[i])
    expected = np.bincount(i, flux, n) - np.bincount(j, flux, n)
    scale = np.bincount(i, np.abs(flux), n) + np.bincount(j, np.abs(flux), n)
    got = WassersteinFlow(g, Entropy(), "arithmetic").rhs(rho)
    assert np.all(np.abs(got - expected) <= 1e-12 * scale + 1e-300)
    assert abs(got.sum()) <= 1e-13 * scale.sum()
    lin_flux = g.weights * (rho[j] - rho[i])
    lin_expected = np.bincount(i, lin_flux, n) - np.bincount(j, lin_flux, n)
    lin_scale = np.bincount(i, np.abs(lin_flux), n) + np.bincount(j, np.abs(lin_flux), n)
    got_lin = LinearHeatFlow(g).rhs(rho)
    assert np.all(np.abs(got_lin - lin_expected) <= 1e-13 * lin_scale + 1e-300)


@pytest.mark.parametrize("rhs_path", ["sparse product", "torch product"])
def test_mid_size_rhs_matches_the_edge_formula(rhs_path, monkeypatch):
    """From 5,000 nodes the arithmetic-mean rhs of (26) is one product W @ [phi, rho phi, rho]
    (SciPy below 300,000 nodes, torch above; the torch one is brought down to this size):
    on a 6,000-node weighted path with F = entropy + potential it is the per-edge sum
    sum_j w_ij (rho_i + rho_j)/2 (phi_j - phi_i)."""
    if rhs_path == "torch product":
        monkeypatch.setattr(flows_module, "TORCH_MIN_NODES", 5_000)
    n = 6_000
    rng = np.random.default_rng(21)
    edges = np.stack([np.arange(n - 1), np.arange(1, n)], axis=1)
    g = from_edges(edges, rng.uniform(0.5, 2.0, n - 1), n=n)
    assert flows_module.SPMM_MIN_NODES <= g.n
    assert (g.n >= flows_module.TORCH_MIN_NODES) == (rhs_path == "torch product")
    rho = random_density(n, seed=22, log10_ratio=3.0)
    v = rng.uniform(-2.0, 2.0, n)
    phi = np.log(rho) + 1.0 + v  # the first variation of entropy + potential
    i, j = g.edges[:, 0], g.edges[:, 1]
    flux = g.weights * 0.5 * (rho[i] + rho[j]) * (phi[j] - phi[i])
    expected = np.bincount(i, flux, n) - np.bincount(j, flux, n)
    scale = np.bincount(i, np.abs(flux), n) + np.bincount(j, np.abs(flux), n)
    got = WassersteinFlow(g, Entropy() + PotentialEnergy(v), "arithmetic").rhs(rho)
    assert np.all(np.abs(got - expected) <= 1e-12 * scale + 1e-300)


def test_flow_constructors_reject_bad_input():
    g = random_connected_graph(5, seed=0)
    with pytest.raises(ValueError, match="unknown mean 'geometric'"):
        WassersteinFlow(g, Entropy(), "geometric")
    with pytest.raises(ValueError, match="functional is defined on 4 nodes"):
        WassersteinFlow(g, PotentialEnergy(np.zeros(4)))
    with pytest.raises(TypeError, match="g must be"):
        WassersteinFlow(g.adjacency, Entropy())
    with pytest.raises(TypeError, match="functional must be"):
        WassersteinFlow(g, lambda rho: rho)
    with pytest.raises(TypeError, match="g must be"):
        LinearHeatFlow(None)



def test_linear_heat_dissipation_at_densities_with_zeros():
    """sum_edges w (rho_j - rho_i)(log rho_j - log rho_i): an edge between two empty nodes
    carries nothing, one from an empty to an occupied node makes it +inf; no warnings."""
    with pytest.warns(DisconnectedGraphWarning):
        cut = from_edges([(0, 1), (1, 2), (3, 4)], [1.0, 2.0, 3.0], n=5)
    joined = from_edges([(0, 1), (1, 2), (2, 3), (3, 4)], [1.0, 2.0, 0.5, 3.0], n=5)
    rho = np.array([0.0, 0.0, 0.0, 0.4, 0.6])  # edges (0, 1), (1, 2) join empty nodes
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = LinearHeatFlow(cut).dissipation(rho)
        assert LinearHeatFlow(joined).dissipation(rho) == np.inf  # edge (2, 3)
    assert got == pytest.approx(3.0 * (0.6 - 0.4) * np.log(0.6 / 0.4), rel=1e-14)


@pytest.mark.parametrize("rhs_path", ["sparse product", "torch product"])
def test_mid_size_rhs_with_isolated_last_nodes_and_a_far_off_potential(rhs_path, monkeypatch):
    """A 6,000-node weighted path followed by three isolated nodes: both mid-size products
    (eqs. 26 and 28) equal the per-edge sums, and the isolated nodes do not move. The
    potential sits near 1e6: constants drop out of (26), and the product, centred, loses
    no digits to it (uncentred, W @ [phi, rho phi, rho] would cancel terms of size 1e6)."""
    if rhs_path == "torch product":
        monkeypatch.setattr(flows_module, "TORCH_MIN_NODES", 5_000)
    n = 6_003
    rng = np.random.default_rng(23)
    edges = np.stack([np.arange(n - 4), np.arange(1, n - 3)], axis=1)
    with pytest.warns(DisconnectedGraphWarning):
        g = from_edges(edges, rng.uniform(0.5, 2.0, n - 4), n=n)
    rho = random_density(n, seed=24, log10_ratio=3.0)
    v = 1e6 + rng.uniform(-2.0, 2.0, n)
    i, j = g.edges[:, 0], g.edges[:, 1]
    w_flow = WassersteinFlow(g, PotentialEnergy(v), "arithmetic")
    # Maas: the log-mean entropy flow takes the per-edge path at every size, and is eq. (28)
    for flow in (w_flow, LinearHeatFlow(g), WassersteinFlow(g, Entropy(), "logarithmic")):
        if flow is w_flow:
            phi = flow.functional.first_variation(rho)
            flux = g.weights * 0.5 * (rho[i] + rho[j]) * (phi[j] - phi[i])
        else:
            flux = g.weights * (rho[j] - rho[i])
        expected = np.bincount(i, flux, n) - np.bincount(j, flux, n)
        scale = np.bincount(i, np.abs(flux), n) + np.bincount(j, np.abs(flux), n)
        got = flow.rhs(rho)
        assert np.all(np.abs(got - expected) <= 1e-12 * scale + 1e-300), flow
        assert np.all(got[-3:] == 0.0), flow


@pytest.mark.parametrize("mean", MEANS)
def test_stiffness_bound_is_the_largest_column_sum_of_the_jacobian(mean):
    """max_j sum_i |J_ij| (J by finite differences): the l1 operator norm, which bounds the
    spectral radius and, the columns summing to zero, equals 2 max_j |J_jj|."""
    g = random_connected_graph(12, seed=60, extra=1.0)
    rho = random_density(g.n, seed=61, log10_ratio=2.0)
    flow = WassersteinFlow(g, PorousMedium(3.0) + PotentialEnergy(np.arange(g.n) / g.n), mean)
    fd = fd_jacobian(flow, rho)
    bound = flow.stiffness_bound(rho)
    assert bound == pytest.approx(np.abs(fd).sum(axis=0).max(), rel=1e-6)
    assert bound == pytest.approx(2.0 * np.abs(np.diag(fd)).max(), rel=1e-6)
    assert np.abs(np.linalg.eigvals(fd)).max() <= bound
    assert np.abs(fd).sum(axis=1).max() != pytest.approx(bound, rel=1e-3)


def test_flows_repr_names_graph_functional_and_mean():
    g = random_connected_graph(5, seed=0)
    assert repr(WassersteinFlow(g, Entropy(), "logarithmic")) == (
        f"WassersteinFlow({g!r}, {Entropy()!r}, mean='logarithmic')"
    )
    assert repr(LinearHeatFlow(g)) == f"LinearHeatFlow({g!r})"


@pytest.mark.parametrize("mean", MEANS)
def test_an_isolated_last_node_changes_nothing(mean):
    """Appending an isolated node leaves the rhs, Jacobian and dissipation of the other
    nodes as they were; the isolated node neither moves nor couples (small-graph paths)."""
    g = random_connected_graph(9, seed=70, extra=1.0)
    with pytest.warns(DisconnectedGraphWarning):
        h = from_edges(g.edges, g.weights, n=g.n + 1)
    rho = random_density(g.n + 1, seed=71, log10_ratio=2.0)
    v = np.random.default_rng(72).uniform(-1.0, 1.0, g.n + 1)
    flow_h = WassersteinFlow(h, Entropy() + PotentialEnergy(v), mean)
    flow_g = WassersteinFlow(g, Entropy() + PotentialEnergy(v[:-1]), mean)
    rhs_h, rhs_g = flow_h.rhs(rho), flow_g.rhs(rho[:-1])
    assert rhs_h[-1] == 0.0
    np.testing.assert_allclose(rhs_h[:-1], rhs_g, rtol=0, atol=1e-15 * np.abs(rhs_g).max())
    jac_h, jac_g = flow_h.jacobian(rho).toarray(), flow_g.jacobian(rho[:-1]).toarray()
    assert np.all(jac_h[-1] == 0.0) and np.all(jac_h[:, -1] == 0.0)
    np.testing.assert_allclose(jac_h[:-1, :-1], jac_g, rtol=0, atol=1e-15 * np.abs(jac_g).max())
    assert flow_h.dissipation(rho) == pytest.approx(flow_g.dissipation(rho[:-1]), rel=1e-14)

"""Discrete Otto calculus (seed 000 §2.2, eqs. 19-25) against brute-force loops,
the integration-by-parts identity (23), dense linear algebra and the integral
form of the logarithmic mean."""

from __future__ import annotations

import math
import warnings

import mpmath
import numpy as np
import pytest
from conftest import (
    graphs_and_densities,
    random_connected_graph,
    random_density,
    random_tangent,
    seeds,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from ottokit.graph import (
    MEANS,
    DisconnectedGraphWarning,
    Graph,
    divergence,
    edge_mean,
    edge_mean_partials,
    from_edges,
    gradient,
    grid,
    otto_inner,
    potential,
    weighted_laplacian,
)
from ottokit.graph import _calculus as calculus_module

GAUSS_S, GAUSS_W = np.polynomial.legendre.leggauss(40)
GAUSS_S, GAUSS_W = 0.5 * (GAUSS_S + 1.0), 0.5 * GAUSS_W


def log_mean_integral(a: float, b: float) -> tuple[float, float, float]:
    """``L(a,b) = int_0^1 a^(1-s) b^s ds`` and its partials, by 40-point Gauss-Legendre."""
    r = b / a
    val = a * np.dot(GAUSS_W, r**GAUSS_S)
    d_a = np.dot(GAUSS_W, (1.0 - GAUSS_S) * r**GAUSS_S)
    d_b = np.dot(GAUSS_W, GAUSS_S * (1.0 / r) ** (1.0 - GAUSS_S))
    return float(val), float(d_a), float(d_b)


def theta_loop(a: float, b: float, mean: str) -> float:
    if mean == "arithmetic":
        return 0.5 * (a + b)
    return log_mean_integral(a, b)[0]


def neighbours(g: Graph) -> list[list[tuple[int, int, float]]]:
    """For each node i: ``(j, k, sign)`` with ``v_ij = sign * v[k]`` (v_ji = -v_ij)."""
    nb: list[list[tuple[int, int, float]]] = [[] for _ in range(g.n)]
    for k, (i, j) in enumerate(g.edges.tolist()):
        nb[i].append((j, k, 1.0))
        nb[j].append((i, k, -1.0))
    return nb


def grad_loop(g: Graph, u: np.ndarray, i: int, j: int, k: int) -> float:
    """Eq. (20) for the directed pair (i, j): ``sqrt(omega_ij) (u_j - u_i)``."""
    return float(np.sqrt(g.weights[k]) * (u[j] - u[i]))


@settings(max_examples=20, deadline=None)
@given(gd=graphs_and_densities(), seed=seeds)
def test_gradient_is_eq20(gd, seed):
    g, _ = gd
    u = np.random.default_rng(seed).standard_normal(g.n)
    expected = [grad_loop(g, u, i, j, k) for k, (i, j) in enumerate(g.edges.tolist())]
    np.testing.assert_allclose(gradient(g, u), expected, rtol=1e-15, atol=0)


@pytest.mark.parametrize("mean", MEANS)
@settings(max_examples=20, deadline=None)
@given(gd=graphs_and_densities(max_n=16), seed=seeds)
def test_divergence_is_eq24_loop(mean, gd, seed):
    g, rho = gd
    v = np.random.default_rng(seed).standard_normal(g.m)
    expected = np.zeros(g.n)
    scale = np.zeros(g.n)
    for i, nb in enumerate(neighbours(g)):
        for j, k, sign in nb:
            term = np.sqrt(g.weights[k]) * theta_loop(rho[i], rho[j], mean) * sign * v[k]
            expected[i] += term
            scale[i] += abs(term)
    err = np.abs(divergence(g, rho, v, mean) - expected)
    assert np.all(err <= 1e-13 * scale + 1e-300)


@settings(max_examples=30, deadline=None)
@given(gd=graphs_and_densities(), seed=seeds)
def test_duality_23_arithmetic_mean_brute_force(gd, seed):
    """sum_i f_i div(rho v)_i = -sum_i rho_i (grad f . v)_i, (phi . psi)_i from eq. (19)."""
    g, rho = gd
    rng = np.random.default_rng(seed)
    f, v = rng.standard_normal(g.n), rng.standard_normal(g.m)
    lhs = float(np.dot(f, divergence(g, rho, v, "arithmetic")))
    rhs, scale = 0.0, 0.0
    for i, nb in enumerate(neighbours(g)):
        dot_i = 0.0
        for j, k, sign in nb:
            dot_i += 0.5 * grad_loop(g, f, i, j, k) * sign * v[k]
            scale += abs(0.5 * rho[i] * grad_loop(g, f, i, j, k) * v[k])
        rhs -= rho[i] * dot_i
    assert abs(lhs - rhs) <= 1e-12 * scale


@pytest.mark.parametrize("mean", MEANS)
@settings(max_examples=30, deadline=None)
@given(gd=graphs_and_densities(), seed=seeds)
def test_duality_general_mean(mean, gd, seed):
    """sum_i f_i div(rho v)_i = -sum_edges theta_ij (grad f)_ij v_ij."""
    g, rho = gd
    rng = np.random.default_rng(seed)
    f, v = rng.standard_normal(g.n), rng.standard_normal(g.m)
    theta = np.array([theta_loop(rho[i], rho[j], mean) for i, j in g.edges.tolist()])
    terms = theta * gradient(g, f) * v
    lhs = float(np.dot(f, divergence(g, rho, v, mean)))
    assert abs(lhs + terms.sum()) <= 1e-12 * np.abs(terms).sum()


@pytest.mark.parametrize(
    "u", [0.0, 1e-14, 1e-9, -3e-6, 9.99e-5, 1.001e-4, -1e-4, 3e-3, 0.3, -0.9, 9.0, 1e6, -1 + 1e-7]
)
def test_log_mean_and_partials_match_the_integral_form(u):
    b = 0.37
    a = b * (1.0 + u)
    ref, ref_a, ref_b = log_mean_integral(a, b)
    theta = edge_mean(np.array([a]), np.array([b]), "logarithmic")[0]
    th, th_a, th_b = (x[0] for x in edge_mean_partials(np.array([a]), np.array([b]), "logarithmic"))
    # the 40-point rule is exact for |log(a/b)| up to ~20; r**s itself rounds like |s log r|
    tol = 1e-14 * (1.0 + abs(np.log1p(u)))
    assert abs(theta - ref) <= tol * ref
    assert abs(th - ref) <= tol * ref
    assert abs(th_a - ref_a) <= 1e-10 * max(ref_a, ref_b)
    assert abs(th_b - ref_b) <= 1e-10 * max(ref_a, ref_b)


def test_arithmetic_mean_and_partials():
    a, b = np.array([0.2, 3.0]), np.array([0.6, 1e-9])
    th, th_a, th_b = edge_mean_partials(a, b, "arithmetic")
    np.testing.assert_array_equal(th, (a + b) / 2)
    np.testing.assert_array_equal(edge_mean(a, b, "arithmetic"), (a + b) / 2)
    np.testing.assert_array_equal(th_a, [0.5, 0.5])
    np.testing.assert_array_equal(th_b, [0.5, 0.5])


@settings(max_examples=30, deadline=None)
@given(a=st.floats(1e-12, 1e3), b=st.floats(1e-12, 1e3), t=st.floats(1e-3, 1e3))
def test_log_mean_is_symmetric_homogeneous_and_between_geometric_and_arithmetic(a, b, t):
    x, y = np.array([a]), np.array([b])
    lm = edge_mean(x, y, "logarithmic")[0]
    assert abs(lm - edge_mean(y, x, "logarithmic")[0]) <= 1e-14 * lm
    assert abs(edge_mean(t * x, t * y, "logarithmic")[0] - t * lm) <= 1e-13 * t * lm
    assert np.sqrt(a * b) * (1 - 1e-14) <= lm <= 0.5 * (a + b) * (1 + 1e-14)


@pytest.mark.parametrize("mean", MEANS)
@settings(max_examples=20, deadline=None)
@given(gd=graphs_and_densities(), seed=seeds)
def test_weighted_laplacian_is_minus_div_rho_grad(mean, gd, seed):
    g, rho = gd
    u = np.random.default_rng(seed).standard_normal(g.n)
    lap = weighted_laplacian(g, rho, mean)
    lu = lap @ u
    ref = -divergence(g, rho, gradient(g, u), mean)
    scale = np.abs(lap) @ np.abs(u)
    assert np.all(np.abs(lu - ref) <= 1e-13 * scale + 1e-300)
    theta = np.array([theta_loop(rho[i], rho[j], mean) for i, j in g.edges.tolist()])
    b = g.incidence.toarray()
    dense = b.T @ np.diag(g.weights * theta) @ b
    np.testing.assert_allclose(lap.toarray(), dense, rtol=1e-13, atol=1e-13 * np.abs(dense).max())
    np.testing.assert_allclose(lap.toarray().sum(axis=0), 0.0, atol=1e-13 * np.abs(dense).max())


def test_weighted_laplacian_at_constant_density_is_scaled_laplacian():
    g = random_connected_graph(12, seed=2, extra=1.0)
    c = 1.0 / g.n
    for mean in MEANS:
        lap = weighted_laplacian(g, np.full(g.n, c), mean).toarray()
        np.testing.assert_allclose(lap, c * g.laplacian().toarray(), rtol=1e-14, atol=1e-16)


@pytest.mark.parametrize("mean", MEANS)
@settings(max_examples=25, deadline=None)
@given(gd=graphs_and_densities(), seed=seeds)
def test_potential_inverts_minus_div_rho_grad(mean, gd, seed):
    g, rho = gd
    drho = random_tangent(g.n, seed)
    u = potential(g, rho, drho, mean)
    lap = weighted_laplacian(g, rho, mean)
    residual = np.abs(lap @ u - drho)
    # normwise backward error: the residual is rounding relative to || |L_rho| |u| || + ||drho||
    # (a row-wise bound is not what a grounded solve guarantees: at condition ~1e8 one row's
    # residual can exceed its own row's scale, for a dense LU solve as well)
    bound = 1e-10 * ((np.abs(lap) @ np.abs(u)).max() + np.abs(drho).max())
    assert residual.max() <= bound
    assert abs(u.sum()) <= 1e-12 * np.abs(u).sum()


@pytest.mark.parametrize("mean", MEANS)
@settings(max_examples=25, deadline=None)
@given(gd=graphs_and_densities(max_log10_ratio=4.0), s1=seeds, s2=seeds)
def test_otto_inner_is_the_pseudoinverse_form(mean, gd, s1, s2):
    """<d1, d2>_rho = d1^T L_rho^+ d2 (connected graph), symmetric and positive."""
    g, rho = gd
    d1, d2 = random_tangent(g.n, s1), random_tangent(g.n, s2)
    pinv = np.linalg.pinv(weighted_laplacian(g, rho, mean).toarray(), hermitian=True)
    ref = float(d1 @ pinv @ d2)
    scale = float(np.sqrt((d1 @ pinv @ d1) * (d2 @ pinv @ d2)))
    val12 = otto_inner(g, rho, d1, d2, mean)
    assert abs(val12 - ref) <= 1e-7 * scale
    assert abs(val12 - otto_inner(g, rho, d2, d1, mean)) <= 1e-12 * scale
    norm1 = otto_inner(g, rho, d1, d1, mean)
    assert norm1 > 0
    assert abs(norm1 - d1 @ pinv @ d1) <= 1e-7 * norm1
    # Cauchy-Schwarz in the Otto metric
    assert val12**2 <= norm1 * otto_inner(g, rho, d2, d2, mean) * (1 + 1e-12)


@settings(max_examples=20, deadline=None)
@given(gd=graphs_and_densities(max_n=14), s1=seeds, s2=seeds)
def test_otto_inner_is_eq25_for_the_arithmetic_mean(gd, s1, s2):
    """<d1, d2>_rho = sum_i rho_i (grad u1 . grad u2)_i, the seed's definition (25)."""
    g, rho = gd
    d1, d2 = random_tangent(g.n, s1), random_tangent(g.n, s2)
    u1, u2 = potential(g, rho, d1), potential(g, rho, d2)
    total, scale = 0.0, 0.0
    for i, nb in enumerate(neighbours(g)):
        for j, k, _ in nb:
            term = 0.5 * rho[i] * grad_loop(g, u1, i, j, k) * grad_loop(g, u2, i, j, k)
            total += term
            scale += abs(term)
    assert abs(otto_inner(g, rho, d1, d2) - total) <= 1e-10 * scale


def test_otto_inner_on_a_disconnected_graph_adds_over_components():
    g1 = random_connected_graph(7, seed=1)
    g2 = random_connected_graph(5, seed=2)
    edges = np.concatenate([g1.edges, g2.edges + g1.n])
    with pytest.warns(DisconnectedGraphWarning):
        g = from_edges(edges, np.concatenate([g1.weights, g2.weights]), n=g1.n + g2.n)
    rho = random_density(g.n, seed=3, log10_ratio=2.0)
    d = random_tangent(g.n, seed=4, labels=g.components())
    split = g1.n
    whole = otto_inner(g, rho, d, d)
    parts = otto_inner(g1, rho[:split], d[:split], d[:split]) + otto_inner(
        g2, rho[split:], d[split:], d[split:]
    )
    assert abs(whole - parts) <= 1e-10 * whole
    with pytest.raises(ValueError, match="drho is not a tangent vector.*component"):
        otto_inner(g, rho, d + np.where(g.components() == 0, 0.01, -0.01 * 7 / 5), d)


def test_log_mean_of_extremely_different_positive_densities():
    a, b = np.array([1.0]), np.array([1e-310])
    expected = (1.0 - 1e-310) / (0.0 - np.log(1e-310))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        forward = edge_mean(a, b, "logarithmic")[0]
        backward = edge_mean(b, a, "logarithmic")[0]
    assert abs(backward - expected) <= 1e-14 * expected
    assert abs(forward - expected) <= 1e-14 * expected


def log_mean_partials_mpmath(a: float, b: float) -> tuple[float, float, float]:
    """theta = (a - b)/(log a - log b) and its partials at 60 digits, the partials by
    mpmath's numerical differentiation in a relative step (a s, b s at s = 1)."""
    with mpmath.workdps(60):
        a_, b_ = mpmath.mpf(a), mpmath.mpf(b)
        theta = lambda x, y: (x - y) / (mpmath.log(x) - mpmath.log(y))
        d_a = mpmath.diff(lambda s: theta(a_ * s, b_), 1) / a_
        d_b = mpmath.diff(lambda s: theta(a_, b_ * s), 1) / b_
        return float(theta(a_, b_)), float(d_a), float(d_b)


# (a, b) with a/b or b/a outside the normal floating-point range: the ratio or its
# reciprocal overflows, underflows or is subnormal; the partial along the tiny density
# overflows only where its true value does
EXTREME_PAIRS = [
    (1e-310, 1.0),
    (1e-10, 1e300),
    (1e-200, 1e200),
    (1e-320, 1e-5),
    (5e-324, 1.0),
    (3e-308, 1.0),
    (2.5e-308, 1.0),
    (1e-300, 1e10),
]


@pytest.mark.parametrize("swap", [False, True], ids=["small-first", "small-second"])
@pytest.mark.parametrize(("small", "large"), EXTREME_PAIRS)
def test_log_mean_partials_at_extreme_ratios_match_mpmath(small, large, swap):
    """Both argument orders, against 60-digit values; d theta along the large density is
    about 1/log(large/small), along the small one about large/(small log^2), inf only
    where that exceeds the largest float."""
    a, b = (large, small) if swap else (small, large)
    expected = log_mean_partials_mpmath(a, b)
    got = [float(x[0]) for x in edge_mean_partials(np.array([a]), np.array([b]), "logarithmic")]
    for name, value, ref in zip(("theta", "d_a", "d_b"), got, expected, strict=True):
        if math.isinf(ref):
            assert value == math.inf, name
        else:
            assert abs(value - ref) <= 1e-12 * abs(ref), name
    # the partials are those of a symmetric function: swapping the arguments swaps them
    swapped = edge_mean_partials(np.array([b]), np.array([a]), "logarithmic")
    for value, ref in ((swapped[1][0], got[2]), (swapped[2][0], got[1])):
        assert value == ref or abs(value - ref) <= 1e-12 * abs(ref)


def test_log_mean_with_one_zero_density_is_zero_without_warnings():
    """L(0, b) = lim_{a -> 0} (a - b)/(log a - log b) = 0, in either argument order."""
    a, b = np.array([0.0, 0.3, 1e-300]), np.array([0.7, 0.0, 0.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(edge_mean(a, b, "logarithmic"), 0.0)
        np.testing.assert_array_equal(edge_mean(b, a, "logarithmic"), 0.0)


@pytest.mark.parametrize("scale", [1e-6, 1.0, 1e6])
def test_tangent_check_is_relative_to_the_vector(scale):
    """Potentials are linear in drho, whatever its size; a vector whose sum is off by 1e-6 of
    its l1 norm is refused at every size, and the zero vector has the zero potential."""
    g = random_connected_graph(8, seed=3)
    rho = random_density(g.n, seed=4, log10_ratio=2.0)
    d = random_tangent(g.n, seed=5)
    u = potential(g, rho, d)
    np.testing.assert_allclose(potential(g, rho, scale * d), scale * u, rtol=1e-10, atol=0)
    off = d + 1e-6 * np.abs(d).sum() * (np.arange(g.n) == 0)
    with pytest.raises(ValueError, match="drho is not a tangent vector"):
        potential(g, rho, scale * off)
    np.testing.assert_array_equal(potential(g, rho, np.zeros(g.n)), 0.0)


def test_calculus_on_a_graph_whose_last_node_is_isolated():
    """An isolated node carries no edge: its gradient terms, divergence and Laplacian row are
    zero, and the arrays still have one entry per node."""
    with pytest.warns(DisconnectedGraphWarning):
        g = from_edges([(0, 1), (1, 2), (0, 2)], [1.0, 2.0, 0.5], n=4)
    rho = np.array([0.3, 0.2, 0.4, 0.1])
    v = np.array([1.0, -2.0, 0.5])
    for mean in MEANS:
        div = divergence(g, rho, v, mean)
        assert div.shape == (4,) and div[3] == 0.0
        assert abs(div.sum()) <= 1e-15
        lap = weighted_laplacian(g, rho, mean).toarray()
        assert lap.shape == (4, 4) and np.all(lap[3] == 0.0) and np.all(lap[:, 3] == 0.0)
    d = np.array([0.1, -0.05, -0.05, 0.0])
    u = potential(g, rho, d)
    assert u.shape == (4,) and u[3] == 0.0


@pytest.mark.parametrize(
    "call",
    [
        lambda g, rho, d: gradient(g, rho),
        lambda g, rho, d: divergence(g, rho, np.ones(7)),
        lambda g, rho, d: weighted_laplacian(g, rho),
        lambda g, rho, d: potential(g, rho, d),
        lambda g, rho, d: otto_inner(g, rho, d, d),
    ],
    ids=["gradient", "divergence", "weighted_laplacian", "potential", "otto_inner"],
)
def test_calculus_refuses_a_non_graph_naming_g(call):
    g = random_connected_graph(5, seed=0)
    rho = random_density(g.n, seed=1, log10_ratio=1.0)
    with pytest.raises(TypeError, match=r"^g must be an ottokit\.graph\.Graph, got csr_matrix"):
        call(g.adjacency, rho, random_tangent(g.n, seed=2))


@pytest.mark.parametrize("mean", MEANS)
def test_multigrid_potential_matches_the_sparse_lu(mean, monkeypatch):
    """Beyond 200,000 nodes the potential comes from multigrid-preconditioned CG instead of a
    sparse LU (the threshold is brought down to this 900-node grid): the same u, to 1e-9."""
    g = grid((30, 30), spacing=(1.0 / 30, 1.0 / 20))
    rng = np.random.default_rng(6)
    rho = rng.uniform(0.5, 2.0, g.n)
    rho /= rho.sum()
    d = random_tangent(g.n, seed=7)
    lu = potential(g, rho, d, mean)
    monkeypatch.setattr(calculus_module, "_AMG_MIN_NODES", 100)
    amg = potential(g, rho, d, mean)
    assert np.abs(amg - lu).max() <= 1e-9 * np.abs(lu).max()
    residual = weighted_laplacian(g, rho, mean) @ amg - d
    assert np.abs(residual).max() <= 1e-9 * np.abs(d).max()


def test_zero_density_needs_the_arithmetic_mean_and_it_is_the_default():
    """The log mean takes a logarithm, so rho_i = 0 is refused; the arithmetic mean (the
    seed's, and the default of every function) is defined there."""
    g = random_connected_graph(6, seed=0)
    rho = random_density(g.n, seed=1, log10_ratio=1.0)
    rho[3] = 0.0
    with pytest.raises(ValueError, match=r"rho must be strictly positive"):
        weighted_laplacian(g, rho, "logarithmic")
    lap = weighted_laplacian(g, rho).toarray()
    np.testing.assert_array_equal(lap, weighted_laplacian(g, rho, "arithmetic").toarray())
    theta = 0.5 * (rho[g.tail] + rho[g.head])
    dense = g.incidence.T.toarray() @ np.diag(g.weights * theta) @ g.incidence.toarray()
    np.testing.assert_allclose(lap, dense, rtol=1e-14, atol=1e-16)
    a, b = rho[g.tail], rho[g.head]
    for got, want in zip(edge_mean_partials(a, b), (theta, 0.5, 0.5), strict=True):
        np.testing.assert_array_equal(got, np.broadcast_to(want, a.shape))


def test_calculus_accepts_array_like_densities():
    g = random_connected_graph(6, seed=0)
    rho = random_density(g.n, seed=1, log10_ratio=1.0)
    d = random_tangent(g.n, seed=2)
    as_list = otto_inner(g, rho.tolist(), d.tolist(), d.tolist())
    assert abs(as_list - otto_inner(g, rho, d, d)) <= 1e-14 * abs(as_list)


@pytest.mark.parametrize("mean", MEANS)
def test_otto_inner_computes_in_float64_whatever_the_input_precision(mean):
    """A float32 density is widened before the edge means are taken: the same inner product
    as from its float64 copy, not one rounded to single precision."""
    g = random_connected_graph(7, seed=0)
    rho = random_density(g.n, seed=1, log10_ratio=1.0).astype(np.float32)
    d = random_tangent(g.n, seed=2)
    wide = otto_inner(g, rho.astype(np.float64), d, d, mean)
    assert abs(otto_inner(g, rho, d, d, mean) - wide) <= 1e-13 * wide


def test_calculus_rejects_bad_input():
    g = random_connected_graph(6, seed=0)
    rho = random_density(g.n, seed=1, log10_ratio=1.0)
    d = random_tangent(g.n, seed=2)
    v = np.ones(g.m)
    with pytest.raises(ValueError, match="unknown mean 'geometric'"):
        divergence(g, rho, v, "geometric")
    with pytest.raises(ValueError, match="unknown mean"):
        weighted_laplacian(g, rho, "harmonic")
    with pytest.raises(ValueError, match="unknown mean"):
        potential(g, rho, d, "max")
    with pytest.raises(ValueError, match="unknown mean"):
        edge_mean(rho, rho, "min")
    with pytest.raises(ValueError, match="unknown mean"):
        edge_mean_partials(rho, rho, "min")
    with pytest.raises(ValueError, match="drho is not a tangent vector"):
        potential(g, rho, d + 1e-3)
    with pytest.raises(ValueError, match="drho is not a tangent vector"):
        otto_inner(g, rho, d, d + 1e-3)
    with pytest.raises(ValueError, match="drho must be a vector of length"):
        potential(g, rho, d[:-1])
    with pytest.raises(ValueError, match=r"v must be a vector of length"):
        divergence(g, rho, v[:-1])
    with pytest.raises(ValueError, match=r"u must be finite"):
        gradient(g, np.where(np.arange(g.n) == 2, np.nan, 0.0))
    with pytest.raises(ValueError, match=r"u must be a vector of length"):
        gradient(g, np.zeros(g.n + 1))
    with pytest.raises(ValueError, match=r"rho must be non-negative"):
        divergence(g, rho - 0.5, v)
    with pytest.raises(ValueError, match=r"rho must be finite"):
        weighted_laplacian(g, np.where(np.arange(g.n) == 1, np.inf, rho))
    zero = rho.copy()
    zero[3] = 0.0
    with pytest.raises(ValueError, match=r"rho must be strictly positive"):
        divergence(g, zero, v, "logarithmic")
    with pytest.raises(ValueError, match=r"rho must be strictly positive"):
        potential(g, zero, d)
    # the arithmetic mean needs no logarithm: a zero density is a valid edge density
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.all(np.isfinite(divergence(g, zero, v, "arithmetic")))

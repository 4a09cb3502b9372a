"""Graph structure against independent references: brute-force distances,
finite-difference Laplacians and their closed-form spectra, networkx/scipy
components, and round trips through every builder (seed 000 §2.2)."""

from __future__ import annotations

import re
import warnings
from types import SimpleNamespace

import networkx as nx
import numpy as np
import pytest
import scipy.sparse as sp
from conftest import random_connected_graph, random_graph, seeds
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.linalg import expm
from scipy.sparse.csgraph import connected_components

from ottokit._memory import MemoryEstimateError, format_bytes
from ottokit.graph import (
    DisconnectedGraphWarning,
    Graph,
    LinearHeatFlow,
    expected_geometric_edges,
    from_edges,
    from_networkx,
    from_scipy,
    grid,
    random_geometric,
    solve,
)


def assert_same_graph(a: Graph, b: Graph) -> None:
    assert a.n == b.n
    np.testing.assert_array_equal(a.edges, b.edges)
    np.testing.assert_allclose(a.weights, b.weights, rtol=1e-15, atol=0.0)


def brute_force_pairs(pos: np.ndarray, radius: float) -> set[tuple[int, int]]:
    """All pairs ``i < j`` at distance below ``radius``, by an O(n^2) double loop in NumPy."""
    dist = np.sqrt(((pos[:, None, :] - pos[None, :, :]) ** 2).sum(axis=-1))
    i, j = np.nonzero(np.triu(dist < radius, k=1))
    return set(zip(i.tolist(), j.tolist(), strict=True))


def neumann_fd_laplacian(n: int, h: float, periodic: bool) -> np.ndarray:
    """``(1/h^2) tridiag(-1, 2, -1)``; ends 1 on the diagonal (no-flux) or wrapped (periodic)."""
    lap = 2.0 * np.eye(n) - np.eye(n, k=1) - np.eye(n, k=-1)
    if periodic:
        lap[0, -1] = lap[-1, 0] = -1.0
    else:
        lap[0, 0] = lap[-1, -1] = 1.0
    return lap / h**2


def fd_spectrum(n: int, h: float, periodic: bool) -> np.ndarray:
    """Closed-form eigenvalues ``(4/h^2) sin^2(pi k / n)`` (periodic) or ``sin^2(pi k / 2n)``."""
    k = np.arange(n)
    return 4.0 / h**2 * np.sin(np.pi * k / (n if periodic else 2 * n)) ** 2


@pytest.mark.parametrize(("n", "radius", "dim"), [(200, 0.12, 2), (150, 0.25, 3)])
def test_random_geometric_edges_are_exactly_the_close_pairs(n, radius, dim):
    center = (0.5,) * dim
    g = random_geometric(n, radius, seed=7, center=center, dim=dim)
    assert g.positions.shape == (n, dim)
    np.testing.assert_array_equal(g.positions[0], center)
    assert np.all((g.positions >= 0.0) & (g.positions <= 1.0))
    assert set(map(tuple, g.edges.tolist())) == brute_force_pairs(g.positions, radius)
    assert np.all(g.edges[:, 0] < g.edges[:, 1])
    np.testing.assert_array_equal(g.weights, np.ones(g.m))
    again = random_geometric(n, radius, seed=7, center=center, dim=dim)
    assert_same_graph(g, again)


@pytest.mark.parametrize(("radius", "dim"), [(0.1, 20), (0.02, 12)])
def test_random_geometric_high_dimension_small_radius(radius, dim):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DisconnectedGraphWarning)
        g = random_geometric(60, radius, seed=0, dim=dim)
    assert set(map(tuple, g.edges.tolist())) == brute_force_pairs(g.positions, radius)


@pytest.mark.parametrize("periodic", [False, True])
@pytest.mark.parametrize(("n", "h"), [(3, 0.5), (7, 1.0), (12, 0.25)])
def test_grid_1d_laplacian_is_the_finite_difference_matrix(n, h, periodic):
    g = grid(n, spacing=h, periodic=periodic)
    lap = g.laplacian().toarray()
    expected = neumann_fd_laplacian(n, h, periodic)
    np.testing.assert_allclose(lap, expected, rtol=1e-14, atol=1e-14 / h**2)
    np.testing.assert_allclose(g.weights, np.full(g.m, 1.0 / h**2), rtol=1e-15)
    np.testing.assert_allclose(g.positions[:, 0], (np.arange(n) + 0.5) * h, rtol=1e-15)
    eig = np.linalg.eigvalsh(lap)
    np.testing.assert_allclose(eig, np.sort(fd_spectrum(n, h, periodic)), atol=1e-11 / h**2)


@pytest.mark.parametrize("periodic", [(False, False), (True, False), (False, True), (True, True)])
def test_grid_2d_laplacian_is_the_kronecker_sum(periodic):
    shape, spacing = (5, 4), (0.5, 0.2)
    g = grid(shape, spacing=spacing, periodic=periodic)
    l0 = neumann_fd_laplacian(shape[0], spacing[0], periodic[0])
    l1 = neumann_fd_laplacian(shape[1], spacing[1], periodic[1])
    expected = np.kron(l0, np.eye(shape[1])) + np.kron(np.eye(shape[0]), l1)
    scale = 1.0 / min(spacing) ** 2
    np.testing.assert_allclose(g.laplacian().toarray(), expected, rtol=0, atol=1e-13 * scale)
    spec = np.add.outer(
        fd_spectrum(shape[0], spacing[0], periodic[0]),
        fd_spectrum(shape[1], spacing[1], periodic[1]),
    ).ravel()
    np.testing.assert_allclose(
        np.linalg.eigvalsh(g.laplacian().toarray()), np.sort(spec), atol=1e-11 * scale
    )
    ii, jj = np.indices(shape)
    expected_pos = np.stack([(ii.ravel() + 0.5) * 0.5, (jj.ravel() + 0.5) * 0.2], axis=1)
    np.testing.assert_allclose(g.positions, expected_pos, rtol=1e-15)


def test_grid_laplacian_is_a_second_order_discretisation_of_minus_u_xx():
    # u = cos(2 pi x) on the periodic unit interval: -u'' = 4 pi^2 u
    errors = []
    sizes = [16, 32, 64, 128]
    for n in sizes:
        g = grid(n, spacing=1.0 / n, periodic=True)
        x = g.positions[:, 0]
        u = np.cos(2 * np.pi * x)
        errors.append(np.max(np.abs(g.laplacian() @ u - 4 * np.pi**2 * u)))
    slope = np.polyfit(np.log(sizes), np.log(errors), 1)[0]
    assert abs(slope + 2.0) < 0.05, slope


def test_incidence_and_laplacian_definitions():
    g = random_connected_graph(15, seed=3, extra=1.5)
    rng = np.random.default_rng(0)
    u = rng.standard_normal(g.n)
    bu = g.incidence @ u
    for k, (i, j) in enumerate(g.edges):
        assert bu[k] == u[j] - u[i]
    b = g.incidence.toarray()
    w = np.zeros((g.n, g.n))
    w[g.edges[:, 0], g.edges[:, 1]] = g.weights
    w += w.T
    lap = g.laplacian().toarray()
    np.testing.assert_allclose(g.adjacency.toarray(), w, rtol=0, atol=0)
    np.testing.assert_allclose(g.degree, w.sum(axis=1), rtol=1e-14)
    np.testing.assert_allclose(lap, b.T @ np.diag(g.weights) @ b, rtol=1e-14, atol=1e-14)
    np.testing.assert_allclose(lap, np.diag(w.sum(axis=1)) - w, rtol=1e-14, atol=1e-14)


# edgeless draws hit the integer-degree warning that test_edgeless_graph_degree_is_float covers
@pytest.mark.filterwarnings("ignore:Input has data type int64:FutureWarning")
@settings(max_examples=30, deadline=None)
@given(n=st.integers(2, 30), seed=seeds, p=st.floats(0.02, 0.4))
def test_laplacian_psd_zero_row_sums_and_kernel_counts_components(n, seed, p):
    g = random_graph(n, seed, p)
    lap = g.laplacian().toarray()
    scale = max(1.0, float(np.abs(lap).max()))
    np.testing.assert_allclose(lap, lap.T, rtol=0, atol=0)
    np.testing.assert_allclose(lap.sum(axis=1), 0.0, atol=1e-13 * scale)
    eig = np.linalg.eigvalsh(lap)
    assert eig.min() >= -1e-12 * scale
    n_ref, labels_ref = connected_components(sp.csr_matrix(lap != 0), directed=False)
    assert g.n_components == n_ref
    assert int(np.sum(eig < 1e-9 * scale)) == n_ref
    # labels agree up to renaming
    pairs = set(zip(g.components().tolist(), labels_ref.tolist(), strict=True))
    assert len(pairs) == n_ref


@pytest.mark.parametrize("build", [lambda: grid(1), lambda: from_edges(np.zeros((0, 2)), n=1)])
def test_edgeless_graph_degree_is_float(build):
    g = build()
    assert g.degree.dtype == np.float64
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        lap = g.laplacian()
    assert lap.dtype == np.float64
    assert lap.shape == (1, 1) and lap.nnz == 0


def test_components_match_networkx_and_warn():
    rng = np.random.default_rng(5)
    blocks = [random_connected_graph(k, seed=s) for s, k in enumerate([6, 1, 9, 4])]
    perm = rng.permutation(sum(b.n for b in blocks))
    edges, weights, offset = [], [], 0
    for b in blocks:
        edges.append(perm[b.edges + offset])
        weights.append(b.weights)
        offset += b.n
    with pytest.warns(DisconnectedGraphWarning, match="4 connected components"):
        g = from_edges(np.concatenate(edges), np.concatenate(weights), n=offset)
    assert g.n_components == 4
    assert not g.is_connected
    labels = g.components()
    ours = {frozenset(np.flatnonzero(labels == c).tolist()) for c in range(g.n_components)}
    h = nx.Graph()
    h.add_nodes_from(range(g.n))
    h.add_edges_from(g.edges.tolist())
    assert ours == {frozenset(c) for c in nx.connected_components(h)}


def test_from_scipy_round_trip_sparse_and_dense():
    g = random_connected_graph(20, seed=11, extra=2.0)
    assert_same_graph(from_scipy(g.adjacency), g)
    assert_same_graph(from_scipy(g.adjacency.toarray()), g)
    assert_same_graph(from_scipy(sp.coo_array(g.adjacency)), g)


def test_from_networkx_round_trip_with_labels_and_positions():
    g = random_geometric(40, 0.3, seed=2)
    names = [f"v{k}" for k in range(g.n)]
    h = nx.Graph()
    for k in range(g.n):
        h.add_node(names[k], pos=tuple(g.positions[k]))
    rng = np.random.default_rng(1)
    w = rng.uniform(0.5, 2.0, g.m)
    for (i, j), wk in zip(g.edges, w, strict=True):
        h.add_edge(names[j], names[i], weight=wk)
    back = from_networkx(h)
    expected = from_edges(g.edges, w, n=g.n, positions=g.positions)
    assert_same_graph(back, expected)
    np.testing.assert_array_equal(back.positions, g.positions)
    nx_lap = nx.laplacian_matrix(h, nodelist=names, weight="weight").toarray()
    np.testing.assert_allclose(back.laplacian().toarray(), nx_lap, rtol=1e-14, atol=1e-14)


def test_from_edges_is_invariant_to_orientation_and_order():
    g = random_connected_graph(25, seed=4, extra=1.0)
    rng = np.random.default_rng(9)
    order = rng.permutation(g.m)
    flip = rng.random(g.m) < 0.5
    e = g.edges[order].copy()
    e[flip] = e[flip][:, ::-1]
    assert_same_graph(from_edges(e, g.weights[order], n=g.n), g)
    assert_same_graph(from_edges(g.edges.tolist(), list(g.weights)), g)


def test_equal_duplicate_edges_are_merged():
    g = from_edges([(0, 1), (1, 2), (2, 1), (0, 1)], [2.0, 3.0, 3.0, 2.0])
    assert g.m == 2
    np.testing.assert_array_equal(g.edges, [[0, 1], [1, 2]])
    np.testing.assert_array_equal(g.weights, [2.0, 3.0])


@pytest.mark.parametrize(
    ("edges", "weights", "n", "match"),
    [
        ([(0, 1), (1, 2)], [1.0, 0.0], None, r"weights.*positive"),
        ([(0, 1), (1, 2)], [1.0, -2.0], None, r"weights.*positive"),
        ([(0, 1), (1, 2)], [np.nan, 1.0], None, r"weights.*finite"),
        ([(0, 1), (1, 2)], [1.0, np.inf], None, r"weights.*finite"),
        ([(0, 1), (1, 2)], [1.0], None, r"weights.*one entry per edge"),
        ([(0, 1), (2, 2)], None, None, r"edges.*self-loop"),
        ([(0, 1), (1, 5)], None, 4, r"edges.*out of range"),
        ([(0, 1), (-1, 2)], None, 4, r"edges.*out of range"),
        ([(0, 1), (1, 0)], [1.0, 2.0], None, r"edges.*duplicate edge \(0, 1\).*conflicting"),
        ([(0, 1, 2)], None, None, r"edges.*shape"),
    ],
)
def test_from_edges_rejects_bad_input(edges, weights, n, match):
    with pytest.raises(ValueError, match=match):
        from_edges(edges, weights, n=n)


def test_builders_reject_bad_input():
    with pytest.raises(TypeError, match="edges"):
        from_edges([(0.0, 1.5)])
    with pytest.raises(ValueError, match="adjacency.*symmetric"):
        from_scipy(np.array([[0.0, 1.0], [2.0, 0.0]]))
    with pytest.raises(ValueError, match="adjacency.*self-loop"):
        from_scipy(np.array([[1.0, 1.0], [1.0, 0.0]]))
    with pytest.raises(ValueError, match="adjacency.*square"):
        from_scipy(np.ones((2, 3)))
    with pytest.raises(ValueError, match="weights.*positive"):
        from_scipy(np.array([[0.0, -1.0], [-1.0, 0.0]]))
    with pytest.raises(ValueError, match="undirected"):
        from_networkx(nx.DiGraph([(0, 1)]))
    with pytest.raises(ValueError, match="weights.*positive"):
        from_networkx(nx.Graph([(0, 1, {"weight": 0.0})]))
    with pytest.raises(ValueError, match="radius"):
        random_geometric(10, -0.1, seed=0)
    with pytest.raises(ValueError, match="center"):
        random_geometric(10, 0.1, seed=0, center=(0.5, 0.5, 0.5))
    with pytest.raises(ValueError, match="spacing"):
        grid(4, spacing=0.0)
    with pytest.raises(ValueError, match="periodic"):
        grid(2, periodic=True)


def unit_square_pair_probability(r: float) -> float:
    """P(|X - Y| < r) for X, Y uniform on [0, 1]^2 and r <= 1: pi r^2 - 8 r^3 / 3 + r^4 / 2."""
    return np.pi * r**2 - 8.0 * r**3 / 3.0 + r**4 / 2.0


@pytest.mark.filterwarnings("ignore::ottokit.graph.DisconnectedGraphWarning")
@pytest.mark.parametrize("r", [0.05, 0.1, 0.3])
def test_expected_edges_match_the_mean_edge_count_in_2d(r):
    n, trials = 400, 20
    mean_m = np.mean([random_geometric(n, r, seed=s).m for s in range(trials)])
    exact = n * (n - 1) / 2 * unit_square_pair_probability(r)
    assert expected_geometric_edges(n, r, 2) == pytest.approx(exact, rel=1e-12)
    assert mean_m == pytest.approx(exact, rel=0.05)


@pytest.mark.filterwarnings("ignore::ottokit.graph.DisconnectedGraphWarning")
def test_expected_edges_beyond_unit_radius_and_in_other_dimensions():
    rng = np.random.default_rng(0)
    x, y = rng.random((200_000, 2)), rng.random((200_000, 2))
    dist = np.linalg.norm(x - y, axis=1)
    for r in (1.2, 1.4):  # the 2-D formula's second branch, against Monte Carlo
        assert expected_geometric_edges(2, r) == pytest.approx(np.mean(dist < r), abs=0.003)
    # 1-D: P(|X - Y| < r) = 2 r - r^2 exactly
    assert expected_geometric_edges(2, 0.3, dim=1) == pytest.approx(0.51, rel=1e-12)
    # 3-D: an upper bound within the boundary effect of the mean edge count
    n, r = 300, 0.2
    mean_m = np.mean([random_geometric(n, r, seed=s, dim=3).m for s in range(10)])
    bound = expected_geometric_edges(n, r, 3)
    assert mean_m <= bound <= 1.5 * mean_m
    # every pair is an edge once r reaches the cube's diameter
    assert random_geometric(50, 1.5, seed=0, dim=2).m == expected_geometric_edges(50, 1.5) == 1225


@pytest.mark.parametrize(
    ("build", "what"),
    [
        (lambda: random_geometric(10**9, 0.1, seed=0), r"random_geometric\(n=1000000000"),
        (lambda: random_geometric(20_000, 1.5, seed=0), r"about 2e\+08 edges"),
        (lambda: grid((10**5, 10**5)), r"grid\(shape=\(100000, 100000\)\)"),
        (lambda: grid((10**6, 10**6)), r"1e\+12 nodes"),
    ],
)
def test_hopeless_graph_sizes_are_refused_before_allocating(monkeypatch, build, what):
    monkeypatch.setenv("OTTOKIT_MEMORY_LIMIT", "1G")
    with pytest.raises(MemoryEstimateError, match=rf"{what}.*needs about .* but 1\.0 GiB"):
        build()


def test_memory_refusal_can_be_overridden(monkeypatch):
    monkeypatch.setenv("OTTOKIT_MEMORY_LIMIT", "1M")
    with pytest.raises(MemoryEstimateError, match="lower n or radius.*OTTOKIT_MEMORY_LIMIT=off"):
        random_geometric(2000, 0.1, seed=0)
    with pytest.raises(MemoryEstimateError, match="use fewer nodes per axis"):
        grid((100, 100))
    monkeypatch.setenv("OTTOKIT_MEMORY_LIMIT", "off")
    assert random_geometric(2000, 0.1, seed=0).n == 2000
    assert grid((100, 100)).m == 2 * 100 * 99


@pytest.mark.parametrize(
    ("build", "error", "match"),
    [
        (lambda: from_edges([(0, 1)], n=3, positions=np.zeros((2, 2))), ValueError, r"\(3, d\)"),
        (
            lambda: from_edges([(0, 1)], n=2, positions=[[0.0, 0.0], [np.nan, 1.0]]),
            ValueError,
            "positions must be finite",
        ),
        (lambda: from_edges(np.zeros((0, 2))), ValueError, "n is required.*pass n="),
        (lambda: grid(()), ValueError, "at least one axis size"),
        (lambda: grid("32"), TypeError, r"tuple of sizes such as \(32, 32\)"),
        (lambda: from_networkx({0: [1]}), TypeError, "G must be a networkx.Graph, got dict"),
        (lambda: from_networkx(nx.Graph()), ValueError, "networkx graph has no nodes"),
    ],
    ids=["positions-shape", "positions-nan", "no-n", "no-axes", "str-shape", "dict", "empty"],
)
def test_builders_name_what_is_wrong(build, error, match):
    """A realistic builder call with one thing changed raises the error that names it."""
    with pytest.raises(error, match=match):
        build()


@pytest.mark.parametrize("weight", [0.25, 3.0])
def test_a_uniform_edge_weight_scales_the_laplacian_and_the_heat_flow_clock(weight):
    """omega_ij = w on every edge gives L_w = w L_1, so the heat flow on it is the unit-weight
    flow run w times faster: rho_w(t) = expm(-L_1 w t) rho0."""
    g1 = random_geometric(40, 0.3, seed=5)
    gw = random_geometric(40, 0.3, seed=5, weight=weight)
    np.testing.assert_array_equal(gw.edges, g1.edges)
    np.testing.assert_allclose(gw.laplacian().toarray(), weight * g1.laplacian().toarray(), 0, 0)
    rng = np.random.default_rng(0)
    rho0 = rng.uniform(0.5, 1.5, g1.n)
    rho0 /= rho0.sum()
    tr = solve(LinearHeatFlow(gw), rho0, (0.0, 0.5), [0.5], rtol=1e-10, atol=1e-14)
    lap1 = g1.laplacian().toarray()
    np.testing.assert_allclose(tr.final, expm(-lap1 * weight * 0.5) @ rho0, rtol=1e-7, atol=1e-12)


def test_mean_degree_and_repr_count_nodes_edges_and_components():
    """The 5 x 4 grid has 5*3 + 4*4 = 31 edges: mean degree 2m/n = 3.1; its repr names the
    sizes, the single component and the dimension of the positions."""
    g = grid((5, 4))
    assert (g.n, g.m) == (20, 31)
    assert g.mean_degree() == pytest.approx(3.1, rel=1e-15)
    assert repr(g) == "Graph(n=20, m=31, components=1, dim=2)"
    with pytest.warns(DisconnectedGraphWarning):
        h = from_edges([(0, 1), (2, 3)], n=5)
    assert h.mean_degree() == pytest.approx(0.8, rel=1e-15)
    assert repr(h) == "Graph(n=5, m=2, components=3)"



def test_whole_number_float_edges_build_the_same_graph():
    """Node indices read as floats (a CSV, a float array) are accepted when they are whole
    numbers; a fractional index is a TypeError naming the edges."""
    edges = [(0, 1), (1, 2), (2, 3)]
    ref = from_edges(edges, [1.0, 2.0, 3.0])
    assert_same_graph(from_edges(np.array(edges, dtype=np.float64), [1.0, 2.0, 3.0]), ref)
    with pytest.raises(TypeError, match="^edges must hold integer node indices$"):
        from_edges(np.array([[0.0, 1.5]]), n=3)


def test_an_empty_edge_list_with_n_is_n_isolated_nodes():
    """``[]`` is the empty edge list: n components, each its own equilibrium, L = 0; two
    isolated nodes already make a disconnected graph."""
    warning = (r"^graph has 2 connected components; each keeps its own mass and reaches its own "
               r"equilibrium$")
    with pytest.warns(DisconnectedGraphWarning, match=warning):
        g = from_edges([], n=2)
    assert (g.n, g.m, g.n_components) == (2, 0, 2)
    np.testing.assert_array_equal(g.laplacian().toarray(), np.zeros((2, 2)))


def test_integer_positions_are_float_coordinates():
    g = from_edges([(0, 1), (1, 2)], positions=[[0, 0], [1, 0], [1, 1]])
    assert g.positions.dtype == np.float64
    np.testing.assert_array_equal(g.positions, [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0]])


def test_an_integer_adjacency_gives_float_weights():
    """Weights are float64 whatever the adjacency's dtype, equal to its upper triangle."""
    a = sp.csr_matrix(np.array([[0, 2, 0], [2, 0, 5], [0, 5, 0]], dtype=np.int64))
    g = from_scipy(a)
    assert g.weights.dtype == np.float64
    np.testing.assert_array_equal(g.weights, [2.0, 5.0])
    np.testing.assert_array_equal(g.laplacian().toarray(), np.diag([2, 7, 5]) - a.toarray())


@pytest.mark.parametrize("scale", [0.25, 1e6])
def test_from_scipy_accepts_rounding_asymmetry_relative_to_the_largest_weight(scale):
    """Asymmetry up to 1e-12 times max(1, largest |entry|) is rounding and is accepted (the
    upper triangle is kept); more is refused, at every scale of the weights."""
    tol = 1e-12 * max(1.0, 2.0 * scale)

    def path(delta: float) -> np.ndarray:
        a = scale * np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 2.0], [0.0, 2.0, 0.0]])
        a[0, 1] += delta
        return a

    a = path(0.5 * tol)
    np.testing.assert_array_equal(from_scipy(a).weights, [a[0, 1], a[1, 2]])
    with pytest.raises(ValueError, match=r"^adjacency must be symmetric \(an undirected graph\)$"):
        from_scipy(path(1.5 * tol))


def test_from_networkx_without_weights_or_positions_is_unit_weighted():
    """Edges without a weight attribute weigh 1 and nodes without positions give none: the
    Laplacian is networkx's combinatorial Laplacian."""
    h = nx.cycle_graph(5)
    g = from_networkx(h)
    np.testing.assert_array_equal(g.weights, np.ones(5))
    assert g.positions is None
    np.testing.assert_array_equal(g.laplacian().toarray(), nx.laplacian_matrix(h).toarray())


def test_expected_edges_closed_forms_at_the_branch_points():
    """The default dimension is 2 (pi r^2 - 8 r^3 / 3 + r^4 / 2); at the square's diameter
    every pair is an edge, exactly; in 3-D the bound is the smaller of the ball's volume
    4/3 pi r^3 and the box bound (2 r - r^2)^3, each an upper bound of the Monte Carlo
    frequency, and 1 from r = 1 on, where the box bound is 1."""
    assert expected_geometric_edges(30, 0.3) == pytest.approx(
        435 * unit_square_pair_probability(0.3), rel=1e-12
    )
    assert expected_geometric_edges(50, np.sqrt(2.0)) == 1225.0
    rng = np.random.default_rng(1)
    dist = np.linalg.norm(rng.random((100_000, 3)) - rng.random((100_000, 3)), axis=1)
    for r, tighter in ((0.2, "ball"), (0.8, "box")):
        ball, box = 4.0 / 3.0 * np.pi * r**3, (2 * r - r * r) ** 3
        bound = expected_geometric_edges(2, r, dim=3)
        assert bound == pytest.approx(min(ball, box), rel=1e-12)
        assert (ball < box) == (tighter == "ball")
        assert bound >= np.mean(dist < r)
    for r in (1.0, 1.2, 1.7):
        assert expected_geometric_edges(2, r, dim=3) == 1.0
        assert np.mean(dist < r) <= 1.0


def test_random_geometric_smallest_sizes_and_one_dimension():
    """One node is a graph (no edges); in 1-D the edges are the pairs closer than r."""
    g = random_geometric(1, 0.1, seed=0)
    assert (g.n, g.m) == (1, 0) and g.positions.shape == (1, 2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DisconnectedGraphWarning)
        line = random_geometric(60, 0.05, seed=3, dim=1)
    assert set(map(tuple, line.edges.tolist())) == brute_force_pairs(line.positions, 0.05)


@pytest.mark.parametrize("dim", [2, 3])
def test_random_geometric_numbers_nodes_cell_by_cell(dim):
    """Nodes 1..n-1 are numbered by the cell of side r that holds them, the first axis
    slowest (C order of the cells); node 0 is the centre."""
    r = 0.3
    g = random_geometric(300, r, seed=4, center=(0.5,) * dim, dim=dim)
    cells = [tuple(c) for c in np.floor(g.positions[1:] / r).astype(int).tolist()]
    assert cells == sorted(cells)
    np.testing.assert_array_equal(g.positions[0], (0.5,) * dim)


@pytest.mark.parametrize(
    ("shape", "periodic", "m"),
    [((5, 4), False, 31), ((5, 4), (True, False), 35), ((3, 3, 3), True, 81), ((2, 1), False, 1)],
)
def test_grid_refusal_states_the_exact_size_and_estimate(monkeypatch, shape, periodic, m):
    """The refusal counts the grid it would build, n nodes and m edges (m = sum over axes of
    n / s (s - 1), or n on a periodic axis), and its estimate n (64 + 16 d) + 180 m bytes."""
    n, d = int(np.prod(shape)), len(shape)
    monkeypatch.setenv("OTTOKIT_MEMORY_LIMIT", "off")
    assert grid(shape, periodic=periodic).m == m
    monkeypatch.setenv("OTTOKIT_MEMORY_LIMIT", "100")
    estimate = format_bytes(n * (64 + 16 * d) + 180 * m)
    refused = (
        rf"^grid\(shape={re.escape(str(shape))}\) with {n} nodes and {m} edges needs about "
        rf"{estimate} but 100 B is available; use fewer nodes per axis "
        r"\(or set OTTOKIT_MEMORY_LIMIT=off to try anyway\)$"
    )
    with pytest.raises(MemoryEstimateError, match=refused):
        grid(shape, periodic=periodic)


@pytest.mark.parametrize("dim", [1, 3])
def test_random_geometric_refusal_states_the_expected_edges_and_estimate(monkeypatch, dim):
    """The estimate is n (64 + 32 dim) bytes for the points and 180 bytes per expected edge
    (:func:`expected_geometric_edges` of this radius and dimension)."""
    n, r = 4, 0.3  # a few hundred bytes: the estimate is stated to the byte
    m = expected_geometric_edges(n, r, dim)
    monkeypatch.setenv("OTTOKIT_MEMORY_LIMIT", "100")
    estimate = format_bytes(n * (64 + 32 * dim) + 180 * m)
    refused = (
        rf"^random_geometric\(n={n}, radius=0\.3, dim={dim}\) with about "
        rf"{re.escape(f'{m:.3g}')} edges needs about {estimate} but 100 B is available; "
        r"lower n or radius \(the mean degree is about \(n - 1\) V_dim radius\^dim\) "
        r"\(or set OTTOKIT_MEMORY_LIMIT=off to try anyway\)$"
    )
    with pytest.raises(MemoryEstimateError, match=refused):
        random_geometric(n, r, seed=0, dim=dim)


@pytest.mark.parametrize(
    ("build", "error", "match"),
    [
        (lambda: from_edges([(0, 1), (1, 2), (2, 3)], [1.0, 2.0]), ValueError,
         r"^weights must have one entry per edge: expected shape \(3,\), got \(2,\)$"),
        (lambda: from_edges([(0, 1), (1, 4)], n=4), ValueError,
         r"^edges: node index 4 is out of range for n=4 nodes$"),
        (lambda: from_edges([(0, 1), (-1, 2)], n=4), ValueError,
         r"^edges: node index -1 is out of range for n=4 nodes$"),
        (lambda: from_edges([(0, 1)], n=0), ValueError, r"^n must be a positive integer, got 0$"),
        (lambda: from_edges([(0, 1)], n=2.5), TypeError,
         r"^n must be a positive integer, got 2\.5 of type float"),
        (lambda: from_edges(np.zeros((0, 2)), positions=np.zeros((0, 2))), ValueError,
         r"^n must be a positive integer, got 0$"),
        (lambda: from_edges("01"), TypeError, r"^edges must be an array of real numbers"),
        (lambda: from_edges([(0, 1)], positions=[[0.0, 0.0], [np.nan, 1.0]]), ValueError,
         r"^positions must be finite \(no NaN or inf\); positions\[1, 0\] = nan$"),
        (lambda: from_edges(np.zeros((0, 2))), ValueError,
         r"^n is required for a graph without edges; pass n=number of nodes$"),
        (lambda: from_edges([(0, 1)], ["a"]), TypeError, r"^weights must be an array of real"),
        (lambda: from_edges([(0, 1), (1, 2)], [np.nan, 1.0]), ValueError,
         r"^weights must be positive and finite; weights\[0\] = nan$"),
        (lambda: from_edges([(0, 1), (1, 2)], [0.5, 0.0]), ValueError,
         r"^weights must be positive and finite; weights\[1\] = 0\.0$"),
        (lambda: from_edges([(0, 1), (1, 0), (1, 2)], [1.0, 2.0, 3.0]), ValueError,
         r"^edges: duplicate edge \(0, 1\) with conflicting weights 1\.0 and 2\.0$"),
        (lambda: from_edges([(0, 1)], n=2, positions=[[0.0, 0.0], [np.nan, 1.0]]), ValueError,
         r"^positions must be finite$"),
        (lambda: from_edges([(0, 1), (2, 2)]), ValueError,
         r"^edges: self-loop at node 2 \(edge 1\); remove it$"),
        (lambda: from_networkx(nx.Graph()), ValueError, r"^networkx graph has no nodes$"),
        (lambda: from_networkx(nx.DiGraph([(0, 1)])), ValueError,
         r"^networkx graph must be undirected$"),
        (lambda: from_networkx(SimpleNamespace(nodes=[0, 1], edges=[(0, 1)])), TypeError,
         r"^G must be a networkx\.Graph, got SimpleNamespace$"),
        (lambda: from_networkx(SimpleNamespace(nodes=[0, 1])), TypeError,
         r"^G must be a networkx\.Graph, got SimpleNamespace$"),
        (lambda: from_scipy("ab"), TypeError, r"^adjacency must be an array of real numbers"),
        (lambda: from_scipy(np.ones(3)), ValueError,
         r"^adjacency must have 2 dimension\(s\), got shape \(3,\)$"),
        (lambda: from_scipy(np.zeros((0, 0))), ValueError,
         r"^n must be a positive integer, got 0$"),
        (lambda: grid((4, 2.5)), TypeError, r"^shape\[1\] must be a positive integer, got 2\.5"),
        (lambda: grid((4, 0)), ValueError, r"^shape\[1\] must be a positive integer, got 0$"),
        (lambda: grid(4, spacing="a"), TypeError, r"^spacing must be an array of real numbers"),
        (lambda: grid(4, spacing=np.inf), ValueError, r"^spacing must be positive and finite"),
        (lambda: random_geometric(-1, 0.1, seed=0), ValueError,
         r"^n must be a positive integer, got -1$"),
        (lambda: random_geometric(10, 0.0, seed=0), ValueError,
         r"^radius must be a positive number, got 0$"),
        (lambda: random_geometric(10, 0.1, seed=-1), ValueError,
         r"^seed must be a non-negative integer, got -1$"),
        (lambda: random_geometric(10, 0.1, seed=0, dim=0), ValueError,
         r"^dim must be a positive integer, got 0$"),
        (lambda: random_geometric(10, 0.5, seed=0, weight=0.0), ValueError,
         r"^weight must be a positive number, got 0$"),
        (lambda: random_geometric(10, 0.1, seed=0, center=(0.5, np.nan)), ValueError,
         r"^center must be finite \(no NaN or inf\); center\[1\] = nan$"),
    ],
)
def test_builder_guards_say_exactly_what_is_wrong(build, error, match):
    """Each guard of the builders fires at its boundary with the whole message."""
    with pytest.raises(error, match=match):
        build()


def test_connected_graphs_build_without_a_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error", DisconnectedGraphWarning)
        assert grid((5, 4)).is_connected
        assert from_edges([(0, 1), (1, 2)]).is_connected

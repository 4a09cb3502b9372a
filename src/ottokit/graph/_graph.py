"""Weighted undirected graphs: the space on which discrete Otto calculus lives (seed 000 §2.2).

A :class:`Graph` stores each undirected edge once, oriented ``i < j``, with a
positive weight ``omega_ij``. The incidence matrix ``B`` (m x n) has
``(B u)_k = u_j - u_i`` for edge ``k = (i, j)``; the graph Laplacian is
``L = B^T diag(omega) B``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree
from scipy.special import gamma

from ottokit._checks import as_array, check_int, check_real
from ottokit._memory import check_memory

__all__ = [
    "Graph",
    "DisconnectedGraphWarning",
    "expected_geometric_edges",
    "random_geometric",
    "grid",
    "from_edges",
    "from_scipy",
    "from_networkx",
]


# Peak bytes per edge while a builder validates, sorts and checks connectivity
# (edge list copies, weights, sort order, the adjacency for connected_components):
# measured about 172 for random_geometric and 105 per edge plus 420 per node for grid.
_EDGE_BYTES = 180
_NODE_BYTES = 64


class DisconnectedGraphWarning(UserWarning):
    """The graph has several connected components; each keeps its own mass."""


@dataclass(frozen=True, eq=False)
class Graph:
    """A weighted undirected graph with ``n`` nodes and ``m`` edges.

    Attributes:
        n: number of nodes.
        edges: (m, 2) int64 array, each row ``(i, j)`` with ``i < j``, rows unique.
        weights: (m,) float64 array of positive finite weights ``omega_ij``.
        positions: (n, d) node coordinates, or None.

    Build it with :func:`from_edges`, :func:`random_geometric`, :func:`grid`,
    :func:`from_scipy` or :func:`from_networkx`, which validate their input.
    """

    n: int
    edges: np.ndarray
    weights: np.ndarray
    positions: np.ndarray | None = None
    _cache: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def m(self) -> int:
        """Number of undirected edges."""
        return int(self.edges.shape[0])

    @cached_property
    def tail(self) -> np.ndarray:
        """First endpoint ``i`` of each edge (the smaller index), contiguous for fast gathers."""
        return np.ascontiguousarray(self.edges[:, 0])

    @cached_property
    def head(self) -> np.ndarray:
        """Second endpoint ``j`` of each edge (the larger index), contiguous for fast gathers."""
        return np.ascontiguousarray(self.edges[:, 1])

    @cached_property
    def incidence(self) -> sp.csr_matrix:
        """Incidence matrix B (m x n): ``(B u)_k = u_j - u_i``."""
        m = self.m
        rows = np.repeat(np.arange(m, dtype=np.int64), 2)
        cols = self.edges.reshape(-1)
        vals = np.tile(np.array([-1.0, 1.0]), m)
        return sp.csr_matrix((vals, (rows, cols)), shape=(m, self.n))

    @cached_property
    def adjacency(self) -> sp.csr_matrix:
        """Symmetric weighted adjacency W (n x n), ``W_ij = omega_ij``."""
        i, j = self.tail, self.head
        w = self.weights
        a = sp.csr_matrix(
            (np.concatenate([w, w]), (np.concatenate([i, j]), np.concatenate([j, i]))),
            shape=(self.n, self.n),
        )
        a.sort_indices()
        return a

    @cached_property
    def degree(self) -> np.ndarray:
        """Weighted degree ``d_i = sum_j omega_ij``."""
        deg = np.bincount(self.tail, self.weights, self.n) + np.bincount(
            self.head, self.weights, self.n
        )
        return deg.astype(np.float64, copy=False)

    def laplacian(self) -> sp.csr_matrix:
        """Graph Laplacian ``L = D - W = B^T diag(omega) B`` (positive semi-definite)."""
        if "laplacian" not in self._cache:
            lap = sp.diags(self.degree) - self.adjacency
            self._cache["laplacian"] = sp.csr_matrix(lap)
        return self._cache["laplacian"]

    def components(self) -> np.ndarray:
        """Connected-component label of each node, ``0 .. n_components-1``."""
        if "components" not in self._cache:
            _, labels = connected_components(self.adjacency, directed=False)
            self._cache["components"] = labels.astype(np.int64)
        return self._cache["components"]

    @property
    def n_components(self) -> int:
        return int(self.components().max()) + 1 if self.n else 0

    @property
    def is_connected(self) -> bool:
        return self.n_components == 1

    def mean_degree(self) -> float:
        """Average number of neighbours, ``2m / n``."""
        return 2.0 * self.m / self.n

    def __repr__(self) -> str:
        pos = "" if self.positions is None else f", dim={self.positions.shape[1]}"
        return f"Graph(n={self.n}, m={self.m}, components={self.n_components}{pos})"


def _validate_and_build(
    n: int,
    edges: np.ndarray,
    weights: np.ndarray,
    positions: np.ndarray | None,
) -> Graph:
    n = check_int(n, "n", ge=1)
    if edges.ndim != 2 or edges.shape[1] != 2:
        raise ValueError(f"edges must have shape (m, 2), got {edges.shape}")
    if edges.size and not np.issubdtype(edges.dtype, np.integer):
        if not np.all(np.isfinite(edges)) or np.any(edges != np.round(edges)):
            raise TypeError("edges must hold integer node indices")
    edges = edges.astype(np.int64, copy=False)
    weights = np.asarray(weights, dtype=np.float64)
    if weights.shape != (edges.shape[0],):
        raise ValueError(
            f"weights must have one entry per edge: expected shape ({edges.shape[0]},), "
            f"got {weights.shape}"
        )
    if edges.size:
        lo, hi = int(edges.min()), int(edges.max())
        if lo < 0 or hi >= n:
            bad = lo if lo < 0 else hi
            raise ValueError(f"edges: node index {bad} is out of range for n={n} nodes")
    if not np.all(np.isfinite(weights)) or np.any(weights <= 0):
        k = int(np.flatnonzero(~(np.isfinite(weights) & (weights > 0)))[0])
        raise ValueError(f"weights must be positive and finite; weights[{k}] = {weights[k]}")
    loops = edges[:, 0] == edges[:, 1]
    if np.any(loops):
        k = int(np.flatnonzero(loops)[0])
        raise ValueError(f"edges: self-loop at node {edges[k, 0]} (edge {k}); remove it")
    canon = np.sort(edges, axis=1)
    order = np.lexsort((canon[:, 1], canon[:, 0]))
    canon, weights = canon[order], weights[order]
    if canon.shape[0] > 1:
        dup = np.all(canon[1:] == canon[:-1], axis=1)
        if np.any(dup):
            conflict = dup & (weights[1:] != weights[:-1])
            if np.any(conflict):
                k = int(np.flatnonzero(conflict)[0])
                i, j = canon[k]
                raise ValueError(
                    f"edges: duplicate edge ({i}, {j}) with conflicting weights "
                    f"{weights[k]} and {weights[k + 1]}"
                )
            keep = np.concatenate([[True], ~dup])
            canon, weights = canon[keep], weights[keep]
    if positions is not None:
        positions = np.asarray(positions, dtype=np.float64)
        if positions.ndim != 2 or positions.shape[0] != n:
            raise ValueError(f"positions must have shape (n, d) = ({n}, d), got {positions.shape}")
        if not np.all(np.isfinite(positions)):
            raise ValueError("positions must be finite")
    g = Graph(n=int(n), edges=np.ascontiguousarray(canon), weights=weights, positions=positions)
    if n > 1 and not g.is_connected:
        warnings.warn(
            f"graph has {g.n_components} connected components; each keeps its own mass "
            "and reaches its own equilibrium",
            DisconnectedGraphWarning,
            stacklevel=3,
        )
    return g


def from_edges(
    edges: Sequence[Sequence[int]] | np.ndarray,
    weights: Sequence[float] | np.ndarray | None = None,
    n: int | None = None,
    positions: np.ndarray | None = None,
) -> Graph:
    """Graph from an edge list (any orientation; duplicates with equal weights are merged).

    Raises ValueError on self-loops, out-of-range indices, non-positive or
    non-finite weights, and duplicate edges with conflicting weights.
    """
    e = as_array(edges, "edges", dtype=None)
    if e.size == 0:
        e = e.reshape(0, 2)
    if n is None:  # else _validate_and_build checks it
        if positions is not None:
            n = int(as_array(positions, "positions").shape[0])
        elif e.size:
            n = int(np.max(e)) + 1
        else:
            raise ValueError("n is required for a graph without edges; pass n=number of nodes")
    w = np.ones(e.shape[0]) if weights is None else as_array(weights, "weights", finite=False)
    return _validate_and_build(n, e, w, positions)


def _pair_probability(r: float, dim: int) -> float:
    """``P(|X - Y| < r)`` for ``X, Y`` uniform on ``[0, 1]^dim``: exact for dim 1 and 2.

    In 2-D the distance distribution of the unit square (Philip, "The probability
    distribution of the distance between two random points in a box", 2007); in
    higher dimensions the upper bound ``min(1, V_dim r^dim, (2 r - r^2)^dim)``: the
    ball's volume, and the chance that every coordinate differs by less than ``r``.
    """
    if r >= math.sqrt(dim):
        return 1.0
    per_axis = 2 * r - r * r if r < 1 else 1.0
    if dim == 1:
        return per_axis
    if dim == 2 and r <= 1:
        return math.pi * r**2 - 8.0 / 3.0 * r**3 + r**4 / 2.0
    if dim == 2:
        s = math.sqrt(r * r - 1.0)
        return (
            1.0 / 3.0
            + (math.pi - 2.0) * r**2
            - r**4 / 2.0
            + 4.0 / 3.0 * (2.0 * r**2 + 1.0) * s
            - 4.0 * r**2 * math.acos(1.0 / r)
        )
    ball = math.pi ** (dim / 2) / gamma(dim / 2 + 1) * r**dim
    return min(ball, per_axis**dim)


def expected_geometric_edges(n: int, radius: float, dim: int = 2) -> float:
    """Expected edge count of :func:`random_geometric`: ``n (n - 1) / 2 * P(|X - Y| < r)``.

    Exact in one and two dimensions; in higher dimensions an upper bound that
    over-counts only the neighbours missing at the cube's boundary.
    """
    return n * (n - 1) / 2 * _pair_probability(radius, dim)


def random_geometric(
    n: int,
    radius: float,
    *,
    seed: int,
    center: Sequence[float] | None = None,
    dim: int = 2,
    weight: float = 1.0,
) -> Graph:
    """Random geometric graph: ``n`` uniform points in ``[0, 1]^dim``, edges closer than ``radius``.

    With ``center`` given, node 0 is placed exactly there (the seed's node at
    (0.5, 0.5)). Pairs come from a k-d tree (``cKDTree.query_pairs``), so the
    cost is O(n log n + m), not O(n^2). All weights equal ``weight``.
    The other nodes are numbered cell by cell (cells of side ``radius``), which
    leaves the point set i.i.d. uniform but keeps neighbours close in memory.

    Raises:
        TypeError: ``n``, ``seed`` or ``dim`` is not an integer, ``radius`` or
            ``weight`` not a number.
        ValueError: a size below 1, a negative seed, a radius or weight that is
            not positive and finite, or ``center`` not a point of the cube.
        MemoryEstimateError: (a ValueError) the points and the expected edges
            (:func:`expected_geometric_edges`, about 180 bytes each while the
            graph is built) would not fit in the available memory; set
            ``OTTOKIT_MEMORY_LIMIT=off`` to try anyway.
    """
    n = check_int(n, "n", ge=1)
    radius = check_real(radius, "radius", gt=0)
    seed = check_int(seed, "seed", ge=0)
    dim = check_int(dim, "dim", ge=1)
    weight = check_real(weight, "weight", gt=0)
    c = None
    if center is not None:
        c = as_array(center, "center")
        if c.shape != (dim,):
            raise ValueError(f"center must have dim = {dim} coordinates, got shape {c.shape}")
    m = expected_geometric_edges(n, radius, dim)
    check_memory(
        n * (_NODE_BYTES + 32 * dim) + m * _EDGE_BYTES,
        what=f"random_geometric(n={n}, radius={radius:g}, dim={dim}) with about {m:.3g} edges",
        knob="lower n or radius (the mean degree is about (n - 1) V_dim radius^dim)",
    )
    rng = np.random.default_rng(seed)
    pos = rng.random((n, dim))
    if c is not None:
        pos[0] = c
    cell = np.floor(pos[1:] / radius).astype(np.int64)
    pos[1:] = pos[1:][np.lexsort(cell.T[::-1])]
    pairs = cKDTree(pos).query_pairs(radius, output_type="ndarray")
    return _validate_and_build(n, pairs.astype(np.int64), np.full(len(pairs), weight), pos)


def grid(
    shape: int | Sequence[int],
    spacing: float | Sequence[float] = 1.0,
    periodic: bool | Sequence[bool] = False,
) -> Graph:
    """Regular grid graph with nearest-neighbour edges of weight ``1 / h^2``.

    With these weights the graph Laplacian is the standard finite-difference
    Laplacian, so a W2 gradient flow on the grid is a consistent discretisation
    of the continuum flow. Node ``k`` sits at the cell centre ``(idx + 1/2) h``
    (C order). Periodic axes need at least 3 nodes.

    Raises:
        TypeError: a size in ``shape`` is not an integer.
        ValueError: no axes, a size below 1, a spacing that is not positive and
            finite, a periodic axis shorter than 3.
        MemoryEstimateError: (a ValueError) the nodes and ``d n`` edges (about 180
            bytes per edge while the graph is built) would not fit in the available
            memory; set ``OTTOKIT_MEMORY_LIMIT=off`` to try anyway.
    """
    if isinstance(shape, str | bytes):
        raise TypeError(f"shape must be a size or a tuple of sizes such as (32, 32), got {shape!r}")
    sizes = (shape,) if np.ndim(shape) == 0 else tuple(shape)  # type: ignore[arg-type]
    shp = tuple(check_int(s, f"shape[{k}]", ge=1) for k, s in enumerate(sizes))
    d = len(shp)
    if d == 0:
        raise ValueError(f"shape must hold at least one axis size, got {shape!r}")
    h = np.broadcast_to(as_array(spacing, "spacing", finite=False), (d,))
    if not np.all(np.isfinite(h) & (h > 0)):
        raise ValueError(f"spacing must be positive and finite, got {spacing}")
    per = np.broadcast_to(np.asarray(periodic, dtype=bool), (d,))
    for ax in range(d):
        if per[ax] and shp[ax] < 3:
            raise ValueError(f"periodic axis {ax} needs at least 3 nodes, got {shp[ax]}")
    n = math.prod(shp)
    m = sum(n // s * (s if per[ax] else s - 1) for ax, s in enumerate(shp))
    check_memory(
        n * (_NODE_BYTES + 16 * d) + m * _EDGE_BYTES,
        what=f"grid(shape={shp}) with {n:.3g} nodes and {m:.3g} edges",
        knob="use fewer nodes per axis",
    )
    idx = np.arange(n).reshape(shp)
    edge_blocks, weight_blocks = [], []
    for ax in range(d):
        a = idx.take(range(shp[ax] - 1), axis=ax).ravel()
        b = idx.take(range(1, shp[ax]), axis=ax).ravel()
        if per[ax]:
            a = np.concatenate([a, idx.take([shp[ax] - 1], axis=ax).ravel()])
            b = np.concatenate([b, idx.take([0], axis=ax).ravel()])
        edge_blocks.append(np.stack([a, b], axis=1))
        weight_blocks.append(np.full(a.shape[0], 1.0 / h[ax] ** 2))
    edges = np.concatenate(edge_blocks)
    weights = np.concatenate(weight_blocks)
    coords = np.stack([(g.ravel() + 0.5) * h[k] for k, g in enumerate(np.indices(shp))], axis=1)
    return _validate_and_build(n, edges, weights, coords)


def from_scipy(adjacency: sp.spmatrix | sp.sparray | np.ndarray) -> Graph:
    """Graph from a symmetric (sparse or dense) weighted adjacency matrix.

    Asymmetry up to ``1e-12 * max(1, max |a_ij|)`` is taken for rounding: the upper
    triangle gives the weights. Weights are float64 whatever the matrix's dtype.
    """
    if not sp.issparse(adjacency):
        adjacency = as_array(adjacency, "adjacency", ndim=2)
    a = sp.coo_matrix(adjacency)
    if a.shape[0] != a.shape[1]:
        raise ValueError(f"adjacency must be square, got shape {a.shape}")
    a.sum_duplicates()
    a.eliminate_zeros()
    asym = abs(a - a.T)
    if asym.nnz and asym.max() > 1e-12 * max(1.0, abs(a).max()):
        raise ValueError("adjacency must be symmetric (an undirected graph)")
    diag = a.row == a.col
    if np.any(diag):
        raise ValueError(f"adjacency has a self-loop at node {a.row[diag][0]}; zero the diagonal")
    up = a.row < a.col
    edges = np.stack([a.row[up], a.col[up]], axis=1)
    return _validate_and_build(a.shape[0], edges, a.data[up], None)


def from_networkx(G: Any, weight: str = "weight", pos: str = "pos") -> Graph:
    """Graph from a ``networkx.Graph``; nodes are numbered in ``G.nodes`` order.

    Edge weights come from the ``weight`` attribute (default 1); positions from
    the ``pos`` node attribute when every node has one.
    """
    if not (hasattr(G, "nodes") and hasattr(G, "edges") and hasattr(G, "is_directed")):
        raise TypeError(f"G must be a networkx.Graph, got {type(G).__name__}")
    nodes = list(G.nodes)
    if not nodes:
        raise ValueError("networkx graph has no nodes")
    if G.is_directed():
        raise ValueError("networkx graph must be undirected")
    index = {v: k for k, v in enumerate(nodes)}
    e, w = [], []
    for u, v, data in G.edges(data=True):
        e.append((index[u], index[v]))
        w.append(float(data.get(weight, 1.0)))
    positions = None
    if all(pos in G.nodes[v] for v in nodes):
        positions = np.array([G.nodes[v][pos] for v in nodes], dtype=np.float64)
    edges = np.asarray(e, dtype=np.int64).reshape(-1, 2)
    return _validate_and_build(len(nodes), edges, np.asarray(w), positions)

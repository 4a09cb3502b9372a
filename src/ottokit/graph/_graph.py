"""Weighted undirected graphs: the space on which discrete Otto calculus lives (seed 000 §2.2).

A :class:`Graph` stores each undirected edge once, oriented ``i < j``, with a
positive weight ``omega_ij``. The incidence matrix ``B`` (m x n) has
``(B u)_k = u_j - u_i`` for edge ``k = (i, j)``; the graph Laplacian is
``L = B^T diag(omega) B``.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

__all__ = [
    "Graph",
    "DisconnectedGraphWarning",
    "random_geometric",
    "grid",
    "from_edges",
    "from_scipy",
    "from_networkx",
]


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
    if n <= 0:
        raise ValueError(f"n must be a positive number of nodes, got {n}")
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
    e = np.asarray(edges)
    if e.size == 0:
        e = e.reshape(0, 2)
    if n is None:
        if positions is not None:
            n = int(np.asarray(positions).shape[0])
        elif e.size:
            n = int(np.max(e)) + 1
        else:
            raise ValueError("n is required for a graph without edges")
    w = np.ones(e.shape[0]) if weights is None else np.asarray(weights, dtype=np.float64)
    return _validate_and_build(int(n), e, w, positions)


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
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if not (np.isfinite(radius) and radius > 0):
        raise ValueError(f"radius must be positive and finite, got {radius}")
    rng = np.random.default_rng(seed)
    pos = rng.random((n, dim))
    if center is not None:
        c = np.asarray(center, dtype=np.float64)
        if c.shape != (dim,):
            raise ValueError(f"center must have {dim} coordinates, got {c.shape}")
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
    """
    shp = (int(shape),) if np.isscalar(shape) else tuple(int(s) for s in shape)  # type: ignore[arg-type]
    d = len(shp)
    if d == 0 or any(s < 1 for s in shp):
        raise ValueError(f"shape must hold positive sizes, got {shape}")
    h = np.broadcast_to(np.asarray(spacing, dtype=np.float64), (d,))
    if not np.all(np.isfinite(h) & (h > 0)):
        raise ValueError(f"spacing must be positive and finite, got {spacing}")
    per = np.broadcast_to(np.asarray(periodic, dtype=bool), (d,))
    idx = np.arange(int(np.prod(shp))).reshape(shp)
    edge_blocks, weight_blocks = [], []
    for ax in range(d):
        if per[ax] and shp[ax] < 3:
            raise ValueError(f"periodic axis {ax} needs at least 3 nodes, got {shp[ax]}")
        a = idx.take(range(shp[ax] - 1), axis=ax).ravel()
        b = idx.take(range(1, shp[ax]), axis=ax).ravel()
        if per[ax]:
            a = np.concatenate([a, idx.take([shp[ax] - 1], axis=ax).ravel()])
            b = np.concatenate([b, idx.take([0], axis=ax).ravel()])
        edge_blocks.append(np.stack([a, b], axis=1))
        weight_blocks.append(np.full(a.shape[0], 1.0 / h[ax] ** 2))
    edges = np.concatenate(edge_blocks) if edge_blocks else np.zeros((0, 2), np.int64)
    weights = np.concatenate(weight_blocks)
    coords = np.stack([(g.ravel() + 0.5) * h[k] for k, g in enumerate(np.indices(shp))], axis=1)
    return _validate_and_build(int(np.prod(shp)), edges, weights, coords)


def from_scipy(adjacency: sp.spmatrix | sp.sparray | np.ndarray) -> Graph:
    """Graph from a symmetric (sparse or dense) weighted adjacency matrix."""
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

"""Gradient flows on graphs: right-hand sides and analytic sparse Jacobians.

* :class:`WassersteinFlow` — ``d rho/dt = -grad_W F[rho]`` (seed 000 eq. 26):
  ``d rho_i/dt = sum_{j ~ i} omega_ij theta_ij (phi_j - phi_i)``, ``phi = dF/drho``.
  With ``F`` the entropy and the arithmetic mean this is the Wasserstein heat
  equation (27); with the logarithmic mean it is exactly the linear one (Maas 2011).
* :class:`LinearHeatFlow` — ``d rho/dt = -L rho`` (eq. 28), the gradient flow of
  the entropy for the log-mean metric, so its energy is the entropy too.

Every flow conserves mass on each connected component: its Jacobian's columns
sum to zero.
"""

from __future__ import annotations

import warnings
from abc import ABC, abstractmethod
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import scipy.sparse as sp

from ottokit._checks import check_instance, check_option
from ottokit.functionals import Entropy, Functional
from ottokit.graph._calculus import Mean, edge_mean, edge_mean_partials
from ottokit.graph._graph import Graph

__all__ = ["Flow", "WassersteinFlow", "LinearHeatFlow", "JacobianPattern"]

# From this many nodes on, right-hand sides run as one torch CSR product with
# int32 indices (multithreaded; about 2x SciPy's single-threaded product at 1e6 nodes).
TORCH_MIN_NODES = 300_000
# Below this many nodes the per-edge formula (gathers + bincount) is the fastest.
SPMM_MIN_NODES = 5_000


class _TorchAdjacency:
    """The adjacency W (and degree) as torch CPU tensors sharing NumPy's memory where possible."""

    def __init__(self, g: Graph):
        import torch

        a = g.adjacency
        self.torch = torch
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "CSR support is in beta"
            self.w = torch.sparse_csr_tensor(
                torch.from_numpy(a.indptr.astype(np.int32)),
                torch.from_numpy(a.indices.astype(np.int32)),
                torch.from_numpy(a.data),
                size=a.shape,
                check_invariants=False,
            )
        self.degree = torch.from_numpy(g.degree)

    def arithmetic_rhs(self, rho: np.ndarray, phi: np.ndarray) -> np.ndarray:
        """``sum_j w_ij (rho_i + rho_j)/2 (phi_j - phi_i)`` for all i."""
        torch = self.torch
        r = torch.from_numpy(rho)
        p = torch.from_numpy(phi)
        p = p - p.mean()
        rp = r * p
        wx = torch.sparse.mm(self.w, torch.stack([p, rp, r], dim=1))
        out = r * wx[:, 0]
        out -= self.degree * rp
        out += wx[:, 1]
        out -= p * wx[:, 2]
        return (0.5 * out).numpy()

    def laplacian_rhs(self, rho: np.ndarray) -> np.ndarray:
        """``-L rho = W rho - d rho``."""
        torch = self.torch
        r = torch.from_numpy(rho)
        out = torch.mv(self.w, r)
        out -= self.degree * r
        return out.numpy()


@dataclass(frozen=True)
class JacobianPattern:
    """Sparsity of ``W + I`` in CSC form and where each edge's entries land.

    The pattern is symmetric, so ``indptr``/``indices`` serve both CSR and CSC.
    ``slot_ij[k]`` is the CSC data slot of entry (row i, col j) of edge k, etc.
    """

    indptr: np.ndarray
    indices: np.ndarray
    slot_ij: np.ndarray
    slot_ji: np.ndarray
    slot_diag: np.ndarray

    @classmethod
    def of(cls, g: Graph) -> JacobianPattern:
        i, j, d = g.tail, g.head, np.arange(g.n)
        m, n = g.m, g.n
        rows = np.concatenate([i, j, d])
        cols = np.concatenate([j, i, d])
        entry = np.arange(1, 2 * m + n + 1, dtype=np.float64)
        # CSC of the pattern: column-major, so build CSR of the transpose (cols as rows)
        csr_t = sp.csr_matrix((entry, (cols, rows)), shape=(n, n))
        csr_t.sort_indices()
        slot = np.empty(2 * m + n, dtype=np.int64)
        slot[csr_t.data.astype(np.int64) - 1] = np.arange(csr_t.nnz)
        return cls(
            indptr=csr_t.indptr.astype(np.int64),
            indices=csr_t.indices.astype(np.int64),
            slot_ij=slot[:m],
            slot_ji=slot[m : 2 * m],
            slot_diag=slot[2 * m :],
        )

    @property
    def nnz(self) -> int:
        return int(self.indices.shape[0])

    def matrix(self, data: np.ndarray) -> sp.csc_matrix:
        n = self.indptr.shape[0] - 1
        return sp.csc_matrix((data, self.indices, self.indptr), shape=(n, n))


class Flow(ABC):
    """An autonomous ODE ``d rho/dt = rhs(rho)`` on the nodes of a graph."""

    graph: Graph
    needs_positive: bool = True

    @abstractmethod
    def rhs(self, rho: np.ndarray) -> np.ndarray:
        """Time derivative of ``rho`` (n,)."""

    @abstractmethod
    def jacobian_data(self, rho: np.ndarray) -> np.ndarray:
        """Jacobian entries in the CSC slot order of :attr:`pattern`."""

    @abstractmethod
    def energy(self, rho: np.ndarray) -> float:
        """The free energy this flow dissipates."""

    @abstractmethod
    def dissipation(self, rho: np.ndarray) -> float:
        """``-dE/dt`` along the flow at ``rho`` (non-negative)."""

    @cached_property
    def pattern(self) -> JacobianPattern:
        return JacobianPattern.of(self.graph)

    @cached_property
    def _torch_adjacency(self) -> _TorchAdjacency | None:
        return _TorchAdjacency(self.graph) if self.graph.n >= TORCH_MIN_NODES else None

    def jacobian(self, rho: np.ndarray) -> sp.csc_matrix:
        """Analytic sparse Jacobian ``d rhs / d rho`` (n x n, CSC)."""
        return self.pattern.matrix(self.jacobian_data(rho))

    def stiffness_bound(self, rho: np.ndarray) -> float:
        """Gershgorin bound on the Jacobian's spectral radius at ``rho``."""
        # the pattern stores the diagonal, so there is a column sum even without edges
        return float(np.max(np.abs(self.jacobian(rho)).sum(axis=0)))


class WassersteinFlow(Flow):
    """``d rho/dt = -grad_W F`` on a graph (seed 000 eq. 26).

    Args:
        g: the graph.
        functional: a local :class:`~ottokit.functionals.Functional`.
        mean: edge density ``theta``: ``"arithmetic"`` (the seed's (rho_i + rho_j)/2)
            or ``"logarithmic"`` ((rho_i - rho_j)/(log rho_i - log rho_j)).
    """

    def __init__(self, g: Graph, functional: Functional, mean: Mean = "arithmetic"):
        check_instance(g, Graph, "g")
        check_instance(functional, Functional, "functional")
        check_option(mean, Mean, "mean")
        if functional.size is not None and functional.size != g.n:
            raise ValueError(
                f"functional is defined on {functional.size} nodes but the graph has {g.n}"
            )
        self.graph = g
        self.functional = functional
        self.mean: Mean = mean
        self.needs_positive = functional.needs_positive or mean == "logarithmic"

    def __repr__(self) -> str:
        return f"WassersteinFlow({self.graph!r}, {self.functional!r}, mean={self.mean!r})"

    def rhs(self, rho: np.ndarray) -> np.ndarray:
        g = self.graph
        phi = self.functional._first_variation(rho)
        if self.mean == "arithmetic" and g.n >= SPMM_MIN_NODES:
            # sum_j w_ij (rho_i + rho_j)/2 (phi_j - phi_i) as one product W @ [phi, rho phi, rho]
            if self._torch_adjacency is not None:
                return self._torch_adjacency.arithmetic_rhs(rho, phi)
            phi = phi - phi.mean()  # constants drop out; centring limits cancellation
            rp = rho * phi
            wx = g.adjacency @ np.stack([phi, rp, rho], axis=1)
            return 0.5 * (rho * wx[:, 0] - g.degree * rp + wx[:, 1] - phi * wx[:, 2])
        i, j = g.tail, g.head
        if self.mean == "arithmetic":
            flux = self._half_weights * (rho[i] + rho[j]) * (phi[j] - phi[i])
        else:
            flux = g.weights * edge_mean(rho[i], rho[j], self.mean) * (phi[j] - phi[i])
        return np.bincount(i, flux, g.n) - np.bincount(j, flux, g.n)

    @cached_property
    def _half_weights(self) -> np.ndarray:
        return 0.5 * self.graph.weights

    def jacobian_data(self, rho: np.ndarray) -> np.ndarray:
        g, p = self.graph, self.pattern
        i, j, w = g.tail, g.head, g.weights
        phi = self.functional._first_variation(rho)
        h = self.functional._hessian_diag(rho)
        theta, ta, tb = edge_mean_partials(rho[i], rho[j], self.mean)
        dphi = phi[j] - phi[i]
        col_j = w * (tb * dphi + theta * h[j])  # d rhs_i / d rho_j
        col_i = w * (theta * h[i] - ta * dphi)  # d rhs_j / d rho_i
        data = np.empty(p.nnz)
        data[p.slot_ij] = col_j
        data[p.slot_ji] = col_i
        data[p.slot_diag] = -np.bincount(i, col_i, g.n) - np.bincount(j, col_j, g.n)
        return data

    def energy(self, rho: np.ndarray) -> float:
        return self.functional._value(rho)

    def dissipation(self, rho: np.ndarray) -> float:
        g = self.graph
        i, j = g.tail, g.head
        phi = self.functional._first_variation(rho)
        theta = edge_mean(rho[i], rho[j], self.mean)
        return float(np.dot(g.weights * theta, (phi[j] - phi[i]) ** 2))


class LinearHeatFlow(Flow):
    """``d rho/dt = -L rho`` (seed 000 eq. 28); dissipates the entropy H = sum rho log rho."""

    needs_positive = False

    def __init__(self, g: Graph):
        self.graph = check_instance(g, Graph, "g")
        self._entropy = Entropy()

    def __repr__(self) -> str:
        return f"LinearHeatFlow({self.graph!r})"

    @cached_property
    def _neg_laplacian(self) -> sp.csr_matrix:
        return sp.csr_matrix(-self.graph.laplacian())

    def rhs(self, rho: np.ndarray) -> np.ndarray:
        if self._torch_adjacency is not None:
            return self._torch_adjacency.laplacian_rhs(rho)
        return self._neg_laplacian @ rho

    def jacobian_data(self, rho: np.ndarray) -> np.ndarray:
        g, p = self.graph, self.pattern
        data = np.empty(p.nnz)
        data[p.slot_ij] = g.weights
        data[p.slot_ji] = g.weights
        data[p.slot_diag] = -g.degree
        return data

    def energy(self, rho: np.ndarray) -> float:
        return self._entropy._value(rho)

    def dissipation(self, rho: np.ndarray) -> float:
        g = self.graph
        i, j = g.tail, g.head
        diff = rho[j] - rho[i]
        with np.errstate(divide="ignore", invalid="ignore"):
            dlog = np.log(rho[j]) - np.log(rho[i])
        # equal densities (zeros included) carry no flux; one zero end gives +inf, as it should
        return float(np.dot(g.weights, np.where(diff == 0, 0.0, diff * dlog)))

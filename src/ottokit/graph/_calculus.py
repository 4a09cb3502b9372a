"""Discrete Otto calculus on a weighted graph (seed 000 §2.2, eqs. 20-25).

Conventions (edge ``k = (i, j)``, ``i < j``, weight ``omega``):

* gradient (20): ``(grad u)_k = sqrt(omega) (u_j - u_i)``;
* divergence (24): ``div(rho v)_i = sum_{j ~ i} sqrt(omega_ij) theta_ij v_ij``
  with ``v_ji = -v_ij`` and ``theta_ij`` the edge mean of rho;
* duality (23), integration by parts:
  ``sum_i f_i div(rho v)_i = -sum_k theta_k (grad f)_k v_k``; for the arithmetic
  mean the right side is the seed's ``-sum_i rho_i (grad f . v)_i``.
  (The seed prints a minus sign on the left of (23) and (24) that its own proof
  and the continuum identity (13) do not carry; we follow (13).)
* a tangent vector is ``drho = -div(rho grad u) = L_rho u`` with the
  rho-weighted Laplacian ``L_rho = B^T diag(omega theta) B``; the Otto inner
  product (25) is ``<drho1, drho2>_rho = sum_k omega theta (B u1)(B u2)``.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from ottokit._checks import as_density, as_vector, check_instance, check_option, options
from ottokit.graph._graph import Graph

__all__ = [
    "Mean",
    "MEANS",
    "edge_mean",
    "edge_mean_partials",
    "gradient",
    "divergence",
    "weighted_laplacian",
    "potential",
    "otto_inner",
]

Mean = Literal["arithmetic", "logarithmic"]
MEANS: tuple[str, ...] = options(Mean)

# |x - 1| below this: series for the logarithmic mean (error ~ u^4 / 30 < 1e-17)
_LOG_SERIES_CUT = 1e-4
# beyond this many unknowns potentials use multigrid-preconditioned CG instead of a sparse LU
_AMG_MIN_NODES = 200_000


def _logmean(
    a: np.ndarray, b: np.ndarray, partials: bool
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Logarithmic mean ``theta = b g(x)``, ``g(x) = (x - 1)/log x``, ``x = a/b``; and partials.

    ``d theta/da = g'(x)``, ``d theta/db = g(x) - x g'(x)``; near ``x = 1`` by their
    series in ``u = x - 1``. Where the ratio or its reciprocal over- or underflows
    (densities many hundred orders apart; ``g'`` needs ``1/x``) the same quantities
    come from ``L = log a - log b``, divided by ``L^2`` before the huge ratio forms.
    """
    with np.errstate(divide="ignore", invalid="ignore", over="ignore", under="ignore"):
        x = a / b
        finite = np.isfinite(x) & (x >= np.finfo(x.dtype).tiny)
        xs = np.where(finite, x, 2.0)
        u = xs - 1.0
        near = np.abs(u) < _LOG_SERIES_CUT
        lx = np.log(np.where(near, 2.0, xs))
        g = np.where(near, 1.0 + u * (0.5 + u * (-1.0 / 12.0 + u / 24.0)), u / lx)
        theta = b * g
        wide = ~finite
        if np.any(wide):
            ell = np.log(a) - np.log(b)
            theta = np.where(wide, (a - b) / ell, theta)
        if not partials:
            return theta, None, None
        dg = np.where(near, 0.5 + u * (-1.0 / 6.0 + u / 8.0), (lx - u / xs) / lx**2)
        da, db = dg, g - xs * dg
        if np.any(wide):
            ell2 = ell**2
            da = np.where(wide, (ell - 1.0) / ell2 + b / ell2 / a, da)
            db = np.where(wide, a / ell2 / b - (1.0 + ell) / ell2, db)
    return theta, da, db


def edge_mean(a: np.ndarray, b: np.ndarray, mean: Mean = "arithmetic") -> np.ndarray:
    """Edge density ``theta(a, b)``: ``(a + b)/2`` or ``(a - b)/(log a - log b)``."""
    if mean == "arithmetic":
        return 0.5 * (a + b)
    check_option(mean, Mean, "mean")
    return _logmean(a, b, partials=False)[0]


def edge_mean_partials(
    a: np.ndarray, b: np.ndarray, mean: Mean = "arithmetic"
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``theta(a, b)``, ``d theta / d a`` and ``d theta / d b``."""
    if mean == "arithmetic":
        half = np.full_like(a, 0.5)
        return 0.5 * (a + b), half, half
    check_option(mean, Mean, "mean")
    theta, da, db = _logmean(a, b, partials=True)
    return theta, da, db  # type: ignore[return-value]


def gradient(g: Graph, u: np.ndarray) -> np.ndarray:
    """Graph gradient (eq. 20): ``sqrt(omega_ij) (u_j - u_i)`` per edge, shape (m,)."""
    check_instance(g, Graph, "g")
    u = as_vector(u, g.n, "u")
    return np.sqrt(g.weights) * (u[g.head] - u[g.tail])


def divergence(g: Graph, rho: np.ndarray, v: np.ndarray, mean: Mean = "arithmetic") -> np.ndarray:
    """``div(rho v)`` (eq. 24): ``sum_{j ~ i} sqrt(omega_ij) theta_ij v_ij``, shape (n,).

    ``v`` is an edge field (m,) oriented ``i -> j`` for each stored edge ``(i, j)``.
    """
    check_instance(g, Graph, "g")
    check_option(mean, Mean, "mean")
    rho = as_density(rho, g.n, positive=(mean == "logarithmic"), check_mass=False)
    v = as_vector(v, g.m, "v")
    flux = np.sqrt(g.weights) * edge_mean(rho[g.tail], rho[g.head], mean) * v
    return np.bincount(g.tail, flux, g.n) - np.bincount(g.head, flux, g.n)


def weighted_laplacian(g: Graph, rho: np.ndarray, mean: Mean = "arithmetic") -> sp.csr_matrix:
    """``L_rho = B^T diag(omega theta(rho)) B``: ``-div(rho grad u) = L_rho u``."""
    check_instance(g, Graph, "g")
    check_option(mean, Mean, "mean")
    rho = as_density(rho, g.n, positive=(mean == "logarithmic"), check_mass=False)
    c = g.weights * edge_mean(rho[g.tail], rho[g.head], mean)
    b = g.incidence
    return sp.csr_matrix(b.T @ sp.diags(c) @ b)


def _check_tangent(g: Graph, drho: np.ndarray, name: str) -> np.ndarray:
    d = as_vector(drho, g.n, name)
    labels = g.components()
    sums = np.bincount(labels, d, g.n_components)
    scale = np.bincount(labels, np.abs(d), g.n_components) + 1e-300
    bad = np.abs(sums) > 1e-9 * scale + 1e-14
    if np.any(bad):
        c = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"{name} is not a tangent vector: it must sum to 0 on each connected component "
            f"(component {c} sums to {sums[c]:.3g})"
        )
    return d


def potential(g: Graph, rho: np.ndarray, drho: np.ndarray, mean: Mean = "arithmetic") -> np.ndarray:
    """The potential ``u`` of a tangent vector: ``-div(rho grad u) = drho`` (seed Def. 2.12).

    ``u`` is unique up to a constant per connected component; we return the
    one with zero mean on each component. ``rho`` must be positive on every
    node that has an edge (else ``L_rho`` is singular beyond its kernel).
    """
    check_instance(g, Graph, "g")
    check_option(mean, Mean, "mean")
    rho = as_density(rho, g.n, positive=True, check_mass=False)
    d = _check_tangent(g, drho, "drho")
    lap = weighted_laplacian(g, rho, mean).tocsr()
    labels = g.components()
    # ground one node per component: the reduced matrix is positive definite
    _, first = np.unique(labels, return_index=True)
    keep = np.ones(g.n, dtype=bool)
    keep[first] = False
    u = np.zeros(g.n)
    if keep.any():
        a = lap[keep][:, keep].tocsc()
        if a.shape[0] > _AMG_MIN_NODES:
            import pyamg

            ml = pyamg.smoothed_aggregation_solver(a.tocsr())
            u[keep] = ml.solve(d[keep], tol=1e-12, accel="cg", maxiter=500)
        else:
            u[keep] = spla.spsolve(a, d[keep])
    means = np.bincount(labels, u, g.n_components) / np.bincount(labels, minlength=g.n_components)
    return u - means[labels]


def otto_inner(
    g: Graph,
    rho: np.ndarray,
    drho1: np.ndarray,
    drho2: np.ndarray,
    mean: Mean = "arithmetic",
) -> float:
    """Otto inner product (eq. 25): ``sum_k omega_k theta_k (B u1)_k (B u2)_k``.

    ``drho1`` and ``drho2`` are tangent vectors (zero sum on each component);
    ``u1``, ``u2`` their potentials. Symmetric, and positive definite on the
    tangent space; equal to ``u1 . drho2``.
    """
    rho = np.asarray(rho, dtype=np.float64)
    u1 = potential(g, rho, drho1, mean)
    u2 = potential(g, rho, drho2, mean) if drho2 is not drho1 else u1
    c = g.weights * edge_mean(rho[g.tail], rho[g.head], mean)
    b = g.incidence
    return float(np.dot(c * (b @ u1), b @ u2))

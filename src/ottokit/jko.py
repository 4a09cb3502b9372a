"""JKO scheme in one dimension in Lagrangian (quantile) form, and displacement convexity.

Seed 001 Definition 5.4: the JKO (minimising-movement) step of size ``tau`` is

    P_k in argmin_P  F_f(P || Q) + W_2^2(P, P_{k-1}) / (2 tau).

On the line W_2 is the L^2(0, 1) distance of quantile functions, so with ``P`` represented
by its quantile function on ``M`` equal-mass cells (piecewise-linear between knots
``x_0 < ... < x_M``) the step is a finite-dimensional problem: ``F[X] = sum_j Q_j f(P / Q_j)``
with ``Q_j`` the ``q``-mass of cell ``j`` and ``P = 1/M``, whose minimum 0 is reached exactly
at the quantile function of ``q``. Each step is solved by a damped Newton method with
tridiagonal Hessian (one banded Cholesky solve per iteration, Armijo line search keeping the
knots ordered). The representation of ``q``, the interpolation options and why Newton on the
band is the right solver are on the API reference page of :mod:`ottokit.jko`.

Also here: :func:`jsd_geodesic_convexity`, the second derivative of ``JSD(rho_t || q)``
(seed 001 Theorem 5.7) along McCann interpolations ``X_t = (1 - t) X_0 + t X_1`` (seed 001
§5.1), analytically (``dX^T Hess F dX``) and by finite differences in ``t``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from scipy.linalg import LinAlgError, solveh_banded

from ottokit._checks import (
    MASS_RTOL,
    as_array,
    as_density,
    as_vector,
    check_int,
    check_option,
    check_real,
    options,
)
from ottokit.fgenerators import F_DIVERGENCES, F_GENERATORS, FGenerator
from ottokit.functionals import Entropy, FDivergence
from ottokit.graph import Graph, grid_geometry

__all__ = [
    "JKOResult",
    "GeodesicConvexity",
    "jko_1d",
    "quantile_from_masses",
    "masses_from_quantile",
    "w2_quantile",
    "mccann_interpolation",
    "quantile_energy",
    "jsd_geodesic_convexity",
    "INTERPOLATIONS",
    "Interpolation",
    "CentreInterpolation",
]

Interpolation = Literal["histogram", "linear", "loglinear"]
# between cell centres (the histogram has no interpolant to invert smoothly)
CentreInterpolation = Literal["linear", "loglinear"]
_ROUNDING = 1e3 * np.finfo(np.float64).eps
INTERPOLATIONS: tuple[str, ...] = options(Interpolation)


def _expm1_over(z: np.ndarray) -> np.ndarray:
    """``(exp(z) - 1) / z``, 1 at z = 0."""
    small = np.abs(z) < 1e-8
    zs = np.where(small, 1.0, z)
    return np.where(small, 1.0 + 0.5 * z, np.expm1(zs) / zs)


def _log1p_over(z: np.ndarray) -> np.ndarray:
    """``log(1 + z) / z``, 1 at z = 0."""
    small = np.abs(z) < 1e-8
    zs = np.where(small, 1.0, z)
    return np.where(small, 1.0 - 0.5 * z, np.log1p(zs) / zs)


def _levels(levels: int | np.ndarray | None, default: int, name: str = "levels") -> np.ndarray:
    """Quantile levels ``0 = u_0 < ... < u_M = 1`` from a count or an array."""
    if levels is None:
        levels = default
    if np.ndim(levels) == 0:
        m = check_int(levels, name, ge=1, hint="a number of cells, or an array of levels")
        return np.linspace(0.0, 1.0, m + 1)
    u = as_array(levels, name).ravel()
    if u.size < 2:
        raise ValueError(f"{name} must hold at least 2 levels, got {u.size}")
    if abs(u[0]) > 1e-12 or abs(u[-1] - 1.0) > 1e-12 or np.any(np.diff(u) <= 0):
        raise ValueError(f"{name} must increase strictly from 0 to 1, got [{u[0]}, ..., {u[-1]}]")
    u = u.copy()
    u[0], u[-1] = 0.0, 1.0
    return u


def _check_edges(edges: np.ndarray) -> np.ndarray:
    e = as_array(edges, "edges").ravel()
    if e.size < 2 or np.any(np.diff(e) <= 0):
        raise ValueError("edges must be at least 2 strictly increasing cell edges")
    return e


def _check_quantile(X: np.ndarray, name: str, strict: bool = False) -> np.ndarray:
    x = as_array(X, name).ravel()
    if x.size < 2:
        raise ValueError(f"{name} must be a vector of at least 2 quantile knots")
    d = np.diff(x)
    if np.any(d < 0) or (strict and np.any(d <= 0)):
        k = int(np.argmin(d))
        kind = "strictly increasing" if strict else "non-decreasing"
        raise ValueError(
            f"{name} must be {kind} (a quantile function); {name}[{k + 1}] - {name}[{k}] = "
            f"{d[k]:.3g}"
        )
    return x


# reference profiles: a positive density on [a, b] with closed-form CDF and inverse


class _Profile:
    """Density on ``[t_0, t_K]`` interpolating values at knots (linear or log-linear)."""

    def __init__(
        self, knots: np.ndarray, values: np.ndarray, kind: str, normalize: bool = True
    ) -> None:
        t, v = knots, values
        dt = np.diff(t)
        if kind == "loglinear":
            lv = np.log(v)
            beta = np.diff(lv) / dt
            seg = v[:-1] * dt * _expm1_over(beta * dt)
            slope = beta
        else:
            slope = np.diff(v) / dt
            seg = 0.5 * dt * (v[:-1] + v[1:])
        total = float(seg.sum())
        scale = 1.0 / total if normalize else 1.0
        self.kind = kind
        self.t = t
        self.v = v * scale
        self.slope = slope * (1.0 if kind == "loglinear" else scale)
        self.C = np.concatenate([[0.0], np.cumsum(seg * scale)])

    @classmethod
    def from_masses(cls, masses: np.ndarray, edges: np.ndarray, kind: str) -> _Profile:
        """Node densities ``m_i / width_i`` at cell centres, constant on the end half-cells."""
        widths = np.diff(edges)
        centres = 0.5 * (edges[:-1] + edges[1:])
        d = masses / widths
        knots = np.concatenate([[edges[0]], centres, [edges[-1]]])
        vals = np.concatenate([[d[0]], d, [d[-1]]])
        return cls(knots, vals, kind)

    @classmethod
    def lebesgue(cls, a: float, b: float) -> _Profile:
        return cls(np.array([a, b]), np.array([1.0, 1.0]), "linear", normalize=False)

    def _seg(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        k = np.clip(np.searchsorted(self.t, x, side="right") - 1, 0, self.t.size - 2)
        return k, x - self.t[k]

    def pdf(self, x: np.ndarray) -> np.ndarray:
        k, s = self._seg(x)
        if self.kind == "loglinear":
            return self.v[k] * np.exp(self.slope[k] * s)
        return self.v[k] + self.slope[k] * s

    def dpdf(self, x: np.ndarray) -> np.ndarray:
        """Derivative of the density (one-sided, from the right, at knots)."""
        k, s = self._seg(x)
        if self.kind == "loglinear":
            return self.slope[k] * self.v[k] * np.exp(self.slope[k] * s)
        return self.slope[k]

    def cdf(self, x: np.ndarray) -> np.ndarray:
        k, s = self._seg(x)
        if self.kind == "loglinear":
            return self.C[k] + self.v[k] * s * _expm1_over(self.slope[k] * s)
        return self.C[k] + s * (self.v[k] + 0.5 * self.slope[k] * s)

    def icdf(self, u: np.ndarray) -> np.ndarray:
        """Left-continuous inverse ``inf{x : cdf(x) >= u}`` (closed form per segment)."""
        k = np.clip(np.searchsorted(self.C, u) - 1, 0, self.t.size - 2)
        w = np.maximum(u - self.C[k], 0.0)
        vk, sk = self.v[k], self.slope[k]
        with np.errstate(divide="ignore", invalid="ignore"):
            if self.kind == "loglinear":
                s = (w / vk) * _log1p_over(sk * w / vk)
            else:
                s = 2.0 * w / (vk + np.sqrt(np.maximum(vk * vk + 2.0 * sk * w, 0.0)))
        s = np.where(w > 0, s, 0.0)
        return np.clip(self.t[k] + s, self.t[k], self.t[k + 1])


def _histogram_quantile(masses: np.ndarray, edges: np.ndarray, u: np.ndarray) -> np.ndarray:
    cdf = np.concatenate([[0.0], np.cumsum(masses)])
    cdf /= cdf[-1]
    # cdf[k] < u <= cdf[k + 1] (so 0 <= frac <= 1), except k = 0 at u = 0 (empty first cell)
    k = np.maximum(np.searchsorted(cdf, u) - 1, 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        frac = np.where(masses[k] > 0, (u - cdf[k]) / (cdf[k + 1] - cdf[k]), 0.0)
    return edges[k] + frac * (edges[k + 1] - edges[k])


def quantile_from_masses(
    masses: np.ndarray,
    edges: np.ndarray,
    levels: int | np.ndarray | None = None,
    interpolation: Interpolation = "histogram",
) -> np.ndarray:
    """Quantile function ``X(u_j)`` of a measure given by masses on cells (seed 001 §5).

    Args:
        masses: non-negative cell masses summing to 1 (n,).
        edges: strictly increasing cell edges (n + 1,).
        levels: ``M`` (equally spaced levels ``j/M``) or increasing levels from 0 to 1
            (default ``n``).
        interpolation: the density between cells: ``"histogram"`` (constant on each cell:
            the CDF is the piecewise-linear interpolant of the cumulative masses at the
            edges), ``"linear"`` or ``"loglinear"`` (``rho`` resp. ``log rho`` piecewise
            linear between cell centres, constant on the two end half-cells, renormalised;
            ``"loglinear"`` needs positive masses).

    Returns:
        ``X`` (M + 1,), the left-continuous inverse CDF at the levels; ``X[0] = edges[0]`` and
        ``X[-1] = edges[-1]`` where the end cells carry mass.
    """
    check_option(interpolation, Interpolation, "interpolation")
    e = _check_edges(edges)
    m = as_density(masses, e.size - 1, name="masses", positive=interpolation == "loglinear")
    u = _levels(levels, m.size)
    if interpolation == "histogram":
        return _histogram_quantile(m, e, u)
    x = _Profile.from_masses(m, e, interpolation).icdf(u)
    if m[-1] > 0:  # the normalised CDF may reach 1 an ulp early: X(1) is the right edge
        x[-1] = e[-1]
    return x


def masses_from_quantile(
    X: np.ndarray, edges: np.ndarray, levels: int | np.ndarray | None = None
) -> np.ndarray:
    """Cell masses of the measure with piecewise-linear quantile function ``X`` (seed 001 §5).

    The CDF is the piecewise-linear interpolant of ``(X_j, u_j)``; the mass of cell
    ``[e_i, e_{i+1}]`` is the exact difference ``CDF(e_{i+1}) - CDF(e_i)``.

    Args:
        X: strictly increasing knots (M + 1,) inside ``[edges[0], edges[-1]]``.
        edges: strictly increasing cell edges (n + 1,).
        levels: levels of the knots (default ``j/M``).
    """
    x = _check_quantile(X, "X", strict=True)
    e = _check_edges(edges)
    u = _levels(levels, x.size - 1)
    if u.size != x.size:
        raise ValueError(f"levels has {u.size} entries but X has {x.size}")
    tol = 1e-9 * (e[-1] - e[0])
    if x[0] < e[0] - tol or x[-1] > e[-1] + tol:
        raise ValueError(
            f"X spans [{x[0]:.6g}, {x[-1]:.6g}], outside the edges [{e[0]:.6g}, {e[-1]:.6g}]; "
            "mass would be lost"
        )
    cdf = np.interp(e, x, u)  # 0 left of X[0] and 1 right of X[-1]: u runs from 0 to 1
    cdf[0], cdf[-1] = 0.0, 1.0
    return np.diff(cdf)


def w2_quantile(
    X: np.ndarray,
    Y: np.ndarray,
    levels_x: int | np.ndarray | None = None,
    levels_y: int | np.ndarray | None = None,
) -> float:
    """``W_2`` between two measures on the line with piecewise-linear quantile functions.

    ``W_2^2 = int_0^1 |X(u) - Y(u)|^2 du`` (seed 001 §5, Def. 5.4), evaluated exactly: both
    functions are put on the union of their levels, where their difference ``D`` is
    piecewise linear and ``int D^2 = sum_j (u_{j+1} - u_j)(D_j^2 + D_j D_{j+1} + D_{j+1}^2)/3``.
    """
    x = _check_quantile(X, "X")
    y = _check_quantile(Y, "Y")
    ux = _levels(levels_x, x.size - 1, "levels_x")
    uy = _levels(levels_y, y.size - 1, "levels_y")
    if ux.size != x.size or uy.size != y.size:
        raise ValueError("each of X, Y needs one level per knot")
    u = np.union1d(ux, uy)
    d = np.interp(u, ux, x) - np.interp(u, uy, y)  # exact at the knots
    du = np.diff(u)
    val = np.sum(du * (d[:-1] ** 2 + d[:-1] * d[1:] + d[1:] ** 2)) / 3.0
    return float(np.sqrt(max(val, 0.0)))


def mccann_interpolation(X0: np.ndarray, X1: np.ndarray, t: float | np.ndarray) -> np.ndarray:
    """McCann's displacement interpolation ``X_t = (1 - t) X_0 + t X_1`` (seed 001 Thm 5.7).

    In 1-D the W2 geodesic between two measures is the linear interpolation of their
    quantile functions (on common levels). ``t`` in [0, 1]: a scalar gives (M + 1,), an array
    of T times gives (T, M + 1).
    """
    x0 = _check_quantile(X0, "X0")
    x1 = _check_quantile(X1, "X1")
    if x0.shape != x1.shape:
        raise ValueError(
            f"X0 and X1 must share their levels (same length), got {x0.size} and {x1.size}"
        )
    ta = as_array(t, "t")
    if np.any(ta < 0) or np.any(ta > 1):
        raise ValueError(f"t must lie in [0, 1], got {t!r}")
    if ta.ndim == 0:
        return (1.0 - ta) * x0 + ta * x1
    ta = ta.ravel()[:, None]
    return (1.0 - ta) * x0[None, :] + ta * x1[None, :]


class _QuantileEnergy:
    """``F[X] = sum_j psi(Q_j)``, ``psi(s) = s f(P/s)`` with ``Q_j`` the reference mass of cell j.

    Derivatives: ``psi'(s) = f(r) - r f'(r)``, ``psi''(s) = r^2 f''(r) / s`` (``r = P/s``);
    ``dQ_j/dx_{j+1} = q(x_{j+1})``, ``dQ_j/dx_j = -q(x_j)``.
    """

    def __init__(self, gen: FGenerator, profile: _Profile, levels: np.ndarray):
        self.gen = gen
        self.profile = profile
        self.P = np.diff(levels)
        self.a = float(profile.t[0])
        self.b = float(profile.t[-1])

    def cell_masses(self, X: np.ndarray) -> np.ndarray:
        return np.diff(self.profile.cdf(X))

    def psi(self, s: np.ndarray) -> np.ndarray:
        return s * self.gen.f(self.P / s)

    def value(self, X: np.ndarray) -> float:
        s = self.cell_masses(X)
        if np.any(s <= 0):
            return np.inf
        with np.errstate(all="ignore"):
            v = float(np.sum(self.psi(s)))
        return v if np.isfinite(v) else np.inf

    def grad_hess(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Gradient, Hessian diagonal and super-diagonal with respect to the interior knots."""
        s = self.cell_masses(X)
        r = self.P / s
        g = self.gen
        d1 = g.f(r) - r * g.df(r)  # psi'(Q_j)
        d2 = r * r * g.d2f(r) / s  # psi''(Q_j)
        xi = X[1:-1]
        q = self.profile.pdf(xi)
        dq = self.profile.dpdf(xi)
        jump = d1[:-1] - d1[1:]
        grad = q * jump
        diag = q * q * (d2[:-1] + d2[1:]) + dq * jump
        off = -d2[1:-1] * q[:-1] * q[1:]
        return grad, diag, off

    def entropy_part(self, X: np.ndarray) -> float:
        """``int rho log rho`` of the quantile measure: ``sum_j P_j log(P_j / g_j)``."""
        return float(np.sum(self.P * np.log(self.P / np.diff(X))))


def _reference(
    functional: FDivergence | Entropy, edges: np.ndarray, interpolation: str
) -> tuple[FGenerator, _Profile, float]:
    """Generator, reference profile and ``inf F`` for a functional on the grid cells."""
    n = edges.size - 1
    if isinstance(functional, Entropy):
        L = float(edges[-1] - edges[0])
        return F_GENERATORS["kl"], _Profile.lebesgue(edges[0], edges[-1]), -float(np.log(L))
    if not isinstance(functional, FDivergence):
        raise TypeError(
            "functional must be an ottokit.functionals.FDivergence (or Entropy()), got "
            f"{type(functional).__name__}"
        )
    q = functional.q
    if q.size != n:
        raise ValueError(
            f"the f-divergence's q lives on {q.size} nodes but the grid has {n}; "
            "build q on the same grid"
        )
    total = float(q.sum())
    if abs(total - 1.0) > MASS_RTOL:
        raise ValueError(
            f"q must be a probability vector of node masses (sum 1), got sum {total:.12g}; "
            "divide q by its sum"
        )
    return functional.generator, _Profile.from_masses(q, edges, interpolation), 0.0


def _grid_edges(grid: Graph | np.ndarray) -> np.ndarray:
    if isinstance(grid, Graph):
        geo = grid_geometry(grid)
        if geo.ndim != 1:
            raise ValueError(f"jko_1d needs a 1-D grid, got shape {geo.shape}")
        return geo.edges(0)
    c = as_array(grid, "grid")
    if c.ndim != 1 or c.size < 2:
        raise ValueError(
            "grid must be a 1-D ottokit.graph.grid(n, h) or a vector of at least 2 cell centres"
        )
    h = np.diff(c)
    if np.any(h <= 0) or np.max(np.abs(h - h.mean())) > 1e-9 * h.mean():
        raise ValueError("cell centres must be strictly increasing and equally spaced")
    hm = float(h.mean())
    return c[0] - 0.5 * hm + hm * np.arange(c.size + 1)


def quantile_energy(
    functional: FDivergence | Entropy,
    X: np.ndarray,
    grid: Graph | np.ndarray,
    interpolation: CentreInterpolation = "loglinear",
) -> float:
    """``F[X] = sum_j Q_j f(P_j / Q_j)``: the JKO energy of a quantile measure (see module doc).

    ``P_j = u_{j+1} - u_j`` (equal levels ``j/M``), ``Q_j`` the mass of the interpolated
    ``q`` in ``[x_j, x_{j+1}]``; for ``Entropy()`` it is ``int rho log rho``. ``X`` runs over
    the whole domain (``X[0]`` and ``X[-1]`` its ends, up to rounding), as in :func:`jko_1d`.
    """
    check_option(interpolation, CentreInterpolation, "interpolation")
    edges = _grid_edges(grid)
    gen, prof, _ = _reference(functional, edges, interpolation)
    x = _check_quantile(X, "X", strict=True)
    lo, hi = float(edges[0]), float(edges[-1])
    tol = 1e-9 * (hi - lo)
    if abs(x[0] - lo) > tol or abs(x[-1] - hi) > tol:
        # outside, q would be extrapolated; inside, the q-mass X leaves empty would be missed
        raise ValueError(
            f"X must run over the grid's domain, from X[0] = {lo:.6g} to X[-1] = {hi:.6g}, "
            f"got [{x[0]:.6g}, {x[-1]:.6g}]"
        )
    x = x.copy()
    x[0], x[-1] = lo, hi
    return _QuantileEnergy(gen, prof, np.linspace(0.0, 1.0, x.size)).value(x)


@dataclass
class JKOResult:
    """A JKO trajectory (seed 001 Def. 5.4) in quantile form.

    Attributes:
        times: ``k tau`` for ``k = 0..K`` (K + 1,).
        tau: the step.
        levels: quantile levels ``j/M`` (M + 1,).
        quantiles: knots ``X_k`` (K + 1, M + 1).
        edges: grid cell edges (n + 1,).
        masses: ``P_k`` as grid node masses (exact CDF differences) (K + 1, n).
        energies: ``F[X_k]`` (K + 1,).
        w2: ``W_2(P_k, P_{k-1})`` (K,).
        dissipation: cumulative ``sum_{l <= k} W_2^2(P_l, P_{l-1}) / (2 tau)`` (K + 1,), 0 first.
        energy_inf: ``inf F`` (0 for an f-divergence, ``-log |domain|`` for the entropy).
        newton_iterations: Newton iterations of each step (K,).
        converged: whether each step met the tolerance (K,).
    """

    times: np.ndarray
    tau: float
    levels: np.ndarray
    quantiles: np.ndarray
    edges: np.ndarray
    masses: np.ndarray
    energies: np.ndarray
    w2: np.ndarray
    dissipation: np.ndarray
    energy_inf: float
    newton_iterations: np.ndarray
    converged: np.ndarray
    info: dict = field(default_factory=dict)

    @property
    def all_converged(self) -> bool:
        return bool(np.all(self.converged))

    @property
    def final(self) -> np.ndarray:
        return self.masses[-1]


def _newton_step(
    energy: _QuantileEnergy,
    X_prev: np.ndarray,
    tau: float,
    max_iter: int,
    xtol: float,
) -> tuple[np.ndarray, int, bool]:
    """Minimise ``F[X] + ||X - X_prev||^2 / (2 tau)`` over the interior knots (damped Newton)."""
    P = energy.P
    # L2(0,1) Gram matrix of hat functions on the interior knots (tridiagonal) / tau
    m_diag = (P[:-1] + P[1:]) / (3.0 * tau)
    m_off = P[1:-1] / (6.0 * tau)
    L = energy.b - energy.a

    def prox(x: np.ndarray) -> float:
        d = x - X_prev
        return float(np.sum(P * (d[:-1] ** 2 + d[:-1] * d[1:] + d[1:] ** 2))) / (6.0 * tau)

    X = X_prev.copy()
    phi = energy.value(X)  # prox(X_prev) = 0
    n_int = X.size - 2
    for it in range(1, max_iter + 1):
        D = X - X_prev
        gF, hd, ho = energy.grad_hess(X)
        grad = gF + m_diag * D[1:-1] + _gram_off(m_off, D)
        diag = hd + m_diag
        off = ho + m_off
        ab = np.zeros((2, n_int))
        ab[0, 1:] = off
        band = ab if n_int > 1 else ab[1:]  # solveh_banded refuses a 1 x 1 system with 2 rows
        mu = 0.0
        scale = float(np.max(np.abs(diag)))
        while True:
            ab[1] = diag + mu
            try:
                step = solveh_banded(band, -grad, check_finite=False)
                break
            except LinAlgError:  # not positive definite: regularise
                mu = max(10.0 * mu, 1e-10 * scale)
                if mu > 1e10 * scale:
                    return X, it, False
        dec = -float(np.dot(grad, step))  # Newton decrement squared: predicted decrease x 2
        d = np.concatenate([[0.0], step, [0.0]])
        dg = np.diff(d)
        gaps = np.diff(X)
        shrink = dg < 0
        alpha_max = float(np.min(-gaps[shrink] / dg[shrink])) if np.any(shrink) else np.inf
        alpha = min(1.0, 0.95 * alpha_max)
        # below this the change of the objective is lost in rounding: Armijo cannot be
        # checked, and the Newton step is taken as it is (quadratic convergence)
        tiny = dec <= _ROUNDING * (1.0 + abs(phi))
        while True:
            X_new = X + alpha * d
            phi_new = energy.value(X_new) + prox(X_new)
            if phi_new <= phi - 1e-4 * alpha * dec or (tiny and np.isfinite(phi_new)):
                break
            alpha *= 0.5
            if alpha < 1e-14:
                return X, it, False
        X, phi = X_new, phi_new
        if alpha == 1.0 and np.max(np.abs(step)) <= xtol * L:
            return X, it, True
    return X, max_iter, False


def _gram_off(m_off: np.ndarray, D: np.ndarray) -> np.ndarray:
    """Off-diagonal part of the Gram product ``(M D)_i`` on the interior knots."""
    out = np.zeros(D.size - 2)
    out[:-1] = m_off * D[2:-1]
    out[1:] += m_off * D[1:-2]
    return out


def jko_1d(
    functional: FDivergence | Entropy,
    rho0: np.ndarray,
    grid: Graph | np.ndarray,
    tau: float,
    steps: int,
    *,
    n_levels: int | None = None,
    interpolation: CentreInterpolation = "loglinear",
    max_iter: int = 50,
    xtol: float = 1e-10,
) -> JKOResult:
    """JKO scheme (seed 001 Def. 5.4, Thm 5.5) for an f-divergence on a 1-D grid.

    ``P_k = argmin_P F_f(P || Q) + W_2^2(P, P_{k-1}) / (2 tau)`` with ``P`` represented by its
    quantile function on ``M = n_levels`` equal-mass cells; see the module docstring for the
    energy, the interpolation of ``q`` and the Newton solver.

    Args:
        functional: :class:`~ottokit.functionals.FDivergence` whose ``q`` (node masses, sum 1)
            lives on the grid, or ``Entropy()`` (``int rho log rho``).
        rho0: initial node masses (n,), summing to 1; positive where ``f'`` needs it
            (every generator but ``"chi2"``) and for ``interpolation="loglinear"``.
        grid: a 1-D :func:`ottokit.graph.grid` ``(n, h)`` (domain ``[0, n h]``) or a vector of
            equally spaced cell centres.
        tau: step size > 0.
        steps: number of steps >= 1.
        n_levels: ``M`` (default ``2 n``).
        interpolation: how ``q`` and ``rho0`` are interpolated between cell centres.
        max_iter: Newton iterations per step.
        xtol: stop when a full Newton step moves no knot more than ``xtol`` times the domain.

    Returns:
        :class:`JKOResult`; a step that did not converge is flagged in ``converged``.
    """
    tau = check_real(tau, "tau", gt=0, example=1e-3)
    steps = check_int(steps, "steps", ge=1)
    check_option(interpolation, CentreInterpolation, "interpolation")
    max_iter = check_int(max_iter, "max_iter", ge=1, example=50)
    xtol = check_real(xtol, "xtol", gt=0, example=1e-10)
    edges = _grid_edges(grid)
    n = edges.size - 1
    gen, prof, inf_f = _reference(functional, edges, interpolation)
    positive = gen.needs_positive or interpolation == "loglinear"
    r0 = as_array(rho0, "rho0")
    if r0.ndim != 1 or r0.size != n:
        raise ValueError(
            f"rho0 must be a vector of {n} node masses (one per grid node), got {r0.shape}"
        )
    if positive and np.any(r0 <= 0):
        k = int(np.argmin(r0))
        why = (
            "f' takes a logarithm or a negative power"
            if gen.needs_positive
            else ("interpolation='loglinear' takes a logarithm; use interpolation='linear'")
        )
        raise ValueError(f"rho0 must be strictly positive ({why}); rho0[{k}] = {r0[k]:.3g}")
    r0 = as_density(r0, n, name="rho0", positive=positive)
    M = 2 * n if n_levels is None else check_int(n_levels, "n_levels", ge=2)
    u = np.linspace(0.0, 1.0, M + 1)
    energy = _QuantileEnergy(gen, prof, u)
    X = _Profile.from_masses(r0, edges, interpolation).icdf(u)
    X[0], X[-1] = edges[0], edges[-1]
    Xs = [X]
    its, conv, w2 = [], [], []
    for _ in range(steps):
        X_new, it, ok = _newton_step(energy, X, tau, max_iter, xtol)
        w2.append(w2_quantile(X_new, X))
        its.append(it)
        conv.append(ok)
        Xs.append(X_new)
        X = X_new
    Q = np.array(Xs)
    w2a = np.array(w2)
    return JKOResult(
        times=float(tau) * np.arange(steps + 1),
        tau=float(tau),
        levels=u,
        quantiles=Q,
        edges=edges,
        masses=np.array([masses_from_quantile(x, edges) for x in Q]),
        energies=np.array([energy.value(x) for x in Q]),
        w2=w2a,
        dissipation=np.concatenate([[0.0], np.cumsum(w2a**2) / (2.0 * tau)]),
        energy_inf=inf_f,
        newton_iterations=np.array(its, dtype=np.int64),
        converged=np.array(conv, dtype=bool),
        info={"interpolation": interpolation, "n_levels": int(M), "generator": gen.name},
    )


@dataclass
class GeodesicConvexity:
    """Second variation of ``D_f(rho_t || q)`` along McCann interpolations, for one ``delta``.

    Attributes:
        delta: the closeness ``||rho/q - 1||_inf <= delta`` of the end points (on the nodes).
        lam: ``min over pairs and t of (d^2/dt^2 F) / W_2^2(rho_0, rho_1)`` (the observed
            lambda of lambda-convexity, seed 001 Thm 5.7).
        lam_entropy: the same for the entropy part ``int rho log rho`` (>= 0, McCann).
        t: the times (T,).
        w2: ``W_2(rho_0, rho_1)`` per pair (pairs,).
        second: analytic ``d^2/dt^2 F`` (pairs, T).
        second_fd: central finite difference of ``F`` in ``t`` (pairs, T).
        second_entropy: analytic ``d^2/dt^2 int rho log rho`` (pairs, T).
        second_entropy_fd: its finite difference (pairs, T).
        fd_rel_error: max relative gap between analytic and finite-difference ``F''``.
        ratio_dev: achieved ``max |rho/q - 1|`` on the nodes per pair end point (pairs, 2).
    """

    delta: float
    lam: float
    lam_entropy: float
    t: np.ndarray
    w2: np.ndarray
    second: np.ndarray
    second_fd: np.ndarray
    second_entropy: np.ndarray
    second_entropy_fd: np.ndarray
    fd_rel_error: float
    ratio_dev: np.ndarray


def _smooth_ratio(
    rng: np.random.Generator, x: np.ndarray, q: np.ndarray, n_modes: int, lo: float, L: float
) -> np.ndarray:
    """``s`` with ``sum q s = 0`` and ``max |s| = 1`` from random cosine/sine modes."""
    z = (x - lo) / L
    s = np.zeros_like(x)
    for k in range(1, n_modes + 1):
        a, b = rng.standard_normal(2) / k**2
        s += a * np.cos(k * np.pi * z) + b * np.sin(k * np.pi * z)
    s -= np.dot(q, s)
    return s / np.max(np.abs(s))


def _fd2(fun, X: np.ndarray, V: np.ndarray, eps: float) -> float:
    """Fourth-order central difference of ``d^2/dt^2 fun(X + t V)`` at ``t = 0``."""
    vals = [fun(X + k * eps * V) for k in (-2, -1, 0, 1, 2)]
    return (-vals[0] + 16 * vals[1] - 30 * vals[2] + 16 * vals[3] - vals[4]) / (12 * eps**2)


def jsd_geodesic_convexity(
    q: np.ndarray,
    grid: Graph | np.ndarray,
    delta: float | Sequence[float],
    n_pairs: int = 8,
    seed: int = 0,
    *,
    f: str = "jsd",
    n_levels: int | None = None,
    n_t: int = 11,
    n_modes: int = 4,
    interpolation: CentreInterpolation = "loglinear",
    fd_step: float = 1e-3,
) -> list[GeodesicConvexity]:
    """Observed lambda-convexity of ``JSD(. || q)`` along W2 geodesics near ``q`` (Thm 5.7).

    For each ``delta``: ``n_pairs`` pairs ``rho_0, rho_1 = q (1 + delta s)`` with ``s`` a
    random smooth (few-mode) function, ``sum q s = 0`` and ``max |s| = 1``, so that
    ``||rho/q - 1||_inf = delta`` on the nodes (seed 001 Assumption 5.6); their quantile
    functions ``X_0, X_1`` on ``M`` levels (``interpolation`` between centres, as in
    :func:`jko_1d`); the McCann interpolation ``X_t``; and, at ``n_t`` times in [0, 1],

    * ``d^2/dt^2 F[X_t] = dX^T Hess F[X_t] dX`` (``dX = X_1 - X_0``, exact for the quantile
      energy :func:`quantile_energy`), checked against a fourth-order central difference of
      ``F`` in ``t`` with step ``fd_step`` (the end points are extrapolated slightly);
    * the same for the entropy ``int rho log rho = sum_j P log(P / g_j)``:
      ``P sum_j (dg_j / g_j)^2 >= 0`` (McCann's displacement convexity).

    ``lam = min (d^2 F/dt^2) / W_2^2(rho_0, rho_1)``; Theorem 5.7 claims ``lam >= -C delta``.
    ``f`` may name any generator (``"kl"`` gives the displacement-convex relative entropy).
    """
    edges = _grid_edges(grid)
    n = edges.size - 1
    qa = as_vector(q, n, "q")
    if np.any(qa <= 0):
        raise ValueError(f"q must be strictly positive node masses; min q = {qa.min():.3g}")
    if abs(float(qa.sum()) - 1.0) > MASS_RTOL:
        raise ValueError(f"q must sum to 1, got {qa.sum():.12g}; divide q by its sum")
    deltas = np.atleast_1d(as_array(delta, "delta")).ravel()
    if deltas.size == 0 or np.any(deltas <= 0):
        raise ValueError(f"delta must be positive (and < 1), got {delta!r}")
    if np.any(deltas >= 1):
        raise ValueError(f"delta must be < 1 so that rho = q (1 + delta s) > 0, got {delta!r}")
    n_pairs = check_int(n_pairs, "n_pairs", ge=1)
    seed = check_int(seed, "seed", ge=0)
    n_t = check_int(n_t, "n_t", ge=2)
    n_modes = check_int(n_modes, "n_modes", ge=1)
    fd_step = check_real(fd_step, "fd_step", gt=0, lt=0.1, example=1e-3)
    if f not in F_DIVERGENCES:
        raise ValueError(f"unknown f-divergence {f!r}; allowed: {', '.join(F_DIVERGENCES)}")
    check_option(interpolation, CentreInterpolation, "interpolation")
    M = 2 * n if n_levels is None else check_int(n_levels, "n_levels", ge=2)
    gen, prof, _ = _reference(FDivergence(f, qa), edges, interpolation)
    u = np.linspace(0.0, 1.0, M + 1)
    energy = _QuantileEnergy(gen, prof, u)
    P = energy.P
    centres = 0.5 * (edges[:-1] + edges[1:])
    L = float(edges[-1] - edges[0])
    ts = np.linspace(0.0, 1.0, n_t)
    eps = float(fd_step)
    rng = np.random.default_rng(seed)
    out = []
    for dlt in deltas:
        w2s, sec, sec_fd, ent, ent_fd, dev = [], [], [], [], [], []
        for _ in range(n_pairs):
            ends = []
            devs = []
            for _end in range(2):
                s = _smooth_ratio(rng, centres, qa, n_modes, float(edges[0]), L)
                rho = qa * (1.0 + dlt * s)
                rho /= rho.sum()
                devs.append(float(np.max(np.abs(rho / qa - 1.0))))
                x = _Profile.from_masses(rho, edges, interpolation).icdf(u)
                x[0], x[-1] = edges[0], edges[-1]
                ends.append(x)
            X0, X1 = ends
            V = X1 - X0
            w2s.append(w2_quantile(X0, X1))
            dev.append(devs)
            s_a, s_f, e_a, e_f = [], [], [], []
            for t in ts:
                Xt = X0 + t * V
                _, hd, ho = energy.grad_hess(Xt)
                v = V[1:-1]
                s_a.append(float(np.dot(hd * v, v) + 2.0 * np.dot(ho * v[:-1], v[1:])))
                s_f.append(_fd2(energy.value, Xt, V, eps))
                dg, g = np.diff(V), np.diff(Xt)
                e_a.append(float(np.sum(P * (dg / g) ** 2)))
                e_f.append(_fd2(energy.entropy_part, Xt, V, eps))
            sec.append(s_a)
            sec_fd.append(s_f)
            ent.append(e_a)
            ent_fd.append(e_f)
        w2a = np.array(w2s)
        sa, sf = np.array(sec), np.array(sec_fd)
        ea, ef = np.array(ent), np.array(ent_fd)
        w2sq = (w2a**2)[:, None]
        denom = np.maximum(np.abs(sa), 1e-300)
        out.append(
            GeodesicConvexity(
                delta=float(dlt),
                lam=float(np.min(sa / w2sq)),
                lam_entropy=float(np.min(ea / w2sq)),
                t=ts,
                w2=w2a,
                second=sa,
                second_fd=sf,
                second_entropy=ea,
                second_entropy_fd=ef,
                fd_rel_error=float(np.max(np.abs(sa - sf) / denom)),
                ratio_dev=np.array(dev),
            )
        )
    return out

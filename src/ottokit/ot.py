"""Wasserstein distances over POT, for NumPy arrays and torch tensors.

Every solve is POT's; this module only validates the inputs, picks the cost and
checks that the solver converged. Point clouds are ``(n, d)`` arrays (a 1-D array
of length n is n points on the line); weights are probability vectors, uniform
when omitted. With NumPy inputs a function returns a Python ``float``; with a torch
tensor among the inputs it returns a 0-d tensor of the inputs' dtype and device,
differentiable wherever POT's backend is (``emd2``, ``wasserstein_1d``, Sinkhorn,
the Bures formula), so ``w2(x, y).backward()`` works.

Pitfalls this module exists for (POT 0.9.7):

- ``ot.emd2`` stops at ``numItermax = 100000`` with only a warning and returns a
  cost that is wrong by percents at a few thousand points. :func:`emd` passes
  ``max(1e6, 50 n m)`` and raises :class:`OTConvergenceError` if the network
  simplex still did not reach optimality.
- ``ot.wasserstein_1d`` returns W_p^p; :func:`w_1d` returns W_p.
- Sinkhorn with a small regularisation fails quietly; :func:`sinkhorn` runs it in
  the log domain and warns with :class:`OTConvergenceWarning` if the marginals are
  not matched to ``tol``.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import ot as pot
import torch

from ottokit._checks import as_array, as_covariance, check_int, check_real
from ottokit._memory import check_memory

__all__ = [
    "OTConvergenceError",
    "OTConvergenceWarning",
    "OTResult",
    "emd",
    "plan",
    "w1",
    "w2",
    "w_1d",
    "w2_gaussian",
    "sliced_w",
    "sinkhorn",
]

Array = Any  # a NumPy array, an array-like, or a torch tensor

_OPTIMAL = 1  # network simplex result code for an optimal solution
# peak bytes per pair of points, measured with POT 0.9.7: about 41 for the network
# simplex (cost matrix, plan, arcs), 65 for log-domain Sinkhorn on NumPy arrays
_EMD_BYTES_PER_PAIR = 48
_SINKHORN_BYTES_PER_PAIR = 72
_RESULT_CODES = {0: "infeasible", 1: "optimal", 2: "unbounded", 3: "iteration limit reached"}


class OTConvergenceError(RuntimeError):
    """The exact solver stopped before optimality; its cost would be wrong."""


class OTConvergenceWarning(RuntimeWarning):
    """An iterative solver (Sinkhorn) stopped before its tolerance was met."""


@dataclass(frozen=True)
class OTResult:
    """An exact optimal-transport solve (POT network simplex).

    ``cost`` is min_pi sum_ij pi_ij |x_i - y_j|^p (so W_p^p), ``distance`` is W_p,
    ``plan`` the optimal coupling pi (n, m); ``converged`` is always true for a
    returned result (otherwise :func:`emd` raises) and ``num_iter_max`` records
    the iteration limit that was passed to POT.
    """

    cost: Any
    distance: Any
    plan: Any
    p: float
    converged: bool
    num_iter_max: int


def _is_torch(*xs: Any) -> bool:
    return any(isinstance(x, torch.Tensor) for x in xs)


def _numpy(x: Any, name: str) -> np.ndarray:
    """A float64 NumPy copy of ``x`` (detached if a tensor), for validation."""
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().to(torch.float64).numpy()
    return as_array(x, name, finite=False)


def _as_points(x: Array, name: str) -> np.ndarray | torch.Tensor:
    """``x`` as an ``(n, d)`` float array or tensor with finite entries."""
    values = _numpy(x, name)
    if isinstance(x, torch.Tensor):
        a = x if x.is_floating_point() else x.to(torch.float64)
    else:
        a = values
    if a.ndim == 1:
        a, values = a[:, None], values[:, None]
    if a.ndim != 2:
        raise ValueError(
            f"{name} must be an (n, d) array of points (or a 1-D array of n values), "
            f"got shape {tuple(a.shape)}"
        )
    if a.shape[0] == 0 or a.shape[1] == 0:
        raise ValueError(f"{name} must hold at least one point, got shape {tuple(a.shape)}")
    bad = ~np.isfinite(values).all(axis=1)
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{name} must be finite (no NaN or inf); row {k} is {values[k]}")
    return a


def _as_weights(w: Array | None, n: int, name: str, like: Any) -> Any:
    """Probability vector of length ``n`` in the backend of ``like`` (uniform if None)."""
    if w is None:
        return pot.unif(n, type_as=like)
    values = _numpy(w, name)
    if values.ndim != 1 or values.shape[0] != n:
        raise ValueError(
            f"{name} must be a vector of {n} weights (one per point), got shape {values.shape}"
        )
    if not np.all(np.isfinite(values)):
        k = int(np.flatnonzero(~np.isfinite(values))[0])
        raise ValueError(f"{name} must be finite; {name}[{k}] = {values[k]}")
    if np.any(values < 0):
        k = int(np.argmin(values))
        raise ValueError(f"{name} must be non-negative; {name}[{k}] = {values[k]:.3g}")
    low_precision = isinstance(w, torch.Tensor) and w.dtype in (torch.float16, torch.float32)
    total = float(values.sum())
    if abs(total - 1.0) > (1e-5 if low_precision else 1e-8):
        raise ValueError(f"{name} must sum to 1, got {total:.12g}; divide it by its sum")
    return _like(w, like)


def _like(a: Any, like: Any) -> Any:
    """``a`` converted to the array type, dtype and device of ``like``."""
    if isinstance(like, torch.Tensor):
        if isinstance(a, torch.Tensor):
            return a.to(dtype=like.dtype, device=like.device)
        return torch.as_tensor(np.asarray(a), dtype=like.dtype, device=like.device)
    if isinstance(a, torch.Tensor):
        return a.detach().cpu().numpy().astype(np.float64)
    return np.asarray(a, dtype=np.float64)


def _pair(x: Array, y: Array) -> tuple[Any, Any]:
    """Validate two clouds of the same dimension, in one backend (torch if either is)."""
    xs, ys = _as_points(x, "x"), _as_points(y, "y")
    if xs.shape[1] != ys.shape[1]:
        raise ValueError(
            f"x and y must have the same dimension, got x: {tuple(xs.shape)}, y: {tuple(ys.shape)}"
        )
    if _is_torch(xs, ys):
        ref = xs if isinstance(xs, torch.Tensor) else ys
        xs, ys = _like(xs, ref), _like(ys, ref)
    return xs, ys


def _scalar(value: Any) -> float:
    """A 0-d array or tensor as a float (a tensor is detached first, so no autograd warning)."""
    return float(value.detach()) if isinstance(value, torch.Tensor) else float(value)


def _out(value: Any, torch_out: bool) -> Any:
    return value if torch_out else float(value)


def _check_p(p: float) -> float:
    return check_real(p, "p", ge=1, example=2)


def _check_plan_memory(n: int, m: int, bytes_per_pair: int, what: str) -> None:
    check_memory(
        bytes_per_pair * n * m,
        what=f"{what} between {n} and {m} points (an {n} x {m} cost matrix and plan)",
        knob="subsample the point clouds, or use sliced_w or w_1d, which need no plan",
    )


def _cost_matrix(xs: Any, ys: Any, p: float) -> Any:
    with np.errstate(over="ignore", invalid="ignore"):  # an overflow is refused below
        if p == 2:
            cost = pot.dist(xs, ys, metric="sqeuclidean")
        else:
            cost = pot.dist(xs, ys, metric="euclidean") ** p
    if not math.isfinite(_scalar(cost.max())):
        # POT forms squared distances, so points beyond about 1e154 overflow even for p = 1
        raise ValueError(
            f"the cost |x - y|^{p:g} overflows to inf for these points (largest coordinate "
            f"{max(_scalar(abs(xs).max()), _scalar(abs(ys).max())):.3g}); rescale x and y: "
            "W_p(c x, c y) = c W_p(x, y)"
        )
    return cost


def emd(
    x: Array,
    y: Array,
    a: Array | None = None,
    b: Array | None = None,
    *,
    p: float = 2,
    num_iter_max: int | None = None,
) -> OTResult:
    """Exact OT between weighted point clouds with cost |x - y|^p (POT ``ot.emd``).

    The network simplex gets ``num_iter_max = max(1e6, 50 n m)`` iterations unless
    given; if it stops before optimality, :class:`OTConvergenceError` is raised
    rather than returning a wrong cost. The solve holds about 48 bytes per pair of
    points (cost matrix, plan, the simplex's arcs); an estimate above the available
    memory raises :class:`~ottokit._memory.MemoryEstimateError` (a ValueError) before
    allocating (``OTTOKIT_MEMORY_LIMIT=off`` overrides it).
    """
    xs, ys = _pair(x, y)
    p = _check_p(p)
    n, m = xs.shape[0], ys.shape[0]
    aw, bw = _as_weights(a, n, "a", xs), _as_weights(b, m, "b", xs)
    if num_iter_max is None:
        limit = max(1_000_000, 50 * n * m)
    else:
        limit = check_int(num_iter_max, "num_iter_max", ge=1, example=10**6)
    _check_plan_memory(n, m, _EMD_BYTES_PER_PAIR, "exact OT")
    cost_matrix = _cost_matrix(xs, ys, p)
    with warnings.catch_warnings():
        # POT warns on the iteration limit; we read its result code and raise instead
        warnings.filterwarnings("ignore", message="numItermax reached")
        cost, log = pot.emd2(aw, bw, cost_matrix, numItermax=limit, log=True, return_matrix=True)
    code = int(log["result_code"])
    if code != _OPTIMAL:
        raise OTConvergenceError(
            f"exact OT between {n} and {m} points did not converge "
            f"({_RESULT_CODES.get(code, code)}, num_iter_max = {limit}); the cost would be "
            "wrong. Pass a larger num_iter_max."
        )
    torch_out = _is_torch(xs)
    distance = cost ** (1.0 / p) if torch_out else float(cost) ** (1.0 / p)
    return OTResult(
        cost=_out(cost, torch_out),
        distance=distance,
        plan=log["G"],
        p=p,
        converged=True,
        num_iter_max=limit,
    )


def w1(x: Array, y: Array, a: Array | None = None, b: Array | None = None) -> Any:
    """W_1 between weighted point clouds, exact (network simplex, Euclidean cost)."""
    return emd(x, y, a, b, p=1).distance


def w2(x: Array, y: Array, a: Array | None = None, b: Array | None = None) -> Any:
    """W_2 (not squared) between weighted point clouds, exact (squared Euclidean cost)."""
    return emd(x, y, a, b, p=2).distance


def plan(x: Array, y: Array, a: Array | None = None, b: Array | None = None) -> Any:
    """The exact W_2-optimal coupling pi, an ``(n, m)`` array with marginals a and b."""
    return emd(x, y, a, b, p=2).plan


def w_1d(x: Array, y: Array, p: float = 1, a: Array | None = None, b: Array | None = None) -> Any:
    """W_p (not W_p^p) between weighted samples on the line, by sorted quantiles.

    W_p^p = int_0^1 |F^-1(u) - G^-1(u)|^p du (POT ``ot.wasserstein_1d``, which keeps
    torch gradients); ``x`` and ``y`` are 1-D, or ``(n, 1)``.
    """
    xs, ys = _pair(x, y)
    p = _check_p(p)
    if xs.shape[1] != 1:
        raise ValueError(
            f"w_1d needs points on the line: x and y must be 1-D or (n, 1), got dimension "
            f"{xs.shape[1]}; use w1/w2 (exact) or sliced_w in higher dimensions"
        )
    aw, bw = _as_weights(a, xs.shape[0], "a", xs), _as_weights(b, ys.shape[0], "b", xs)
    # (n, 1) columns: POT's batched form, which also avoids its 1-D tensor transpose
    wpp = pot.wasserstein_1d(xs, ys, aw, bw, p=p)[0]
    return _out(wpp ** (1.0 / p), _is_torch(xs))


def _check_gaussian(m: Array, c: Array, mname: str, cname: str) -> int:
    """Validate a mean (d,) and a symmetric positive-definite covariance (d, d); return d."""
    mv = np.atleast_1d(_numpy(m, mname))
    if mv.ndim != 1:
        raise ValueError(f"{mname} must be a vector, got shape {mv.shape}")
    if not np.all(np.isfinite(mv)):
        raise ValueError(f"{mname} must be finite, got {mv.tolist()}")
    d = mv.shape[0]
    as_covariance(_numpy(c, cname), cname, d)
    return d


def w2_gaussian(m1: Array, C1: Array, m2: Array, C2: Array) -> Any:
    """W_2 between N(m1, C1) and N(m2, C2) (the Bures formula, POT ``ot.gaussian``).

    W_2^2 = |m1 - m2|^2 + tr(C1 + C2 - 2 (C1^1/2 C2 C1^1/2)^1/2). Means are (d,)
    vectors (scalars for d = 1), covariances (d, d) symmetric positive definite
    (scalar variances for d = 1); ValueError otherwise. Torch inputs keep autograd.
    """
    d1 = _check_gaussian(m1, C1, "m1", "C1")
    d2 = _check_gaussian(m2, C2, "m2", "C2")
    if d1 != d2:
        raise ValueError(f"the two Gaussians must have the same dimension, got {d1} and {d2}")
    args = (m1, C1, m2, C2)
    if _is_torch(*args):
        ref = next(v for v in args if isinstance(v, torch.Tensor))
        ref = ref if ref.is_floating_point() else ref.to(torch.float64)
        m1, m2 = (_like(v, ref).reshape(d1) for v in (m1, m2))
        C1, C2 = (_like(v, ref).reshape(d1, d1) for v in (C1, C2))
        return pot.gaussian.bures_wasserstein_distance(m1, m2, C1, C2).reshape(())
    m1, m2 = (np.asarray(v, dtype=np.float64).reshape(d1) for v in (m1, m2))
    C1, C2 = (np.asarray(v, dtype=np.float64).reshape(d1, d1) for v in (C1, C2))
    return float(pot.gaussian.bures_wasserstein_distance(m1, m2, C1, C2))


def sliced_w(
    x: Array,
    y: Array,
    n_projections: int = 200,
    seed: int = 0,
    *,
    p: float = 2,
    a: Array | None = None,
    b: Array | None = None,
) -> Any:
    """Sliced W_p: (E_theta W_p^p(theta.x, theta.y))^(1/p) over random unit directions.

    A Monte Carlo average over ``n_projections`` directions drawn with ``seed``
    (POT ``ot.sliced_wasserstein_distance``); at most W_p.
    """
    xs, ys = _pair(x, y)
    p = _check_p(p)
    n_projections = check_int(n_projections, "n_projections", ge=1, example=200)
    seed = check_int(seed, "seed", ge=0)
    aw, bw = _as_weights(a, xs.shape[0], "a", xs), _as_weights(b, ys.shape[0], "b", xs)
    n, m, d = xs.shape[0], ys.shape[0], xs.shape[1]
    check_memory(
        2 * 8 * n_projections * (n + m + d),
        what=f"sliced_w with {n_projections} projections of {n} and {m} points",
        knob="lower n_projections",
    )
    value = pot.sliced_wasserstein_distance(
        xs, ys, aw, bw, n_projections=n_projections, p=p, seed=seed
    )
    return _out(value, _is_torch(xs))


def _marginal_error(log_u: Any, log_v: Any, cost_matrix: Any, eps: float, b: Any) -> float:
    """``|| pi^T 1 - b ||_2`` of the log-domain plan ``pi = exp(log_u + log_v - C / eps)``."""
    nx = pot.backend.get_backend(cost_matrix)
    plan = nx.exp(log_u[:, None] + log_v[None, :] - cost_matrix / eps)
    return _scalar(nx.norm(nx.sum(plan, axis=0) - b))


def sinkhorn(
    x: Array,
    y: Array,
    eps: float,
    a: Array | None = None,
    b: Array | None = None,
    *,
    p: float = 2,
    max_iter: int = 10_000,
    tol: float | None = None,
) -> Any:
    """Entropic approximation of W_p: (sum_ij pi^eps_ij |x_i - y_j|^p)^(1/p).

    pi^eps is the entropic OT plan with regularisation ``eps`` (absolute, in the
    units of the cost |x - y|^p), computed by log-domain Sinkhorn (POT
    ``method="sinkhorn_log"``). The value is at least the exact W_p and tends to
    it as eps -> 0. Warns with :class:`OTConvergenceWarning` if the marginal error
    is still above ``tol`` (default 1e-9, or 1e-5 for float32 tensors; > 0) after
    ``max_iter >= 1`` iterations; raises if the result is not finite. Holds about 72
    bytes per pair of points; an estimate above the available memory raises
    :class:`~ottokit._memory.MemoryEstimateError` before allocating.
    """
    xs, ys = _pair(x, y)
    if tol is None:
        single = isinstance(xs, torch.Tensor) and xs.dtype in (torch.float16, torch.float32)
        tol = 1e-5 if single else 1e-9
    tol = check_real(tol, "tol", gt=0, example=1e-9)
    max_iter = check_int(max_iter, "max_iter", ge=1, example=10_000)
    p = _check_p(p)
    eps = check_real(eps, "eps", gt=0, hint="the entropic regularisation, in units of the cost")
    aw, bw = _as_weights(a, xs.shape[0], "a", xs), _as_weights(b, ys.shape[0], "b", xs)
    _check_plan_memory(xs.shape[0], ys.shape[0], _SINKHORN_BYTES_PER_PAIR, "Sinkhorn")
    cost_matrix = _cost_matrix(xs, ys, p)
    # NumPy's floating-point warnings inside the log domain are not the user's concern:
    # log 0 of a zero weight is harmless, and an overflow (cost / eps) or invalid value
    # makes the cost non-finite, which is raised below
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        cost, log = pot.sinkhorn2(
            aw,
            bw,
            cost_matrix,
            float(eps),
            method="sinkhorn_log",
            numItermax=max_iter,
            stopThr=tol,
            log=True,
        )
    # POT records the marginal error at its first iteration and every tenth after it, so a
    # run that stops on max_iter may have moved up to nine iterations past its last record:
    # the error quoted (and compared with tol) is that of the plan returned
    if not np.isfinite(_scalar(cost)):
        raise OTConvergenceError(
            f"Sinkhorn (eps = {eps:g}) returned a non-finite cost; raise eps or max_iter"
        )
    err = _scalar(log["err"][-1])
    if not err <= tol:
        with np.errstate(over="ignore"):  # C / eps beyond 1e308: exp(-inf) = 0, as in POT
            err = _marginal_error(log["log_u"], log["log_v"], cost_matrix, float(eps), bw)
    if not err <= tol:
        warnings.warn(
            f"Sinkhorn (eps = {eps:g}) stopped after {int(log['niter']) + 1} iterations with "
            f"marginal error {err:.2e} > tol = {tol:.1e}; raise max_iter or eps, or use the "
            "exact w1/w2",
            OTConvergenceWarning,
            stacklevel=2,
        )
    return _out(cost ** (1.0 / p), _is_torch(xs))

"""Linear solvers for the damped natural-gradient system (g_hat + lambda I) v = g.

g_hat = J^T J / N is a :class:`~ottokit.gan.pullback.PullbackMetric`. Each solver is a small
class with two methods: ``factor(metric, damping)`` does the work that depends on the metric
only (and can be reused for several right-hand sides), ``solve(factor, g)`` returns the
direction and a :class:`SolveStats`.

* :class:`Cholesky`: dense g_hat + lambda I, Cholesky factor.
* :class:`ConjugateGradient`: matrix-free CG, one product g_hat v = J^T (J v) / N per
  iteration; warns with :class:`CGConvergenceWarning` when it stops above its tolerance.
* :class:`Woodbury`: (g_hat + lambda I)^{-1} g = (g - J^T (N lambda I + J J^T)^{-1} J g) / lambda,
  a Cholesky factor of the (N d_out)^2 Gram system; needs lambda > 0.
* :class:`AutoSolver`: picks one of them from the metric's size and path.

``solve(..., project=True)`` returns (g_hat + lambda I)^{-1} P g with the damped projection
P = g_hat (g_hat + lambda I)^{-1} = J^T (J J^T + N lambda I)^{-1} J, which has no 1/lambda
term on the null space of g_hat (see :class:`~ottokit.gan.natural_gradient.NaturalGradient`).
"""

from __future__ import annotations

import math
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar, Literal, TypeVar, get_args

import torch
from torch import Tensor

from ottokit._checks import check_option
from ottokit.gan.pullback import PullbackMetric

__all__ = [
    "SOLVERS",
    "AutoSolver",
    "CGConvergenceWarning",
    "Cholesky",
    "CholeskyFactor",
    "ConjugateGradient",
    "Factor",
    "LinearSolver",
    "NonFiniteError",
    "SingularMetricError",
    "SolveStats",
    "SolverName",
    "Woodbury",
    "WoodburyFactor",
    "as_solver",
]

SolverName = Literal["auto", "cholesky", "cg", "woodbury"]
SOLVERS: tuple[str, ...] = get_args(SolverName)


class NonFiniteError(FloatingPointError):
    """A loss, gradient, metric or direction of a natural-gradient step is not finite."""


class SingularMetricError(ValueError):
    """The system cannot be factorised: g_hat + damping * I with damping = 0 and a singular
    metric, or Woodbury's N damping I + J J^T with a damping lost in rounding next to J J^T."""


class CGConvergenceWarning(RuntimeWarning):
    """Conjugate gradients stopped above its tolerance; the direction is inexact."""


@dataclass(frozen=True)
class SolveStats:
    """How one solve went.

    Attributes:
        solver: the solver that ran: ``"cholesky"``, ``"cg"`` or ``"woodbury"``.
        iterations: CG iterations (both runs with ``project``); 0 for the direct solvers.
        residual: CG's relative residual ||g - A v|| / ||g|| from its recursion (the larger
            of the two runs with ``project``); None for the direct solvers.
        converged: the residual met the tolerance (always True for the direct solvers).
    """

    solver: str
    iterations: int = 0
    residual: float | None = None
    converged: bool = True


@dataclass(frozen=True, eq=False)
class Factor:
    """What :meth:`LinearSolver.factor` leaves for the solves: the metric and the damping."""

    solver: LinearSolver  # the solver that built it (the chosen one under AutoSolver)
    metric: PullbackMetric
    damping: float


@dataclass(frozen=True, eq=False)
class CholeskyFactor(Factor):
    """Lower Cholesky factor L of g_hat + lambda I, its squared pivots' range, and the range
    of g_hat's eigenvalues when asked for."""

    chol: Tensor
    pivot_range: tuple[float, float]
    eig_range: tuple[float, float] | None = None


@dataclass(frozen=True, eq=False)
class WoodburyFactor(Factor):
    """Lower Cholesky factor of N lambda I + J J^T; ``jac`` is J on the ``torch.func`` path
    (None on the structured path, where J stays factored and products go through the
    metric)."""

    chol: Tensor
    jac: Tensor | None
    pivot_range: tuple[float, float]


class LinearSolver(ABC):
    """A solver for (g_hat + lambda I) v = g. Subclasses set ``name`` and the two methods."""

    name: ClassVar[str]

    @abstractmethod
    def factor(self, metric: PullbackMetric, damping: float) -> Factor:
        """Prepare the solves with this metric and damping lambda >= 0."""

    @abstractmethod
    def solve(
        self, factor: Factor, g: Tensor, *, project: bool = False, x0: Tensor | None = None
    ) -> tuple[Tensor, SolveStats]:
        """v = (g_hat + lambda I)^{-1} g, or (g_hat + lambda I)^{-1} P g with ``project``.

        ``x0`` is an initial guess (the previous direction): iterative solvers may start from
        it, direct ones ignore it.
        """



_F = TypeVar("_F", bound=Factor)


def _expect(factor: Factor, kind: type[_F], solver: LinearSolver) -> _F:
    if not isinstance(factor, kind):
        name = type(solver).__name__
        raise TypeError(
            f"{name}.solve needs the factor from {name}.factor, got {type(factor).__name__}"
        )
    return factor


def _cholesky(a: Tensor, what: str, hint: str, strict: bool) -> tuple[Tensor, tuple[float, float]]:
    """Cholesky factor and the range of its squared pivots; with ``strict`` (undamped metric)
    a pivot below n eps max diag counts as singular too, since rounding can let a singular PSD
    matrix factorise."""
    if not bool(torch.isfinite(a).all()):
        raise NonFiniteError(
            f"the {what} has NaN or inf entries: the generator's Jacobian is not finite or "
            "overflows at these latents; check the generator's outputs and the latents' scale"
        )
    chol, info = torch.linalg.cholesky_ex(a)
    piv = torch.diagonal(chol).square() if int(info) == 0 else None
    eps = torch.finfo(a.dtype).eps
    tiny = a.shape[0] * eps * float(torch.diagonal(a).abs().max().clamp_min(eps)) if strict else 0
    if piv is None or float(piv.min()) <= tiny or not torch.isfinite(piv).all():
        raise SingularMetricError(
            f"the {what} is singular (or numerically singular) and cannot be factorised; {hint}"
        )
    return chol, (float(piv.min()), float(piv.max()))


@dataclass(frozen=True)
class Cholesky(LinearSolver):
    """Dense g_hat + lambda I (the Jacobian from the metric's path) and its Cholesky factor.

    With lambda = 0 a singular metric raises :class:`SingularMetricError` (a pivot below
    ``n * eps * max diag``).

    Args:
        eig_diagnostics: also compute the range of g_hat's eigenvalues (``eigvalsh``).
    """

    name: ClassVar[str] = "cholesky"
    eig_diagnostics: bool = False

    def factor(self, metric: PullbackMetric, damping: float) -> CholeskyFactor:
        g = metric.dense()
        eig_range = None
        if self.eig_diagnostics:
            ev = torch.linalg.eigvalsh(g)
            eig_range = (float(ev[0]), float(ev[-1]))
        a = g + damping * torch.eye(g.shape[0], dtype=g.dtype, device=g.device)
        chol, pivots = _cholesky(
            a,
            "metric g_hat + damping*I",
            f"with damping={damping:g} the pullback metric from {metric.n_samples} latents "
            "has a null space (e.g. fewer latent outputs than parameters); use damping > 0 "
            "such as 1e-3, or more latents",
            strict=damping == 0,
        )
        return CholeskyFactor(self, metric, damping, chol, pivots, eig_range)

    def solve(
        self, factor: Factor, g: Tensor, *, project: bool = False, x0: Tensor | None = None
    ) -> tuple[Tensor, SolveStats]:
        chol = _expect(factor, CholeskyFactor, self).chol
        v = torch.cholesky_solve(g.unsqueeze(1), chol)
        if project:  # g_hat v = L L^T v - lambda v
            h = chol @ (chol.T @ v) - factor.damping * v
            v = torch.cholesky_solve(h, chol)
        return v.squeeze(1), SolveStats(self.name)


@dataclass(frozen=True)
class Woodbury(LinearSolver):
    """The Woodbury identity with the (N d_out)^2 Gram matrix J J^T; needs lambda > 0.

    On the structured path J J^T comes from the per-sample factors and J g, J^T y are
    products; on the ``torch.func`` path J is formed once per factor.
    """

    name: ClassVar[str] = "woodbury"

    def factor(self, metric: PullbackMetric, damping: float) -> WoodburyFactor:
        if not damping > 0:
            raise ValueError(
                "the woodbury solver needs damping > 0 (it divides by damping); "
                "use damping such as 1e-3, or solver='cholesky' / 'cg'"
            )
        jac = None
        if metric.path == "structured":
            small = metric.gram()
        else:
            jac = metric.jacobian()
            small = jac @ jac.T
        small.diagonal().add_(metric.n_samples * damping)
        chol, pivots = _cholesky(
            small, "Woodbury matrix N*damping*I + J J^T", "increase damping", strict=False
        )
        return WoodburyFactor(self, metric, damping, chol, jac, pivots)

    def solve(
        self, factor: Factor, g: Tensor, *, project: bool = False, x0: Tensor | None = None
    ) -> tuple[Tensor, SolveStats]:
        factor = _expect(factor, WoodburyFactor, self)
        metric, jac = factor.metric, factor.jac
        jg = (jac @ g if jac is not None else metric.jvp(g)).unsqueeze(1)
        y = torch.cholesky_solve(jg, factor.chol)
        if project:  # N J^T (J J^T + N lambda I)^{-2} J g: no 1/lambda term
            y = torch.cholesky_solve(y, factor.chol).squeeze(1) * metric.n_samples
            v = jac.T @ y if jac is not None else metric.vjp(y)
            return v, SolveStats(self.name)
        y = y.squeeze(1)
        jty = jac.T @ y if jac is not None else metric.vjp(y)
        return (g - jty) / factor.damping, SolveStats(self.name)


def _cg(
    matvec: Callable[[Tensor], Tensor], b: Tensor, x0: Tensor | None, maxiter: int, tol: float
) -> tuple[Tensor, float, int]:
    """Conjugate gradients on a symmetric positive (semi)definite operator.

    Returns the iterate, the relative residual ||b - A x|| / ||b|| of the CG recursion and the
    number of iterations.
    """
    bnorm = float(b.norm())
    if bnorm == 0.0:
        return torch.zeros_like(b), 0.0, 0
    if x0 is None:
        x = torch.zeros_like(b)
        r = b.clone()
    else:
        x = x0.clone()
        r = b - matvec(x)
    p = r.clone()
    rs = r.dot(r)
    done = 0
    for _ in range(maxiter):
        if math.sqrt(float(rs)) <= tol * bnorm:
            break
        ap = matvec(p)
        pap = p.dot(ap)
        if float(pap) <= 0.0:  # exhausted the range of a singular operator
            break
        alpha = rs / pap
        x.add_(p, alpha=float(alpha))
        r.sub_(ap, alpha=float(alpha))
        rs_new = r.dot(r)
        p.mul_(float(rs_new / rs)).add_(r)
        rs = rs_new
        done += 1
    return x, math.sqrt(float(rs)) / bnorm, done


@dataclass(frozen=True)
class ConjugateGradient(LinearSolver):
    """Matrix-free conjugate gradients; each iteration one product g_hat v (a JVP and a VJP).

    Stops at relative residual ``tol`` or after ``maxiter`` iterations; stopping above
    ``tol`` warns with :class:`CGConvergenceWarning` (a small ``maxiter`` on purpose, as in
    truncated Newton, can silence it with ``warnings.filterwarnings``) and is recorded in
    :class:`SolveStats`. With ``project`` CG runs twice.

    Args:
        maxiter: at most this many iterations per run (>= 1).
        tol: relative residual to stop at (>= 0).
        warm_start: start from the caller's initial guess ``x0`` (the optimiser passes the
            previous step's direction; one extra product).
    """

    name: ClassVar[str] = "cg"
    maxiter: int = 10
    tol: float = 1e-10
    warm_start: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.maxiter, bool) or not isinstance(self.maxiter, int) or self.maxiter < 1:
            raise ValueError(f"maxiter must be an integer >= 1, got {self.maxiter!r}")
        if not (isinstance(self.tol, (int, float)) and self.tol >= 0):
            raise ValueError(f"tol must be a number >= 0, got {self.tol!r}")

    def factor(self, metric: PullbackMetric, damping: float) -> Factor:
        return Factor(self, metric, damping)

    def solve(
        self, factor: Factor, g: Tensor, *, project: bool = False, x0: Tensor | None = None
    ) -> tuple[Tensor, SolveStats]:
        metric, lam = factor.metric, factor.damping

        def op(v: Tensor) -> Tensor:
            out = metric.matvec(v)
            return out.add_(v, alpha=lam) if lam else out

        start = x0 if self.warm_start else None
        v, res, its = _cg(op, g, start, self.maxiter, self.tol)
        if project:
            v, res2, its2 = _cg(op, metric.matvec(v), start, self.maxiter, self.tol)
            res, its = max(res, res2), its + its2
        converged = res <= self.tol
        if not converged:
            warnings.warn(
                f"conjugate gradients stopped after maxiter={self.maxiter} iterations above "
                f"tol={self.tol:g}; the natural-gradient direction is inexact. Raise maxiter "
                "or damping, or use solver='woodbury' / 'cholesky'",
                CGConvergenceWarning,
                stacklevel=2,
            )
        return v, SolveStats(self.name, iterations=its, residual=res, converged=converged)


@dataclass(frozen=True)
class AutoSolver(LinearSolver):
    """Chooses a solver at each factorisation from the metric's size and path.

    With m d_out the rows of J and n the parameters, on the structured path:
    :class:`Cholesky` if ``n <= min(m d_out, dense_max_params)`` (the n x n system is the
    smaller); else :class:`Woodbury` if lambda > 0 and ``m d_out <= woodbury_max_rows`` (Gram
    cost O((m d_out)^2 width), no J formed); else Cholesky if ``n <= dense_max_params``;
    else :class:`ConjugateGradient`. On the ``torch.func`` path: Cholesky if
    ``n <= dense_max_params``; else Woodbury if lambda > 0, ``m d_out <= woodbury_max_rows``
    and ``m d_out * n <= woodbury_max_entries`` (the Jacobian's entries); else CG.

    Args:
        cholesky: the direct solver it chooses (its settings are kept).
        woodbury: the Woodbury solver it chooses (its settings are kept).
        cg: the conjugate-gradient solver it chooses (its settings are kept).
    """

    name: ClassVar[str] = "auto"
    cholesky: Cholesky = field(default_factory=Cholesky)
    woodbury: Woodbury = field(default_factory=Woodbury)
    cg: ConjugateGradient = field(default_factory=ConjugateGradient)
    dense_max_params: int = 3000
    woodbury_max_rows: int = 4096
    woodbury_max_entries: int = 20_000_000

    def choose(self, metric: PullbackMetric, damping: float) -> LinearSolver:
        """The solver the rule above picks for this metric and damping."""
        n, rows = metric.n_params, metric.n_samples * metric.d_out
        if metric.path == "structured":
            # the structured Gram matrix is cheap: Woodbury whenever its (rows x rows) system
            # is smaller than the dense (n x n) one
            if n <= min(rows, self.dense_max_params):
                return self.cholesky
            if damping > 0 and rows <= self.woodbury_max_rows:
                return self.woodbury
            return self.cholesky if n <= self.dense_max_params else self.cg
        if n <= self.dense_max_params:
            return self.cholesky
        if damping > 0 and rows <= self.woodbury_max_rows and rows * n <= self.woodbury_max_entries:
            return self.woodbury
        return self.cg

    def factor(self, metric: PullbackMetric, damping: float) -> Factor:
        return self.choose(metric, damping).factor(metric, damping)

    def solve(
        self, factor: Factor, g: Tensor, *, project: bool = False, x0: Tensor | None = None
    ) -> tuple[Tensor, SolveStats]:
        return factor.solver.solve(factor, g, project=project, x0=x0)


def as_solver(solver: SolverName | LinearSolver) -> LinearSolver:
    """The solver for a name in :data:`SOLVERS` (default settings), or ``solver`` itself."""
    if isinstance(solver, LinearSolver):
        return solver
    if not isinstance(solver, str):
        raise TypeError(
            f"solver must be one of {', '.join(map(repr, SOLVERS))} or a LinearSolver such as "
            f"ConjugateGradient(maxiter=50), got {type(solver).__name__}"
        )
    check_option(solver, SOLVERS, "solver")
    named: dict[str, type[LinearSolver]] = {
        "auto": AutoSolver, "cholesky": Cholesky, "cg": ConjugateGradient, "woodbury": Woodbury,
    }  # fmt: skip
    return named[solver]()

"""One entry point, :func:`solve`, integrating any graph :class:`~ottokit.graph.Flow`.

Methods, all from maintained libraries: ``"lsoda"`` (ODEPACK, the seed's integrator, dense
analytic Jacobian), ``"bdf"`` and ``"adams"`` (SUNDIALS CVODE with positivity constraints;
GMRES preconditioned by algebraic multigrid on large graphs), ``"rk45"``, ``"dop853"``,
``"radau"`` and ``"scipy-bdf"`` (``solve_ivp``), and ``"auto"``, which picks among them by
graph size and stiffness. The API reference page of :mod:`ottokit.graph` ("Choosing an
integrator") describes each and the rule of ``"auto"``.

Mass is conserved to rounding (the Jacobian's columns sum to zero and the
multigrid preconditioner is projected to preserve sums); a trajectory with a
negative density, a failed step, or a mass drift above what rounding can explain
(``Trajectory.mass_tol``: 1e-10, or on long horizons the rounding bound
``eps (n + steps + S (t1 - t0))``, S the Jacobian's Gershgorin bound) raises
:class:`SolverError` carrying the diagnostics, never a half-filled result.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp
from scipy.integrate import odeint, solve_ivp
from threadpoolctl import threadpool_limits

from ottokit._checks import (
    as_array,
    as_density,
    check_instance,
    check_int,
    check_option,
    check_real,
    options,
)
from ottokit._memory import check_memory
from ottokit.graph._flows import Flow

__all__ = ["solve", "Trajectory", "SolverError", "METHODS", "MASS_TOL"]

Method = Literal["auto", "lsoda", "bdf", "adams", "rk45", "dop853", "radau", "scipy-bdf"]
METHODS: tuple[str, ...] = options(Method)
MASS_TOL = 1e-10
_SMALL = 2_000
_DENSE_CVODE = 1_500
_STIFF = 50.0
_EXPLICIT_BUDGET = 5_000


class SolverError(RuntimeError):
    """The integration failed; ``diagnostics`` says how far it got and why."""

    def __init__(self, message: str, diagnostics: dict[str, Any]):
        super().__init__(message)
        self.diagnostics = diagnostics


@dataclass
class Trajectory:
    """A solved flow: densities at the output times and what the solver did.

    Attributes:
        t: output times (T,).
        rho: densities (T, n).
        energy: the flow's free energy at each output time (T,).
        dissipation: ``-dE/dt`` at each output time (T,).
        mass_drift: max over times and components of |mass_c(t) - mass_c(0)|, relative to
            the total mass.
        mass_tol: the largest relative drift rounding can explain for this solve,
            ``max(1e-10, eps (n + n_rhs + S (t1 - t0)))``; ``mass_drift <= mass_tol``.
        min_density: smallest density over all outputs.
        n_rhs, n_jac: right-hand sides and Jacobians evaluated.
        converged: True (a failed integration raises instead).
        method: the method that ran (``"auto"`` resolved).
        wall_time: seconds spent in the integrator.
    """

    t: np.ndarray
    rho: np.ndarray
    energy: np.ndarray
    dissipation: np.ndarray
    mass_drift: float
    min_density: float
    n_rhs: int
    n_jac: int
    converged: bool
    method: str
    wall_time: float
    mass_tol: float = MASS_TOL
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def final(self) -> np.ndarray:
        return self.rho[-1]


def _check_times(t_span: Any, t_eval: Any) -> tuple[float, float, np.ndarray]:
    ts = as_array(t_span, "t_span", finite=False)
    if ts.shape != (2,) or not np.all(np.isfinite(ts)):
        raise ValueError(f"t_span must be two finite times (t0, t1), got {t_span!r}")
    t0, t1 = float(ts[0]), float(ts[1])
    if not t1 > t0:
        raise ValueError(f"t_span must have t1 > t0, got ({t0}, {t1})")
    if t_eval is None:
        te = np.linspace(t0, t1, 11)
    else:
        te = as_array(t_eval, "t_eval", finite=False).ravel()
        if te.size == 0 or not np.all(np.isfinite(te)):
            raise ValueError("t_eval must be a non-empty array of finite times")
        if np.any(np.diff(te) <= 0):
            raise ValueError("t_eval must be strictly increasing")
        if te[0] < t0 - 1e-12 * abs(t1 - t0) or te[-1] > t1 + 1e-12 * abs(t1 - t0):
            raise ValueError(
                f"t_eval must lie inside t_span = ({t0}, {t1}); got [{te[0]}, {te[-1]}]"
            )
        te = np.clip(te, t0, t1)
    return t0, t1, te


def _resolve(flow: Flow, rho0: np.ndarray, t0: float, t1: float, method: str) -> str:
    if method != "auto":
        return method
    g = flow.graph
    if g.n <= _SMALL:
        return "lsoda"
    return "bdf" if flow.stiffness_bound(_uniform(flow, rho0)) * (t1 - t0) > _STIFF else "rk45"


def _uniform(flow: Flow, rho0: np.ndarray) -> np.ndarray:
    """The equilibrium-like state: each component's mass spread evenly over its nodes."""
    labels, k = flow.graph.components(), flow.graph.n_components
    return (np.bincount(labels, rho0, k) / np.bincount(labels, minlength=k))[labels]


def _mass_tolerance(flow: Flow, rho0: np.ndarray, n_rhs: int, span: float) -> float:
    """The relative mass drift that rounding alone can explain: ``max(MASS_TOL, bound)``.

    In exact arithmetic every method conserves mass (``1^T rhs = 0``, and the Newton and
    Krylov corrections keep sums because the Jacobian's columns sum to zero). In floating
    point each step ``rho + h k`` rounds every entry with relative error ``eps``, and each
    entry of ``k = rhs(rho)`` is a sum of terms ``|J_ij| rho_j`` rounded the same way, so
    one step changes the total mass ``M`` by at most about
    ``eps (sum_i rho_i + h sum_ij |J_ij| rho_j) <= eps M (1 + h S)``, with ``S`` the
    Gershgorin bound ``max_j sum_i |J_ij|`` (taken at the equilibrium-like state, where
    long horizons spend their steps). Adding the errors linearly over at most ``n_rhs``
    steps with ``sum h = t1 - t0``, plus ``n eps M`` for summing ``n`` masses, gives
    ``drift / M <= eps (n + n_rhs + S (t1 - t0))``. The bound is linear (worst case), not
    ``sqrt(steps)``: near equilibrium a Laplacian product ``D rho - W rho`` rounds with
    the same sign step after step. A leak at a rate above ``eps S`` per unit time, the
    rounding of one right-hand side, still exceeds the bound and raises.
    """
    eps = np.finfo(np.float64).eps
    stiffness = flow.stiffness_bound(_uniform(flow, rho0))
    return max(MASS_TOL, eps * (flow.graph.n + n_rhs + stiffness * span))


class _BudgetExceeded(Exception):
    pass


class _Counter:
    def __init__(self, flow: Flow, budget: int | None = None):
        self.flow = flow
        self.n_rhs = 0
        self.n_jac = 0
        self.budget = budget
        self.info: dict[str, Any] = {}

    def rhs(self, y: np.ndarray) -> np.ndarray:
        self.n_rhs += 1
        if self.budget is not None and self.n_rhs > self.budget:
            raise _BudgetExceeded
        return self.flow.rhs(y)

    def jac(self, y: np.ndarray) -> sp.csc_matrix:
        self.n_jac += 1
        return self.flow.jacobian(y)


def _fail(msg: str, method: str, c: _Counter, **extra: Any) -> SolverError:
    diag = {"method": method, "n_rhs": c.n_rhs, "n_jac": c.n_jac, **extra}
    return SolverError(f"{method}: {msg} (diagnostics: {diag})", diag)


def _run_lsoda(c: _Counter, rho0, te, rtol, atol, max_steps):
    def f(y, _t):
        return c.rhs(y)

    def dfun(y, _t):
        return c.jac(y).toarray()

    y, info = odeint(
        f, rho0, te, Dfun=dfun, rtol=rtol, atol=atol, mxstep=max_steps, full_output=True
    )
    if info["message"] != "Integration successful.":
        # tcur[k] is how far the interval to te[k + 1] got; entries after the failed
        # interval are left unwritten, so the first one that falls short is the answer
        tcur = np.asarray(info["tcur"])
        t_reached = float(tcur[np.flatnonzero(tcur < te[1:])[0]])
        raise _fail(info["message"], "lsoda", c, t_reached=t_reached)
    return y


def _run_ivp(c: _Counter, method, rho0, t0, t1, te, rtol, atol):
    kw: dict[str, Any] = {}
    if method in ("radau", "scipy-bdf"):
        kw["jac"] = lambda _t, y: c.jac(y)
    name = {"rk45": "RK45", "dop853": "DOP853", "radau": "Radau", "scipy-bdf": "BDF"}[method]
    sol = solve_ivp(
        lambda _t, y: c.rhs(y), (t0, t1), rho0, method=name, t_eval=te, rtol=rtol, atol=atol, **kw
    )
    if not sol.success:  # te starts at t0, so sol.t holds at least t0
        raise _fail(sol.message, method, c, t_reached=float(sol.t[-1]))
    return sol.y.T


class _AMGPreconditioner:
    """Multigrid cycle for ``I - gamma J``, projected to preserve each component's sum."""

    def __init__(self, c: _Counter, labels: np.ndarray, n_comp: int, ratio: float = 3.0):
        self.c = c
        self.labels = labels
        self.n_comp = n_comp
        self.count = np.bincount(labels, minlength=n_comp).astype(np.float64)
        self.ratio = ratio
        self.J: sp.csc_matrix | None = None
        self.gamma_p: float | None = None
        self.cycle: Any = None
        self.n_setup = 0

    def setup(self, t, y, yp, jok, jnew, gamma):
        if not jok or self.J is None:
            self.J = self.c.jac(np.asarray(y)).tocsr()
            self.gamma_p = None
            jnew[0] = 1
        else:
            jnew[0] = 0
        if self.gamma_p is None or not (1 / self.ratio < gamma / self.gamma_p < self.ratio):
            import pyamg

            n = self.J.shape[0]
            m = sp.identity(n, format="csr") - gamma * self.J
            ml = pyamg.smoothed_aggregation_solver(
                m,
                smooth=None,
                presmoother=("gauss_seidel", {"sweep": "forward"}),
                postsmoother=("gauss_seidel", {"sweep": "backward"}),
            )
            self.cycle = ml.aspreconditioner(cycle="V")
            self.gamma_p = gamma
            self.n_setup += 1

    def solve(self, t, y, yp, rvec, zvec, gamma, delta, lr):
        r = np.asarray(rvec)
        z = self.cycle @ r
        excess = np.bincount(self.labels, z - r, self.n_comp) / self.count
        zvec[:] = z - excess[self.labels]

    def jtimes(self, t, y, yp, v, jv):
        jv[:] = self.J @ np.asarray(v)


def _run_cvode(c: _Counter, flow: Flow, method, rho0, te, rtol, atol, max_steps):
    import sksundae as sun

    n = rho0.size
    opts: dict[str, Any] = dict(
        method="BDF" if method == "bdf" else "Adams",
        rtol=rtol,
        atol=atol,
        max_num_steps=max_steps,
    )
    if flow.needs_positive:
        opts.update(constraints_idx=np.arange(n), constraints_type=np.full(n, 2))

    def rhsfn(_t, y, yp):
        yp[:] = c.rhs(y)

    pre = None
    if n <= _DENSE_CVODE:

        def jacfn(_t, y, _yp, jj):
            jj[:, :] = c.jac(y).toarray()

        opts.update(linsolver="dense", jacfn=jacfn)
    else:
        g = flow.graph
        pre = _AMGPreconditioner(c, g.components(), g.n_components)
        opts.update(
            linsolver="gmres",
            krylov_dim=10,
            precond=sun.cvode.CVODEPrecond(pre.setup, pre.solve, side="left"),
            jactimes=sun.cvode.CVODEJacTimes(None, pre.jtimes),
        )
    solver = sun.cvode.CVODE(rhsfn, **opts)
    # The Krylov and multigrid work is many small BLAS calls: with several BLAS threads
    # they spin-wait on a shared machine (up to 10x slower here), with one they do not.
    with threadpool_limits(limits=1, user_api="blas"):
        # given two times CVODE returns its internal steps: ask for the midpoint as well
        ts = te if te.size > 2 else np.array([te[0], 0.5 * (te[0] + te[1]), te[1]])
        sol = solver.solve(ts, rho0)
    if not sol.success:  # sol.t holds the output times reached and where it stopped
        raise _fail(str(sol.message), method, c, t_reached=float(sol.t[-1]))
    if pre is not None:
        c.info["n_precond_setups"] = pre.n_setup
    return np.asarray(sol.y)[[0, -1]] if te.size == 2 else np.asarray(sol.y)


def solve(
    flow: Flow,
    rho0: np.ndarray,
    t_span: tuple[float, float],
    t_eval: np.ndarray | None = None,
    *,
    method: Method = "auto",
    rtol: float = 1e-6,
    atol: float = 1e-12,
    normalize: bool = False,
    max_steps: int = 200_000,
) -> Trajectory:
    """Integrate ``d rho/dt = flow.rhs(rho)`` from ``rho0`` over ``t_span``.

    Args:
        flow: a :class:`WassersteinFlow`, :class:`LinearHeatFlow` or other :class:`Flow`.
        rho0: initial probability vector (n,), summing to 1 (or pass ``normalize=True``).
        t_span: ``(t0, t1)`` with ``t1 > t0``.
        t_eval: output times inside ``t_span`` (default: 11 equally spaced).
        method: see the module docstring; ``"auto"`` chooses by size and stiffness.
        rtol: relative tolerance of the integrator.
        atol: absolute tolerance of the integrator.
        normalize: rescale ``rho0`` to total mass 1 instead of refusing it.
        max_steps: most internal steps per output interval (``"lsoda"``, ``"bdf"``,
            ``"adams"``; the ``solve_ivp`` methods have no such limit).

    Returns:
        A complete :class:`Trajectory`.

    Raises:
        TypeError: ``flow`` is not a :class:`Flow`, or an argument has the wrong type.
        ValueError: bad ``rho0``, ``t_span``, ``t_eval``, ``method``, ``rtol``, ``atol``
            or ``max_steps``.
        SolverError: the integrator failed, a density became non-positive where
            the functional needs ``rho > 0``, or mass drifted above ``Trajectory.mass_tol``.
    """
    check_instance(flow, Flow, "flow")
    check_option(method, Method, "method")
    rtol = check_real(rtol, "rtol", gt=0, example=1e-6)
    atol = check_real(atol, "atol", gt=0, example=1e-12)
    max_steps = check_int(max_steps, "max_steps", ge=1, example=200_000)
    g = flow.graph
    rho0 = as_density(rho0, g.n, name="rho0", positive=flow.needs_positive, normalize=normalize)
    t0, t1, te = _check_times(t_span, t_eval)
    # trial states of an integrator may leave the domain (log of a negative number): such
    # steps are rejected by the integrator, and a bad final state fails the checks below
    with np.errstate(invalid="ignore", divide="ignore"):
        return _integrate(flow, rho0, t0, t1, te, method, rtol, atol, max_steps)


def _integrate(
    flow: Flow,
    rho0: np.ndarray,
    t0: float,
    t1: float,
    te: np.ndarray,
    method: str,
    rtol: float,
    atol: float,
    max_steps: int,
) -> Trajectory:
    g = flow.graph
    resolved = _resolve(flow, rho0, t0, t1, method)
    grid_t = te if te[0] == t0 else np.concatenate([[t0], te])
    start = time.perf_counter()
    abandoned = None
    # the only output time may be t0: then there is nothing to integrate
    c, y, moves = _Counter(flow), rho0[None, :].copy(), grid_t.size > 1
    if moves and method == "auto" and resolved == "rk45":
        c = _Counter(flow, budget=_EXPLICIT_BUDGET)
        try:
            y = _run_ivp(c, "rk45", rho0, t0, t1, grid_t, rtol, atol)
            if flow.needs_positive and y.min() <= 0:
                raise _BudgetExceeded
        except _BudgetExceeded:
            resolved = "bdf"
            abandoned = f"rk45 after {c.n_rhs} right-hand sides"
    if moves and (resolved != "rk45" or method == "rk45"):
        c = _Counter(flow)
        if resolved == "lsoda":
            check_memory(
                3 * 8 * g.n**2,
                what=f"lsoda's dense Jacobian on {g.n} nodes",
                knob="use method='bdf' or 'auto', whose Jacobians are sparse",
            )
            y = _run_lsoda(c, rho0, grid_t, rtol, atol, max_steps)
        elif resolved in ("bdf", "adams"):
            y = _run_cvode(c, flow, resolved, rho0, grid_t, rtol, atol, max_steps)
        else:
            y = _run_ivp(c, resolved, rho0, t0, t1, grid_t, rtol, atol)
        if abandoned is not None:
            c.info["abandoned"] = abandoned
    wall = time.perf_counter() - start
    if te[0] != t0:
        y = y[1:]
    if not np.all(np.isfinite(y)):
        raise _fail("non-finite density in the solution", resolved, c)
    labels, k = g.components(), g.n_components
    mass0 = np.bincount(labels, rho0, k)
    # per component (a component may start empty); rho0 has total mass 1 (to 1e-8, checked
    # above), so this is the drift relative to the total mass
    drift = max(float(np.max(np.abs(np.bincount(labels, row, k) - mass0))) for row in y)
    min_density = float(y.min())
    if flow.needs_positive and min_density <= 0:
        bad_t, bad_i = np.unravel_index(int(np.argmin(y)), y.shape)
        raise _fail(
            f"density became non-positive (rho[{bad_i}] = {min_density:.3g} "
            f"at t = {te[bad_t]:.6g}); "
            "use method='bdf' (positivity constraints) or tighter tolerances",
            resolved,
            c,
            min_density=min_density,
        )
    mass_tol = _mass_tolerance(flow, rho0, c.n_rhs, t1 - t0)
    if drift > mass_tol:
        raise _fail(
            f"mass drifted by {drift:.3g} (relative) > {mass_tol:.3g}, more than rounding "
            f"explains over {c.n_rhs} right-hand sides and t1 - t0 = {t1 - t0:g}; the flow's "
            "right-hand side does not conserve mass",
            resolved,
            c,
            mass_drift=drift,
            mass_tol=mass_tol,
        )
    energy = np.array([flow.energy(r) for r in y])
    dissipation = np.array([flow.dissipation(r) for r in y])
    return Trajectory(
        t=te,
        rho=y,
        energy=energy,
        dissipation=dissipation,
        mass_drift=drift,
        min_density=min_density,
        n_rhs=c.n_rhs,
        n_jac=c.n_jac,
        converged=True,
        method=resolved,
        wall_time=wall,
        mass_tol=mass_tol,
        info=c.info,
    )

"""Energy-dissipation equality on grids (seed 001 Definition 5.1, Theorem 5.2).

Along a classical solution of the Wasserstein gradient flow of an f-divergence,

    d rho/dt = div(rho grad phi),   phi = f'(rho / q)                  (seed 001 eq. 5.1)

the energy ``F_f(rho || q) = int q f(rho/q) dx`` obeys the energy-dissipation equality

    dF/dt = - int rho |grad phi|^2 dx                                   (Theorem 5.2).

On a grid graph from :func:`ottokit.graph.grid` a :class:`~ottokit.graph.WassersteinFlow` of
node masses is the finite-volume discretisation of (5.1). :func:`energy_dissipation` checks
Theorem 5.2 on a solved trajectory: ``dF/dt`` measured from the trajectory by centred
differences in time, against the continuum dissipation ``int rho |grad phi|^2 dx`` (finite
differences on the grid, midpoint rule) and the discrete Otto dissipation. Their relative gap
is ``O(h^2)`` on smooth solutions with no flux through the boundary; the API reference page of
:mod:`ottokit.graph` ("The energy-dissipation check") gives each estimate and its error.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ottokit._checks import (
    MASS_RTOL,
    as_array,
    as_density,
    check_instance,
    check_option,
    check_real,
)
from ottokit.functionals import FDivergence
from ottokit.graph._calculus import edge_mean
from ottokit.graph._flows import WassersteinFlow
from ottokit.graph._graph import Graph
from ottokit.graph._solve import Method, Trajectory, solve

__all__ = [
    "EDIReport",
    "GridGeometry",
    "grid_geometry",
    "grid_density",
    "energy_dissipation",
    "edi_check",
    "continuum_dissipation",
    "observed_order",
]


@dataclass(frozen=True)
class GridGeometry:
    """Shape and spacing of a regular grid graph (nodes at cell centres, C order).

    Attributes:
        shape: number of nodes along each axis.
        spacing: cell width ``h_k`` along each axis.
        lower: left end of the domain along each axis (``centre_0 - h_k / 2``).
    """

    shape: tuple[int, ...]
    spacing: tuple[float, ...]
    lower: tuple[float, ...]

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def cell_volume(self) -> float:
        return float(np.prod(self.spacing))

    @property
    def upper(self) -> tuple[float, ...]:
        return tuple(
            lo + n * h for lo, n, h in zip(self.lower, self.shape, self.spacing, strict=True)
        )

    def edges(self, axis: int = 0) -> np.ndarray:
        """Cell edges along ``axis`` (``shape[axis] + 1`` points)."""
        return self.lower[axis] + self.spacing[axis] * np.arange(self.shape[axis] + 1)

    def coordinates(self) -> tuple[np.ndarray, ...]:
        """Cell-centre coordinates, one array of ``shape`` per axis (``indexing='ij'``)."""
        axes = [
            lo + h * (np.arange(n) + 0.5)
            for lo, h, n in zip(self.lower, self.spacing, self.shape, strict=True)
        ]
        return tuple(np.meshgrid(*axes, indexing="ij"))


def grid_geometry(g: Graph) -> GridGeometry:
    """Recover shape and spacing of a non-periodic grid built by :func:`ottokit.graph.grid`.

    An axis with a single node has no spacing in the positions: it is taken as twice the
    node's coordinate (a grid from :func:`ottokit.graph.grid` starts at 0), or 1 if that
    coordinate is not positive.

    Raises:
        TypeError: ``g`` is not a :class:`Graph`.
        ValueError: ``g`` has no positions, its positions are not a regular lattice in C
            order, or its edges/weights are not the nearest-neighbour ``1/h^2`` pattern
            (e.g. a periodic grid or a random graph).
    """
    check_instance(g, Graph, "g")
    hint = "build it with ottokit.graph.grid(shape, spacing) (non-periodic)"
    if g.positions is None:
        raise ValueError(f"the graph has no node positions, so it is not a grid; {hint}")
    pos = g.positions
    d = pos.shape[1]
    shape, spacing, lower = [], [], []
    for k in range(d):
        u = np.unique(pos[:, k])
        if u.size > 1:
            steps = np.diff(u)
            h = float(steps.mean())
            if np.max(np.abs(steps - h)) > 1e-9 * max(h, 1e-300) * u.size:
                raise ValueError(f"node positions along axis {k} are not equally spaced; {hint}")
        else:
            # a single node has no spacing from positions: take it from the centre 0.5 h
            h = 2.0 * float(u[0]) if u[0] > 0 else 1.0
        shape.append(int(u.size))
        spacing.append(h)
        lower.append(float(u[0]) - 0.5 * h)
    if int(np.prod(shape)) != g.n:
        raise ValueError(f"node positions do not form a full lattice {tuple(shape)}; {hint}")
    geo = GridGeometry(tuple(shape), tuple(spacing), tuple(lower))
    expected = np.stack([c.ravel() for c in geo.coordinates()], axis=1)
    if not np.allclose(pos, expected, rtol=0, atol=1e-9 * max(spacing)):
        raise ValueError(f"node positions are not in C order on the lattice {tuple(shape)}; {hint}")
    ref_edges, ref_w = _lattice_edges(geo)
    if g.m != ref_edges.shape[0] or not np.array_equal(g.edges, ref_edges):
        raise ValueError(
            f"the graph's edges are not the nearest-neighbour edges of a {tuple(shape)} grid "
            f"({g.m} edges, expected {ref_edges.shape[0]}); {hint}"
        )
    if not np.allclose(g.weights, ref_w, rtol=1e-9, atol=0):
        raise ValueError(f"grid edge weights must be 1/h^2 along each axis; {hint}")
    return geo


def _lattice_edges(geo: GridGeometry) -> tuple[np.ndarray, np.ndarray]:
    idx = np.arange(int(np.prod(geo.shape))).reshape(geo.shape)
    blocks, weights = [], []
    for ax in range(geo.ndim):
        n = geo.shape[ax]
        a = idx.take(range(n - 1), axis=ax).ravel()
        b = idx.take(range(1, n), axis=ax).ravel()
        blocks.append(np.stack([a, b], axis=1))
        weights.append(np.full(a.size, 1.0 / geo.spacing[ax] ** 2))
    edges, w = np.concatenate(blocks), np.concatenate(weights)
    order = np.lexsort((edges[:, 1], edges[:, 0]))
    return edges[order], w[order]


def grid_density(fn: Callable[..., np.ndarray], g: Graph) -> np.ndarray:
    """Normalised node masses ``m_i proportional to fn(x_i) h^d`` of a density on a grid.

    ``fn`` is called with one coordinate array per axis (cell centres, ``indexing='ij'``,
    each of the grid's shape), e.g. ``fn(x)`` in 1-D and ``fn(x, y)`` in 2-D, and must
    return non-negative finite values of that shape (or broadcastable to it). The masses are
    the midpoint rule for ``int_cell rho``, renormalised to sum to 1.

    Raises:
        ValueError: ``g`` is not a grid, or ``fn`` returns a wrong shape, non-finite or
            negative values, or only zeros.
    """
    if not callable(fn):
        raise TypeError(f"fn must be a callable density, got {type(fn).__name__}")
    geo = grid_geometry(g)
    vals = np.asarray(fn(*geo.coordinates()), dtype=np.float64)
    try:
        vals = np.broadcast_to(vals, geo.shape)
    except ValueError:
        raise ValueError(
            f"fn returned shape {vals.shape}; it must return one value per grid node, "
            f"shape {geo.shape}"
        ) from None
    flat = vals.ravel()
    if not np.all(np.isfinite(flat)):
        raise ValueError("fn returned non-finite values; the density must be finite")
    if np.any(flat < 0):
        raise ValueError(f"fn returned negative values (min {flat.min():.3g}); a density is >= 0")
    total = float(flat.sum())
    if total <= 0:
        raise ValueError("fn is zero on every node; it has no mass to normalise")
    return flat / total


@dataclass
class EDIReport:
    """Energy-dissipation equality (seed 001 Thm 5.2) checked along a grid trajectory.

    Attributes:
        t: times of the report (K,).
        energy: ``F`` at those times (K,).
        dFdt: ``dF/dt`` measured from the trajectory by time differences (K,).
        dissipation: continuum dissipation ``int rho |grad phi|^2 dx`` (K,).
        dissipation_discrete: Otto dissipation ``sum_e w_e theta_e (phi_i - phi_j)^2`` (K,).
        rel_error: ``|dF/dt + dissipation| / dissipation`` (K,), the Theorem 5.2 residual.
        rel_error_discrete: ``|dF/dt + dissipation_discrete| / dissipation_discrete`` (K,),
            the time-differencing error alone.
        shape, spacing: the grid.
    """

    t: np.ndarray
    energy: np.ndarray
    dFdt: np.ndarray
    dissipation: np.ndarray
    dissipation_discrete: np.ndarray
    rel_error: np.ndarray
    rel_error_discrete: np.ndarray
    shape: tuple[int, ...]
    spacing: tuple[float, ...]

    @property
    def max_rel_error(self) -> float:
        return float(np.max(self.rel_error))

    @property
    def h(self) -> float:
        """Largest grid spacing."""
        return float(max(self.spacing))


def _check_flow(flow: WassersteinFlow) -> GridGeometry:
    check_instance(flow, WassersteinFlow, "flow")
    geo = grid_geometry(flow.graph)
    fun = flow.functional
    if isinstance(fun, FDivergence):
        total = float(fun.q.sum())
        if abs(total - 1.0) > MASS_RTOL:
            raise ValueError(
                f"the f-divergence's q must be a probability vector of node masses (sum 1), "
                f"got sum {total:.12g}; divide q by its sum"
            )
    return geo


def continuum_dissipation(flow: WassersteinFlow, masses: np.ndarray) -> float:
    """``int rho |grad phi|^2 dx`` on the grid of ``flow`` (seed 001 Thm 5.2, right side).

    ``rho = masses / h^d`` at the cell centres, ``phi`` the first variation of the flow's
    functional (``f'(rho/q)`` for an f-divergence), ``grad phi`` by second-order centred
    differences (one-sided at the boundary), summed with the midpoint rule.
    """
    geo = _check_flow(flow)
    m = as_density(masses, flow.graph.n, name="masses", positive=flow.needs_positive)
    return _continuum(flow, geo, m)


def _continuum(flow: WassersteinFlow, geo: GridGeometry, m: np.ndarray) -> float:
    vol = geo.cell_volume
    phi = flow.functional._first_variation(m).reshape(geo.shape)
    sq = np.zeros(geo.shape)
    for ax in range(geo.ndim):
        if geo.shape[ax] < 3:
            continue  # a single layer has no gradient along this axis
        sq += np.gradient(phi, geo.spacing[ax], axis=ax, edge_order=2) ** 2
    rho = m.reshape(geo.shape) / vol
    return float(np.sum(rho * sq) * vol)


def _discrete(flow: WassersteinFlow, m: np.ndarray) -> float:
    g = flow.graph
    phi = flow.functional._first_variation(m)
    theta = edge_mean(m[g.tail], m[g.head], flow.mean)
    return float(np.dot(g.weights * theta, (phi[g.head] - phi[g.tail]) ** 2))


def energy_dissipation(
    flow: WassersteinFlow, traj: Trajectory, at: np.ndarray | None = None
) -> EDIReport:
    """Check ``dF/dt = -int rho |grad phi|^2`` (seed 001 Thm 5.2) along a grid trajectory.

    Args:
        flow: a :class:`WassersteinFlow` on a (1-D or 2-D, non-periodic) ``grid`` graph.
        traj: its solution from :func:`ottokit.graph.solve` with at least 3 output times,
            closely spaced where ``dF/dt`` is wanted (see :func:`edi_check`).
        at: indices of ``traj.t`` to report (default: all).

    ``dF/dt`` is the second-order three-point derivative of ``F(traj.rho[k])`` on the output
    times (:func:`numpy.gradient`, ``edge_order=2``); at a point whose neighbours are
    ``t - dt`` and ``t + dt`` this is the centred difference.
    """
    geo = _check_flow(flow)
    check_instance(traj, Trajectory, "traj")
    if traj.rho.ndim != 2 or traj.rho.shape[1] != flow.graph.n:
        raise ValueError(
            f"traj holds densities of shape {traj.rho.shape} but the flow's grid has "
            f"{flow.graph.n} nodes; solve this flow to get its trajectory"
        )
    if traj.t.size < 3:
        raise ValueError(
            f"traj needs at least 3 output times to difference F in time, got {traj.t.size}"
        )
    idx = np.arange(traj.t.size) if at is None else np.asarray(at, dtype=np.int64).ravel()
    if idx.size == 0 or idx.min() < -traj.t.size or idx.max() >= traj.t.size:
        raise ValueError(f"at must index traj.t (size {traj.t.size}), got {at!r}")
    energy = np.array([flow.functional._value(r) for r in traj.rho])
    dfdt = np.gradient(energy, traj.t, edge_order=2)[idx]
    cont = np.array([_continuum(flow, geo, traj.rho[k]) for k in idx])
    disc = np.array([_discrete(flow, traj.rho[k]) for k in idx])
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.abs(dfdt + cont) / cont
        rel_d = np.abs(dfdt + disc) / disc
    return EDIReport(
        t=traj.t[idx],
        energy=energy[idx],
        dFdt=dfdt,
        dissipation=cont,
        dissipation_discrete=disc,
        rel_error=rel,
        rel_error_discrete=rel_d,
        shape=geo.shape,
        spacing=geo.spacing,
    )


def edi_check(
    flow: WassersteinFlow,
    rho0: np.ndarray,
    times: np.ndarray,
    *,
    dt: float | None = None,
    method: Method = "lsoda",
    rtol: float = 1e-11,
    atol: float = 1e-15,
) -> EDIReport:
    """Solve ``flow`` from ``rho0`` and report the EDI residual at ``times`` (seed 001 Thm 5.2).

    Outputs are requested in triplets ``t - dt, t, t + dt`` (``t, t + dt, t + 2 dt`` at
    ``t = times[0] = 0``), so ``dF/dt`` at each ``t`` is a centred (or one-sided
    second-order) difference with error ``O(dt^2)``; ``dt`` defaults to ``1e-4`` times the
    span of ``times`` (or ``1e-4`` for a single time).

    Raises:
        ValueError: ``times`` negative, unsorted or too close for ``dt``; ``dt`` not positive;
            ``rho0`` not a probability vector on the grid; ``q`` not a density.
    """
    _check_flow(flow)
    ts = as_array(times, "times").ravel()
    if ts.size == 0 or ts.min() < 0:
        raise ValueError(f"times must be one or more numbers >= 0, got {times!r}")
    if np.any(np.diff(ts) <= 0):
        raise ValueError("times must be strictly increasing")
    if dt is None:
        span = float(ts[-1] - ts[0])
        dt = 1e-4 * span if span > 0 else 1e-4
    dt = check_real(dt, "dt", gt=0, hint="try 1e-4 of the time span")
    if ts.size > 1 and np.min(np.diff(ts)) <= 2 * dt:
        raise ValueError(f"times must be more than 2 dt = {2 * dt:g} apart")
    pts, centre = [], []
    for t in ts:
        if t - dt < 0:
            trip = [t, t + dt, t + 2 * dt]
            centre.append(len(pts))
        else:
            trip = [t - dt, t, t + dt]
            centre.append(len(pts) + 1)
        pts.extend(trip)
    check_option(method, Method, "method")
    traj = solve(flow, rho0, (0.0, pts[-1]), np.array(pts), method=method, rtol=rtol, atol=atol)
    return energy_dissipation(flow, traj, at=np.array(centre))


def observed_order(h: np.ndarray, err: np.ndarray) -> float:
    """Least-squares slope of ``log err`` against ``log h`` (the observed convergence order)."""
    hh = as_array(h, "h").ravel()
    ee = as_array(err, "err").ravel()
    if hh.size != ee.size or hh.size < 2:
        raise ValueError(f"h and err need the same length >= 2, got {hh.size} and {ee.size}")
    if np.any(hh <= 0) or np.any(ee <= 0):
        raise ValueError("h and err must be positive to fit an order on a log scale")
    return float(np.polyfit(np.log(hh), np.log(ee), 1)[0])

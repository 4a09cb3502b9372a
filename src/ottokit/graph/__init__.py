"""Discrete Otto calculus and Wasserstein gradient flows on weighted graphs (seed 000).

Structure (:class:`Graph` and its builders), calculus (:func:`gradient`,
:func:`divergence`, :func:`otto_inner`, :func:`potential`), flows
(:class:`WassersteinFlow`, :class:`LinearHeatFlow`) and one integrator,
:func:`solve`, returning a :class:`Trajectory`. On regular grids (edge weights
1/h^2) the same flows discretise continuum W2 gradient flows; :func:`edi_check`
measures the energy-dissipation equality (seed 001 Thm 5.2) against the continuum
dissipation.
"""

from ottokit.graph._calculus import (
    MEANS,
    Mean,
    divergence,
    edge_mean,
    edge_mean_partials,
    gradient,
    otto_inner,
    potential,
    weighted_laplacian,
)
from ottokit.graph._edi import (
    EDIReport,
    GridGeometry,
    continuum_dissipation,
    edi_check,
    energy_dissipation,
    grid_density,
    grid_geometry,
    observed_order,
)
from ottokit.graph._flows import Flow, JacobianPattern, LinearHeatFlow, WassersteinFlow
from ottokit.graph._graph import (
    DisconnectedGraphWarning,
    Graph,
    expected_geometric_edges,
    from_edges,
    from_networkx,
    from_scipy,
    grid,
    random_geometric,
)
from ottokit.graph._inverse import InverseResult, reconstruct_initial, sensitivity
from ottokit.graph._solve import MASS_TOL, METHODS, Method, SolverError, Trajectory, solve

__all__ = [
    "Graph",
    "DisconnectedGraphWarning",
    "random_geometric",
    "expected_geometric_edges",
    "grid",
    "from_edges",
    "from_scipy",
    "from_networkx",
    "Mean",
    "MEANS",
    "edge_mean",
    "edge_mean_partials",
    "gradient",
    "divergence",
    "weighted_laplacian",
    "potential",
    "otto_inner",
    "Flow",
    "JacobianPattern",
    "WassersteinFlow",
    "LinearHeatFlow",
    "solve",
    "Trajectory",
    "SolverError",
    "METHODS",
    "MASS_TOL",
    "Method",
    "sensitivity",
    "reconstruct_initial",
    "InverseResult",
    "GridGeometry",
    "grid_geometry",
    "grid_density",
    "EDIReport",
    "energy_dissipation",
    "edi_check",
    "continuum_dissipation",
    "observed_order",
]

"""Size estimates for the graph experiments' configs: expected degree and memory.

A random geometric graph on ``n`` uniform points of the unit square with radius ``r``
has expected mean degree ``(n - 1) F(r)``, ``F`` the distribution function of the
distance between two uniform points of the square (Philip, "The probability
distribution of the distance between two random points in a box", 2007). The memory
of a heat-flow solve on a graph is modelled as a cost per node plus a cost per edge.
"""

from __future__ import annotations

import math

from ottokit._config import ConfigError, check_config_memory
from ottokit.graph import expected_geometric_edges

__all__ = [
    "MIN_EXPECTED_DEGREE",
    "check_random_graph",
    "distance_cdf",
    "expected_degree",
    "heat_flow_bytes",
]

MIN_EXPECTED_DEGREE = 1.0
# peak resident memory of random_geometric plus the Wasserstein and linear heat-flow
# solves of graph-heat, measured at 5,000-50,000 nodes and mean degree 15-500
# (250-350 bytes per edge in all), rounded up
_BYTES_PER_EDGE = 350.0
_BYTES_PER_NODE = 200.0


def distance_cdf(r: float) -> float:
    """``P(|X - Y| <= r)`` for ``X, Y`` independent and uniform on the unit square.

    The expected edge count of a random geometric graph on two points.
    """
    return expected_geometric_edges(2, r, dim=2) if r > 0 else 0.0


def expected_degree(n: int, radius: float) -> float:
    """Expected mean degree of ``random_geometric(n, radius)`` in the unit square."""
    return (n - 1) * distance_cdf(radius)


def heat_flow_bytes(n: float, m: float) -> float:
    """Estimated peak memory (bytes) of building a graph of ``n`` nodes and ``m`` edges and
    integrating a heat flow on it."""
    return _BYTES_PER_NODE * n + _BYTES_PER_EDGE * m


def check_random_graph(
    n: int, radius: float, *, n_key: str = "n_nodes", r_key: str = "radius"
) -> None:
    """Refuse a random geometric graph that would be edgeless or not fit in memory.

    Raises :class:`ConfigError` naming ``r_key`` when the expected mean degree is below
    :data:`MIN_EXPECTED_DEGREE` (most nodes would have no edge), and naming ``r_key``
    (a dense graph: each node linked to more than a quarter of the others) or ``n_key``
    when the estimated memory of the graph and its heat flow exceeds what is available.
    """
    degree = expected_degree(n, radius)
    if degree < MIN_EXPECTED_DEGREE:
        raise ConfigError.for_key(
            r_key,
            radius,
            f"large enough for an expected mean degree >= {MIN_EXPECTED_DEGREE:g} at "
            f"{n_key} = {n} (it gives {degree:.2g}: most nodes would have no edge)",
            _radius_for_degree(n, 10.0),
        )
    edges = n * degree / 2.0
    key, value = (r_key, radius) if distance_cdf(radius) > 0.25 else (n_key, n)
    check_config_memory(
        key,
        value,
        heat_flow_bytes(n, edges),
        what=f"a random geometric graph of {n} nodes and about {edges:.3g} edges with its "
        "heat-flow solve",
        knob=f"lower {n_key} or {r_key}",
    )


def _radius_for_degree(n: int, degree: float) -> float:
    """A radius (two significant digits) with expected mean degree about ``degree``."""
    r = min(math.sqrt(degree / (math.pi * max(n - 1, 1))), 1.5)
    return float(f"{r:.2g}")

"""Shared fixtures and hypothesis strategies for the graph-core tests (seed 000 §2.2-2.3).

Graphs come from a fixed-seed generator rather than hypothesis' own structure
search: hypothesis draws the size, the seed and how uneven the weights and
densities are, and NumPy builds the arrays, which keeps each example cheap.
"""

from __future__ import annotations

import os
import tempfile
import warnings

import numpy as np
import pytest
from hypothesis import settings
from hypothesis import strategies as st

from ottokit.graph import DisconnectedGraphWarning, Graph, from_edges, random_geometric

# Tests never read or fill the user's cache: it is off unless a test turns it on, and it
# lives in a private directory (subprocesses inherit both).
os.environ["OTTOKIT_CACHE"] = "off"
os.environ["OTTOKIT_CACHE_DIR"] = tempfile.mkdtemp(prefix="ottokit-test-cache-")

# Mutation runs (tools/mutate.py sets HYPOTHESIS_PROFILE=mutation) draw the same examples
# for the clean code and for every mutant, and keep no example database: a counterexample
# found against one mutant must not be replayed against the next, or the clean code.
settings.register_profile("mutation", derandomize=True, database=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))
if os.environ.get("HYPOTHESIS_PROFILE") == "mutation":
    # mutmut forks each mutant's test process from a server that has collected the tests:
    # the first torch.func call and the first torch.optim optimizer import torch's compiler
    # stack (seconds), so they are made once there instead of once per mutant
    import torch

    torch.func.grad(lambda x: x.sum())(torch.zeros(1))
    torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)


def random_connected_graph(
    n: int, seed: int, extra: float = 1.0, log10_weight_spread: float = 1.0
) -> Graph:
    """A random spanning tree on ``n`` nodes plus about ``extra * n`` chords.

    Weights are log-uniform in ``10**[-spread, spread]``, so the tests see
    unequal weights, not only the seed's ``omega = 1``.
    """
    rng = np.random.default_rng(seed)
    pairs = {(int(rng.integers(0, k)), k) for k in range(1, n)}
    for _ in range(int(extra * n) if n > 1 else 0):
        i, j = (int(x) for x in rng.choice(n, size=2, replace=False))
        pairs.add((min(i, j), max(i, j)))
    edges = np.array(sorted(pairs), dtype=np.int64).reshape(-1, 2)
    weights = 10.0 ** rng.uniform(-log10_weight_spread, log10_weight_spread, len(edges))
    return from_edges(edges, weights, n=n)


def random_graph(n: int, seed: int, p: float) -> Graph:
    """Erdos-Renyi-like graph with random weights, possibly disconnected (warning silenced)."""
    rng = np.random.default_rng(seed)
    i, j = np.triu_indices(n, k=1)
    keep = rng.random(i.size) < p
    edges = np.stack([i[keep], j[keep]], axis=1)
    weights = 10.0 ** rng.uniform(-1.0, 1.0, len(edges))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DisconnectedGraphWarning)
        return from_edges(edges, weights, n=n)


def random_density(n: int, seed: int, log10_ratio: float) -> np.ndarray:
    """Positive probability vector whose max/min ratio reaches up to ``10**log10_ratio``."""
    rng = np.random.default_rng(seed)
    rho = 10.0 ** rng.uniform(-log10_ratio, 0.0, n)
    return rho / rho.sum()


def random_tangent(n: int, seed: int, labels: np.ndarray | None = None) -> np.ndarray:
    """A vector summing to zero on each connected component (a tangent vector, eq. 22)."""
    rng = np.random.default_rng(seed)
    d = rng.standard_normal(n)
    if labels is None:
        return d - d.mean()
    means = np.bincount(labels, d) / np.bincount(labels)
    return d - means[labels]


def seed_like_initial(n: int, node: int = 0, floor: float = 1e-10) -> np.ndarray:
    """The seed's initial data (§3.1): ``1 - (n-1) floor`` at one node, ``floor`` elsewhere."""
    rho = np.full(n, floor)
    rho[node] = 1.0 - (n - 1) * floor
    return rho


seeds = st.integers(min_value=0, max_value=2**32 - 1)


@st.composite
def connected_graphs(draw, min_n: int = 3, max_n: int = 24) -> Graph:
    n = draw(st.integers(min_value=min_n, max_value=max_n))
    extra = draw(st.sampled_from([0.0, 0.5, 1.0, 2.0]))
    spread = draw(st.sampled_from([0.0, 1.0, 2.0]))
    return random_connected_graph(n, draw(seeds), extra=extra, log10_weight_spread=spread)


@st.composite
def graphs_and_densities(draw, min_n: int = 3, max_n: int = 24, max_log10_ratio: float = 8.0):
    """``(g, rho)``: a connected graph and a positive density, ratios up to ``1e-8``."""
    g = draw(connected_graphs(min_n=min_n, max_n=max_n))
    ratio = draw(st.floats(min_value=0.1, max_value=max_log10_ratio))
    return g, random_density(g.n, draw(seeds), ratio)


@pytest.fixture(scope="session")
def rgg30() -> Graph:
    """A connected 30-node random geometric graph (omega = 1), the seed's setting in small."""
    g = random_geometric(30, 0.35, seed=1, center=(0.5, 0.5))
    assert g.is_connected
    return g

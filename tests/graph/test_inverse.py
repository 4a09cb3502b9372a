"""The backward problem's guards (seed 000 §4): dense sensitivities are refused on large
graphs, a failed variational integration raises, and the regularisation grid must be positive."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.linalg import expm

from ottokit.graph import LinearHeatFlow, from_edges, grid, reconstruct_initial, sensitivity


def _path(n: int):
    return from_edges([(i, i + 1) for i in range(n - 1)], np.linspace(0.5, 2.0, n - 1))


class NaNAfterSpread(LinearHeatFlow):
    """The linear heat flow, except that its rhs is NaN once node 0 has lost 30% of its mass."""

    def rhs(self, rho):
        out = super().rhs(rho)
        return np.full_like(out, np.nan) if rho[0] < 0.7 else out


def test_sensitivity_of_the_heat_flow_is_the_matrix_exponential_on_weighted_edges():
    g = _path(6)
    rho0 = np.linspace(1.0, 2.0, g.n) / np.linspace(1.0, 2.0, g.n).sum()
    rho_t, phi = sensitivity(LinearHeatFlow(g), rho0, 0.7)
    e = expm(-0.7 * g.laplacian().toarray())
    np.testing.assert_allclose(phi, e, rtol=1e-7, atol=1e-10)
    np.testing.assert_allclose(rho_t, e @ rho0, rtol=1e-7, atol=1e-12)


def test_sensitivity_refuses_a_dense_matrix_beyond_2000_nodes():
    g = grid((45, 45))
    with pytest.raises(ValueError, match="n = 2025 is too large"):
        sensitivity(LinearHeatFlow(g), np.full(g.n, 1.0 / g.n), 1.0)


def test_a_failed_variational_integration_raises():
    g = _path(5)
    rho0 = np.array([0.96, 0.01, 0.01, 0.01, 0.01])
    with pytest.raises(RuntimeError, match="sensitivity integration failed"):
        sensitivity(NaNAfterSpread(g), rho0, 5.0)


@pytest.mark.parametrize("alphas", [[], [1e-2, 0.0], [1.0, -1e-3]], ids=["empty", "zero", "neg"])
def test_reconstruct_initial_needs_positive_regularisation_weights(alphas):
    g = _path(5)
    observed = np.full(g.n, 1.0 / g.n)
    with pytest.raises(ValueError, match="alphas must be positive regularisation weights"):
        reconstruct_initial(LinearHeatFlow(g), observed, 0.1, 1e-3, alphas=alphas)

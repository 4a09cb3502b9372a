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


def _heat_data(noise_norm: float):
    """rho(T) = exp(-T L) rho0 on a weighted 6-node path at T = 0.05, plus noise of that norm."""
    g = _path(6)
    rho0 = np.array([0.3, 0.25, 0.05, 0.1, 0.2, 0.1])
    forward = expm(-0.05 * g.laplacian().toarray())
    noise = np.random.default_rng(0).standard_normal(g.n)
    return g, rho0, forward, forward @ rho0 + noise_norm * noise / np.linalg.norm(noise)


def test_reconstruction_meets_the_discrepancy_at_the_largest_alpha_of_the_grid():
    """Morozov: the largest alpha of 1, 0.1, ..., 1e-12 with ||S_T(x) - y|| <= tau delta; the
    reconstruction is a positive density close to rho0, and the residual is exp(-T L) x - y."""
    g, rho0, forward, y = _heat_data(1e-4)
    res = reconstruct_initial(LinearHeatFlow(g), y, 0.05, 1e-4, tau=1.5)
    assert res.discrepancy_met and res.noise_norm == 1e-4
    assert res.residual <= 1.5e-4
    assert res.residual == pytest.approx(np.linalg.norm(forward @ res.rho0 - y), rel=1e-5)
    assert np.any(np.isclose(res.alpha, np.logspace(0, -12, 13), rtol=1e-12))
    assert res.rho0.min() > 0 and abs(res.rho0.sum() - 1.0) <= 1e-12
    assert np.abs(res.rho0 - rho0).max() <= 1e-3
    larger = reconstruct_initial(LinearHeatFlow(g), y, 0.05, 1e-4, alphas=[10 * res.alpha], tau=1.5)
    assert not larger.discrepancy_met and larger.residual > 1.5e-4


def test_reconstruction_from_exact_data_with_the_true_prior_is_the_truth():
    """With y = S_T(rho0) and prior rho0 the Tikhonov functional vanishes at x = rho0: the
    first alpha (1) already meets any discrepancy."""
    g, rho0, _, _ = _heat_data(0.0)
    y = expm(-0.05 * g.laplacian().toarray()) @ rho0
    res = reconstruct_initial(LinearHeatFlow(g), y, 0.05, 1e-8, prior=rho0)
    assert res.alpha == 1.0 and res.discrepancy_met
    np.testing.assert_allclose(res.rho0, rho0, rtol=1e-10)


def test_an_unreachable_noise_level_ends_at_the_smallest_alpha():
    """alphas in any order are tried from the largest down; a noise norm far below the noise
    is never met, and the last (smallest) alpha is returned, flagged as not met."""
    g, _, forward, y = _heat_data(1e-3)
    res = reconstruct_initial(LinearHeatFlow(g), y, 0.05, 1e-9, alphas=[1e-6, 1e-2, 1e-4])
    assert res.alpha == 1e-6 and not res.discrepancy_met
    assert res.residual > 1.1e-9
    assert res.n_forward >= 3


def test_a_huge_tau_stops_at_the_first_alpha_and_tau_below_one_is_refused():
    g, _, _, y = _heat_data(1e-4)
    res = reconstruct_initial(LinearHeatFlow(g), y, 0.05, 1e-4, tau=1e6)
    assert res.alpha == 1.0 and res.discrepancy_met
    with pytest.raises(ValueError, match="the discrepancy principle needs tau >= 1"):
        reconstruct_initial(LinearHeatFlow(g), y, 0.05, 1e-4, tau=0.9)

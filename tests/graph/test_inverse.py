"""The backward problem's guards (seed 000 §4): dense sensitivities are refused on large
graphs, a failed variational integration raises, and the regularisation grid must be positive."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.linalg import expm
from scipy.optimize import least_squares

import ottokit.graph._inverse as inverse_module
from ottokit.functionals import FDivergence
from ottokit.graph import (
    LinearHeatFlow,
    WassersteinFlow,
    from_edges,
    grid,
    reconstruct_initial,
    sensitivity,
)


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


def test_sensitivity_of_a_nonlinear_flow_is_the_derivative_of_its_flow_map():
    """For the W2 flow of KL (a nonlinear rhs), Phi's columns are central differences of
    S_T(rho0) = rho(T) in each node's mass."""
    g = _path(5)
    q = np.array([0.1, 0.3, 0.2, 0.25, 0.15])
    flow = WassersteinFlow(g, FDivergence("kl", q))
    rho0 = np.array([0.3, 0.1, 0.2, 0.1, 0.3])
    opts = {"rtol": 1e-12, "atol": 1e-15}
    _, phi = sensitivity(flow, rho0, 0.3, **opts)
    eps = 1e-5
    for j in range(g.n):
        step = eps * np.eye(g.n)[j]
        up, _ = sensitivity(flow, rho0 + step, 0.3, **opts)
        down, _ = sensitivity(flow, rho0 - step, 0.3, **opts)
        np.testing.assert_allclose(phi[:, j], (up - down) / (2 * eps), rtol=0, atol=1e-7)


def test_sensitivity_honours_tolerances_near_machine_precision():
    """At rtol = atol = 1e-13 Phi is exp(-T L) to 1e-12 (the default atol of the integrator,
    1e-6, would leave errors of order 1e-8)."""
    g = _path(6)
    _, phi = sensitivity(LinearHeatFlow(g), np.full(g.n, 1.0 / g.n), 0.7, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(phi, expm(-0.7 * g.laplacian().toarray()), rtol=0, atol=1e-12)


def test_sensitivity_of_the_linear_heat_flow_takes_any_non_negative_masses():
    """The heat flow is linear: zeros and a total mass of 2 are fine, rho(T) = exp(-TL) rho0."""
    g = _path(5)
    rho0 = np.array([0.8, 0.0, 0.6, 0.0, 0.6])
    rho_t, phi = sensitivity(LinearHeatFlow(g), rho0, 0.2)
    e = expm(-0.2 * g.laplacian().toarray())
    np.testing.assert_allclose(rho_t, e @ rho0, rtol=1e-7, atol=1e-12)
    np.testing.assert_allclose(phi, e, rtol=1e-7, atol=1e-10)


class _Reached(Exception):
    """Raised by a flow when the integration starts (the size guard let it through)."""


class StopAtFirstJacobian(LinearHeatFlow):
    def jacobian(self, rho):
        raise _Reached


def test_sensitivity_guards_name_the_argument_and_allow_exactly_2000_nodes():
    g = _path(5)
    kl = WassersteinFlow(g, FDivergence("kl", np.full(5, 0.2)))
    with pytest.raises(TypeError, match="flow must be an ottokit.graph.Flow"):
        sensitivity("flow", np.full(5, 0.2), 1.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"rho0 must be non-negative; rho0\[1\] = -0.1"):
        sensitivity(LinearHeatFlow(g), np.array([0.5, -0.1, 0.2, 0.2, 0.2]), 1.0)
    with pytest.raises(ValueError, match=r"rho0 must be strictly positive .* rho0\[1\] = 0"):
        sensitivity(kl, np.array([0.4, 0.0, 0.2, 0.2, 0.2]), 1.0)
    with pytest.raises(ValueError, match="T must be a positive number, got 0"):
        sensitivity(LinearHeatFlow(g), np.full(5, 0.2), 0.0)
    for shape, outcome in (((40, 50), _Reached), ((3, 667), ValueError)):
        big = grid(shape)
        with pytest.raises(outcome):
            sensitivity(StopAtFirstJacobian(big), np.full(big.n, 1.0 / big.n), 1.0)


def _tikhonov_on_the_simplex(forward, y, alpha, prior):
    """argmin ||E x - y||^2 + alpha ||x - p||^2 subject to sum x = 1 (KKT linear system)."""
    n = forward.shape[0]
    kkt = np.zeros((n + 1, n + 1))
    kkt[:n, :n] = 2 * (forward.T @ forward + alpha * np.eye(n))
    kkt[:n, n] = kkt[n, :n] = 1.0
    return np.linalg.solve(kkt, np.r_[2 * (forward.T @ y + alpha * prior), 1.0])[:n]


@pytest.mark.parametrize("alpha", [1e-1, 1e-3])
@pytest.mark.parametrize("uniform", [True, False], ids=["uniform-prior", "prior"])
def test_reconstruction_at_one_alpha_is_the_tikhonov_minimiser_on_the_simplex(
    alpha, uniform, monkeypatch
):
    """For the heat flow S_T(x) = exp(-TL) x and a positive minimiser, the softmax-parametrised
    Levenberg-Marquardt fit is the KKT solution; n_forward counts the forward solves."""
    g, _, forward, y = _heat_data(1e-3)
    prior = np.full(g.n, 1.0 / g.n) if uniform else np.array([0.1, 0.2, 0.2, 0.2, 0.2, 0.1])
    calls, evaluations = [], []

    def counted(*args, **kwargs):
        calls.append(1)
        return sensitivity(*args, **kwargs)

    def fit(*args, **kwargs):
        out = least_squares(*args, **kwargs)
        evaluations.append(out.nfev)
        return out

    monkeypatch.setattr(inverse_module, "sensitivity", counted)
    monkeypatch.setattr(inverse_module, "least_squares", fit)
    res = reconstruct_initial(
        LinearHeatFlow(g), y, 0.05, 1e-9, alphas=[alpha], prior=None if uniform else prior
    )
    expected = _tikhonov_on_the_simplex(forward, y, alpha, prior)
    assert expected.min() > 0
    np.testing.assert_allclose(res.rho0, expected, rtol=5e-6)
    assert res.alpha == alpha and not res.discrepancy_met
    assert res.n_forward == len(calls) >= 2
    # the analytic Jacobian reuses the residual's solve: one solve per evaluation (+ the last)
    assert res.n_forward <= evaluations[0] + 1


def test_the_parametrisation_keeps_density_ratios_up_to_exp_40():
    """x = softmax(z) floors log-ratios at -40 (relative to the largest mass): a node of mass
    1e-17 next to masses of 0.1-0.3 is inside that range and is recovered from exact data with
    the true prior."""
    g = _path(6)
    rho0 = np.array([0.3, 0.25, 1e-17, 0.15, 0.2, 0.1])
    rho0 /= rho0.sum()
    y = expm(-0.05 * g.laplacian().toarray()) @ rho0
    res = reconstruct_initial(LinearHeatFlow(g), y, 0.05, 1e-8, prior=rho0)
    assert res.alpha == 1.0 and res.discrepancy_met
    np.testing.assert_allclose(res.rho0, rho0, rtol=1e-10, atol=0)


def test_the_default_tau_is_1_1():
    """With noise of norm 2e-4 the residual at alpha = 1e-3 lies between 1.1 and 2.1 times the
    noise: Morozov with the default tau = 1.1 goes on to a smaller alpha."""
    g, _, _, y = _heat_data(2e-4)
    res = reconstruct_initial(LinearHeatFlow(g), y, 0.05, 2e-4)
    assert res.discrepancy_met and res.residual <= 1.1 * 2e-4
    larger = reconstruct_initial(LinearHeatFlow(g), y, 0.05, 2e-4, alphas=[10 * res.alpha])
    assert larger.residual > 1.1 * 2e-4


def test_the_discrepancy_is_met_with_equality():
    """||S_T(x) - y|| <= tau delta holds with equality when delta is that residual and tau = 1."""
    g, _, _, y = _heat_data(1e-4)
    first = reconstruct_initial(LinearHeatFlow(g), y, 0.05, 1.0, alphas=[1.0])
    again = reconstruct_initial(LinearHeatFlow(g), y, 0.05, first.residual, alphas=[1.0], tau=1)
    assert again.residual == first.residual and again.discrepancy_met


def test_reconstruct_initial_guards_name_the_argument():
    g, _, _, y = _heat_data(1e-4)
    flow = LinearHeatFlow(g)
    with pytest.raises(TypeError, match="flow must be an ottokit.graph.Flow"):
        reconstruct_initial("flow", y, 0.05, 1e-4)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"observed must be a vector of length 6, got shape \(5"):
        reconstruct_initial(flow, y[:5], 0.05, 1e-4)
    with pytest.raises(ValueError, match="T must be a positive number, got 0"):
        reconstruct_initial(flow, y, 0.0, 1e-4)
    with pytest.raises(ValueError, match="noise_norm must be a positive number, got 0"):
        reconstruct_initial(flow, y, 0.05, 0.0)
    with pytest.raises(
        ValueError,
        match=r"^tau must be a number >= 1, got 0.9; the discrepancy principle needs tau >= 1, "
        r"e\.g\. 1\.1$",
    ):
        reconstruct_initial(flow, y, 0.05, 1e-4, tau=0.9)
    with pytest.raises(ValueError, match=r"prior must be non-negative; prior\[0\] = -0.1"):
        reconstruct_initial(flow, y, 0.05, 1e-4, prior=np.r_[-0.1, np.full(5, 0.22)])
    with pytest.raises(TypeError, match="alphas must be an array of real numbers"):
        reconstruct_initial(flow, y, 0.05, 1e-4, alphas=["small"])

"""ottokit.ot against known distances: translations, 1-D quantile formulas, Gaussians.

Independent references: the shift of a translated cloud, sorted-quantile sums
written out here, the Bures formula for commuting covariances, Monte Carlo of the
explicit Gaussian OT map, and POT's network simplex against sorting in 1-D.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import norm

from ottokit import ot as okot
from ottokit._memory import MemoryEstimateError


def _gaussian_cloud(rng: np.random.Generator, n: int, mean, cov) -> np.ndarray:
    return np.asarray(mean) + rng.standard_normal((n, len(mean))) @ np.linalg.cholesky(cov).T


def test_translate_costs_the_shift():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((300, 3))
    shift = np.array([0.3, -1.2, 0.5])
    assert okot.w2(x, x + shift) == pytest.approx(np.linalg.norm(shift), rel=1e-10)
    assert okot.w1(x, x + shift) == pytest.approx(np.linalg.norm(shift), rel=1e-10)
    weights = rng.random(300)
    weights /= weights.sum()
    assert okot.w2(x, x + shift, weights, weights) == pytest.approx(
        np.linalg.norm(shift), rel=1e-10
    )


def test_gaussian_ot_map_samples_give_the_bures_distance():
    """Samples pushed by the optimal affine map: emd keeps the pairing and its cost is W2^2."""
    rng = np.random.default_rng(1)
    m1, c1 = np.array([0.0, 1.0]), np.array([[1.0, 0.3], [0.3, 0.5]])
    m2, c2 = np.array([2.0, -1.0]), np.array([[0.4, -0.1], [-0.1, 1.5]])
    x = _gaussian_cloud(rng, 800, m1, c1)
    r1 = _sqrtm(c1)
    t_map = np.linalg.inv(r1) @ _sqrtm(r1 @ c2 @ r1) @ np.linalg.inv(r1)
    y = m2 + (x - m1) @ t_map.T
    monte_carlo = np.sqrt(np.mean(np.sum((y - x) ** 2, axis=1)))
    assert okot.w2(x, y) == pytest.approx(monte_carlo, rel=1e-10)
    pi = okot.plan(x, y)
    np.testing.assert_allclose(pi, np.eye(800) / 800, atol=1e-12)
    # Monte Carlo of the map cost converges to the closed form (8 sigma is about 0.1 here)
    assert monte_carlo == pytest.approx(okot.w2_gaussian(m1, c1, m2, c2), abs=0.1)


def test_w2_between_independent_samples_approaches_the_gaussian_value():
    rng = np.random.default_rng(2)
    m1, c1 = np.zeros(2), np.diag([1.0, 0.25])
    m2, c2 = np.array([1.0, 0.5]), np.array([[0.5, 0.2], [0.2, 1.0]])
    exact = okot.w2_gaussian(m1, c1, m2, c2)
    values = [
        okot.w2(_gaussian_cloud(rng, 1000, m1, c1), _gaussian_cloud(rng, 1000, m2, c2))
        for _ in range(3)
    ]
    # the empirical W2 is biased upward by sampling (order 0.05 at n = 1000 in 2-D)
    assert np.mean(values) == pytest.approx(exact, abs=0.08)


def test_plan_has_the_marginals_and_the_cost():
    rng = np.random.default_rng(3)
    x, y = rng.standard_normal((40, 2)), rng.standard_normal((60, 2)) + 1.0
    a = rng.random(40)
    a /= a.sum()
    b = np.full(60, 1 / 60)
    result = okot.emd(x, y, a, b)
    np.testing.assert_allclose(result.plan.sum(axis=1), a, atol=1e-12)
    np.testing.assert_allclose(result.plan.sum(axis=0), b, atol=1e-12)
    cost = np.sum(result.plan * ((x[:, None, :] - y[None, :, :]) ** 2).sum(-1))
    assert result.cost == pytest.approx(cost, rel=1e-10)
    assert result.distance == pytest.approx(np.sqrt(cost), rel=1e-10)
    assert result.converged
    pi = okot.plan(x[:30], y[:30])
    assert np.all((pi == 0) | np.isclose(pi, 1 / 30))  # uniform, n = m: a permutation


def test_exact_ot_converges_at_5000_points_where_the_pot_default_stops():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5000, 2))
    shift = np.array([0.5, 0.5])
    assert okot.w2(x, x + shift) == pytest.approx(np.linalg.norm(shift), rel=1e-9)
    # POT's default of 100,000 network-simplex iterations is not enough at 3,000 points:
    # it would return a wrong cost; ottokit raises instead
    with pytest.raises(okot.OTConvergenceError, match="did not converge"):
        okot.emd(x[:3000], x[:3000] + shift, num_iter_max=100_000)


def test_w_1d_sorted_quantile_formula():
    rng = np.random.default_rng(4)
    x, y = rng.standard_normal(500), rng.exponential(size=500)
    sx, sy = np.sort(x), np.sort(y)
    for p in (1, 2, 3):
        assert okot.w_1d(x, y, p) == pytest.approx(np.mean(np.abs(sx - sy) ** p) ** (1 / p))
    # the network simplex agrees with sorting
    assert okot.w2(x, y) == pytest.approx(okot.w_1d(x, y, 2), rel=1e-10)
    assert okot.w1(x, y) == pytest.approx(okot.w_1d(x, y, 1), rel=1e-10)


def test_w_1d_weighted_and_gaussian_quantiles():
    # {0, 1} with 1/2, 1/2 against {0, 2} with 1/4, 3/4: W1 = 1/4 * 2 + 1/2 * 1 = 1
    assert okot.w_1d([0.0, 1.0], [0.0, 2.0], 1, [0.5, 0.5], [0.25, 0.75]) == pytest.approx(1.0)
    # quantile grids of N(m, s^2): W2 -> sqrt(dm^2 + ds^2), W1 -> E|dm + ds z|
    u = (np.arange(100_000) + 0.5) / 100_000
    z = norm.ppf(u)
    x, y = 0.3 + 1.0 * z, -0.2 + 2.0 * z
    assert okot.w_1d(x, y, 2) == pytest.approx(np.hypot(0.5, 1.0), rel=1e-3)
    e_abs = 1.0 * np.sqrt(2 / np.pi) * np.exp(-0.125) + 0.5 * (1 - 2 * norm.cdf(-0.5))
    assert okot.w_1d(x, y, 1) == pytest.approx(e_abs, rel=1e-3)


def test_w2_at_least_w1():
    rng = np.random.default_rng(5)
    x, y = rng.standard_normal((200, 2)), rng.standard_normal((200, 2)) * 2 + 1
    assert okot.w2(x, y) >= okot.w1(x, y)


def test_w2_gaussian_commuting_covariances():
    m1, m2 = np.array([1.0, 2.0, 3.0]), np.array([0.0, 0.0, 1.0])
    l1, l2 = np.array([1.0, 4.0, 0.25]), np.array([9.0, 1.0, 0.25])
    q, _ = np.linalg.qr(np.random.default_rng(6).standard_normal((3, 3)))
    c1, c2 = q @ np.diag(l1) @ q.T, q @ np.diag(l2) @ q.T
    expected = np.sqrt(np.sum((m1 - m2) ** 2) + np.sum((np.sqrt(l1) - np.sqrt(l2)) ** 2))
    assert okot.w2_gaussian(m1, c1, m2, c2) == pytest.approx(expected, rel=1e-10)
    assert okot.w2_gaussian(m2, c2, m1, c1) == pytest.approx(expected, rel=1e-10)
    assert okot.w2_gaussian(0.0, 1.0, 3.0, 4.0) == pytest.approx(np.hypot(3.0, 1.0))
    assert okot.w2_gaussian(m1, c1, m1, c1) == pytest.approx(0.0, abs=1e-7)


def test_w2_gaussian_noncommuting_against_the_trace_formula():
    rng = np.random.default_rng(7)
    a, b = rng.standard_normal((3, 3)), rng.standard_normal((3, 3))
    c1, c2 = a @ a.T + 0.1 * np.eye(3), b @ b.T + 0.1 * np.eye(3)
    r1 = _sqrtm(c1)
    expected = np.sqrt(np.trace(c1 + c2 - 2 * _sqrtm(r1 @ c2 @ r1)))
    assert okot.w2_gaussian(np.zeros(3), c1, np.zeros(3), c2) == pytest.approx(expected, rel=1e-9)


def test_sliced_w2_of_a_translation_and_its_bound():
    rng = np.random.default_rng(8)
    x = rng.standard_normal((400, 3))
    shift = np.array([1.0, 2.0, -2.0])
    # E_theta (theta . s)^2 = |s|^2 / d over uniform directions
    sliced = okot.sliced_w(x, x + shift, n_projections=4000, seed=0)
    assert sliced == pytest.approx(np.linalg.norm(shift) / np.sqrt(3), rel=0.03)
    y = rng.standard_normal((400, 3)) * 1.5
    assert okot.sliced_w(x, y, 500, seed=1) <= okot.w2(x, y)
    assert okot.sliced_w(x, y, 50, seed=3) == okot.sliced_w(x, y, 50, seed=3)


def test_sinkhorn_approaches_exact_from_above_and_warns_when_unconverged():
    rng = np.random.default_rng(9)
    x, y = rng.standard_normal((100, 2)), rng.standard_normal((100, 2)) + [2.0, 0.0]
    exact = okot.w2(x, y)
    values = [okot.sinkhorn(x, y, eps) for eps in (3.0, 1.0, 0.3)]
    assert all(v >= exact * (1 - 1e-9) for v in values)
    assert values[0] > values[1] > values[2]
    # the entropic plan's cost exceeds W2^2 by O(eps): 2.3 % here at eps = 0.3
    assert values[2] == pytest.approx(exact, rel=0.03)
    with pytest.warns(okot.OTConvergenceWarning, match="stopped after"):
        okot.sinkhorn(x, y, 1e-3, max_iter=20)


def test_torch_gradients_follow_pot_backend():
    rng = np.random.default_rng(10)
    x = torch.tensor(rng.standard_normal((50, 2)), dtype=torch.float64)
    shift = torch.tensor([0.7, -0.2], dtype=torch.float64)
    y = (x + shift).clone().requires_grad_(True)
    w = okot.w2(x, y)
    assert isinstance(w, torch.Tensor) and w.ndim == 0 and w.dtype == torch.float64
    (w**2).backward()
    # d W2^2 / d y_j = 2 (y_j - x_j) / n under the identity coupling
    torch.testing.assert_close(y.grad, (2 * shift / 50).expand(50, 2), rtol=1e-9, atol=1e-12)

    a = torch.tensor(rng.standard_normal(100), requires_grad=True)
    okot.w_1d(a, torch.zeros(100, dtype=torch.float64) + 1.0, 2).backward()
    assert torch.all(torch.isfinite(a.grad))


def test_w2_gaussian_torch_gradient_matches_finite_differences():
    c1 = torch.tensor([[1.0, 0.3], [0.3, 0.6]], dtype=torch.float64, requires_grad=True)
    m1 = torch.tensor([0.2, -0.1], dtype=torch.float64, requires_grad=True)
    m2, c2 = np.array([1.0, 0.5]), np.array([[0.5, 0.2], [0.2, 1.0]])
    w = okot.w2_gaussian(m1, c1, m2, c2)
    w.backward()
    base = c1.detach().numpy()
    h = 1e-6
    direction = np.array([[1.0, 0.5], [0.5, -1.0]])  # a symmetric perturbation
    fd = (
        okot.w2_gaussian(m1.detach().numpy(), base + h * direction, m2, c2)
        - okot.w2_gaussian(m1.detach().numpy(), base - h * direction, m2, c2)
    ) / (2 * h)
    assert float((c1.grad * torch.tensor(direction)).sum()) == pytest.approx(fd, rel=1e-6)
    diff = m1.detach().numpy() - m2
    assert m1.grad.numpy() == pytest.approx(diff / float(w.detach()), rel=1e-9)


def test_mixed_numpy_and_torch_inputs_give_a_tensor():
    x = np.random.default_rng(11).standard_normal((20, 2))
    y = torch.tensor(x + 1.0, dtype=torch.float32)
    w = okot.w2(x, y)
    assert isinstance(w, torch.Tensor) and w.dtype == torch.float32
    assert float(w) == pytest.approx(np.sqrt(2.0), rel=1e-5)


@pytest.mark.parametrize("fn", [okot.w1, okot.w2, okot.plan])
def test_bad_point_clouds(fn):
    x = np.zeros((5, 2))
    bad = x.copy()
    bad[2, 1] = np.nan
    with pytest.raises(ValueError, match="x must be finite"):
        fn(bad, x)
    with pytest.raises(ValueError, match="y must be finite"):
        fn(x, np.full((5, 2), np.inf))
    with pytest.raises(ValueError, match="same dimension"):
        fn(x, np.zeros((5, 3)))
    with pytest.raises(ValueError, match=r"\(n, d\)"):
        fn(np.zeros((2, 2, 2)), x)
    with pytest.raises(ValueError, match="at least one point"):
        fn(np.zeros((0, 2)), x)


def test_bad_weights():
    x, y = np.zeros((4, 1)), np.ones((3, 1))
    with pytest.raises(ValueError, match="a must be non-negative"):
        okot.w2(x, y, a=[0.5, 0.6, -0.1, 0.0])
    with pytest.raises(ValueError, match="b must sum to 1"):
        okot.w1(x, y, b=[0.2, 0.2, 0.2])
    with pytest.raises(ValueError, match="a must be a vector of 4"):
        okot.w2(x, y, a=[0.5, 0.5])
    with pytest.raises(ValueError, match="b must be finite"):
        okot.w_1d(x, y, 1, b=[np.nan, 0.5, 0.5])
    with pytest.raises(ValueError, match="a must sum to 1"):
        okot.sliced_w(x, y, 10, 0, a=torch.ones(4))


def test_bad_gaussians_and_options():
    with pytest.raises(ValueError, match="C1 must be positive definite"):
        okot.w2_gaussian([0, 0], [[1.0, 0.0], [0.0, -1.0]], [0, 0], np.eye(2))
    with pytest.raises(ValueError, match="C2 must be symmetric"):
        okot.w2_gaussian([0, 0], np.eye(2), [0, 0], [[1.0, 0.5], [0.0, 1.0]])
    with pytest.raises(ValueError, match="C1 must be a"):
        okot.w2_gaussian([0, 0], np.eye(3), [0, 0], np.eye(2))
    with pytest.raises(ValueError, match="same dimension"):
        okot.w2_gaussian([0, 0], np.eye(2), [0, 0, 0], np.eye(3))
    with pytest.raises(ValueError, match="m2 must be finite"):
        okot.w2_gaussian([0, 0], np.eye(2), [0, np.nan], np.eye(2))
    x = np.zeros((3, 2))
    with pytest.raises(ValueError, match="eps must be a positive"):
        okot.sinkhorn(x, x, 0.0)
    with pytest.raises(ValueError, match="p must be"):
        okot.w_1d(x[:, 0], x[:, 0], 0.5)
    with pytest.raises(ValueError, match="points on the line"):
        okot.w_1d(x, x, 1)
    with pytest.raises(ValueError, match="n_projections"):
        okot.sliced_w(x, x, 0, 0)


def _sqrtm(c: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh(c)
    return (v * np.sqrt(w)) @ v.T


@pytest.mark.parametrize(
    ("solve", "what"),
    [
        (okot.w1, "exact OT between 100000 and 50000 points"),
        (okot.w2, "exact OT between 100000 and 50000 points"),
        (okot.plan, "an 100000 x 50000 cost matrix and plan"),
        (lambda x, y: okot.sinkhorn(x, y, 0.1), "Sinkhorn between 100000 and 50000"),
        (lambda x, y: okot.sliced_w(x, y, n_projections=10**8), "10\\d+ projections"),
    ],
)
def test_hopeless_plan_sizes_are_refused_before_allocating(monkeypatch, solve, what):
    monkeypatch.setenv("OTTOKIT_MEMORY_LIMIT", "1G")
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(100_000, 2)), rng.normal(size=(50_000, 2))
    with pytest.raises(MemoryEstimateError, match=rf"{what}.*needs about .* but 1\.0 GiB"):
        solve(x, y)

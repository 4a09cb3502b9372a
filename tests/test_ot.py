"""ottokit.ot against known distances: translations, 1-D quantile formulas, Gaussians.

Independent references: the shift of a translated cloud, sorted-quantile sums
written out here, the Bures formula for commuting covariances, Monte Carlo of the
explicit Gaussian OT map, and POT's network simplex against sorting in 1-D.
"""

from __future__ import annotations

import re
import warnings

import numpy as np
import ot as pot
import pytest
import torch
from scipy.optimize import linprog
from scipy.special import logsumexp
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


def test_w2_gaussian_of_float32_inputs_is_computed_in_float64():
    # float32 data are exact float64 numbers: the distance between the Gaussians they
    # describe is the float64 trace formula of those numbers, not a float32 rounding of it
    rng = np.random.default_rng(17)
    a, b = rng.standard_normal((3, 3)), rng.standard_normal((3, 3))
    c1, c2 = (a @ a.T + 0.1 * np.eye(3)).astype(np.float32), (b @ b.T + 0.3 * np.eye(3)).astype(
        np.float32
    )
    m1, m2 = rng.standard_normal(3).astype(np.float32), rng.standard_normal(3).astype(np.float32)
    c1d, c2d, m1d, m2d = (v.astype(np.float64) for v in (c1, c2, m1, m2))
    r1 = _sqrtm(c1d)
    expected = np.sqrt(np.sum((m1d - m2d) ** 2) + np.trace(c1d + c2d - 2 * _sqrtm(r1 @ c2d @ r1)))
    assert okot.w2_gaussian(m1, c1, m2, c2) == pytest.approx(expected, rel=1e-12)


def test_sliced_w_monte_carlo_error_shrinks_as_one_over_root_n_projections():
    # for a translation every projected W_2^2 is (theta . s)^2 exactly, so the spread of
    # the estimate over seeds is the Monte Carlo error: 100 times the projections, a tenth
    rng = np.random.default_rng(18)
    x = rng.standard_normal((50, 3))
    shift = np.array([1.0, 2.0, -2.0])

    def spread(n_projections):
        return np.std([okot.sliced_w(x, x + shift, n_projections, s) ** 2 for s in range(40)])

    assert spread(4) / spread(400) == pytest.approx(10.0, rel=0.5)


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


@pytest.mark.parametrize("max_iter", [5, 13, 27])
def test_sinkhorn_quotes_the_marginal_error_of_the_plan_it_returns(max_iter):
    # POT checks the marginal error only every tenth iteration; the warning must quote
    # || pi^T 1 - b || of the plan after the last iteration (POT's own returned plan here)
    rng = np.random.default_rng(19)
    x, y = rng.standard_normal((30, 2)), rng.standard_normal((20, 2)) + 1.0
    a, b = np.full(30, 1 / 30), np.full(20, 1 / 20)
    with pytest.warns(UserWarning, match="did not converge"):
        plan = pot.sinkhorn(
            a, b, pot.dist(x, y), 0.05, method="sinkhorn_log", numItermax=max_iter
        )
    expected = np.linalg.norm(plan.sum(axis=0) - b)
    with pytest.warns(okot.OTConvergenceWarning) as record:
        okot.sinkhorn(x, y, 0.05, max_iter=max_iter)
    quoted = float(re.search(r"marginal error (\S+) >", str(record[0].message)).group(1))
    assert quoted == pytest.approx(expected, rel=6e-3)
    xt, yt = torch.tensor(x), torch.tensor(y)
    with pytest.warns(okot.OTConvergenceWarning, match=f"marginal error {expected:.2e} >"):
        okot.sinkhorn(xt, yt, 0.05, max_iter=max_iter)


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


def test_w2_squared_has_a_zero_gradient_where_the_clouds_coincide():
    """W2^2(x, y) is minimal at y = x: its gradient there is 0, not 0 * inf."""
    x = torch.tensor(np.random.default_rng(25).standard_normal((10, 2)))
    y = x.clone().requires_grad_(True)
    (okot.emd(x, y).cost).backward()
    torch.testing.assert_close(y.grad, torch.zeros_like(y), rtol=0, atol=1e-15)


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
    with pytest.raises(ValueError, match=r"^x must be finite \(no NaN or inf\); row 2 is \["):
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
    with pytest.raises(ValueError, match=r"^a must be non-negative; a\[2\] = -0\.1"):
        okot.w2(x, y, a=[0.5, 0.6, -0.1, 0.0])
    with pytest.raises(ValueError, match="b must sum to 1"):
        okot.w1(x, y, b=[0.2, 0.2, 0.2])
    with pytest.raises(ValueError, match="a must be a vector of 4"):
        okot.w2(x, y, a=[0.5, 0.5])
    with pytest.raises(ValueError, match=r"^b must be finite; b\[1\] = nan"):
        okot.w_1d(x, y, 1, b=[0.5, np.nan, 0.5])
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
    with pytest.raises(ValueError, match="^m2 must be finite"):
        okot.w2_gaussian([0, 0], np.eye(2), [0, np.nan], np.eye(2))
    with pytest.raises(ValueError, match="^m1 must be finite"):
        okot.w2_gaussian([np.inf, 0], np.eye(2), [0, 0], np.eye(2))
    x = np.zeros((3, 2))
    with pytest.raises(
        ValueError,
        match="^eps must be a positive number, got 0; "
        "the entropic regularisation, in units of the cost$",
    ):
        okot.sinkhorn(x, x, 0.0)
    with pytest.raises(ValueError, match=r"^p must be a number >= 1, got 0\.5 \(e\.g\. p=2\)"):
        okot.w_1d(x[:, 0], x[:, 0], 0.5)
    with pytest.raises(ValueError, match="points on the line"):
        okot.w_1d(x, x, 1)
    with pytest.raises(
        ValueError,
        match=r"^n_projections must be a positive integer, got 0 \(e\.g\. n_projections=200\)$",
    ):
        okot.sliced_w(x, x, 0, 0)


def _sqrtm(c: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh(c)
    return (v * np.sqrt(w)) @ v.T


_NO_PLAN = "subsample the point clouds, or use sliced_w or w_1d, which need no plan"


@pytest.mark.parametrize(
    ("solve", "what", "knob"),
    [
        (okot.w1, "exact OT between 100000 and 50000 points", _NO_PLAN),
        (okot.w2, "exact OT between 100000 and 50000 points", _NO_PLAN),
        (okot.plan, "an 100000 x 50000 cost matrix and plan", _NO_PLAN),
        (lambda x, y: okot.sinkhorn(x, y, 0.1), "Sinkhorn between 100000 and 50000", _NO_PLAN),
        (
            lambda x, y: okot.sliced_w(x, y, n_projections=10**8),
            "10\\d+ projections",
            "lower n_projections",
        ),
    ],
)
def test_hopeless_plan_sizes_are_refused_before_allocating(monkeypatch, solve, what, knob):
    monkeypatch.setenv("OTTOKIT_MEMORY_LIMIT", "1G")
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(100_000, 2)), rng.normal(size=(50_000, 2))
    with pytest.raises(
        MemoryEstimateError, match=rf"{what}.*needs about .* but 1\.0 GiB.*; {knob} \(or set"
    ):
        solve(x, y)


def _linprog_ot(a: np.ndarray, b: np.ndarray, cost: np.ndarray) -> float:
    """min <pi, cost> over couplings of a and b, by scipy's HiGHS linear programming."""
    n, m = cost.shape
    rows = np.kron(np.eye(n), np.ones((1, m)))  # sum_j pi_ij = a_i
    cols = np.kron(np.ones((1, n)), np.eye(m))  # sum_i pi_ij = b_j
    res = linprog(cost.ravel(), A_eq=np.vstack([rows, cols]), b_eq=np.concatenate([a, b]),
                  bounds=(0, None), method="highs")
    assert res.status == 0
    return float(res.fun)


def _sinkhorn_reference(a, b, cost, eps):
    """<pi_eps, cost> by log-domain Sinkhorn on the potentials, written out here."""
    f, g = np.zeros(len(a)), np.zeros(len(b))
    for _ in range(5000):
        g = eps * np.log(b) - eps * logsumexp((f[:, None] - cost) / eps, axis=0)
        f = eps * np.log(a) - eps * logsumexp((g[None, :] - cost) / eps, axis=1)
        pi = np.exp((f[:, None] + g[None, :] - cost) / eps)
        if np.abs(pi.sum(axis=0) - b).sum() < 1e-14:
            break
    np.testing.assert_allclose(pi.sum(axis=0), b, atol=1e-14)  # the reference converged
    return float(np.sum(pi * cost))


def _pairwise(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return np.linalg.norm(x[:, None, :] - y[None, :, :], axis=-1)


def test_emd_for_any_p_and_weights_against_linear_programming():
    rng = np.random.default_rng(12)
    x, y = rng.standard_normal((6, 2)), rng.standard_normal((7, 2)) + [1.0, 0.0]
    a, b = rng.random(6) + 0.1, rng.random(7) + 0.1
    a, b = a / a.sum(), b / b.sum()
    for p in (1, 1.5, 2, 3):
        result = okot.emd(x, y, a, b, p=p)
        reference = _linprog_ot(a, b, _pairwise(x, y) ** p)
        assert result.cost == pytest.approx(reference, rel=1e-9)
        assert result.distance == pytest.approx(reference ** (1 / p), rel=1e-9)
        assert result.p == p
        np.testing.assert_allclose(result.plan.sum(axis=1), a, atol=1e-12)
        np.testing.assert_allclose(result.plan.sum(axis=0), b, atol=1e-12)
    assert okot.w1(x, y, a, b) == pytest.approx(_linprog_ot(a, b, _pairwise(x, y)), rel=1e-9)
    pi = okot.plan(x, y, a, b)
    np.testing.assert_allclose(pi.sum(axis=1), a, atol=1e-12)
    np.testing.assert_allclose(pi.sum(axis=0), b, atol=1e-12)
    assert np.sum(pi * _pairwise(x, y) ** 2) == pytest.approx(
        _linprog_ot(a, b, _pairwise(x, y) ** 2), rel=1e-9
    )


def test_emd_iteration_limit_is_max_of_a_million_and_50_n_m():
    rng = np.random.default_rng(13)
    assert okot.emd(rng.standard_normal((5, 2)), rng.standard_normal((8, 2))).num_iter_max == 10**6
    big = okot.emd(rng.standard_normal((150, 2)), rng.standard_normal((160, 2)))
    assert big.num_iter_max == 50 * 150 * 160
    assert okot.emd(rng.standard_normal((5, 2)), rng.standard_normal((8, 2)),
                    num_iter_max=500).num_iter_max == 500


def test_emd_too_few_iterations_raise_without_a_pot_warning():
    rng = np.random.default_rng(14)
    x, y = rng.standard_normal((5, 2)), rng.standard_normal((5, 2))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(
            okot.OTConvergenceError,
            match=r"^exact OT between 5 and 5 points did not converge \(iteration limit "
            r"reached, num_iter_max = 1\); the cost would be wrong\. Pass a larger num_iter_max\.$",
        ):
            okot.emd(x, y, num_iter_max=1)
    with pytest.raises(
        ValueError,
        match=r"^num_iter_max must be a positive integer, got 0 \(e\.g\. num_iter_max=1000000\)$",
    ):
        okot.emd(x, y, num_iter_max=0)


def test_point_mass_and_zero_weights():
    """A one-hot a (integers, zeros allowed) sends one point to the whole cloud."""
    rng = np.random.default_rng(15)
    x, y = rng.standard_normal((3, 2)), rng.standard_normal((4, 2))
    spread = np.sum((x[1] - y) ** 2, axis=1)  # W2^2 from a point mass at x_1 = mean |x_1 - y_j|^2
    assert okot.w2(x, y, a=[0, 1, 0]) == pytest.approx(np.sqrt(spread.mean()), rel=1e-12)
    np.testing.assert_allclose(okot.plan(x, y, a=[0, 1, 0])[1], np.full(4, 0.25), atol=1e-15)
    # a zero weight removes its point, in every solver
    a = np.array([0.3, 0.0, 0.7])
    keep = [0, 2]
    assert okot.w1(x, y, a) == pytest.approx(okot.w1(x[keep], y, a[keep]), rel=1e-12)
    assert okot.w_1d(x[:, 0], y[:, 0], 2, a) == pytest.approx(
        okot.w_1d(x[keep, 0], y[:, 0], 2, a[keep]), rel=1e-12
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # log 0 of the zero weight is not the user's concern
        value = okot.sinkhorn(x, y, 0.5, a)
    assert value == pytest.approx(okot.sinkhorn(x[keep], y, 0.5, a[keep]), rel=1e-9)


def test_weight_guards_name_the_argument():
    x, y = np.zeros((3, 1)), np.ones((3, 1))
    with pytest.raises(TypeError, match=r"^a must be an array of real numbers"):
        okot.w2(x, y, a=["p", "q", "r"])
    with pytest.raises(ValueError, match=r"^a must sum to 1"):
        okot.w_1d(x, y, 1, a=[0.5, 0.2, 0.2])
    with pytest.raises(ValueError, match=r"^b must sum to 1"):
        okot.sliced_w(x, y, 10, 0, b=[0.5, 0.2, 0.2])
    with pytest.raises(ValueError, match=r"^a must sum to 1"):
        okot.sinkhorn(x, y, 1.0, a=[0.5, 0.2, 0.2])
    with pytest.raises(ValueError, match=r"^b must sum to 1"):
        okot.sinkhorn(x, y, 1.0, b=[0.5, 0.2, 0.2])


def test_weight_sum_tolerance_follows_the_precision():
    """Single-precision tensors are normalised to ~1e-7; double precision must sum to 1e-8."""
    x, y = torch.arange(10.0), torch.arange(10.0) + 0.5
    tenth = torch.full((10,), 0.1, dtype=torch.float32)  # sums to 1 + 1.5e-8 in float64
    assert float(okot.w_1d(x, y, 1, a=tenth, b=tenth)) == pytest.approx(0.5, rel=1e-6)
    with pytest.raises(ValueError, match=r"^a must sum to 1, got 1\.001"):
        okot.w_1d(x, y, 1, a=tenth * 1.001)
    off = np.full(10, 0.1)
    off[0] += 2e-8
    for w in (off, torch.tensor(off)):
        with pytest.raises(ValueError, match=r"^b must sum to 1, got 1\.00000002"):
            okot.w_1d(x.double(), y.double(), 1, b=w)


def test_point_guards_name_the_argument():
    with pytest.raises(TypeError, match=r"^x must be an array of real numbers"):
        okot.w2("abc", np.zeros((3, 1)))
    half = torch.tensor([[0.0], [float("nan")]], dtype=torch.bfloat16)
    with pytest.raises(ValueError, match=r"^y must be finite \(no NaN or inf\); row 1 is \[nan\]"):
        okot.w_1d(torch.zeros(2, 1), half)


def test_integer_and_mixed_inputs_compute_in_floating_point():
    # integer tensors: |0 - 1| and |1 - 3| -> W1 = 1.5, in float64
    w = okot.w_1d(torch.tensor([0, 1]), torch.tensor([1, 3]))
    assert w.dtype == torch.float64 and float(w) == 1.5
    rng = np.random.default_rng(16)
    x, y = rng.standard_normal((20, 2)), rng.standard_normal((25, 2))
    a = rng.random(20)
    a /= a.sum()
    exact = okot.w2(x, y, a)
    # a float32 y is computed in x's float64 (its rounding is all that differs)
    y32 = torch.tensor(y, dtype=torch.float32)
    w = okot.w2(torch.tensor(x), y32, a)
    assert w.dtype == torch.float64
    assert float(w) == pytest.approx(okot.w2(x, y32.double().numpy(), a), rel=1e-12)
    # a tensor x with NumPy y and NumPy weights: a tensor, differentiable in x
    xt = torch.tensor(x, requires_grad=True)
    w = okot.w2(xt, y, a)
    assert isinstance(w, torch.Tensor) and float(w.detach()) == pytest.approx(exact, rel=1e-12)
    w.backward()
    pi = okot.plan(x, y, a)
    # d W2 / d x_i = sum_j pi_ij (x_i - y_j) / W2 by the envelope theorem
    grad = (pi.sum(1)[:, None] * x - pi @ y) / exact
    np.testing.assert_allclose(xt.grad.numpy(), grad, atol=1e-12)


def test_numpy_inputs_give_python_floats():
    """Python floats, not NumPy scalars (whose repr differs in reports)."""
    rng = np.random.default_rng(17)
    x, y = rng.standard_normal((6, 2)), rng.standard_normal((6, 2))
    result = okot.emd(x, y, p=3)
    values = [
        result.cost, result.distance, okot.w1(x, y), okot.w2(x, y),
        okot.w_1d(x[:, 0], y[:, 0], 3), okot.sliced_w(x, y, 10), okot.sinkhorn(x, y, 1.0),
        okot.w2_gaussian(0.0, 1.0, 1.0, 2.0),
    ]
    assert all(type(v) is float for v in values)


def test_torch_inputs_give_tensors_equal_to_the_numpy_values():
    rng = np.random.default_rng(18)
    x, y = rng.standard_normal((8, 2)), rng.standard_normal((9, 2)) + 0.5
    b = rng.random(9)
    b /= b.sum()
    xt = torch.tensor(x)
    result = okot.emd(xt, torch.tensor(y), b=torch.tensor(b), p=1)
    assert isinstance(result.cost, torch.Tensor)
    assert float(result.cost) == pytest.approx(okot.w1(x, y, b=b), rel=1e-12)
    # (sliced on the line, where every direction gives W_p: the backends draw differently)
    for fn in (
        lambda u, v, w: okot.sinkhorn(u, v, 0.7, b=w, p=1),
        lambda u, v, w: okot.sliced_w(u[:, :1], v[:, :1], 20, 3, b=w),
        lambda u, v, w: okot.sliced_w(u[:, :1], v[:, :1], 20, 3, a=np.full(8, 1 / 8)),
    ):
        value = fn(xt, y, b)
        assert isinstance(value, torch.Tensor) and value.dtype == torch.float64
        assert float(value) == pytest.approx(fn(x, y, b), rel=1e-10)
    # a Sinkhorn gradient through POT's backend, without an autograd warning
    xg = torch.tensor(x, requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        okot.sinkhorn(xg, y, 0.7, b=b).backward()
    assert torch.all(torch.isfinite(xg.grad))


def test_sinkhorn_against_a_log_domain_reference():
    rng = np.random.default_rng(19)
    x, y = rng.standard_normal((12, 2)), rng.standard_normal((15, 2)) + [1.5, 0.0]
    a, b = rng.random(12) + 0.2, rng.random(15) + 0.2
    a, b = a / a.sum(), b / b.sum()
    cost = _pairwise(x, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for p, eps in ((2, 0.5), (1, 0.2)):
            reference = _sinkhorn_reference(a, b, cost**p, eps)
            value = okot.sinkhorn(x, y, eps, a, b, p=p)
            assert value == pytest.approx(reference ** (1 / p), rel=1e-8)
        assert okot.sinkhorn(x, y, 0.5, a, b) == pytest.approx(
            _sinkhorn_reference(a, b, cost**2, 0.5) ** 0.5, rel=1e-8
        )  # p = 2 by default
        # a tolerance below the default is honoured, not capped at the solver's default
        assert okot.sinkhorn(x, y, 0.5, a, b, tol=1e-14) == pytest.approx(
            _sinkhorn_reference(a, b, cost**2, 0.5) ** 0.5, rel=1e-12
        )
        # float64 tensors are held to the float64 tolerance
        tensor = okot.sinkhorn(torch.tensor(x), torch.tensor(y), 0.5, a, b)
        assert float(tensor) == pytest.approx(okot.sinkhorn(x, y, 0.5, a, b), rel=1e-10)


def test_sinkhorn_float32_meets_its_own_tolerance():
    rng = np.random.default_rng(20)
    x, y = rng.standard_normal((30, 2)), rng.standard_normal((30, 2)) + 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        single = okot.sinkhorn(torch.tensor(x, dtype=torch.float32),
                               torch.tensor(y, dtype=torch.float32), 0.5)
    assert single.dtype == torch.float32
    assert float(single) == pytest.approx(okot.sinkhorn(x, y, 0.5), rel=1e-4)


def test_sinkhorn_small_eps_stays_in_the_log_domain():
    """Costs near 900 with eps = 1: exp(-cost / eps) underflows to 0 outside the log domain."""
    x = np.array([[0.0], [1.0], [2.5]])
    y = x + 30.0
    value = okot.sinkhorn(x, y, 1.0)
    reference = _sinkhorn_reference(np.full(3, 1 / 3), np.full(3, 1 / 3), _pairwise(x, y) ** 2, 1.0)
    assert value == pytest.approx(np.sqrt(reference), rel=1e-9)
    assert 30.0 <= value <= 30.01  # at least the shift, the exact W2


def test_sinkhorn_non_finite_cost_raises_without_numpy_warnings():
    """Costs of 1e300 over eps = 1e-10 overflow; the result is refused, quietly."""
    x, y = np.array([[0.0], [1e150]]), np.array([[0.0], [2e150]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(
            okot.OTConvergenceError,
            match=r"^Sinkhorn \(eps = 1e-10\) returned a non-finite cost; raise eps or max_iter$",
        ):
            okot.sinkhorn(x, y, 1e-10, max_iter=50)


def test_sinkhorn_with_costs_beyond_the_float_range_over_eps_warns_only_of_convergence():
    # C / eps overflows for the far pairs (their kernel is 0), the cost stays finite: the
    # one warning is the unconverged run's, with no NumPy overflow warning
    x, y = np.array([[0.0], [2.0], [3.0]]), np.array([[0.0], [2.0], [3.1]])
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        value = okot.sinkhorn(x, y, 1e-308, max_iter=2)
    assert np.isfinite(value)
    assert [w.category for w in record] == [okot.OTConvergenceWarning]


def test_sinkhorn_warning_counts_the_iterations_and_points_at_the_caller():
    x = np.array([[0.0], [1.0], [2.5]])
    y = np.array([[0.2], [1.9], [2.4]])
    for max_iter in (1, 20):
        with pytest.warns(
            okot.OTConvergenceWarning,
            match=rf"^Sinkhorn \(eps = 0\.001\) stopped after {max_iter} iterations with marginal "
            r"error \S+ > tol = 1\.0e-09; raise max_iter or eps, or use the exact w1/w2$",
        ) as record:
            okot.sinkhorn(x, y, 1e-3, max_iter=max_iter)
        assert record[0].filename != okot.__file__  # it blames the caller, not ottokit.ot
    with pytest.raises(
        ValueError, match=r"^max_iter must be a positive integer, got 0 \(e\.g\. max_iter=10000\)$"
    ):
        okot.sinkhorn(x, y, 1.0, max_iter=0)
    with pytest.raises(
        ValueError, match=r"^tol must be a positive number, got 0 \(e\.g\. tol=1e-09\)$"
    ):
        okot.sinkhorn(x, y, 1.0, tol=0.0)


def test_sliced_w_on_the_line_is_w_p():
    """In one dimension every direction is +-1, so sliced W_p is W_p, weighted or not."""
    rng = np.random.default_rng(21)
    x, y = rng.standard_normal(30), rng.exponential(size=40)
    a, b = rng.random(30), rng.random(40)
    a, b = a / a.sum(), b / b.sum()
    for p in (1, 3):
        assert okot.sliced_w(x, y, 5, 2, p=p, a=a, b=b) == pytest.approx(
            okot.w_1d(x, y, p, a, b), rel=1e-10
        )
    assert okot.sliced_w(x, x + 2.0, 1) == pytest.approx(2.0, rel=1e-12)  # one direction suffices
    # the default is reproducible: 200 directions drawn with seed 0
    assert okot.sliced_w(x[:, None] * [1.0, -0.5], y[:30, None] * [0.3, 1.0]) == okot.sliced_w(
        x[:, None] * [1.0, -0.5], y[:30, None] * [0.3, 1.0], 200, 0
    )
    with pytest.raises(ValueError, match=r"^seed must be a non-negative integer, got -1$"):
        okot.sliced_w(x, y, 10, -1)


def test_sliced_w_memory_estimate_is_two_float64_copies_of_the_projections(monkeypatch):
    """2 * 8 * n_projections * (n + m + d) bytes: directions (d) and projected points (n + m)."""
    rng = np.random.default_rng(22)
    x, y = rng.standard_normal((6, 3)), rng.standard_normal((4, 3))
    estimate = 2 * 8 * 1000 * (6 + 4 + 3)
    monkeypatch.setenv("OTTOKIT_MEMORY_LIMIT", str(estimate))
    assert okot.sliced_w(x, y, 1000) > 0
    monkeypatch.setenv("OTTOKIT_MEMORY_LIMIT", str(estimate - 1))
    with pytest.raises(
        MemoryEstimateError, match="^sliced_w with 1000 projections of 6 and 4 points"
    ):
        okot.sliced_w(x, y, 1000)


def test_w_1d_default_and_nonuniform_source_weights():
    rng = np.random.default_rng(23)
    x, y = rng.standard_normal(50), rng.standard_normal(50) + 0.3
    assert okot.w_1d(x, y) == pytest.approx(np.mean(np.abs(np.sort(x) - np.sort(y))), rel=1e-12)
    # {0, 1} with 1/4, 3/4 against {0, 2} with 1/2, 1/2: |F^-1 - G^-1| is 0, 1, 1 on
    # [0, 1/4), [1/4, 1/2), [1/2, 1), so W1 = 3/4 and W2^2 = 3/4
    assert okot.w_1d([0.0, 1.0], [0.0, 2.0], 1, [0.25, 0.75]) == pytest.approx(0.75, rel=1e-12)
    assert okot.w_1d([0.0, 1.0], [0.0, 2.0], 2, [0.25, 0.75]) == pytest.approx(
        np.sqrt(0.75), rel=1e-12
    )


def test_w2_gaussian_input_types_and_guards():
    # diagonal covariances: W2^2 = |dm|^2 + sum (sqrt(l1) - sqrt(l2))^2 = 1 + 1 + 1/4
    m1, c1 = np.array([0.0, 1.0]), np.diag([1.0, 4.0])
    m2, c2 = np.array([1.0, 1.0]), np.diag([4.0, 2.25])
    exact = np.sqrt(2.25)
    single = [v.astype(np.float32) for v in (m1, c1, m2, c2)]
    assert okot.w2_gaussian(*single) == pytest.approx(exact, rel=1e-13)  # computed in float64
    t32 = okot.w2_gaussian(*(torch.tensor(v) for v in single))
    assert t32.dtype == torch.float32 and float(t32) == pytest.approx(exact, rel=1e-6)
    t64 = okot.w2_gaussian(torch.tensor([0, 1]), c1, m2, c2)  # an integer mean: float64
    assert t64.dtype == torch.float64 and float(t64) == pytest.approx(exact, rel=1e-13)
    with pytest.raises(ValueError, match=r"^m1 must be a vector, got shape \(1, 2\)$"):
        okot.w2_gaussian([[0.0, 0.0]], c1, m2, c2)
    with pytest.raises(TypeError, match=r"^m1 must be an array of real numbers"):
        okot.w2_gaussian("ab", c1, m2, c2)
    with pytest.raises(TypeError, match=r"^C1 must be an array of real numbers"):
        okot.w2_gaussian(m1, "ab", m2, c2)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_mixed_devices_follow_the_first_tensor():
    rng = np.random.default_rng(24)
    x, y = rng.standard_normal((10, 2)), rng.standard_normal((12, 2))
    b = np.full(12, 1 / 12)
    xc = torch.tensor(x, device="cuda")
    for value in (okot.w2(xc, torch.tensor(y), b=torch.tensor(b)), okot.w2(xc, y, b=b)):
        assert value.device.type == "cuda"
        assert float(value) == pytest.approx(okot.w2(x, y, b=b), rel=1e-12)


@pytest.mark.parametrize("solver", ["w1", "w2"])
def test_wp_is_homogeneous_up_to_the_float64_range_and_refuses_an_overflowing_cost(solver):
    """W_p(c x, c y) = c W_p(x, y) for a scale c = 1e100 (costs up to 1e202, finite); at
    1e200 POT's squared distances overflow, and the error names the cost and the cure
    instead of the simplex calling the problem infeasible."""
    rng = np.random.default_rng(31)
    x, y = rng.normal(size=(7, 2)), rng.normal(size=(5, 2)) + 1.0
    fn = getattr(okot, solver)
    base = fn(x, y)
    assert fn(1e100 * x, 1e100 * y) == pytest.approx(1e100 * base, rel=1e-10)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no NumPy overflow warning before the error
        with pytest.raises(
            ValueError,
            match=r"^the cost \|x - y\|\^[12] overflows to inf for these points \(largest "
            r"coordinate \d\.\d+e\+200\); rescale x and y: W_p\(c x, c y\) = c W_p\(x, y\)$",
        ):
            fn(1e200 * x, 1e200 * y)

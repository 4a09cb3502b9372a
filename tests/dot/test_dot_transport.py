"""Discriminator optimal transport (seed 003 §3.2): K_eff, target- and latent-space DOT.

Known answers used here:
* K_eff of linear maps: for D(x) = a.x and G(z) = B z, the target-space constant is |a| and
  the latent-space one |B^T a|; the estimate is a max over pairs, so it never exceeds them.
* Shifted copy of narrow modes: p_G has modes m_i, the target their shift m_i + s
  (|s| < half the spacing). The critic f(x) = -min_i |x - (m_i + s)| is 1-Lipschitz and
  E_q f - E_p f = |s| = W1 (as the modes narrow), so it is an optimal Kantorovich potential
  (seed 003 §2.3). With K equal to the Lipschitz constant, |x - y| - f(x)/K is flat on the
  whole segment [y, T(y)] (the W1 map is not unique); with K below it (as a max over a finite
  number of pairs tends to be) the target mode T(y) = m_i + s is the unique minimum, so DOT
  must carry every sample to its own shifted mode.
* 1-D quadratic critic D(x) = -a (x - c)^2, K = 1: argmin_x |x - y'| + a (x - c)^2 with
  y' = y - 0.001 is y' when |y' - c| <= 1/(2a), else c + sign(y' - c)/(2a).
"""

from __future__ import annotations

import copy
import math
import time
import warnings

import numpy as np
import pytest
import torch

from ottokit import ot as ottokit_ot
from ottokit.dot import (
    ProbabilityOutputWarning,
    dot_latent,
    dot_target,
    effective_lipschitz,
)
from ottokit.priors import Prior, as_prior

MODES = torch.tensor([[-1.0, -1.0], [-1.0, 1.0], [1.0, -1.0], [1.0, 1.0]], dtype=torch.float64)
SHIFT = torch.tensor([0.4, 0.3], dtype=torch.float64)
SIGMA = 0.02


def modes_G(z: torch.Tensor) -> torch.Tensor:
    """Latent (n, 4) -> narrow modes: mode from the signs of z[:, 2:], offset sigma z[:, :2]."""
    idx = 2 * (z[:, 2] > 0).long() + (z[:, 3] > 0).long()
    return MODES.to(z)[idx] + SIGMA * z[:, :2]


def shifted_critic(x: torch.Tensor) -> torch.Tensor:
    """f(x) = -min_i |x - (m_i + s)|, the optimal critic for the shifted copy."""
    targets = (MODES + SHIFT).to(x)
    return -torch.cdist(x, targets).min(dim=1).values


def mlp(d_in: int, d_out: int, seed: int, dtype=torch.float64) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Linear(d_in, 16), torch.nn.Tanh(), torch.nn.Linear(16, d_out)
    ).to(dtype)


def test_keff_linear_target_space_equals_norm_of_a():
    a = torch.tensor([3.0, -4.0], dtype=torch.float64)  # |a| = 5
    B = torch.tensor([[1.0, 0.5], [-0.3, 2.0]], dtype=torch.float64)
    G = lambda z: z @ B.T
    D = lambda x: x @ a
    k = effective_lipschitz(D, G, "normal", n_pairs=500, latent_dim=2, seed=0, dtype=torch.float64)
    assert k <= 5.0 + 1e-12  # a max of |a.dx|/|dx| never exceeds |a|
    assert k > 0.98 * 5.0


def test_keff_latent_space_equals_norm_of_BT_a():
    a = torch.tensor([1.0, 2.0], dtype=torch.float64)
    B = torch.tensor([[2.0, 0.0, 1.0], [0.0, 1.0, -1.0]], dtype=torch.float64)  # G: R^3 -> R^2
    G = lambda z: z @ B.T
    D = lambda x: x @ a
    exact = float(torch.linalg.vector_norm(B.T @ a))
    k = effective_lipschitz(
        D, G, Prior("uniform", (3,)), n_pairs=2000, space="latent", seed=1, dtype=torch.float64
    )
    assert k <= exact + 1e-12
    assert k > 0.97 * exact


def test_keff_one_dimension_is_exact_and_scales_with_D():
    G = lambda z: 3.0 * z
    D = lambda x: -2.5 * x[:, 0]
    kw = dict(latent_dim=1, n_pairs=10, seed=2, dtype=torch.float64)
    assert effective_lipschitz(D, G, "normal", **kw) == pytest.approx(2.5, rel=1e-12)
    assert effective_lipschitz(D, G, "normal", space="latent", **kw) == pytest.approx(7.5, 1e-12)
    D4 = lambda x: 4.0 * D(x)
    assert effective_lipschitz(D4, G, "normal", **kw) == pytest.approx(10.0, rel=1e-12)


def test_keff_uses_given_latents_pairwise():
    z = torch.tensor([[0.0], [1.0], [2.0], [1.5]], dtype=torch.float64)  # pairs (0,2), (1,1.5)
    D = lambda x: x[:, 0] ** 2  # ratios: 4/2 = 2 and 1.25/0.5 = 2.5
    k = effective_lipschitz(D, lambda v: v, "normal", n_pairs=2, z=z)
    assert k == pytest.approx(2.5, rel=1e-12)


def test_keff_mean_of_maxima_equals_brute_force():
    # the 2-D notebook's K: the mean of `repeats` maxima, each over its own n_pairs pairs
    n_pairs, repeats = 7, 4
    z = torch.randn(2 * n_pairs * repeats, 2, generator=torch.Generator().manual_seed(3))
    z = z.double()
    G = lambda v: torch.stack([v[:, 0] + 0.5 * v[:, 1] ** 2, torch.sin(v[:, 1])], dim=1)
    D = lambda x: x[:, 0] ** 3 - x[:, 1]
    for space in ("target", "latent"):
        k = effective_lipschitz(D, G, "normal", n_pairs, space, z=z, repeats=repeats)
        zs, xs = z.numpy(), G(z).numpy()
        ds = D(G(z)).numpy()
        u = xs if space == "target" else zs
        maxima = []
        for j in range(repeats):
            ratios = []
            for i in range(n_pairs):
                p, q = 2 * j * n_pairs + i, (2 * j + 1) * n_pairs + i
                ratios.append(abs(ds[p] - ds[q]) / np.linalg.norm(u[p] - u[q]))
            maxima.append(max(ratios))
        assert k == pytest.approx(float(np.mean(maxima)), rel=1e-12)
        single = effective_lipschitz(D, G, "normal", n_pairs, space, z=z[: 2 * n_pairs])
        assert single == pytest.approx(maxima[0], rel=1e-12)
    with pytest.raises(ValueError, match="repeats"):
        effective_lipschitz(D, G, "normal", n_pairs, z=z[: 2 * n_pairs], repeats=2)


def test_keff_of_the_shifted_critic_is_at_most_one():
    k = effective_lipschitz(
        shifted_critic, modes_G, "normal", n_pairs=400, latent_dim=4, seed=3, dtype=torch.float64
    )
    assert 0.9 < k <= 1.0 + 1e-12


def test_dot_target_moves_a_shifted_copy_onto_its_target():
    gen = torch.Generator().manual_seed(4)
    z = torch.randn(400, 4, generator=gen, dtype=torch.float64)
    y0 = modes_G(z)
    zq = torch.randn(400, 4, generator=gen, dtype=torch.float64)
    zq[:, 2:] = z[:, 2:]  # same mode counts, fresh offsets: W1(p_G, q) = |s| up to noise
    q = modes_G(zq) + SHIFT  # the target: a shifted copy
    K = effective_lipschitz(
        shifted_critic, modes_G, "normal", n_pairs=400, latent_dim=4, seed=5, dtype=torch.float64
    )
    # K_eff <= 1 = Lip(f); 0.8 K_eff makes the slope along [y, T(y)] 1 - 1/0.8 < 0
    res = dot_target(shifted_critic, y0, 0.8 * K, steps=100, lr=0.01, clip=2.0)
    own_target = (MODES + SHIFT)[2 * (z[:, 2] > 0).long() + (z[:, 3] > 0).long()]
    dist = torch.linalg.vector_norm(res.samples - own_target, dim=1)
    assert float(dist.max()) < 0.05  # every sample reaches its own shifted mode
    w1_before = float(ottokit_ot.w1(y0.numpy(), q.numpy()))
    w1_after = float(ottokit_ot.w1(res.samples.numpy(), q.numpy()))
    assert w1_before == pytest.approx(0.5, abs=0.02)  # |s| = 0.5
    assert w1_after < 0.1 * w1_before
    assert res.objective.shape == (101,)
    assert float(res.objective[-1]) < float(res.objective[0])
    assert res.n_grad_evals == 100 * 400 and res.space == "target" and res.latents is None


def test_dot_target_quadratic_critic_matches_closed_form():
    a, c, off = 1.0, 0.0, 1e-3
    y = torch.linspace(-2.0, 2.0, 41, dtype=torch.float64)[:, None]
    D = lambda x: -a * (x[:, 0] - c) ** 2
    res = dot_target(D, y, 1.0, steps=600, lr=0.01, optimizer="sgd")
    yp = y[:, 0] - off
    inside = (yp - c).abs() <= 1 / (2 * a)
    expected = torch.where(inside, yp, c + torch.sign(yp - c) / (2 * a))
    err = (res.samples[:, 0] - expected).abs()
    assert float(err[~inside].max()) < 1e-4  # smooth minimum: linear convergence
    # kink at x = y': SGD iterates stay within one step, lr max|grad| <= 0.01 (1 + 2a/(2a))
    assert float(err[inside].max()) < 0.02


def test_dot_target_overestimated_K_keeps_samples_naive_moves_them():
    a = torch.tensor([0.6, -0.8], dtype=torch.float64)  # |a| = 1
    D = lambda x: x @ a
    y0 = torch.randn(50, 2, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    dot = dot_target(D, y0, K=2.0, steps=100)  # |x - y| - a.x/2 has its unique minimum at y
    naive = dot_target(D, y0, K=2.0, steps=100, mode="naive")
    assert float((dot.samples - y0).abs().max()) < 0.03
    move = naive.samples - y0  # Adam(beta1 = 0) on a constant gradient: lr per coordinate/step
    assert torch.allclose(move, torch.sign(a) * 0.01 * 100 * torch.ones_like(move), atol=1e-6)


def test_dot_target_batch_does_not_couple_samples():
    D = mlp(2, 1, seed=7)
    y0 = torch.randn(16, 2, generator=torch.Generator().manual_seed(8), dtype=torch.float64)
    full = dot_target(D, y0, 1.3, steps=30).samples
    halves = torch.cat(
        [dot_target(D, y0[:8], 1.3, steps=30).samples, dot_target(D, y0[8:], 1.3, steps=30).samples]
    )
    torch.testing.assert_close(full, halves, rtol=0, atol=1e-12)


def test_dot_target_objective_history_starts_at_closed_form_and_clip_holds():
    net = mlp(2, 1, seed=9)
    D = lambda x: net(x) - 2.0  # logits well outside [0, 1] (no probability warning)
    y0 = 1.9 * torch.rand(32, 2, generator=torch.Generator().manual_seed(10), dtype=torch.float64)
    res = dot_target(D, y0, 0.7, steps=40, lr=0.05, clip=(-2.0, 2.0))
    with torch.no_grad():
        first = 1e-3 * math.sqrt(2) - float(D(y0)[:, 0].mean()) / 0.7
        last = float(
            (
                torch.linalg.vector_norm(res.samples - y0 + 1e-3, dim=1)
                - D(res.samples)[:, 0] / 0.7
            ).mean()
        )
    assert float(res.objective[0]) == pytest.approx(first, rel=1e-12)
    assert float(res.objective[-1]) == pytest.approx(last, rel=1e-12)
    assert float(res.samples.abs().max()) <= 2.0
    assert res.samples.dtype == torch.float64


@pytest.mark.parametrize(
    ("clip", "corner"), [(1.0, (1.0, -1.0)), ((-0.5, 1.5), (1.5, -0.5))], ids=["c", "lo-hi"]
)
def test_dot_target_clip_stops_samples_on_the_boundary(clip, corner):
    """Naive DOT with D(x) = a.x and Adam(beta1 = 0) moves every coordinate by lr sign(a_k)
    per step: 100 steps of 0.05 carry all samples 5 units out of the box from inside it;
    with the clip (applied after each step) they stop on its corner (max sign(a_k) side)."""
    a = torch.tensor([0.6, -0.8], dtype=torch.float64)
    D = lambda x: x @ a
    y0 = 0.45 * (2 * torch.rand(30, 2, generator=torch.Generator().manual_seed(13)) - 1)
    y0 = y0.double()
    free = dot_target(D, y0, K=1.0, steps=100, lr=0.05, mode="naive")
    torch.testing.assert_close(free.samples, y0 + 5.0 * torch.sign(a), rtol=0, atol=1e-6)
    lo, hi = (-clip, clip) if isinstance(clip, float) else clip
    assert bool(((free.samples < lo) | (free.samples > hi)).all())  # unclipped, all leave
    clipped = dot_target(D, y0, K=1.0, steps=100, lr=0.05, mode="naive", clip=clip)
    expected = torch.tensor(corner, dtype=torch.float64).expand(30, 2)
    torch.testing.assert_close(clipped.samples, expected, rtol=0, atol=0)


def test_dot_target_float32_follows_input_and_optimizer_factory():
    D = mlp(2, 1, seed=11, dtype=torch.float32)
    y0 = torch.randn(8, 2)
    res = dot_target(D, y0, 1.0, steps=5, optimizer=lambda ps: torch.optim.SGD(ps, lr=0.1))
    assert res.samples.dtype == torch.float32 and res.samples.device == y0.device


def test_dot_latent_uniform_prior_clips_to_the_box():
    B = torch.tensor([[1.0, 0.0, 2.0], [0.0, -1.0, 0.5]], dtype=torch.float64)
    w = torch.tensor([1.0, 1.0], dtype=torch.float64)
    G = lambda z: z @ B.T
    D = lambda x: x @ w  # D(G(z)) = c.z, c = B^T w = (1, -1, 2.5)
    z0 = 0.9 * (2 * torch.rand(20, 3, generator=torch.Generator().manual_seed(12)) - 1).double()
    naive = dot_latent(D, G, z0, K=1.0, steps=300, prior="uniform", mode="naive")
    # naive maximises c.z over [-1, 1]^3: the corner sign(c), reached exactly by clipping
    corner = torch.tensor([1.0, -1.0, 1.0], dtype=torch.float64).expand(20, 3)
    torch.testing.assert_close(naive.latents, corner, rtol=0, atol=0)
    torch.testing.assert_close(naive.samples, G(corner))
    dot = dot_latent(D, G, z0, K=0.5, steps=150, prior="uniform")
    assert float(dot.latents.abs().max()) <= 1.0
    assert float(dot.objective[-1]) < float(dot.objective[0])


def test_dot_latent_normal_prior_removes_radial_gradient():
    z0 = torch.randn(30, 5, generator=torch.Generator().manual_seed(13), dtype=torch.float64)
    radial = lambda x: (x**2).sum(1)  # gradient parallel to z: projected away entirely
    res = dot_latent(radial, lambda z: z, z0, K=1.0, steps=50, mode="naive")
    torch.testing.assert_close(res.latents, z0, rtol=0, atol=0)
    # a generic D o G: small SGD steps move z but keep |z| to second order in lr
    D = mlp(5, 1, seed=14)
    res = dot_latent(D, lambda z: z, z0, K=1.0, steps=100, lr=1e-3, optimizer="sgd", mode="naive")
    moved = torch.linalg.vector_norm(res.latents - z0, dim=1)
    dr = (torch.linalg.vector_norm(res.latents, dim=1) - torch.linalg.vector_norm(z0, dim=1)).abs()
    assert float(moved.min()) > 1e-3
    assert float((dr / moved).max()) < 1e-2


def test_dot_latent_reaches_latent_of_target_mode():
    """With G = identity the latent problem is the target problem: same closed form."""
    a, c = 1.0, 0.0
    z0 = torch.tensor([[0.9], [-0.95], [0.2]], dtype=torch.float64)
    D = lambda x: -a * (x[:, 0] - c) ** 2
    res = dot_latent(D, lambda z: z, z0, 1.0, steps=600, lr=0.01, prior="uniform", optimizer="sgd")
    expected = torch.tensor([0.5, -0.5, 0.2 - 1e-3], dtype=torch.float64)
    assert torch.allclose(res.latents[:, 0], expected, atol=0.011)
    assert torch.allclose(res.latents[:2, 0], expected[:2], atol=1e-4)


def test_shapes_that_do_not_chain_name_both_shapes():
    G = torch.nn.Linear(3, 2).double()
    D = torch.nn.Sequential(torch.nn.Linear(5, 1)).double()
    z0 = torch.randn(4, 3, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"\(2,\).*\(5,\)"):
        dot_latent(D, G, z0, 1.0)
    with pytest.raises(ValueError, match=r"\(2,\).*\(5,\)"):
        effective_lipschitz(D, G, "normal", latent_dim=3)
    with pytest.raises(ValueError, match=r"\(2,\).*\(5,\)"):
        dot_target(D, torch.randn(4, 2, dtype=torch.float64), 1.0)
    with pytest.raises(ValueError, match=r"G could not take z0.*\(4,\).*\(3,\)"):
        dot_latent(D, G, torch.randn(4, 4, dtype=torch.float64), 1.0)


@pytest.mark.parametrize("K", [0.0, -1.0, math.nan, math.inf])
def test_bad_K_is_rejected(K):
    D = lambda x: x[:, 0]
    with pytest.raises(ValueError, match="K must be a positive number"):
        dot_target(D, torch.zeros(3, 2), K)
    with pytest.raises(ValueError, match="K must be a positive number"):
        dot_latent(D, lambda z: z, torch.zeros(3, 2), K)


def test_latent_outside_prior_support_is_rejected():
    z0 = torch.tensor([[0.2, 1.5], [0.0, 0.0]])
    with pytest.raises(ValueError, match=r"z0\[0\] lies outside.*\[-1, 1\]"):
        dot_latent(lambda x: x[:, 0], lambda z: z, z0, 1.0, prior="uniform")
    with pytest.raises(ValueError, match="finite"):
        dot_latent(lambda x: x[:, 0], lambda z: z, torch.tensor([[math.nan, 0.0]]), 1.0)


def test_empty_batch_is_rejected():
    with pytest.raises(ValueError, match="empty batch"):
        dot_target(lambda x: x[:, 0], torch.zeros(0, 2), 1.0)
    with pytest.raises(ValueError, match="empty batch"):
        dot_latent(lambda x: x[:, 0], lambda z: z, torch.zeros(0, 2), 1.0)
    with pytest.raises(ValueError, match=r"shape \(n, \.\.\.\)"):
        dot_target(lambda x: x[:, 0], torch.zeros(2), 1.0)


def test_probability_output_warns():
    lin = mlp(2, 1, seed=15)
    D = lambda x: torch.sigmoid(lin(x))
    y0 = torch.randn(16, 2, dtype=torch.float64)
    with pytest.warns(ProbabilityOutputWarning, match="logit"):
        dot_target(D, y0, 1.0, steps=1)
    with pytest.warns(ProbabilityOutputWarning):
        effective_lipschitz(D, lambda z: z, "normal", latent_dim=2, dtype=torch.float64)


def test_logits_and_constant_D_do_not_warn(recwarn):
    dot_target(lambda x: x[:, 0] - 5.0, torch.randn(8, 2), 1.0, steps=1)
    dot_target(lambda x: torch.zeros(x.shape[0]), torch.randn(8, 2), 1.0, steps=1)
    assert not [w for w in recwarn if issubclass(w.category, ProbabilityOutputWarning)]


def test_other_bad_inputs():
    y0 = torch.randn(4, 2)
    D = lambda x: x[:, 0]
    with pytest.raises(ValueError, match="one logit per sample"):
        dot_target(lambda x: x, y0, 1.0)
    with pytest.raises(ValueError, match="unknown optimizer"):
        dot_target(D, y0, 1.0, optimizer="rmsprop")
    with pytest.raises(ValueError, match="unknown mode"):
        dot_target(D, y0, 1.0, mode="greedy")
    with pytest.raises(ValueError, match="clip must give finite lo < hi"):
        dot_target(D, y0, 1.0, clip=(1.0, -1.0))
    with pytest.raises(ValueError, match="lr must be a positive number"):
        dot_target(D, y0, 1.0, lr=0.0)
    with pytest.raises(ValueError, match="unknown prior"):
        dot_latent(D, lambda z: z, y0, 1.0, prior="cauchy")
    with pytest.raises(ValueError, match="unknown space"):
        effective_lipschitz(D, lambda z: z, "normal", space="image", latent_dim=2)
    with pytest.raises(ValueError, match="latent_dim"):
        effective_lipschitz(D, lambda z: z, "normal")
    with pytest.raises(ValueError, match="latent shape"):
        as_prior(Prior("normal", (3,)), 2)
    with pytest.raises(ValueError, match="zero distance"):
        effective_lipschitz(D, lambda z: 0 * z, "normal", latent_dim=2)
    assert np.isfinite(effective_lipschitz(D, lambda z: z, "uniform", latent_dim=2, seed=0))


def test_probability_warning_for_a_sigmoid_D_on_a_small_batch() -> None:
    lin = torch.nn.Linear(2, 1).double()
    torch.nn.init.constant_(lin.weight, 2.0)
    D = torch.nn.Sequential(lin, torch.nn.Sigmoid())
    y = torch.randn(8, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    with pytest.warns(ProbabilityOutputWarning, match="logit"):
        dot_target(D, y, 1.0, steps=1)
    # below the minimum batch (8 values) the range says too little: no warning
    with warnings.catch_warnings():
        warnings.simplefilter("error", ProbabilityOutputWarning)
        dot_target(D, y[:7], 1.0, steps=1)


def test_logit_D_with_values_in_unit_interval_does_not_warn() -> None:
    # a logit whose values on this batch happen to lie in [0.4, 0.6] (as hinge logits of real
    # data cluster below 1): unbounded far from the data, so not a probability
    D = lambda x: 0.5 + 0.05 * x.sum(1)  # noqa: E731
    y = torch.rand(32, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    y = 2 * y - 1
    assert bool(((D(y) >= 0) & (D(y) <= 1)).all())
    with warnings.catch_warnings():
        warnings.simplefilter("error", ProbabilityOutputWarning)
        dot_target(D, y, 1.0, steps=1)
        effective_lipschitz(D, lambda z: z, "uniform", 8, latent_dim=2, dtype=torch.float64)


def _linear_critic() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Linear(2, 1).double()


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda D, y0: dot_target(D, object(), 1.0), TypeError, "y0 must be"),
        (lambda D, y0: dot_target(D, y0, 1.0, clip="ab"), TypeError, "clip must be None, a num"),
        (lambda D, y0: dot_target(D, y0, 1.0, clip=[1.0]), TypeError, "or a pair"),
        (
            lambda D, y0: dot_target(D, y0, 1.0, optimizer=lambda params: "adam"),
            TypeError,
            "optimizer factory must return a torch.optim.Optimizer",
        ),
        (
            lambda D, y0: dot_target(lambda x: x.sum(dim=1).tolist(), y0, 1.0),
            TypeError,
            "D must return a tensor of logits, got list",
        ),
        (lambda D, y0: dot_target(D, y0, 1.0, distributed=1), TypeError, "distributed must be"),
        (
            lambda D, y0: dot_latent(D, lambda z: z[:1], torch.zeros(4, 2).double(), 1.0),
            ValueError,
            r"G must map a batch \(n, \.\.\.\) to a batch",
        ),
    ],
    ids=["y0-object", "clip-str", "clip-one", "optimizer-factory", "D-list", "distributed-int",
         "G-drops-rows"],
)
def test_bad_input_names_what_is_wrong(call, error, match):
    y0 = torch.randn(4, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    with pytest.raises(error, match=match):
        call(_linear_critic(), y0)


def test_a_reversed_numpy_batch_is_transported_like_its_contiguous_copy():
    """torch cannot share an array with negative strides; such a y0 is a valid batch."""
    y0 = np.linspace(-1.0, 1.0, 8).reshape(4, 2)[::-1]
    assert y0.strides[0] < 0
    reversed_run = dot_target(_linear_critic(), y0, 1.0, steps=5, lr=0.05)
    contiguous_run = dot_target(_linear_critic(), y0.copy(), 1.0, steps=5, lr=0.05)
    torch.testing.assert_close(reversed_run.samples, contiguous_run.samples, rtol=0, atol=0)


def test_dot_target_offset_moves_the_closed_form_minimum():
    """1-D quadratic critic with offset 0.3: the minimum is y' = y - 0.3 inside
    |y' - c| <= 1/(2a) and c + sign(y' - c)/(2a) outside (the offset enters only y')."""
    a, c, off = 1.0, 0.2, 0.3
    y = torch.linspace(-2.0, 2.0, 21, dtype=torch.float64)[:, None]
    D = lambda x: -a * (x[:, 0] - c) ** 2
    res = dot_target(D, y, 1.0, steps=600, lr=0.01, optimizer="sgd", offset=off)
    yp = y[:, 0] - off
    inside = (yp - c).abs() <= 1 / (2 * a)
    expected = torch.where(inside, yp, c + torch.sign(yp - c) / (2 * a))
    err = (res.samples[:, 0] - expected).abs()
    assert int(inside.sum()) >= 5 and int((~inside).sum()) >= 10
    assert float(err[~inside].max()) < 1e-4
    assert float(err[inside].max()) < 0.02  # within one step of the kink at y'
    first = float((math.sqrt(off**2) - D(y) / 1.0).mean())  # |x - y + off| at x = y
    assert float(res.objective[0]) == pytest.approx(first, rel=1e-12)


def test_dot_target_without_offset_starts_on_the_kink_and_stays_finite():
    """offset = 0: the norm's gradient at x = y is taken as 0 (a subgradient), so the first
    step follows D alone; with K above Lip(D) the minimum is still y."""
    a = torch.tensor([0.6, -0.8], dtype=torch.float64)
    D = lambda x: x @ a
    y0 = torch.randn(20, 2, generator=torch.Generator().manual_seed(16), dtype=torch.float64)
    res = dot_target(D, y0, K=2.0, steps=100, offset=0.0)
    assert bool(torch.isfinite(res.samples).all()) and bool(torch.isfinite(res.objective).all())
    assert float((res.samples - y0).abs().max()) < 0.03
    assert float(res.objective[0]) == pytest.approx(float(-(y0 @ a).mean() / 2.0), rel=1e-12)


@pytest.mark.parametrize(
    "clip", [(1.0, 1.0), (0.0, math.inf), (-math.inf, 0.0), (math.nan, 1.0), -1.0],
    ids=["empty", "hi-inf", "lo-inf", "lo-nan", "negative-c"],
)
def test_dot_target_clip_must_be_a_finite_nonempty_interval(clip):
    with pytest.raises(ValueError, match="clip must give finite lo < hi"):
        dot_target(lambda x: x[:, 0], torch.zeros(3, 2), 1.0, clip=clip)


def test_dot_target_integer_clip_is_the_symmetric_box():
    a = torch.tensor([0.6, -0.8], dtype=torch.float64)
    y0 = torch.zeros(4, 2, dtype=torch.float64)
    res = dot_target(lambda x: x @ a, y0, K=1.0, steps=30, lr=0.05, mode="naive", clip=1)
    expected = torch.tensor([1.0, -1.0], dtype=torch.float64).expand(4, 2)
    torch.testing.assert_close(res.samples, expected, rtol=0, atol=0)


def test_dot_latent_normal_prior_projection_inside_the_unit_ball():
    """|z| < 1: the radial gradient 2z is still removed exactly (coefficient <g, z>/|z|^2)."""
    z0 = 0.1 * torch.randn(10, 3, generator=torch.Generator().manual_seed(17), dtype=torch.float64)
    assert float(torch.linalg.vector_norm(z0, dim=1).max()) < 1.0
    radial = lambda x: (x**2).sum(1)
    res = dot_latent(radial, lambda z: z, z0, K=1.0, steps=20, lr=0.1, optimizer="sgd",
                     mode="naive")
    torch.testing.assert_close(res.latents, z0, rtol=0, atol=1e-12)


def test_keff_skips_coinciding_pairs():
    """Pairs at zero distance carry no slope: the estimate is the max over the others."""
    z = torch.tensor([[0.5], [1.0], [0.5], [3.0]], dtype=torch.float64)  # pairs (0.5, 0.5), (1, 3)
    D = lambda x: x[:, 0] ** 2  # slope of the second pair: |1 - 9| / 2 = 4
    for space in ("target", "latent"):
        k = effective_lipschitz(D, lambda v: v, "normal", n_pairs=2, space=space, z=z)
        assert k == pytest.approx(4.0, rel=1e-12)


def test_keff_defaults_and_guards():
    """Defaults: the normal prior and 100 pairs (DOT.py's); one pair is enough; n_pairs and
    repeats must be positive."""
    G = lambda z: z @ torch.tensor([[1.0, 0.5], [0.0, 2.0]], dtype=torch.float64).T
    D = lambda x: x[:, 0] ** 2 - x[:, 1]
    kw = dict(latent_dim=2, seed=7, dtype=torch.float64)
    default = effective_lipschitz(D, G, **kw)
    assert default == effective_lipschitz(D, G, "normal", 100, **kw)
    assert default != effective_lipschitz(D, G, "normal", 101, **kw)
    z = torch.tensor([[0.0, 0.0], [1.0, 1.0]], dtype=torch.float64)  # one pair
    assert effective_lipschitz(D, lambda v: v, "normal", 1, "latent", z=z) == pytest.approx(
        0.0, abs=1e-15)
    with pytest.raises(ValueError, match=r"n_pairs must be a positive integer.*n_pairs=100"):
        effective_lipschitz(D, G, "normal", 0, latent_dim=2)
    with pytest.raises(ValueError, match=r"repeats must be a positive integer.*repeats=10"):
        effective_lipschitz(D, G, "normal", latent_dim=2, repeats=0)



def test_keff_given_latents_are_checked():
    D = lambda x: x[:, 0]
    with pytest.raises(ValueError, match="z must be finite"):
        effective_lipschitz(D, lambda v: v, "normal", 1, z=torch.tensor([[0.0], [math.nan]]))
    message = (r"^z must hold 2 \* n_pairs \* repeats = 4 latents, got 3; the pairs of repeat j "
               r"are rows 2 j n_pairs \+ i and \(2 j \+ 1\) n_pairs \+ i$")
    with pytest.raises(ValueError, match=message):
        effective_lipschitz(D, lambda v: v, "normal", 2, z=torch.zeros(3, 2))
    with pytest.raises(ValueError, match=r"repeats must be a positive integer.*repeats=10\)"):
        effective_lipschitz(D, lambda v: v, "normal", 2, z=torch.zeros(4, 2), repeats=-1)


def test_keff_latents_follow_the_networks():
    """Without latent_dim the latent size is G's Linear input size; without dtype the latents
    take the parameters' dtype (here D's float64), so D can take G's samples."""
    G = torch.nn.Linear(3, 2).double()
    D = torch.nn.Linear(2, 1).double()
    assert effective_lipschitz(D, G, "normal", 20, "latent", seed=0) > 0
    k = effective_lipschitz(D, lambda z: z, "normal", 20, latent_dim=2, seed=0)
    a = float(D.weight.detach().norm())  # D linear: K_eff <= |a|, attained along a
    assert 0.9 * a < k <= a * (1 + 1e-12)
    with pytest.raises(ValueError, match=r"z\[1\] lies outside"):
        effective_lipschitz(D, lambda z: z, "uniform", 1, z=torch.tensor([[0.0, 0.0], [2.0, 0.0]]))


def test_naive_objective_history_is_minus_D_over_K():
    """mode="naive": the per-sample objective is -D(x)/K, before the first and after the last
    update (no transport cost)."""
    a = torch.tensor([0.6, -0.8], dtype=torch.float64)
    D = lambda x: x @ a
    y0 = torch.randn(10, 2, generator=torch.Generator().manual_seed(18), dtype=torch.float64)
    res = dot_target(D, y0, K=2.0, steps=5, lr=0.05, mode="naive")
    assert float(res.objective[0]) == pytest.approx(float(-(y0 @ a).mean() / 2.0), rel=1e-12)
    last = float(-(res.samples @ a).mean() / 2.0)
    assert float(res.objective[-1]) == pytest.approx(last, rel=1e-12)
    assert bool((res.objective[1:] < res.objective[:-1]).all())  # D increases every step


def test_dot_defaults_are_the_original_two_dimensional_setting():
    """Defaults: Adam(lr 0.01, betas (0, 0.9)), 100 steps, offset 0.001, no clip, DOT mode;
    latent space under the normal prior. Naive DOT with D(x) = a.x and beta1 = 0 moves each
    coordinate by lr sign(a_k) per step: 100 x 0.01 = 1 in all (up to Adam's eps 1e-8 / |a_k|
    per step)."""
    a = torch.tensor([0.6, -0.8], dtype=torch.float64)
    y0 = torch.randn(6, 2, generator=torch.Generator().manual_seed(19), dtype=torch.float64)
    naive = dot_target(lambda x: x @ a, y0, 1.0, mode="naive")
    torch.testing.assert_close(naive.samples, y0 + torch.sign(a), rtol=0, atol=1e-7)
    assert naive.steps == 100 and naive.objective.shape == (101,)
    D = lambda x: x @ a - (x**2).sum(1)  # curved: the gradients vary, beta2 matters
    explicit = dot_target(D, y0, 0.7, 100, 0.01, "adam", None, mode="dot", betas=(0.0, 0.9),
                          offset=1e-3)
    default = dot_target(D, y0, 0.7)
    torch.testing.assert_close(default.samples, explicit.samples, rtol=0, atol=0)
    assert default.mode == "dot"
    z0 = torch.randn(6, 3, generator=torch.Generator().manual_seed(21), dtype=torch.float64)
    G = lambda z: 1.5 * z[:, :2] + 0.5 * z[:, 2:]
    explicit = dot_latent(D, G, z0, 0.7, 100, 0.01, "normal", optimizer="adam", mode="dot",
                          betas=(0.0, 0.9), offset=1e-3)
    default = dot_latent(D, G, z0, 0.7)
    torch.testing.assert_close(default.latents, explicit.latents, rtol=0, atol=0)
    assert default.steps == 100 and default.mode == "dot" and default.space == "latent"


@pytest.mark.parametrize("space", ["target", "latent"])
def test_dot_guards_name_the_argument_and_a_valid_value(space):
    """steps >= 0 and lr > 0 with an example each; K > 0 with the hint to estimate it."""
    D = lambda x: x[:, 0] - 5.0
    y0 = torch.zeros(3, 2, dtype=torch.float64)
    run = (lambda **kw: dot_target(D, y0, **kw)) if space == "target" else (
        lambda **kw: dot_latent(D, lambda z: z, y0, **kw))
    with pytest.raises(ValueError, match=r"^steps must be a non-negative integer, got -1 "
                                         r"\(e\.g\. steps=100\)$"):
        run(K=1.0, steps=-1)
    with pytest.raises(ValueError, match=r"^lr must be a positive number, got -0\.5 "
                                         r"\(e\.g\. lr=0\.01\)$"):
        run(K=1.0, lr=-0.5)
    with pytest.raises(ValueError, match=r"^K must be a positive number, got 0; estimate it "
                                         r"with effective_lipschitz\(D, G, prior\) \(the original "
                                         r"code's K_eff\)$"):
        run(K=0.0)
    name, call = ("y0", dot_target) if space == "target" else ("z0", dot_latent)
    args = (D,) if space == "target" else (D, lambda z: z)
    with pytest.raises(ValueError, match=rf"^{name} is an empty batch \(shape \(0, 2\)\)"):
        call(*args, torch.zeros(0, 2), 1.0)


@pytest.mark.parametrize("space", ["target", "latent"])
def test_dot_with_zero_steps_returns_the_start_and_its_objective(space):
    """steps = 0: no update; the objective history is the start's ||offset|| - D/K alone."""
    a = torch.tensor([0.6, -0.8], dtype=torch.float64)
    D = lambda x: x @ a
    y0 = 0.5 * torch.randn(5, 2, generator=torch.Generator().manual_seed(23), dtype=torch.float64)
    res = (dot_target(D, y0, 2.0, steps=0) if space == "target"
           else dot_latent(D, lambda z: z, y0, 2.0, steps=0))
    torch.testing.assert_close(res.samples, y0, rtol=0, atol=0)
    assert res.objective.shape == (1,) and res.n_grad_evals == 0 and res.steps == 0
    first = 1e-3 * math.sqrt(2) - float((y0 @ a).mean()) / 2.0
    assert float(res.objective[0]) == pytest.approx(first, rel=1e-12)


@pytest.mark.parametrize("space", ["target", "latent"])
def test_dot_wall_time_is_the_elapsed_time(space):
    D = mlp(2, 1, seed=24)
    y0 = torch.zeros(4, 2, dtype=torch.float64)
    t0 = time.perf_counter()
    res = (dot_target(D, y0, 1.0, steps=3) if space == "target"
           else dot_latent(D, lambda z: z, y0, 1.0, steps=3))
    elapsed = time.perf_counter() - t0
    assert 0.0 < res.wall_time <= elapsed
    assert res.K == 1.0 and res.steps == 3 and res.n_grad_evals == 3 * 4


def test_dot_names_the_batch_that_D_cannot_take():
    G = torch.nn.Linear(3, 2).double()
    D = torch.nn.Sequential(torch.nn.Linear(5, 1)).double()
    with pytest.raises(ValueError, match=r"^G\(z0\) has per-sample shape \(2,\) but D expects "
                                         r"\(5,\)"):
        dot_latent(D, G, torch.zeros(4, 3, dtype=torch.float64), 1.0)
    with pytest.raises(ValueError, match=r"^y0 has per-sample shape \(2,\) but D expects \(5,\)"):
        dot_target(D, torch.zeros(4, 2, dtype=torch.float64), 1.0)


def test_keff_names_generated_samples_that_D_cannot_take():
    G = torch.nn.Linear(3, 2).double()
    D = torch.nn.Sequential(torch.nn.Linear(5, 1)).double()
    with pytest.raises(ValueError, match=r"^G's output has per-sample shape \(2,\) but D expects "
                                         r"\(5,\); G's output and D's input must chain"):
        effective_lipschitz(D, G, "normal", 4, latent_dim=3, seed=0)


PROBABILITY_MESSAGE = (
    r"^D's outputs all lie in \[0, 1\], also far from the data: it looks like a probability "
    r"\(sigmoid applied\) where a logit is expected\. Pass D without its final sigmoid, or wrap "
    r"it as lambda x: torch\.logit\(D\(x\), eps=1e-6\)\.$"
)


def test_probability_warning_says_how_to_pass_a_logit():
    D = lambda x: torch.sigmoid(x.sum(1))
    y0 = torch.randn(8, 2, generator=torch.Generator().manual_seed(25), dtype=torch.float64)
    with pytest.warns(ProbabilityOutputWarning, match=PROBABILITY_MESSAGE):
        dot_target(D, y0, 1.0, steps=0)


def test_probability_probe_needs_both_directions_and_a_D_that_takes_them():
    """D bounded at +100 x but growing at -100 x is a logit (no warning); so is a D that
    refuses the far probe points. Values that are not finite are no probabilities either."""
    y0 = 0.5 + torch.rand(16, 2, generator=torch.Generator().manual_seed(26), dtype=torch.float64)

    def one_sided(x):
        s = x.sum(1)
        return torch.where(s > 0, 0.5 + 0.5 * torch.tanh(s), 0.5 + 0.01 * s)

    def refuses_far(x):
        if bool((x.abs() > 10).any()):
            raise ValueError("D is defined on [-10, 10]^2 only")
        return torch.sigmoid(x.sum(1))

    with_nan = lambda x: torch.where(x[:, 0] > 1.2, math.nan, torch.sigmoid(x.sum(1)))
    assert bool(torch.isnan(with_nan(y0)).any())
    with warnings.catch_warnings():
        warnings.simplefilter("error", ProbabilityOutputWarning)
        for D in (one_sided, refuses_far, with_nan):
            effective_lipschitz(D, lambda z: z, "normal", 8, z=y0)
    with pytest.warns(ProbabilityOutputWarning):  # the same D on both sides: bounded
        effective_lipschitz(lambda x: 0.5 + 0.5 * torch.tanh(x.sum(1)), lambda z: z, "normal", 8,
                            z=y0)


def test_probability_probe_keeps_the_buffers_of_D():
    """A batch-norm D in training mode updates its running statistics on every forward pass;
    the far probe points must leave them as one pass over the batch leaves them."""
    torch.manual_seed(27)
    D = torch.nn.Sequential(torch.nn.BatchNorm1d(2), torch.nn.Linear(2, 1), torch.nn.Sigmoid())
    D = D.double().train()
    reference = copy.deepcopy(D)
    z = torch.randn(16, 2, generator=torch.Generator().manual_seed(28), dtype=torch.float64)
    with pytest.warns(ProbabilityOutputWarning):
        effective_lipschitz(D, lambda v: v, "normal", 8, z=z)
    with torch.no_grad():
        reference(z)
    for got, want in zip(D.buffers(), reference.buffers(), strict=True):
        torch.testing.assert_close(got, want, rtol=0, atol=0)


def test_batches_and_networks_that_do_not_fit_are_named():
    """Every message names the argument, the shapes and how to fix them; G and D raising
    IndexError, ValueError or RuntimeError on the batch all become ValueError."""
    y0 = torch.zeros(3, 2, dtype=torch.float64)
    first = lambda x: x[:, 0]
    cases = [
        (lambda: dot_target(first, torch.zeros(2), 1.0),
         r"^y0 must be a batch of shape \(n, \.\.\.\) with n >= 1 and at least one feature "
         r"dimension, got shape \(2,\); reshape a single sample with x\[None\]$"),
        (lambda: dot_target(first, torch.zeros(0, 2), 1.0),
         r"^y0 is an empty batch \(shape \(0, 2\)\); pass n >= 1 samples$"),
        (lambda: dot_target(first, torch.tensor([[0.0, math.inf]]), 1.0),
         r"^y0 must be finite; it contains NaN or inf$"),
        (lambda: dot_latent(first, lambda z: z[:, 5], y0, 1.0),
         r"^G could not take z0 of per-sample shape \(2,\) \(G expects a different shape\): "
         r"index 5 is out of bounds"),
        (lambda: dot_latent(first, lambda z: [1.0], y0, 1.0),
         r"^G must map a batch \(n, \.\.\.\) to a batch \(n, \.\.\.\) of samples; got list from "
         r"z0 of shape \(3, 2\)$"),
        (lambda: dot_latent(first, lambda z: z.sum(), y0, 1.0),
         r"^G must map a batch \(n, \.\.\.\) to a batch \(n, \.\.\.\) of samples; got \(\) "
         r"from z0 of shape \(3, 2\)$"),
        (lambda: dot_target(lambda x: x[:, 5], y0, 1.0),
         r"^y0 has per-sample shape \(2,\) but D expects a different shape; G's output and D's "
         r"input must chain: index 5 is out of bounds"),
        (lambda: dot_target(lambda x: torch.logit(x, eps=float("a")), y0, 1.0),
         r"^y0 has per-sample shape \(2,\) but D expects a different shape; .*could not convert"),
        (lambda: dot_target(lambda x: x, y0, 1.0),
         r"^D must return one logit per sample, shape \(3,\) or \(3, 1\); got \(3, 2\) for y0 "
         r"of shape \(3, 2\)$"),
        (lambda: dot_target(torch.nn.Conv1d(3, 1, 1).double(), torch.zeros(3, 2, 4).double(), 1.0),
         r"^y0 has per-sample shape \(2, 4\) but D expects \(3, \.\.\.\)"),
        (lambda: effective_lipschitz(first, lambda z: z, "normal", 2, latent_dim=2, seed=-1),
         r"^seed must be a non-negative integer, got -1; or pass a torch\.Generator, or None$"),
    ]
    for call, message in cases:
        with pytest.raises(ValueError, match=message):
            call()
    with pytest.raises(TypeError, match=r"^D must return a tensor of logits, got list$"):
        dot_target(lambda x: [0.0] * x.shape[0], y0, 1.0)


def test_integer_batches_become_floating_and_latent_size_needs_a_linear_input():
    """An integer y0 is moved in torch's default dtype; a convolutional G gives no latent
    size, so a named prior then needs latent_dim."""
    res = dot_target(lambda x: -(x**2).sum(1), [[1, 2], [3, 4]], 1.0, steps=1)
    assert res.samples.dtype == torch.get_default_dtype()
    G = torch.nn.Sequential(torch.nn.Conv1d(3, 1, 1))
    with pytest.raises(ValueError, match=r"^prior='normal' needs the latent shape; pass "
                                         r"latent_dim="):
        effective_lipschitz(lambda x: x.sum((1, 2)), G, "normal", 2)


def test_dot_on_image_shaped_samples_equals_dot_on_their_flattening():
    """The norm and the objective are per sample over all its coordinates: (n, 2, 2)
    samples move exactly as their (n, 4) flattening (target space, and latent space with the
    tangent projection of the normal prior)."""
    w = torch.tensor([0.3, -1.2, 0.8, 0.5], dtype=torch.float64)
    D_flat = lambda x: torch.tanh(x @ w) - 0.1 * (x**2).sum(1)
    D_img = lambda x: D_flat(x.reshape(x.shape[0], -1))
    y0 = torch.randn(5, 4, generator=torch.Generator().manual_seed(29), dtype=torch.float64)
    flat = dot_target(D_flat, y0, 0.8, steps=20, lr=0.05)
    img = dot_target(D_img, y0.reshape(5, 2, 2), 0.8, steps=20, lr=0.05)
    torch.testing.assert_close(img.samples.reshape(5, 4), flat.samples, rtol=0, atol=1e-14)
    torch.testing.assert_close(img.objective, flat.objective, rtol=1e-14, atol=0)
    flat = dot_latent(D_flat, lambda z: z, y0, 0.8, steps=20, lr=0.05, optimizer="sgd")
    img = dot_latent(D_img, lambda z: z, y0.reshape(5, 2, 2), 0.8, steps=20, lr=0.05,
                     optimizer="sgd")
    torch.testing.assert_close(img.latents.reshape(5, 4), flat.latents, rtol=0, atol=1e-14)
    pairs = torch.cat([y0, -y0])  # 5 pairs (y0_i, -y0_i)
    k_flat = effective_lipschitz(D_flat, lambda z: z, "normal", 5, z=pairs)
    k_img = effective_lipschitz(D_img, lambda z: z, "normal", 5, z=pairs.reshape(10, 2, 2))
    assert k_img == pytest.approx(k_flat, rel=1e-14)


def test_a_D_that_does_not_depend_on_x_leaves_naive_dot_in_place():
    """D built from parameters alone (its gradient in x is zero, or unused): naive DOT has
    nothing to climb; DOT mode only pays the transport cost and stays put too."""
    c = torch.tensor(0.7, dtype=torch.float64, requires_grad=True)
    y0 = torch.randn(4, 2, generator=torch.Generator().manual_seed(30), dtype=torch.float64)
    for D in (lambda x: c.expand(x.shape[0]), lambda x: torch.zeros(x.shape[0], dtype=x.dtype)):
        for mode in ("naive", "dot"):
            res = dot_target(D, y0, 1.0, steps=5, lr=0.05, optimizer="sgd", mode=mode, offset=0.0)
            torch.testing.assert_close(res.samples, y0, rtol=0, atol=0)


def _box_only(x: torch.Tensor) -> torch.Tensor:
    """An identity defined on [-1, 1]^d only (a network with a bounded domain)."""
    if bool((x.abs() > 1).any()):
        raise ValueError("input outside [-1, 1]^d")
    return x


def test_a_network_that_fails_on_moved_samples_is_named():
    """D or G that take the starting batch but refuse a point the transport reaches: the
    error names the moved samples (x, G(z) or z), not the start."""
    D = lambda x: 5.0 * _box_only(x)[:, 0]
    y0 = torch.zeros(3, 2, dtype=torch.float64)
    kw = dict(steps=5, lr=0.5, optimizer="sgd", mode="naive")
    with pytest.raises(ValueError, match=r"^x has per-sample shape \(2,\) but D expects .*"
                                         r"outside \[-1, 1\]"):
        dot_target(D, y0, 1.0, **kw)
    with pytest.raises(ValueError, match=r"^G\(z\) has per-sample shape \(2,\) but D expects"):
        dot_latent(D, lambda z: z, y0, 1.0, **kw)
    with pytest.raises(ValueError, match=r"^G could not take z of per-sample shape \(2,\)"):
        dot_latent(lambda x: 5.0 * x[:, 0], _box_only, y0, 1.0, **kw)


def test_latent_dot_probes_D_on_the_generated_batch():
    """Values of a logit D in [0, 1] on G(z0), unbounded far from it: no warning in latent DOT
    (a sigmoid D does warn); mode must be one of the two, named."""
    D = lambda x: 0.5 + 0.05 * x.sum(1)
    z0 = 2 * torch.rand(16, 2, generator=torch.Generator().manual_seed(31), dtype=torch.float64) - 1
    with warnings.catch_warnings():
        warnings.simplefilter("error", ProbabilityOutputWarning)
        dot_latent(D, lambda z: z, z0, 1.0, steps=1)
    with pytest.warns(ProbabilityOutputWarning):
        dot_latent(lambda x: torch.sigmoid(x.sum(1)), lambda z: z, z0, 1.0, steps=1)
    for call in (lambda: dot_latent(D, lambda z: z, z0, 1.0, mode="greedy"),
                 lambda: dot_target(D, z0, 1.0, mode="greedy")):
        with pytest.raises(ValueError, match=r"^unknown mode 'greedy'; allowed: 'dot', 'naive'$"):
            call()


def test_keff_of_a_constant_generator_is_undefined():
    message = r"^every pair coincides \(zero distance\); G may be constant — K_eff is undefined$"
    with pytest.raises(ValueError, match=message):
        effective_lipschitz(lambda x: x[:, 0], lambda z: 0 * z, "normal", 3, latent_dim=2, seed=0)


@pytest.mark.parametrize("space", ["target", "latent"])
def test_named_optimizers_are_torchs_with_the_given_lr_and_betas(space):
    """"adam" with betas away from the default and "sgd" move the batch exactly as torch's
    Adam(lr, betas) and SGD(lr) passed as factories."""
    D = lambda x: torch.tanh(x @ torch.tensor([0.9, -0.4], dtype=x.dtype)) - 0.2 * (x**2).sum(1)
    y0 = torch.randn(6, 2, generator=torch.Generator().manual_seed(32), dtype=torch.float64)
    run = (lambda **kw: dot_target(D, y0, 0.6, steps=15, lr=0.03, **kw)) if space == "target" else (
        lambda **kw: dot_latent(D, lambda z: z, y0, 0.6, steps=15, lr=0.03, **kw))
    pairs = [
        (dict(optimizer="adam", betas=(0.5, 0.8)),
         dict(optimizer=lambda ps: torch.optim.Adam(ps, lr=0.03, betas=(0.5, 0.8)))),
        (dict(optimizer="sgd"), dict(optimizer=lambda ps: torch.optim.SGD(ps, lr=0.03))),
    ]
    for named, factory in pairs:
        a, b = run(**named), run(**factory)
        torch.testing.assert_close(a.samples, b.samples, rtol=1e-12, atol=1e-14)
        assert not torch.equal(a.samples, y0)


def test_probability_probe_takes_saturated_sigmoids_and_rejects_bounds_beyond_one():
    """A sigmoid that saturates to exactly 0 and 1 at the probe points (float64 underflows
    below -745) is a probability; a bounded D that reaches 1.25 far out is not."""
    y0 = torch.linspace(-10.0, 10.0, 16, dtype=torch.float64)[:, None].expand(16, 2)
    with torch.no_grad():
        assert float(torch.sigmoid(-100.0 * y0.sum(1)).min()) == 0.0
    with pytest.warns(ProbabilityOutputWarning):
        effective_lipschitz(lambda x: torch.sigmoid(x.sum(1)), lambda z: z, "normal", 8, z=y0)
    shifted_tanh = lambda x: 0.75 + 0.5 * torch.tanh(x.sum(1))
    z = -0.9 * torch.rand(16, 2, generator=torch.Generator().manual_seed(33), dtype=torch.float64)
    assert bool(((shifted_tanh(z) >= 0) & (shifted_tanh(z) <= 1)).all())
    with warnings.catch_warnings():
        warnings.simplefilter("error", ProbabilityOutputWarning)
        effective_lipschitz(shifted_tanh, lambda v: v, "normal", 8, z=z)


def test_keff_with_an_explicit_device_and_dtype_equals_the_defaults():
    D = lambda x: x[:, 0] ** 2 - x[:, 1]
    kw = dict(latent_dim=2, seed=5)
    explicit = effective_lipschitz(D, lambda z: z, "normal", 7, dtype=torch.float64, device="cpu",
                                   **kw)
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        default = effective_lipschitz(D, lambda z: z, "normal", 7, **kw)
    finally:
        torch.set_default_dtype(old)
    assert explicit == default


def test_optimizer_that_is_neither_a_name_nor_a_factory_is_refused_whole():
    """None or a number is no optimizer name and no factory; a factory must build an optimizer."""
    y0 = torch.zeros(3, 2, dtype=torch.float64)
    D = lambda x: x[:, 0]
    for bad, shown in ((None, "None of type NoneType"), (3, "3 of type int")):
        message = rf"^optimizer must be one of 'adam', 'sgd', got {shown}$"
        with pytest.raises(TypeError, match=message):
            dot_target(D, y0, 1.0, optimizer=bad)
    message = r"^optimizer factory must return a torch\.optim\.Optimizer$"
    with pytest.raises(TypeError, match=message):
        dot_target(D, y0, 1.0, optimizer=lambda params: "adam")


@pytest.mark.parametrize("space", ["target", "latent"])
def test_adam_without_a_fused_kernel_is_still_torchs_adam(space, monkeypatch):
    """Where torch has no fused Adam for the batch's device, "adam" falls back to the plain
    Adam(lr, betas): the same steps as torch's Adam passed as a factory."""
    D = lambda x: torch.tanh(x @ torch.tensor([0.9, -0.4], dtype=x.dtype)) - 0.2 * (x**2).sum(1)
    y0 = torch.randn(6, 2, generator=torch.Generator().manual_seed(34), dtype=torch.float64)
    run = (lambda **kw: dot_target(D, y0, 0.6, steps=15, lr=0.03, **kw)) if space == "target" else (
        lambda **kw: dot_latent(D, lambda z: z, y0, 0.6, steps=15, lr=0.03, **kw))
    reference = run(optimizer=lambda ps: torch.optim.Adam(ps, lr=0.03, betas=(0.5, 0.8)))
    plain_adam = torch.optim.Adam

    def adam_without_fused(params, *args, fused=None, **kwargs):
        if fused:
            raise RuntimeError("`fused=True` requires params on a supported device")
        return plain_adam(params, *args, **kwargs)

    monkeypatch.setattr(torch.optim, "Adam", adam_without_fused)
    res = run(optimizer="adam", betas=(0.5, 0.8))
    torch.testing.assert_close(res.samples, reference.samples, rtol=1e-12, atol=1e-14)
    assert not torch.equal(res.samples, y0)


def test_latents_take_Gs_parameters_and_its_input_size_unless_latent_dim_is_given():
    """With D a plain function, the latents take G's float64 parameters and G's Linear input
    size (12, two digits); an explicit latent_dim wins over that guess, as for a conditional G
    that appends a one-hot label to z before its first Linear layer."""
    torch.manual_seed(35)
    G = torch.nn.Linear(12, 1).double()
    D = lambda x: 3.0 * x[:, 0]  # on 1-D samples every pair gives K_eff = 3 exactly
    k = effective_lipschitz(D, G, "normal", 20, seed=0)
    assert k == pytest.approx(3.0, rel=1e-12)

    class Conditional(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(5, 1).double()

        def forward(self, z):
            label = torch.zeros(z.shape[0], 2, dtype=z.dtype)
            label[:, 0] = 1.0
            return self.lin(torch.cat([z, label], dim=1))

    k = effective_lipschitz(D, Conditional(), "normal", 20, latent_dim=3, seed=0)
    assert k == pytest.approx(3.0, rel=1e-12)


def test_scalar_samples_are_a_batch_of_shape_n():
    """G may map latents to scalar samples, a (n,) batch: for D(x) = 3 x and G(z) = z[:, 0] on
    one-dimensional latents every pair has the ratio 3, in target and in latent space."""
    for space in ("target", "latent"):
        k = effective_lipschitz(lambda x: 3.0 * x, lambda z: z[:, 0], "normal", 10, space,
                                latent_dim=1, seed=0, dtype=torch.float64)
        assert k == pytest.approx(3.0, rel=1e-12)


def test_a_reversed_numpy_batch_with_inf_is_refused_as_not_finite():
    y0 = np.array([[0.0, 1.0], [np.inf, 2.0]])[::-1]
    with pytest.raises(ValueError, match=r"^y0 must be finite; it contains NaN or inf$"):
        dot_target(lambda x: x[:, 0], y0, 1.0)


def test_probability_warning_needs_every_value_in_the_closed_unit_interval():
    """Values of exactly 0 and 1 (a sigmoid saturated in float64) are probabilities and warn; a
    bump 1.5 exp(-|x|^2), bounded in [0, 1] at the far probe points but above 1 on the batch,
    is no probability and does not warn."""
    y0 = torch.linspace(-1.0, 1.0, 16, dtype=torch.float64)[:, None].expand(16, 2)
    steep = lambda x: torch.sigmoid(1000.0 * x.sum(1))
    values = steep(y0)
    assert float(values.min()) == 0.0 and float(values.max()) == 1.0
    with pytest.warns(ProbabilityOutputWarning, match=PROBABILITY_MESSAGE):
        effective_lipschitz(steep, lambda z: z, "normal", 8, z=y0)
    bump = lambda x: 1.5 * torch.exp(-(x**2).sum(1))
    z = 0.1 + 0.5 * torch.rand(16, 2, generator=torch.Generator().manual_seed(37),
                               dtype=torch.float64)
    assert float(bump(z).max()) > 1.0 and float(bump(z).min()) >= 0.0
    with torch.no_grad():
        assert all(bool(((bump(s * z) >= 0) & (bump(s * z) <= 1)).all()) for s in (100.0, -100.0))
    with warnings.catch_warnings():
        warnings.simplefilter("error", ProbabilityOutputWarning)
        effective_lipschitz(bump, lambda v: v, "normal", 8, z=z)


def test_probability_probe_is_at_plus_and_minus_100_times_the_batch():
    """A D clipped to 0.5 beyond |x1 + x2| = 150 and linear inside is bounded at +-100 x for x
    in [2, 3]^2 (a probability by the rule), not at +-100 / x; a D that returns no tensor at
    the probe points cannot be probed and does not warn."""
    z = 2.0 + torch.rand(16, 2, generator=torch.Generator().manual_seed(38), dtype=torch.float64)

    def clipped(x):
        s = x.sum(1)
        return torch.where(s.abs() > 150.0, torch.full_like(s, 0.5), 0.5 + 0.05 * s)

    assert bool(((clipped(z) >= 0) & (clipped(z) <= 1)).all())
    assert float(clipped(100.0 / z).max()) > 1.0
    with pytest.warns(ProbabilityOutputWarning):
        effective_lipschitz(clipped, lambda v: v, "normal", 8, z=z)

    def no_tensor_far(x):
        if bool((x.abs() > 10).any()):
            return [0.5] * x.shape[0]
        return torch.sigmoid(x.sum(1))

    with warnings.catch_warnings():
        warnings.simplefilter("error", ProbabilityOutputWarning)
        effective_lipschitz(no_tensor_far, lambda v: v, "normal", 8, z=z - 2.0)

"""GAN losses: variational bounds at the optimal critic against divergences by quadrature.

Data q = N(0, 1), model rho = N(0.5, 1.3^2): every divergence below is finite (the
model is wider than the data, so q/rho is bounded). Divergences are computed with
scipy quadrature from generator functions f written here, independently of the
module; the bounds are Monte Carlo estimates, compared within 5 standard errors.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import integrate, optimize, stats
from torch.func import functional_call

from ottokit.fgenerators import F_DIVERGENCES, F_GENERATORS, FGenerator
from ottokit.functionals import FDivergence
from ottokit.gan.losses import (
    FGAN_LOSSES,
    LOSSES,
    FGANLoss,
    GANLoss,
    HingeLoss,
    StandardGANLoss,
    WGANGPLoss,
    gradient_penalty,
    make_loss,
)
from ottokit.gan.nets import MLPDiscriminator, MLPGenerator

Q = stats.norm(0.0, 1.0)  # data
RHO = stats.norm(0.5, 1.3)  # model
N_MC = 400_000

# Nowozin et al. 2016, Table 1, written independently of the module: for each divergence
# D(model || data), the generator h of the f-GAN critic, D(model || data) = int rho h(q / rho)
F_REF = {
    "reverse_kl": lambda u: u * np.log(u),  # KL(data || model)
    "kl": lambda u: -np.log(u),  # KL(model || data)
    "reverse_chi2": lambda u: (u - 1.0) ** 2,  # int (q - rho)^2 / rho
    "hellinger": lambda u: (np.sqrt(u) - 1.0) ** 2,
    "jsd": lambda u: 0.5 * (-(u + 1.0) * np.log((1.0 + u) / 2.0) + u * np.log(u)),  # JSD
    "chi2": lambda u: (1.0 - u) ** 2 / u,  # int (rho - q)^2 / q
}


def _quad(fn) -> float:
    # both densities are below 1e-60 outside [-20, 20]
    value, err = integrate.quad(fn, -20.0, 20.0, epsabs=1e-12, epsrel=1e-10, limit=400)
    assert err < 1e-8
    return value


def _u(x: float) -> float:
    """q(x)/rho(x) from log densities (no 0/0 in the tails)."""
    return math.exp(Q.logpdf(x) - RHO.logpdf(x))


def f_divergence(name: str) -> float:
    """D(model || data) = int rho h(q / rho), by quadrature."""
    f = F_REF[name]
    return _quad(lambda x: RHO.pdf(x) * f(_u(x)))


def jsd() -> float:
    """JSD = KL(q || m)/2 + KL(rho || m)/2, m = (q + rho)/2."""
    kl_qm = _quad(lambda x: Q.pdf(x) * math.log(2.0 / (1.0 + 1.0 / _u(x))))
    kl_rm = _quad(lambda x: RHO.pdf(x) * math.log(2.0 / (1.0 + _u(x))))
    return 0.5 * kl_qm + 0.5 * kl_rm


@pytest.fixture(scope="module")
def samples() -> tuple[torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(0)
    real = torch.from_numpy(Q.rvs(size=(N_MC, 1), random_state=rng))
    fake = torch.from_numpy(RHO.rvs(size=(N_MC, 1), random_state=rng))
    return real, fake


def log_ratio(x: torch.Tensor) -> torch.Tensor:
    """log q(x)/rho(x) in closed form (x of shape (n, 1))."""
    x = x[:, 0]
    return -0.5 * x**2 + 0.5 * ((x - 0.5) / 1.3) ** 2 + math.log(1.3)


def optimal_critic(loss: GANLoss) -> Callable[[torch.Tensor], torch.Tensor]:
    return lambda x: loss.optimal_logit(log_ratio(x))


def _standard_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return math.sqrt(float(a.var()) / a.numel() + float(b.var()) / b.numel())


# Pearson chi^2(model || data) needs rho/q bounded for a finite Monte Carlo variance: it
# has its own test below, with the wider density as the data
@pytest.mark.parametrize("name", [n for n in F_DIVERGENCES if n != "chi2"])
def test_fgan_bound_at_optimal_critic_equals_f_divergence(name: str, samples) -> None:
    """-(discriminator loss) at v* = g^{-1}(h'(q/rho)) equals D(model || data)."""
    real, fake = samples
    loss = make_loss(f"fgan-{name}")
    D = optimal_critic(loss)
    bound = -float(loss.discriminator_loss(D, real, fake))
    terms_real = loss.activation(D(real))
    terms_fake = loss.conjugate_activation(D(fake))
    se = _standard_error(terms_real, terms_fake)
    reference = f_divergence(name)
    assert reference > 0.03 and se < 0.05 * reference  # the check can resolve the value
    assert abs(bound - reference) < 5 * se, (bound, reference, se)
    # the optimum is a supremum: perturbing the critic lowers the bound (same samples)
    for delta in (lambda x: 0.4 * torch.tanh(x[:, 0]), lambda x: -0.3 + 0 * x[:, 0]):
        perturbed = -float(loss.discriminator_loss(lambda x, d=delta: D(x) + d(x), real, fake))
        assert perturbed < bound - 5e-3


def test_fgan_chi2_bound_with_the_wider_density_as_data(samples) -> None:
    """Pearson chi^2(model || data) = int (rho - q)^2 / q, data N(0.5, 1.3^2), model N(0, 1)."""
    fake, real = samples
    loss = make_loss("fgan-chi2")
    D = lambda x: loss.optimal_logit(-log_ratio(x))  # noqa: E731
    bound = -float(loss.discriminator_loss(D, real, fake))
    se = _standard_error(loss.activation(D(real)), loss.conjugate_activation(D(fake)))
    reference = _quad(lambda x: (Q.pdf(x) - RHO.pdf(x)) ** 2 / RHO.pdf(x))
    by_critic = _quad(lambda x: Q.pdf(x) * F_REF["chi2"](1.0 / _u(x)))
    assert abs(by_critic - reference) < 1e-9 * reference
    assert reference > 0.03 and se < 0.05 * reference
    assert abs(bound - reference) < 5 * se, (bound, reference, se)


@pytest.mark.parametrize("name", F_DIVERGENCES)
def test_fgan_optimal_discriminator_is_f_prime_of_the_density_ratio(name: str) -> None:
    """Solving the discriminator pointwise gives T*(x) = h'(q(x)/rho(x)), h = the critic's
    generator from the one table (Nowozin's f'(p_data/p_model)), and the minimax generator's
    potential -h*(T*) is f'(rho/q), the first variation of FDivergence(name, q)."""
    loss = make_loss(f"fgan-{name}")
    x = np.linspace(-2.5, 2.5, 11)
    q, rho = Q.pdf(x), RHO.pdf(x)
    v_star = []
    for qi, ri in zip(q, rho, strict=True):

        def pointwise_loss(v: float, qi: float = qi, ri: float = ri) -> float:
            t = torch.tensor([v], dtype=torch.float64)
            return float(-qi * loss.activation(t) + ri * loss.conjugate_activation(t))

        res = optimize.minimize_scalar(
            pointwise_loss, bounds=(-30.0, 30.0), method="bounded", options={"xatol": 1e-11}
        )
        v_star.append(res.x)
    v = torch.tensor(v_star, dtype=torch.float64)
    t_star = loss.activation(v).numpy()
    critic = F_GENERATORS[F_GENERATORS[name].dual]
    np.testing.assert_allclose(t_star, critic.df(q / rho), rtol=1e-6, atol=1e-8)
    potential = -loss.conjugate(loss.activation(v)).numpy()
    first_variation = FDivergence(name, q).first_variation(rho)
    np.testing.assert_allclose(potential, first_variation, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(potential, F_GENERATORS[name].df(rho / q), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("name", F_DIVERGENCES)
def test_fgan_conjugate_activation_and_optimal_logit(name: str) -> None:
    """h*(g(v)) = sup_u (u g(v) - h(u)) (Fenchel, numerically), and g(v*(log u)) = h'(u)."""
    loss = make_loss(f"fgan-{name}")
    assert isinstance(loss, FGANLoss)
    f = F_REF[name]
    v = torch.linspace(-2.0, 2.0, 9, dtype=torch.float64)
    t = loss.activation(v)
    fused = loss.conjugate_activation(v)
    torch.testing.assert_close(loss.conjugate(t), fused, rtol=1e-10, atol=1e-12)
    for ti, ci in zip(t.tolist(), fused.tolist(), strict=True):
        res = optimize.minimize_scalar(
            lambda s, ti=ti: -(math.exp(s) * ti - f(math.exp(s))),
            bounds=(-25.0, 8.0),
            method="bounded",
            options={"xatol": 1e-10},
        )
        assert abs(-res.fun - ci) < 1e-7, (ti, -res.fun, ci)
    u = np.array([0.2, 0.7, 1.0, 1.8, 4.0])
    h = 1e-6
    f_prime = (f(u + h) - f(u - h)) / (2 * h)
    t_star = loss.activation(loss.optimal_logit(torch.from_numpy(np.log(u)))).numpy()
    np.testing.assert_allclose(t_star, f_prime, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(loss.critic.f(torch.from_numpy(u)).numpy(), f(u), rtol=1e-12)


@pytest.mark.parametrize("name", ["ns", "minimax"])
def test_standard_gan_optimal_objective_is_2jsd_minus_log4(name: str, samples) -> None:
    real, fake = samples
    loss = make_loss(name)
    D = optimal_critic(loss)
    value = -float(loss.discriminator_loss(D, real, fake))
    a = torch.nn.functional.logsigmoid(D(real))
    b = torch.nn.functional.logsigmoid(-D(fake))
    se = _standard_error(a, b)
    reference = 2 * jsd() - math.log(4.0)
    assert se < 0.05 * (reference + math.log(4.0))
    assert abs(value - reference) < 5 * se, (value, reference, se)
    # sigmoid(v*) = q / (q + rho)
    x = torch.tensor([[-1.0], [0.3], [2.0]], dtype=torch.float64)
    qx, rx = Q.pdf(x.numpy()[:, 0]), RHO.pdf(x.numpy()[:, 0])
    np.testing.assert_allclose(torch.sigmoid(D(x)).numpy(), qx / (qx + rx), rtol=1e-12)


def test_hinge_optimal_objective_is_2tv_minus_2(samples) -> None:
    real, fake = samples
    loss = HingeLoss()
    D = optimal_critic(loss)
    value = -float(loss.discriminator_loss(D, real, fake))
    se = _standard_error(torch.relu(1 - D(real)), torch.relu(1 + D(fake)))
    tv = 0.5 * _quad(lambda x: abs(Q.pdf(x) - RHO.pdf(x)))
    assert abs(value - (2 * tv - 2)) < 5 * se


def test_generator_losses_closed_forms() -> None:
    """With the identity critic v = x, each generator loss is its formula in v."""
    v = torch.linspace(-3.0, 3.0, 13, dtype=torch.float64)[:, None]
    D = lambda x: x[:, 0]  # noqa: E731
    sig = torch.sigmoid(v[:, 0])
    torch.testing.assert_close(StandardGANLoss(True).generator_loss(D, v), -torch.log(sig).mean())
    torch.testing.assert_close(
        StandardGANLoss(False).generator_loss(D, v), torch.log(1 - sig).mean()
    )
    real = v.flip(0) + 0.5
    torch.testing.assert_close(
        StandardGANLoss().discriminator_loss(D, real, v),
        -torch.log(torch.sigmoid(real[:, 0])).mean() - torch.log(1 - sig).mean(),
    )
    for name in F_DIVERGENCES:
        gen = F_GENERATORS[name]
        mm, alt = FGANLoss(gen, "minimax"), FGANLoss(gen, "alternative")
        torch.testing.assert_close(
            mm.generator_loss(D, v), -mm.conjugate(mm.activation(v[:, 0])).mean()
        )
        torch.testing.assert_close(alt.generator_loss(D, v), -alt.activation(v[:, 0]).mean())
    for loss in (HingeLoss(), WGANGPLoss()):
        torch.testing.assert_close(loss.generator_loss(D, v), -v.mean())


def test_wgan_gp_penalty_linear_critics() -> None:
    """Zero for x -> <w, x> with |w| = 1; (|w| - 1)^2 exactly for other slopes."""
    g = torch.Generator().manual_seed(1)
    for shape in [(1,), (3,), (1, 8, 8)]:
        real = torch.randn(64, *shape, generator=g, dtype=torch.float64)
        fake = torch.randn(64, *shape, generator=g, dtype=torch.float64) + 2.0
        w = torch.randn(*shape, generator=g, dtype=torch.float64)
        w = w / w.norm()
        critic = lambda x, w=w: (x * w).flatten(1).sum(1)  # noqa: E731
        assert float(gradient_penalty(critic, real, fake, generator=g)) < 1e-10
        for slope in (0.5, 2.0):
            steep = lambda x, w=w, s=slope: s * (x * w).flatten(1).sum(1)  # noqa: E731
            pen = float(gradient_penalty(steep, real, fake, generator=g))
            assert pen == pytest.approx((slope - 1.0) ** 2, rel=1e-10)
            loss = WGANGPLoss(gp_weight=10.0)
            expected = float(steep(fake).mean() - steep(real).mean()) + 10 * (slope - 1) ** 2
            assert float(loss.discriminator_loss(steep, real, fake)) == pytest.approx(expected)


def test_wgan_gp_penalty_interpolates_and_is_differentiable() -> None:
    """D(x) = x^2/2 has grad x: the penalty is mean (|x_hat| - 1)^2 at x_hat = e r + (1 - e) f;
    for D_a(x) = a x it is (|a| - 1)^2 with derivative 2(|a| - 1) sign(a) in a."""
    real = torch.randn(32, 1, dtype=torch.float64)
    fake = torch.randn(32, 1, dtype=torch.float64) + 3.0
    pen = gradient_penalty(
        lambda x: 0.5 * x[:, 0] ** 2, real, fake, generator=torch.Generator().manual_seed(4)
    )
    eps = torch.rand(32, 1, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    x_hat = eps * real + (1 - eps) * fake
    torch.testing.assert_close(pen, ((x_hat[:, 0].abs() - 1) ** 2).mean())
    a = torch.tensor(-2.5, dtype=torch.float64, requires_grad=True)
    p = gradient_penalty(lambda x: a * x[:, 0], real, fake)
    (da,) = torch.autograd.grad(p, a)
    assert float(da) == pytest.approx(2 * (2.5 - 1) * -1.0, rel=1e-10)


def test_wgan_critic_value_is_w1_for_a_shift(samples) -> None:
    """N(0,1) vs N(m,1): the critic x -> -x is a Kantorovich potential, -loss = W_1 = m."""
    real, _ = samples
    m = 0.8
    fake = real.flip(0) + m  # a sample of N(m, 1), independent rows
    loss = WGANGPLoss()
    value = -float(loss.discriminator_loss(lambda x: -x[:, 0], real[:4096], fake[:4096]))
    se = math.sqrt(2.0 / 4096)
    assert abs(value - m) < 5 * se
    with pytest.raises(NotImplementedError, match="Kantorovich"):
        loss.optimal_logit(0.0)


@pytest.mark.parametrize("name", LOSSES)
def test_gradients_flow_to_generator_and_discriminator(name: str) -> None:
    torch.manual_seed(0)
    G = MLPGenerator(4, (8,), 2).double()
    D = MLPDiscriminator(2, (8,)).double()
    loss = make_loss(name)
    real = torch.randn(16, 2, dtype=torch.float64)
    z = torch.randn(16, 4, dtype=torch.float64)
    loss.discriminator_loss(D, real, G(z).detach(), generator=torch.Generator()).backward()
    for p in list(D.parameters())[: -1 if name == "wgan-gp" else None]:
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0
    assert all(p.grad is None for p in G.parameters())
    if name == "wgan-gp":
        # E_rho[v] - E_q[v] and the penalty do not see the output bias
        assert float(D.net[-1].bias.grad.abs().sum()) == 0.0
    D.zero_grad()
    loss.generator_loss(D, G(z)).backward()
    for p in G.parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0


@pytest.mark.parametrize("name", ["wgan-gp", "ns", "fgan-reverse_kl"])
def test_functional_discriminator(name: str) -> None:
    """A functional_call version of D gives the same loss, also under torch.func.grad."""
    torch.manual_seed(1)
    D = MLPDiscriminator(2, (8,)).double()
    params = {k: v.detach() for k, v in D.named_parameters()}
    real = torch.randn(16, 2, dtype=torch.float64)
    fake = torch.randn(16, 2, dtype=torch.float64) + 1
    loss = make_loss(name)

    def objective(p):
        g = torch.Generator().manual_seed(3)
        return loss.discriminator_loss(
            lambda x: functional_call(D, p, (x,)), real, fake, generator=g
        )

    grads = torch.func.grad(objective)(params)
    value = loss.discriminator_loss(D, real, fake, generator=torch.Generator().manual_seed(3))
    assert float(objective(params)) == pytest.approx(float(value.detach()), rel=1e-12)
    reference = torch.autograd.grad(value, list(D.parameters()), materialize_grads=True)
    for k, r in zip(params, reference, strict=True):
        torch.testing.assert_close(grads[k], r)


@pytest.mark.parametrize(
    ("old", "new", "old_conjugate_activation"),
    [
        ("kl", "fgan-reverse_kl", lambda v: torch.exp(v - 1.0)),
        ("reverse_kl", "fgan-kl", lambda v: v - 1.0),
        ("pearson", "fgan-reverse_chi2", lambda v: 0.25 * v**2 + v),
        ("squared_hellinger", "fgan-hellinger", torch.expm1),
    ],
)
def test_old_fgan_spellings_warn_and_keep_their_direction(old, new, old_conjugate_activation):
    """The old names estimated D(data || model): they still compute exactly that loss."""
    with pytest.warns(DeprecationWarning, match=new):
        loss = make_loss(old)
    assert loss.name == new
    v = torch.linspace(-2.0, 2.0, 9, dtype=torch.float64)[:, None]
    D = lambda x: x[:, 0]  # noqa: E731
    torch.testing.assert_close(
        loss.generator_loss(D, v), -old_conjugate_activation(v[:, 0]).mean(), rtol=0, atol=0
    )


def test_old_jsd_loss_and_fgan_names_are_errors() -> None:
    with pytest.raises(ValueError, match="'fgan-jsd'.*half the loss"):
        make_loss("jsd")
    with pytest.raises(TypeError, match=r"now called 'reverse_kl'"):
        FGANLoss("kl")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"FGenerator"):
        FGANLoss(3)  # type: ignore[arg-type]
    assert set(FGAN_LOSSES) <= set(LOSSES)
    # fgan-jsd is half the old 2 JSD loss, with the same optimal logit
    half = make_loss("fgan-jsd")
    v = torch.linspace(-2.0, 2.0, 9, dtype=torch.float64)
    torch.testing.assert_close(2 * half.activation(v), math.log(2.0) - F.softplus(-v))
    torch.testing.assert_close(2 * half.conjugate_activation(v), F.softplus(v) - math.log(2.0))
    torch.testing.assert_close(half.optimal_logit(v), v)


def test_errors() -> None:
    loss = make_loss("ns")
    D = MLPDiscriminator(2, (4,))
    x = torch.randn(5, 2)
    with pytest.raises(ValueError, match="unknown GAN loss 'gan'"):
        make_loss("gan")
    with pytest.raises(TypeError, match="does not take"):
        make_loss("ns", gp_weight=1.0)
    with pytest.raises(ValueError, match="generator_form"):
        make_loss("fgan-reverse_kl", generator_form="both")
    with pytest.raises(ValueError, match="gp_weight must be a non-negative number"):
        make_loss("wgan_gp", gp_weight=-1.0)
    with pytest.raises(ValueError, match="one logit per sample"):
        loss.discriminator_loss(lambda x: x, x, x)
    with pytest.raises(TypeError, match="D must be a callable"):
        loss.generator_loss(3, x)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="real must be a torch.Tensor"):
        loss.discriminator_loss(D, x.numpy(), x)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="same shape per sample"):
        loss.discriminator_loss(D, x, torch.randn(5, 3))
    with pytest.raises(ValueError, match="non-empty"):
        loss.generator_loss(D, torch.randn(0, 2))
    with pytest.raises(ValueError, match="same batch size"):
        gradient_penalty(D, x, torch.randn(4, 2))
    assert isinstance(make_loss("wgan_gp"), WGANGPLoss)
    assert {make_loss(n).name for n in LOSSES} == set(LOSSES)


def test_batch_logit_and_penalty_guards() -> None:
    loss = make_loss("ns")
    D = MLPDiscriminator(2, (4,))
    x = torch.randn(5, 2, generator=torch.Generator().manual_seed(0))
    with pytest.raises(TypeError, match="fake must be a floating-point tensor, got dtype"):
        loss.generator_loss(D, torch.ones(5, 2, dtype=torch.int64))
    with pytest.raises(TypeError, match="D must return a torch.Tensor of logits, got ndarray"):
        loss.discriminator_loss(lambda v: v[:, 0].numpy(), x, x)
    for center in (-0.5, math.nan, math.inf):
        with pytest.raises(ValueError, match="center must be a finite number >= 0"):
            gradient_penalty(D, x, x, center=center)
    with pytest.raises(ValueError, match=r"shard \(0, 3, 8\) does not describe the 5 rows"):
        gradient_penalty(D, x, x, shard=(0, 3, 8))
    with pytest.raises(ValueError, match=r"shard \(4, 9, 8\) does not describe the 5 rows"):
        gradient_penalty(D, x, x, shard=(4, 9, 8))


@pytest.mark.parametrize("center", [0.0, 2.5])
def test_gradient_penalty_center_away_from_one(center: float) -> None:
    """A linear critic <w, x> has |grad| = |w| everywhere: the penalty is (|w| - center)^2,
    zero exactly when |w| = center; WGANGPLoss passes its center through."""
    g = torch.Generator().manual_seed(1)
    real, fake = torch.randn(6, 2, generator=g), torch.randn(6, 2, generator=g) + 1.0
    for norm in (1.0, 2.5, 4.0):
        w = torch.tensor([0.6, 0.8]) * norm
        pen = gradient_penalty(lambda x, w=w: x @ w, real, fake, generator=g, center=center)
        assert float(pen) == pytest.approx((norm - center) ** 2, rel=1e-6, abs=1e-10)
    w = torch.tensor([1.5, 2.0])  # |w| = 2.5
    loss = WGANGPLoss(gp_weight=3.0, center=center)
    pen = loss.penalty(lambda x: x @ w, real, fake, generator=g)
    assert float(pen) == pytest.approx((2.5 - center) ** 2, rel=1e-6, abs=1e-10)
    value = loss.discriminator_loss(lambda x: x @ w, real, fake, generator=g)
    expected = float((fake @ w).mean() - (real @ w).mean()) + 3.0 * (2.5 - center) ** 2
    assert float(value) == pytest.approx(expected, rel=1e-6, abs=1e-10)


def test_optimal_logit_of_a_custom_loss_and_a_critic_without_f_gan_fields(monkeypatch) -> None:
    """A GANLoss subclass that defines only its two losses has no optimal logit; an f-GAN
    whose dual is a density-only entry of the table cannot build its critic."""

    class LeastSquares(GANLoss):
        name = "lsgan"

        def discriminator_loss(self, D, real, fake, *, generator=None, shard=None):
            return ((D(real) - 1) ** 2).mean() + (D(fake) ** 2).mean()

        def generator_loss(self, D, fake):
            return ((D(fake) - 1) ** 2).mean()

    with pytest.raises(NotImplementedError, match="the 'lsgan' loss has no pointwise optimal"):
        LeastSquares().optimal_logit(0.0)
    chi2 = F_GENERATORS["chi2"]
    density_only = FGenerator("chi2_f", f=chi2.f, df=chi2.df, d2f=chi2.d2f, dual="chi2_f")
    monkeypatch.setitem(F_GENERATORS, "chi2_f", density_only)
    with pytest.raises(ValueError, match=r"lacks the f-GAN fields \['activation', 'conjugate'"):
        FGANLoss(density_only)

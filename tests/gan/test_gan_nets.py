"""GAN networks: the maps they compute, spectral normalisation, latent priors, seeding."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from ottokit.gan.nets import (
    ACTIVATIONS,
    ConvDiscriminator8,
    ConvGenerator8,
    MLPDiscriminator,
    MLPGenerator,
    build_seeded,
    sample_latent,
)

REFERENCE_ACTIVATIONS = {
    "tanh": torch.tanh,
    "relu": torch.relu,
    "leaky_relu": lambda x: torch.where(x > 0, x, 0.2 * x),
    "elu": lambda x: torch.where(x > 0, x, torch.expm1(x)),
    "softplus": lambda x: torch.log1p(torch.exp(x)),
}


def _linears(module: torch.nn.Module) -> list[torch.nn.Linear]:
    return [m for m in module.modules() if isinstance(m, torch.nn.Linear)]


def test_seed_model_shapes_and_attributes() -> None:
    """Seed 001 §17: G 16 -> 32 -> 1, D 1 -> 32 -> 1; D returns one logit per sample."""
    G = MLPGenerator(16, (32,), 1)
    D = MLPDiscriminator(1, (32,))
    z = torch.randn(7, 16)
    x = G(z)
    assert (G.latent_dim, G.out_dim) == (16, 1)
    assert x.shape == (7, 1)
    assert D(x).shape == (7,)
    sizes = [(m.in_features, m.out_features) for m in _linears(G)]
    assert sizes == [(16, 32), (32, 1)]
    assert [(m.in_features, m.out_features) for m in _linears(D)] == [(1, 32), (32, 1)]
    # seed 003's 2-D generator: 3 x 256 leaky ReLU, 2-d latent
    G2 = MLPGenerator(2, (256, 256, 256), 2, activation="leaky_relu")
    assert [m.out_features for m in _linears(G2)] == [256, 256, 256, 2]
    assert G2(torch.rand(5, 2) * 2 - 1).shape == (5, 2)


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_mlp_computes_the_composition(activation: str) -> None:
    """G(z) = W2 act(W1 z + b1) + b2 and D likewise, against an independent reference act."""
    torch.manual_seed(0)
    G = MLPGenerator(3, (5,), 2, activation=activation).double()
    D = MLPDiscriminator(2, (4,), activation=activation).double()
    z = 2 * torch.randn(11, 3, dtype=torch.float64)
    act = REFERENCE_ACTIVATIONS[activation]
    (l1, l2), (m1, m2) = _linears(G), _linears(D)
    expected_x = act(z @ l1.weight.T + l1.bias) @ l2.weight.T + l2.bias
    torch.testing.assert_close(G(z), expected_x, rtol=1e-12, atol=1e-12)
    expected_v = (act(expected_x @ m1.weight.T + m1.bias) @ m2.weight.T + m2.bias)[:, 0]
    torch.testing.assert_close(D(expected_x), expected_v, rtol=1e-12, atol=1e-12)


def test_affine_generator_and_output_scale() -> None:
    """hidden=() is G(z) = A z + b; output_scale=s is s tanh(A z + b), inside [-s, s]."""
    torch.manual_seed(1)
    G = MLPGenerator(4, (), 3).double()
    (lin,) = _linears(G)
    z = torch.randn(6, 4, dtype=torch.float64)
    torch.testing.assert_close(G(z), z @ lin.weight.T + lin.bias)
    Gs = MLPGenerator(4, (), 3, output_scale=2.0).double()
    Gs.load_state_dict(G.state_dict())
    torch.testing.assert_close(Gs(z), 2.0 * torch.tanh(z @ lin.weight.T + lin.bias))
    assert Gs(100 * z).abs().max() <= 2.0


def test_spectral_norm_makes_the_discriminator_1_lipschitz() -> None:
    """Each normalised weight has sigma_max = 1 (power iteration), so with tanh (1-Lipschitz)
    |grad_x D| <= 1 everywhere; without normalisation the same shapes exceed it."""
    torch.manual_seed(2)
    D = MLPDiscriminator(3, (64, 64), spectral_norm=True).double()
    x = torch.randn(256, 3, dtype=torch.float64)
    for _ in range(200):  # training-mode forwards run one power iteration each
        D(x[:1])
    D.eval()
    for lin in _linears(D):
        sigma = torch.linalg.matrix_norm(lin.weight.detach(), ord=2)
        assert abs(float(sigma) - 1.0) < 1e-5
    xg = (3 * torch.randn(512, 3, dtype=torch.float64)).requires_grad_(True)
    (grad,) = torch.autograd.grad(D(xg).sum(), xg)
    assert float(grad.norm(dim=1).max()) <= 1.0 + 3e-5
    plain = build_seeded(2, lambda: MLPDiscriminator(3, (64, 64)).double())
    with torch.no_grad():
        for lin in _linears(plain):
            lin.weight.mul_(3.0)
    xg = torch.zeros(1, 3, dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(plain(xg).sum(), xg)
    assert float(grad.norm()) > 1.0


def test_unbatched_inputs_match_vmap() -> None:
    """Features on the last axis: vmap over single samples gives the batched result."""
    torch.manual_seed(3)
    G, D = MLPGenerator(5, (8,), 2), MLPDiscriminator(2, (8,))
    z = torch.randn(9, 5)
    torch.testing.assert_close(torch.func.vmap(G)(z), G(z))
    torch.testing.assert_close(torch.func.vmap(D)(G(z)), D(G(z)))
    Gc, Dc = ConvGenerator8(6, 8), ConvDiscriminator8(8, spectral_norm=False)
    zc = torch.randn(4, 6)
    torch.testing.assert_close(torch.func.vmap(Gc)(zc), Gc(zc))
    torch.testing.assert_close(torch.func.vmap(Dc)(Gc(zc)), Dc(Gc(zc)))


def test_conv_pair_shapes_range_and_gradients() -> None:
    torch.manual_seed(4)
    G, D = ConvGenerator8(32, 16), ConvDiscriminator8(16)
    x = G(10 * torch.randn(5, 32))
    assert x.shape == (5, 1, 8, 8)
    assert float(x.detach().abs().max()) <= 1.0
    v = D(x)
    assert v.shape == (5,)
    v.sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in G.parameters())
    assert all(p.grad is not None for p in D.parameters() if p.requires_grad)
    assert G(torch.randn(32)).shape == (1, 8, 8)


def test_sample_latent_distributions() -> None:
    """Normal: N(0, I); uniform: U[-1, 1]^d (variance 1/3); Kolmogorov-Smirnov at a fixed seed."""
    g = torch.Generator().manual_seed(5)
    zn = sample_latent(20000, 3, "normal", generator=g, dtype=torch.float64)
    zu = sample_latent(20000, 3, "uniform", generator=g, dtype=torch.float64)
    assert zn.shape == zu.shape == (20000, 3) and zn.dtype == torch.float64
    assert float(zu.abs().max()) <= 1.0
    assert stats.kstest(zn[:, 0].numpy(), "norm").pvalue > 1e-3
    assert stats.kstest(zu[:, 1].numpy(), "uniform", args=(-1, 2)).pvalue > 1e-3
    se = 1 / math.sqrt(20000)
    np.testing.assert_allclose(zu.var(0).numpy(), 1 / 3, atol=6 * se)
    np.testing.assert_allclose(np.cov(zn.numpy().T), np.eye(3), atol=6 * math.sqrt(2) * se)
    # reproducible from the generator alone
    a = sample_latent(4, 2, generator=torch.Generator().manual_seed(9))
    b = sample_latent(4, 2, generator=torch.Generator().manual_seed(9))
    assert torch.equal(a, b) and a.dtype == torch.get_default_dtype()


def test_build_seeded_is_reproducible_and_leaves_global_rng() -> None:
    before = torch.get_rng_state()
    a = build_seeded(7, lambda: MLPGenerator(16, (32,), 1))
    b = build_seeded(7, lambda: MLPGenerator(16, (32,), 1))
    c = build_seeded(8, lambda: MLPGenerator(16, (32,), 1))
    assert torch.equal(torch.get_rng_state(), before)
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(p, q)
    assert not torch.equal(next(a.parameters()), next(c.parameters()))


def test_errors() -> None:
    with pytest.raises(ValueError, match="activation"):
        MLPGenerator(activation="sigmoid")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="latent_dim must be a positive integer"):
        MLPGenerator(latent_dim=0)
    with pytest.raises(ValueError, match=r"hidden\[1\]"):
        MLPDiscriminator(2, (8, -1))
    with pytest.raises(TypeError, match="hidden must be a tuple"):
        MLPGenerator(hidden="32")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="output_scale"):
        MLPGenerator(output_scale=0.0)
    with pytest.raises(ValueError, match=r"shape \(n, 16\)"):
        MLPGenerator(16)(torch.randn(3, 4))
    with pytest.raises(ValueError, match=r"shape \(n, 1\)"):
        MLPDiscriminator(1)(torch.randn(3))
    with pytest.raises(ValueError, match=r"\(n, 1, 8, 8\)"):
        ConvDiscriminator8(8)(torch.randn(3, 64))
    with pytest.raises(ValueError, match="width"):
        ConvGenerator8(width=1)
    with pytest.raises(ValueError, match="prior"):
        sample_latent(3, 2, "cauchy")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="n must be a positive integer"):
        sample_latent(0, 2)
    with pytest.raises(TypeError, match="floating-point"):
        sample_latent(3, 2, dtype=torch.int64)
    with pytest.raises(TypeError, match="seed"):
        build_seeded(1.5, MLPGenerator)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: MLPGenerator(2)(np.zeros((3, 2))), "z must be a torch.Tensor, got ndarray"),
        (lambda: MLPDiscriminator(1)([[0.0], [1.0]]), "x must be a torch.Tensor, got list"),
        (lambda: ConvDiscriminator8(4)(np.zeros((2, 1, 8, 8))),
         "x must be a torch.Tensor, got ndarray"),
        (lambda: build_seeded(0, MLPGenerator(2)(torch.zeros(1, 2))),
         "factory must be a callable returning the network, got tensor"),
    ],
)
def test_networks_take_tensors_and_build_seeded_a_factory(call, match: str) -> None:
    with pytest.raises(TypeError, match=match):
        call()

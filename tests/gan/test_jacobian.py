"""Parameter layout and the structured per-sample Jacobian against torch.func (seed 001 §9.1)."""

from __future__ import annotations

import pytest
import torch
from _gan_cases import DT, latents, mlp, net, rel
from torch import nn

from ottokit.gan.jacobian import (
    ParamLayout,
    StructuredJacobian,
    UnsupportedGenerator,
    structured_support,
)
from ottokit.gan.pullback import PullbackMetric


def test_layout_matches_parameters_to_vector_and_inverts() -> None:
    gen = mlp()
    gen[0].bias.requires_grad_(False)
    lay = ParamLayout(gen)
    trainable = [p for p in gen.parameters() if p.requires_grad]
    vec = lay.flatten(dict(gen.named_parameters()))
    assert torch.equal(vec, torch.nn.utils.parameters_to_vector(trainable))
    back = lay.unflatten(vec)
    assert list(back) == ["0.weight", "2.weight", "2.bias"]
    for name, p in gen.named_parameters():
        if p.requires_grad:
            assert torch.equal(back[name], p)


@pytest.mark.parametrize("act", [nn.Tanh, nn.ReLU, nn.LeakyReLU])
@pytest.mark.parametrize("d", [1, 2])
@pytest.mark.parametrize("bias", [True, False])
def test_structured_products_equal_torch_func(act: type[nn.Module], d: int, bias: bool) -> None:
    gen = net(act, d, bias)
    z = latents(11)
    fast = PullbackMetric(gen, z, structured=True)
    ref = PullbackMetric(gen, z, structured=False)
    assert (fast.path, ref.path) == ("structured", "torch.func") and fast.d_out == d
    g = torch.Generator().manual_seed(3)
    v = torch.randn(ref.n_params, dtype=DT, generator=g)
    u = torch.randn(11 * d, dtype=DT, generator=g)
    assert rel(fast.gram(), ref.gram()) < 1e-12
    assert rel(fast.jvp(v), ref.jvp(v)) < 1e-12
    assert rel(fast.vjp(u), ref.vjp(u)) < 1e-12
    assert rel(fast.matvec(v), ref.matvec(v)) < 1e-12
    assert rel(fast.jacobian(), ref.jacobian()) < 1e-12
    assert rel(fast.outputs(), ref.outputs()) < 1e-14


def test_structured_at_other_params_and_with_frozen_parameters() -> None:
    gen = net(nn.Tanh, 2, True)
    gen[2].bias.requires_grad_(False)
    gen[0].weight.requires_grad_(False)
    z = latents(6)
    theta = (
        ParamLayout(gen).flatten({k: p for k, p in gen.named_parameters() if p.requires_grad}) + 0.3
    )  # a different point: the structured build goes through functional_call
    fast = PullbackMetric(gen, z, params=theta, structured=True)
    ref = PullbackMetric(gen, z, params=theta, structured=False)
    assert fast.path == "structured"
    assert rel(fast.gram(), ref.gram()) < 1e-12
    assert rel(fast.jacobian(), ref.jacobian()) < 1e-12
    assert rel(fast.dense(), reference_jacobian_at(gen, z, theta)) < 1e-12


def reference_jacobian_at(gen: nn.Module, z: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """J^T J / N at theta by vmap(jacrev) (the torch.func metric)."""
    return PullbackMetric(gen, z, params=theta, structured=False).dense()


def test_shared_layer_is_detected_at_build_time() -> None:
    shared = nn.Linear(4, 4).to(DT)
    gen = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), shared, nn.Tanh(), shared).to(DT)
    assert structured_support(gen) is None  # statically fine, but the layer runs twice
    with pytest.raises(ValueError, match="ran 2 times"):
        PullbackMetric(gen, latents(5), structured=True)
    assert gen[2].weight is gen[4].weight and isinstance(gen[2].weight, nn.Parameter)


class _BatchSum(nn.Module):
    """Sums the generated batch: one output for all latents, not one per latent."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = mlp()[0]

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.lin(z).sum()


class _Detour(nn.Module):
    """Runs a layer whose result is thrown away: its parameters do not reach the output."""

    def __init__(self) -> None:
        super().__init__()
        self.unused = nn.Linear(3, 4).to(DT)
        self.out = nn.Linear(3, 2).to(DT)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        self.unused(z)
        return self.out(z)


def _factors(gen: nn.Module, z: torch.Tensor) -> StructuredJacobian:
    layout = ParamLayout(gen)
    flat = layout.flatten(dict(gen.named_parameters()))
    return StructuredJacobian.from_generator(
        gen, layout.unflatten(flat), {}, z, layout, own_params=True
    )


def test_layout_guards() -> None:
    gen = mlp()
    lay = ParamLayout(gen)
    with pytest.raises(TypeError, match="generator must be a torch.nn.Module, got function"):
        ParamLayout(lambda z: z)
    with pytest.raises(ValueError, match=r"expected 4 tensors, got 3"):
        lay.flatten(list(gen.parameters())[:3])
    with pytest.raises(ValueError, match=r"expected a vector of length n_params=32, got shape"):
        lay.unflatten(torch.zeros(31, dtype=DT))
    mixed = mlp()
    mixed[2].float()
    with pytest.raises(ValueError, match="share one dtype and device.*generator.to"):
        ParamLayout(mixed)
    complex_gen = nn.Linear(3, 2)
    complex_gen.weight = nn.Parameter(torch.zeros(2, 3, dtype=torch.complex128))
    complex_gen.bias = nn.Parameter(torch.zeros(2, dtype=torch.complex128))
    with pytest.raises(TypeError, match="generator parameters must be floating point"):
        ParamLayout(complex_gen)


def test_structured_factors_refuse_what_is_not_a_plain_mlp() -> None:
    """Built directly (no structured_support screening first), the factor capture still
    refuses a batch reduction, a parameter outside nn.Linear and a layer off the output path;
    through the metric the second is a ValueError with structured=True, a fallback with auto."""
    z = latents(5)
    with pytest.raises(UnsupportedGenerator, match=r"the output is not \(N, \.\.\.\)"):
        _factors(_BatchSum(), z)
    with pytest.raises(UnsupportedGenerator, match="an nn.Linear layer does not reach the output"):
        _factors(_Detour(), z)
    gen = mlp()
    gen.register_parameter("scale", nn.Parameter(torch.ones(1, dtype=DT)))
    assert structured_support(gen) is None  # the module types are all accepted
    with pytest.raises(ValueError, match=r"parameters \['scale'\] are not nn.Linear ones"):
        PullbackMetric(gen, z, structured=True)
    auto = PullbackMetric(gen, z)
    assert auto.path == "torch.func" and "['scale']" in auto.fallback_reason
    assert auto.layout.names[0] == "scale"
    assert float(auto.dense()[0].abs().max()) == 0.0  # G does not depend on scale
    assert float(auto.dense()[1:, 1:].abs().max()) > 0.1

"""Small generators, latents and independent dense references for the pullback-metric,
solver and natural-gradient tests."""

from __future__ import annotations

import copy

import numpy as np
import scipy.linalg
import torch
from torch import nn

from ottokit.gan.natural_gradient import NaturalGradient

DT = torch.float64


def mlp(k: int = 3, h: int = 5, d: int = 2, seed: int = 0) -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return nn.Sequential(nn.Linear(k, h), nn.Tanh(), nn.Linear(h, d)).to(DT)


def latents(n: int, k: int = 3, seed: int = 1) -> torch.Tensor:
    return torch.randn(n, k, dtype=DT, generator=torch.Generator().manual_seed(seed))


class Reshaped(nn.Module):
    """Output of shape (N, 2, 2): checks that outputs of any shape are flattened."""

    def __init__(self) -> None:
        super().__init__()
        self.net = mlp(3, 4, 4, seed=3)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).reshape(-1, 2, 2)


def flat_params(m: nn.Module) -> torch.Tensor:
    return torch.nn.utils.parameters_to_vector(m.parameters()).detach().clone()


def sq_loss(gen: nn.Module, z: torch.Tensor) -> torch.Tensor:
    """A smooth loss of the generated points: mean |G(z) - c|^2 + mean sin(G(z))."""
    x = gen(z).reshape(z.shape[0], -1)
    return ((x - 0.7) ** 2).sum(1).mean() + torch.sin(3 * x).mean()


def reference_jacobian(gen: nn.Module, z: torch.Tensor) -> np.ndarray:
    """(N d_out, n) Jacobian through torch.autograd.functional.jacobian (another code path)."""
    theta0 = flat_params(gen)
    probe = copy.deepcopy(gen)

    def f(theta: torch.Tensor) -> torch.Tensor:
        out, i = [], 0
        params = {}
        for name, p in probe.named_parameters():
            params[name] = theta[i : i + p.numel()].view_as(p)
            i += p.numel()
        out = torch.func.functional_call(probe, params, (z,))
        return out.reshape(-1)

    return torch.autograd.functional.jacobian(f, theta0).numpy()


def reference_step(gen: nn.Module, z: torch.Tensor, lr: float, lam: float) -> np.ndarray:
    """-lr (g_hat + lam I)^{-1} grad J by a dense SciPy solve."""
    jac = reference_jacobian(gen, z)
    g_hat = jac.T @ jac / z.shape[0]
    probe = copy.deepcopy(gen)
    probe.zero_grad()
    sq_loss(probe, z).backward()
    grad = torch.nn.utils.parameters_to_vector([p.grad for p in probe.parameters()]).numpy()
    return -lr * scipy.linalg.solve(g_hat + lam * np.eye(len(grad)), grad, assume_a="pos")


def run_steps(opt: NaturalGradient, gen: nn.Module, z: torch.Tensor, steps: int) -> None:
    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = sq_loss(gen, z)
        loss.backward()
        return loss

    for _ in range(steps):
        opt.set_latents(z)
        opt.step(closure)


def affine_closed_form(
    weight: torch.Tensor, second: torch.Tensor, mean: torch.Tensor
) -> torch.Tensor:
    """E[J^T J] for x = A z + b, theta = (vec_rowmajor(A), b):
    J_A = I_d (x) z^T, J_b = I_d, so g = [[I (x) E zz^T, I (x) E z], [I (x) E z^T, I]]."""
    d = weight.shape[0]
    eye = torch.eye(d, dtype=DT)
    top = torch.cat([torch.kron(eye, second), torch.kron(eye, mean[:, None])], 1)
    bottom = torch.cat([torch.kron(eye, mean[None, :]), eye], 1)
    return torch.cat([top, bottom], 0)


def net(act: type[nn.Module], d: int, bias: bool, seed: int = 0) -> nn.Sequential:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return nn.Sequential(
            nn.Linear(3, 5, bias=bias), act(), nn.Linear(5, 4, bias=bias), act(),
            nn.Linear(4, d, bias=bias),
        ).to(DT)  # fmt: skip


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())

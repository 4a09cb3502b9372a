"""DOT, DRS, MH-GAN and DDLS cases run with ``distributed=True`` on several ranks and once in
a single process: the gloo ranks of ``test_distributed_eval.py`` and the thread ranks of
``dot/test_dot_thread_ranks.py`` run the same cases and compare them the same way."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest
import torch

from ottokit.dot import ddls, dot_latent, dot_target, drs, effective_lipschitz, mh_gan
from ottokit.priors import Prior

F64 = torch.float64
RTOL = 1e-12
N = 11  # odd: shares of 6 and 5 rows
PRIOR = Prior("normal", (3,))
UNIFORM = Prior("uniform", (3,))
METHODS = (
    "dot_target", "naive_target", "dot_latent", "dot_latent_uniform", "naive_latent",
    "drs", "drs_exact", "mh_gan", "ddls_mala", "ddls_uniform",
)  # fmt: skip


def message(fn: Callable[[], object]) -> str:
    """The ValueError ``fn`` raises, or "" if it raises none."""
    try:
        fn()
    except ValueError as err:
        return str(err)
    return ""


def max_abs(t: torch.Tensor) -> float:
    return float(t.abs().max()) if t.numel() else 0.0


def nets() -> tuple[torch.nn.Module, torch.nn.Module]:
    """A small float64 generator (3 -> 2) and critic (2 -> 1) with fixed weights."""
    g = torch.Generator().manual_seed(2)
    out = []
    for d_in, d_out in ((3, 2), (2, 1)):
        net = torch.nn.Sequential(
            torch.nn.Linear(d_in, 16), torch.nn.Tanh(), torch.nn.Linear(16, d_out)
        ).to(F64)
        with torch.no_grad():
            for p in net.parameters():
                p.copy_(0.7 * torch.randn(p.shape, generator=g, dtype=F64))
        out.append(net)
    return out[0], out[1]


def dot_runs(distributed: bool, methods: tuple[str, ...] = METHODS) -> dict:
    """K, k and the ``methods`` of :data:`METHODS` on one fixed problem of N samples."""
    G, D = nets()
    g = torch.Generator().manual_seed(3)
    z0 = torch.randn(N, 3, generator=g, dtype=F64)
    zu = 2 * torch.rand(N, 3, generator=g, dtype=F64) - 1
    with torch.no_grad():
        y0 = G(z0) + 0.1 * torch.randn(N, 2, generator=g, dtype=F64)
    x_real = torch.randn(N, 2, generator=g, dtype=F64)
    kw = {"distributed": distributed}
    K = effective_lipschitz(D, G, PRIOR, 20, "target", seed=7, **kw)
    k = effective_lipschitz(D, G, PRIOR, 20, "latent", seed=7, **kw)
    cases = {
        "dot_target": lambda: dot_target(D, y0, K, 6, 0.05, clip=2.0, **kw),
        "naive_target": lambda: dot_target(D, y0, K, 6, 0.05, mode="naive", **kw),
        "dot_latent": lambda: dot_latent(D, G, z0, k, 6, 0.05, PRIOR, **kw),
        "dot_latent_uniform": lambda: dot_latent(D, G, zu, k, 6, 0.05, UNIFORM,
                                                 optimizer="sgd", **kw),
        "naive_latent": lambda: dot_latent(D, G, z0, k, 6, 0.05, PRIOR, mode="naive", **kw),
        "drs": lambda: drs(D, G, PRIOR, 12, n_pilot=40, batch_size=16, seed=3, **kw),
        "drs_exact": lambda: drs(D, G, PRIOR, 5, mode="exact", n_pilot=20, batch_size=7,
                                 seed=4, **kw),
        "mh_gan": lambda: mh_gan(D, G, PRIOR, x_real, 8, seed=4, **kw),
        "ddls_mala": lambda: ddls(D, G, z0, 0.05, 6, PRIOR, mala=True, seed=5, **kw),
        "ddls_uniform": lambda: ddls(D, G, zu, 0.05, 6, UNIFORM, seed=6, **kw),
    }
    return {"K": K, "k": k, **{m: cases[m]() for m in methods}}


# each refusal case, and the argument names its message must start with
EXPECTED_REFUSALS = {
    "other_z0": "z0", "other_K": "K", "other_target_args": "y0, steps, lr",
    "other_latent_args": "z0, K, steps, lr", "other_ddls_args": "step_size, n_steps",
    "other_x_real": "x_real", "other_n_proposals": "n_proposals",
}  # fmt: skip
REFUSALS = tuple(EXPECTED_REFUSALS)


def differing_arguments(r: int, which: tuple[str, ...] = REFUSALS) -> dict:
    """On rank ``r``, calls whose arguments differ between the ranks: each refusal's message."""
    G, D = nets()
    x_real = torch.zeros(N, 2, dtype=F64)
    zeros_y, zeros_z = torch.zeros(N, 2, dtype=F64), torch.zeros(N, 3, dtype=F64)
    calls = {
        "other_z0": lambda: ddls(D, G, zeros_z + r, 0.1, 3, seed=1, distributed=True),
        "other_K": lambda: dot_target(D, zeros_y, 1.0 + r, 2, distributed=True),
        "other_target_args": lambda: dot_target(D, zeros_y + r, 1.0, 2 + r, 0.1 + r,
                                                distributed=True),
        "other_latent_args": lambda: dot_latent(D, G, zeros_z + 0.1 * r, 1.0 + r, 2 + r,
                                                0.1 + r, distributed=True),
        "other_ddls_args": lambda: ddls(D, G, zeros_z, 0.1 + r, 2 + r, seed=1,
                                        distributed=True),
        "other_x_real": lambda: mh_gan(D, G, PRIOR, x_real + r, 2, seed=1, distributed=True),
        "other_n_proposals": lambda: mh_gan(D, G, PRIOR, x_real, 2 + r, seed=1,
                                            distributed=True),
    }
    return {key: message(calls[key]) for key in which}


def assert_differing_arguments_refused(out: dict) -> None:
    """Every rank names exactly the arguments that differ."""
    for key, message_ in out.items():
        assert message_.startswith(EXPECTED_REFUSALS[key] + " must be the same on every rank"), key


def assert_same_result(got: object, ref: object) -> None:
    """A rank's result equals the single-process one, field by field (1e-12 relative for
    floating tensors, where per-sample arithmetic on fewer rows may differ in the last bits)."""
    for f in dataclasses.fields(ref):
        a, b = getattr(got, f.name), getattr(ref, f.name)
        if f.name == "wall_time":
            assert a > 0
        elif isinstance(b, torch.Tensor) and b.is_floating_point():
            assert a.shape == b.shape, f.name
            fin = torch.isfinite(b)  # MH-GAN latents are NaN where a chain never moved
            assert torch.equal(fin, torch.isfinite(a)), f.name
            assert max_abs((a - b)[fin]) <= RTOL * max_abs(b[fin]), f.name
        elif isinstance(b, torch.Tensor):
            assert torch.equal(a, b), f.name
        elif isinstance(b, float):
            assert a == pytest.approx(b, rel=RTOL, abs=0.0), f.name
        else:
            assert a == b, f.name
    # a sampler that moved nothing would pass the comparison trivially
    assert ref.samples.shape[0] > 0 and not torch.equal(ref.samples, ref.samples[:1])

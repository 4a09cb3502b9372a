"""Pullback metric and natural gradient (seed 001 Def. 8.1, §9.1, Prop. 8.3, 11.3, 16.1, Alg. 2)."""

from __future__ import annotations

import copy
import io

import numpy as np
import pytest
import scipy.linalg
import torch
from torch import nn

from ottokit.gan.natural_gradient import (
    NaturalGradient,
    NonFiniteError,
    ParamLayout,
    PullbackMetric,
    SingularMetricError,
    metric_concentration,
    structured_support,
)

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


# --------------------------------------------------------------------------- metric


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


def test_affine_generator_metric_is_kronecker_of_sample_moments() -> None:
    gen = nn.Linear(3, 2).to(DT)
    z = latents(50) + torch.tensor([0.5, -1.0, 2.0], dtype=DT)
    g_hat = PullbackMetric(gen, z).dense()
    expected = affine_closed_form(gen.weight, z.T @ z / 50, z.mean(0))
    torch.testing.assert_close(g_hat, expected, rtol=1e-13, atol=1e-13)


def test_affine_metric_converges_to_population_closed_form() -> None:
    gen = nn.Linear(3, 2).to(DT)
    mu = torch.tensor([0.5, -1.0, 2.0], dtype=DT)
    g = affine_closed_form(gen.weight, torch.eye(3, dtype=DT) + torch.outer(mu, mu), mu)
    errs = []
    for n in (100, 10_000):
        g_hat = PullbackMetric(gen, latents(n, seed=7) + mu).dense()
        errs.append(
            float(torch.linalg.matrix_norm(g_hat - g, ord=2) / torch.linalg.matrix_norm(g, ord=2))
        )
    assert errs[1] < 0.05 and errs[1] < errs[0] / 4  # about sqrt(100) = 10 times smaller


@pytest.mark.parametrize("make", [lambda: mlp(), Reshaped])
def test_dense_matvec_jacobian_agree(make) -> None:
    gen = make()
    z = latents(9)
    m = PullbackMetric(gen, z)
    jac = m.jacobian()
    assert jac.shape == (9 * m.d_out, m.n_params)
    np.testing.assert_allclose(jac.numpy(), reference_jacobian(gen, z), rtol=1e-12, atol=1e-13)
    dense = m.dense()
    torch.testing.assert_close(dense, jac.T @ jac / 9, rtol=1e-13, atol=1e-14)
    torch.testing.assert_close(m.gram(), jac @ jac.T, rtol=1e-13, atol=1e-14)
    v = torch.randn(m.n_params, dtype=DT, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(m.matvec(v), dense @ v, rtol=1e-12, atol=1e-13)


def test_jvp_vjp_against_finite_differences_and_adjointness() -> None:
    gen = Reshaped()
    z = latents(6)
    m = PullbackMetric(gen, z)
    gen_ = torch.Generator().manual_seed(5)
    v = torch.randn(m.n_params, dtype=DT, generator=gen_)
    u = torch.randn(6 * m.d_out, dtype=DT, generator=gen_)
    h = 1e-6

    def out_at(theta: torch.Tensor) -> torch.Tensor:
        return PullbackMetric(gen, z, params=theta).outputs()

    fd = (out_at(m.theta + h * v) - out_at(m.theta - h * v)) / (2 * h)
    torch.testing.assert_close(m.jvp(v), fd, rtol=1e-7, atol=1e-8)
    # <u, J v> = <J^T u, v>, and J^T u by finite differences of theta -> <u, G_theta>
    assert abs(float(u @ m.jvp(v) - m.vjp(u) @ v)) < 1e-12
    jtu = m.vjp(u)
    for i in (0, 7, m.n_params - 1):
        e = torch.zeros(m.n_params, dtype=DT)
        e[i] = h
        fd_i = float(u @ (out_at(m.theta + e) - out_at(m.theta - e))) / (2 * h)
        assert abs(fd_i - float(jtu[i])) < 1e-7


def test_metric_is_a_snapshot_and_float64() -> None:
    gen = mlp()
    z = latents(5).float()  # cast to the module's float64
    m = PullbackMetric(gen, z)
    assert m.dense().dtype == DT
    before = m.dense().clone()
    with torch.no_grad():
        for p in gen.parameters():
            p.add_(1.0)
    torch.testing.assert_close(m.dense(), before, rtol=0, atol=0)


# --------------------------------------------------------------------------- optimiser


@pytest.mark.parametrize("solver", ["cholesky", "cg", "woodbury", "auto"])
def test_step_matches_dense_scipy_solve(solver: str) -> None:
    gen = mlp()
    z = latents(8)
    expected = reference_step(gen, z, lr=0.3, lam=1e-2)
    theta0 = flat_params(gen)
    opt = NaturalGradient(
        gen.parameters(), gen, lr=0.3, damping=1e-2, solver=solver, cg_iters=200, cg_tol=1e-14
    )
    run_steps(opt, gen, z, 1)
    np.testing.assert_allclose((flat_params(gen) - theta0).numpy(), expected, rtol=1e-8, atol=1e-11)
    # auto on the structured path: Woodbury, since N d_out = 16 rows < 32 parameters
    assert opt.last_info["solver"] == (solver if solver != "auto" else "woodbury")
    assert opt.last_info["jacobian_path"] == "structured"
    if solver == "cg":
        assert opt.last_info["cg_residual"] < 1e-12


def test_woodbury_equals_cholesky_and_subsampling_uses_given_latents() -> None:
    z = latents(40)
    moves = {}
    for solver in ("cholesky", "woodbury"):
        gen = mlp()
        theta0 = flat_params(gen)
        opt = NaturalGradient(
            gen.parameters(), gen, lr=0.5, damping=1e-3, solver=solver, metric_samples=6, seed=4
        )
        run_steps(opt, gen, z, 1)
        moves[solver] = flat_params(gen) - theta0
        used = opt.state["natural_gradient"]["metric_latents"]
        assert used.shape == (6, 3)
        assert all(any(torch.equal(r, s) for s in z) for r in used)  # a subsample of z
        assert opt.last_info["metric_samples"] == 6
    torch.testing.assert_close(moves["woodbury"], moves["cholesky"], rtol=1e-10, atol=1e-13)


def test_momentum_follows_prop_16_1_recursion() -> None:
    z = latents(10)
    lr, lam, beta = 0.2, 1e-2, 0.6
    gen = mlp()
    ref = copy.deepcopy(gen)
    opt = NaturalGradient(gen.parameters(), gen, lr=lr, damping=lam, momentum=beta)
    run_steps(opt, gen, z, 4)
    # theta_k = theta_{k-1} + beta (theta_{k-1} - theta_{k-2}) - lr (g + lam)^{-1} grad J
    prev = cur = flat_params(ref)
    for _ in range(4):
        nxt = cur + beta * (cur - prev) + torch.as_tensor(reference_step(ref, z, lr, lam))
        torch.nn.utils.vector_to_parameters(nxt, ref.parameters())
        prev, cur = cur, nxt
    torch.testing.assert_close(flat_params(gen), cur, rtol=1e-10, atol=1e-12)
    plain = mlp()
    run_steps(NaturalGradient(plain.parameters(), plain, lr=lr, damping=lam), plain, z, 4)
    assert float((flat_params(plain) - cur).abs().max()) > 1e-3  # momentum did something


def test_metric_reuse_uses_the_old_metric_between_refreshes() -> None:
    z = latents(10)
    gen = mlp()
    metric_point = copy.deepcopy(gen)
    opt = NaturalGradient(gen.parameters(), gen, lr=0.2, damping=1e-2, metric_every=2)
    run_steps(opt, gen, z, 1)
    refreshed = [opt.last_info["metric_refreshed"]]
    theta1 = flat_params(gen)
    run_steps(opt, gen, z, 1)
    refreshed.append(opt.last_info["metric_refreshed"])
    # step 1 solves with g_hat(theta_0) but the gradient at theta_1
    jac = reference_jacobian(metric_point, z)
    probe = copy.deepcopy(gen)
    torch.nn.utils.vector_to_parameters(theta1, probe.parameters())
    sq_loss(probe, z).backward()
    grad = torch.nn.utils.parameters_to_vector([p.grad for p in probe.parameters()]).numpy()
    step = -0.2 * np.linalg.solve(jac.T @ jac / 10 + 1e-2 * np.eye(len(grad)), grad)
    np.testing.assert_allclose((flat_params(gen) - theta1).numpy(), step, rtol=1e-8, atol=1e-12)
    run_steps(opt, gen, z, 1)
    refreshed.append(opt.last_info["metric_refreshed"])
    assert refreshed == [True, False, True]


class LinearReparam(nn.Module):
    """The MLP with theta = M theta_tilde: one flat parameter theta_tilde."""

    def __init__(self, base: nn.Module, mat: torch.Tensor) -> None:
        super().__init__()
        self.base = base
        self.register_buffer("mat", mat)
        theta = flat_params(base)
        self.theta_tilde = nn.Parameter(torch.linalg.solve(mat, theta))
        for p in base.parameters():
            p.requires_grad_(False)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        lay = _FrozenLayout(self.base)
        return torch.func.functional_call(
            self.base, lay.unflatten(self.mat @ self.theta_tilde), (z,)
        )


class _FrozenLayout:
    """Name -> view split of a flat vector over all parameters of a module."""

    def __init__(self, module: nn.Module) -> None:
        self.items = [(k, p.shape, p.numel()) for k, p in module.named_parameters()]

    def unflatten(self, vec: torch.Tensor) -> dict[str, torch.Tensor]:
        out, i = {}, 0
        for k, s, n in self.items:
            out[k] = vec[i : i + n].view(s)
            i += n
        return out


@pytest.mark.parametrize("natural", [True, False])
def test_reparametrisation_invariance_prop_11_3(natural: bool) -> None:
    z = latents(30)
    gen = mlp(3, 3, 2)  # n = 12 + 8 = 20 parameters, N d_out = 60 rows: g_hat invertible
    n = sum(p.numel() for p in gen.parameters())
    rng = np.random.default_rng(0)
    mat = torch.as_tensor(np.eye(n) + 0.5 * rng.standard_normal((n, n)), dtype=DT)
    rep = LinearReparam(copy.deepcopy(gen), mat)
    lr = 0.1
    if natural:
        theta0, tilde0 = flat_params(gen), rep.theta_tilde.detach().clone()
        run_steps(NaturalGradient(gen.parameters(), gen, lr=lr, damping=0.0), gen, z, 1)
        run_steps(NaturalGradient([rep.theta_tilde], rep, lr=lr, damping=0.0), rep, z, 1)
    else:
        theta0, tilde0 = flat_params(gen), rep.theta_tilde.detach().clone()
        for model in (gen, rep):
            opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=lr)
            opt.zero_grad()
            sq_loss(model, z).backward()
            opt.step()
    move = flat_params(gen) - theta0
    mapped = mat @ (rep.theta_tilde.detach() - tilde0)
    rel = float((mapped - move).norm() / move.norm())
    if natural:
        assert rel < 1e-8
    else:
        assert rel > 0.1  # plain gradient descent depends on the coordinates


def test_singular_metric_with_zero_damping() -> None:
    gen = mlp()  # 32 parameters
    z = latents(4)  # 8 rows < 32: g_hat has a null space
    opt = NaturalGradient(gen.parameters(), gen, lr=0.1, damping=0.0, solver="cholesky")
    with pytest.raises(SingularMetricError, match="singular.*damping > 0"):
        run_steps(opt, gen, z, 1)


def test_state_dict_round_trip_is_bit_identical() -> None:
    z_all = latents(64)

    def make(gen: nn.Module) -> NaturalGradient:
        return NaturalGradient(
            gen.parameters(), gen, lr=0.2, damping=1e-2, momentum=0.5,
            metric_every=3, metric_samples=12, solver="woodbury",
        )  # fmt: skip

    def run(opt: NaturalGradient, gen: nn.Module, k0: int, k1: int) -> None:
        for k in range(k0, k1):
            z = z_all[(8 * k) % 48 : (8 * k) % 48 + 16]
            run_steps(opt, gen, z, 1)

    gen_a = mlp()
    opt_a = make(gen_a)
    run(opt_a, gen_a, 0, 7)

    gen_b = mlp()
    opt_b = make(gen_b)
    run(opt_b, gen_b, 0, 4)  # mid-cycle: the factor from step 3 must be rebuilt
    buf = io.BytesIO()
    torch.save({"g": gen_b.state_dict(), "o": opt_b.state_dict()}, buf)
    buf.seek(0)
    saved = torch.load(buf, weights_only=True)
    gen_c = mlp(seed=9)
    gen_c.load_state_dict(saved["g"])
    opt_c = make(gen_c)
    opt_c.load_state_dict(saved["o"])
    run(opt_c, gen_c, 4, 7)
    assert torch.equal(flat_params(gen_c), flat_params(gen_a))
    assert opt_c.state_dict()["state"]["natural_gradient"]["step"] == 7


def test_safeguard_shrinks_then_rejects_absurd_steps() -> None:
    z = latents(10)
    gen = mlp()
    j0 = float(sq_loss(gen, z))
    opt = NaturalGradient(
        gen.parameters(), gen, lr=1e4, damping=1e-2, safeguard=True, max_shrinks=40
    )
    run_steps(opt, gen, z, 1)
    info = opt.last_info
    assert info["accepted"] and info["shrinks"] > 5 and info["lr_used"] < 1e4 / 2**5
    assert float(sq_loss(gen, z)) <= j0 - 1e-4 * info["lr_used"] * info["grad_dot_direction"]
    assert opt.state["natural_gradient"]["shrinks"] == info["shrinks"]

    gen2 = mlp()
    theta0 = flat_params(gen2)
    opt2 = NaturalGradient(
        gen2.parameters(), gen2, lr=1e6, damping=1e-2, safeguard=True, max_shrinks=2
    )
    run_steps(opt2, gen2, z, 1)
    assert not opt2.last_info["accepted"] and opt2.last_info["rejected"]
    assert opt2.state["natural_gradient"]["rejections"] == 1
    assert torch.equal(flat_params(gen2), theta0)


def test_latent_sampler_and_cg_warm_start() -> None:
    z = latents(20)
    residuals = {}
    for warm in (False, True):
        gen = mlp()
        opt = NaturalGradient(
            gen.parameters(), gen, lr=1e-4, solver="cg", cg_iters=3, cg_warm_start=warm,
            latent_sampler=lambda n: z[:n], metric_samples=20, metric_every=100,
        )  # fmt: skip
        for _ in range(10):
            opt.zero_grad()
            sq_loss(gen, z).backward()
            opt.step()
        assert opt.last_info["metric_samples"] == 20 and opt.last_info["solver"] == "cg"
        residuals[warm] = opt.last_info["cg_residual"]
    # with a slowly moving gradient (small lr, fixed metric) the previous direction is a good
    # start: 10 warm-started runs of 3 iterations act like one longer CG run
    assert residuals[True] < 0.5 * residuals[False]


def test_concentration_slope_is_minus_one_half() -> None:
    gen = nn.Linear(2, 1).to(DT)
    mu = torch.tensor([1.0, -0.5], dtype=DT)
    g = affine_closed_form(gen.weight, torch.eye(2, dtype=DT) + torch.outer(mu, mu), mu)
    res = metric_concentration(
        gen,
        lambda n: torch.randn(n, 2, dtype=DT) + mu,
        sizes=[16, 64, 256, 1024, 4096],
        repeats=15,
        seed=3,
        damping=1e-2,
        reference_metric=g,
    )
    assert -0.65 <= res.metric_slope <= -0.35
    assert -0.65 <= res.vector_slope <= -0.35
    # a small MLP with a sampled reference
    res2 = metric_concentration(
        mlp(2, 3, 1), lambda n: torch.randn(n, 2, dtype=DT), sizes=[16, 64, 256, 1024],
        repeats=10, reference_samples=40_000, seed=4, damping=1e-2,
    )  # fmt: skip
    assert -0.65 <= res2.metric_slope <= -0.35


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"lr": 0.0}, "lr must be"),
        ({"damping": -1.0}, "damping must be >= 0"),
        ({"momentum": 1.0}, r"momentum must lie in \[0, 1\)"),
        ({"momentum": -0.1}, "momentum must lie"),
        ({"solver": "lbfgs"}, "unknown solver"),
        ({"solver": "woodbury", "damping": 0.0}, "woodbury solver needs damping > 0"),
        ({"metric_every": 0}, "metric_every must be"),
        ({"cg_iters": 0}, "cg_iters must be"),
    ],
)
def test_invalid_hyperparameters(kwargs: dict, match: str) -> None:
    gen = mlp()
    with pytest.raises(ValueError, match=match):
        NaturalGradient(gen.parameters(), gen, **kwargs)


def test_params_must_be_the_generators() -> None:
    gen = mlp()
    other = mlp()
    with pytest.raises(ValueError, match="exactly the generator's trainable parameters"):
        NaturalGradient(list(gen.parameters())[:2], gen)
    with pytest.raises(ValueError, match="exactly the generator's trainable parameters"):
        NaturalGradient(other.parameters(), gen)
    frozen = mlp()
    frozen[0].weight.requires_grad_(False)
    with pytest.raises(ValueError, match="requires_grad=False"):
        NaturalGradient(frozen.parameters(), frozen)
    for p in frozen.parameters():
        p.requires_grad_(False)
    with pytest.raises(ValueError, match="no parameter with requires_grad=True"):
        NaturalGradient([], frozen)
    with pytest.raises(ValueError, match="single parameter group"):
        NaturalGradient([{"params": [gen[0].weight]}, {"params": [gen[0].bias]}], gen)


def test_step_errors() -> None:
    gen = mlp()
    z = latents(5)
    opt = NaturalGradient(gen.parameters(), gen)
    opt.set_latents(z)
    with pytest.raises(RuntimeError, match="has no gradient"):
        opt.step()
    with pytest.raises(ValueError, match="scalar loss"):
        opt.step(lambda: gen(z).sum(0))
    with pytest.raises(TypeError, match="scalar tensor"):
        opt.step(lambda: 1.0)

    def nan_closure() -> torch.Tensor:
        opt.zero_grad()
        loss = sq_loss(gen, z) * float("nan")
        loss.backward()
        return loss

    with pytest.raises(NonFiniteError, match="loss is not finite"):
        opt.step(nan_closure)
    for p in gen.parameters():
        p.grad = torch.full_like(p, float("inf"))
    with pytest.raises(NonFiniteError, match="gradient is not finite"):
        opt.step()
    fresh = NaturalGradient(gen.parameters(), gen)
    fresh.zero_grad()
    sq_loss(gen, z).backward()
    with pytest.raises(RuntimeError, match="set_latents"):
        fresh.step()
    with pytest.raises(ValueError, match="needs a closure"):
        NaturalGradient(gen.parameters(), gen, safeguard=True).step()
    with pytest.raises(ValueError, match="v must be a tensor"):
        PullbackMetric(gen, z).matvec(torch.zeros(3, dtype=DT))
    with pytest.raises(ValueError, match="structured must be"):
        PullbackMetric(gen, z, structured="yes")
    with pytest.raises(ValueError, match="structured must be"):
        NaturalGradient(gen.parameters(), gen, structured=1.0)
    with pytest.raises(TypeError, match="project must be"):
        NaturalGradient(gen.parameters(), gen, project="range")
    with pytest.raises(ValueError, match="structured=True but.*Reshaped"):
        PullbackMetric(Reshaped(), z, structured=True)


# --------------------------------------------------------------------------- structured path


def net(act: type[nn.Module], d: int, bias: bool, seed: int = 0) -> nn.Sequential:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return nn.Sequential(
            nn.Linear(3, 5, bias=bias), act(), nn.Linear(5, 4, bias=bias), act(),
            nn.Linear(4, d, bias=bias),
        ).to(DT)  # fmt: skip


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


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


class Square(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * x


def unsupported_nets() -> dict[str, nn.Module]:
    base = net(nn.Tanh, 2, True)
    bn = nn.Sequential(base[0], nn.BatchNorm1d(5), nn.Tanh(), base[2]).to(DT).eval()
    with torch.no_grad():
        bn[1].running_mean.uniform_(-0.5, 0.5)
    return {
        "BatchNorm1d": bn,
        "Square": nn.Sequential(nn.Linear(3, 4), Square(), nn.Linear(4, 2)).to(DT),
        "in-place": nn.Sequential(nn.Linear(3, 4), nn.ReLU(inplace=True), nn.Linear(4, 2)).to(DT),
    }


@pytest.mark.parametrize("which", ["BatchNorm1d", "Square", "in-place"])
def test_unsupported_modules_fall_back_and_match(which: str) -> None:
    gen = unsupported_nets()[which]
    z = latents(7)
    metric = PullbackMetric(gen, z)
    assert metric.path == "torch.func" and which in metric.fallback_reason
    assert structured_support(gen) == metric.fallback_reason
    expected = reference_step(gen, z, lr=0.3, lam=1e-2)
    theta0 = flat_params(gen)
    opt = NaturalGradient(gen.parameters(), gen, lr=0.3, damping=1e-2, solver="woodbury")
    run_steps(opt, gen, z, 1)
    np.testing.assert_allclose((flat_params(gen) - theta0).numpy(), expected, rtol=1e-8, atol=1e-11)
    assert opt.last_info["jacobian_path"] == "torch.func"
    assert opt.last_info["fallback_reason"] == metric.fallback_reason


def test_shared_layer_is_detected_at_build_time() -> None:
    shared = nn.Linear(4, 4).to(DT)
    gen = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), shared, nn.Tanh(), shared).to(DT)
    assert structured_support(gen) is None  # statically fine, but the layer runs twice
    with pytest.raises(ValueError, match="ran 2 times"):
        PullbackMetric(gen, latents(5), structured=True)
    assert gen[2].weight is gen[4].weight and isinstance(gen[2].weight, nn.Parameter)


@pytest.mark.parametrize("solver", ["cholesky", "cg", "woodbury"])
@pytest.mark.parametrize("d", [1, 2])
def test_structured_step_matches_dense_reference(solver: str, d: int) -> None:
    gen = net(nn.ReLU, d, True)
    z = latents(9)
    expected = reference_step(gen, z, lr=0.3, lam=1e-2)
    theta0 = flat_params(gen)
    opt = NaturalGradient(
        gen.parameters(), gen, lr=0.3, damping=1e-2, solver=solver, cg_iters=300,
        cg_tol=1e-14, structured=True,
    )  # fmt: skip
    run_steps(opt, gen, z, 1)
    np.testing.assert_allclose((flat_params(gen) - theta0).numpy(), expected, rtol=1e-8, atol=1e-11)
    assert opt.last_info["jacobian_path"] == "structured"


def test_gradient_on_metric_latents_lies_in_row_space_of_j() -> None:
    """grad (1/N) sum l(G(z_i)) = J^T r / N: zero component outside range(J^T) on the metric's
    own latents, a large one for another batch (what subsampling/reuse amplify by 1/lambda)."""
    gen = net(nn.Tanh, 1, True)  # 51 parameters > N d_out = 12 rows
    z, other = latents(12), latents(12, seed=8)
    jac = PullbackMetric(gen, z).jacobian().numpy()
    proj = jac.T @ np.linalg.pinv(jac @ jac.T) @ jac  # orthogonal projector onto range(J^T)
    for batch, inside in ((z, True), (other, False)):
        probe = copy.deepcopy(gen)
        sq_loss(probe, batch).backward()
        grad = torch.nn.utils.parameters_to_vector([p.grad for p in probe.parameters()]).numpy()
        out = np.linalg.norm(grad - proj @ grad) / np.linalg.norm(grad)
        assert (out < 1e-9) if inside else (out > 0.01)


@pytest.mark.parametrize("solver", ["cholesky", "cg", "woodbury"])
@pytest.mark.parametrize("structured", [True, False])
def test_projected_step_is_damped_projection(solver: str, structured: bool) -> None:
    """project=True: v = (g_hat + lam)^{-1} g_hat (g_hat + lam)^{-1} grad, with the metric of a
    subsample; v vanishes on the null space of g_hat instead of being grad / lam."""
    gen = net(nn.Tanh, 2, True)
    z = latents(20)
    lam, lr = 1e-2, 0.3
    opt = NaturalGradient(
        gen.parameters(), gen, lr=lr, damping=lam, solver=solver, cg_iters=400, cg_tol=1e-15,
        metric_samples=5, project=True, structured=structured, seed=2,
    )  # fmt: skip
    theta0 = flat_params(gen)
    probe = copy.deepcopy(gen)
    sq_loss(probe, z).backward()
    grad = torch.nn.utils.parameters_to_vector([p.grad for p in probe.parameters()]).numpy()
    run_steps(opt, gen, z, 1)
    used = opt.state["natural_gradient"]["metric_latents"]
    jac = reference_jacobian(probe, used)
    g_hat = jac.T @ jac / 5
    a = g_hat + lam * np.eye(len(grad))
    expected = -lr * np.linalg.solve(a, g_hat @ np.linalg.solve(a, grad))
    np.testing.assert_allclose((flat_params(gen) - theta0).numpy(), expected, rtol=1e-7, atol=1e-11)
    assert opt.last_info["projected"] and opt.last_info["jacobian_path"] == (
        "structured" if structured else "torch.func"
    )
    # unprojected, the null-space part of grad (10 rows < 51 parameters) is amplified by 1/lam
    null = grad - jac.T @ np.linalg.pinv(jac @ jac.T) @ jac @ grad
    plain = np.linalg.solve(a, grad)
    np.testing.assert_allclose(plain - null / lam, np.linalg.solve(a, grad - null), atol=1e-8)
    assert np.linalg.norm(null) > 0.05 * np.linalg.norm(grad)


def test_projection_is_exact_on_own_latents_as_damping_vanishes() -> None:
    """With g = J^T r / N on the metric's latents, P_lambda g -> g as lambda -> 0: the
    projected and the plain steps differ by O(lambda / smallest eigenvalue of J J^T / N),
    so the gap shrinks tenfold with lambda."""
    gen = net(nn.Tanh, 1, True)
    z = latents(12)
    gaps = []
    for lam in (1e-7, 1e-8):
        moves = {}
        for project in (False, True):
            g = copy.deepcopy(gen)
            theta0 = flat_params(g)
            opt = NaturalGradient(g.parameters(), g, lr=1.0, damping=lam, project=project)
            run_steps(opt, g, z, 1)
            moves[project] = flat_params(g) - theta0
        gaps.append(rel(moves[True], moves[False]))
    assert gaps[0] < 0.1 and 7 < gaps[0] / gaps[1] < 13


def test_safeguard_leaves_grad_at_the_accepted_point() -> None:
    z = latents(10)
    for lr, accepted in ((1e4, True), (1e6, False)):
        gen = mlp()
        opt = NaturalGradient(
            gen.parameters(), gen, lr=lr, damping=1e-2, safeguard=True, max_shrinks=40 if
            accepted else 2,
        )  # fmt: skip
        run_steps(opt, gen, z, 1)
        assert opt.last_info["accepted"] == accepted
        probe = copy.deepcopy(gen)
        probe.zero_grad()
        sq_loss(probe, z).backward()
        for p, q in zip(gen.parameters(), probe.parameters(), strict=True):
            torch.testing.assert_close(p.grad, q.grad, rtol=1e-12, atol=1e-14)


def test_auto_rule_on_the_structured_path() -> None:
    z = latents(40)  # 80 rows
    # 32 parameters <= 80 rows: dense; 182 > 80 rows: Woodbury
    for gen, expected in ((mlp(3, 5, 2), "cholesky"), (mlp(3, 30, 2), "woodbury")):
        opt = NaturalGradient(gen.parameters(), gen, lr=1e-3, damping=1e-3)
        run_steps(opt, gen, z, 1)
        assert opt.last_info["solver"] == expected
    gen = mlp(3, 30, 2)  # no damping: dense Cholesky, which finds the null space
    with pytest.raises(SingularMetricError, match="singular"):
        run_steps(NaturalGradient(gen.parameters(), gen, lr=1e-3, damping=0.0), gen, z, 1)

"""The natural-gradient optimiser (seed 001 Alg. 2, Prop. 8.3, 11.3, 16.1) against dense
references."""

from __future__ import annotations

import copy
import dataclasses
import io
import math
import re

import numpy as np
import pytest
import scipy.linalg
import torch
from _gan_cases import (
    DT,
    flat_params,
    latents,
    mlp,
    net,
    reference_jacobian,
    reference_step,
    rel,
    run_steps,
    sq_loss,
)
from _ranks import thread_ranks
from torch import nn

from ottokit import distributed
from ottokit.gan.jacobian import structured_support
from ottokit.gan.natural_gradient import Armijo, NaturalGradient, NonFiniteError, StepInfo
from ottokit.gan.pullback import PullbackMetric
from ottokit.gan.solvers import (
    CGConvergenceWarning,
    ConjugateGradient,
    LinearSolver,
    SingularMetricError,
    SolverName,
)


def exact(solver: SolverName, maxiter: int, tol: float) -> SolverName | LinearSolver:
    """The named solver, with CG run to ``tol`` (at most ``maxiter`` iterations)."""
    return ConjugateGradient(maxiter=maxiter, tol=tol) if solver == "cg" else solver


@pytest.mark.parametrize("solver", ["cholesky", "cg", "woodbury", "auto"])
def test_step_matches_dense_scipy_solve(solver: str) -> None:
    gen = mlp()
    z = latents(8)
    expected = reference_step(gen, z, lr=0.3, lam=1e-2)
    theta0 = flat_params(gen)
    opt = NaturalGradient(
        gen.parameters(), gen, lr=0.3, damping=1e-2, solver=exact(solver, 200, 1e-14)
    )
    run_steps(opt, gen, z, 1)
    np.testing.assert_allclose((flat_params(gen) - theta0).numpy(), expected, rtol=1e-8, atol=1e-11)
    # auto on the structured path: Woodbury, since N d_out = 16 rows < 32 parameters
    assert opt.last_step_info.solver == (solver if solver != "auto" else "woodbury")
    assert opt.last_step_info.jacobian_path == "structured"
    if solver == "cg":
        assert opt.last_step_info.solve_residual < 1e-12


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
        assert opt.last_step_info.metric_samples == 6
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


def reused_metric_step(
    metric_point: nn.Module, gen: nn.Module, z: torch.Tensor, theta1: torch.Tensor,
    lr: float, lam: float,
) -> np.ndarray:
    """-lr (J^T J / N + lam I)^{-1} grad: the metric of ``metric_point`` on ``z`` and the
    squared loss's gradient at ``theta1`` (a metric reused from an earlier point)."""
    jac = reference_jacobian(metric_point, z)
    probe = copy.deepcopy(gen)
    torch.nn.utils.vector_to_parameters(theta1.clone(), probe.parameters())
    sq_loss(probe, z).backward()
    grad = torch.nn.utils.parameters_to_vector([p.grad for p in probe.parameters()]).numpy()
    n = z.shape[0]
    return -lr * np.linalg.solve(jac.T @ jac / n + lam * np.eye(len(grad)), grad)


def test_metric_reuse_uses_the_old_metric_between_refreshes() -> None:
    z = latents(10)
    gen = mlp()
    metric_point = copy.deepcopy(gen)
    opt = NaturalGradient(gen.parameters(), gen, lr=0.2, damping=1e-2, metric_every=2)
    run_steps(opt, gen, z, 1)
    refreshed = [opt.last_step_info.metric_refreshed]
    theta1 = flat_params(gen)
    run_steps(opt, gen, z, 1)
    refreshed.append(opt.last_step_info.metric_refreshed)
    # step 1 solves with g_hat(theta_0) but the gradient at theta_1
    step = reused_metric_step(metric_point, gen, z, theta1, lr=0.2, lam=1e-2)
    np.testing.assert_allclose((flat_params(gen) - theta1).numpy(), step, rtol=1e-8, atol=1e-12)
    run_steps(opt, gen, z, 1)
    refreshed.append(opt.last_step_info.metric_refreshed)
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
        gen.parameters(), gen, lr=1e4, damping=1e-2, safeguard=Armijo(max_shrinks=40)
    )
    run_steps(opt, gen, z, 1)
    info = opt.last_step_info
    assert info.accepted and info.shrinks > 5 and info.lr_used < 1e4 / 2**5
    assert float(sq_loss(gen, z)) <= j0 - 1e-4 * info.lr_used * info.grad_dot_direction
    assert opt.state["natural_gradient"]["shrinks"] == info.shrinks

    gen2 = mlp()
    theta0 = flat_params(gen2)
    opt2 = NaturalGradient(
        gen2.parameters(), gen2, lr=1e6, damping=1e-2, safeguard=Armijo(max_shrinks=2)
    )
    run_steps(opt2, gen2, z, 1)
    assert not opt2.last_step_info.accepted and opt2.last_step_info.rejected
    assert opt2.state["natural_gradient"]["rejections"] == 1
    assert torch.equal(flat_params(gen2), theta0)


def test_latent_sampler_and_cg_warm_start() -> None:
    z = latents(20)
    residuals = {}
    for warm in (False, True):
        gen = mlp()
        opt = NaturalGradient(
            gen.parameters(), gen, lr=1e-4, solver=ConjugateGradient(maxiter=3, warm_start=warm),
            latent_sampler=lambda n: z[:n], metric_samples=20, metric_every=100,
        )  # fmt: skip
        for _ in range(10):
            opt.zero_grad()
            sq_loss(gen, z).backward()
            with pytest.warns(CGConvergenceWarning, match="maxiter=3"):  # 3 < 32 parameters
                opt.step()
            assert not opt.last_step_info.solve_converged
        assert opt.last_step_info.metric_samples == 20 and opt.last_step_info.solver == "cg"
        residuals[warm] = opt.last_step_info.solve_residual
    # with a slowly moving gradient (small lr, fixed metric) the previous direction is a good
    # start: 10 warm-started runs of 3 iterations act like one longer CG run
    assert residuals[True] < 0.5 * residuals[False]


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
    ],
)
def test_invalid_hyperparameters(kwargs: dict, match: str) -> None:
    gen = mlp()
    with pytest.raises(ValueError, match=match):
        NaturalGradient(gen.parameters(), gen, **kwargs)


def test_safeguard_and_solver_arguments() -> None:
    gen = mlp()
    with pytest.raises(ValueError, match=r"armijo c must lie in \(0, 1\)"):
        Armijo(c=0.0)
    with pytest.raises(ValueError, match="max_shrinks must be an integer >= 0"):
        Armijo(max_shrinks=-1)
    with pytest.raises(TypeError, match="safeguard must be True, False or an Armijo"):
        NaturalGradient(gen.parameters(), gen, safeguard="yes")
    with pytest.raises(TypeError, match="solver must be one of"):
        NaturalGradient(gen.parameters(), gen, solver=ConjugateGradient)
    assert NaturalGradient(gen.parameters(), gen, safeguard=True).safeguard == Armijo()


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
    with pytest.raises(ValueError, match="structured must be"):
        NaturalGradient(gen.parameters(), gen, structured=1.0)
    with pytest.raises(TypeError, match="project must be"):
        NaturalGradient(gen.parameters(), gen, project="range")


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
    assert opt.last_step_info.jacobian_path == "torch.func"
    assert opt.last_step_info.fallback_reason == metric.fallback_reason


@pytest.mark.parametrize("solver", ["cholesky", "cg", "woodbury"])
@pytest.mark.parametrize("d", [1, 2])
def test_structured_step_matches_dense_reference(solver: str, d: int) -> None:
    gen = net(nn.ReLU, d, True)
    z = latents(9)
    expected = reference_step(gen, z, lr=0.3, lam=1e-2)
    theta0 = flat_params(gen)
    opt = NaturalGradient(
        gen.parameters(), gen, lr=0.3, damping=1e-2, solver=exact(solver, 300, 1e-14),
        structured=True,
    )  # fmt: skip
    run_steps(opt, gen, z, 1)
    np.testing.assert_allclose((flat_params(gen) - theta0).numpy(), expected, rtol=1e-8, atol=1e-11)
    assert opt.last_step_info.jacobian_path == "structured"


@pytest.mark.parametrize("solver", ["cholesky", "cg", "woodbury"])
@pytest.mark.parametrize("structured", [True, False])
def test_projected_step_is_damped_projection(solver: str, structured: bool) -> None:
    """project=True: v = (g_hat + lam)^{-1} g_hat (g_hat + lam)^{-1} grad, with the metric of a
    subsample; v vanishes on the null space of g_hat instead of being grad / lam."""
    gen = net(nn.Tanh, 2, True)
    z = latents(20)
    lam, lr = 1e-2, 0.3
    opt = NaturalGradient(
        gen.parameters(), gen, lr=lr, damping=lam, solver=exact(solver, 400, 1e-15),
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
    assert opt.last_step_info.projected and opt.last_step_info.jacobian_path == (
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
            gen.parameters(), gen, lr=lr, damping=1e-2, safeguard=Armijo(max_shrinks=40 if
            accepted else 2),
        )  # fmt: skip
        run_steps(opt, gen, z, 1)
        assert opt.last_step_info.accepted == accepted
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
        assert opt.last_step_info.solver == expected
    gen = mlp(3, 30, 2)  # no damping: dense Cholesky, which finds the null space
    with pytest.raises(SingularMetricError, match="singular"):
        run_steps(NaturalGradient(gen.parameters(), gen, lr=1e-3, damping=0.0), gen, z, 1)


def test_step_info_records_the_step_taken() -> None:
    """StepInfo's numbers are those of the step actually taken, and it is frozen."""
    gen, z, lr = mlp(), latents(8), 0.3  # 32 parameters, N d_out = 16 rows
    probe = copy.deepcopy(gen)
    sq_loss(probe, z).backward()
    grad = torch.nn.utils.parameters_to_vector([p.grad for p in probe.parameters()])
    theta0 = flat_params(gen)
    opt = NaturalGradient(
        gen.parameters(), gen, lr=lr, damping=1e-2, solver=ConjugateGradient(200, 1e-14)
    )
    run_steps(opt, gen, z, 1)
    info = opt.last_step_info
    assert isinstance(info, StepInfo)
    v = (theta0 - flat_params(gen)) / lr
    assert (info.step, info.solver, info.jacobian_path) == (0, "cg", "structured")
    assert info.metric_refreshed and info.accepted and not info.rejected
    assert info.lr_used == lr and info.metric_samples == 8 and info.pivot_range is None
    assert info.solve_converged and info.solve_residual < 1e-12
    assert 1 <= info.solve_iterations <= 200
    assert (info.shrinks, info.trial_losses, math.isnan(info.lipschitz_estimate)) == (0, (), True)
    assert abs(info.direction_norm - float(v.norm())) <= 1e-10 * info.direction_norm
    assert abs(info.grad_norm - float(grad.norm())) <= 1e-12 * info.grad_norm
    assert abs(info.grad_dot_direction - float(grad @ v)) <= 1e-10 * abs(info.grad_dot_direction)
    with pytest.raises(dataclasses.FrozenInstanceError):
        info.step = 1  # type: ignore[misc]
    assert dataclasses.asdict(info)["solve_iterations"] == info.solve_iterations


def test_step_info_of_direct_solvers_and_the_safeguard() -> None:
    """Woodbury's squared pivots are those of N lambda I + J J^T, hence >= N lambda; a
    safeguarded step records its trial losses, the last one being the accepted point's."""
    gen, z, lam = mlp(), latents(8), 1e-2
    j0 = float(sq_loss(gen, z).detach())
    opt = NaturalGradient(
        gen.parameters(), gen, lr=1e4, damping=lam, solver="woodbury",
        safeguard=Armijo(max_shrinks=40),
    )  # fmt: skip
    run_steps(opt, gen, z, 1)
    info = opt.last_step_info
    assert info.solve_iterations == 0 and math.isnan(info.solve_residual) and info.solve_converged
    lo, hi = info.pivot_range
    assert 8 * lam * (1 - 1e-12) <= lo <= hi
    assert not info.rejected and len(info.trial_losses) == info.shrinks + info.restarts + 1
    assert abs(info.trial_losses[-1] - float(sq_loss(gen, z))) <= 1e-12
    assert info.lr_used == 1e4 / 2**info.shrinks
    eta, vv = info.lr_used, info.direction_norm**2  # Prop. 8.3's L on the accepted trial
    expected = 2 * (info.trial_losses[-1] - j0 + eta * info.grad_dot_direction) / (eta**2 * vv)
    assert abs(info.lipschitz_estimate - expected) <= 1e-6 * abs(expected)


DDP_LATENTS = 12  # the union; each of the 2 ranks holds 6
DDP_CASES: list[tuple[str, float, dict]] = [
    ("cg", 0.3, {"solver": ConjugateGradient(maxiter=200, tol=1e-13), "momentum": 0.5}),
    ("cg-func-project", 0.3, {"solver": ConjugateGradient(maxiter=400, tol=1e-13),
                              "structured": False, "project": True}),
    ("cholesky-reuse", 0.3, {"solver": "cholesky", "metric_every": 2}),
    ("cholesky-func", 0.3, {"solver": "cholesky", "structured": False}),
    ("woodbury-subsample", 0.3, {"solver": "woodbury", "metric_samples": 8, "project": True}),
    ("woodbury-func", 0.3, {"solver": "woodbury", "structured": False, "momentum": 0.5}),
    ("woodbury-safeguard", 1e3, {"solver": "woodbury", "safeguard": Armijo(max_shrinks=40)}),
    ("woodbury-sampler", 0.3, {"solver": "woodbury", "metric_samples": 10,
                               "latent_sampler": lambda n: latents(n, seed=5)}),
]  # fmt: skip


def ng_run(
    gen: nn.Module, model: nn.Module, z: torch.Tensor, lr: float, kwargs: dict,
    union: torch.Tensor | None = None,
) -> dict:
    """Three steps of NaturalGradient on G with the loss through ``model`` (G or DDP(G)); the
    metric's latents are the loss batch ``z`` unless a ``latent_sampler`` draws them.
    ``union``: ``.grad`` is the gradient of the loss on ``union``, the batches of all ranks,
    as DDP leaves it (for ranks that are threads, without DDP)."""
    calls = [0]
    opt = NaturalGradient(gen.parameters(), gen, lr=lr, damping=1e-2, seed=3, **kwargs)
    theta0, losses = flat_params(gen), []

    def closure() -> torch.Tensor:
        calls[0] += 1
        opt.zero_grad()
        loss = sq_loss(model, z)
        (loss if union is None else sq_loss(model, union)).backward()
        return loss

    for _ in range(3):
        if "latent_sampler" not in kwargs:
            opt.set_latents(z)
        losses.append(float(opt.step(closure)))
    info = opt.last_step_info
    move = flat_params(gen) - theta0
    return {"move": move, "calls": calls[0], "losses": losses, "solver": info.solver,
            "shrinks": info.shrinks}  # fmt: skip


def gan_run() -> dict:
    """Three train_gan steps with NaturalGradient (CG) on G, float64, under DDP when a process
    group is initialised (the trainer then splits each batch over the ranks)."""
    from ottokit.gan import GANTrainConfig, MLPDiscriminator, MLPGenerator, build_seeded, train_gan

    G = build_seeded(0, lambda: MLPGenerator(3, (8,), 2)).double()
    D = build_seeded(1, lambda: MLPDiscriminator(2, (8,))).double()
    data = torch.randn(64, 2, generator=torch.Generator().manual_seed(3), dtype=DT)
    opt = NaturalGradient(G.parameters(), G, lr=0.1, solver=ConjugateGradient(200, 1e-12))
    res = train_gan(
        G, D, "ns", data, g_optimizer=opt, d_optimizer=torch.optim.Adam(D.parameters(), 1e-3),
        config=GANTrainConfig(steps=3, batch_size=16, eval_every=3, eval_metric="none", seed=2),
    )  # fmt: skip
    return {"theta": flat_params(G), "lr_used": res.history["g_opt.lr_used"].tolist()}


def _ddp_rank(rank: int) -> dict:
    import os

    from ottokit import distributed as D

    z = D.shard_rows(latents(DDP_LATENTS), exact=True)
    out: dict = {"train_gan": gan_run()}
    for name, lr, kwargs in DDP_CASES:
        gen = mlp()
        out[name] = ng_run(gen, D.wrap_ddp(gen, "cpu"), z, lr, kwargs)
    gen = mlp()
    try:
        ng_run(gen, gen, z, 0.3, {"solver": "cg"})  # no DDP: each rank has its own gradient
    except RuntimeError as err:
        out["no-ddp"] = str(err)
    os.environ["OTTOKIT_MEMORY_LIMIT"] = "1K"
    try:
        gen = mlp()
        out["cg-1K"] = ng_run(gen, D.wrap_ddp(gen, "cpu"), z, 0.3, DDP_CASES[0][2])
        gen = mlp()
        ng_run(gen, D.wrap_ddp(gen, "cpu"), z, 0.3, {"solver": "woodbury"})
    except ValueError as err:
        out["refused"] = str(err)
    finally:
        del os.environ["OTTOKIT_MEMORY_LIMIT"]
    if rank == 0:  # only rank 0's gathered Woodbury factors do not fit
        os.environ["OTTOKIT_MEMORY_LIMIT"] = "1K"
    try:
        gen = mlp()
        ng_run(gen, D.wrap_ddp(gen, "cpu"), z, 0.3, {"solver": "woodbury"})
    except ValueError as err:
        out["refused-one"] = str(err)
    finally:
        os.environ.pop("OTTOKIT_MEMORY_LIMIT", None)
    try:  # 1 of the 12 latents: one rank's share of the subsample is empty
        gen = mlp()
        ng_run(gen, D.wrap_ddp(gen, "cpu"), z, 0.3, {"metric_samples": 1})
    except ValueError as err:
        out["empty-share"] = str(err)
    out["unsharded-gp"] = _gp_without_shard()
    return out


def _gp_without_shard() -> str:
    """train_gan on 2 ranks with a penalised loss that cannot draw for the global batch."""
    from ottokit.gan import GANTrainConfig, MLPDiscriminator, MLPGenerator, build_seeded, train_gan
    from ottokit.gan.losses import WGANGPLoss

    class LocalPenalty(WGANGPLoss):
        def discriminator_loss(self, D, real, fake, *, generator=None):
            return super().discriminator_loss(D, real, fake, generator=generator)

    G = build_seeded(0, lambda: MLPGenerator(3, (8,), 2)).double()
    Dn = build_seeded(1, lambda: MLPDiscriminator(2, (8,))).double()
    data = torch.randn(64, 2, generator=torch.Generator().manual_seed(3), dtype=DT)
    try:
        train_gan(
            G, Dn, LocalPenalty(), data, g_optimizer=torch.optim.Adam(G.parameters(), 1e-3),
            d_optimizer=torch.optim.Adam(Dn.parameters(), 1e-3),
            config=GANTrainConfig(steps=1, batch_size=16, eval_every=0),
        )  # fmt: skip
    except ValueError as err:
        return str(err)
    return "no error"


def _assert_every_rank_ran_the_union(ranks: list[dict], cases, z: torch.Tensor) -> None:
    """Each rank's three steps of every case equal one process's on all latents ``z``: the
    parameter move, the losses, and the closure calls, solver and safeguard shrinks."""
    for name, lr, kwargs in cases:
        gen = mlp()
        ref = ng_run(gen, gen, z, lr, kwargs)
        for r in ranks:
            got = r[name]
            assert rel(got["move"], ref["move"]) < 1e-10, name
            np.testing.assert_allclose(got["losses"], ref["losses"], rtol=1e-12)
            assert (got["calls"], got["solver"], got["shrinks"]) == (
                ref["calls"], ref["solver"], ref["shrinks"],
            ), name  # fmt: skip


def test_distributed_step_equals_the_step_on_the_union_of_latents() -> None:
    """2 gloo ranks, 6 latents each, G under DDP for the loss: three steps equal those of one
    process on all 12 latents, for every solver and path, with the safeguard calling the
    closure as often; Woodbury refuses (naming cg) on every rank when its gathered factors do
    not fit on one of them; a subsample that leaves a rank without latents and a penalised
    loss that cannot draw for the global batch are refused; and train_gan with
    NaturalGradient under DDP equals the one-process run."""
    from _ranks import run_ranks

    ranks = run_ranks(_ddp_rank, start_method="fork")
    z = latents(DDP_LATENTS)
    _assert_every_rank_ran_the_union(ranks, DDP_CASES, z)
    for name, _, _ in DDP_CASES:
        assert torch.equal(ranks[0][name]["move"], ranks[1][name]["move"])
    assert ranks[0]["woodbury-safeguard"]["shrinks"] > 0  # the safeguard was exercised
    single = gan_run()
    for r in ranks:
        assert rel(r["train_gan"]["theta"], single["theta"]) < 1e-10
        assert r["train_gan"]["lr_used"] == single["lr_used"] == [0.1] * 3
    for r in ranks:
        assert "differ between ranks" in r["no-ddp"] and "DistributedDataParallel" in r["no-ddp"]
        assert "solver='cg'" in r["refused"] and "gathered on every rank" in r["refused"]
        assert rel(r["cg-1K"]["move"], ranks[0]["cg"]["move"]) == 0.0
        assert re.search("metric_samples=1 leaves a rank without metric latents", r["empty-share"])
        assert re.search(r"takes generator=\) but does not take shard=", r["unsharded-gp"])
    # the rank whose own factors fit refuses too, naming the rank that could not
    assert re.search("gathered on every rank.*solver='cg'", ranks[0]["refused-one"])
    assert re.search("does not fit on another rank; use solver='cg'", ranks[1]["refused-one"])


def test_the_trainer_records_step_info_as_series() -> None:
    """train_gan keeps each generator step's StepInfo, its numbers as history series."""
    from ottokit.gan import GANTrainConfig, MLPDiscriminator, MLPGenerator, train_gan

    G, D = MLPGenerator(2, (8,), 1), MLPDiscriminator(1, (8,))
    opt = NaturalGradient(G.parameters(), G, lr=0.05, solver=ConjugateGradient(100, 1e-6))
    res = train_gan(
        G, D, "ns", lambda n, gen: torch.randn(n, 1, generator=gen),
        g_optimizer=opt, d_optimizer=torch.optim.Adam(D.parameters(), 1e-3),
        config=GANTrainConfig(steps=3, batch_size=16, eval_every=3, eval_metric="none"),
    )  # fmt: skip
    assert [info.step for info in res.step_info] == [0, 1, 2]
    its = res.history["g_opt.solve_iterations"]
    assert [float(x) for x in its] == [float(info.solve_iterations) for info in res.step_info]
    assert all(x >= 1 for x in its) and bool(torch.all(res.history["g_opt.solve_residual"] < 1e-6))
    assert res.history["g_opt.lr_used"].tolist() == [0.05] * 3


def _centred_loss(gen: nn.Module, z: torch.Tensor, c: float) -> torch.Tensor:
    return ((gen(z) - c) ** 2).sum(1).mean()


def _closure(opt: NaturalGradient, gen: nn.Module, z: torch.Tensor, c: float):
    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = _centred_loss(gen, z, c)
        loss.backward()
        return loss

    return closure


def test_optimiser_input_guards() -> None:
    gen, z = mlp(), latents(6)
    with pytest.raises(TypeError, match=r"latent_sampler must be a callable n -> latents"):
        NaturalGradient(gen.parameters(), gen, latent_sampler=z)
    with pytest.raises(TypeError, match="params must be tensors, got ndarray"):
        NaturalGradient([gen[0].weight, gen[0].bias.detach().numpy()], gen)
    opt = NaturalGradient(gen.parameters(), gen)
    for bad in (z[:0], z.numpy()):
        with pytest.raises(ValueError, match=r"latents must be a tensor of shape \(N, \.\.\.\)"):
            opt.set_latents(bad)
    short = NaturalGradient(
        gen.parameters(), gen, metric_samples=4, latent_sampler=lambda n: latents(n - 1)
    )
    sq_loss(gen, z).backward()
    with pytest.raises(ValueError, match=r"latent_sampler\(4\) must return a tensor of shape \(4"):
        short.step()


def test_a_foreign_state_is_refused_before_anything_is_loaded() -> None:
    """An SGD state holds no natural-gradient state: refused, and the optimiser keeps its
    hyperparameters and steps exactly like an untouched one."""
    z = latents(6)
    gen, twin = mlp(), mlp()
    opt = NaturalGradient(gen.parameters(), gen, lr=0.3, damping=1e-2, momentum=0.4)
    sgd_state = torch.optim.SGD(gen.parameters(), lr=0.9).state_dict()
    with pytest.raises(ValueError, match="not written by NaturalGradient"):
        opt.load_state_dict(sgd_state)
    assert opt.param_groups[0]["lr"] == 0.3 and opt.param_groups[0]["momentum"] == 0.4
    run_steps(opt, gen, z, 2)
    run_steps(NaturalGradient(twin.parameters(), twin, lr=0.3, damping=1e-2, momentum=0.4),
              twin, z, 2)  # fmt: skip
    assert torch.equal(flat_params(gen), flat_params(twin))


def test_an_overflowing_metric_gives_a_non_finite_direction() -> None:
    """Affine G: J holds the latents themselves, so metric latents of size 1e160 make
    J^T J overflow to inf; the gradient (on ordinary latents) is finite, CG's direction is
    not, and the step is refused with the parameters unchanged."""
    gen, z = nn.Linear(3, 2).to(DT), latents(6)
    opt = NaturalGradient(gen.parameters(), gen, solver="cg")
    sq_loss(gen, z).backward()
    opt.set_latents(1e160 * z)
    theta0 = flat_params(gen)
    with (
        pytest.raises(NonFiniteError, match="the natural-gradient direction is not finite"),
        pytest.warns(CGConvergenceWarning, match="maxiter=10"),  # CG's residual is NaN too
    ):
        opt.step()
    assert torch.equal(flat_params(gen), theta0)


@pytest.mark.parametrize("solver", ["cholesky", "woodbury"])
def test_an_overflowing_metric_is_refused_as_non_finite_not_singular(solver) -> None:
    """The same overflow with a factorising solver: the damped metric (or Woodbury's Gram
    matrix) has inf entries, and the error says so instead of calling a damped metric
    singular; the parameters are unchanged."""
    gen, z = nn.Linear(3, 2).to(DT), latents(6)
    opt = NaturalGradient(gen.parameters(), gen, damping=1e-3, solver=solver)
    sq_loss(gen, z).backward()
    opt.set_latents(1e160 * z)
    theta0 = flat_params(gen)
    with pytest.raises(NonFiniteError, match="has NaN or inf entries: the generator's Jacobian"):
        opt.step()
    assert torch.equal(flat_params(gen), theta0)


def test_safeguard_drops_momentum_that_points_uphill() -> None:
    """Prop. 16.1 with beta = 0.9 under the Armijo safeguard: after a long step (eta = 1)
    towards c = +0.7 the target moves to c = -0.7 and eta drops to 0.05, so the momentum
    trial beta * buffer - eta v climbs; the safeguard restarts without momentum and takes the
    plain step -eta v (Algorithm 2). Without the safeguard the same step keeps the momentum
    term."""
    z, lr, beta = latents(10), 0.05, 0.9
    moves, infos = {}, {}
    for safeguard in (False, True):
        gen = mlp()
        opt = NaturalGradient(
            gen.parameters(), gen, lr=1.0, damping=1e-2, momentum=beta,
            safeguard=Armijo(max_shrinks=0) if safeguard else False,
        )  # fmt: skip
        opt.set_latents(z)
        opt.step(_closure(opt, gen, z, 0.7))
        opt.param_groups[0]["lr"] = lr  # a long first step, then short ones
        buf = opt.state["natural_gradient"]["momentum_buffer"].clone()
        theta1 = flat_params(gen)
        j1 = float(_centred_loss(gen, z, -0.7).detach())
        opt.step(_closure(opt, gen, z, -0.7))
        moves[safeguard] = (flat_params(gen) - theta1, buf, opt.last_direction, j1)
        infos[safeguard] = opt.last_step_info
    move, buf, v, j1 = moves[False]
    torch.testing.assert_close(move, beta * buf - lr * v, rtol=1e-12, atol=1e-14)
    move, buf, v, j1 = moves[True]
    info = infos[True]
    assert info.restarts == 1 and info.shrinks == 0 and info.accepted
    assert info.trial_losses[0] > j1  # the momentum trial went uphill
    assert info.trial_losses[1] <= j1 - 1e-4 * lr * info.grad_dot_direction
    torch.testing.assert_close(move, -lr * v, rtol=1e-12, atol=1e-14)
    assert float((beta * buf).norm()) > float((lr * v).norm())


def test_safeguard_keeps_a_momentum_step_that_decreases_the_loss() -> None:
    """Prop. 16.1 with beta = 0.5 under the Armijo safeguard on a descending run: every
    momentum trial beta * buffer - eta v passes at once, so the run equals the unsafeguarded
    one, and each step's single trial loss is J at the parameters it moved to."""
    z = latents(10)
    runs = {}
    for safeguard in (False, True):
        gen = mlp()
        opt = NaturalGradient(gen.parameters(), gen, lr=0.1, damping=1e-2, momentum=0.5,
                              safeguard=safeguard)  # fmt: skip
        for _ in range(3):
            opt.set_latents(z)
            opt.step(_closure(opt, gen, z, 0.7))
            info = opt.last_step_info
            j = float(_centred_loss(gen, z, 0.7).detach())
            if safeguard:
                assert (info.restarts, info.shrinks, info.accepted) == (0, 0, True)
                assert info.trial_losses == (pytest.approx(j, rel=1e-12, abs=0),)
        runs[safeguard] = flat_params(gen)
    torch.testing.assert_close(runs[True], runs[False], rtol=1e-12, atol=1e-14)


def test_safeguard_counts_a_trial_loss_that_overflows_as_a_failure() -> None:
    """J = exp(20 |G(z) - c|^2): eta = 1e6 throws the first trial so far that J overflows to
    inf. That trial fails like any other (no error): eta is halved until J is finite and
    satisfies the Armijo rule."""
    z, gen = latents(10), mlp()
    opt = NaturalGradient(gen.parameters(), gen, lr=1e6, damping=1e-2,
                          safeguard=Armijo(max_shrinks=60))  # fmt: skip

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = torch.exp(20 * _centred_loss(gen, z, 0.7))
        loss.backward()
        return loss

    opt.set_latents(z)
    j0 = float(opt.step(closure))
    info = opt.last_step_info
    assert math.isfinite(j0) and info.accepted and info.shrinks > 0
    assert info.trial_losses[0] == math.inf and math.isfinite(info.trial_losses[-1])
    assert info.trial_losses[-1] <= j0 - 1e-4 * info.lr_used * info.grad_dot_direction


def test_lipschitz_estimate_of_a_short_direction() -> None:
    """Prop. 8.3's L estimate 2 (J(trial) - J + eta <grad J, v>) / (eta^2 |v|^2) is reported
    for a direction with |v| < 1 too (J scaled by 1e-2, so v is about 1e-2 of the usual)."""
    z, gen = latents(10), mlp()
    opt = NaturalGradient(gen.parameters(), gen, lr=0.1, damping=1e-2, safeguard=True)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = 1e-2 * _centred_loss(gen, z, 0.7)
        loss.backward()
        return loss

    opt.set_latents(z)
    j0 = float(opt.step(closure))
    info = opt.last_step_info
    eta, vv = info.lr_used, info.direction_norm**2
    assert 0 < vv < 1 and info.trial_losses == (float(closure().detach()),)
    expected = 2 * (info.trial_losses[0] - j0 + eta * info.grad_dot_direction) / (eta**2 * vv)
    assert abs(info.lipschitz_estimate - expected) <= 1e-9 * abs(expected)


def test_rejected_steps_are_counted_over_steps() -> None:
    """eta = 1e6 with no halving allowed: every step is rejected, the parameters stay put, and
    the state counts each rejection."""
    z, gen = latents(6), mlp()
    theta0 = flat_params(gen)
    opt = NaturalGradient(gen.parameters(), gen, lr=1e6, damping=1e-2,
                          safeguard=Armijo(max_shrinks=0))  # fmt: skip
    run_steps(opt, gen, z, 2)
    assert opt.last_step_info.rejected and opt.state["natural_gradient"]["rejections"] == 2
    assert torch.equal(flat_params(gen), theta0)


@pytest.mark.parametrize("c", [0.3, 0.9])
def test_armijo_constant_away_from_its_default(c: float) -> None:
    """With c = 0.3 or 0.9 the accepted step is the first halving that satisfies
    J(theta - eta v) <= J(theta) - c eta <grad J, v>, the one before it violates it, and a
    stricter c never needs fewer halvings (the default c = 1e-4 as reference)."""
    z = latents(10)
    shrinks = {}
    for const in (1e-4, c):
        gen = mlp()
        j0 = float(sq_loss(gen, z))
        opt = NaturalGradient(
            gen.parameters(), gen, lr=50.0, damping=1e-2, safeguard=Armijo(c=const, max_shrinks=40)
        )
        run_steps(opt, gen, z, 1)
        info = opt.last_step_info
        eta, gv = info.lr_used, info.grad_dot_direction
        assert info.accepted and info.shrinks >= 1
        assert info.trial_losses[-1] <= j0 - const * eta * gv
        assert info.trial_losses[-2] > j0 - const * (2 * eta) * gv
        shrinks[const] = info.shrinks
    assert shrinks[c] >= shrinks[1e-4]


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"lr": math.inf}, ValueError, r"lr must be a finite number > 0, got inf; try 0\.1"),
        ({"lr": "0.1"}, ValueError, "lr must be a finite number > 0, got '0.1'"),
        ({"damping": math.nan}, ValueError, "damping must be >= 0, got nan; use a small value"),
        ({"damping": "1e-3"}, ValueError, "damping must be >= 0, got '1e-3'"),
        ({"momentum": "0.5"}, ValueError, r"momentum must lie in \[0, 1\), got '0.5'; the seed"),
        ({"metric_every": True}, ValueError, "metric_every must be an integer >= 1, got True"),
        ({"metric_every": 1.0}, ValueError, "metric_every must be an integer >= 1, got 1.0"),
        ({"metric_samples": 0}, ValueError, "metric_samples must be an integer >= 1, got 0"),
        ({"chunk_size": 0}, ValueError, "chunk_size must be an integer >= 1, got 0"),
        ({"latent_sampler": 256}, TypeError, r"latent_sampler must be a callable n -> latents"),
        ({"project": 1}, TypeError, "project must be True or False, got 1"),
        ({"structured": "yes"}, ValueError, "structured must be 'auto', True or False, got 'yes'"),
    ],
)
def test_optimiser_guards_fire_at_their_boundaries(kwargs: dict, error: type, match: str) -> None:
    gen = mlp()
    with pytest.raises(error, match=match):
        NaturalGradient(gen.parameters(), gen, **kwargs)


def test_smallest_allowed_settings_are_accepted() -> None:
    """The edges of the legal ranges (tiny lr, damping = 0, momentum = 0, metric_every =
    metric_samples = 1 as numpy integers, Armijo's c near 0 and 1, max_shrinks = 0) are
    accepted; just past them they are refused."""
    gen = mlp()
    opt = NaturalGradient(
        gen.parameters(), gen, lr=1e-300, damping=0.0, momentum=0.0, solver="cg",
        metric_every=np.int64(1), metric_samples=np.int64(1), safeguard=Armijo(max_shrinks=0),
    )  # fmt: skip
    assert (opt.metric_every, opt.metric_samples, opt.safeguard.max_shrinks) == (1, 1, 0)
    for c in (1e-12, 1 - 1e-12):
        assert Armijo(c=c).c == c
    for c in (1.0, -1e-4, "1e-4"):
        with pytest.raises(ValueError, match=r"armijo c must lie in \(0, 1\), got .*; 1e-4"):
            Armijo(c=c)
    for bad in (True, 1.5):
        with pytest.raises(ValueError, match=f"max_shrinks must be an integer >= 0, got {bad!r}"):
            Armijo(max_shrinks=bad)


def test_latent_sampler_draws_256_by_default_and_its_shape_is_checked() -> None:
    gen, z = mlp(), latents(300, seed=3)
    asked: list[int] = []

    def sampler(n: int) -> torch.Tensor:
        asked.append(n)
        return z[:n]

    opt = NaturalGradient(gen.parameters(), gen, lr=0.3, damping=1e-2, latent_sampler=sampler)
    sq_loss(gen, latents(8)).backward()
    opt.step()
    assert asked == [256] and opt.last_step_info.metric_samples == 256
    assert torch.equal(opt.state["natural_gradient"]["metric_latents"], z[:256])
    for bad in (z[:255], z[0, :3].reshape(3), [0.0] * 256):
        bad_opt = NaturalGradient(gen.parameters(), gen, latent_sampler=lambda n, b=bad: b)
        with pytest.raises(ValueError, match=r"latent_sampler\(256\) must return a tensor of "
                           r"shape \(256, \.\.\.\)"):  # fmt: skip
            bad_opt.step()


def test_set_latents_needs_a_batch() -> None:
    gen = mlp()
    opt = NaturalGradient(gen.parameters(), gen)
    for bad in (latents(4).numpy(), latents(4)[:0], torch.tensor(1.0, dtype=DT)):
        with pytest.raises(ValueError, match=r"latents must be a tensor of shape \(N, \.\.\.\) "
                           r"with N >= 1"):  # fmt: skip
            opt.set_latents(bad)


@pytest.mark.parametrize(
    ("bad", "shown"),
    [(latents(4)[:0], "torch.Size([0, 3])"), (torch.tensor(1.0, dtype=DT), "torch.Size([])"),
     ([[0.0, 1.0, 2.0]], "<class 'list'>")],
)
def test_set_latents_names_the_shape_or_type_it_got(bad, shown: str) -> None:
    gen = mlp()
    opt = NaturalGradient(gen.parameters(), gen)
    whole = f"latents must be a tensor of shape (N, ...) with N >= 1, got {shown}"
    with pytest.raises(ValueError, match=f"^{re.escape(whole)}$"):
        opt.set_latents(bad)


class _ScalarLatent(nn.Module):
    """A generator of one-dimensional latents: z of shape (N,)."""

    def __init__(self) -> None:
        super().__init__()
        self.net = mlp(k=1, seed=4)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z.unsqueeze(-1))


@pytest.mark.parametrize(
    ("make_gen", "z"),
    [(mlp, latents(1)),  # N = 1: g_hat = J^T J of one sample, rank <= d_out
     (_ScalarLatent, torch.linspace(-1.0, 1.0, 5, dtype=DT))],  # latents of shape (N,)
    ids=["one-latent", "one-dimensional-latents"],
)
def test_smallest_latent_batches_step_as_the_dense_solve(make_gen, z: torch.Tensor) -> None:
    gen = make_gen()
    expected = reference_step(gen, z, lr=0.3, lam=1e-2)
    theta0 = flat_params(gen)
    opt = NaturalGradient(gen.parameters(), gen, lr=0.3, damping=1e-2, solver="cholesky")
    run_steps(opt, gen, z, 1)
    np.testing.assert_allclose((flat_params(gen) - theta0).numpy(), expected, rtol=1e-8, atol=1e-11)
    assert opt.last_step_info.metric_samples == z.shape[0]


def test_chunked_jacobian_steps_as_the_dense_solve() -> None:
    gen, z = mlp(), latents(7)
    expected = reference_step(gen, z, lr=0.3, lam=1e-2)
    theta0 = flat_params(gen)
    opt = NaturalGradient(
        gen.parameters(), gen, lr=0.3, damping=1e-2, solver="cholesky", structured=False,
        chunk_size=3,
    )  # fmt: skip
    run_steps(opt, gen, z, 1)
    np.testing.assert_allclose((flat_params(gen) - theta0).numpy(), expected, rtol=1e-8, atol=1e-11)
    assert opt.last_step_info.jacobian_path == "torch.func"


def test_closure_errors_say_what_was_returned_and_how_to_fix_it() -> None:
    gen, z = mlp(), latents(5)
    opt = NaturalGradient(gen.parameters(), gen)
    opt.set_latents(z)
    whole = "the closure must return the loss as a scalar tensor, got float"
    with pytest.raises(TypeError, match=f"^{re.escape(whole)}$"):
        opt.step(lambda: 1.0)
    whole = (
        "the closure must return a scalar loss tensor, got shape (2,); reduce it, e.g. loss.mean()"
    )
    with pytest.raises(ValueError, match=f"^{re.escape(whole)}$"):
        opt.step(lambda: gen(z).sum(0))


def test_a_rejected_step_clears_the_momentum() -> None:
    """Momentum 0.5 under the safeguard: step 1 is accepted, step 2 (eta = 1e6, no halving
    allowed) is rejected with the parameters unchanged, so step 3 has no displacement to
    continue: it is the plain -eta v of Algorithm 2, not beta * buffer - eta v."""
    gen, z = mlp(), latents(10)
    opt = NaturalGradient(
        gen.parameters(), gen, lr=0.1, damping=1e-2, momentum=0.5, safeguard=Armijo(max_shrinks=0)
    )
    run_steps(opt, gen, z, 1)
    assert opt.last_step_info.accepted
    opt.param_groups[0]["lr"] = 1e6
    theta1 = flat_params(gen)
    run_steps(opt, gen, z, 1)
    info = opt.last_step_info
    assert info.rejected and info.lr_used == 0.0 and info.restarts == 1 and info.shrinks == 0
    assert len(info.trial_losses) == 2  # the momentum trial and the plain one: no halving
    assert torch.equal(flat_params(gen), theta1)
    assert opt.state["natural_gradient"]["momentum_buffer"] is None
    opt.param_groups[0]["lr"] = 0.1
    run_steps(opt, gen, z, 1)
    assert opt.last_step_info.accepted and opt.last_step_info.restarts == 0
    torch.testing.assert_close(flat_params(gen) - theta1, -0.1 * opt.last_direction, rtol=1e-12,
                               atol=1e-15)  # fmt: skip


def test_a_new_damping_rebuilds_the_reused_factor_at_the_metric_point() -> None:
    """metric_every = 3, damping 1e-2 at step 0 and 1e-1 at step 1: step 1 solves with
    g_hat(theta_0) + 0.1 I (the stored metric point, the new damping) and the gradient at
    theta_1, and the metric is not counted as refreshed."""
    gen, z = mlp(), latents(10)
    metric_point = copy.deepcopy(gen)
    opt = NaturalGradient(gen.parameters(), gen, lr=0.2, damping=1e-2, metric_every=3)
    run_steps(opt, gen, z, 1)
    opt.param_groups[0]["damping"] = 1e-1
    theta1 = flat_params(gen)
    run_steps(opt, gen, z, 1)
    assert not opt.last_step_info.metric_refreshed
    step = reused_metric_step(metric_point, gen, z, theta1, lr=0.2, lam=1e-1)
    np.testing.assert_allclose((flat_params(gen) - theta1).numpy(), step, rtol=1e-8, atol=1e-12)


def test_each_refresh_draws_a_new_subsample_reproducibly_from_the_seed() -> None:
    """metric_samples = 6 of 40 latents: the refreshes at steps 0 and 1 draw different
    subsamples (a new draw each time, not one fixed subset); the same seed repeats the draws,
    another seed gives others; a subsample of all 40 is the whole batch."""
    z = latents(40)

    def draws(seed: int, m: int = 6) -> list[torch.Tensor]:
        gen = mlp()
        opt = NaturalGradient(gen.parameters(), gen, lr=0.1, damping=1e-2, metric_samples=m,
                              seed=seed)  # fmt: skip
        out = []
        for _ in range(2):
            run_steps(opt, gen, z, 1)
            out.append(opt.state["natural_gradient"]["metric_latents"].clone())
        return out

    first, second = draws(4)
    assert first.shape == second.shape == (6, 3) and not torch.equal(first, second)
    again = draws(4)
    assert torch.equal(again[0], first) and torch.equal(again[1], second)
    assert not torch.equal(draws(5)[0], first)
    whole = draws(4, m=40)[0]
    assert torch.equal(whole, z)


@pytest.mark.parametrize("solver", ["cholesky", "cg"])
def test_safeguard_at_a_stationary_point_takes_the_null_step(solver: str) -> None:
    """A loss whose gradient vanishes (J = 0 * sq_loss): v = 0, the trial point is the
    starting point, which satisfies J(theta) <= J(theta) - c eta * 0; the step is accepted
    with no halving, nothing moves, and Prop. 8.3's L is undefined (|v| = 0): NaN."""
    gen, z = mlp(), latents(8)
    theta0 = flat_params(gen)
    opt = NaturalGradient(gen.parameters(), gen, lr=0.5, damping=1e-2, solver=solver,
                          safeguard=True)  # fmt: skip
    opt.set_latents(z)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = 0.0 * sq_loss(gen, z)
        loss.backward()
        return loss

    opt.step(closure)
    info = opt.last_step_info
    assert info.accepted and (info.shrinks, info.restarts, info.trial_losses) == (0, 0, (0.0,))
    assert info.direction_norm == 0.0 and math.isnan(info.lipschitz_estimate)
    assert torch.equal(flat_params(gen), theta0)


def test_safeguard_counters_add_up_over_steps() -> None:
    """The state's shrinks, restarts and rejections are the sums of the steps' StepInfo
    counts (three steps: two shrinking, one rejected)."""
    gen, z = mlp(), latents(10)
    opt = NaturalGradient(gen.parameters(), gen, lr=1e4, damping=1e-2, momentum=0.5,
                          safeguard=Armijo(max_shrinks=40))  # fmt: skip
    infos = []
    for lr, max_shrinks in ((1e4, 40), (1e4, 40), (1e6, 1)):
        opt.param_groups[0]["lr"] = lr
        opt.safeguard = Armijo(max_shrinks=max_shrinks)
        run_steps(opt, gen, z, 1)
        infos.append(opt.last_step_info)
    st = opt.state["natural_gradient"]
    assert [i.rejected for i in infos] == [False, False, True]
    assert infos[0].shrinks > 0 and infos[1].shrinks > 0 and infos[2].shrinks == 1
    assert st["shrinks"] == sum(i.shrinks for i in infos)
    assert st["restarts"] == sum(i.restarts for i in infos) >= 1
    assert st["rejections"] == 1
    for i in infos:  # one trial per restart and per halving, plus the first
        assert len(i.trial_losses) == 1 + i.restarts + i.shrinks


def test_loading_a_state_discards_the_optimisers_own_factorisation() -> None:
    """An optimiser that has already stepped elsewhere (other latents, a factor of its own)
    and then loads a state continues exactly as the optimiser that wrote it."""
    z, other = latents(10), latents(10, seed=9)

    def make(gen: nn.Module) -> NaturalGradient:
        return NaturalGradient(gen.parameters(), gen, lr=0.2, damping=1e-2, metric_every=5)

    gen_a = mlp()
    opt_a = make(gen_a)
    run_steps(opt_a, gen_a, z, 1)
    saved = copy.deepcopy(opt_a.state_dict())
    gen_state = copy.deepcopy(gen_a.state_dict())
    run_steps(opt_a, gen_a, z, 2)
    gen_b = mlp(seed=4)
    opt_b = make(gen_b)
    run_steps(opt_b, gen_b, other, 1)  # its own metric, not yet due for a refresh
    gen_b.load_state_dict(gen_state)
    opt_b.load_state_dict(saved)
    run_steps(opt_b, gen_b, z, 2)
    assert not opt_b.last_step_info.metric_refreshed
    assert torch.equal(flat_params(gen_b), flat_params(gen_a))


THREAD_CASES = [*DDP_CASES, (
    "cholesky-rank-sampler", 0.3,  # rank 0's draw is used, whatever the other ranks draw
    {"solver": "cholesky", "latent_sampler": lambda n: latents(n, seed=5 + distributed.rank())},
)]  # fmt: skip


def _thread_rank(rank: int) -> dict:
    """Every case on one of two thread ranks: the loss on this rank's 6 of the 12 latents, the
    gradient that of the loss on all 12 (what DDP leaves in .grad)."""
    z = latents(DDP_LATENTS)
    share = z[6 * rank : 6 * rank + 6]
    out = {}
    for name, lr, kwargs in THREAD_CASES:
        gen = mlp()
        out[name] = ng_run(gen, gen, share, lr, kwargs, union=z)
    for name, kwargs in (("own-loss", {"solver": "cg"}), ("empty-share", {"metric_samples": 1})):
        try:  # own-loss: each rank's gradient is that of its own share, not the union's
            gen = mlp()
            ng_run(gen, gen, share, 0.3, kwargs, union=None if name == "own-loss" else z)
        except (RuntimeError, ValueError) as err:
            out[name] = str(err)
    out["resumed"] = resumed_run(share, z)
    gen = mlp()
    opt = NaturalGradient(gen.parameters(), gen, solver="cg")
    opt.set_latents(share)
    sq_loss(gen, z).backward()
    if rank == 1:  # a gradient that is not finite on one rank only
        gen[0].weight.grad[0, 0] = math.nan
    try:
        opt.step()
    except NonFiniteError as err:
        out["nan-on-rank-1"] = str(err)
    return out


def resumed_run(z: torch.Tensor, union: torch.Tensor | None = None) -> torch.Tensor:
    """One step, a checkpoint, and two steps of a new optimiser resumed from it (the metric of
    step 0 rebuilt from the stored point and latents); the move of the three steps."""
    gen = mlp()
    theta0 = flat_params(gen)
    opt = NaturalGradient(gen.parameters(), gen, lr=0.2, damping=1e-2, metric_every=5)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = sq_loss(gen, z)
        (loss if union is None else sq_loss(gen, union)).backward()
        return loss

    opt.set_latents(z)
    opt.step(closure)
    saved = copy.deepcopy(opt.state_dict())
    opt = NaturalGradient(gen.parameters(), gen, lr=0.2, damping=1e-2, metric_every=5)
    opt.load_state_dict(saved)
    for _ in range(2):
        opt.set_latents(z)
        opt.step(closure)
    assert not opt.last_step_info.metric_refreshed
    return flat_params(gen) - theta0


def test_thread_ranks_step_equals_the_step_on_the_union_of_latents(monkeypatch) -> None:
    """Two ranks as threads over ottokit.distributed's collectives, each with the gradient of
    the loss on all 12 latents and the metric on its 6: three steps of every DDP case equal
    those of one process on the 12 (metric gathered or all-reduced, the subsample and the
    sampler's draw shared, the safeguard's losses averaged), and so does a run resumed from a
    checkpoint (whose metric latents are the union's); gradients that differ between the
    ranks, a gradient not finite on one rank only and a subsample that leaves a rank without
    latents are refused on both."""
    ranks = thread_ranks(monkeypatch, _thread_rank)
    monkeypatch.undo()
    z = latents(DDP_LATENTS)
    _assert_every_rank_ran_the_union(ranks, THREAD_CASES, z)
    assert ranks[0]["woodbury-safeguard"]["shrinks"] > 0
    ref = resumed_run(z)
    for r in ranks:
        assert rel(r["resumed"], ref) < 1e-10
        assert r["nan-on-rank-1"] == (
            "the generator gradient is not finite (NaN or inf); the step was not taken"
        )
        assert re.fullmatch(
            "the generator gradients differ between ranks; compute the loss through the "
            "generator wrapped in DistributedDataParallel \\(ottokit.distributed.wrap_ddp\\), "
            "which averages them, and pass the unwrapped module here", r["own-loss"],
        )  # fmt: skip
        assert re.fullmatch(
            "metric_samples=1 leaves a rank without metric latents; use a larger "
            "metric_samples or fewer processes", r["empty-share"],
        )  # fmt: skip


@pytest.mark.parametrize(
    "state", [[1, 2], {"state": [1]}, {"state": {"natural_gradient": 3}}, {"state": {}}]
)
def test_a_state_dict_of_another_kind_is_refused(state) -> None:
    gen = mlp()
    opt = NaturalGradient(gen.parameters(), gen)
    with pytest.raises(ValueError, match=(
        r"^this state_dict was not written by NaturalGradient \(it holds no 'natural_gradient' "
        r"state\); load the state of a NaturalGradient optimiser$"
    )):  # fmt: skip
        opt.load_state_dict(state)


def _make_resumable(gen: nn.Module) -> NaturalGradient:
    return NaturalGradient(gen.parameters(), gen, lr=0.2, damping=1e-2, momentum=0.5,
                           metric_every=3)  # fmt: skip


def test_the_state_of_an_optimiser_that_has_not_stepped_resumes_it() -> None:
    """A state saved before the first step (no metric point, no buffers yet) loads into an
    optimiser that has stepped elsewhere, is saved back unchanged, and the loaded optimiser
    steps exactly like the one that wrote it."""
    z = latents(6)
    gen_a, gen_b = mlp(), mlp(seed=4)
    opt_a = _make_resumable(gen_a)
    saved = copy.deepcopy(opt_a.state_dict())
    opt_b = _make_resumable(gen_b)
    run_steps(opt_b, gen_b, latents(6, seed=9), 1)
    gen_b.load_state_dict(gen_a.state_dict())
    opt_b.load_state_dict(saved)
    again = opt_b.state_dict()["state"]["natural_gradient"]
    assert again.keys() == saved["state"]["natural_gradient"].keys()
    assert again["metric_params"] is None and again["metric_latents"] is None
    run_steps(opt_a, gen_a, z, 3)
    run_steps(opt_b, gen_b, z, 3)
    assert torch.equal(flat_params(gen_b), flat_params(gen_a))


def test_a_float32_state_resumes_a_float64_optimiser_as_its_float64_cast() -> None:
    """Loading casts the state's metric point, momentum and previous direction to the
    generator's dtype: a float32 checkpoint (taken mid-cycle, so the metric is rebuilt at the
    stored point) resumes a float64 run exactly as the same checkpoint cast by hand."""
    z = latents(6)
    gen32 = mlp().float()
    opt32 = _make_resumable(gen32)
    run_steps(opt32, gen32, z.float(), 1)
    saved = copy.deepcopy(opt32.state_dict())
    cast = copy.deepcopy(saved)
    for key in ("metric_params", "momentum_buffer", "prev_direction"):
        assert saved["state"]["natural_gradient"][key].dtype == torch.float32
        cast["state"]["natural_gradient"][key] = cast["state"]["natural_gradient"][key].double()
    runs = []
    keys = set(saved["state"]["natural_gradient"])
    for state in (saved, cast):
        gen = mlp()
        gen.load_state_dict(gen32.state_dict())
        opt = _make_resumable(gen)
        opt.load_state_dict(state)
        run_steps(opt, gen, z, 2)
        assert not opt.last_step_info.metric_refreshed
        assert set(opt.state_dict()["state"]["natural_gradient"]) == keys
        runs.append(flat_params(gen))
    assert torch.equal(runs[0], runs[1])


def _no_grad_step() -> None:
    gen = mlp()
    opt = NaturalGradient(gen.parameters(), gen)
    opt.set_latents(latents(4))
    opt.step()


def _step_without_latents() -> None:
    gen = mlp()
    opt = NaturalGradient(gen.parameters(), gen)
    sq_loss(gen, latents(4)).backward()
    opt.step()


def _frozen_param() -> None:
    gen = mlp()
    gen[0].bias.requires_grad_(False)
    NaturalGradient([gen[0].bias], gen)


@pytest.mark.parametrize(("build", "error", "whole"), [
    (lambda: NaturalGradient(mlp().parameters(), mlp(), damping=0.0, solver="woodbury"),
     ValueError, "the woodbury solver needs damping > 0 (it divides by damping); use damping "
     "such as 1e-3, or solver='cholesky' / 'cg'"),
    (lambda: NaturalGradient(mlp().parameters(), mlp(), latent_sampler=3), TypeError,
     "latent_sampler must be a callable n -> latents of shape (n, ...)"),
    (_step_without_latents, RuntimeError,
     "NaturalGradient needs latents for its metric: call opt.set_latents(z) before opt.step(), "
     "or pass latent_sampler=lambda n: torch.randn(n, latent_dim)"),
    (_no_grad_step, RuntimeError, "generator parameter '0.weight' has no gradient; call "
     "loss.backward() before opt.step(), or pass a closure that does"),
    (_frozen_param, ValueError, "a parameter passed to NaturalGradient has requires_grad=False; "
     "pass exactly the generator's trainable parameters, e.g. generator.parameters()"),
    (lambda: NaturalGradient(mlp().parameters(), mlp()), ValueError,
     "params must be exactly the generator's trainable parameters (each once): got 4 tensors "
     "for 4 trainable generator parameters; use NaturalGradient(generator.parameters(), "
     "generator, ...)"),
    (lambda: NaturalGradient([{"params": [p]} for p in mlp().parameters()], mlp()), ValueError,
     "NaturalGradient takes a single parameter group (the metric couples all parameters), "
     "got 4 groups"),
], ids=["woodbury-damping", "sampler-callable", "no-latents", "no-gradient", "frozen",
        "foreign-params", "groups"])  # fmt: skip
def test_optimiser_guards_say_the_whole_fix(build, error: type, whole: str) -> None:
    with pytest.raises(error, match=f"^{re.escape(whole)}$"):
        build()


@pytest.mark.parametrize(
    ("bad", "shown"),
    [(torch.zeros(3, 3, dtype=DT), "torch.Size([3, 3])"), ([0.0] * 4, "<class 'list'>")],
)
def test_latent_sampler_names_the_shape_or_type_it_returned(bad, shown: str) -> None:
    gen = mlp()
    opt = NaturalGradient(gen.parameters(), gen, metric_samples=4, latent_sampler=lambda n: bad)
    sq_loss(gen, latents(4)).backward()
    whole = f"latent_sampler(4) must return a tensor of shape (4, ...), got {shown}"
    with pytest.raises(ValueError, match=f"^{re.escape(whole)}$"):
        opt.step()


def test_one_dimensional_sampled_latents_step_as_the_dense_solve() -> None:
    """latents of shape (n,) from the sampler are a valid batch, as they are for set_latents."""
    gen, z = _ScalarLatent(), torch.linspace(-1.0, 1.0, 5, dtype=DT)
    expected = reference_step(gen, z, lr=0.3, lam=1e-2)
    theta0 = flat_params(gen)
    opt = NaturalGradient(
        gen.parameters(), gen, lr=0.3, damping=1e-2, solver="cholesky", metric_samples=5,
        latent_sampler=lambda n: z[:n],
    )  # fmt: skip
    opt.zero_grad()
    sq_loss(gen, z).backward()
    opt.step()
    np.testing.assert_allclose((flat_params(gen) - theta0).numpy(), expected, rtol=1e-8, atol=1e-11)


def test_a_one_latent_subsample_solves_with_its_own_metric() -> None:
    """metric_samples=1: v solves (J_1^T J_1 + lambda I) v = grad J, J_1 of the drawn latent."""
    gen, z = mlp(), latents(6)
    opt = NaturalGradient(gen.parameters(), gen, lr=0.3, damping=1e-2, solver="cholesky",
                          metric_samples=1, seed=3)  # fmt: skip
    probe = copy.deepcopy(gen)
    sq_loss(probe, z).backward()
    grad = torch.nn.utils.parameters_to_vector([p.grad for p in probe.parameters()]).numpy()
    run_steps(opt, gen, z, 1)
    used = opt.state["natural_gradient"]["metric_latents"]
    assert used.shape == (1, 3)
    assert any(torch.equal(used[0], r) for r in z)
    jac = reference_jacobian(probe, used)
    expected = scipy.linalg.solve(jac.T @ jac + 1e-2 * np.eye(len(grad)), grad, assume_a="pos")
    np.testing.assert_allclose(opt.last_direction.numpy(), expected, rtol=1e-8, atol=1e-11)


def test_a_single_parameter_group_steps_as_the_dense_solve() -> None:
    gen, z = mlp(), latents(8)
    expected = reference_step(gen, z, lr=0.3, lam=1e-2)
    theta0 = flat_params(gen)
    opt = NaturalGradient([{"params": gen.parameters()}], gen, lr=0.3, damping=1e-2)
    run_steps(opt, gen, z, 1)
    np.testing.assert_allclose((flat_params(gen) - theta0).numpy(), expected, rtol=1e-8, atol=1e-11)


def test_defaults_are_the_documented_ones() -> None:
    """lr 0.1, damping 1e-3, seed 0; no step info or direction before the first step."""
    gen, z = mlp(), latents(8)
    expected = reference_step(gen, z, lr=0.1, lam=1e-3)
    theta0 = flat_params(gen)
    opt = NaturalGradient(gen.parameters(), gen, solver="cholesky")
    assert opt.last_step_info is None and opt.last_direction is None
    run_steps(opt, gen, z, 1)
    np.testing.assert_allclose((flat_params(gen) - theta0).numpy(), expected, rtol=1e-8, atol=1e-11)
    drawn = {}
    for kwargs in ({}, {"seed": 0}):
        gen = mlp()
        opt = NaturalGradient(gen.parameters(), gen, metric_samples=3, **kwargs)
        run_steps(opt, gen, z, 1)
        drawn[len(kwargs)] = opt.state["natural_gradient"]["metric_latents"]
    assert torch.equal(drawn[0], drawn[1])


def test_metric_every_refreshes_at_multiples_of_k() -> None:
    gen, z = mlp(), latents(6)
    opt = NaturalGradient(gen.parameters(), gen, lr=0.1, metric_every=2)
    refreshed = []
    for _ in range(5):
        run_steps(opt, gen, z, 1)
        refreshed.append(opt.last_step_info.metric_refreshed)
    assert refreshed == [True, False, True, False, True]


def _set_grad(gen: nn.Module, g: torch.Tensor) -> None:
    torch.nn.utils.vector_to_parameters(g, [p.grad for p in gen.parameters()])


def _gradient_agreement_rank(rank: int) -> dict:
    """Each case: this rank's hand-set gradient, one step; "ok" and the direction, or the
    error."""
    share = latents(DDP_LATENTS)[6 * rank : 6 * rank + 6]
    n = flat_params(mlp()).numel()
    big = torch.full((n,), 1e3, dtype=DT)
    same_norm = torch.zeros(n, dtype=DT)
    same_norm[: 2 - rank] = 1.0 if rank == 0 else math.sqrt(2.0)
    cases = {
        # |g|^2 = 32e6: a difference of 1e-8 in one entry is rounding at this scale
        "rounding": big + (1e-8 if rank == 1 else 0.0) * (torch.arange(n) == 0).to(DT),
        "zero": torch.zeros(n, dtype=DT),  # a stationary point on every rank
        # the same |g|^2 = 2 and positive sums 2 and sqrt(2): different gradients
        "same-norm": same_norm,
    }
    out = {}
    for name, g in cases.items():
        gen = mlp()
        opt = NaturalGradient(gen.parameters(), gen, lr=0.1, damping=1e-2, solver="cholesky")
        opt.set_latents(share)
        sq_loss(gen, share).backward()
        _set_grad(gen, g)
        try:
            opt.step()
            out[name] = opt.last_direction.clone()
        except RuntimeError as err:
            out[name] = str(err)
    return out


def test_ranks_gradients_are_compared_relative_to_their_size(monkeypatch) -> None:
    """Gradients that agree up to rounding relative to |g| and all-zero gradients step on
    every rank; gradients with equal norms but different sums are refused on every rank."""
    ranks = thread_ranks(monkeypatch, _gradient_agreement_rank)
    monkeypatch.undo()
    for r in ranks:
        assert isinstance(r["rounding"], torch.Tensor)
        assert rel(r["rounding"], ranks[0]["rounding"]) < 1e-9
        assert isinstance(r["zero"], torch.Tensor)
        assert float(r["zero"].abs().max()) == 0.0
        assert isinstance(r["same-norm"], str)
        assert r["same-norm"].startswith("the generator gradients differ between ranks; ")

"""Connection, curvature and holonomy of the discriminator potential (seed 001 §9.2, §10)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats
from torch import nn

from ottokit.gan.connection import (
    FunctionPotential,
    GaussianAffineModel,
    KDEPotential,
    LearnedPotential,
    ModuleGenerator,
    connection,
    connection_autograd,
    curvature,
    curvature_exact,
    curvature_heatmap,
    curvature_terms,
    gaussian_logpdf,
    gaussian_mixture_logpdf,
    holonomy,
    line_grid,
    square_grid,
)

DT = torch.float64


def _orthonormal(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    Q, _ = torch.linalg.qr(torch.randn(n, 2, generator=g, dtype=DT))
    return Q[:, 0], Q[:, 1]


@pytest.fixture(scope="module")
def model1() -> GaussianAffineModel:
    return GaussianAffineModel(1, gaussian_logpdf([1.0], [[0.64]]))


@pytest.fixture(scope="module")
def model2() -> GaussianAffineModel:
    q = gaussian_mixture_logpdf([0.3, 0.7], [[-1.0, 0.5], [1.0, 0.0]], [0.5, 0.8])
    return GaussianAffineModel(2, q)


THETA1 = ([[1.2]], [0.3])
THETA2 = ([[1.1, 0.3], [-0.2, 0.8]], [0.2, -0.1])
E_I = torch.tensor([1.0, 0.0], dtype=DT)
E_J = torch.tensor([0.0, 1.0], dtype=DT)


def test_target_log_densities_match_scipy() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((7, 2))
    cov = np.array([[0.7, 0.2], [0.2, 0.5]])
    f = gaussian_logpdf([0.1, -0.3], cov)
    ref = stats.multivariate_normal([0.1, -0.3], cov).logpdf(x)
    assert np.allclose(f(torch.as_tensor(x)).numpy(), ref, atol=1e-13)
    mix = gaussian_mixture_logpdf([0.25, 0.75], [[0.0, 0.0], [1.0, -1.0]], [0.3, 1.5])
    ref = np.log(
        0.25 * stats.multivariate_normal([0, 0], 0.3 * np.eye(2)).pdf(x)
        + 0.75 * stats.multivariate_normal([1, -1], 1.5 * np.eye(2)).pdf(x)
    )
    assert np.allclose(mix(torch.as_tensor(x)).numpy(), ref, atol=1e-13)


@pytest.mark.parametrize("dim", [1, 2])
def test_affine_model_density_and_potential_gradient(
    dim: int, model1: GaussianAffineModel, model2: GaussianAffineModel
) -> None:
    m = model1 if dim == 1 else model2
    theta = m.theta_from(*(THETA1 if dim == 1 else THETA2))
    A, b = (np.asarray(t, dtype=float) for t in (THETA1 if dim == 1 else THETA2))
    Sigma = A @ A.T
    x = torch.as_tensor(np.random.default_rng(1).standard_normal((9, dim)), dtype=DT)
    ref = stats.multivariate_normal(b, Sigma).logpdf(x.numpy()).reshape(-1)
    assert np.allclose(m.log_density(theta, x).numpy(), ref, atol=1e-13)
    # grad_x phi = grad log q + Sigma^{-1}(x - b)
    xx = x.clone().requires_grad_(True)
    grad_q = torch.autograd.grad(m.target_logpdf(xx).sum(), xx)[0]
    expected = grad_q + torch.as_tensor((np.linalg.solve(Sigma, (x.numpy() - b).T)).T)
    assert torch.allclose(m.grad_x(theta, x), expected, atol=1e-12)


def test_kde_potential_matches_scipy_gaussian_kde(model1: GaussianAffineModel) -> None:
    theta = model1.theta_from(*THETA1)
    z = torch.randn(40, 1, generator=torch.Generator().manual_seed(2), dtype=DT)
    kde = KDEPotential(model1.sample, z, model1.target_logpdf, bandwidth="scott")
    s = model1.sample(theta, z).numpy().ravel()
    n = s.size
    ref = stats.gaussian_kde(s, bw_method=n ** (-1 / 5))  # kernel std = std(s) * n^(-1/5)
    x = line_grid(-2.0, 3.0, 11).points
    assert np.allclose(kde.log_kde(theta, x).numpy(), ref.logpdf(x.numpy().ravel()), atol=1e-12)


@pytest.mark.parametrize("dim", [1, 2])
def test_connection_is_first_order_accurate(
    dim: int, model1: GaussianAffineModel, model2: GaussianAffineModel
) -> None:
    """Lemma 9.6 with eps = 0: |A_hat - A| = O(Delta), A from the hand-derived closed form."""
    m = model1 if dim == 1 else model2
    theta = m.theta_from(*(THETA1 if dim == 1 else THETA2))
    u, _ = _orthonormal(m.n_params, seed=3)
    x = (line_grid(-1.0, 2.5, 15) if dim == 1 else square_grid(-1.5, 1.5, 5)).points
    exact = m.connection_closed_form(theta, u, x)
    assert torch.allclose(connection_autograd(m, theta, u, x), exact, atol=1e-12)
    errs = [float((connection(m, theta, u, d, x) - exact).abs().max()) for d in (2e-3, 1e-3)]
    assert errs[0] > 1e-6  # not trivially exact
    assert errs[0] / errs[1] == pytest.approx(2.0, rel=0.05)


@pytest.mark.parametrize("dim", [1, 2])
def test_exact_section_is_flat(
    dim: int, model1: GaussianAffineModel, model2: GaussianAffineModel
) -> None:
    m = model1 if dim == 1 else model2
    theta = m.theta_from(*(THETA1 if dim == 1 else THETA2))
    e_i, e_j = _orthonormal(m.n_params, seed=4)
    x = (line_grid(-1.0, 2.5, 15) if dim == 1 else square_grid(-1.5, 1.5, 5)).points
    for delta in (1e-1, 1e-2, 1e-3):
        T = curvature_terms(m, theta, e_i, e_j, delta, x)
        scale = float(T["A_i"].abs().max())
        assert scale > 0.1
        F = curvature(m, theta, e_i, e_j, delta, x)
        assert float(F.abs().max()) <= 1e-8 * scale
    # the 2-form itself: nested forward derivatives in the two orders agree (Schwarz)
    F2 = curvature_exact(m, theta, e_i, e_j, x)
    h = 1e-4
    mixed = (
        m.connection_closed_form(theta + h * e_i, e_j, x)
        - m.connection_closed_form(theta - h * e_i, e_j, x)
    ) / (2 * h)
    assert float(mixed.abs().max()) > 0.1  # each ordered term is O(1) ...
    assert float(F2.abs().max()) <= 1e-12 * float(mixed.abs().max())  # ... their difference is 0


def test_non_telescoping_estimate_is_second_order(model2: GaussianAffineModel) -> None:
    """Exact connection at the base points: F_hat = O(Delta^2), i.e. F_hat/Delta = O(Delta)."""
    theta = model2.theta_from(*THETA2)
    e_i, e_j = _orthonormal(model2.n_params, seed=5)
    x = square_grid(-1.0, 1.0, 4).points
    vals = [
        float(curvature(model2, theta, e_i, e_j, d, x, connection="autograd").abs().max())
        for d in (2e-2, 1e-2, 5e-3)
    ]
    assert vals[0] > 1e-6
    assert vals[0] / vals[1] == pytest.approx(4.0, rel=0.1)
    assert vals[1] / vals[2] == pytest.approx(4.0, rel=0.05)


def test_kde_with_common_random_numbers_is_flat(model2: GaussianAffineModel) -> None:
    theta = model2.theta_from(*THETA2)
    z = torch.randn(60, 2, generator=torch.Generator().manual_seed(6), dtype=DT)
    kde = KDEPotential(model2.sample, z, model2.target_logpdf, bandwidth=0.4)
    e_i, e_j = _orthonormal(model2.n_params, seed=7)
    x = square_grid(-1.0, 1.0, 4).points
    for delta in (1e-1, 1e-3):
        T = curvature_terms(kde, theta, e_i, e_j, delta, x)
        F = T["A_j_at_i"] - T["A_j"] - T["A_i_at_j"] + T["A_i"]
        assert float(F.abs().max()) <= 1e-8 * float(T["A_i"].abs().max())
    assert float(curvature_exact(kde, theta, e_i, e_j, x).abs().max()) < 1e-10
    h = holonomy(kde, theta, e_i, e_j, 0.2, 3, x)
    assert h.max_abs <= 1e-12 * h.scale


def test_exact_holonomy_vanishes(model1: GaussianAffineModel) -> None:
    theta = model1.theta_from(*THETA1)
    x = line_grid(-1.0, 2.5, 15).points
    for size in (0.05, 0.2, 0.4):
        h = holonomy(model1, theta, E_I, E_J, size, 4, x)
        assert h.path.shape == (17, 2)
        assert torch.allclose(h.path[8], theta + size * (E_I + E_J))
        assert h.scale > 0.5 and h.max_abs <= 1e-12 * h.scale


def test_heatmap_data(model2: GaussianAffineModel, model1: GaussianAffineModel) -> None:
    theta = model2.theta_from(*THETA2)
    e_i, e_j = _orthonormal(model2.n_params, seed=8)
    grid = square_grid(-1.0, 1.0, 6)
    hm = curvature_heatmap(model2, theta, e_i, e_j, 1e-2, grid, connection="autograd")
    assert hm["abs_F"].shape == (6, 6) and hm["F"].shape == (36, 2)
    F = curvature(model2, theta, e_i, e_j, 1e-2, grid.points, connection="autograd").numpy()
    assert np.allclose(hm["abs_F"], np.linalg.norm(F, axis=1).reshape(6, 6))
    # row-major layout: abs_F[a, b] is the point (axes[0][a], axes[1][b])
    assert np.allclose(grid.points[7].numpy(), [grid.axes[0][1], grid.axes[1][1]])
    line = line_grid(-1.0, 2.0, 9)
    hm1 = curvature_heatmap(model1, model1.theta_from(*THETA1), E_I, E_J, 1e-2, line)
    assert hm1["abs_F"].shape == (9,) and np.all(hm1["abs_F"] == 0.0)


class QuadraticLogit(nn.Module):
    """logit = w0 + w1 y + w2 y^2, y = x - 0.5: the family containing log N(1, .8^2)/N(b, a^2),
    so the discriminator loss is convex and full-batch gradient descent contracts linearly."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(2, 1).to(DT)
        with torch.no_grad():
            self.lin.weight.zero_()
            self.lin.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x - 0.5
        return self.lin(torch.cat([y, y * y], dim=1))


@pytest.fixture(scope="module")
def learned_setup(model1: GaussianAffineModel) -> dict:
    g = torch.Generator().manual_seed(0)
    z = torch.randn(256, 1, generator=g, dtype=DT)
    real = 1.0 + 0.8 * torch.randn(256, 1, generator=g, dtype=DT)

    def make(n_steps: int, **kw) -> LearnedPotential:
        kw.setdefault("n_init_steps", 600)
        return LearnedPotential(
            model1.sample, QuadraticLogit(), real, z, n_steps=n_steps, lr=0.3, **kw
        )

    return {
        "make": make,
        "theta": model1.theta_from(*THETA1),
        "x": line_grid(-1.0, 2.5, 15).points,
    }


def test_learned_curvature_is_path_dependence_and_shrinks_with_budget(
    learned_setup: dict, model1: GaussianAffineModel
) -> None:
    make, theta, x = learned_setup["make"], learned_setup["theta"], learned_setup["x"]
    delta = 0.1
    res = {}
    for n in (30, 120):
        T = curvature_terms(make(n), theta, E_I, E_J, delta, x)
        F = T["A_j_at_i"] - T["A_j"] - T["A_i_at_j"] + T["A_i"]
        # all terms but the two corner estimates telescope
        corner = (T["grad_corner_1"] - T["grad_corner_2"]) / delta
        assert torch.allclose(F, corner, atol=1e-12)
        res[n] = (F, T)
    f30, f120 = (float(res[n][0].abs().mean()) for n in (30, 120))
    assert f30 > 1e-2  # visible path dependence with a short fine-tune
    assert f120 < f30 / 20  # longer fine-tuning -> much smaller |F_hat|

    # F_hat tracks the discriminator's lag behind its own converged estimate, point by point
    c = theta + delta * (E_I + E_J)
    converged = make(1500).grad_along([theta, c], x)[1]
    for n, rho_min in ((30, 0.7), (120, 0.95)):
        lag = (res[n][1]["grad_corner_1"] - converged).abs().ravel()
        rho = stats.spearmanr(res[n][0].abs().ravel().numpy(), lag.numpy())[0]
        assert rho > rho_min
    # ... and the total error against the exact potential also falls with the budget, but keeps a
    # static (finite-sample) part that F_hat cannot see: it telescopes like any single-valued error
    g_exact = model1.grad_x(c, x)
    eps = {n: float((res[n][1]["grad_corner_1"] - g_exact).abs().mean()) for n in (30, 120)}
    assert eps[120] < eps[30]
    assert eps[120] > 10 * f120 * delta


def test_learned_curvature_does_not_shrink_with_delta(learned_setup: dict) -> None:
    """The 1/Delta in A_hat turns an O(Delta) lag into an O(1) F_hat (no O(Delta) decay)."""
    make, theta, x = learned_setup["make"], learned_setup["theta"], learned_setup["x"]
    lp = make(40)
    f = [float(curvature(lp, theta, E_I, E_J, d, x).abs().mean()) for d in (0.1, 0.025)]
    assert f[1] > 0.5 * f[0] > 1e-3


def test_learned_holonomy_is_hysteresis(learned_setup: dict, model1: GaussianAffineModel) -> None:
    make, theta, x = learned_setup["make"], learned_setup["theta"], learned_setup["x"]
    h_short = holonomy(make(15), theta, E_I, E_J, 0.2, 3, x)
    h_long = holonomy(make(90), theta, E_I, E_J, 0.2, 3, x)
    h_exact = holonomy(model1, theta, E_I, E_J, 0.2, 3, x)
    assert h_short.rms > 1e-3 * h_short.scale
    assert h_long.rms < h_short.rms / 10
    assert h_exact.max_abs <= 1e-12 * h_exact.scale


def test_learned_runs_are_deterministic_and_leave_the_module_untouched(learned_setup: dict) -> None:
    make, theta, x = learned_setup["make"], learned_setup["theta"], learned_setup["x"]
    lp = make(5, n_init_steps=5)
    before = [p.detach().clone() for p in lp.discriminator.parameters()]
    g1 = lp.grad_along([theta, theta + 0.1 * E_I], x)
    lp2 = make(5, n_init_steps=5)
    assert torch.equal(g1, lp2.grad_along([theta, theta + 0.1 * E_I], x))
    assert all(
        torch.equal(a, b) for a, b in zip(before, lp.discriminator.parameters(), strict=True)
    )
    assert not torch.equal(g1[0], g1[1])


def test_module_generator_and_function_potential() -> None:
    torch.manual_seed(0)
    G = nn.Sequential(nn.Linear(1, 3), nn.Tanh(), nn.Linear(3, 1))
    gen = ModuleGenerator(G, dim=1)
    assert gen.n_params == 10
    z = torch.randn(5, 1, dtype=DT)
    assert torch.allclose(gen(gen.theta0, z), G(z))
    q = gaussian_logpdf([0.0], [[1.0]])
    kde = KDEPotential(gen, torch.randn(30, 1, dtype=DT), q, bandwidth=0.3)
    e_i, e_j = _orthonormal(10, seed=9)
    x = line_grid(-1.0, 1.0, 7).points
    assert float(curvature(kde, gen.theta0, e_i, e_j, 1e-2, x).abs().max()) < 1e-10
    pot = FunctionPotential(lambda t, xx: t[0] * xx[:, 0] ** 2 + t[1] * xx[:, 0], 2, 1)
    assert torch.allclose(connection(pot, torch.zeros(2, dtype=DT), E_I, 0.5, x), 2 * x)


def test_validation_errors(model1: GaussianAffineModel, learned_setup: dict) -> None:
    theta = model1.theta_from(*THETA1)
    x = line_grid(-1.0, 1.0, 5).points
    with pytest.raises(ValueError, match="delta must be a positive number"):
        curvature(model1, theta, E_I, E_J, 0.0, x)
    with pytest.raises(ValueError, match="delta must be a positive number"):
        connection(model1, theta, E_I, -1e-3, x)
    with pytest.raises(ValueError, match="unit vector"):
        curvature(model1, theta, 2 * E_I, E_J, 1e-2, x)
    with pytest.raises(ValueError, match="parallel"):
        curvature(model1, theta, E_I, -E_I, 1e-2, x)
    with pytest.raises(ValueError, match="length 2"):
        curvature(model1, torch.zeros(3, dtype=DT), E_I, E_J, 1e-2, x)
    with pytest.raises(ValueError, match="length 2"):
        connection(model1, theta, torch.ones(3, dtype=DT) / 3**0.5, 1e-2, x)
    with pytest.raises(ValueError, match=r"x must be an \(n, 1\)"):
        curvature(model1, theta, E_I, E_J, 1e-2, torch.zeros(4, 2, dtype=DT))
    with pytest.raises(ValueError, match="full rank"):
        curvature(model1, torch.tensor([0.0, 1.0], dtype=DT), E_I, E_J, 1e-2, x)
    with pytest.raises(ValueError, match="finite"):
        connection(model1, torch.tensor([float("nan"), 0.0]), E_I, 1e-2, x)
    with pytest.raises(ValueError, match="size must be a positive number"):
        holonomy(model1, theta, E_I, E_J, 0.0, 3, x)
    with pytest.raises(ValueError, match="n_segments must be a positive integer"):
        holonomy(model1, theta, E_I, E_J, 0.1, 0, x)
    with pytest.raises(ValueError, match="connection"):
        curvature(model1, theta, E_I, E_J, 1e-2, x, connection="spline")
    with pytest.raises(TypeError, match="SectionPotential"):
        curvature(learned_setup["make"](1), theta, E_I, E_J, 1e-2, x, connection="autograd")
    with pytest.raises(TypeError, match="Potential"):
        curvature(lambda t, xx: xx, theta, E_I, E_J, 1e-2, x)
    with pytest.raises(ValueError, match="dim must be 1 or 2"):
        GaussianAffineModel(3, gaussian_logpdf([0.0] * 3, np.eye(3)))
    with pytest.raises(ValueError, match="n_params"):
        KDEPotential(lambda t, z: z, torch.zeros(4, 1), model1.target_logpdf)
    with pytest.raises(ValueError, match="bandwidth must be a positive number"):
        KDEPotential(model1.sample, torch.zeros(4, 1), model1.target_logpdf, bandwidth=-1.0)
    with pytest.raises(ValueError, match="optimizer"):
        learned_setup["make"](1, optimizer="lbfgs")
    with pytest.raises(ValueError, match="positive definite"):
        gaussian_logpdf([0.0], [[-1.0]])
    with pytest.raises(ValueError, match="lo < hi"):
        line_grid(1.0, 0.0, 5)


def _learned(model1: GaussianAffineModel, **kw) -> LearnedPotential:
    """A learned potential of the 1-D affine model on 8 target samples (the bad-input base)."""
    args = {
        "generator": model1.sample,
        "discriminator": nn.Linear(1, 1),
        "real": torch.linspace(0.0, 2.0, 8, dtype=DT).reshape(-1, 1),
        "z": torch.linspace(-1.0, 1.0, 8, dtype=DT).reshape(-1, 1),
        "n_steps": 1,
    }
    args.update(kw)
    return LearnedPotential(**args)


class _Tuple(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, x], dim=1)


@pytest.mark.parametrize(
    ("build", "error", "match"),
    [
        (lambda m: gaussian_logpdf([0.0, 0.0], np.eye(3)), ValueError, r"cov must be 2 x 2"),
        (lambda m: gaussian_mixture_logpdf([0.5, 0.6], [[0.0], [1.0]], [1.0, 1.0]), ValueError,
         "weights must be positive and sum to 1"),
        (lambda m: gaussian_mixture_logpdf([-0.5, 1.5], [[0.0], [1.0]], [1.0, 1.0]), ValueError,
         "weights must be positive and sum to 1"),
        (lambda m: gaussian_mixture_logpdf([0.5, 0.5], [[0.0, 1.0, 2.0]], [1.0]), ValueError,
         r"means must have 2 rows \(one per weight\), got 1"),
        (lambda m: FunctionPotential("x ** 2", 2, 1), TypeError, "fn must be callable"),
        (lambda m: GaussianAffineModel(1, 0.0), TypeError, "target_logpdf must be callable"),
        (lambda m: m.theta_from([[1.2]], [0.3, 0.1]), ValueError, "b must have length 1, got 2"),
        (lambda m: m.theta_from([[1.2, 0.0]], [0.3]), ValueError, r"A must be 1 x 1"),
        (lambda m: KDEPotential(m.sample, torch.zeros(4, 1), None), TypeError,
         "target_logpdf must be callable"),
        (lambda m: KDEPotential(m.sample, torch.zeros(1, 1), m.target_logpdf), ValueError,
         r"z must be an \(N, latent_dim\) array with N >= 2"),
        (lambda m: KDEPotential(m.sample, torch.zeros(4), m.target_logpdf), ValueError,
         r"z must be an \(N, latent_dim\) array with N >= 2"),
        (lambda m: KDEPotential(m.sample, torch.zeros(4, 1), m.target_logpdf, "silverman"),
         ValueError, "bandwidth"),
        (lambda m: ModuleGenerator(lambda t, z: z, dim=1), TypeError,
         "module must be a torch.nn.Module"),
        (lambda m: KDEPotential("affine", torch.zeros(4, 1), m.target_logpdf), TypeError,
         "generator must be callable"),
        (lambda m: _learned(m, real=torch.zeros(1, 1, dtype=DT)), ValueError,
         r"real must be an \(N, dim\) array of target samples"),
        (lambda m: _learned(m, real=torch.zeros(8, 2, dtype=DT)), ValueError,
         "real has dimension 2 but the generator has 1"),
        (lambda m: _learned(m, discriminator=lambda x: x[:, 0]), TypeError,
         "discriminator must be a torch.nn.Module"),
        (lambda m: _learned(m, z=torch.zeros(8, dtype=DT)), ValueError,
         r"z must be an \(N, latent_dim\) array, got \(8,\)"),
        (lambda m: square_grid(1.0, 1.0, 4), ValueError, "need lo < hi, got lo=1.0, hi=1.0"),
        (lambda m: line_grid(0.0, 1.0, 1), ValueError, "n must be"),
    ],
)
def test_constructors_reject_bad_input(
    model1: GaussianAffineModel, build, error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        build(model1)


def test_learned_potential_rejects_a_discriminator_of_the_wrong_output_shape(
    model1: GaussianAffineModel,
) -> None:
    """Two logits per point cannot be a potential: caught at the first fine-tuning step."""
    lp = _learned(model1, discriminator=nn.Sequential(nn.Linear(1, 1), _Tuple()))
    theta = model1.theta_from(*THETA1)
    with pytest.raises(ValueError, match=r"discriminator must map \(n, dim\) to n logits"):
        connection(lp, theta, E_I, 1e-2, line_grid(-1.0, 1.0, 3).points)


def test_exact_derivatives_need_a_single_valued_section(
    model1: GaussianAffineModel, learned_setup: dict
) -> None:
    lp = learned_setup["make"](1, n_init_steps=1)
    theta = model1.theta_from(*THETA1)
    x = line_grid(-1.0, 1.0, 3).points
    with pytest.raises(TypeError, match="connection_autograd needs a single-valued"):
        connection_autograd(lp, theta, E_I, x)
    with pytest.raises(TypeError, match="curvature_exact needs a single-valued"):
        curvature_exact(lp, theta, E_I, E_J, x)
    with pytest.raises(TypeError, match="grid must be a Grid from line_grid or square_grid"):
        curvature_heatmap(model1, theta, E_I, E_J, 1e-2, x)

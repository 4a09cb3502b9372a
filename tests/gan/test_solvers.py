"""The linear solvers of (g_hat + lambda I) v = g against dense SciPy solves of an independent
metric, CG's convergence in exact terms, and its warning when it stops early."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch
from _gan_cases import DT, latents, mlp, net, reference_jacobian
from torch import nn

from ottokit.gan.pullback import PullbackMetric
from ottokit.gan.solvers import (
    AutoSolver,
    CGConvergenceWarning,
    Cholesky,
    ConjugateGradient,
    LinearSolver,
    SingularMetricError,
    Woodbury,
    as_solver,
)


def dense_metric(gen: nn.Module, z: torch.Tensor) -> np.ndarray:
    """g_hat = J^T J / N from torch.autograd.functional.jacobian (not the code under test)."""
    jac = reference_jacobian(gen, z)
    return jac.T @ jac / z.shape[0]


def rhs(n: int, k: int, seed: int = 4) -> torch.Tensor:
    return torch.randn(k, n, dtype=DT, generator=torch.Generator().manual_seed(seed))


SOLVER_CASES = {
    "cholesky": Cholesky(),
    "cg": ConjugateGradient(maxiter=500, tol=1e-13),
    "woodbury": Woodbury(),
}


@pytest.mark.parametrize("name", list(SOLVER_CASES))
@pytest.mark.parametrize("structured", [True, False])
@pytest.mark.parametrize("project", [False, True])
def test_solvers_match_dense_scipy_solve(name: str, structured: bool, project: bool) -> None:
    """v = (g_hat + lam I)^{-1} b, or (g_hat + lam I)^{-1} g_hat (g_hat + lam I)^{-1} b, for two
    right-hand sides solved with one factor; g_hat (54 x 54) has rank 18."""
    gen, z, lam = net(nn.Tanh, 2, True), latents(9), 1e-2
    solver = SOLVER_CASES[name]
    metric = PullbackMetric(gen, z, structured=structured)
    assert metric.path == ("structured" if structured else "torch.func")
    factor = solver.factor(metric, lam)
    assert factor.solver is solver and factor.damping == lam
    g_hat = dense_metric(gen, z)
    a = g_hat + lam * np.eye(metric.n_params)
    for b in rhs(metric.n_params, 2):
        v, stats = solver.solve(factor, b, project=project)
        x = scipy.linalg.solve(a, b.numpy(), assume_a="pos")
        expected = scipy.linalg.solve(a, g_hat @ x, assume_a="pos") if project else x
        np.testing.assert_allclose(v.numpy(), expected, rtol=1e-8, atol=1e-10)
        assert stats.solver == name and stats.converged
        if name == "cg":
            assert stats.residual < 1e-13 and 2 <= stats.iterations <= (1000 if project else 500)
        else:
            assert (stats.iterations, stats.residual) == (0, None)


def test_cg_ends_within_the_number_of_distinct_eigenvalues() -> None:
    """For x = W z + c, g_hat = I_2 (x) [[E zz^T, E z], [E z^T, 1]] (up to the order of theta):
    4 distinct eigenvalues, so CG is exact after 4 iterations and not before."""
    gen, z, lam = nn.Linear(3, 2).to(DT), latents(30), 1e-3
    metric = PullbackMetric(gen, z)
    g_hat = dense_metric(gen, z)
    assert len(np.unique(np.round(np.linalg.eigvalsh(g_hat), 8))) == 4
    b = rhs(metric.n_params, 1)[0]
    expected = scipy.linalg.solve(g_hat + lam * np.eye(8), b.numpy())
    exact = ConjugateGradient(maxiter=4, tol=1e-9)
    v, stats = exact.solve(exact.factor(metric, lam), b)
    assert stats.converged and stats.iterations == 4 and stats.residual < 1e-9
    np.testing.assert_allclose(v.numpy(), expected, rtol=1e-8)
    short = ConjugateGradient(maxiter=3, tol=1e-9)
    with pytest.warns(CGConvergenceWarning, match="maxiter=3"):
        _, stats3 = short.solve(short.factor(metric, lam), b)
    assert not stats3.converged and stats3.residual > 1e-6


def test_cg_warns_and_records_when_maxiter_is_too_small() -> None:
    gen, z, lam = mlp(), latents(20), 1e-3  # 32 parameters
    metric = PullbackMetric(gen, z)
    cg = ConjugateGradient(maxiter=2, tol=1e-12)
    b = rhs(metric.n_params, 1)[0]
    with pytest.warns(CGConvergenceWarning, match=r"maxiter=2 iterations above tol=1e-12"):
        v, stats = cg.solve(cg.factor(metric, lam), b)
    assert (stats.solver, stats.iterations, stats.converged) == ("cg", 2, False)
    a = dense_metric(gen, z) + lam * np.eye(metric.n_params)
    true_residual = np.linalg.norm(b.numpy() - a @ v.numpy()) / np.linalg.norm(b.numpy())
    assert stats.residual > 1e-3
    assert abs(stats.residual - true_residual) <= 1e-8 * true_residual  # the recursion's is true


def test_cg_warm_start_from_the_solution_needs_no_iteration() -> None:
    gen, z, lam = mlp(), latents(20), 1e-2
    metric = PullbackMetric(gen, z)
    b = rhs(metric.n_params, 1)[0]
    chol = Cholesky()
    x, _ = chol.solve(chol.factor(metric, lam), b)
    warm, cold = ConjugateGradient(50, 1e-10, warm_start=True), ConjugateGradient(50, 1e-10)
    v, stats = warm.solve(warm.factor(metric, lam), b, x0=x)
    assert stats.iterations == 0 and stats.converged and stats.residual <= 1e-10
    torch.testing.assert_close(v, x, rtol=0, atol=0)
    _, stats_cold = cold.solve(cold.factor(metric, lam), b, x0=x)  # x0 ignored
    assert stats_cold.iterations > 0


def test_cholesky_eigenvalue_range_and_pivots() -> None:
    gen, z, lam = mlp(), latents(20), 1e-2
    metric = PullbackMetric(gen, z)
    factor = Cholesky(eig_diagnostics=True).factor(metric, lam)
    ev = np.linalg.eigvalsh(dense_metric(gen, z))
    np.testing.assert_allclose(factor.eig_range, (ev[0], ev[-1]), rtol=1e-9, atol=1e-12)
    # squared pivots of L L^T = A lie between A's extreme eigenvalues
    lo, hi = factor.pivot_range
    assert ev[0] + lam - 1e-12 <= lo <= hi <= ev[-1] + lam + 1e-12
    assert Cholesky().factor(metric, lam).eig_range is None


@pytest.mark.parametrize("structured", [True, False])
def test_auto_rule(structured: bool) -> None:
    """Structured path: Cholesky when the n x n system is the smaller, else Woodbury when
    damped; torch.func path: Cholesky up to dense_max_params, else Woodbury if J fits, else
    CG."""
    small, big = mlp(3, 5, 2), mlp(3, 30, 2)  # 32 and 182 parameters
    rows80, rows16 = latents(40), latents(8)  # 80 and 16 rows of J

    def pick(gen: nn.Module, z: torch.Tensor, lam: float, **limits: int) -> str:
        metric = PullbackMetric(gen, z, structured=structured)
        return AutoSolver(**limits).choose(metric, lam).name

    if structured:
        assert pick(small, rows80, 1e-3) == "cholesky"  # 32 <= 80 rows
        assert pick(big, rows80, 1e-3) == "woodbury"  # 182 > 80 rows
        assert pick(big, rows80, 0.0) == "cholesky"  # undamped: no Woodbury
        assert pick(big, rows80, 0.0, dense_max_params=100) == "cg"
        assert pick(big, rows80, 1e-3, woodbury_max_rows=64) == "cholesky"
    else:
        assert pick(big, rows80, 1e-3) == "cholesky"  # 182 <= 3000
        assert pick(big, rows16, 1e-3, dense_max_params=100) == "woodbury"
        assert pick(big, rows16, 0.0, dense_max_params=100) == "cg"
        assert pick(big, rows16, 1e-3, dense_max_params=100, woodbury_max_entries=1000) == "cg"
    cg = ConjugateGradient(maxiter=7)
    auto = AutoSolver(cg=cg, dense_max_params=10)
    factor = auto.factor(PullbackMetric(big, rows80, structured=structured), 0.0)
    assert factor.solver is cg  # the chosen solver keeps its settings


def test_direct_solvers_refuse_a_singular_or_undamped_system() -> None:
    gen, z = mlp(), latents(4)  # 8 rows < 32 parameters
    metric = PullbackMetric(gen, z)
    with pytest.raises(SingularMetricError, match="singular.*damping > 0"):
        Cholesky().factor(metric, 0.0)
    with pytest.raises(ValueError, match="woodbury solver needs damping > 0"):
        Woodbury().factor(metric, 0.0)


def test_solver_names_and_bad_arguments() -> None:
    for name, kind in (("auto", AutoSolver), ("cholesky", Cholesky), ("cg", ConjugateGradient),
                       ("woodbury", Woodbury)):  # fmt: skip
        assert type(as_solver(name)) is kind and as_solver(name).name == name
    mine = ConjugateGradient(maxiter=3)
    assert as_solver(mine) is mine and isinstance(mine, LinearSolver)
    with pytest.raises(ValueError, match="unknown solver"):
        as_solver("lbfgs")
    with pytest.raises(TypeError, match="solver must be one of"):
        as_solver(3)
    with pytest.raises(ValueError, match="maxiter must be"):
        ConjugateGradient(maxiter=0)
    with pytest.raises(ValueError, match="tol must be"):
        ConjugateGradient(tol=-1.0)
    metric = PullbackMetric(mlp(), latents(5))
    with pytest.raises(TypeError, match="Woodbury.solve needs the factor from Woodbury.factor"):
        Woodbury().solve(Cholesky().factor(metric, 1e-2), torch.zeros(32, dtype=DT))

"""The linear solvers of (g_hat + lambda I) v = g against dense SciPy solves of an independent
metric, CG's convergence in exact terms, and its warning when it stops early."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest
import scipy.linalg
import torch
from _gan_cases import DT, latents, mlp, net, reference_jacobian, rel
from torch import nn

from ottokit.gan.pullback import PullbackMetric
from ottokit.gan.solvers import (
    AutoSolver,
    CGConvergenceWarning,
    Cholesky,
    ConjugateGradient,
    LinearSolver,
    NonFiniteError,
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


def collinear_metric(scale: float = 1.0) -> PullbackMetric:
    """x = W z + c on latents with z_3 = 0.3 z_1 + 0.7 z_2: g_hat (8 x 8) is singular, but
    rounding leaves its Cholesky factorisation a tiny positive last pivot."""
    z = latents(20, seed=2) * scale
    z[:, 2] = 0.3 * z[:, 0] + 0.7 * z[:, 1]
    return PullbackMetric(nn.Linear(3, 2).to(DT), z)


@pytest.mark.parametrize("scale", [1.0, 1024.0])
def test_undamped_cholesky_refuses_a_numerically_singular_metric(scale: float) -> None:
    """The pivot threshold n eps max diag catches a singular PSD matrix that rounding lets
    factorise (the smallest pivot is of order eps times the diagonal, also when latents 1024
    times larger make the diagonal 2^20 times larger: the threshold is relative), and a damped
    solve of the same metric agrees with SciPy."""
    metric = collinear_metric(scale)
    a = metric.dense()
    chol, info = torch.linalg.cholesky_ex(a)
    assert int(info) == 0  # LAPACK alone would accept it
    eps, diag = torch.finfo(DT).eps, float(a.diagonal().max())
    assert diag > scale**2 / 2
    pivot = float(chol.diagonal().square().min())
    assert 0 < pivot <= 8 * eps * diag
    assert scale == 1.0 or pivot > 8 * eps  # large latents: above an absolute threshold
    with pytest.raises(
        SingularMetricError,
        match=r"^the metric g_hat \+ damping\*I is singular \(or numerically singular\) and cannot "
        r"be factorised; with damping=0 the pullback metric from 20 latents has a null space "
        r"\(e\.g\. fewer latent outputs than parameters\); use damping > 0 such as 1e-3, or more "
        r"latents$",
    ):
        Cholesky().factor(metric, 0.0)
    # any damping > 0 is accepted, however small: the factor is backward stable, L L^T = A
    a16 = a + 1e-16 * scale**2 * torch.eye(8, dtype=DT)
    tiny_damped = Cholesky().factor(metric, 1e-16 * scale**2).chol
    assert rel(tiny_damped @ tiny_damped.T, a16) < 1e-14
    if scale != 1.0:
        return
    factor = Cholesky().factor(metric, 1e-3)
    lo, hi = factor.pivot_range
    ev = np.linalg.eigvalsh(a.numpy())
    assert 1e-3 * (1 - 1e-9) <= lo <= hi <= ev[-1] + 1e-3 + 1e-12
    b = rhs(8, 1)[0]
    v, _ = Cholesky().solve(factor, b)
    expected = scipy.linalg.solve(a.numpy() + 1e-3 * np.eye(8), b.numpy(), assume_a="pos")
    np.testing.assert_allclose(v.numpy(), expected, rtol=1e-9)


@pytest.mark.parametrize("solver", [Cholesky(), Woodbury()])
def test_direct_solvers_refuse_a_non_finite_metric(solver: LinearSolver) -> None:
    """Affine G on latents of size 1e200: J holds the latents, J^T J and J J^T overflow."""
    metric = PullbackMetric(nn.Linear(3, 2).to(DT), 1e200 * latents(6))
    what = "metric g_hat" if solver.name == "cholesky" else "Woodbury matrix N\\*damping\\*I"
    with pytest.raises(NonFiniteError, match=f"^the {what}.* has NaN or inf entries: the "
                       "generator's Jacobian is not finite or overflows at these latents; check "
                       "the generator's outputs and the latents' scale$"):  # fmt: skip
        solver.factor(metric, 1e-3)


def test_cg_of_a_zero_right_hand_side_is_zero() -> None:
    """b = 0: v = 0 exactly, no iteration, residual 0, converged (no warning)."""
    metric = PullbackMetric(mlp(), latents(5))
    cg = ConjugateGradient(maxiter=1, tol=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for project in (False, True):
            v, stats = cg.solve(cg.factor(metric, 1e-2), torch.zeros(32, dtype=DT), project=project)
            assert torch.equal(v, torch.zeros(32, dtype=DT))
            assert (stats.iterations, stats.residual, stats.converged) == (0, 0.0, True)


def test_projected_cg_reports_the_worse_of_its_two_runs_and_warm_starts_both() -> None:
    """With project, CG solves A u = b, then A v = g_hat u (A = g_hat + lam I). Warm-started
    from the exact u the first run needs no iteration; the second, from the same guess, stops
    after maxiter = 1 above tol: the solve is reported unconverged with that run's residual.
    Warm-started from the exact v the second run needs none, so the projected solve takes
    exactly the iterations of the first system from that guess."""
    gen, z, lam = mlp(), latents(20), 1e-2
    metric = PullbackMetric(gen, z)
    b = rhs(metric.n_params, 1)[0]
    a = dense_metric(gen, z) + lam * np.eye(metric.n_params)
    u = scipy.linalg.solve(a, b.numpy(), assume_a="pos")
    v = scipy.linalg.solve(a, (a - lam * np.eye(metric.n_params)) @ u, assume_a="pos")
    one = ConjugateGradient(maxiter=1, tol=1e-9, warm_start=True)
    with pytest.warns(CGConvergenceWarning, match=r"^conjugate gradients stopped after maxiter=1 "
                      r"iterations above tol=1e-09; the natural-gradient direction is inexact\. "
                      r"Raise maxiter or damping, or use solver='woodbury' / 'cholesky'$"):
        _, stats = one.solve(one.factor(metric, lam), b, project=True, x0=torch.from_numpy(u))
    assert stats.iterations == 1 and not stats.converged and stats.residual > 1e-6
    warm = ConjugateGradient(maxiter=200, tol=1e-9, warm_start=True)
    x0 = torch.from_numpy(v)
    _, first = warm.solve(warm.factor(metric, lam), b, x0=x0)
    out, both = warm.solve(warm.factor(metric, lam), b, project=True, x0=x0)
    assert first.iterations >= 2 and both.iterations == first.iterations and both.converged
    np.testing.assert_allclose(out.numpy(), v, rtol=1e-7, atol=1e-10)


def test_cg_without_damping_solves_in_the_range_of_the_metric() -> None:
    """lam = 0 on a singular metric (16 rows < 32 parameters): for b = g_hat x the CG iterate
    from 0 stays in range(g_hat) and converges to the minimum-norm solution pinv(g_hat) b."""
    gen, z = mlp(), latents(8)
    metric = PullbackMetric(gen, z)
    g_hat = dense_metric(gen, z)
    b = torch.from_numpy(g_hat @ rhs(metric.n_params, 1)[0].numpy())
    cg = ConjugateGradient(maxiter=100, tol=1e-10)
    v, stats = cg.solve(cg.factor(metric, 0.0), b)
    assert stats.converged and stats.residual <= 1e-10
    np.testing.assert_allclose(v.numpy(), np.linalg.pinv(g_hat) @ b.numpy(), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("structured", [True, False])
def test_auto_rule_at_its_thresholds(structured: bool) -> None:
    """Each inequality of the rule at equality (inclusive) and one past it; 182 parameters,
    80 or 16 rows of J."""
    big = mlp(3, 30, 2)

    def pick(n_latents: int, **limits: int) -> str:
        metric = PullbackMetric(big, latents(n_latents), structured=structured)
        return AutoSolver(**limits).choose(metric, 1e-3).name

    if structured:
        assert pick(91) == "cholesky" and pick(90) == "woodbury"  # n <= rows: 182 <= 182
        assert pick(91, dense_max_params=182) == "cholesky"
        assert pick(91, dense_max_params=181) == "woodbury"
        assert pick(40, woodbury_max_rows=80) == "woodbury"
        assert pick(40, woodbury_max_rows=79) == "cholesky"
        assert pick(40, woodbury_max_rows=79, dense_max_params=182) == "cholesky"
        assert pick(40, woodbury_max_rows=79, dense_max_params=181) == "cg"
    else:
        assert pick(8, dense_max_params=182) == "cholesky"
        assert pick(8, dense_max_params=181) == "woodbury"
        assert pick(8, dense_max_params=100, woodbury_max_rows=16) == "woodbury"
        assert pick(8, dense_max_params=100, woodbury_max_rows=15) == "cg"
        assert pick(8, dense_max_params=100, woodbury_max_entries=16 * 182) == "woodbury"
        assert pick(8, dense_max_params=100, woodbury_max_entries=16 * 182 - 1) == "cg"


def test_solvers_refuse_a_factor_of_another_solver_and_bad_settings() -> None:
    metric = PullbackMetric(mlp(), latents(5))
    g = torch.zeros(32, dtype=DT)
    with pytest.raises(TypeError, match="Cholesky.solve needs the factor from Cholesky.factor, "
                       "got WoodburyFactor"):  # fmt: skip
        Cholesky().solve(Woodbury().factor(metric, 1e-2), g)
    with pytest.raises(TypeError, match=r"^solver must be one of 'auto', 'cholesky', 'cg', "
                       r"'woodbury' or a LinearSolver such as ConjugateGradient\(maxiter=50\), "
                       r"got float$"):  # fmt: skip
        as_solver(1.0)
    with pytest.raises(TypeError, match="got CholeskyFactor"):
        Woodbury().solve(Cholesky().factor(metric, 1e-2), g)
    for bad in (True, 2.0, "3"):
        with pytest.raises(ValueError, match=f"maxiter must be an integer >= 1, got {bad!r}"):
            ConjugateGradient(maxiter=bad)
    for bad in ("1e-3", None, -1e-300):
        with pytest.raises(ValueError, match=re.escape(f"tol must be a number >= 0, got {bad!r}")):
            ConjugateGradient(tol=bad)
    edge = ConjugateGradient(maxiter=1, tol=0)  # the smallest allowed settings
    assert (edge.maxiter, edge.tol) == (1, 0)
    with pytest.raises(ValueError, match=r"^the woodbury solver needs damping > 0 \(it divides by "
                       r"damping\); use damping such as 1e-3, or solver='cholesky' / 'cg'$"):
        Woodbury().factor(metric, -1e-3)


@pytest.mark.parametrize("structured", [True, False])
def test_woodbury_refuses_a_damping_too_small_for_its_gram_matrix(structured: bool) -> None:
    """x = W z + c on 20 latents: J J^T (40 x 40) has rank 8, and N lambda = 2e-299 is lost
    next to its entries, so N lambda I + J J^T is numerically singular."""
    metric = PullbackMetric(nn.Linear(3, 2).to(DT), latents(20), structured=structured)
    with pytest.raises(SingularMetricError, match=r"^the Woodbury matrix N\*damping\*I \+ J J\^T "
                       r"is singular \(or numerically singular\) and cannot be factorised; "
                       r"increase damping$"):  # fmt: skip
        Woodbury().factor(metric, 1e-300)
    # N lambda = 8e-15, above rounding (eps |J J^T| ~ 4e-16) but below 40 eps |J J^T|: accepted,
    # with the smallest squared pivot at the smallest eigenvalue N lambda, and L L^T exact
    factor = Woodbury().factor(metric, 4e-16)
    assert abs(factor.pivot_range[0] - 8e-15) <= 0.2 * 8e-15
    a = metric.gram() + 8e-15 * torch.eye(40, dtype=DT)
    assert rel(factor.chol @ factor.chol.T, a) < 1e-14


def test_auto_solver_solves_with_the_chosen_solver() -> None:
    """AutoSolver.solve hands the right-hand side, project (default False) and the initial
    guess to the solver it chose: an undamped 32-parameter metric with dense_max_params = 10
    goes to the warm-started CG, which needs no iteration from the exact solution."""
    gen, z = mlp(), latents(20)  # 40 rows >= 32 parameters: g_hat is invertible
    metric = PullbackMetric(gen, z)
    auto = AutoSolver(cg=ConjugateGradient(200, 1e-11, warm_start=True), dense_max_params=10)
    factor = auto.factor(metric, 0.0)
    assert factor.solver is auto.cg
    b = rhs(metric.n_params, 1)[0]
    x = scipy.linalg.solve(dense_metric(gen, z), b.numpy(), assume_a="pos")
    v, stats = auto.solve(factor, b)
    assert stats.solver == "cg" and stats.converged and stats.iterations >= 2
    np.testing.assert_allclose(v.numpy(), x, rtol=1e-6)
    _, warm = auto.solve(factor, b, x0=v)
    assert warm.iterations == 0


@pytest.mark.parametrize("name", list(SOLVER_CASES))
def test_solve_is_unprojected_by_default(name: str) -> None:
    """solve(factor, b) without project is (g_hat + lam I)^{-1} b."""
    gen, z, lam = mlp(), latents(6), 1e-2  # 12 rows < 32 parameters
    solver = SOLVER_CASES[name]
    metric = PullbackMetric(gen, z)
    b = rhs(metric.n_params, 1)[0]
    v, _ = solver.solve(solver.factor(metric, lam), b)
    expected = scipy.linalg.solve(dense_metric(gen, z) + lam * np.eye(32), b.numpy())
    np.testing.assert_allclose(v.numpy(), expected, rtol=1e-8, atol=1e-10)


def test_undamped_cg_stops_at_zero_on_the_null_space() -> None:
    """x = W z + c with the third latent coordinate 0: the parameters W[:, 2] do not move the
    outputs, so e = (W[0, 2] unit vector) spans part of the null space of g_hat exactly
    (J e = 0). For b = e and lam = 0 CG finds p^T A p = 0 at once and stops at
    v = 0 = pinv(g_hat) b, unconverged (residual |b| / |b| = 1), instead of dividing by 0."""
    z = latents(10)
    z[:, 2] = 0.0
    metric = PullbackMetric(nn.Linear(3, 2).to(DT), z)
    b = torch.zeros(8, dtype=DT)
    b[2] = 1.0  # weight[0, 2] in row-major order
    assert torch.equal(metric.matvec(b), torch.zeros(8, dtype=DT))
    cg = ConjugateGradient(maxiter=5, tol=1e-10)
    with pytest.warns(CGConvergenceWarning, match="maxiter=5"):
        v, stats = cg.solve(cg.factor(metric, 0.0), b)
    assert torch.equal(v, torch.zeros(8, dtype=DT))
    assert (stats.iterations, stats.residual, stats.converged) == (0, 1.0, False)

"""The pullback metric g_hat_N = J^T J / N (seed 001 Def. 8.1, §9.1): closed forms, finite
differences and an independent Jacobian."""

from __future__ import annotations

import copy
import re

import numpy as np
import pytest
import torch
from _gan_cases import (
    DT,
    Reshaped,
    affine_closed_form,
    flat_params,
    latents,
    mlp,
    net,
    reference_jacobian,
    sq_loss,
)
from _ranks import thread_ranks
from torch import nn

from ottokit import _memory
from ottokit import distributed as D
from ottokit._memory import MemoryEstimateError
from ottokit.gan.pullback import PullbackMetric


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


def test_metric_errors() -> None:
    gen = mlp()
    z = latents(5)
    with pytest.raises(ValueError, match="v must be a tensor"):
        PullbackMetric(gen, z).matvec(torch.zeros(3, dtype=DT))
    with pytest.raises(ValueError, match="structured must be"):
        PullbackMetric(gen, z, structured="yes")
    with pytest.raises(
        ValueError,
        match=r"^structured=True but the structured Jacobian does not apply: .*Reshaped.*; "
        r"use structured='auto' to fall back to torch\.func$",
    ):
        PullbackMetric(Reshaped(), z, structured=True)


def _fallback_rank(rank: int) -> tuple[str, str | None]:
    z = latents(8)
    z = z[:5] if rank == 0 else z[5:].reshape(3, 1, 3)  # rank 1 cannot take the structured path
    m = PullbackMetric(mlp(), z, structured="auto", sharded=True)
    return m.path, m.fallback_reason


def test_sharded_metric_takes_one_path_on_every_rank_and_says_why(monkeypatch) -> None:
    """Rank 1's latents (N, 1, k) rule out the structured Jacobian; rank 0 could take it but
    must not (the gathered products need one path): both fall back, each saying why."""
    assert thread_ranks(monkeypatch, _fallback_rank) == [
        ("torch.func", "the structured Jacobian does not apply on another rank"),
        ("torch.func", "latents of shape (3, 1, 3) are not 2-D (N, k)"),
    ]


def test_latents_that_are_not_2d_fall_back_to_torch_func_with_the_same_metric() -> None:
    # the same Sequential on latents (N, 1, k): the structured Jacobian needs (N, k), so the
    # metric is built by torch.func, says why, and is the metric of the flat latents
    z = latents(5)
    flat = PullbackMetric(mlp(), z, structured="auto")
    assert flat.path == "structured" and flat.fallback_reason is None
    assert PullbackMetric(mlp(), z, structured=False).fallback_reason is None
    m = PullbackMetric(mlp(), z.reshape(5, 1, 3), structured="auto")
    assert m.path == "torch.func"
    assert m.fallback_reason == "latents of shape (5, 1, 3) are not 2-D (N, k)"
    torch.testing.assert_close(m.dense(), flat.dense(), rtol=1e-12, atol=1e-14)


class BatchMean(nn.Module):
    """Mean over the batch (a batch statistic): not one output per latent."""

    def __init__(self) -> None:
        super().__init__()
        self.net = mlp()

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).mean(0, keepdim=True)


@pytest.mark.parametrize(
    ("build", "error", "match"),
    [
        (lambda g, z: PullbackMetric(g, z.numpy()), TypeError,
         "latents must be a torch.Tensor, got ndarray"),
        (lambda g, z: PullbackMetric(g, z[:0]), ValueError,
         r"latents must have shape \(N, \.\.\.\) with N >= 1, got \(0, 3\)"),
        (lambda g, z: PullbackMetric(g, z[0, 0]), ValueError,
         r"latents must have shape \(N, \.\.\.\) with N >= 1, got \(\)"),
        (lambda g, z: PullbackMetric(g, torch.where(z < -1.0, -torch.inf, z)), ValueError,
         "^latents must be finite$"),
        (lambda g, z: PullbackMetric(g, z, params=torch.zeros(31, dtype=DT)), ValueError,
         r"params must be a flat tensor of length 32 \(ParamLayout order\)"),
        (lambda g, z: PullbackMetric(g, z, params=[0.0] * 32), ValueError,
         "params must be a flat tensor of length 32"),
        (lambda g, z: PullbackMetric(BatchMean(), z), ValueError,
         r"^the generator must return one output per latent \(shape \(N, \.\.\.\)\)$"),
    ],
)
def test_metric_input_guards(build, error: type[Exception], match: str) -> None:
    z = latents(5)
    assert bool((z < -1.0).any())
    with pytest.raises(error, match=match):
        build(mlp(), z)


def test_vjp_needs_one_entry_per_output_coordinate() -> None:
    """5 latents, d_out = 2: u has 10 entries (flat or in the output's shape (5, 2))."""
    m = PullbackMetric(mlp(), latents(5))
    u = torch.ones(5, 2, dtype=DT)
    torch.testing.assert_close(m.vjp(u), m.vjp(u.reshape(-1)), rtol=0, atol=0)
    for bad in (torch.ones(9, dtype=DT), torch.ones(5, 3, dtype=DT)):
        expected = rf"u must have N\*d_out=10 entries, got {bad.numel()}"
        with pytest.raises(ValueError, match=expected):
            m.vjp(bad)


@pytest.mark.parametrize("structured", [True, False])
def test_metric_at_given_params_is_that_of_the_generator_there(structured: bool) -> None:
    """params = theta' (not the generator's): outputs and J are those of a copy of the
    generator moved to theta' (independent Jacobian), and the generator is left as it was."""
    gen = mlp()
    theta0 = flat_params(gen)
    theta = theta0 + 0.3 * torch.randn(32, dtype=DT, generator=torch.Generator().manual_seed(6))
    z = latents(7)
    m = PullbackMetric(gen, z, params=theta, structured=structured)
    assert m.path == ("structured" if structured else "torch.func")
    moved = mlp()
    torch.nn.utils.vector_to_parameters(theta, moved.parameters())
    np.testing.assert_allclose(m.jacobian().numpy(), reference_jacobian(moved, z), rtol=1e-12,
                               atol=1e-13)  # fmt: skip
    with torch.no_grad():
        torch.testing.assert_close(m.outputs(), moved(z).reshape(-1), rtol=1e-13, atol=1e-14)
    assert torch.equal(flat_params(gen), theta0) and torch.equal(m.theta, theta)


def test_sharded_without_a_process_group_changes_nothing() -> None:
    gen, z = mlp(), latents(6)
    v = torch.randn(32, dtype=DT, generator=torch.Generator().manual_seed(3))
    for structured in (True, False):
        plain = PullbackMetric(gen, z, structured=structured)
        sharded = PullbackMetric(gen, z, structured=structured, sharded=True)
        assert not sharded.sharded and (sharded.n_samples, sharded.n_local) == (6, 6)
        for f in (lambda m: m.dense(), lambda m: m.gram(), lambda m: m.jacobian(),
                  lambda m: m.matvec(v), lambda m: m.vjp(m.jvp(v)), lambda m: m.outputs()):
            torch.testing.assert_close(f(sharded), f(plain), rtol=0, atol=0)


class _OnScalars(nn.Module):
    """A generator of scalar latents, shape (N,)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z[:, None])


@pytest.mark.parametrize("shape", [(1, 3), (5,)])
def test_a_single_latent_and_one_dimensional_latents(shape) -> None:
    """N = 1 and latents of shape (N,) (a generator that reads scalars) are valid batches:
    the metric is J^T J / N of the independent Jacobian."""
    gen = mlp(k=1) if len(shape) == 1 else mlp()
    model = _OnScalars(gen) if len(shape) == 1 else gen
    z = torch.randn(shape, dtype=DT, generator=torch.Generator().manual_seed(6))
    m = PullbackMetric(model, z)
    jac = torch.from_numpy(reference_jacobian(gen, z.reshape(shape[0], -1)))
    assert m.n_samples == shape[0]
    torch.testing.assert_close(m.dense(), jac.T @ jac / shape[0], rtol=1e-12, atol=1e-14)


SHARES = (5, 3)  # two ranks' uneven shares of the 8 latents


def _sharded_rank(rank: int, structured: bool) -> dict:
    """Rank ``rank``'s sharded metric on its share of ``latents(8)``: every product."""
    z = latents(sum(SHARES))[sum(SHARES[:rank]) : sum(SHARES[: rank + 1])]
    m = PullbackMetric(mlp(), z, structured=structured, sharded=True)
    g = torch.Generator().manual_seed(4)
    v, u = torch.randn(m.n_params, generator=g, dtype=DT), torch.randn(16, generator=g, dtype=DT)
    own = PullbackMetric(mlp(), z, structured=structured)  # not sharded: this rank's own
    return {
        "own": (own.n_samples, own.dense(), own.matvec(v), own.vjp(u[: 2 * len(z)])),
        "n": (m.n_samples, m.n_local), "path": m.path, "outputs": m.outputs(),
        "jacobian": m.jacobian(), "dense": m.dense(), "gram": m.gram(), "matvec": m.matvec(v),
        "jvp": m.jvp(v), "vjp": m.vjp(u),
    }  # fmt: skip


@pytest.mark.parametrize("structured", [True, False])
def test_sharded_metric_equals_the_metric_on_the_union_of_the_shares(
    monkeypatch, structured: bool
) -> None:
    """Two ranks holding 5 and 3 of 8 latents: each rank's sharded metric gives g_hat_8, J J^T,
    J, G(z), J v and J^T u of all 8 latents (rank order), as one process does on the union;
    J^T u takes only the rank's own rows of u and sums the ranks' parts. A metric built
    without sharded=True stays the rank's own, on its share only."""
    ranks = thread_ranks(monkeypatch, _sharded_rank, structured)
    monkeypatch.undo()
    ref = PullbackMetric(mlp(), latents(8), structured=structured)
    g = torch.Generator().manual_seed(4)
    v, u = torch.randn(ref.n_params, generator=g, dtype=DT), torch.randn(16, generator=g, dtype=DT)
    want = {"outputs": ref.outputs(), "jacobian": ref.jacobian(), "dense": ref.dense(),
            "gram": ref.gram(), "matvec": ref.matvec(v), "jvp": ref.jvp(v), "vjp": ref.vjp(u)}
    for r, got in enumerate(ranks):
        assert got["n"] == (8, SHARES[r]) and got["path"] == ref.path
        for key, value in want.items():
            torch.testing.assert_close(got[key], value, rtol=1e-12, atol=1e-14, msg=key)
        share = latents(8)[sum(SHARES[:r]) : sum(SHARES[: r + 1])]
        own = PullbackMetric(mlp(), share, structured=structured)
        n, dense, mv, jtu = got["own"]
        assert n == SHARES[r]
        jtu_own = own.vjp(u[: 2 * len(share)])
        for a, b in ((dense, own.dense()), (mv, own.matvec(v)), (jtu, jtu_own)):
            torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)


def _gathered_gram(rank: int, structured: bool, product: str = "gram") -> str:
    m = PullbackMetric(mlp(), latents(8)[4 * rank : 4 * rank + 4], structured=structured,
                       sharded=True)  # fmt: skip
    try:
        getattr(m, product)()
    except MemoryEstimateError as err:
        return str(err)
    return "fits"


def test_sharded_jacobian_is_refused_exactly_when_what_it_gathers_does_not_fit(
    monkeypatch,
) -> None:
    """The sharded J gathers the union's 16 x 32 float64 rows twice (receive buffers and
    concatenation): it runs with exactly those bytes available and is refused, naming
    solver='cg', with one byte less."""
    need = 8 * 2 * 16 * 32
    monkeypatch.setenv("OTTOKIT_MEMORY_LIMIT", str(need))
    assert thread_ranks(monkeypatch, _gathered_gram, True, "jacobian") == ["fits", "fits"]
    monkeypatch.setenv("OTTOKIT_MEMORY_LIMIT", str(need - 1))
    for err in thread_ranks(monkeypatch, _gathered_gram, True, "jacobian"):
        assert re.search(r"^the Jacobian J of 8 latents gathered on every rank needs about .*; "
                         "use solver='cg'", err), err  # fmt: skip


@pytest.mark.parametrize("structured", [True, False])
def test_sharded_gram_is_refused_exactly_when_what_it_gathers_does_not_fit(
    monkeypatch, structured: bool
) -> None:
    """The sharded J J^T gathers, in float64, the union's per-sample factors (once in the
    gather's receive buffers, once concatenated) and forms the (N d_out)^2 Gram matrix: the
    Jacobian rows of the torch.func path (N d_out x 32), or the structured path's layer inputs
    a (N x 3, N x 5) and backward signals delta (N x d_out x 5, N x d_out x 2). It runs
    when exactly those bytes are available and is refused, on every rank, naming
    solver='cg', with one byte less."""
    n, d_out, n_params = 8, 2, 32
    rows = n * d_out
    factors = rows * n_params if not structured else n * (3 + 5) + n * d_out * (5 + 2)
    need = 8 * (2 * factors + rows * rows)
    monkeypatch.setenv("OTTOKIT_MEMORY_LIMIT", str(need))
    assert thread_ranks(monkeypatch, _gathered_gram, structured) == ["fits", "fits"]
    monkeypatch.setenv("OTTOKIT_MEMORY_LIMIT", str(need - 1))
    what = "the Gram matrix J J\\^T" if structured else "J and J J\\^T"
    knob = r"use solver='cg' \(matrix-free: an all-reduce of per-rank products, nothing gathered\)"
    for err in thread_ranks(monkeypatch, _gathered_gram, structured):
        assert re.search(f"^{what} of 8 latents gathered on every rank needs about .*; {knob} "
                         r"\(or set OTTOKIT_MEMORY_LIMIT=off to try anyway\)$", err), err
    # only rank 0 lacks the memory: rank 1, whose own gather would fit, refuses too
    monkeypatch.setattr(_memory, "available_memory", lambda: need - 1 if D.rank() == 0 else None)
    errors = thread_ranks(monkeypatch, _gathered_gram, structured)
    assert re.search(f"^{what} of 8 latents gathered on every rank needs about", errors[0])
    assert re.fullmatch(f"{what} of 8 latents does not fit on another rank; {knob}", errors[1])


@pytest.mark.parametrize("structured", [True, False])
def test_products_cast_vectors_to_the_metric_dtype(structured: bool) -> None:
    """float32 v and u give the float64 products of their float64 values; a v that is not a
    tensor of shape (n_params,) is refused."""
    m = PullbackMetric(mlp(), latents(5), structured=structured)
    g = torch.Generator().manual_seed(4)
    v, u = torch.randn(32, generator=g), torch.randn(10, generator=g)  # float32
    for got, ref in ((m.jvp(v), m.jvp(v.double())), (m.vjp(u), m.vjp(u.double())),
                     (m.matvec(v), m.matvec(v.double()))):  # fmt: skip
        assert got.dtype == DT
        torch.testing.assert_close(got, ref, rtol=0, atol=0)
    with pytest.raises(ValueError, match=r"v must be a tensor of shape \(32,\), got <class 'list"):
        m.jvp([0.0] * 32)
    with pytest.raises(ValueError, match=r"shape \(32,\), got torch\.Size\(\[3\]\)$"):
        m.matvec(torch.zeros(3, dtype=DT))


@pytest.mark.parametrize(
    ("bad", "shown"),
    [(torch.zeros(31, dtype=DT), "torch.Size([31])"), ([0.0] * 32, "<class 'list'>")],
)
def test_params_guard_names_the_shape_or_type_it_got(bad, shown: str) -> None:
    whole = f"params must be a flat tensor of length 32 (ParamLayout order), got {shown}"
    with pytest.raises(ValueError, match=f"^{re.escape(whole)}$"):
        PullbackMetric(mlp(), latents(5), params=bad)

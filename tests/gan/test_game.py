"""Game Jacobian, its antisymmetric part and the symmetric scalar Hessian (seed 001 §6.2, §10.2)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn.functional import softplus

from ottokit._memory import MemoryEstimateError, format_bytes
from ottokit.gan.connection import square_grid
from ottokit.gan.game import (
    GameJacobian,
    antisymmetric_norm,
    decompose,
    eigenvalues,
    hessian,
    hessian_plane,
)

DT = torch.float64


def _mlp(d_in: int, hidden: int, d_out: int, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(d_in, hidden), nn.Tanh(), nn.Linear(hidden, d_out)).to(DT)


def _gan_data(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(32, 2, generator=g, dtype=DT)
    x_real = 1.5 + 0.7 * torch.randn(32, 1, generator=g, dtype=DT)
    return z, x_real


def _ns_losses(z: torch.Tensor, x_real: torch.Tensor):
    """Non-saturating JSD GAN: L_D = -log s(D(x)) - log s(-D(G(z))), L_G = -log s(D(G(z)))."""

    def losses(G_fn, D_fn):
        fake = G_fn(z)
        L_D = softplus(-D_fn(x_real)).mean() + softplus(D_fn(fake)).mean()
        L_G = softplus(-D_fn(fake)).mean()
        return L_G, L_D

    return losses


@pytest.fixture(scope="module")
def gan_game() -> GameJacobian:
    G, D = _mlp(2, 4, 1, seed=1), _mlp(1, 5, 1, seed=2)
    z, x_real = _gan_data()
    return GameJacobian.from_modules(G, D, _ns_losses(z, x_real))


def test_blocks_match_central_differences_of_xi(gan_game: GameJacobian) -> None:
    """Each column of H against (xi(w + h e_k) - xi(w - h e_k)) / 2h in float64."""
    H = gan_game.full()
    n = gan_game.w.numel()
    assert H.shape == (n, n) and gan_game.n_g == 17 and gan_game.n_d == 16
    h = 1e-5
    steps = h * torch.eye(n, dtype=DT)  # row k: h e_k; xi at all 2n points in one batched call
    xi_batch = torch.func.vmap(gan_game.xi_at)
    fd = (xi_batch(gan_game.w + steps) - xi_batch(gan_game.w - steps)).T / (2 * h)
    scale = float(H.abs().max())
    assert torch.allclose(H, fd, atol=1e-8 * scale, rtol=0)
    b = gan_game.blocks(H)
    g = gan_game.n_g
    assert torch.allclose(b.tt, fd[:g, :g], atol=1e-8 * scale)
    assert torch.allclose(b.tp, fd[:g, g:], atol=1e-8 * scale)
    assert torch.allclose(b.pt, fd[g:, :g], atol=1e-8 * scale)
    assert torch.allclose(b.pp, fd[g:, g:], atol=1e-8 * scale)
    # forward-mode Jacobian agrees with reverse mode
    assert torch.allclose(gan_game.full(mode="forward"), H, atol=1e-12 * scale, rtol=0)


def test_matrix_free_products_match_full(gan_game: GameJacobian) -> None:
    H = gan_game.full()
    rng = torch.Generator().manual_seed(3)
    for _ in range(3):
        v = torch.randn(H.shape[0], generator=rng, dtype=DT)
        assert torch.allclose(gan_game.hvp(v), H @ v, atol=1e-12, rtol=1e-10)
        assert torch.allclose(gan_game.htvp(v), H.T @ v, atol=1e-12, rtol=1e-10)
    xi = gan_game.xi()
    _, A = decompose(H)
    assert torch.allclose(gan_game.antisymmetric_xi(), A.T @ xi, atol=1e-12, rtol=1e-10)
    assert gan_game.antisymmetric_xi_norm() == pytest.approx(float((A.T @ xi).norm()), rel=1e-10)


def test_gan_game_is_clearly_non_symmetric(gan_game: GameJacobian) -> None:
    H = gan_game.full()
    r = antisymmetric_norm(H)
    assert 0.05 < r < 1.0
    # the theta-phi coupling blocks are not each other's transpose
    b = gan_game.blocks(H)
    assert (b.tp - b.pt.T).norm() > 0.1 * b.tp.norm()
    assert gan_game.antisymmetric_xi_norm() > 1e-3 * float(gan_game.xi().norm())


def test_bilinear_game_is_purely_antisymmetric() -> None:
    rng = np.random.default_rng(0)
    M = torch.tensor(rng.standard_normal((3, 4)), dtype=DT)
    theta = torch.tensor(rng.standard_normal(3), dtype=DT)
    phi = torch.tensor(rng.standard_normal(4), dtype=DT)
    game = GameJacobian(theta, phi, lambda t, p: (t @ M @ p, -(t @ M @ p)))
    H = game.full()
    expected = torch.zeros(7, 7, dtype=DT)
    expected[:3, 3:] = M
    expected[3:, :3] = -M.T
    assert torch.equal(H, expected)
    S, A = decompose(H)
    assert torch.equal(S, torch.zeros_like(S)) and torch.equal(A, H)
    assert antisymmetric_norm(H) == 1.0
    ev = eigenvalues(H)
    assert ev.real.abs().max() < 1e-12
    # the non-zero eigenvalues are +-i sigma_k(M)
    sv = torch.linalg.svdvals(M)
    imag = torch.sort(ev.imag[ev.imag > 1e-9]).values
    assert torch.allclose(imag, torch.sort(sv).values, atol=1e-12)
    # xi = (M phi, -M^T theta); A^T xi = -H xi
    assert torch.allclose(game.xi(), torch.cat([M @ phi, -M.T @ theta]), atol=1e-14)
    assert torch.allclose(game.antisymmetric_xi(), -(H @ game.xi()), atol=1e-13)


def test_potential_game_has_zero_antisymmetric_part() -> None:
    rng = np.random.default_rng(1)
    Q = torch.tensor(rng.standard_normal((5, 5)), dtype=DT)

    def L(t: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        w = torch.cat([t, p])
        return torch.tanh(w @ Q @ w) + (w**4).sum() / 4 + torch.sin(t).sum() * p.prod()

    theta = torch.tensor(rng.standard_normal(2), dtype=DT)
    phi = torch.tensor(rng.standard_normal(3), dtype=DT)
    game = GameJacobian(theta, phi, lambda t, p: (L(t, p), L(t, p)))
    H = game.full()
    Hess, K = hessian(lambda w: L(w[:2], w[2:]), torch.cat([theta, phi]))
    assert torch.allclose(H, Hess, atol=1e-13, rtol=1e-12)
    _, A = decompose(H)
    assert A.norm() <= 1e-14 * H.norm()
    assert antisymmetric_norm(H) < 1e-14
    assert game.antisymmetric_xi_norm() < 1e-13 * max(1.0, float(game.xi().norm()))


def test_scalar_hessian_is_symmetric_but_game_jacobian_is_not(gan_game: GameJacobian) -> None:
    """Schwarz: K of a scalar objective from a GAN generator is rounding; A of the game is not."""
    G, D = _mlp(2, 4, 1, seed=1), _mlp(1, 5, 1, seed=2)
    z, _ = _gan_data()
    params = {k: v.detach() for k, v in G.named_parameters()}

    def J(p):
        return softplus(
            -torch.func.functional_call(D, {}, (torch.func.functional_call(G, p, (z,)),))
        ).mean()

    Hess, K = (t.detach() for t in hessian(J, params))
    assert Hess.shape == (17, 17)
    assert K.norm() <= 1e-12 * Hess.norm()
    assert Hess.norm() > 1e-3
    # cross-check the dense Hessian against central differences of autograd gradients
    flat = torch.cat([v.reshape(-1) for v in params.values()])
    names = [(k, v.shape) for k, v in params.items()]

    def unflat(w):
        out, i = {}, 0
        for k, s in names:
            out[k] = w[i : i + s.numel()].reshape(s)
            i += s.numel()
        return out

    gfun = torch.func.grad(lambda w: J(unflat(w)))
    h = 1e-5
    for k in (0, 7, 16):
        e = torch.zeros_like(flat)
        e[k] = h
        col = (gfun(flat + e) - gfun(flat - e)) / (2 * h)
        assert torch.allclose(Hess[:, k], col, atol=1e-8 * float(Hess.abs().max()))
    # ...while the game Jacobian of the same generator is far from symmetric
    assert antisymmetric_norm(gan_game.full()) > 1e6 * float(K.norm() / Hess.norm())


def test_plane_restrictions(gan_game: GameJacobian) -> None:
    H = gan_game.full()
    n = H.shape[0]
    rng = torch.Generator().manual_seed(5)
    Q, _ = torch.linalg.qr(torch.randn(n, 2, generator=rng, dtype=DT))
    H2, A2 = gan_game.plane(Q[:, 0], Q[:, 1])
    assert torch.allclose(H2, Q.T @ H @ Q, atol=1e-12)
    assert torch.allclose(A2, -A2.T) and A2[0, 1] == pytest.approx(
        float(0.5 * (Q[:, 0] @ H @ Q[:, 1] - Q[:, 1] @ H @ Q[:, 0])), rel=1e-10
    )
    # coordinate plane spanning one theta and one phi coordinate: the coupling entries of H
    i, j = 3, gan_game.n_g + 2
    e_i, e_j = torch.zeros(n, dtype=DT), torch.zeros(n, dtype=DT)
    e_i[i], e_j[j] = 1.0, 1.0
    H2, A2 = gan_game.plane(e_i, e_j)
    assert H2[0, 1] == pytest.approx(float(H[i, j]), rel=1e-10)
    assert H2[1, 0] == pytest.approx(float(H[j, i]), rel=1e-10)
    assert abs(float(A2[0, 1])) > 0

    # scalar Hessian plane: symmetric, matches the dense restriction
    Qm = torch.tensor(np.random.default_rng(2).standard_normal((4, 4)), dtype=DT)

    def J(w):
        return torch.cosh(w @ Qm @ w) + w[0] * w[1] ** 3

    w0 = torch.tensor([0.1, -0.3, 0.2, 0.4], dtype=DT)
    Hess, _ = hessian(J, w0)
    P, _ = torch.linalg.qr(torch.randn(4, 2, generator=rng, dtype=DT))
    H2, K2 = hessian_plane(J, w0, P[:, 0], P[:, 1])
    assert torch.allclose(H2, P.T @ Hess @ P, atol=1e-12)
    assert K2.abs().max() <= 1e-14 * H2.abs().max()


def test_validation_errors(gan_game: GameJacobian) -> None:
    n = gan_game.w.numel()
    with pytest.raises(ValueError, match="length"):
        gan_game.hvp(torch.ones(n + 1, dtype=DT))
    with pytest.raises(ValueError, match="finite"):
        gan_game.htvp(torch.full((n,), float("nan"), dtype=DT))
    e = torch.zeros(n, dtype=DT)
    e[0] = 1.0
    with pytest.raises(ValueError, match="parallel"):
        gan_game.plane(e, 2 * e)
    with pytest.raises(ValueError, match="mode"):
        gan_game.full(mode="sideways")
    with pytest.raises(ValueError, match="square"):
        decompose(torch.ones(2, 3))
    with pytest.raises(ValueError, match="must be 33 x 33"):
        gan_game.blocks(torch.eye(4, dtype=DT))
    t = torch.zeros(2, dtype=DT)
    with pytest.raises(ValueError, match="scalar"):
        GameJacobian(t, t, lambda a, b: (a, b.sum()))
    with pytest.raises(TypeError, match="callable"):
        GameJacobian(t, t, 3)
    with pytest.raises(TypeError, match="floating-point"):
        GameJacobian(torch.zeros(2, dtype=torch.int64), t, lambda a, b: (a.sum(), b.sum()))
    with pytest.raises(TypeError, match="share a dtype"):
        GameJacobian(t.float(), t, lambda a, b: (a.sum(), b.sum()))
    with pytest.raises(TypeError, match="Module"):
        GameJacobian.from_modules(lambda z: z, nn.Linear(1, 1), lambda g, d: (0, 0))
    with pytest.raises(ValueError, match="scalar"):
        hessian(lambda w: w, t)
    with pytest.raises(TypeError, match="mapping"):
        hessian(lambda w: w.sum(), [1.0, 2.0])


def test_dense_derivatives_of_large_models_are_refused_before_allocating(monkeypatch):
    monkeypatch.setenv("OTTOKIT_MEMORY_LIMIT", "1G")
    theta, phi = torch.zeros(10_000), torch.zeros(10_000)
    game = GameJacobian(theta, phi, lambda t, p: ((t * p).sum(), -(t * p).sum()))
    with pytest.raises(MemoryEstimateError, match="dense game Jacobian of 20000 parameters"):
        game.full()
    assert game.hvp(torch.ones(20_000)).shape == (20_000,)  # the matrix-free product still works
    with pytest.raises(MemoryEstimateError, match="Hessian of 20000 parameters.*hessian_plane"):
        hessian(lambda w: (w**2).sum(), torch.zeros(20_000))
    with pytest.raises(MemoryEstimateError, match="100000 x 100000 square grid"):
        square_grid(-1.0, 1.0, 100_000)


def _bilinear(g: dict, d: dict) -> tuple[torch.Tensor, torch.Tensor]:
    v = (g["w"] * d["w"]).sum()
    return v, -v


@pytest.mark.parametrize(
    ("g_params", "error", "match"),
    [
        ({}, ValueError, r"g_params is empty; pass at least one parameter tensor"),
        ({"w": torch.zeros(2, dtype=torch.int64)}, TypeError,
         r"g_params\['w'\] must be a floating-point tensor"),
        ({"w": [0.0, 1.0]}, TypeError, r"g_params\['w'\] must be a floating-point tensor"),
        ({"w": torch.zeros(2, dtype=DT), "b": torch.zeros(1, dtype=torch.float32)}, TypeError,
         r"g_params mixes dtypes \['torch.float32', 'torch.float64'\]; cast them to one"),
    ],
)
def test_parameter_mappings_are_checked(g_params: dict, error: type[Exception], match: str) -> None:
    """The bilinear game with its generator parameters given as a bad mapping."""
    d_params = {"w": torch.ones(2, dtype=DT)}
    with pytest.raises(error, match=match):
        GameJacobian(g_params, d_params, _bilinear)
    assert GameJacobian({"w": torch.zeros(2, dtype=DT)}, d_params, _bilinear).n_g == 2


def test_objectives_must_be_callable() -> None:
    G, D = _mlp(2, 3, 1, seed=1), _mlp(1, 3, 1, seed=2)
    with pytest.raises(TypeError, match=r"losses_fn must be callable \(G_fn, D_fn\)"):
        GameJacobian.from_modules(G, D, "ns")
    with pytest.raises(TypeError, match="J must be callable params -> scalar tensor"):
        hessian("x**2", torch.zeros(2, dtype=DT))
    with pytest.raises(TypeError, match="J must be callable params -> scalar tensor"):
        hessian_plane(None, torch.zeros(2, dtype=DT), [1.0, 0.0], [0.0, 1.0])


def test_plane_directions_are_checked_by_name(gan_game: GameJacobian) -> None:
    """Each of e_i, e_j and params is named when it is the bad argument."""
    n = gan_game.w.numel()
    e = torch.zeros(n, dtype=DT)
    e[0] = 1.0
    nan = torch.full((n,), float("nan"), dtype=DT)
    with pytest.raises(ValueError, match=f"e_i must be a vector of length {n}"):
        gan_game.plane(e[:-1], e)
    with pytest.raises(ValueError, match="e_j must be finite"):
        gan_game.plane(e, nan)
    with pytest.raises(ValueError, match="e_i must be finite"):
        gan_game.plane(nan, e)
    with pytest.raises(ValueError, match=f"e_j must be a vector of length {n}"):
        gan_game.plane(e, e[:-1])

    def J(w):
        return (w**2).sum()

    w0 = torch.zeros(3, dtype=DT)
    with pytest.raises(ValueError, match="e_i must be a vector of length 3"):
        hessian_plane(J, w0, [1.0, 0.0], [0.0, 1.0, 0.0])
    with pytest.raises(ValueError, match="e_j must be finite"):
        hessian_plane(J, w0, [1.0, 0.0, 0.0], [math.nan, 0.0, 0.0])
    with pytest.raises(ValueError, match="e_i must be finite"):
        hessian_plane(J, w0, [math.inf, 0.0, 0.0], [0.0, 1.0, 0.0])
    with pytest.raises(ValueError, match="e_j must be a vector of length 3"):
        hessian_plane(J, w0, [1.0, 0.0, 0.0], [0.0, 1.0])
    with pytest.raises(ValueError, match="params is empty"):
        hessian_plane(J, {}, [1.0], [0.0])
    with pytest.raises(TypeError, match=r"params\['w'\] must be a floating-point tensor"):
        hessian(J, {"w": torch.zeros(2, dtype=torch.int64)})


def test_plane_guard_is_relative_to_the_scale_of_the_directions(gan_game: GameJacobian) -> None:
    """P^T H P is bilinear in (e_i, e_j): tiny orthogonal directions are a valid plane, while
    directions parallel to 1e-10 (relative) are refused whatever their length."""
    n = gan_game.w.numel()
    Q, _ = torch.linalg.qr(torch.randn(n, 2, generator=torch.Generator().manual_seed(6), dtype=DT))
    H2, A2 = gan_game.plane(Q[:, 0], Q[:, 1])
    s = 1e-10
    H2s, A2s = gan_game.plane(s * Q[:, 0], s * Q[:, 1])
    assert torch.allclose(H2s, s**2 * H2, rtol=1e-10, atol=0)
    assert torch.allclose(A2s, s**2 * A2, rtol=1e-10, atol=0)
    for scale in (1e-10, 1.0, 1e10):
        e_i, e_j = scale * Q[:, 0], scale * (Q[:, 0] + 1e-10 * Q[:, 1])
        with pytest.raises(ValueError, match="use two orthonormal vectors"):
            gan_game.plane(e_i, e_j)
        with pytest.raises(ValueError, match="must span a plane"):
            hessian_plane(lambda w: (w**2).sum(), torch.zeros(n, dtype=DT), e_i, e_j)


def test_antisymmetric_norm_of_the_zero_matrix_is_zero() -> None:
    assert antisymmetric_norm(torch.zeros(3, 3, dtype=DT)) == 0.0
    assert antisymmetric_norm([[0.0, 2.0], [-2.0, 0.0]]) == 1.0


def test_hessian_plane_of_a_parameter_mapping_matches_the_dense_hessian() -> None:
    """Mapping parameters are flattened in iteration order, the same for both functions."""
    rng = np.random.default_rng(7)
    B = torch.tensor(rng.standard_normal((2, 2)), dtype=DT)
    params = {"a": torch.tensor([0.3, -0.2], dtype=DT), "b": torch.tensor([[0.5, 0.1]], dtype=DT)}

    def J(p):
        return torch.cosh(p["a"] @ B @ p["a"]) + (p["b"] ** 3).sum() * p["a"][0]

    Hess, _ = hessian(J, params)
    a, b = params["a"], params["b"][0]
    exact_bb = torch.diag(6 * b * a[0])  # d2/db2 of (b^3).sum() a0
    assert torch.allclose(Hess[2:, 2:], exact_bb, atol=1e-14)
    assert torch.allclose(Hess[0, 2:], 3 * b**2, atol=1e-14)  # d2/(da0 db)
    P, _ = torch.linalg.qr(torch.tensor(rng.standard_normal((4, 2)), dtype=DT))
    H2, _ = hessian_plane(J, params, P[:, 0], P[:, 1])
    assert torch.allclose(H2, P.T @ Hess @ P, atol=1e-12)


def test_decompose_splits_the_gan_game_into_symmetric_and_antisymmetric_parts(
    gan_game: GameJacobian,
) -> None:
    H = gan_game.full()
    S, A = decompose(H)
    torch.testing.assert_close(S + A, H, rtol=0, atol=1e-15)
    torch.testing.assert_close(S, S.T, rtol=0, atol=0)
    torch.testing.assert_close(A, -A.T, rtol=0, atol=0)
    assert float(S.norm()) > 0.1 * float(H.norm())  # both parts are present in a GAN game
    assert antisymmetric_norm(H) == pytest.approx(float(A.norm() / H.norm()), rel=1e-12)


def test_returned_antisymmetric_parts_belong_to_the_returned_matrices() -> None:
    """K = (Hess - Hess^T)/2 of the Hessian returned with it (rounding only, but exactly it)."""
    Qm = torch.tensor(np.random.default_rng(8).standard_normal((4, 4)), dtype=DT)

    def J(w):
        return torch.cosh(w @ Qm @ w) + w[0] * w[1] ** 3 + torch.sin(w).prod()

    w0 = torch.tensor([0.7, -0.3, 1.2, 0.4], dtype=DT)
    Hess, K = hessian(J, w0)
    torch.testing.assert_close(K, 0.5 * (Hess - Hess.T), rtol=0, atol=0)
    P, _ = torch.linalg.qr(torch.tensor(np.random.default_rng(9).standard_normal((4, 2)), dtype=DT))
    H2, K2 = hessian_plane(J, w0, P[:, 0], P[:, 1])
    torch.testing.assert_close(K2, 0.5 * (H2 - H2.T), rtol=0, atol=0)


def test_matrix_free_products_name_their_direction(gan_game: GameJacobian) -> None:
    n = gan_game.w.numel()
    with pytest.raises(ValueError, match="v must be finite"):
        gan_game.htvp(torch.full((n,), float("nan"), dtype=DT))
    with pytest.raises(ValueError, match="v must be finite"):
        gan_game.hvp(torch.full((n,), float("inf"), dtype=DT))
    with pytest.raises(ValueError, match=f"v must be a vector of length {n}"):
        gan_game.htvp(torch.ones(n - 1, dtype=DT))
    with pytest.raises(ValueError, match=f"v must be a vector of length {n}"):
        gan_game.hvp(torch.ones(n + 1, dtype=DT))


def test_directions_of_another_kind_are_converted_to_the_parameters_dtype(
    gan_game: GameJacobian,
) -> None:
    """An integer coordinate tensor or a list is the same direction in float64; text is refused
    by name."""
    H = gan_game.full()
    k = 5
    e_int = torch.zeros(H.shape[0], dtype=torch.int64)
    e_int[k] = 1
    for u in (e_int, e_int.tolist()):
        hv, htv = gan_game.hvp(u), gan_game.htvp(u)
        assert hv.dtype == DT and htv.dtype == DT
        torch.testing.assert_close(hv, H[:, k], rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(htv, H[k, :], rtol=1e-10, atol=1e-12)
    with pytest.raises(TypeError, match="v must be an array of real numbers"):
        gan_game.hvp(["a"] * H.shape[0])
    with pytest.raises(TypeError, match="e_j must be an array of real numbers"):
        hessian_plane(lambda w: (w**2).sum(), torch.zeros(2, dtype=DT), [1.0, 0.0], ["a", "b"])


def test_blocks_default_to_the_full_jacobian_and_module_errors_say_what_to_pass(
    gan_game: GameJacobian,
) -> None:
    H = gan_game.full()
    b, g = gan_game.blocks(), gan_game.n_g
    for block, expected in ((b.tt, H[:g, :g]), (b.tp, H[:g, g:]), (b.pt, H[g:, :g]),
                            (b.pp, H[g:, g:])):
        torch.testing.assert_close(block, expected, rtol=0, atol=0)
    with pytest.raises(TypeError, match=r"^G and D must be torch.nn.Module instances$"):
        GameJacobian.from_modules(nn.Linear(1, 1), "D", lambda g, d: (0, 0))
    message = r"^losses_fn must be callable \(G_fn, D_fn\) -> \(L_G, L_D\)$"
    with pytest.raises(TypeError, match=message):
        GameJacobian.from_modules(nn.Linear(1, 1), nn.Linear(1, 1), None)


def test_losses_and_discriminator_parameters_are_checked_by_name() -> None:
    t = torch.zeros(2, dtype=DT)
    with pytest.raises(ValueError, match=r"d_params is empty; pass at least one parameter"):
        GameJacobian(t, {}, lambda a, b: (a.sum(), b.sum()))
    with pytest.raises(TypeError, match=r"g_params\['w'\] must be .* got <class 'list'>"):
        GameJacobian({"w": [0.0]}, t, lambda a, b: (a.sum(), b.sum()))
    with pytest.raises(ValueError, match=r"losses must return two scalar tensors; L_G is"):
        GameJacobian(t, t, lambda a, b: (a, b.sum()))
    with pytest.raises(ValueError, match=r"losses must return two scalar tensors; L_D is"):
        GameJacobian(t, t, lambda a, b: (a.sum(), b))
    for bad in (lambda a, b: (a.sum(), b.sum(), a.sum()), lambda a, b: a.sum()):
        with pytest.raises(ValueError, match=r"losses must return two scalar tensors \(L_G, L_D\)"):
            GameJacobian(t, t, bad)


def test_matrices_given_as_nested_lists_and_their_errors() -> None:
    """decompose, eigenvalues and antisymmetric_norm take array-likes; H is named in errors."""
    S, A = decompose([[1.0, 2.0], [4.0, 3.0]])
    torch.testing.assert_close(S, torch.tensor([[1.0, 3.0], [3.0, 3.0]], dtype=DT), rtol=0, atol=0)
    torch.testing.assert_close(A, torch.tensor([[0.0, -1.0], [1.0, 0.0]], dtype=DT), rtol=0, atol=0)
    ev = torch.sort(eigenvalues([[0.0, 2.0], [-2.0, 0.0]]).imag).values  # +-2i
    torch.testing.assert_close(ev, torch.tensor([-2.0, 2.0], dtype=DT), rtol=0, atol=1e-14)
    with pytest.raises(ValueError, match=r"H must be a square matrix, got shape \(2, 3\)"):
        decompose(torch.ones(2, 3))
    with pytest.raises(ValueError, match=r"H contains non-finite entries"):
        eigenvalues([[math.nan, 0.0], [0.0, 1.0]])
    with pytest.raises(ValueError, match=r"H contains non-finite entries"):
        antisymmetric_norm(torch.tensor([[1.0, math.inf], [0.0, 1.0]]))
    with pytest.raises(TypeError, match=r"H must be an array of real numbers"):
        decompose([["a", "b"], ["c", "d"]])
    with pytest.raises(TypeError, match=r"params must be a Tensor or a mapping.* <class 'list'>"):
        hessian(lambda w: w.sum(), [1.0, 2.0])


def test_unknown_jacobian_mode_is_named(gan_game: GameJacobian) -> None:
    with pytest.raises(ValueError, match=r"unknown mode 'sideways'; allowed: .*reverse"):
        gan_game.full(mode="sideways")


class _Cube(torch.autograd.Function):
    """x -> x^3 with a backward rule only (no forward-mode or vmap rule)."""

    @staticmethod
    def forward(x: torch.Tensor) -> torch.Tensor:
        return x**3

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        ctx.save_for_backward(inputs[0])

    @staticmethod
    def backward(ctx, g: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        return 3 * x**2 * g


def test_default_reverse_mode_needs_only_backward_rules() -> None:
    """L_G = -L_D = (sum theta^3)(sum phi) through a backward-only Function: H in closed form,
    [[diag(6 theta sum phi), 3 theta^2 1^T], [-1 (3 theta^2)^T, 0]]."""
    theta = torch.tensor([0.5, -1.0, 0.2], dtype=DT)
    phi = torch.tensor([2.0, 0.3], dtype=DT)

    def losses(t, p):
        v = _Cube.apply(t).sum() * p.sum()
        return v, -v

    H = GameJacobian(theta, phi, losses).full()
    expected = torch.zeros(5, 5, dtype=DT)
    expected[:3, :3] = torch.diag(6 * theta * phi.sum())
    expected[:3, 3:] = (3 * theta**2)[:, None].expand(3, 2)
    expected[3:, :3] = -(3 * theta**2)[None, :].expand(2, 3)
    torch.testing.assert_close(H, expected, rtol=1e-14, atol=1e-14)


def test_dense_refusal_states_its_estimate_and_the_matrix_free_way(monkeypatch) -> None:
    """The estimate is the n x n float32 matrix and two working copies: 3 * 20000^2 * 4 bytes."""
    monkeypatch.setenv("OTTOKIT_MEMORY_LIMIT", "1G")
    theta, phi = torch.zeros(10_000), torch.zeros(10_000)
    game = GameJacobian(theta, phi, lambda t, p: ((t * p).sum(), -(t * p).sum()))
    estimate = format_bytes(3 * 20_000**2 * 4)
    knob = r"use the matrix-free products \(hvp, htvp, hessian_plane\) for large models \(or set"
    with pytest.raises(MemoryEstimateError, match=rf"needs about {estimate} .* available; {knob}"):
        game.full()


def test_plane_and_losses_errors_in_full(gan_game: GameJacobian) -> None:
    e = torch.zeros(gan_game.w.numel(), dtype=DT)
    e[0] = 1.0
    plane = (r"^e_i and e_j must span a plane \(non-zero, not parallel\); "
             r"use two orthonormal vectors, e\.g\. coordinate directions$")
    with pytest.raises(ValueError, match=plane):
        gan_game.plane(e, -3 * e)
    t = torch.zeros(2, dtype=DT)
    losses = r"^losses must return two scalar tensors \(L_G, L_D\); return them as a tuple$"
    with pytest.raises(ValueError, match=losses):
        GameJacobian(t, t, lambda a, b: [a.sum()])

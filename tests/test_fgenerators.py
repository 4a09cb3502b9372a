"""The one f-divergence table: its direction, derivatives, conjugates, duals and array types.

The direction is checked against closed forms written here: for rho = N(m1, s1^2) (model)
and q = N(m2, s2^2) (data), int q f(rho/q) by quadrature must be KL(rho || q) for "kl" and
KL(q || rho) for "reverse_kl". Derivatives are checked by central differences, conjugates by
a numerical Fenchel supremum.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import integrate, optimize, stats

from ottokit.fgenerators import (
    F_DIVERGENCES,
    F_GENERATORS,
    FGenerator,
    dual_generator,
    get_generator,
)

R = np.array([0.05, 0.3, 0.9, 1.0, 1.7, 4.0, 12.0])
V = np.linspace(-2.0, 2.0, 9)
RHO = stats.norm(0.4, 0.8)  # model
Q = stats.norm(-0.1, 1.1)  # data


def _gauss_kl(a, b) -> float:
    """KL(N(m_a, s_a^2) || N(m_b, s_b^2)) in closed form."""
    (ma, sa), (mb, sb) = (a.mean(), a.std()), (b.mean(), b.std())
    return math.log(sb / sa) + (sa**2 + (ma - mb) ** 2) / (2 * sb**2) - 0.5


def _divergence(gen: FGenerator, p, q) -> float:
    """int q f(p/q) by quadrature (both densities below 1e-40 outside [-15, 15])."""
    value, _ = integrate.quad(
        lambda x: q.pdf(x) * float(gen.f(math.exp(p.logpdf(x) - q.logpdf(x)))),
        -15.0,
        15.0,
        epsabs=1e-13,
        epsrel=1e-11,
        limit=400,
    )
    return value


def test_one_direction_kl_is_model_from_data() -> None:
    kl = _divergence(F_GENERATORS["kl"], RHO, Q)
    reverse = _divergence(F_GENERATORS["reverse_kl"], RHO, Q)
    assert abs(kl - _gauss_kl(RHO, Q)) < 1e-10
    assert abs(reverse - _gauss_kl(Q, RHO)) < 1e-10
    assert abs(kl - reverse) > 1e-2  # the two directions differ on this pair
    # squared Hellinger in closed form: 2 (1 - Bhattacharyya coefficient)
    (m1, s1), (m2, s2) = (RHO.mean(), RHO.std()), (Q.mean(), Q.std())
    bc = math.sqrt(2 * s1 * s2 / (s1**2 + s2**2)) * math.exp(
        -((m1 - m2) ** 2) / (4 * (s1**2 + s2**2))
    )
    assert abs(_divergence(F_GENERATORS["hellinger"], RHO, Q) - 2 * (1 - bc)) < 1e-10


@pytest.mark.parametrize("name", F_DIVERGENCES)
def test_generator_derivatives_and_convexity(name: str) -> None:
    gen = get_generator(name)
    assert gen.name == name
    assert abs(float(gen.f(1.0))) < 1e-15
    h = 1e-6 * R
    fd = (gen.f(R + h) - gen.f(R - h)) / (2 * h)
    np.testing.assert_allclose(gen.df(R), fd, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(gen.d2f(R), (gen.df(R + h) - gen.df(R - h)) / (2 * h), rtol=1e-6)
    assert np.all(gen.d2f(R) > 0)


@pytest.mark.parametrize("name", F_DIVERGENCES)
def test_dual_is_u_f_of_one_over_u_and_swaps_the_arguments(name: str) -> None:
    gen = get_generator(name)
    dual = dual_generator(gen)
    np.testing.assert_allclose(dual.f(R), R * gen.f(1.0 / R), rtol=1e-12, atol=1e-15)
    assert dual_generator(dual) is gen
    assert abs(_divergence(gen, RHO, Q) - _divergence(dual, Q, RHO)) < 1e-10


@pytest.mark.parametrize("name", F_DIVERGENCES)
def test_conjugate_activation_and_optimal_logit(name: str) -> None:
    """f*(t) = sup_r (r t - f(r)) at t = g_f(v); g_f increasing; g_f(v*(log r)) = f'(r)."""
    gen = get_generator(name)
    t = gen.activation(V)
    assert np.all(np.diff(t) > 0)
    np.testing.assert_allclose(gen.conjugate(t), gen.conjugate_activation(V), rtol=1e-12)
    for ti, ci in zip(t, gen.conjugate_activation(V), strict=True):
        res = optimize.minimize_scalar(
            lambda s, ti=ti: -(math.exp(s) * ti - float(gen.f(math.exp(s)))),
            bounds=(-25.0, 8.0),
            method="bounded",
            options={"xatol": 1e-10},
        )
        assert abs(-res.fun - ci) < 1e-7, (name, ti, -res.fun, ci)
    np.testing.assert_allclose(gen.activation(gen.optimal_logit(np.log(R))), gen.df(R), rtol=1e-12)


@pytest.mark.parametrize("name", F_DIVERGENCES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_computes_in_the_callers_array_type(name: str, dtype: torch.dtype) -> None:
    gen = get_generator(name)
    r = torch.tensor(R, dtype=dtype)
    v = torch.tensor(V, dtype=dtype)
    rtol = 1e-5 if dtype == torch.float32 else 1e-12
    for fn, arg, ref in (
        (gen.f, r, R),
        (gen.df, r, R),
        (gen.d2f, r, R),
        (gen.activation, v, V),
        (gen.conjugate_activation, v, V),
        (gen.optimal_logit, v, V),
    ):
        out = fn(arg)
        assert isinstance(out, torch.Tensor) and out.dtype == dtype and out.shape == arg.shape
        np.testing.assert_allclose(out.numpy(), fn(ref), rtol=rtol, atol=1e-6 * rtol)
        assert isinstance(fn(ref), np.ndarray)
    assert gen.optimal_logit(v) is not v  # a new tensor, never the caller's


def test_unknown_names_and_generators_without_a_dual() -> None:
    with pytest.raises(ValueError, match="unknown f-divergence 'pearson'"):
        get_generator("pearson")
    custom = FGenerator("custom", lambda r: r * r - 1.0, lambda r: 2 * r, lambda r: 2 + 0 * r)
    with pytest.raises(ValueError, match="dual"):
        dual_generator(custom)


@pytest.mark.parametrize("name", F_DIVERGENCES)
def test_autograd_through_f_gives_df_and_d2f(name: str) -> None:
    """The torch path is differentiable: d f / dr = f' and d f' / dr = f'' by autograd."""
    gen = get_generator(name)
    r = torch.tensor(R, dtype=torch.float64, requires_grad=True)
    (df,) = torch.autograd.grad(gen.f(r).sum(), r, create_graph=True)
    np.testing.assert_allclose(df.detach().numpy(), gen.df(R), rtol=1e-12, atol=1e-14)
    (d2f,) = torch.autograd.grad(gen.df(r).sum(), r)
    np.testing.assert_allclose(d2f.numpy(), gen.d2f(R), rtol=1e-12)


@pytest.mark.parametrize("name", F_DIVERGENCES)
def test_conjugate_derivative_inverts_df(name: str) -> None:
    """Fenchel duality: (f*)'(f'(r)) = r, by autograd through the conjugate."""
    gen = get_generator(name)
    t = torch.tensor(gen.df(R), dtype=torch.float64, requires_grad=True)
    (slope,) = torch.autograd.grad(gen.conjugate(t).sum(), t)
    np.testing.assert_allclose(slope.numpy(), R, rtol=1e-10)


def test_a_dual_name_missing_from_the_table_is_refused() -> None:
    custom = FGenerator(
        "custom", lambda r: r * r - 1.0, lambda r: 2 * r, lambda r: 2 + 0 * r, dual="pearson"
    )
    with pytest.raises(ValueError) as info:
        dual_generator(custom)
    assert str(info.value) == (
        "FGenerator('custom') names no dual generator in F_GENERATORS (dual='pearson'); "
        "give it dual=<name of the entry with f(u) = u f(1/u)>"
    )

"""Free energies: first variations and Hessians against finite differences,
f-divergences against closed forms, scipy references and classical
inequalities (Gibbs, Pinsker, KL <= log(1 + chi^2))."""

from __future__ import annotations

import functools

import numpy as np
import pytest
from conftest import random_density, seeds
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import rel_entr
from scipy.stats import entropy as scipy_entropy

from ottokit.fgenerators import FGenerator, get_generator
from ottokit.functionals import (
    Entropy,
    FDivergence,
    Functional,
    PorousMedium,
    PotentialEnergy,
    SumFunctional,
)

N = 9
F_NAMES = ["kl", "reverse_kl", "jsd", "chi2", "reverse_chi2", "hellinger"]


def _q() -> np.ndarray:
    return random_density(N, seed=100, log10_ratio=1.5)


def _v() -> np.ndarray:
    return np.random.default_rng(101).uniform(-2.0, 2.0, N)


def triangular_discrimination(r):
    """f(r) = (r - 1)^2 / (r + 1), a convex generator given by hand with its derivatives."""
    return (r - 1.0) ** 2 / (r + 1.0)


def _triangular_df(r):
    return 1.0 - 4.0 / (r + 1.0) ** 2


def _triangular_d2f(r):
    return 8.0 / (r + 1.0) ** 3


def _alpha_f(r, alpha):
    """The alpha-divergence generator (r^a - 1 - a (r - 1)) / (a (a - 1)), a != 0, 1."""
    return (r**alpha - 1.0 - alpha * (r - 1.0)) / (alpha * (alpha - 1.0))


def _alpha_df(r, alpha):
    return (r ** (alpha - 1.0) - 1.0) / (alpha - 1.0)


def _alpha_d2f(r, alpha):
    return r ** (alpha - 2.0)


def alpha_generator(alpha: float) -> FGenerator:
    """An FGenerator outside the table; defined at r = 0 when alpha >= 2."""
    return FGenerator(
        f"alpha={alpha:g}",
        f=functools.partial(_alpha_f, alpha=alpha),
        df=functools.partial(_alpha_df, alpha=alpha),
        d2f=functools.partial(_alpha_d2f, alpha=alpha),
        needs_positive=alpha < 2,
    )


FUNCTIONALS = {
    "entropy": lambda: Entropy(),
    "porous_0.5": lambda: PorousMedium(0.5),
    "porous_2": lambda: PorousMedium(2.0),
    "porous_3.5": lambda: PorousMedium(3.5),
    "potential": lambda: PotentialEnergy(_v()),
    **{f"f_{name}": (lambda name=name: FDivergence(name, _q())) for name in F_NAMES},
    "f_custom": lambda: FDivergence(
        triangular_discrimination, _q(), df=_triangular_df, d2f=_triangular_d2f
    ),
    "f_alpha_generator": lambda: FDivergence(alpha_generator(-0.7), _q()),
    "entropy+potential": lambda: Entropy() + PotentialEnergy(_v()),
    "porous+kl+potential": lambda: (
        PorousMedium(2.0) + FDivergence("kl", _q()) + PotentialEnergy(_v())
    ),
}


def all_f_divergences(q: np.ndarray) -> list[FDivergence]:
    custom = FDivergence(triangular_discrimination, q, df=_triangular_df, d2f=_triangular_d2f)
    return [FDivergence(name, q) for name in F_NAMES] + [custom]


@pytest.mark.parametrize("name", FUNCTIONALS)
def test_first_variation_is_the_gradient_of_value(name):
    func: Functional = FUNCTIONALS[name]()
    rho = random_density(N, seed=1, log10_ratio=2.0)
    phi = func.first_variation(rho)
    assert phi.shape == (N,)
    for i in range(N):
        h = 1e-5 * rho[i]
        up, down = rho.copy(), rho.copy()
        up[i] += h
        down[i] -= h
        fd = (func.value(up) - func.value(down)) / (2 * h)
        # truncation O(h^2 F''') plus cancellation eps |F| / h
        tol = 1e-7 * abs(phi[i]) + 1e-15 * (1.0 + abs(func.value(rho))) / h
        assert abs(fd - phi[i]) <= tol, (i, fd, phi[i])


@pytest.mark.parametrize("name", FUNCTIONALS)
def test_hessian_diag_is_the_derivative_of_first_variation(name):
    func: Functional = FUNCTIONALS[name]()
    rho = random_density(N, seed=2, log10_ratio=2.0)
    hess = func.hessian_diag(rho)
    for i in range(N):
        h = 1e-5 * rho[i]
        up, down = rho.copy(), rho.copy()
        up[i] += h
        down[i] -= h
        column = (func.first_variation(up) - func.first_variation(down)) / (2 * h)
        phi_scale = np.abs(func.first_variation(rho)).max() + 1.0
        tol = 1e-7 * abs(hess[i]) + 1e-15 * phi_scale / h
        assert abs(column[i] - hess[i]) <= tol, (i, column[i], hess[i])
        # local functional: the Hessian is diagonal
        off = np.delete(column, i)
        assert np.all(np.abs(off) <= 1e-15 * phi_scale / h)


def test_closed_forms():
    rho = random_density(N, seed=3, log10_ratio=3.0)
    v = _v()
    assert abs(Entropy().value(np.full(N, 1.0 / N)) + np.log(N)) <= 1e-15 * np.log(N)
    assert abs(Entropy().value(rho) - np.sum(rho * np.log(rho))) <= 1e-15
    assert abs(PorousMedium(3.0).value(rho) - np.sum(rho**3) / 2) <= 1e-16
    assert abs(PotentialEnergy(v).value(rho) - v @ rho) <= 1e-15
    # Gibbs variational principle: min (H + V) = -log sum exp(-V), attained at exp(-V)/Z
    gibbs = np.exp(-v) / np.exp(-v).sum()
    free = Entropy() + PotentialEnergy(v)
    assert abs(free.value(gibbs) + np.log(np.exp(-v).sum())) <= 1e-14
    assert free.value(rho) > free.value(gibbs)
    phi = free.first_variation(gibbs)
    assert np.ptp(phi) <= 1e-14 * np.abs(phi).max()


@settings(max_examples=30, deadline=None)
@given(seed_p=seeds, seed_q=seeds, spread=st.floats(0.05, 6.0))
def test_f_divergences_vanish_only_at_q(seed_p, seed_q, spread):
    p = random_density(N, seed_p, spread)
    q = random_density(N, seed_q, spread)
    for div in all_f_divergences(q):
        assert abs(div.value(q)) <= 1e-15
        # f'(1) is constant, so the first variation at q is flat (the flow stops there)
        phi = div.first_variation(q)
        assert np.ptp(phi) <= 1e-14 * (1.0 + np.abs(phi).max())
        if np.abs(p - q).sum() > 1e-6:
            assert div.value(p) > 0, div


@settings(max_examples=30, deadline=None)
@given(seed_p=seeds, seed_q=seeds, spread=st.floats(0.05, 8.0))
def test_f_divergences_against_scipy_and_closed_forms(seed_p, seed_q, spread):
    p = random_density(N, seed_p, spread)
    q = random_density(N, seed_q, spread)
    kl = FDivergence("kl", q).value(p)
    ref_kl = scipy_entropy(p, q)
    assert abs(kl - ref_kl) <= 1e-12 * max(1.0, ref_kl)
    ref_rkl = scipy_entropy(q, p)
    assert abs(FDivergence("reverse_kl", q).value(p) - ref_rkl) <= 1e-12 * max(1.0, ref_rkl)
    m = 0.5 * (p + q)
    ref_jsd = 0.5 * rel_entr(p, m).sum() + 0.5 * rel_entr(q, m).sum()
    assert abs(FDivergence("jsd", q).value(p) - ref_jsd) <= 1e-12 * max(1e-3, ref_jsd)
    assert ref_jsd <= np.log(2) * (1 + 1e-12)
    chi2 = FDivergence("chi2", q).value(p)
    ref_chi2 = np.sum((p - q) ** 2 / q)
    assert abs(chi2 - ref_chi2) <= 1e-11 * max(1.0, ref_chi2)
    hel = FDivergence("hellinger", q).value(p)
    ref_hel = np.sum((np.sqrt(p) - np.sqrt(q)) ** 2)
    assert abs(hel - ref_hel) <= 1e-12 * max(1.0, ref_hel)
    tv = 0.5 * np.abs(p - q).sum()
    # Pinsker, KL <= log(1 + chi^2), and Hellinger^2 <= 2 TV
    assert tv**2 <= 0.5 * kl * (1 + 1e-12) + 1e-300
    assert kl <= np.log1p(chi2) * (1 + 1e-12) + 1e-15
    assert hel <= 2 * tv * (1 + 1e-12)


def test_sums_add_values_variations_and_hessians():
    rho = random_density(N, seed=4, log10_ratio=2.0)
    parts = [Entropy(), PorousMedium(2.0), PotentialEnergy(_v()), FDivergence("jsd", _q())]
    total = parts[0] + parts[1] + parts[2] + parts[3]
    assert isinstance(total, SumFunctional)
    assert len(total.terms) == 4
    assert abs(total.value(rho) - sum(p.value(rho) for p in parts)) <= 1e-14
    np.testing.assert_allclose(
        total.first_variation(rho), sum(p.first_variation(rho) for p in parts), rtol=1e-14
    )
    np.testing.assert_allclose(
        total.hessian_diag(rho), sum(p.hessian_diag(rho) for p in parts), rtol=1e-14
    )
    nested = (parts[0] + parts[1]) + (parts[2] + parts[3])
    assert abs(nested.value(rho) - total.value(rho)) <= 1e-15


def test_functionals_reject_bad_input():
    rho = random_density(N, seed=5, log10_ratio=1.0)
    zero = rho.copy()
    zero[2] = 0.0
    with pytest.raises(ValueError, match=r"Entropy needs rho > 0.*rho\[2\]"):
        Entropy().value(zero)
    with pytest.raises(ValueError, match=r"rho must be finite"):
        Entropy().first_variation(np.where(np.arange(N) == 1, np.nan, rho))
    with pytest.raises(ValueError, match=r"rho must be finite"):
        PotentialEnergy(_v()).value(np.where(np.arange(N) == 1, np.inf, rho))
    with pytest.raises(ValueError, match=r"needs rho >= 0"):
        PotentialEnergy(_v()).value(rho - 0.5)
    with pytest.raises(ValueError, match=r"needs rho > 0"):
        FDivergence("kl", _q()).hessian_diag(zero)
    with pytest.raises(ValueError, match=r"rho must be a vector of length 9"):
        FDivergence("chi2", _q()).value(rho[:-1])
    with pytest.raises(ValueError, match=r"unknown f-divergence 'tv'"):
        FDivergence("tv", _q())
    with pytest.raises(ValueError, match=r"df= and d2f="):
        FDivergence(triangular_discrimination, _q())
    with pytest.raises(TypeError, match=r"f must be"):
        FDivergence(3, _q())
    with pytest.raises(ValueError, match=r"q must be strictly positive"):
        FDivergence("kl", np.array([0.5, 0.5, 0.0]))
    with pytest.raises(ValueError, match=r"PorousMedium exponent m"):
        PorousMedium(1.0)
    with pytest.raises(ValueError, match=r"PorousMedium exponent m"):
        PorousMedium(-2.0)
    with pytest.raises(ValueError, match=r"V must be"):
        PotentialEnergy(np.zeros((2, 2)))
    with pytest.raises(ValueError, match=r"V must be finite"):
        PotentialEnergy(np.array([0.0, np.nan]))
    with pytest.raises(ValueError, match=r"different sizes"):
        PotentialEnergy(np.zeros(3)) + FDivergence("kl", np.full(4, 0.25))
    # chi^2 and PotentialEnergy are defined at rho = 0
    assert np.isfinite(FDivergence("chi2", _q()).value(zero))
    assert np.isfinite(PorousMedium(2.0).hessian_diag(zero)).all()


@pytest.mark.parametrize(
    ("make", "error", "message"),
    [
        (lambda q: FDivergence("kll", q), ValueError,
         "unknown f-divergence 'kll'; allowed: kl, reverse_kl, jsd, chi2, reverse_chi2, hellinger"),
        (lambda q: FDivergence(triangular_discrimination, q, df=_triangular_df), ValueError,
         "a callable f needs its derivatives: pass df= and d2f="),
        (lambda q: FDivergence(triangular_discrimination, q, d2f=_triangular_d2f), ValueError,
         "a callable f needs its derivatives"),
        (lambda q: FDivergence(3.0, q), TypeError,
         "f must be a name, an FGenerator or a callable, got <class 'float'>"),
        (lambda q: FDivergence("kl", q[None, :]), ValueError,
         "q must be a non-empty vector, got shape (1, 9)"),
        (lambda q: FDivergence("kl", q[:0]), ValueError, "q must be a non-empty vector"),
        (lambda q: FDivergence("kl", np.where(np.arange(N) == 3, 0.0, q)), ValueError,
         "q must be strictly positive; min q = 0"),
    ],
    ids=["unknown-name", "no-d2f", "no-df", "not-a-generator", "matrix-q", "empty-q", "zero-q"],
)
def test_f_divergence_refuses_what_it_cannot_compute(make, error, message) -> None:
    with pytest.raises(error) as info:
        make(_q())
    assert str(info.value).startswith(message)


def test_a_one_point_f_divergence_is_zero_at_its_reference() -> None:
    """A single node is a valid (trivial) density: D_f(q || q) = f(1) = 0 with q = [1]."""
    for name in F_NAMES:
        d = FDivergence(name, np.array([1.0]))
        assert d.size == 1 and abs(d.value(np.array([1.0]))) <= 1e-15
        assert d.generator.name == name


def test_a_callable_generator_is_named_after_its_function() -> None:
    d = FDivergence(triangular_discrimination, _q(), df=_triangular_df, d2f=_triangular_d2f)
    assert d.generator.name == "triangular_discrimination"
    assert repr(d) == "FDivergence('triangular_discrimination', n=9)"


@pytest.mark.parametrize("alpha", [-0.7, 0.5, 1.5, 2.0, 3.0])
def test_an_fgenerator_gives_the_alpha_divergence_closed_form(alpha) -> None:
    """D_a(p || q) = (sum p^a q^(1-a) - 1) / (a (a - 1)) for normalised p and q.

    At a = 2 it is chi^2 / 2 and at a = 1/2 twice the squared Hellinger distance, with
    first variations and Hessians in the same ratio (the f' of both differ by that factor).
    """
    q = _q()
    p = random_density(N, seed=7, log10_ratio=2.0)
    div = FDivergence(alpha_generator(alpha), q)
    ref = (np.sum(p**alpha * q ** (1.0 - alpha)) - 1.0) / (alpha * (alpha - 1.0))
    assert abs(div.value(p) - ref) <= 1e-13 * max(1.0, abs(ref))
    assert div.value(p) > 0
    assert div.generator.name == f"alpha={alpha:g}"
    table = {2.0: ("chi2", 0.5), 0.5: ("hellinger", 2.0)}
    if alpha in table:
        name, factor = table[alpha]
        same = FDivergence(get_generator(name), q)
        assert abs(div.value(p) - factor * same.value(p)) <= 1e-14
        np.testing.assert_allclose(
            div.first_variation(p), factor * same.first_variation(p), rtol=1e-13, atol=1e-15
        )
        np.testing.assert_allclose(div.hessian_diag(p), factor * same.hessian_diag(p), rtol=1e-13)


def test_the_generator_says_whether_zero_density_is_allowed() -> None:
    """f_a'' = r^(a-2) is finite at r = 0 for a >= 2 only; FDivergence follows the generator."""
    q = _q()
    zero = random_density(N, seed=8, log10_ratio=1.0)
    zero[4] = 0.0
    zero /= zero.sum()
    ref = (np.sum(zero**3 * q**-2.0) - 1.0) / 6.0
    assert abs(FDivergence(alpha_generator(3.0), q).value(zero) - ref) <= 1e-13 * ref
    with pytest.raises(ValueError, match=r"^FDivergence needs rho > 0 .*rho\[4\] = 0$"):
        FDivergence(alpha_generator(1.5), q).value(zero)


def test_a_callable_without_a_name_is_called_custom() -> None:
    q, p = _q(), random_density(N, seed=9, log10_ratio=2.0)
    alpha = 1.5
    d = FDivergence(
        functools.partial(_alpha_f, alpha=alpha),
        q,
        df=functools.partial(_alpha_df, alpha=alpha),
        d2f=functools.partial(_alpha_d2f, alpha=alpha),
    )
    assert d.generator.name == "custom"
    assert repr(d) == "FDivergence('custom', n=9)"
    assert abs(d.value(p) - FDivergence(alpha_generator(alpha), q).value(p)) <= 1e-15


def test_one_node_functionals_are_their_point_mass_values() -> None:
    """On one node rho = [1]: H = 0, potential energy V, porous medium 1/(m - 1)."""
    one = np.array([1.0])
    assert Entropy().value(one) == 0.0
    assert abs(PotentialEnergy(np.array([2.5])).value(one) - 2.5) <= 1e-15
    assert abs(PorousMedium(3.0).value(one) - 0.5) <= 1e-15
    assert abs((Entropy() + PotentialEnergy(np.array([-1.0]))).value(one) + 1.0) <= 1e-15


def test_a_sum_is_tied_to_the_size_of_its_terms_and_needs_what_they_need() -> None:
    v, q = _v(), _q()
    rho = random_density(N, seed=10, log10_ratio=1.0)
    zero = rho.copy()
    zero[5] = 0.0
    assert (Entropy() + PorousMedium(2.0)).size is None
    tied = Entropy() + PotentialEnergy(v)
    assert tied.size == N and tied.needs_positive
    with pytest.raises(ValueError, match=r"^rho must be a vector of length 9, got shape \(8,\)$"):
        tied.value(rho[:-1])
    with pytest.raises(ValueError, match=r"^SumFunctional needs rho > 0 .*rho\[5\] = 0$"):
        tied.first_variation(zero)
    # chi^2, rho^2 and V rho are all defined at rho = 0; so is their sum
    free = PorousMedium(2.0) + FDivergence("chi2", q) + PotentialEnergy(v)
    assert not free.needs_positive
    ref = np.sum(zero**2) + np.sum((zero - q) ** 2 / q) + v @ zero
    assert abs(free.value(zero) - ref) <= 1e-14 * max(1.0, abs(ref))


def test_reprs_name_each_term() -> None:
    total = Entropy() + PorousMedium(2.0) + PotentialEnergy(_v()) + FDivergence("kl", _q())
    assert repr(total) == (
        "Entropy() + PorousMedium(m=2) + PotentialEnergy(n=9) + FDivergence('kl', n=9)"
    )


def _with(rho: np.ndarray, k: int, value: float) -> np.ndarray:
    out = rho.copy()
    out[k] = value
    return out


_RHO = random_density(N, seed=11, log10_ratio=1.0)


@pytest.mark.parametrize(
    ("make", "error", "message"),
    [
        (lambda: Entropy().value(0.5), ValueError,
         "rho must be a non-empty vector (one mass per node), got shape ()"),
        (lambda: Entropy().value(np.zeros(0)), ValueError,
         "rho must be a non-empty vector (one mass per node), got shape (0,)"),
        (lambda: PorousMedium(2.0).value(np.full((2, 2), 0.25)), ValueError,
         "rho must be a non-empty vector (one mass per node), got shape (2, 2)"),
        (lambda: Entropy().value("rho"), TypeError, "rho must be an array of real numbers"),
        (lambda: Entropy().value(_with(_RHO, 3, np.inf)), ValueError,
         "rho must be finite (no NaN or inf); rho[3] = inf"),
        (lambda: PotentialEnergy(_v()).value(_with(_RHO, 3, -0.25)), ValueError,
         "PotentialEnergy needs rho >= 0; rho[3] = -0.25"),
        (lambda: PorousMedium(1.5).hessian_diag(_with(_RHO, 6, 0.0)), ValueError,
         "PorousMedium needs rho > 0 (it takes a logarithm or a negative power); rho[6] = 0"),
        (lambda: PorousMedium(-2.0), ValueError,
         "m must be a positive number, got -2; the PorousMedium exponent m is > 0 and != 1"),
        (lambda: PorousMedium(1.0), ValueError,
         "PorousMedium exponent m must be != 1 (m = 1 is the Entropy)"),
        (lambda: PotentialEnergy("V"), TypeError, "V must be an array of real numbers"),
        (lambda: PotentialEnergy(np.zeros((2, 2))), ValueError,
         "V must be a non-empty vector (one value per node), got (2, 2)"),
        (lambda: PotentialEnergy(_with(_v(), 1, np.nan)), ValueError,
         "V must be finite (no NaN or inf); V[1] = nan"),
        (lambda: FDivergence("kl", "q"), TypeError, "q must be an array of real numbers"),
        (lambda: FDivergence("kl", _with(_q(), 2, np.nan)), ValueError,
         "q must be finite (no NaN or inf); q[2] = nan"),
        (lambda: FDivergence("tv", _q()), ValueError,
         "unknown f-divergence 'tv'; allowed: kl, reverse_kl, jsd, chi2, reverse_chi2, "
         "hellinger or a callable with df= and d2f="),
    ],
    ids=["scalar-rho", "empty-rho", "matrix-rho", "text-rho", "inf-rho", "negative-rho",
         "zero-rho-porous", "negative-m", "m-one", "text-V", "matrix-V", "nan-V", "text-q",
         "nan-q", "unknown-name"],
)
def test_every_guard_fires_with_its_whole_message(make, error, message) -> None:
    with pytest.raises(error) as info:
        make()
    assert str(info.value).startswith(message), str(info.value)

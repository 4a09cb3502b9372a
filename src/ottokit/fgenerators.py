"""The one table of f-divergence generators, with one direction (seed 001 Def. 4.1).

For a convex ``f`` with ``f(1) = 0``, the entry ``F_GENERATORS[name]`` defines

    D_name(P || Q) = int q f(p / q) dx,        r = p / q,

and in ottokit P is always the MODEL (or evolving) density rho and Q the DATA (or
reference) density q. So ``"kl"`` is KL(rho || q) = KL(model || data) and ``"reverse_kl"``
is KL(q || rho), in :class:`~ottokit.functionals.FDivergence` (on densities) and in
:class:`~ottokit.gan.losses.FGANLoss` (from samples) alike.

Each :class:`FGenerator` holds f, f', f'' of the ratio r; the convex conjugate
``f*(t) = sup_r (r t - f(r))``; the f-GAN output activation ``g_f: R -> dom f*``
(Nowozin, Cseke & Tomioka 2016, Table 2, each written increasing in v); ``f*(g_f(v))`` in a
form finite for every real v; the optimal logit ``v*(log r) = g_f^{-1}(f'(r))``; and the
name of its dual ``f◇(u) = u f(1/u)``, for which ``D_f(P || Q) = D_f◇(Q || P)``.

The built-in entries compute in the caller's array type: torch tensors give tensors of the
same dtype and device, NumPy arrays and Python numbers give NumPy.
"""

from __future__ import annotations

import functools
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, Literal, get_args

import numpy as np
from scipy.special import xlogy

from ottokit._checks import check_option

__all__ = [
    "FGenerator",
    "FDivergenceName",
    "F_DIVERGENCES",
    "F_GENERATORS",
    "get_generator",
    "dual_generator",
]

FDivergenceName = Literal["kl", "reverse_kl", "jsd", "chi2", "reverse_chi2", "hellinger"]
F_DIVERGENCES: tuple[str, ...] = get_args(FDivergenceName)

Array = Any  # a NumPy array, a torch tensor or a Python number
_LOG2 = math.log(2.0)

_NUMPY = SimpleNamespace(
    log=np.log,
    exp=np.exp,
    sqrt=np.sqrt,
    expm1=np.expm1,
    xlogy=xlogy,
    softplus=lambda v: np.logaddexp(0.0, v),
    full_like=np.full_like,
    copy=np.copy,
)


@functools.cache
def _torch_namespace() -> SimpleNamespace:
    import torch

    return SimpleNamespace(
        log=torch.log,
        exp=torch.exp,
        sqrt=torch.sqrt,
        expm1=torch.expm1,
        xlogy=torch.xlogy,
        softplus=torch.nn.functional.softplus,
        full_like=torch.full_like,
        copy=torch.clone,
    )


def _xp(x: Array) -> SimpleNamespace:
    """The array namespace of ``x``: torch for tensors, NumPy for everything else."""
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(x, torch.Tensor):
        return _torch_namespace()
    return _NUMPY


@dataclass(frozen=True)
class FGenerator:
    """A convex generator ``f`` with ``f(1) = 0``: ``D_f(P || Q) = int q f(p/q)``.

    ``f``, ``df``, ``d2f`` are needed by the density functionals; the f-GAN fields
    (``conjugate``, ``activation``, ``conjugate_activation``, ``optimal_logit``) and
    ``dual`` are needed by :class:`~ottokit.gan.losses.FGANLoss` and may be left ``None``
    for a generator used only on densities.

    Attributes:
        name: the key in :data:`F_GENERATORS` (or a label for a custom generator).
        f, df, d2f: ``f(r)``, ``f'(r)``, ``f''(r)`` of the ratio ``r = p/q``.
        needs_positive: whether f, f' or f'' is undefined at ``r = 0``.
        conjugate: ``f*(t)`` on ``dom f*``.
        activation: the f-GAN output activation ``g_f``, increasing, onto ``dom f*``.
        conjugate_activation: ``f*(g_f(v))``, finite for every real v.
        optimal_logit: ``v*(log r) = g_f^{-1}(f'(r))`` as a function of ``log r``.
        dual: the name of the entry with ``f◇(u) = u f(1/u)``.
        description: the divergence in words, in the direction P = model, Q = data.
    """

    name: str
    f: Callable[[Array], Array]
    df: Callable[[Array], Array]
    d2f: Callable[[Array], Array]
    needs_positive: bool = True
    conjugate: Callable[[Array], Array] | None = None
    activation: Callable[[Array], Array] | None = None
    conjugate_activation: Callable[[Array], Array] | None = None
    optimal_logit: Callable[[Array], Array] | None = None
    dual: str | None = None
    description: str = ""

    def __repr__(self) -> str:
        return f"FGenerator({self.name!r})"


def _jsd_f(r: Array) -> Array:
    xp = _xp(r)
    return 0.5 * (r * xp.log(r) - (1.0 + r) * xp.log((1.0 + r) / 2.0))


def _kl(r: Array) -> Array:
    return r * _xp(r).log(r)


F_GENERATORS: dict[str, FGenerator] = {
    g.name: g
    for g in (
        FGenerator(
            "kl",
            f=_kl,
            df=lambda r: _xp(r).log(r) + 1.0,
            d2f=lambda r: 1.0 / r,
            conjugate=lambda t: _xp(t).exp(t - 1.0),
            activation=lambda v: v,
            conjugate_activation=lambda v: _xp(v).exp(v - 1.0),
            optimal_logit=lambda log_r: log_r + 1.0,
            dual="reverse_kl",
            description="KL(model || data) = int rho log(rho/q); f(r) = r log r",
        ),
        FGenerator(
            "reverse_kl",
            f=lambda r: -_xp(r).log(r),
            df=lambda r: -1.0 / r,
            d2f=lambda r: 1.0 / r**2,
            conjugate=lambda t: -1.0 - _xp(t).log(-t),
            activation=lambda v: -_xp(v).exp(-v),
            conjugate_activation=lambda v: v - 1.0,
            optimal_logit=lambda log_r: _xp(log_r).copy(log_r),
            dual="kl",
            description="KL(data || model) = int q log(q/rho); f(r) = -log r",
        ),
        FGenerator(
            "jsd",
            f=_jsd_f,
            df=lambda r: 0.5 * _xp(r).log(2.0 * r / (1.0 + r)),
            d2f=lambda r: 0.5 / (r * (1.0 + r)),
            conjugate=lambda t: -0.5 * _xp(t).log(2.0 - _xp(t).exp(2.0 * t)),
            activation=lambda v: 0.5 * (_LOG2 - _xp(v).softplus(-v)),
            conjugate_activation=lambda v: 0.5 * (_xp(v).softplus(v) - _LOG2),
            optimal_logit=lambda log_r: _xp(log_r).copy(log_r),
            dual="jsd",
            description=(
                "Jensen-Shannon JSD(model, data) = KL(rho || m)/2 + KL(q || m)/2, "
                "m = (rho + q)/2; f(r) = (r log r - (1 + r) log((1 + r)/2))/2"
            ),
        ),
        FGenerator(
            "chi2",
            f=lambda r: (r - 1.0) ** 2,
            df=lambda r: 2.0 * (r - 1.0),
            d2f=lambda r: _xp(r).full_like(r, 2.0),
            needs_positive=False,
            conjugate=lambda t: 0.25 * t**2 + t,
            activation=lambda v: v,
            conjugate_activation=lambda v: 0.25 * v**2 + v,
            optimal_logit=lambda log_r: 2.0 * _xp(log_r).expm1(log_r),
            dual="reverse_chi2",
            description="Pearson chi^2(model || data) = int (rho - q)^2/q; f(r) = (r - 1)^2",
        ),
        FGenerator(
            "reverse_chi2",
            f=lambda r: (r - 1.0) ** 2 / r,
            df=lambda r: 1.0 - 1.0 / r**2,
            d2f=lambda r: 2.0 / r**3,
            conjugate=lambda t: 2.0 - 2.0 * _xp(t).sqrt(1.0 - t),
            activation=lambda v: -_xp(v).expm1(-v),
            conjugate_activation=lambda v: -2.0 * _xp(v).expm1(-0.5 * v),
            optimal_logit=lambda log_r: 2.0 * log_r,
            dual="chi2",
            description=(
                "Neyman chi^2, chi^2(data || model) = int (q - rho)^2/rho; f(r) = (r - 1)^2/r"
            ),
        ),
        FGenerator(
            "hellinger",
            f=lambda r: (_xp(r).sqrt(r) - 1.0) ** 2,
            df=lambda r: 1.0 - 1.0 / _xp(r).sqrt(r),
            d2f=lambda r: 0.5 * r**-1.5,
            conjugate=lambda t: t / (1.0 - t),
            activation=lambda v: -_xp(v).expm1(-v),
            conjugate_activation=lambda v: _xp(v).expm1(v),
            optimal_logit=lambda log_r: 0.5 * log_r,
            dual="hellinger",
            description="squared Hellinger int (sqrt rho - sqrt q)^2; f(r) = (sqrt r - 1)^2",
        ),
    )
}


def get_generator(name: str) -> FGenerator:
    """The table entry ``name`` (one of :data:`F_DIVERGENCES`), else ValueError."""
    check_option(name, F_DIVERGENCES, "f-divergence")
    return F_GENERATORS[name]


def dual_generator(gen: FGenerator) -> FGenerator:
    """The entry ``f◇(u) = u f(1/u)`` of ``gen``, with ``D_f(P || Q) = D_f◇(Q || P)``."""
    if gen.dual is None or gen.dual not in F_GENERATORS:
        raise ValueError(
            f"{gen!r} names no dual generator in F_GENERATORS (dual={gen.dual!r}); give it "
            "dual=<name of the entry with f(u) = u f(1/u)>"
        )
    return F_GENERATORS[gen.dual]

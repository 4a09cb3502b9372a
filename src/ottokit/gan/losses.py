"""GAN objectives: the usual GAN, the f-GAN family, WGAN-GP and the hinge loss.

Notation (seed 001 §4): ``q`` is the DATA density and ``rho`` the MODEL density
(``rho = (G_theta)_# p_z``); ``v = D(x)`` is the discriminator's raw output, one
real number per sample ("logit"). Every loss exposes
``discriminator_loss(D, real, fake)`` (minimised over D), ``generator_loss(D, fake)``
(minimised over G) and ``optimal_logit(log_ratio)``, the pointwise optimal ``v*(x)`` as a
function of ``log_ratio = log q(x)/rho(x)`` (WGAN-GP has none: its optimum is a
Kantorovich potential). ``D`` may be ANY callable ``x -> logits`` of shape ``(n,)`` or
``(n, 1)``; only the gradient penalty differentiates in ``x``, with ``torch.func.grad``.

f-GANs (Nowozin, Cseke & Tomioka 2016) are named after the divergence they estimate in
the one direction of :mod:`ottokit.fgenerators`: ``"fgan-kl"`` estimates
KL(model || data), the seed's ``F_f(rho || q) = int q f(rho/q)``. Writing it as
``D_f(rho || q) = int rho f◇(q/rho)`` with the dual ``f◇(u) = u f(1/u)``, the critic
solves Nowozin's eq. 6 for f◇:
``D_f(rho || q) >= sup_T E_q[T] - E_rho[f◇*(T)]``, tight at ``T*(x) = f◇'(q(x)/rho(x))``,
with ``T = g_f◇(v)``. The minimax generator loss ``-E_rho[f◇*(T)]`` has, at that
optimum, the first variation ``f'(rho/q)`` in rho: the seed's adversarial potential, the
first variation of :class:`~ottokit.functionals.FDivergence` (seed 001 Lemma 4.2), so it
drives the W_2 gradient flow of the divergence. ``"alternative"`` is ``-E_rho[g_f◇(v)]``
(Nowozin's §3.2 trick, the analogue of the non-saturating GAN loss).
"""

from __future__ import annotations

import math
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, Literal, get_args

import torch
import torch.nn.functional as F
from torch import Tensor

from ottokit._checks import check_option, check_real
from ottokit.fgenerators import F_DIVERGENCES, FGenerator, dual_generator, get_generator

__all__ = [
    "LOSSES",
    "LossName",
    "FGAN_LOSSES",
    "GANLoss",
    "StandardGANLoss",
    "FGANLoss",
    "WGANGPLoss",
    "HingeLoss",
    "gradient_penalty",
    "make_loss",
]

Discriminator = Callable[[Tensor], Tensor]
# (start, stop, n): these rows are start:stop of a global batch of n (data parallelism)
Shard = tuple[int, int, int]
LossName = Literal[
    "ns",
    "minimax",
    "fgan-kl",
    "fgan-reverse_kl",
    "fgan-jsd",
    "fgan-chi2",
    "fgan-reverse_chi2",
    "fgan-hellinger",
    "wgan-gp",
    "hinge",
]
LOSSES: tuple[str, ...] = get_args(LossName)
FGAN_LOSSES: tuple[str, ...] = tuple(f"fgan-{name}" for name in F_DIVERGENCES)
# The f-GAN losses' names before they followed the one direction of ottokit.fgenerators:
# each estimated D(data || model). The old spellings keep working, with a warning, where
# a loss of the new names computes exactly the same thing.
_RENAMED_FGAN_LOSSES = {
    "kl": "fgan-reverse_kl",
    "reverse_kl": "fgan-kl",
    "pearson": "fgan-reverse_chi2",
    "squared_hellinger": "fgan-hellinger",
}
GeneratorForm = Literal["minimax", "alternative"]


def _check_batch(x: Any, name: str) -> Tensor:
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of samples, got {type(x).__name__}")
    if x.ndim == 0 or x.shape[0] == 0:
        raise ValueError(
            f"{name} must be a non-empty batch of samples (n, ...), got shape {tuple(x.shape)}"
        )
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
    return x


def _check_pair(real: Any, fake: Any) -> tuple[Tensor, Tensor]:
    real, fake = _check_batch(real, "real"), _check_batch(fake, "fake")
    if real.shape[1:] != fake.shape[1:]:
        raise ValueError(
            f"real and fake samples must have the same shape per sample, got real "
            f"{tuple(real.shape)} and fake {tuple(fake.shape)}"
        )
    return real, fake


def _logits(D: Discriminator, x: Tensor, name: str) -> Tensor:
    """``D(x)`` as a vector of ``n`` logits (``(n,)`` or ``(n, 1)`` accepted)."""
    if not callable(D):
        raise TypeError(f"D must be a callable x -> logits (a module or function), got {D!r}")
    v = D(x)
    if not isinstance(v, Tensor):
        raise TypeError(f"D must return a torch.Tensor of logits, got {type(v).__name__}")
    n = x.shape[0]
    if v.ndim == 2 and v.shape[1] == 1:
        v = v[:, 0]
    if v.shape != (n,):
        raise ValueError(
            f"D must return one logit per sample, shape ({n},) or ({n}, 1), for {name} "
            f"samples of shape {tuple(x.shape)}; got {tuple(v.shape)}"
        )
    return v


def _pair_logits(D: Discriminator, real: Any, fake: Any) -> tuple[Tensor, Tensor]:
    """``D``'s logits on the real batch, then on the fake one (checked as a pair)."""
    real, fake = _check_pair(real, fake)
    return _logits(D, real, "real"), _logits(D, fake, "fake")


def _fake_logits(D: Discriminator, fake: Any) -> Tensor:
    """``D``'s logits on a checked batch of generated samples."""
    return _logits(D, _check_batch(fake, "fake"), "fake")


def _as_tensor(x: Any) -> Tensor:
    if isinstance(x, Tensor):
        return x if x.is_floating_point() else x.to(torch.get_default_dtype())
    return torch.as_tensor(x, dtype=torch.float64)


class GANLoss(ABC):
    """A GAN objective: a discriminator loss, a generator loss and the optimal logit.

    Attributes:
        name: the name :func:`make_loss` knows it by.
        logit_meaning: what ``D(x)`` means at the optimum, in words.
    """

    name: str = ""
    logit_meaning: str = ""

    @abstractmethod
    def discriminator_loss(
        self,
        D: Discriminator,
        real: Tensor,
        fake: Tensor,
        *,
        generator: torch.Generator | None = None,
        shard: Shard | None = None,
    ) -> Tensor:
        """Scalar loss minimised over D; ``generator`` seeds any randomness it uses.

        ``shard = (start, stop, n)`` says that ``real`` and ``fake`` are rows
        ``start:stop`` of a global batch of ``n`` (data-parallel training): randomness
        is drawn for all ``n`` rows and sliced, so every rank consumes the same stream
        as a single process would.
        """

    @abstractmethod
    def generator_loss(self, D: Discriminator, fake: Tensor) -> Tensor:
        """Scalar loss minimised over G (``fake = G(z)`` carries the graph to theta)."""

    def optimal_logit(self, log_ratio: Tensor | float) -> Tensor:
        """The optimal ``v*(x)`` given ``log_ratio = log q(x)/rho(x)`` (q data, rho model)."""
        raise NotImplementedError(f"the {self.name!r} loss has no pointwise optimal logit")

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


class StandardGANLoss(GANLoss):
    """The GAN of Goodfellow et al. 2014 with ``D(x) = sigmoid(v)``.

    ``discriminator_loss = -E_q[log sigmoid(v)] - E_rho[log(1 - sigmoid(v))]``
    (binary cross-entropy on logits). The optimal logit is ``v* = log q/rho``
    (``sigmoid(v*) = q/(q + rho)``) and there
    ``-discriminator_loss = 2 JSD(q, rho) - log 4``, with
    ``JSD = KL(q||m)/2 + KL(rho||m)/2``, ``m = (q + rho)/2``.

    ``non_saturating=True`` ("ns"): ``generator_loss = -E_rho[log sigmoid(v)]``;
    ``False`` ("minimax"): ``generator_loss = E_rho[log(1 - sigmoid(v))]``, the
    saturating loss whose value at the optimal D is the bound itself.
    """

    logit_meaning = "log q(x)/rho(x) at the optimum (q data, rho model); D(x) = sigmoid(logit)"

    def __init__(self, non_saturating: bool = True) -> None:
        self.non_saturating = bool(non_saturating)
        self.name = "ns" if self.non_saturating else "minimax"

    def discriminator_loss(
        self,
        D: Discriminator,
        real: Tensor,
        fake: Tensor,
        *,
        generator: torch.Generator | None = None,
        shard: Shard | None = None,
    ) -> Tensor:
        v_real, v_fake = _pair_logits(D, real, fake)
        # -log sigmoid(v) = softplus(-v), -log(1 - sigmoid(v)) = softplus(v)
        return F.softplus(-v_real).mean() + F.softplus(v_fake).mean()

    def generator_loss(self, D: Discriminator, fake: Tensor) -> Tensor:
        v = _fake_logits(D, fake)
        if self.non_saturating:
            return F.softplus(-v).mean()
        return -F.softplus(v).mean()

    def optimal_logit(self, log_ratio: Tensor | float) -> Tensor:
        return _as_tensor(log_ratio).clone()


class FGANLoss(GANLoss):
    """The f-GAN objective (Nowozin et al. 2016) estimating ``D_f(model || data)``.

    ``generator`` is an entry of :data:`~ottokit.fgenerators.F_GENERATORS` (or a custom
    :class:`~ottokit.fgenerators.FGenerator` naming its dual), read in the table's one
    direction: ``FGANLoss(F_GENERATORS["kl"])`` estimates KL(model || data). The critic
    works with the dual ``f◇`` (``critic``), on the ratio ``q/rho``:
    ``discriminator_loss = -(E_q[g(v)] - E_rho[f◇*(g(v))])`` with ``g = g_f◇``, minus a
    lower bound on ``D_f(rho || q)`` tight at ``g(v*) = f◇'(q/rho)``; ``f◇*(g(v))`` is
    evaluated in a closed form finite for every real v (see the module docstring).

    Args:
        generator: the f-divergence, an :class:`~ottokit.fgenerators.FGenerator`. Names
            go through :func:`make_loss` (``"fgan-kl"``, ...).
        generator_form: ``"minimax"`` (``-E_rho[f◇*(g(v))]``) or ``"alternative"``
            (``-E_rho[g(v)]``).
    """

    def __init__(
        self, generator: FGenerator, generator_form: GeneratorForm = "minimax"
    ) -> None:
        if isinstance(generator, str):
            renamed = _RENAMED_FGAN_LOSSES.get(generator)
            hint = (
                f"; FGANLoss({generator!r}) used to estimate the divergence now called "
                f"{renamed.removeprefix('fgan-')!r}"
                if renamed
                else ""
            )
            raise TypeError(
                "FGANLoss takes an FGenerator of ottokit.fgenerators.F_GENERATORS, in the "
                "table's direction D_f(model || data), e.g. FGANLoss(F_GENERATORS['kl']) for "
                f"KL(model || data), or a name through make_loss('fgan-kl'){hint}"
            )
        if not isinstance(generator, FGenerator):
            raise TypeError(f"generator must be an FGenerator, got {type(generator).__name__}")
        check_option(generator_form, GeneratorForm, "generator_form")
        critic = dual_generator(generator)
        missing = [
            k
            for k in ("activation", "conjugate", "conjugate_activation", "optimal_logit")
            if getattr(critic, k) is None
        ]
        if missing:
            raise ValueError(f"the critic generator {critic!r} lacks the f-GAN fields {missing}")
        self.divergence = generator
        self.critic = critic
        self.generator_form = generator_form
        self.name = f"fgan-{generator.name}"
        self.logit_meaning = (
            f"{generator.description}; at the optimum g(v*) = f◇'(q/rho) with f◇ the "
            f"{critic.name!r} generator"
        )

    def activation(self, v: Tensor | float) -> Tensor:
        """The critic's output activation ``T = g_f◇(v)``, mapping R into ``dom f◇*``."""
        return self.critic.activation(_as_tensor(v))

    def conjugate(self, t: Tensor | float) -> Tensor:
        """The convex conjugate ``f◇*(t) = sup_u (u t - f◇(u))`` on its domain."""
        return self.critic.conjugate(_as_tensor(t))

    def conjugate_activation(self, v: Tensor | float) -> Tensor:
        """``f◇*(g_f◇(v))`` in a closed form that is finite for all real v."""
        return self.critic.conjugate_activation(_as_tensor(v))

    def discriminator_loss(
        self,
        D: Discriminator,
        real: Tensor,
        fake: Tensor,
        *,
        generator: torch.Generator | None = None,
        shard: Shard | None = None,
    ) -> Tensor:
        v_real, v_fake = _pair_logits(D, real, fake)
        t_real = self.critic.activation(v_real).mean()
        return -(t_real - self.critic.conjugate_activation(v_fake).mean())

    def generator_loss(self, D: Discriminator, fake: Tensor) -> Tensor:
        v = _fake_logits(D, fake)
        if self.generator_form == "minimax":
            return -self.critic.conjugate_activation(v).mean()
        return -self.critic.activation(v).mean()

    def optimal_logit(self, log_ratio: Tensor | float) -> Tensor:
        return self.critic.optimal_logit(_as_tensor(log_ratio))

    def __repr__(self) -> str:
        return f"FGANLoss({self.name!r}, generator_form={self.generator_form!r})"


def gradient_penalty(
    D: Discriminator,
    real: Tensor,
    fake: Tensor,
    *,
    generator: torch.Generator | None = None,
    center: float = 1.0,
    shard: Shard | None = None,
) -> Tensor:
    """``E[(||grad_x D(x_hat)|| - center)^2]`` on random interpolates (Gulrajani et al. 2017).

    ``x_hat = eps * real + (1 - eps) * fake`` with one ``eps ~ U[0, 1]`` per sample
    (drawn with ``generator``; with ``shard = (start, stop, n)`` drawn for all ``n``
    rows of a global batch and sliced to ``start:stop``); the norm is over all
    non-batch axes. It vanishes for a critic whose gradient has norm ``center``
    everywhere (e.g. ``x -> <w, x>`` with ``|w| = 1``). The gradient in x is taken with
    ``torch.func.grad``, so D may be any callable (a module, a function, a
    ``functional_call``), the penalty is differentiable in D's parameters by ordinary
    autograd, and it can itself be differentiated by ``torch.func`` transforms.
    """
    real, fake = _check_pair(real, fake)
    if real.shape[0] != fake.shape[0]:
        raise ValueError(
            f"the gradient penalty interpolates real and fake samples pairwise: they need "
            f"the same batch size, got {real.shape[0]} and {fake.shape[0]}"
        )
    if not math.isfinite(center) or center < 0:
        raise ValueError(f"center must be a finite number >= 0, got {center!r}")
    start, stop, n = (0, real.shape[0], real.shape[0]) if shard is None else shard
    if stop - start != real.shape[0] or not 0 <= start <= stop <= n:
        raise ValueError(
            f"shard {shard} does not describe the {real.shape[0]} rows given (start, stop, n)"
        )
    shape = (n,) + (1,) * (real.ndim - 1)
    eps = torch.rand(shape, generator=generator, device=real.device, dtype=real.dtype)
    eps = eps[start:stop]
    # torch.func cannot run DistributedDataParallel's forward (it syncs buffers in place):
    # differentiate the wrapped module; DDP still averages the gradients it leaves on
    # the parameters, as the loss's other terms ran through the wrapper
    if isinstance(D, torch.nn.parallel.DistributedDataParallel):
        D = D.module
    x_hat = eps * real + (1.0 - eps) * fake
    # samples are independent, so grad_x of sum_j D(x_j) stacks the per-sample gradients;
    # torch.func.grad keeps the graph to D's parameters (and to real/fake) for the outer
    # backward, and also works inside torch.func transforms over functional_call
    with torch.enable_grad():
        grad = torch.func.grad(lambda x: _logits(D, x, "interpolated").sum())(x_hat)
    norm = torch.sqrt(grad.flatten(1).pow(2).sum(dim=1) + 1e-12)
    return ((norm - center) ** 2).mean()


class WGANGPLoss(GANLoss):
    """Wasserstein GAN with gradient penalty (Gulrajani et al. 2017).

    ``discriminator_loss = E_rho[v] - E_q[v] + gp_weight * gradient_penalty`` and
    ``generator_loss = -E_rho[v]``. For a 1-Lipschitz critic,
    ``E_q[v] - E_rho[v] <= W_1(q, rho)`` (Kantorovich-Rubinstein), with equality at a
    Kantorovich potential: the critic's output is that potential (higher on data),
    not a function of the density ratio, so :meth:`optimal_logit` is not defined.
    """

    name = "wgan-gp"
    logit_meaning = "a Kantorovich potential for W_1(data, model), larger on data"

    def __init__(self, gp_weight: float = 10.0, center: float = 1.0) -> None:
        self.gp_weight = check_real(gp_weight, "gp_weight", ge=0, example=10.0)
        self.center = check_real(center, "center", ge=0, example=1.0)

    def penalty(
        self,
        D: Discriminator,
        real: Tensor,
        fake: Tensor,
        *,
        generator: torch.Generator | None = None,
        shard: Shard | None = None,
    ) -> Tensor:
        """The unweighted gradient penalty (see :func:`gradient_penalty`)."""
        return gradient_penalty(
            D, real, fake, generator=generator, center=self.center, shard=shard
        )

    def discriminator_loss(
        self,
        D: Discriminator,
        real: Tensor,
        fake: Tensor,
        *,
        generator: torch.Generator | None = None,
        shard: Shard | None = None,
    ) -> Tensor:
        real, fake = _check_pair(real, fake)
        loss = _logits(D, fake, "fake").mean() - _logits(D, real, "real").mean()
        if self.gp_weight > 0:
            penalty = self.penalty(D, real, fake, generator=generator, shard=shard)
            loss = loss + self.gp_weight * penalty
        return loss

    def generator_loss(self, D: Discriminator, fake: Tensor) -> Tensor:
        return -_fake_logits(D, fake).mean()

    def optimal_logit(self, log_ratio: Tensor | float) -> Tensor:
        raise NotImplementedError(
            "the WGAN critic's optimum is a Kantorovich potential of W_1(data, model), not a "
            "function of the density ratio; estimate it with ottokit.ot instead"
        )

    def __repr__(self) -> str:
        return f"WGANGPLoss(gp_weight={self.gp_weight}, center={self.center})"


class HingeLoss(GANLoss):
    """Hinge loss (Lim & Ye 2017; Miyato et al. 2018).

    ``discriminator_loss = E_q[max(0, 1 - v)] + E_rho[max(0, 1 + v)]``,
    ``generator_loss = -E_rho[v]``. Pointwise the D loss ``q (1 - v)_+ + rho (1 + v)_+``
    is minimised by ``v* = sign(log q/rho)`` (any v in [-1, 1] where q = rho), with
    minimum ``2 min(q, rho)``: at the optimum ``-discriminator_loss = 2 TV(q, rho) - 2``,
    ``TV = (1/2) int |q - rho|``.
    """

    name = "hinge"
    logit_meaning = "sign(log q(x)/rho(x)) at the optimum (+1 where data is denser)"

    def discriminator_loss(
        self,
        D: Discriminator,
        real: Tensor,
        fake: Tensor,
        *,
        generator: torch.Generator | None = None,
        shard: Shard | None = None,
    ) -> Tensor:
        v_real, v_fake = _pair_logits(D, real, fake)
        return F.relu(1.0 - v_real).mean() + F.relu(1.0 + v_fake).mean()

    def generator_loss(self, D: Discriminator, fake: Tensor) -> Tensor:
        return -_fake_logits(D, fake).mean()

    def optimal_logit(self, log_ratio: Tensor | float) -> Tensor:
        return torch.sign(_as_tensor(log_ratio))


def make_loss(name: str, **kwargs: Any) -> GANLoss:
    """A loss by name: one of :data:`LOSSES` (``"wgan_gp"`` is accepted for ``"wgan-gp"``).

    ``"fgan-<f>"`` is the f-GAN of the divergence ``<f>`` of
    :data:`~ottokit.fgenerators.F_GENERATORS` in its one direction, D_f(model || data).
    The old f-GAN spellings ``"kl"``, ``"reverse_kl"``, ``"pearson"`` and
    ``"squared_hellinger"`` estimated D(data || model): they still give the same loss, under
    its new name, with a DeprecationWarning; ``"jsd"`` (which estimated 2 JSD) is an error.

    Keyword arguments go to the loss: ``generator_form`` for the f-GAN family,
    ``gp_weight`` and ``center`` for WGAN-GP; ``"ns"``, ``"minimax"`` and ``"hinge"``
    take none.
    """
    if not isinstance(name, str):
        raise TypeError(f"loss name must be a string, one of {LOSSES}, got {name!r}")
    if name in _RENAMED_FGAN_LOSSES:
        new = _RENAMED_FGAN_LOSSES[name]
        warnings.warn(
            f"the GAN loss {name!r} is now called {new!r}: it estimates "
            f"{get_generator(new.removeprefix('fgan-')).description.split(';')[0]}; the f-GAN "
            f"names follow ottokit.fgenerators, where {name!r} means the other direction",
            DeprecationWarning,
            stacklevel=2,
        )
        name = new
    if name == "jsd":
        raise ValueError(
            "the GAN loss 'jsd' estimated 2 JSD(data, model); ask for 'fgan-jsd', which "
            "estimates JSD(model, data) itself: the same optimal logit, half the loss and its "
            "gradients"
        )
    key = "wgan-gp" if name == "wgan_gp" else name
    check_option(key, LOSSES, "GAN loss")
    accepted: tuple[str, ...]
    if key in FGAN_LOSSES:
        accepted = ("generator_form",)
    elif key == "wgan-gp":
        accepted = ("gp_weight", "center")
    else:
        accepted = ()
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown:
        raise TypeError(
            f"loss {key!r} does not take {unknown}; it accepts {list(accepted) or 'no options'}"
        )
    if key in ("ns", "minimax"):
        return StandardGANLoss(non_saturating=key == "ns")
    if key in FGAN_LOSSES:
        return FGANLoss(get_generator(key.removeprefix("fgan-")), **kwargs)
    if key == "wgan-gp":
        return WGANGPLoss(**kwargs)
    return HingeLoss()

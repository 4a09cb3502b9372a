"""Discriminator-driven samplers that DOT is compared with (seed 003 §3.2-3.3).

* :func:`drs`: discriminator rejection sampling (Azadi et al. 2018; seed 003 §3.2,
  "識別器による棄却サンプリング"). With the optimal logit D*(x) = log p_X(x)/p_G(x), accepting
  a proposal x ~ p_G with probability exp(D*(x) - D*_M), D*_M >= max D*, is exact rejection
  sampling of p_X (seed 003 §1.2: acceptance 1/(M e^{-D(y)})). The practical version shifts:
  F = D - D_M - log(1 - exp(D - D_M - eps)), accept with sigma(F - gamma), gamma a
  percentile of F.
* :func:`mh_gan`: Metropolis-Hastings GAN (Turner et al. 2018; seed 003 §3.3). Independence
  sampler with proposals from G and acceptance min(1, (1/D(x_k) - 1)/(1/D(x') - 1)), D the
  calibrated probability (:func:`calibrate`); since 1/D - 1 = p_G/p_X for the optimal D,
  the chain leaves p_X invariant. Chains start from real data.
* :func:`ddls`: discriminator driven latent sampling (Che et al. 2020; seed 003 §3.3,
  "Energy-based改善"): Langevin dynamics z <- z - (eps/2) grad E(z) + sqrt(eps) xi on
  E(z) = -log p_Z(z) - D(G(z)), whose stationary law is ∝ p_Z(z) exp(D(G(z))); optionally
  Metropolis-adjusted (MALA), which leaves that law exactly invariant.

All take torch callables G: z -> x and D: x -> logit and follow the device and dtype of the
inputs (or of G's parameters when latents are drawn here). With ``distributed=True`` under
an initialised process group, each splits its samples across the ranks and returns the
single-process result on every rank.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor, nn

from ottokit._checks import as_array, check_instance, check_int, check_option, check_real, options
from ottokit.dot._sharding import Sharding
from ottokit.dot.transport import (
    Net,
    _apply_D,
    _apply_G,
    _as_batch,
    _generator,
    _grad,
    _latent_setup,
    _warn_if_probability,
)
from ottokit.priors import Prior, as_prior

__all__ = [
    "Calibrator",
    "DDLSResult",
    "DRSResult",
    "MHGANResult",
    "calibrate",
    "ddls",
    "drs",
    "drs_acceptance",
    "mh_gan",
    "DRS_MODES",
    "CALIBRATIONS",
    "Calibration",
    "DRSMode",
]

DRSMode = Literal["shifted", "exact"]
Calibration = Literal["logistic", "isotonic"]
DRS_MODES: tuple[str, ...] = options(DRSMode)
CALIBRATIONS: tuple[str, ...] = options(Calibration)
PROB_CLIP = 1e-6


@dataclass(frozen=True)
class DRSResult:
    """Outcome of :func:`drs`.

    Attributes:
        samples: (m, *x_shape) accepted samples, m = n_samples unless ``max_proposals`` ran
            out first.
        latents: (m, *z_shape) their latents.
        acceptance_rate: accepted / proposed (pilot excluded).
        n_proposals: proposals drawn after the pilot.
        n_pilot: pilot proposals (used only for D_M and gamma).
        proposals_per_sample: (n_pilot + n_proposals) / m, the cost in G and D evaluations
            per returned sample.
        log_M: final D_M (the largest logit seen, or the bound given).
        gamma: the shift (None in exact mode).
        n_bound_updates: times D_M was raised because a larger logit was seen.
        mode: ``"shifted"`` or ``"exact"``.
        wall_time: seconds (the slowest rank's with ``distributed=True``).

    With ``distributed=True`` every rank holds the whole result, the samples in the
    single-process order; the counts are those of all ranks together.
    """

    samples: Tensor
    latents: Tensor
    acceptance_rate: float
    n_proposals: int
    n_pilot: int
    proposals_per_sample: float
    log_M: float
    gamma: float | None
    n_bound_updates: int
    mode: str
    wall_time: float


def drs_acceptance(
    logits: Tensor,
    log_M: float,
    *,
    mode: DRSMode = "shifted",
    gamma: float = 0.0,
    eps: float = 1e-6,
) -> Tensor:
    """DRS acceptance probabilities of proposals with logits D (Azadi et al. 2018).

    ``exact``: p = exp(D - D_M) (exact rejection sampling when D = log p_X/p_G and
    D_M >= max D). ``shifted``: F = D - D_M - log(1 - exp(D - D_M - eps)), p = sigma(F - gamma).
    """
    check_option(mode, DRSMode, "mode")
    check_instance(logits, Tensor, "logits")
    log_M = check_real(log_M, "log_M")
    a = logits - log_M
    if mode == "exact":
        return torch.exp(a.clamp_max(0.0))
    return torch.sigmoid(_drs_F(logits, log_M, eps) - gamma)


def _drs_F(logits: Tensor, log_M: float, eps: float) -> Tensor:
    a = (logits - log_M).clamp_max(0.0) - eps
    return logits - log_M - torch.log(-torch.expm1(a))


def drs(
    D: Net,
    G: Net,
    prior: Prior | str,
    n_samples: int,
    *,
    mode: DRSMode = "shifted",
    percentile: float = 95.0,
    eps: float = 1e-6,
    n_pilot: int = 10_000,
    log_bound: float | None = None,
    batch_size: int = 1024,
    max_proposals: int | None = None,
    latent_dim: int | tuple[int, ...] | None = None,
    seed: int | torch.Generator | None = None,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
    distributed: bool = False,
) -> DRSResult:
    """Discriminator rejection sampling (seed 003 §3.2; Azadi et al. 2018).

    1. Pilot: ``n_pilot`` proposals x = G(z), z ~ p_Z; D_M = max D(x) (or ``log_bound``, a
       known upper bound on log p_X/p_G, in which case no pilot is needed in exact mode);
       gamma = the ``percentile``-th percentile of F on the pilot (shifted mode).
    2. Proposals in batches of ``batch_size``; D_M is raised whenever a larger logit is seen;
       each is accepted with :func:`drs_acceptance`; stop at ``n_samples`` acceptances.

    Args:
        D: discriminator (logits).
        G: generator.
        prior: a :class:`Prior` or a name with ``latent_dim``.
        n_samples: accepted samples wanted.
        mode: ``"shifted"`` (Azadi's F and gamma) or ``"exact"`` (p = exp(D - D_M)).
        percentile: in (0, 100): gamma is this percentile of F over the pilot (95 in
            Azadi et al.); the acceptance probability is 1/2 where F = gamma.
        eps: the epsilon inside F (> 0).
        n_pilot: pilot size (>= 1; unused in exact mode with ``log_bound``).
        log_bound: known bound on D (exact rejection sampling when D is the true log ratio).
        batch_size: proposals per batch.
        max_proposals: stop after this many proposals (default 1000 n_samples) with a
            warning and fewer samples.
        seed: int or torch.Generator.
        distributed: under an initialised process group, split each batch of proposals
            across the ranks (G and D on this rank's rows; the logits are gathered, so
            D_M, gamma and every accept/reject decision are the single-process ones).
            The proposals and uniforms are drawn for the whole batch from a generator in
            the same state on every rank (``seed``, or one seed from rank 0).

    Returns:
        :class:`DRSResult`.
    """
    t0 = time.perf_counter()
    sharding = Sharding(distributed)
    n_samples = check_int(n_samples, "n_samples", ge=1)
    check_option(mode, DRSMode, "mode")
    pct = check_real(percentile, "percentile", gt=0, lt=100, hint="Azadi et al. use 95")
    eps = check_real(eps, "eps", gt=0)
    n_pilot = check_int(n_pilot, "n_pilot", ge=1)
    batch_size = check_int(batch_size, "batch_size", ge=1)
    max_proposals = check_int(
        1000 * n_samples if max_proposals is None else max_proposals, "max_proposals", ge=1
    )
    if log_bound is not None:
        log_bound = check_real(log_bound, "log_bound")
    p, dtype, device = _latent_setup(G, D, prior, latent_dim, dtype, device)
    gen = sharding.shared(_generator(seed, device), device)

    def propose(n: int) -> tuple[Tensor, Tensor, Tensor, slice]:
        """All n latents, this rank's samples (rows ``mine``) and all n logits."""
        z = p.sample(n, generator=gen, device=device, dtype=dtype)
        mine = sharding.rows(n)
        x = _apply_G(G, z[mine])
        return z, x, sharding.gather(_apply_D(D, x, "G's output")), mine

    with torch.no_grad():
        gamma: float | None = None
        used_pilot = 0
        if mode == "shifted" or log_bound is None:
            parts, x_first = [], None
            for i in range(0, n_pilot, batch_size):
                _, x_i, d_i, _ = propose(min(batch_size, n_pilot - i))
                parts.append(d_i)
                x_first = x_i if x_first is None else x_first
            pl = torch.cat(parts)
            used_pilot = n_pilot
            _warn_if_probability(pl, D, x_first)
            log_M = float(pl.max()) if log_bound is None else log_bound
            if mode == "shifted":
                gamma = float(torch.quantile(_drs_F(pl, log_M, eps).double(), pct / 100.0))
        else:
            log_M = log_bound
        zs, xs = [], []
        n_acc = n_prop = n_upd = 0
        while n_acc < n_samples and n_prop < max_proposals:
            b = min(batch_size, max_proposals - n_prop)
            z, x, d, mine = propose(b)
            n_prop += b
            top = float(d.max())
            if top > log_M:
                log_M, n_upd = top, n_upd + 1
            prob = drs_acceptance(d, log_M, mode=mode, gamma=gamma or 0.0, eps=eps)
            u = torch.rand(b, generator=gen, device=device, dtype=prob.dtype)
            keep = u < prob
            k = int(keep.sum())
            if k:
                zs.append(z[keep])
                xs.append(sharding.gather(x[keep[mine]]))
                n_acc += k
    if n_acc < n_samples:
        warnings.warn(
            f"DRS accepted {n_acc} of {n_samples} samples within max_proposals={max_proposals}; "
            "raise max_proposals or lower the percentile",
            UserWarning,
            stacklevel=2,
        )
    m = min(n_acc, n_samples)
    z_all = torch.cat(zs)[:m] if zs else p.sample(0, device=device, dtype=dtype)
    x_all = torch.cat(xs)[:m] if xs else x.new_empty((0, *x.shape[1:]))  # G's output shape
    return DRSResult(
        samples=x_all,
        latents=z_all,
        acceptance_rate=n_acc / n_prop,
        n_proposals=n_prop,
        n_pilot=used_pilot,
        proposals_per_sample=(used_pilot + n_prop) / max(m, 1),
        log_M=log_M,
        gamma=gamma,
        n_bound_updates=n_upd,
        mode=mode,
        wall_time=sharding.slowest(time.perf_counter() - t0),
    )


@dataclass(frozen=True)
class Calibrator:
    """Map from raw D logits to calibrated probabilities P(real | x) (Turner et al. 2018).

    Attributes:
        method: ``"logistic"`` or ``"isotonic"``.
        model: the fitted scikit-learn estimator.
        coef, intercept: the logistic map's slope and offset (None for isotonic).
    """

    method: str
    model: Any
    coef: float | None = None
    intercept: float | None = None

    def logit(self, logits: Tensor) -> Tensor:
        """Calibrated log-odds log(D_cal / (1 - D_cal)), same shape, device and dtype."""
        if self.method == "logistic":
            return self.coef * logits + self.intercept
        prob = self.model.predict(logits.detach().reshape(-1).cpu().double().numpy())
        prob = np.clip(prob, PROB_CLIP, 1.0 - PROB_CLIP)
        out = torch.as_tensor(np.log(prob) - np.log1p(-prob))
        return out.to(device=logits.device, dtype=logits.dtype).reshape(logits.shape)

    def __call__(self, logits: Tensor) -> Tensor:
        """Calibrated probabilities D_cal in (0, 1)."""
        return torch.sigmoid(self.logit(logits))

    def wrap(self, discriminator: Any) -> CalibratedDiscriminator:
        """The calibrated discriminator ``x -> logit(D(x))`` as a module.

        It can stand wherever a logit discriminator is expected (:func:`drs`,
        :func:`ddls`, :func:`dot_latent`...): a WGAN critic is not a density-ratio logit,
        its logistic calibration ``a D + b`` is the closest such logit. With
        ``method="logistic"`` it is differentiable in x; the isotonic map is piecewise
        constant, so gradient-based methods (DDLS, DOT) need the logistic one.
        """
        return CalibratedDiscriminator(discriminator, self)


class CalibratedDiscriminator(nn.Module):
    """``x -> calibrator.logit(D(x))``; see :meth:`Calibrator.wrap`."""

    def __init__(self, discriminator: Any, calibrator: Calibrator) -> None:
        super().__init__()
        if not callable(discriminator):
            raise TypeError(
                f"discriminator must be a callable x -> logits, got {type(discriminator).__name__}"
            )
        self.discriminator = discriminator
        self.calibrator = check_instance(calibrator, Calibrator, "calibrator", "see calibrate()")

    def forward(self, x: Tensor) -> Tensor:
        return self.calibrator.logit(self.discriminator(x))


def calibrate(
    real_logits: Any,
    fake_logits: Any,
    method: Calibration = "logistic",
) -> Calibrator:
    """Fit a calibration of D on held-out real and generated samples' logits (MH-GAN).

    Classes are weighted equally (balanced), so the calibrated odds estimate the density ratio
    p_X/p_G whatever the two sample counts: for a calibrated D, 1/D - 1 = p_G/p_X.

    Args:
        real_logits: (n_r,) D's logits on held-out real data.
        fake_logits: (n_f,) D's logits on generated samples.
        method: ``"logistic"`` (Platt scaling) or ``"isotonic"``.
    """
    from sklearn.isotonic import IsotonicRegression
    from sklearn.linear_model import LogisticRegression

    check_option(method, Calibration, "method")
    r = _as_logit_vector(real_logits, "real_logits")
    f = _as_logit_vector(fake_logits, "fake_logits")
    x = np.concatenate([r, f])
    y = np.concatenate([np.ones(r.size), np.zeros(f.size)])
    w = np.concatenate([np.full(r.size, 0.5 / r.size), np.full(f.size, 0.5 / f.size)])
    w *= x.size
    if method == "logistic":
        model = LogisticRegression(C=1e6, max_iter=1000)
        model.fit(x[:, None], y, sample_weight=w)
        return Calibrator(method, model, float(model.coef_[0, 0]), float(model.intercept_[0]))
    model = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip")
    model.fit(x, y, sample_weight=w)
    return Calibrator(method, model)


def _as_logit_vector(v: Any, name: str) -> np.ndarray:
    a = as_array(v, name, finite=False)
    a = a.reshape(-1) if a.ndim == 2 and a.shape[1] == 1 else a
    if a.ndim != 1 or a.size < 2:
        raise ValueError(f"{name} must be a vector of at least 2 logits, got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} must be finite")
    return a


@dataclass(frozen=True)
class MHGANResult:
    """Outcome of :func:`mh_gan`.

    Attributes:
        samples: (n_chains, *x_shape) final states.
        latents: (n_chains, *z_shape) their latents (NaN where a chain is still at its real
            starting point).
        from_real: (n_chains,) True where no proposal was ever accepted.
        acceptance_rate: accepted moves / proposals.
        n_proposals: proposals in total (n_chains x K).
        proposals_per_sample: K, the cost in G and D evaluations per returned sample.
        wall_time: seconds (the slowest rank's with ``distributed=True``).

    With ``distributed=True`` every rank holds all chains in the single-process order.
    """

    samples: Tensor
    latents: Tensor
    from_real: Tensor
    acceptance_rate: float
    n_proposals: int
    proposals_per_sample: float
    wall_time: float


def mh_gan(
    D: Net,
    G: Net,
    prior: Prior | str,
    x_real: Any,
    n_proposals: int = 640,
    *,
    calibrator: Callable[[Tensor], Tensor] | Calibrator | None = None,
    latent_dim: int | tuple[int, ...] | None = None,
    seed: int | torch.Generator | None = None,
    distributed: bool = False,
) -> MHGANResult:
    """MH-GAN independence sampler (seed 003 §3.3; Turner et al. 2018).

    One chain per row of ``x_real`` (chains start from real data, so no burn-in is needed
    when D is calibrated). At each of K = ``n_proposals`` steps, x' = G(z), z ~ p_Z, replaces
    the state x_k with probability

        alpha = min(1, (1/D(x_k) - 1) / (1/D(x') - 1)) = min(1, exp(s(x') - s(x_k))),

    s = log(D/(1 - D)) the calibrated log-odds. When s = log p_X/p_G exactly, this is the
    independence Metropolis-Hastings kernel with proposal p_G and target p_X.

    Args:
        D: discriminator (logits).
        G: generator.
        prior: latent prior (a :class:`Prior` or a name with ``latent_dim``).
        x_real: (n_chains, *x_shape) real samples, G's output shape.
        n_proposals: K proposals per chain.
        calibrator: a :class:`Calibrator` (from :func:`calibrate`; its ``logit`` method is
            used), any callable mapping raw logits to calibrated log-odds, or None to use the
            raw logits as log-odds (D = sigmoid(logit), uncalibrated).
        seed: int or torch.Generator.
        distributed: under an initialised process group, split the chains across the
            ranks; each step's proposals and uniforms are drawn for all chains from a
            generator in the same state on every rank (``seed``, or one seed from rank 0)
            and each rank keeps its chains' rows. ``x_real`` is checked alike everywhere.
    """
    t0 = time.perf_counter()
    sharding = Sharding(distributed)
    K = check_int(n_proposals, "n_proposals", ge=1)
    x_state = _as_batch(x_real, "x_real")
    if calibrator is None:
        score: Callable[[Tensor], Tensor] = lambda d: d
    elif isinstance(calibrator, Calibrator):
        score = calibrator.logit
    elif callable(calibrator):
        score = calibrator
    else:
        raise TypeError("calibrator must be a Calibrator, a callable logits -> log-odds, or None")
    p, dtype, device = _latent_setup(G, D, prior, latent_dim, x_state.dtype, x_state.device)
    gen = sharding.shared(_generator(seed, device), device)
    sharding.check({"x_real": x_state, "n_proposals": K})
    n_all = x_state.shape[0]
    mine = sharding.rows(n_all)
    x_state = x_state[mine]
    n = x_state.shape[0]
    with torch.no_grad():
        d0 = _apply_D(D, x_state, "x_real")
        _warn_if_probability(d0, D, x_state)
        s = score(d0)
        z_state = torch.full((n, *p.shape), math.nan, device=device, dtype=dtype)
        from_real = torch.ones(n, dtype=torch.bool, device=device)
        n_acc = 0
        for k in range(K):
            z = p.sample(n_all, generator=gen, device=device, dtype=dtype)[mine]
            x = _apply_G(G, z)
            if k == 0 and x.shape[1:] != x_state.shape[1:]:
                raise ValueError(
                    f"x_real has per-sample shape {tuple(x_state.shape[1:])} but G outputs "
                    f"{tuple(x.shape[1:])}; the chains' states must be G's output shape"
                )
            s_new = score(_apply_D(D, x, "G's output"))
            u = torch.rand(n_all, generator=gen, device=device, dtype=s.dtype)[mine]
            acc = torch.log(u) < (s_new - s)
            n_acc += int(acc.sum())
            mask = acc.reshape(n, *([1] * (x.ndim - 1)))
            x_state = torch.where(mask, x, x_state)
            z_state = torch.where(acc.reshape(n, *([1] * len(p.shape))), z, z_state)
            s = torch.where(acc, s_new, s)
            from_real &= ~acc
    return MHGANResult(
        samples=sharding.gather(x_state),
        latents=sharding.gather(z_state),
        from_real=sharding.gather(from_real),
        acceptance_rate=sharding.count(n_acc) / (n_all * K),
        n_proposals=n_all * K,
        proposals_per_sample=float(K),
        wall_time=sharding.slowest(time.perf_counter() - t0),
    )


@dataclass(frozen=True)
class DDLSResult:
    """Outcome of :func:`ddls`.

    Attributes:
        samples: (n, *x_shape) G(z_T).
        latents: (n, *z_shape) z_T.
        energy: (n_steps + 1,) mean energy E(z) = -log p_Z(z) - D(G(z)) over the batch.
        acceptance_rate: MALA acceptance rate (1.0 for unadjusted Langevin).
        n_grad_evals: gradient evaluations of E per sample (each a forward and backward pass
            of D o G).
        step_size: the Langevin step eps.
        wall_time: seconds (the slowest rank's with ``distributed=True``).

    With ``distributed=True`` every rank holds the whole result, the latents in the
    single-process order and the energy averaged over all of them.
    """

    samples: Tensor
    latents: Tensor
    energy: Tensor
    acceptance_rate: float
    n_grad_evals: int
    step_size: float
    wall_time: float


def _reflect_unit(z: Tensor) -> Tensor:
    """Fold z into [-1, 1] by mirror reflection at the faces."""
    w = torch.remainder(z + 1.0, 4.0)
    return torch.where(w > 2.0, 4.0 - w, w) - 1.0


def ddls(
    D: Net,
    G: Net,
    z0: Any,
    step_size: float,
    n_steps: int,
    prior: Prior | str = "normal",
    *,
    mala: bool = False,
    seed: int | torch.Generator | None = None,
    distributed: bool = False,
) -> DDLSResult:
    """Discriminator driven latent sampling (seed 003 §3.3; Che et al. 2020).

    Langevin dynamics z <- z - (eps/2) grad E(z) + sqrt(eps) xi, xi ~ N(0, I), on the energy
    E(z) = -log p_Z(z) - D(G(z)) (D a logit), whose stationary density is
    p_Z(z) exp(D(G(z))) / Z: the latent law that G pushes to p_G exp(D) ≈ p_X for the optimal
    D = log p_X/p_G. The unadjusted chain (ULA) has an O(eps) bias; ``mala=True`` adds the
    Metropolis-Hastings correction with the Langevin proposal density
    q(z'|z) ∝ exp(-|z' - z + (eps/2) grad E(z)|^2 / (2 eps)), which leaves the target
    exactly invariant. Under the uniform prior (E = -D(G(z)) on [-1, 1]^d), ULA reflects at
    the faces and MALA rejects proposals outside.

    Args:
        D: discriminator (logits).
        G: generator.
        z0: (n, *z_shape) starting latents in the prior's support.
        step_size: eps > 0.
        n_steps: Langevin steps (>= 0).
        prior: ``"normal"``, ``"uniform"`` or a :class:`Prior`.
        mala: Metropolis-adjust each step.
        seed: int or torch.Generator.
        distributed: under an initialised process group, split the chains across the
            ranks; the noise and uniforms are drawn for all chains from a generator in the
            same state on every rank (``seed``, or one seed from rank 0) and each rank
            keeps its rows. ``z0`` is checked alike everywhere.
    """
    t0 = time.perf_counter()
    sharding = Sharding(distributed)
    z = _as_batch(z0, "z0")
    eps = check_real(step_size, "step_size", gt=0)
    n_steps = check_int(n_steps, "n_steps", ge=0)
    p = as_prior(prior, tuple(z.shape[1:]))
    p.check_support(z, "z0")
    gen = sharding.shared(_generator(seed, z.device), z.device)
    sharding.check({"z0": z, "step_size": eps, "n_steps": n_steps})
    n_all = z.shape[0]
    mine = sharding.rows(n_all)
    z = z[mine]
    n = z.shape[0]

    def energy_grad(v: Tensor) -> tuple[Tensor, Tensor]:
        with torch.enable_grad():
            v = v.detach().requires_grad_(True)
            d = _apply_D(D, _apply_G(G, v, "z"), "G(z)")
            prior_term = (
                0.5 * (v.reshape(n, -1) ** 2).sum(1) if p.kind == "normal" else torch.zeros_like(d)
            )
            e = prior_term - d
            g = _grad(e, v)
        return e.detach(), g

    with torch.no_grad():
        x_start = _apply_G(G, z, "z0")
        _warn_if_probability(_apply_D(D, x_start, "G(z0)"), D, x_start)
    e, g = energy_grad(z)
    history = [e.sum()]
    n_acc = 0
    sq = math.sqrt(eps)
    view = (n, *([1] * (z.ndim - 1)))
    for _ in range(n_steps):
        noise = torch.randn(
            (n_all, *z.shape[1:]), generator=gen, device=z.device, dtype=z.dtype
        )[mine]
        prop = z - 0.5 * eps * g + sq * noise
        if not mala:
            z = _reflect_unit(prop) if p.kind == "uniform" else prop
            e, g = energy_grad(z)
            n_acc += n
        else:
            inside = torch.ones(n, dtype=torch.bool, device=z.device)
            if p.kind == "uniform":
                inside = (prop.reshape(n, -1).abs() <= 1.0).all(1)
            e_p, g_p = energy_grad(prop)
            fwd = ((prop - z + 0.5 * eps * g).reshape(n, -1) ** 2).sum(1)
            bwd = ((z - prop + 0.5 * eps * g_p).reshape(n, -1) ** 2).sum(1)
            log_alpha = -(e_p - e) - (bwd - fwd) / (2 * eps)
            u = torch.rand(n_all, generator=gen, device=z.device, dtype=z.dtype)[mine]
            acc = (torch.log(u) < log_alpha) & inside
            n_acc += int(acc.sum())
            z = torch.where(acc.reshape(view), prop, z)
            g = torch.where(acc.reshape(view), g_p, g)
            e = torch.where(acc, e_p, e)
        history.append(e.sum())
    with torch.no_grad():
        samples = _apply_G(G, z)
    return DDLSResult(
        samples=sharding.gather(samples),
        latents=sharding.gather(z.detach()),
        energy=sharding.sum(torch.stack(history)) / n_all,
        acceptance_rate=sharding.count(n_acc) / (n_all * n_steps) if n_steps else 1.0,
        n_grad_evals=n_steps + 1,
        step_size=eps,
        wall_time=sharding.slowest(time.perf_counter() - t0),
    )

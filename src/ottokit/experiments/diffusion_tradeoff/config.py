"""Settings of the diffusion-tradeoff experiment."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from ottokit._config import ValidatedConfig, device_param, param, seed_param

__all__ = ["DiffusionTradeoffConfig", "ImageCoupling", "SpreadMethod"]

_ROOT2 = math.sqrt(2.0)  # N(0, s^2 I) against N(0, I) has finite chi^2 only for s < sqrt(2)
SpreadMethod = Literal["euler", "midpoint", "rk4"]
ImageCoupling = Literal["cond-OT", "cosine", "minibatch-OT"]


@dataclass
class DiffusionTradeoffConfig(ValidatedConfig):
    """Both presets use the paper's recovered Table I setting; ``quick`` shrinks the sizes."""

    tau: float = param(1.0, doc="horizon tau of every forward process", gt=0)
    mixture_mu: float = param(
        0.6, doc="Table I data 1/2 N(-mu, s^2) + 1/2 N(mu, s^2): mu (recovered: 0.6)"
    )
    mixture_std: float = param(0.3, doc="Table I data: the components' s (recovered: 0.3)", gt=0)
    n_samples: int = param(10_000, doc="samples per cloud of the sampled estimators", ge=100)
    n_boot: int = param(400, doc="bootstrap resamples of their 95 % intervals", ge=20)
    n_pairs: int = param(4000, doc="data-noise pairs of the OT kernel estimator (Eq. G19)", ge=10)
    kernel_bandwidth: float = param(
        0.05, doc="stated Gaussian-kernel width h of the OT kernel estimator", gt=0
    )
    train_steps: int = param(
        6000, doc="flow-matching steps of the learned 1-D velocities (0: none)", ge=0
    )
    train_hidden: int = param(128, doc="width of the learned 1-D velocity MLPs", ge=1)
    ode_steps: int = param(100, doc="rk4 steps of the sampled estimators", ge=1)
    n_save: int = param(21, doc="times on the exact W1 and v_loss curves", ge=2)
    spread_sample_counts: tuple[int, ...] = param(
        (500, 2000, 10_000), doc="spread study: W1 samples per cloud", ge=100, distinct=True
    )
    spread_repeats: int = param(12, doc="spread study: independent draws per sample count", ge=2)
    spread_methods: tuple[SpreadMethod, ...] = param(
        ("euler", "midpoint", "rk4"), doc="spread study: fixed-step ODE methods", distinct=True
    )
    spread_steps: tuple[int, ...] = param(
        (2, 4, 8, 16, 32, 100), doc="spread study: ODE step counts", ge=1, distinct=True
    )
    spread_bandwidths: tuple[float, ...] = param(
        (0.01, 0.03, 0.1, 0.3), doc="spread study: OT kernel widths h", gt=0, distinct=True
    )
    spread_pairs: tuple[int, ...] = param(
        (500, 4000), doc="spread study: OT kernel pair counts", ge=10, distinct=True
    )
    spread_pair_repeats: int = param(4, doc="spread study: pair draws per (pairs, width)", ge=2)
    spread_all_rows: bool = param(
        True, doc="spread study: bandwidths on the three known rows (false: the mean row)"
    )
    spread_end_times: tuple[float, ...] = param(
        (0.005, 0.01, 0.02, 0.04), doc="spread study: reverse ODE end times t_end", gt=0, lt=1
    )
    toy_samples: int = param(2000, doc="2-D toys: data points and kernel pairs", ge=10)
    toy_w1_samples: int = param(2000, doc="2-D toys: samples per cloud (exact-OT W1)", ge=10)
    toy_ode_steps: int = param(100, doc="2-D toys: rk4 steps", ge=1)
    highdim_dims: tuple[int, ...] = param(
        (1, 4, 16, 64, 256, 1024), doc="high-dimensional limit: dimensions", ge=1, increasing=True
    )
    highdim_points: int = param(8, doc="high-dimensional limit: data points", ge=1)
    rotation_g: tuple[float, ...] = param(
        (0.0, 3.0, 5.0), doc="Fig. 7: rotation strengths g", ge=0, increasing=True, min_items=2
    )
    rotation_h: float = param(1.1, doc="Fig. 7: the conservative rate h of H_t")
    rotation_T_fin: float = param(0.5, doc="Fig. 7: final temperature T_fin", gt=0)
    rotation_scale: float = param(
        0.9, doc="Fig. 7: perturbed start N(0, s^2 I), s", gt=0, lt=_ROOT2
    )
    rotation_data: int = param(1000, doc="Fig. 7: Swiss-roll points", ge=10)
    rotation_samples: int = param(2000, doc="Fig. 7: samples per cloud", ge=10)
    rotation_repeats: int = param(5, doc="Fig. 7: independent draws for the interval", ge=2)
    rotation_rtol: float = param(1e-5, doc="Fig. 7: dopri5 tolerance of the reverse ODE", gt=0)
    rotation_ode_steps: int = param(100, doc="Fig. 7: rk4 steps for the OT kernel velocity", ge=1)
    rotation_ot_bandwidth: float = param(
        0.05, doc="Fig. 7: kernel width of the OT path's velocity (Scott's rule blurs the roll)",
        gt=0,
    )
    rotation_kinetic_nodes: int = param(
        12, doc="Fig. 7: Gauss-Legendre times for int E|nu|^2 dt", ge=2
    )
    image_couplings: tuple[ImageCoupling, ...] = param(
        ("cond-OT", "cosine", "minibatch-OT"), doc="Fig. 8: schedules / couplings", distinct=True
    )
    image_repeats: int = param(5, doc="Fig. 8: models trained per coupling", ge=2)
    image_train_steps: int = param(5000, doc="Fig. 8: training steps per model", ge=1)
    image_hidden: int = param(256, doc="Fig. 8: MLP width", ge=1)
    image_batch: int = param(256, doc="Fig. 8: batch (and minibatch-OT) size", ge=2)
    image_samples: int = param(2000, doc="Fig. 8: generated samples per cloud", ge=10)
    image_scale: float = param(
        0.9, doc="Fig. 8: perturbed start N(0, s^2 I), s", gt=0, lt=_ROOT2
    )
    image_ode_steps: int = param(40, doc="Fig. 8: rk4 steps of generation", ge=1)
    seed: int = seed_param()
    device: str = device_param()

    @classmethod
    def paper(cls) -> DiffusionTradeoffConfig:
        return cls()

    @classmethod
    def quick(cls) -> DiffusionTradeoffConfig:
        return cls(
            n_samples=2000,
            n_boot=200,
            n_pairs=1000,
            train_steps=800,
            ode_steps=20,
            n_save=11,
            spread_sample_counts=(500, 2000, 8000),
            spread_repeats=4,
            spread_steps=(2, 4, 8, 16, 32),
            spread_bandwidths=(0.01, 0.05, 0.2),
            spread_pairs=(1000,),
            spread_pair_repeats=2,
            spread_all_rows=False,
            toy_samples=600,
            toy_w1_samples=1000,
            toy_ode_steps=20,
            highdim_dims=(1, 16, 256),
            rotation_data=500,
            rotation_samples=1000,
            rotation_repeats=3,
            rotation_ode_steps=40,
            rotation_kinetic_nodes=8,
            image_repeats=5,
            image_train_steps=1000,
            image_hidden=128,
            image_batch=128,
            image_samples=1000,
            image_ode_steps=20,
        )

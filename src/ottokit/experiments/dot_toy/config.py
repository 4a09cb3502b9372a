"""Settings of dot-toy."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ottokit._config import (
    ConfigError,
    ValidatedConfig,
    check_config_memory,
    device_param,
    param,
    seed_param,
)
from ottokit.data import TOY_2D_NAMES
from ottokit.experiments.dot_toy.pretrained import shipped_names

__all__ = ["DotToyConfig", "ToyName"]

# the names of ottokit.data.TOY_2D_NAMES (a test keeps the two equal)
ToyName = Literal["25gaussians", "swissroll", "8gaussians"]


@dataclass
class DotToyConfig(ValidatedConfig):
    """Settings of dot-toy (defaults: the original 2-D setting, REFERENCE.md "Seed 003").

    Networks: by default (``retrain = false``) every data set's generator and critic are
    the ones shipped with ottokit (:mod:`ottokit.experiments.dot_toy.pretrained`; trained
    once, as the original repository ships its ``trained_models``), and the seeds vary the
    comparison's draws only; the training fields below then describe what ``retrain``
    would train. With ``retrain = true`` one GAN per data set and seed is trained from
    scratch, and the result compares each retrained generator's quality with the shipped
    one's.

    Training: G is a 2-d uniform latent -> ``g_hidden`` leaky-ReLU MLP -> 2,
    D a ``d_hidden`` leaky-ReLU MLP, trained as a WGAN-GP (gradient penalty ``gp_weight``,
    ``n_critic`` critic steps per generator step, Adam(``lr``, ``betas``), learning rates
    decayed linearly to zero when ``lr_schedule = "linear"``). The penalty weight 0.1 is
    the one of Gulrajani et al.'s own 2-D script (``gan_toy.py``: "smaller lambda seems to
    help for toy tasks"); with the image-setting weight 10 the critic stays too smooth to
    separate modes 0.7 apart with std 0.018, and short runs cover few of the 25.

    DOT: Adam(``dot_lr``, betas (0, 0.9)) for ``dot_steps`` steps, x clipped to
    [-``clip``, ``clip``] in target space, the uniform latent clipped to [-1, 1]. K is
    ``k_factor`` times K_eff, K_eff the original rule (max of |dD|/|dx| over ``k_pairs``
    random pairs of generated samples; |dD|/|dz| for the latent version), averaged over
    ``k_repeats`` such maxima as the original 2-D notebook does. ``k_factor = 1``
    is the original rule; the DOT implementer warns that the objective can be flat at K equal
    to the true Lipschitz constant, which K_eff (a lower bound) does not reach.

    Baselines: DRS with a ``drs_pilot``-sample pilot and the ``drs_percentile``-th
    percentile shift; MH-GAN with ``mh_proposals`` proposals per chain, chains started from
    held-out real points; DDLS with ``ddls_steps`` Langevin steps of size ``ddls_step`` on
    E(z) = -D_cal(G(z)) (uniform prior, reflected at the faces). By default
    (``ratio_steps = 0``) all three read the critic after logistic (Platt) calibration on
    ``n_calibration`` held-out real and generated samples, as MH-GAN calibrates the GAN's
    own D. They assume D is the logit of a real-vs-generated classifier, which a WGAN
    critic is not; ``ratio_steps > 0`` gives them instead a classifier of the critic's
    architecture trained for that many steps with the logistic loss against the frozen
    generator (Adam(``ratio_lr``, (0.5, 0.999)); :func:`ottokit.gan.fit_discriminator`),
    then calibrated. Either way DRS and MH-GAN sharpen the modes (high-quality share up) but
    re-weight them by the errors of the ratio estimate, which W2 charges as mass moved
    between modes. DOT always uses the critic, as in the seed.

    Evaluation: ``n_eval`` samples per method against ``n_eval`` fresh target points;
    ``min_ot_samples`` is the smallest cloud W2 is computed on (5,000, lower only in tests);
    ``n_arrows`` transport arrows are drawn per panel. ``num_threads > 0`` runs torch with
    that many CPU threads during the experiment (1 suits these small 2-D nets; 0 keeps
    torch's setting); the previous setting is restored afterwards. ``ot_workers > 0``
    computes the exact W2 values (network simplex) in that many separate processes while the
    next GAN trains; 0 computes them in this process. One GAN is trained per data set and
    run seed ``seed + s`` for ``s`` in ``seeds`` (when retraining), seeded by
    :class:`~ottokit.experiments._dot_common.GANSeeds` and every draw of the comparison comes
    from the named streams of :class:`~ottokit.experiments._dot_common.Streams`.
    """

    datasets: tuple[ToyName, ...] = param(
        ("25gaussians", "swissroll"),
        doc="2-D data sets, each post-processed (8gaussians ships no networks: retrain)",
        distinct=True,
        example="25gaussians,swissroll",
    )
    seeds: tuple[int, ...] = param(
        (0, 1, 2), doc="seed offsets s: one run per data set and seed + s", ge=0, distinct=True
    )
    retrain: bool = param(
        False, doc="train the GANs from scratch (false: post-process the shipped networks)"
    )
    g_hidden: tuple[int, ...] = param(
        (256, 256, 256), doc="hidden widths of the generator (leaky ReLU)", ge=1
    )
    d_hidden: tuple[int, ...] = param(
        (512, 512, 512), doc="hidden widths of the critic (leaky ReLU)", ge=1
    )
    train_steps: int = param(6000, doc="WGAN-GP generator steps", ge=1)
    n_critic: int = param(5, doc="critic steps per generator step", ge=1)
    batch_size: int = param(256, doc="samples per batch (<= n_train)", ge=1)
    lr: float = param(1e-3, doc="Adam step size of G and D", gt=0)
    betas: tuple[float, float] = param((0.5, 0.9), doc="Adam betas of G and D", ge=0, lt=1)
    gp_weight: float = param(0.1, doc="gradient-penalty weight lambda", gt=0)
    lr_schedule: Literal["constant", "linear"] = param(
        "linear", doc="learning rates kept, or decayed linearly to zero"
    )
    n_train: int = param(100_000, doc="training points per data set", ge=1)
    dot_steps: int = param(100, doc="Adam steps of each DOT transport", ge=1)
    dot_lr: float = param(0.01, doc="Adam step size of DOT", gt=0)
    clip: float = param(2.0, doc="target-space DOT keeps x in [-clip, clip]^2", gt=0)
    k_pairs: int = param(100, doc="random pairs of generated samples behind K_eff", ge=1)
    k_repeats: int = param(
        10, doc="K_eff is the mean of this many maxima over k_pairs pairs (notebook: 10)", ge=1
    )
    k_factor: float = param(1.0, doc="K = k_factor x K_eff (1: the original rule)", gt=0)
    drs_percentile: float = param(95.0, doc="percentile shift of DRS's acceptance", gt=0, lt=100)
    drs_pilot: int = param(10_000, doc="pilot samples of DRS", ge=1)
    mh_proposals: int = param(640, doc="proposals per MH-GAN chain", ge=1)
    ddls_steps: int = param(100, doc="Langevin steps of DDLS", ge=1)
    ddls_step: float = param(1e-3, doc="Langevin step size of DDLS", gt=0)
    n_calibration: int = param(
        2000, doc="held-out real and generated samples of the Platt calibration", ge=2
    )
    ratio_steps: int = param(
        0, doc="steps of a separate classifier for DRS/MH-GAN/DDLS (0: the critic)", ge=0
    )
    ratio_lr: float = param(1e-3, doc="Adam step size of that classifier", gt=0)
    n_eval: int = param(5000, doc="samples per method, scored against as many target points", ge=1)
    min_ot_samples: int = param(
        5000, doc="smallest cloud W2 is computed on (lower only in tests)", ge=1
    )
    n_arrows: int = param(300, doc="transport arrows drawn per panel", ge=0)
    num_threads: int = param(0, doc="torch CPU threads during the run (0: keep torch's)", ge=0)
    ot_workers: int = param(
        0, doc="processes computing the exact W2 values while the next GAN trains", ge=0
    )
    seed: int = seed_param()
    device: str = device_param()

    def check(self) -> None:
        """Batches from the training points, unbiased W2 clouds, and W2 plans in memory."""
        if self.batch_size > self.n_train:
            raise ConfigError.for_key(
                "batch_size",
                self.batch_size,
                f"<= n_train = {self.n_train} (batches are drawn from the training points)",
                min(256, self.n_train),
            )
        if not self.retrain:
            missing = [d for d in self.datasets if d not in shipped_names()]
            if missing:
                raise ConfigError.for_key(
                    "retrain",
                    self.retrain,
                    f"true for {', '.join(missing)} (no shipped networks for them)",
                    "true",
                )
        if self.n_eval < self.min_ot_samples:
            raise ConfigError.for_key(
                "n_eval",
                self.n_eval,
                f">= min_ot_samples = {self.min_ot_samples} (W2 is biased upwards on small clouds)",
                max(5000, self.min_ot_samples),
            )
        # exact W2: a dense cost matrix and plan of n_eval^2 float64 per concurrent solve
        check_config_memory(
            "n_eval",
            self.n_eval,
            16.0 * self.n_eval**2 * max(1, self.ot_workers),
            what=f"exact W2 between clouds of {self.n_eval} points",
            knob="lower n_eval or ot_workers",
        )

    @classmethod
    def paper(cls) -> DotToyConfig:
        """The original sizes (G 3 x 256, D 3 x 512) retrained from scratch: every data set,
        three seeds, the recipe and steps of the shipped 25-Gaussian networks."""
        return cls(datasets=TOY_2D_NAMES, retrain=True)

    @classmethod
    def quick(cls) -> DotToyConfig:
        """The shipped networks post-processed, two seeds of the comparison's draws.

        With ``retrain=true`` it trains afresh at a small budget (a 3 x 128 critic, 3,000
        steps): generators trained but not converged, which the result compares with the
        shipped ones.
        """
        return cls(
            seeds=(0, 1),
            d_hidden=(128, 128, 128),
            train_steps=3000,
            n_train=20_000,
            drs_pilot=5000,
            mh_proposals=100,
            ddls_steps=50,
            num_threads=1,
            ot_workers=1,
        )

"""Settings of dot-digits."""

from __future__ import annotations

from dataclasses import dataclass

from ottokit._config import (
    ConfigError,
    ValidatedConfig,
    check_config_memory,
    device_param,
    param,
    seed_param,
)
from ottokit.gan.losses import LossName

__all__ = ["DIGITS_TEST", "DIGITS_TRAIN", "METHODS", "DotDigitsConfig"]

METHODS: tuple[str, ...] = (
    "generator",
    "naive latent",
    "DOT latent",
    "DOT target",
    "DRS",
    "MH-GAN",
    "DDLS",
)
# the sizes of ottokit.data.digits' train and test splits (a test keeps them equal)
DIGITS_TRAIN, DIGITS_TEST = 1347, 450


@dataclass
class DotDigitsConfig(ValidatedConfig):
    """Settings of dot-digits.

    GAN: ``ConvGenerator8(latent_dim, g_width)`` with a N(0, I) latent against
    ``ConvDiscriminator8(d_width)`` with spectral normalisation, ``loss`` (hinge), Adam(``lr``,
    ``betas``), ``n_critic`` D steps per G step, ``batch_size``, ``train_steps``. The
    generator that is post-processed is the exponential moving average of the generator's
    parameters with decay ``ema_decay`` (``0`` post-processes the last iterate). On this
    small data set the last iterate oscillates from one check to the next, while the average
    settles; the last iterate's scores are reported beside it. The discriminator of the run was
    trained against the iterates, never against their average, so before any
    post-processing it is trained for ``critic_steps`` more steps alone against the
    frozen generator that is post-processed (:func:`ottokit.gan.fit_discriminator`, the
    same loss and optimiser settings): DOT reads D as the potential between the data and
    *that* generator, and DRS/MH-GAN as its density ratio.

    DOT (seed 003, images): SGD(``dot_lr``) for ``dot_steps`` updates (10-100 in the
    original), K = ``k_factor`` x k_eff (latent) or K_eff (image space) over ``k_pairs``
    pairs; the latent keeps to the sphere |z| = const (radial gradient removed), image-space
    samples are clipped to [-1, 1]. These defaults follow the original rule (REFERENCE.md
    "Seed 003": SGD lr 0.01, 10-100 updates, k_eff = max |D(G(z1)) - D(G(z2))| / |z1 - z2|
    over 100 pairs, ``k_factor = 1``). Latent DOT is also run, on the same trained nets and
    latents, for every (lr, steps) in ``sweep_lrs`` x ``sweep_steps`` (an empty tuple skips
    the sweep), to show how its effect depends on the step size and count.

    Baselines: DRS (``drs_percentile``, ``drs_pilot``), MH-GAN (``mh_proposals`` per chain,
    chains from real test images), DDLS (``ddls_steps`` steps of size ``ddls_step``), all on
    the GAN's discriminator (after its ``critic_steps`` against the averaged generator)
    Platt-calibrated on ``n_calibration`` held-out real and generated images.
    ``ratio_steps > 0`` gives them instead a fresh classifier of the same architecture
    trained that many steps with the logistic loss against the frozen generator (as in
    dot-toy); on the 1,347 training digits it overfits and made them worse in quick runs.

    Metrics: ``n_eval`` images per method; FID-like against the digits test split, IS-like,
    k-NN precision/recall, all in the features of a digits CNN trained here
    (``features_epochs``) and cached in the run directory. One GAN is trained per run seed
    ``seed + s`` for ``s`` in ``seeds``, seeded by
    :class:`~ottokit.experiments._dot_common.GANSeeds` and every draw of the comparison comes
    from the named streams of :class:`~ottokit.experiments._dot_common.Streams`.
    """

    seeds: tuple[int, ...] = param(
        (0, 1, 2), doc="seed offsets s: one GAN per seed + s", ge=0, distinct=True
    )
    latent_dim: int = param(32, doc="latent dimension of the generator", ge=1)
    g_width: int = param(64, doc="channel width of the convolutional generator", ge=2)
    d_width: int = param(64, doc="channel width of the convolutional discriminator", ge=1)
    loss: LossName = param("hinge", doc="GAN loss (ottokit.gan.make_loss)")
    lr: float = param(5e-4, doc="Adam step size of G and D", gt=0)
    betas: tuple[float, float] = param((0.5, 0.999), doc="Adam betas of G and D", ge=0, lt=1)
    ema_decay: float = param(
        0.995, doc="decay of the generator average post-processed (0: the last iterate)", ge=0, lt=1
    )
    critic_steps: int = param(
        500, doc="steps of D alone against the post-processed generator", ge=0
    )
    ratio_steps: int = param(
        0, doc="steps of a separate classifier for DRS/MH-GAN/DDLS (0: the discriminator)", ge=0
    )
    n_critic: int = param(2, doc="discriminator steps per generator step", ge=1)
    batch_size: int = param(
        64, doc=f"samples per batch (<= the {DIGITS_TRAIN} training digits)", ge=1
    )
    train_steps: int = param(10000, doc="generator steps", ge=1)
    dot_steps: int = param(50, doc="SGD updates of each DOT transport", ge=1)
    dot_lr: float = param(0.01, doc="SGD step size of DOT", gt=0)
    sweep_steps: tuple[int, ...] = param(
        (5, 10, 20, 50),
        doc="update counts of the latent-DOT sweep (empty: no sweep)",
        ge=1,
        min_items=0,
        distinct=True,
    )
    sweep_lrs: tuple[float, ...] = param(
        (1e-3, 1e-2),
        doc="step sizes of the latent-DOT sweep (empty: no sweep)",
        gt=0,
        min_items=0,
        distinct=True,
    )
    k_pairs: int = param(100, doc="random latent pairs behind k_eff and K_eff", ge=1)
    k_factor: float = param(1.0, doc="K = k_factor x k_eff (1: the original rule)", gt=0)
    drs_percentile: float = param(95.0, doc="percentile shift of DRS's acceptance", gt=0, lt=100)
    drs_pilot: int = param(10_000, doc="pilot samples of DRS", ge=1)
    mh_proposals: int = param(640, doc="proposals per MH-GAN chain", ge=1)
    ddls_steps: int = param(100, doc="Langevin steps of DDLS", ge=1)
    ddls_step: float = param(1e-2, doc="Langevin step size of DDLS", gt=0)
    n_calibration: int = param(
        400,
        doc=f"held-out real and generated images of the calibration (<= the {DIGITS_TEST} "
        "test digits)",
        ge=2,
    )
    n_eval: int = param(
        2000, doc="images per method (the FID-like score fits a 64-d covariance)", ge=65
    )
    features_epochs: int = param(30, doc="training epochs of the digits feature CNN", ge=1)
    seed: int = seed_param()
    device: str = device_param()

    def check(self) -> None:
        """Batches and calibration sets the digits split can fill, and images in memory."""
        if self.batch_size > DIGITS_TRAIN:
            raise ConfigError.for_key(
                "batch_size",
                self.batch_size,
                f"<= {DIGITS_TRAIN}, the number of training digits",
                64,
            )
        if self.n_calibration > DIGITS_TEST:
            raise ConfigError.for_key(
                "n_calibration",
                self.n_calibration,
                f"<= {DIGITS_TEST}, the number of held-out test digits",
                400,
            )
        # every method's images (and the sweep's) in float32 with their features
        n_sets = len(METHODS) + len(self.sweep_steps) * len(self.sweep_lrs)
        check_config_memory(
            "n_eval",
            self.n_eval,
            4.0 * 2 * 64 * self.n_eval * n_sets,
            what=f"{n_sets} sets of {self.n_eval} generated images",
            knob="lower n_eval",
        )

    @classmethod
    def paper(cls) -> DotDigitsConfig:
        """Width 64 nets, 10,000 generator steps, three seeds."""
        return cls()

    @classmethod
    def quick(cls) -> DotDigitsConfig:
        """Width 32 nets, 5,000 generator steps, two seeds."""
        return cls(
            seeds=(0, 1),
            g_width=32,
            d_width=32,
            train_steps=5000,
            drs_pilot=2000,
            mh_proposals=100,
            ddls_steps=50,
        )

"""Discriminator optimal transport and its rivals (seed 003).

:func:`dot_target` and :func:`dot_latent` move generated samples (or their latents) by
minimising ||x - y + 0.001|| - D(x)/K_eff (seed 003 §3.2), with K_eff from
:func:`effective_lipschitz`. The baselines of seed 003 §3.2-3.3 are :func:`drs`
(discriminator rejection sampling), :func:`mh_gan` (Metropolis-Hastings GAN, with
:func:`calibrate`) and :func:`ddls` (latent Langevin sampling). Every function takes any
torch generator G: z -> x and discriminator D: x -> logit; latent priors are
:class:`ottokit.priors.Prior`.
"""

from ottokit.dot.samplers import (
    CALIBRATIONS,
    DRS_MODES,
    CalibratedDiscriminator,
    Calibrator,
    DDLSResult,
    DRSResult,
    MHGANResult,
    calibrate,
    ddls,
    drs,
    drs_acceptance,
    mh_gan,
)
from ottokit.dot.transport import (
    MODES,
    OPTIMIZERS,
    SPACES,
    DOTResult,
    ProbabilityOutputWarning,
    dot_latent,
    dot_target,
    effective_lipschitz,
)

__all__ = [
    # transport
    "effective_lipschitz",
    "dot_target",
    "dot_latent",
    "DOTResult",
    "ProbabilityOutputWarning",
    "OPTIMIZERS",
    "MODES",
    "SPACES",
    # baselines
    "drs",
    "drs_acceptance",
    "DRSResult",
    "calibrate",
    "Calibrator",
    "CalibratedDiscriminator",
    "mh_gan",
    "MHGANResult",
    "ddls",
    "DDLSResult",
    "DRS_MODES",
    "CALIBRATIONS",
]

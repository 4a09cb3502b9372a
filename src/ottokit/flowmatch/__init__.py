"""Diffusion and flow-matching paths and their speed-accuracy trade-off (seed 002).

Gaussian paths x_t = m_t y + sigma_t eps on t in [0, tau] (data at t = 0, noise
at t = tau) are built from a :class:`Schedule` (:class:`CondOT`, :class:`Cosine`,
:class:`ImprovedDDPMCosine`, :class:`VPLinear`, :class:`Custom`). Their marginal
velocity is available exactly (:class:`ExactVelocity` over a data set,
:class:`GaussianMixtureVelocity` in closed form, :class:`MonotoneVelocity1D` for
the exact OT path in 1-D), estimated by kernel regression
(:class:`KernelVelocity`, :func:`ot_path_velocity`) or learned
(:func:`train_velocity`); :class:`RotationalVelocity` is the non-gradient velocity
of the paper's rotational forward process. :func:`sample_forward` / :func:`sample_backward`
transport samples with torchdiffeq, and :func:`tradeoff` measures the response
(Delta W1)^2/(tau D0) against int v2^2 dt and W2(P_0, P_tau)^2/tau, by quadrature
in 1-D (:func:`response_quadrature`) or from samples with a confidence interval.
"""

from ottokit.flowmatch.distributions import (
    Distribution,
    GaussianMixture,
    Normal,
    Uniform,
    chi2_divergence,
    chi2_quad,
    standard_normal,
)
from ottokit.flowmatch.kernel import COUPLINGS, KernelVelocity, ot_path_velocity
from ottokit.flowmatch.otpath import MonotoneVelocity1D, OTCoupling, ot_couple
from ottokit.flowmatch.sample import (
    METHODS,
    SampleTrajectory,
    integrate,
    sample_backward,
    sample_forward,
)
from ottokit.flowmatch.schedules import (
    CondOT,
    Cosine,
    Custom,
    ImprovedDDPMCosine,
    Schedule,
    ScheduleOutput,
    VPLinear,
)
from ottokit.flowmatch.tradeoff import (
    CI_METHODS,
    ESTIMATORS,
    Inequality,
    KineticResult,
    QuadratureResponse,
    ResponseResult,
    TradeoffResult,
    conditional_kinetic_energy,
    d0_isotropic_fit,
    has_closed_form,
    kinetic_cost,
    kinetic_quadrature,
    perturbation_d0,
    response,
    response_quadrature,
    tradeoff,
    w2_lower_bound,
    w2_squared_quadrature,
)
from ottokit.flowmatch.train import (
    CheckpointError,
    SinusoidalTimeEmbedding,
    TrainConfig,
    TrainResult,
    VelocityMLP,
    load_checkpoint,
    train_velocity,
)
from ottokit.flowmatch.velocity import (
    ExactVelocity,
    GaussianMixtureVelocity,
    MarginalPath,
    RotationalVelocity,
    VelocityField,
)

__all__ = [
    # schedules
    "Schedule",
    "ScheduleOutput",
    "CondOT",
    "Cosine",
    "ImprovedDDPMCosine",
    "VPLinear",
    "Custom",
    # distributions and D0
    "Distribution",
    "GaussianMixture",
    "Normal",
    "Uniform",
    "standard_normal",
    "chi2_divergence",
    "chi2_quad",
    # velocities
    "VelocityField",
    "MarginalPath",
    "ExactVelocity",
    "GaussianMixtureVelocity",
    "RotationalVelocity",
    "MonotoneVelocity1D",
    "OTCoupling",
    "ot_couple",
    "KernelVelocity",
    "ot_path_velocity",
    "COUPLINGS",
    # learned velocity
    "SinusoidalTimeEmbedding",
    "VelocityMLP",
    "TrainConfig",
    "TrainResult",
    "CheckpointError",
    "train_velocity",
    "load_checkpoint",
    # sampling
    "SampleTrajectory",
    "integrate",
    "sample_forward",
    "sample_backward",
    "METHODS",
    # trade-off
    "Inequality",
    "KineticResult",
    "ResponseResult",
    "QuadratureResponse",
    "TradeoffResult",
    "ESTIMATORS",
    "CI_METHODS",
    "perturbation_d0",
    "d0_isotropic_fit",
    "kinetic_cost",
    "kinetic_quadrature",
    "has_closed_form",
    "conditional_kinetic_energy",
    "response",
    "response_quadrature",
    "w2_lower_bound",
    "w2_squared_quadrature",
    "tradeoff",
]

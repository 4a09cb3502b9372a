"""GAN geometry (seed 001): networks, losses, a checkpointed trainer, the pullback metric and
the natural-gradient optimiser, the game Jacobian, and the connection, curvature and holonomy
of the discriminator potential.

Submodules: :mod:`~ottokit.gan.nets`, :mod:`~ottokit.gan.losses`, :mod:`~ottokit.gan.train`,
:mod:`~ottokit.gan.jacobian` (parameter layout, structured per-sample Jacobian),
:mod:`~ottokit.gan.pullback` (the metric), :mod:`~ottokit.gan.solvers` (its linear solvers),
:mod:`~ottokit.gan.natural_gradient` (the optimiser), :mod:`~ottokit.gan.game`,
:mod:`~ottokit.gan.connection` (its function ``connection`` is reached as
``ottokit.gan.connection.connection``).
"""

from ottokit.gan.connection import (
    FunctionPotential,
    GaussianAffineModel,
    Grid,
    HolonomyResult,
    KDEPotential,
    LearnedPotential,
    ModuleGenerator,
    Potential,
    SectionPotential,
    connection_autograd,
    curvature,
    curvature_exact,
    curvature_heatmap,
    curvature_terms,
    gaussian_logpdf,
    gaussian_mixture_logpdf,
    holonomy,
    line_grid,
    square_grid,
)
from ottokit.gan.game import (
    GameBlocks,
    GameJacobian,
    antisymmetric_norm,
    decompose,
    eigenvalues,
    hessian,
    hessian_plane,
)
from ottokit.gan.jacobian import ParamLayout, structured_support
from ottokit.gan.losses import (
    FGAN_LOSSES,
    LOSSES,
    FGANLoss,
    GANLoss,
    HingeLoss,
    StandardGANLoss,
    WGANGPLoss,
    gradient_penalty,
    make_loss,
)
from ottokit.gan.natural_gradient import (
    Armijo,
    NaturalGradient,
    StepInfo,
)
from ottokit.gan.nets import (
    ConvDiscriminator8,
    ConvGenerator8,
    MLPDiscriminator,
    MLPGenerator,
    build_seeded,
    sample_latent,
)
from ottokit.gan.pullback import PullbackMetric
from ottokit.gan.solvers import (
    SOLVERS,
    AutoSolver,
    CGConvergenceWarning,
    Cholesky,
    ConjugateGradient,
    LinearSolver,
    NonFiniteError,
    SingularMetricError,
    SolveStats,
    Woodbury,
)
from ottokit.gan.train import (
    CheckpointError,
    GANTrainConfig,
    GANTrainResult,
    fit_discriminator,
    load_gan_checkpoint,
    restore_checkpoint,
    train_gan,
)

__all__ = [
    # nets
    "MLPGenerator",
    "MLPDiscriminator",
    "ConvGenerator8",
    "ConvDiscriminator8",
    "sample_latent",
    "build_seeded",
    # losses
    "GANLoss",
    "StandardGANLoss",
    "FGANLoss",
    "WGANGPLoss",
    "HingeLoss",
    "gradient_penalty",
    "make_loss",
    "LOSSES",
    "FGAN_LOSSES",
    # training
    "GANTrainConfig",
    "GANTrainResult",
    "train_gan",
    "fit_discriminator",
    "load_gan_checkpoint",
    "restore_checkpoint",
    "CheckpointError",
    # pullback metric, its solvers and the natural gradient
    "ParamLayout",
    "structured_support",
    "PullbackMetric",
    "LinearSolver",
    "Cholesky",
    "ConjugateGradient",
    "Woodbury",
    "AutoSolver",
    "SOLVERS",
    "SolveStats",
    "SingularMetricError",
    "CGConvergenceWarning",
    "NaturalGradient",
    "Armijo",
    "StepInfo",
    "NonFiniteError",
    # game Jacobian
    "GameJacobian",
    "GameBlocks",
    "decompose",
    "eigenvalues",
    "antisymmetric_norm",
    "hessian",
    "hessian_plane",
    # connection, curvature, holonomy
    "Potential",
    "SectionPotential",
    "FunctionPotential",
    "GaussianAffineModel",
    "KDEPotential",
    "LearnedPotential",
    "ModuleGenerator",
    "Grid",
    "HolonomyResult",
    "gaussian_logpdf",
    "gaussian_mixture_logpdf",
    "line_grid",
    "square_grid",
    "connection_autograd",
    "curvature",
    "curvature_terms",
    "curvature_exact",
    "curvature_heatmap",
    "holonomy",
]

"""ottokit: optimal-transport (Wasserstein) geometry of generative models.

One spine, Otto calculus: a density rho, a free energy F with first variation
dF/drho, the Otto metric, and the gradient flow d(rho)/dt = div(rho grad dF/drho).
Subpackages: :mod:`ottokit.functionals` (with the one f-divergence table
:mod:`ottokit.fgenerators`), :mod:`ottokit.graph` (discrete Otto
calculus on weighted graphs and grids), :mod:`ottokit.jko` (1-D JKO in quantile
form), :mod:`ottokit.ot` (exact OT over POT), :mod:`ottokit.thermo` (Fokker-Planck
thermodynamics), :mod:`ottokit.flowmatch` (schedules and their speed-accuracy
trade-off), :mod:`ottokit.gan` (GAN training, pullback metric and natural gradient,
game Jacobian, curvature), :mod:`ottokit.dot` (discriminator optimal transport and
its rivals), :mod:`ottokit.metrics` (sample-quality metrics), :mod:`ottokit.data`,
:mod:`ottokit.experiments` (the seeds' experiments).
"""

__version__ = "0.1.0"

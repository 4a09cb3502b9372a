"""ottokit: optimal-transport (Wasserstein) geometry of generative models.

One spine, Otto calculus: a density rho, a free energy F with first variation
dF/drho, the Otto metric, and the gradient flow d(rho)/dt = div(rho grad dF/drho).
Subpackages: :mod:`ottokit.functionals`, :mod:`ottokit.graph` (discrete Otto
calculus on weighted graphs), :mod:`ottokit.experiments` (the seeds' experiments).
"""

__version__ = "0.1.0"

"""The backward problem of a graph flow: recover rho(0) from a noisy rho(T) (seed 000 §4).

The seed links deep denoising autoencoders to the time-reversed Wasserstein
heat flow and argues that its inverse is even less stable than the (already
ill-posed) inverse of the linear heat flow. Here both inverses are solved with
the same sound method, so their accuracy can be compared:

* forward map ``S_T(x) = rho(T)`` with its sensitivity ``Phi = dS_T/dx``
  (the variational equation ``dPhi/dt = J(rho(t)) Phi``, ``Phi(0) = I``);
* Tikhonov regularisation towards a prior ``p`` (default: uniform),
  ``min_x ||S_T(x) - y||^2 + alpha ||x - p||^2`` over the simplex, with
  ``x = softmax(z)`` (positive, mass one) solved by Levenberg-Marquardt
  (``scipy.optimize.least_squares``);
* ``alpha`` by Morozov's discrepancy principle: the largest alpha on a
  decreasing grid with ``||S_T(x_alpha) - y|| <= tau * delta``, where ``delta``
  is the noise norm (warm-started continuation along the grid).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.integrate import solve_ivp
from scipy.optimize import least_squares

from ottokit._checks import as_array, as_density, as_vector, check_instance, check_real
from ottokit.graph._flows import Flow

__all__ = ["sensitivity", "reconstruct_initial", "InverseResult"]

_SPREAD = 40.0  # largest log-ratio of densities the parametrisation allows
_GAUGE = 1e-3


def sensitivity(
    flow: Flow, rho0: np.ndarray, T: float, *, rtol: float = 1e-7, atol: float = 1e-12
) -> tuple[np.ndarray, np.ndarray]:
    """``rho(T)`` and the forward sensitivity ``Phi = d rho(T) / d rho(0)`` (n x n).

    Integrates the flow together with its variational equation (DOP853); meant
    for graphs of up to a few hundred nodes (Phi is dense).
    """
    n = check_instance(flow, Flow, "flow").graph.n
    rho0 = as_density(rho0, n, name="rho0", positive=flow.needs_positive, check_mass=False)
    T = check_real(T, "T", gt=0)
    if n > 2000:
        raise ValueError(f"sensitivity is dense (n x n); n = {n} is too large (max 2000)")

    def rhs(_t: float, y: np.ndarray) -> np.ndarray:
        rho, phi = y[:n], y[n:].reshape(n, n)
        jac = flow.jacobian(rho)
        jac = jac.toarray() if n <= 300 else jac  # dense products are cheaper for small n
        return np.concatenate([flow.rhs(rho), (jac @ phi).ravel()])

    y0 = np.concatenate([rho0, np.eye(n).ravel()])
    sol = solve_ivp(rhs, (0.0, T), y0, method="DOP853", rtol=rtol, atol=atol, t_eval=[T])
    if not sol.success:
        raise RuntimeError(f"sensitivity integration failed: {sol.message}")
    y = sol.y[:, -1]
    return y[:n], y[n:].reshape(n, n)


@dataclass
class InverseResult:
    """A reconstruction of the initial density.

    Attributes:
        rho0: reconstructed initial density (n,).
        alpha: regularisation weight chosen by the discrepancy principle.
        residual: ``||S_T(rho0) - y||``.
        noise_norm: ``delta``, the noise norm the principle matched.
        discrepancy_met: whether some alpha on the grid reached ``tau * delta``.
        n_forward: forward (+ sensitivity) solves used.
    """

    rho0: np.ndarray
    alpha: float
    residual: float
    noise_norm: float
    discrepancy_met: bool
    n_forward: int


def reconstruct_initial(
    flow: Flow,
    observed: np.ndarray,
    T: float,
    noise_norm: float,
    *,
    prior: np.ndarray | None = None,
    alphas: np.ndarray | None = None,
    tau: float = 1.1,
) -> InverseResult:
    """Tikhonov + discrepancy-principle reconstruction of ``rho(0)`` from ``observed ~ rho(T)``."""
    n = check_instance(flow, Flow, "flow").graph.n
    y = as_vector(observed, n, "observed")
    T = check_real(T, "T", gt=0)
    noise_norm = check_real(noise_norm, "noise_norm", gt=0)
    tau = check_real(tau, "tau", ge=1, hint="the discrepancy principle needs tau >= 1, e.g. 1.1")
    p = np.full(n, 1.0 / n) if prior is None else as_density(prior, n, name="prior")
    if alphas is None:
        grid = np.logspace(0, -12, 13)
    else:
        grid = np.sort(as_array(alphas, "alphas").ravel())[::-1]
        if grid.size == 0 or grid[-1] <= 0:
            raise ValueError(f"alphas must be positive regularisation weights, got {alphas!r}")
    count = [0]
    cache: dict[bytes, tuple[np.ndarray, np.ndarray]] = {}

    def forward(z: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        x = np.exp(np.maximum(z - z.max(), -_SPREAD))  # keeps every density positive
        x /= x.sum()
        key = z.tobytes()
        if key not in cache:
            count[0] += 1
            cache.clear()
            cache[key] = sensitivity(flow, x, T)
        s, phi = cache[key]
        dx = np.diag(x) - np.outer(x, x)
        return x, s, phi @ dx, dx

    z = np.log(p)
    z_mean = float(z.mean())
    best = None
    for alpha in grid:
        sa = np.sqrt(alpha)

        # softmax ignores a constant shift of z: one more residual fixes the gauge
        def res(z: np.ndarray, sa: float = sa) -> np.ndarray:
            x, s, _, _ = forward(z)
            return np.concatenate([s - y, sa * (x - p), [_GAUGE * (z.mean() - z_mean)]])

        def jac(z: np.ndarray, sa: float = sa) -> np.ndarray:
            _, _, js, dx = forward(z)
            return np.vstack([js, sa * dx, np.full((1, n), _GAUGE / n)])

        fit = least_squares(res, z, jac=jac, method="trf", max_nfev=40)
        z = fit.x
        x, s, _, _ = forward(z)
        r = float(np.linalg.norm(s - y))
        best = InverseResult(x, float(alpha), r, float(noise_norm), r <= tau * noise_norm, count[0])
        if best.discrepancy_met:
            break
    assert best is not None
    return best

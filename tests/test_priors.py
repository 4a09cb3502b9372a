"""Latent priors: the draws are torch's own (bit for bit), log-densities in closed form."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from ottokit.gan.nets import sample_latent
from ottokit.priors import PRIORS, Prior, as_prior


def test_draws_are_torchs_and_sample_latent_is_the_same_prior() -> None:
    """The same torch calls in the same order: trained results do not depend on the path."""
    g = lambda: torch.Generator().manual_seed(7)  # noqa: E731
    normal = Prior("normal", (3,)).sample(5, generator=g())
    assert torch.equal(normal, torch.randn(5, 3, generator=g()))
    uniform = Prior("uniform", (3,)).sample(5, generator=g(), dtype=torch.float64)
    assert torch.equal(uniform, 2.0 * torch.rand(5, 3, generator=g(), dtype=torch.float64) - 1.0)
    for kind in PRIORS:
        a = sample_latent(6, 4, kind, g(), dtype=torch.float64)  # type: ignore[arg-type]
        b = Prior(kind, (4,)).sample(6, generator=g(), dtype=torch.float64)  # type: ignore[arg-type]
        assert torch.equal(a, b)
    assert Prior("normal", (2, 3)).sample(0).shape == (0, 2, 3)
    assert Prior("normal", (2,)).sample(1).dtype == torch.get_default_dtype()


def test_log_prob_and_support() -> None:
    z = torch.tensor([[0.3, -0.9], [2.0, 0.1]], dtype=torch.float64)
    ref = stats.multivariate_normal(np.zeros(2), np.eye(2)).logpdf(z.numpy())
    np.testing.assert_allclose(Prior("normal", (2,)).log_prob(z).numpy(), ref, rtol=1e-14)
    lp = Prior("uniform", (2,)).log_prob(z)
    assert float(lp[0]) == pytest.approx(-2 * math.log(2.0), rel=1e-15)
    assert float(lp[1]) == -math.inf
    with pytest.raises(ValueError, match=r"z\[1\] lies outside"):
        Prior("uniform", (2,)).check_support(z, "z")
    Prior("normal", (2,)).check_support(z, "z")
    u = Prior("uniform", (1,)).sample(200_000, generator=torch.Generator().manual_seed(0))
    assert float(u.abs().max()) <= 1.0
    assert abs(float(u.var()) - 1 / 3) < 5 * math.sqrt(4 / 45 / 200_000)  # Var U[-1,1] = 1/3


def test_errors() -> None:
    with pytest.raises(ValueError, match="unknown prior 'cauchy'"):
        Prior("cauchy", (2,))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="positive sizes"):
        Prior("normal", (0,))
    with pytest.raises(ValueError, match="n must be an integer >= 0"):
        Prior("normal", (2,)).sample(-1)
    with pytest.raises(TypeError, match="floating-point"):
        Prior("normal", (2,)).sample(3, dtype=torch.int64)
    with pytest.raises(ValueError, match="needs the latent shape"):
        as_prior("normal")
    assert as_prior("uniform", 3) == Prior("uniform", (3,))

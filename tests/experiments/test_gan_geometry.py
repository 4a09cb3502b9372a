"""gan-geometry (seed 001 §5-§10) on tiny settings: the claims that do not depend on the
sizes (flat exact section, symmetric Hessian, JKO energy bounds), and the pullback metric's
concentration against closed forms."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from _gan_cases import DT, affine_closed_form, mlp
from torch import nn

from ottokit.experiments import _registry
from ottokit.experiments.gan_geometry import GanGeometryConfig
from ottokit.experiments.gan_geometry import run as run_geometry
from ottokit.experiments.gan_geometry.concentration import metric_concentration


def test_registered_under_seed_001():
    assert "gan-geometry" in _registry.names()
    exp = _registry.get("gan-geometry")
    assert exp.seed_id == "001"
    for preset in ("quick", "paper"):
        cfg = exp.preset(preset)
        assert cfg.seed == 0 and cfg.device == "cpu"


TINY_GEOMETRY = dict(
    divergences=("kl", "jsd"),
    edi_sizes=(20, 40),
    edi_sizes_2d=(8, 12),
    jko_divergences=("kl",),
    jko_nodes=40,
    jko_steps=(2, 4),
    convexity_nodes=40,
    convexity_deltas=(0.05, 0.2),
    convexity_pairs=2,
    concentration_sizes=(16, 64, 256),
    concentration_repeats=3,
    concentration_reference=4000,
    game_steps=10,
    game_every=5,
    game_batch=32,
    curvature_deltas=(0.1, 0.05),
    curvature_budgets=(5, 20),
    curvature_samples=64,
    mlp_budget=5,
    init_steps=50,
    converged_steps=100,
    holonomy_sizes=(0.1, 0.2),
    holonomy_segments=2,
    heatmap_points=5,
)


def test_gan_geometry_tiny(tmp_path):
    res = run_geometry(GanGeometryConfig(**TINY_GEOMETRY), tmp_path)
    for rel in res.figures.values():
        assert (tmp_path / rel).is_file()
    checks = {c.name: c for c in res.checks}

    def holds(prefix: str) -> bool:
        (c,) = [c for n, c in checks.items() if n.startswith(prefix)]
        return c.holds

    # size-independent mathematics
    assert holds("The exact section log(q/rho_theta) is flat")
    assert holds("Def. 6.5: K = antisymmetric part of the Hessian")
    assert holds("The game Jacobian of the simultaneous gradient has a non-zero")
    assert holds("Thm 5.5: JKO energy decreases")
    assert holds("Thm 5.5 (3)")
    m = res.metrics
    # Algorithm 1 on the exact section: exactly telescoping; the exact-connection variant O(D^2)
    for v in m["curvature"]["exact"].values():
        assert max(v["algorithm1_max_abs"]) <= 1e-10 * v["grad_scale"]
        assert 1.5 < v["autograd_order"] < 2.5
    # EDI residual decreases with the grid for every f
    for v in m["edi"]["divergences"].values():
        assert v["max_rel_error"][1] < v["max_rel_error"][0]
    # the game Jacobian's spectrum is that of a real matrix: conjugate pairs
    snap = m["game"]["snapshots"][-1]
    ev = np.asarray(snap["eig_real"]) + 1j * np.asarray(snap["eig_imag"])
    np.testing.assert_allclose(np.sort_complex(ev), np.sort_complex(ev.conj()), atol=1e-8)
    json.dumps(res.to_json())


def test_gan_geometry_config_validation():
    with pytest.raises(ValueError, match="divergences = tv: must be comma-separated values from"):
        GanGeometryConfig(divergences=("tv",))
    with pytest.raises(ValueError, match="edi_sizes = 50: must be a list of at least 2 items"):
        GanGeometryConfig(edi_sizes=(50,))


def test_concentration_slope_is_minus_one_half() -> None:
    gen = nn.Linear(2, 1).to(DT)
    mu = torch.tensor([1.0, -0.5], dtype=DT)
    g = affine_closed_form(gen.weight, torch.eye(2, dtype=DT) + torch.outer(mu, mu), mu)
    res = metric_concentration(
        gen,
        lambda n: torch.randn(n, 2, dtype=DT) + mu,
        sizes=[16, 64, 256, 1024, 4096],
        repeats=15,
        seed=3,
        damping=1e-2,
        reference_metric=g,
    )
    assert -0.65 <= res.metric_slope <= -0.35
    assert -0.65 <= res.vector_slope <= -0.35
    # a small MLP with a sampled reference
    res2 = metric_concentration(
        mlp(2, 3, 1), lambda n: torch.randn(n, 2, dtype=DT), sizes=[16, 64, 256, 1024],
        repeats=10, reference_samples=40_000, seed=4, damping=1e-2,
    )  # fmt: skip
    assert -0.65 <= res2.metric_slope <= -0.35

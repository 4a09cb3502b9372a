"""The seed-001 experiments on tiny settings: structure, fairness of the optimiser comparison,
and the claims that do not depend on the sizes (flat exact section, symmetric Hessian,
JKO energy bounds)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from _gan_cases import DT, affine_closed_form, mlp
from torch import nn

from ottokit.experiments import _registry
from ottokit.experiments.gan_geometry import GanGeometryConfig
from ottokit.experiments.gan_geometry.concentration import metric_concentration
from ottokit.experiments.gan_geometry import run as run_geometry
from ottokit.experiments.gan_optimizers import OPTIMIZERS, GanOptimizersConfig, _make_optimizer
from ottokit.experiments.gan_optimizers import run as run_optimizers
from ottokit.gan.natural_gradient import NaturalGradient
from ottokit.gan.nets import MLPGenerator


def test_registered_under_seed_001():
    names = _registry.names()
    for name in ("gan-optimizers", "gan-geometry"):
        assert name in names
        exp = _registry.get(name)
        assert exp.seed_id == "001"
        for preset in ("quick", "paper"):
            cfg = exp.preset(preset)
            assert cfg.seed == 0 and cfg.device == "cpu"


def test_gan_optimizers_tiny(tmp_path):
    cfg = GanOptimizersConfig(
        steps=30,
        n_seeds=2,
        eval_every=10,
        eval_samples=200,
        final_samples=500,
        batch_size=64,
        lr_scales=(1.0, 2.0),
    )
    res = run_optimizers(cfg, tmp_path)
    assert set(res.metrics["lr_sensitivity"]["2"]) == set(OPTIMIZERS)
    assert (tmp_path / "checkpoints" / "sgd-seed1-lr2").is_dir()
    summ = res.metrics["optimizers"]
    assert set(summ) == set(OPTIMIZERS)
    for s in summ.values():
        assert s["completed"] == 2
        assert np.isfinite(s["final_w1_median"]) and s["final_w1_median"] > 0
        assert len(s["loss_var_last"]) == 2 and min(s["loss_var_last"]) >= 0
    for rel in res.figures.values():
        assert (tmp_path / rel).is_file()
    # the seed's two stability claims are reported (either way), with both sides
    names = [c.name for c in res.checks]
    assert any("Adam more stable than SGD" in n for n in names)
    assert any("natural gradient + momentum more stable" in n for n in names)
    json.dumps(res.to_json())  # serialisable
    # checkpoints are kept per optimiser and seed
    assert (tmp_path / "checkpoints" / "adam-seed0").is_dir()


def test_gan_optimizers_compare_from_identical_starts(tmp_path):
    """All optimisers start from the same networks and batches: the first generator loss
    (evaluated before any generator step) is the same for every optimiser."""
    cfg = GanOptimizersConfig(
        steps=10, n_seeds=1, eval_every=5, eval_samples=100, final_samples=200, batch_size=32
    )
    from ottokit.experiments.gan_optimizers import _train_one

    first = [_train_one(o, 0, cfg, tmp_path / o)["g_loss"][0] for o in OPTIMIZERS]
    assert np.ptp(first) == 0.0


def test_momentum_matched_step():
    cfg = GanOptimizersConfig()
    G = MLPGenerator(16, (32,), 1)
    opt = _make_optimizer("natural-momentum-matched", G, cfg, 0)
    assert isinstance(opt, NaturalGradient)
    group = opt.param_groups[0]
    assert group["lr"] == pytest.approx(cfg.lr_natural * (1 - cfg.momentum))
    assert group["momentum"] == cfg.momentum
    plain = _make_optimizer("natural", G, cfg, 0).param_groups[0]
    assert plain["momentum"] == 0.0 and plain["lr"] == cfg.lr_natural
    assert isinstance(_make_optimizer("adam", G, cfg, 0), torch.optim.Adam)


def test_gan_optimizers_config_validation():
    with pytest.raises(ValueError, match="optimizers"):
        GanOptimizersConfig(optimizers=("rmsprop",))
    with pytest.raises(ValueError, match="stable_fraction"):
        GanOptimizersConfig(stable_fraction=0.0)
    with pytest.raises(ValueError, match="lr_scales"):
        GanOptimizersConfig(lr_scales=(0.5, 2.0))


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

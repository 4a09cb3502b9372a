"""The diffusion-tradeoff experiment on a reduced setting: the claims the theorem guarantees."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from ottokit.experiments._runner import to_jsonable
from ottokit.experiments.diffusion_tradeoff import DiffusionTradeoffConfig, run


def test_reduced_run_checks_the_guaranteed_claims(tmp_path: Path) -> None:
    cfg = replace(
        DiffusionTradeoffConfig.quick(),
        n_pairs=200,
        train_steps=0,
        ode_steps=10,
        n_save=5,
        toy_samples=300,
        toy_w1_samples=400,
        highdim_dims=(1, 64),
    )
    result = run(cfg, tmp_path)
    exact_chain = next(c for c in result.checks if c.name.startswith("With the exact velocity"))
    assert exact_chain.holds, exact_chain.detail
    coincide = next(c for c in result.checks if c.name.startswith("In 1-D the exact responses"))
    assert coincide.holds, coincide.detail
    assert max(result.metrics["exact_response_spread"].values()) < 0.01
    ot_bound = next(c for c in result.checks if c.name.startswith("The OT (geodesic) path"))
    assert ot_bound.holds, ot_bound.detail
    assert len(result.checks) >= 5
    # every inequality is recorded with its two sides and its verdict
    ineqs = result.metrics["inequalities"]
    assert ineqs and all({"lhs", "rhs", "holds", "where", "name"} <= set(q) for q in ineqs)
    for q in ineqs:
        tol = 0.15 if "v_loss(t)" in q["name"] else 0.02
        assert q["holds"] == (q["lhs"] <= q["rhs"] * (1 + tol)), q
    # D0 of the shifted-mean start is e - 1 (chi^2(N(1,1) || N(0,1)))
    d0 = result.metrics["table_1d"]["shifted mean"]["exact"]["OT"]["d0"]
    assert abs(d0 - (2.718281828459045 - 1)) < 1e-9
    for rel in result.figures.values():
        assert (tmp_path / rel).exists() or Path(rel).exists()
    json.dumps(to_jsonable(result.metrics))

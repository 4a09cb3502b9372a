"""The diffusion-tradeoff experiment on a reduced setting: the claims the theorem guarantees."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

from ottokit.experiments._runner import to_jsonable
from ottokit.experiments.diffusion_tradeoff import DiffusionTradeoffConfig, run


def _check(result, prefix: str):
    return next(c for c in result.checks if c.name.startswith(prefix))


def test_reduced_run_checks_the_guaranteed_claims(tmp_path: Path) -> None:
    cfg = replace(
        DiffusionTradeoffConfig.quick(),
        n_samples=400,
        n_boot=40,
        n_pairs=150,
        train_steps=0,
        ode_steps=8,
        n_save=5,
        spread_sample_counts=(300,),
        spread_repeats=2,
        spread_methods=("euler",),
        spread_steps=(4,),
        spread_bandwidths=(0.1,),
        spread_pairs=(150,),
        spread_pair_repeats=2,
        toy_samples=300,
        toy_w1_samples=400,
        toy_ode_steps=10,
        highdim_dims=(1, 64),
        rotation_g=(0.0, 3.0),
        rotation_data=60,
        rotation_samples=80,
        rotation_repeats=2,
        rotation_rtol=1e-3,
        rotation_ode_steps=8,
        rotation_kinetic_nodes=3,
        image_couplings=("cond-OT",),
        image_repeats=2,
        image_train_steps=20,
        image_hidden=16,
        image_batch=32,
        image_samples=60,
        image_ode_steps=4,
    )
    result = run(cfg, tmp_path)
    # the exact 1-D path reproduces the three known rows of Table I within 1 %
    table = _check(result, "Table I reproduced")
    assert table.holds, table.detail
    paper = {}
    table_i = result.metrics["table_i"]
    for cell in table_i["cells"]:
        assert cell["guess"] == (cell["row"] == "Gaussian mixture")
        paper.setdefault(cell["row"], {})[cell["schedule"]] = cell["paper"]
        if cell["schedule"] == "cond-OT" and not cell["guess"]:
            assert abs(cell["rel_exact_to_paper"]) < 0.01
        for est in cell["estimates"].values():
            low, high = est["ci"]
            assert low <= est["response"] <= high
    # ... and lies inside the paper's cosine-OT spread
    for row in ("shifted mean", "shifted variance", "uniform"):
        exact = table_i["exact"][row]["OT"]["response"]
        assert paper[row]["OT"] < exact < paper[row]["cosine"]
    exact_chain = _check(result, "Exact chain")
    assert exact_chain.holds, exact_chain.detail
    coincide = _check(result, "In 1-D the exact responses")
    assert coincide.holds, coincide.detail
    assert coincide.kind == "software"  # a property of the quadrature, not a seed claim
    assert max(table_i["exact_schedule_spread"].values()) < 0.01
    ot_bound = _check(result, "OT has the smallest bound")
    assert ot_bound.holds, ot_bound.detail
    assert _check(result, "Fig. 6(b)").holds
    assert _check(result, "Fig. 7: the response is bounded").holds
    assert _check(result, "The rotation costs housekeeping").holds
    assert _check(result, "Fig. 8 analogue: eta <= c2").holds
    assert len(result.checks) >= 5
    # every inequality is recorded with its two sides and its verdict
    chains = [c for by_s in table_i["exact"].values() for c in by_s.values()] + [
        c for by_s in result.metrics["toys"]["chains"].values() for c in by_s.values()
    ]
    ineqs = [q for c in chains for q in c["inequalities"]]
    assert len(ineqs) > len(chains)
    assert all({"lhs", "rhs", "holds", "name"} <= set(q) for q in ineqs)
    for q in ineqs:
        tol = 0.15 if "v_loss(t)" in q["name"] else 0.02
        assert q["holds"] == (q["lhs"] <= q["rhs"] * (1 + tol)), q
    # D0 of the shifted-mean start is e - 1 (chi^2(N(1,1) || N(0,1)))
    d0 = table_i["exact"]["shifted mean"]["OT"]["d0"]
    assert abs(d0 - (math.e - 1)) < 1e-9
    # Eq. G21 on N(0, I) against N(0, s^2 I) fits: 2 KL = n_d (s^2 - 1 - log s^2), up to the
    # fitted means and variances of the finite clouds
    s2 = cfg.image_scale**2
    for r in result.metrics["fig8"]["runs"]:
        assert abs(r["d0"] / (64 * (s2 - 1 - math.log(s2))) - 1) < 0.05
    for rel in result.figures.values():
        assert (tmp_path / rel).exists() or Path(rel).exists()
    json.dumps(to_jsonable(result.metrics))

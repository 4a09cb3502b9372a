"""The thermo-limits experiment end to end, on a shrunken quick configuration."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from ottokit._config import config_from_toml, config_to_toml
from ottokit.experiments import get
from ottokit.experiments._runner import to_jsonable
from ottokit.experiments.thermo_limits import ThermoLimitsConfig, run


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    config = dataclasses.replace(
        ThermoLimitsConfig.quick(),
        n_times=201,
        tau_scan=(0.5, 2.0),
        particle_counts=(100, 1_000, 5_000),
        particle_steps=400,
        particle_outputs=21,
    )
    return run(config, tmp_path_factory.mktemp("thermo-limits"))


def test_every_check_holds(result):
    failed = [f"{c.name}: {c.detail}" for c in result.checks if not c.holds]
    assert not failed, failed
    assert len(result.checks) >= 10


def test_seed_claims_and_software_checks_are_told_apart(result):
    """The first law and the estimator's convergence are ottokit's own computations; the
    speed limits, TUR and the geodesic's minimality are the seed's claims."""
    kinds = {c.name.split(":")[0].split(" (")[0]: c.kind for c in result.checks}
    assert kinds["First and second law"] == "software"
    assert kinds["The particle estimator converges to the closed form"] == "software"
    assert sum(c.kind == "claim" for c in result.checks) >= 7
    assert any(c.kind == "claim" and c.name.startswith("Speed limit") for c in result.checks)


def test_every_inequality_is_recorded_with_both_sides(result):
    closed, sweep = result.metrics["closed_forms"], result.metrics["durations"]
    records = closed["inequalities"] + sweep["inequalities"]
    names = {r["inequality"] for r in records}
    assert {
        "Sdot >= v2^2/T",
        "S_tot >= W2^2/(tau T)",
        "TUR v2^2/T >= (d<r>)^2/(T<|grad r|^2>)",
        "v2 >= v1",
    } <= names
    for r in records:
        assert r["holds"], r
        assert {"lhs", "rhs", "lhs_label", "rhs_label", "case"} <= set(r)
        assert r["lhs"] >= r["rhs"] - 1e-9 * max(abs(r["lhs"]), abs(r["rhs"]), 1.0)
    assert all(closed["inequalities_hold"].values()) and sweep["holds"]


def test_the_geodesic_attains_the_bound_and_the_rotation_does_not(result):
    closed = result.metrics["closed_forms"]
    geo = closed["geodesic"]
    assert geo["S_tot"] == pytest.approx(geo["distance_bound"], rel=1e-9)
    rot = closed["protocols_2d"]["rotational"]
    assert rot["S_tot"] > 1.5 * rot["bound_W2"]
    assert rot["max_housekeeping_rate"] > 1.0
    sched = closed["schedules_1d"]
    # int v2^2 dt of the 1-D Gaussian-data paths (tau = 1, data N(0, 0.5^2))
    assert sched["cond-OT"]["int_v2sq_over_T_dt"] == pytest.approx(0.464602, rel=1e-5)
    assert sched["cosine"]["int_v2sq_over_T_dt"] == pytest.approx(0.308425, rel=1e-5)
    assert sched["OT geodesic"]["int_v2sq_over_T_dt"] == pytest.approx(0.25, rel=1e-9)


def test_figures_and_metrics_are_written(result):
    assert len(result.figures) == 5
    for path in result.figures.values():
        assert path.endswith(".png")
        assert Path(path).is_file() and Path(path).parent == result.run_dir / "figures"
    json.dumps(to_jsonable(result.metrics), allow_nan=False)
    assert result.comparisons and result.summary


def test_registered_with_presets_that_round_trip():
    exp = get("thermo-limits")
    assert exp.seed_id == "002" and exp.seed_file == "002_d42d5c4244534a1d.txt"
    for name in ("quick", "paper"):
        config = exp.preset(name)
        assert config_from_toml(ThermoLimitsConfig, config_to_toml(config)) == config


def test_rejects_a_bad_configuration(tmp_path):
    with pytest.raises(ValueError, match=r"temperature = 0\.0: must be a number > 0"):
        run(dataclasses.replace(ThermoLimitsConfig.quick(), temperature=0.0), tmp_path)

"""Every experiment config refuses bad input before a run starts, with one line naming the key.

The same cases go through the Python API (a ``ConfigError`` whose ``key`` names the
field) and the command line (exit status 2, one ``error:`` line naming the key, the
value, what is allowed and an example, and no run directory).
"""

from __future__ import annotations

import dataclasses
import math
import typing
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from ottokit import cli
from ottokit._config import ConfigError, ValidatedConfig, apply_overrides, validate_config
from ottokit.data import TOY_2D_NAMES, digits
from ottokit.experiments import dot_digits, dot_toy, gan_optimizers
from ottokit.experiments._graph_sizes import distance_cdf, expected_degree
from ottokit.experiments._registry import all_experiments, get
from ottokit.experiments._runner import run_experiment
from ottokit.gan.losses import LOSSES
from ottokit.gan.solvers import SOLVERS

runner = CliRunner()

# (experiment, --set items, key named in the error); the presets are quick
RANGE_CASES = [
    ("diffusion-tradeoff", ["rotation_scale=1.5"], "rotation_scale"),
    ("diffusion-tradeoff", ["n_samples=10"], "n_samples"),
    ("diffusion-tradeoff", ["kernel_bandwidth=0"], "kernel_bandwidth"),
    ("diffusion-tradeoff", ["rotation_g=3,0"], "rotation_g"),
    ("graph-heat", ["n_nodes=0"], "n_nodes"),
    ("graph-heat", ["n_nodes=1"], "n_nodes"),
    ("graph-heat", ["radius=nan"], "radius"),
    ("graph-heat", ["radius=inf"], "radius"),
    ("graph-heat", ["radius=-1"], "radius"),
    ("graph-heat", ["t_end=-1"], "t_end"),
    ("graph-heat", ["t_end=0"], "t_end"),
    ("graph-heat", ["rtol=-1"], "rtol"),
    ("graph-heat", ["rtol=1e-300"], "rtol"),
    ("graph-heat", ["atol=0"], "atol"),
    ("graph-heat", ["floor=2"], "floor"),
    ("graph-heat", ["floor=0"], "floor"),
    ("graph-heat", ["floor=0.01"], "floor"),
    ("graph-heat", ["n_out=1"], "n_out"),
    ("graph-heat", ["far_radius=-1"], "far_radius"),
    ("graph-heat", ["t_long=0"], "t_long"),
    ("graph-heat", ["linearisation_eps="], "linearisation_eps"),
    ("graph-heat", ["linearisation_eps=nan,0.1"], "linearisation_eps"),
    ("graph-heat", ["linearisation_eps=0.1"], "linearisation_eps"),
    ("graph-heat", ["snapshot_times=5.0"], "snapshot_times"),
    ("graph-heat", ["snapshot_times=-0.02"], "snapshot_times"),
    ("graph-heat", ["seed=-1"], "seed"),
    ("graph-heat", ["device=banana"], "device"),
    ("graph-heat", ["radius=0.01"], "radius"),
    ("graph-heat", ["n_nodes=2", "radius=0.1"], "radius"),
    ("graph-inverse", ["draws=0"], "draws"),
    ("graph-inverse", ["noise_levels=-0.1"], "noise_levels"),
    ("graph-inverse", ["noise_levels=0.1"], "noise_levels"),
    ("graph-inverse", ["noise_levels=0.1,0.01"], "noise_levels"),
    ("graph-inverse", ["noise_levels=0.01,2"], "noise_levels"),
    ("graph-inverse", ["times=0"], "times"),
    ("graph-inverse", ["times=0.2,0.1"], "times"),
    ("graph-inverse", ["tau=1"], "tau"),
    ("graph-inverse", ["n_nodes=5000"], "n_nodes"),
    ("graph-inverse", ["radius=0.01"], "radius"),
    ("graph-inverse", ["floor=0"], "floor"),
    ("graph-scale", ["grid_size=1"], "grid_size"),
    ("graph-scale", ["n_nodes=5", "mean_degree=15"], "mean_degree"),
    ("graph-scale", ["mean_degree=0"], "mean_degree"),
    ("graph-scale", ["potential_strength=-1"], "potential_strength"),
    ("graph-scale", ["rtol=0"], "rtol"),
    ("graph-scale", ["t_end=nan"], "t_end"),
    ("thermo-limits", ["temperature=0"], "temperature"),
    ("thermo-limits", ["tau=-1"], "tau"),
    ("thermo-limits", ["particle_counts=0"], "particle_counts"),
    ("thermo-limits", ["particle_counts=5"], "particle_counts"),
    ("thermo-limits", ["particle_counts=100,100"], "particle_counts"),
    ("thermo-limits", ["n_times=2"], "n_times"),
    ("thermo-limits", ["k1=1"], "k1"),
    ("thermo-limits", ["k0=-1"], "k0"),
    ("thermo-limits", ["omega=0"], "omega"),
    ("thermo-limits", ["data_std=1"], "data_std"),
    ("thermo-limits", ["data_std=-0.5"], "data_std"),
    ("thermo-limits", ["tau_scan=2,1"], "tau_scan"),
    ("thermo-limits", ["particle_outputs=2000"], "particle_outputs"),
    ("thermo-limits", ["particle_steps=1"], "particle_steps"),
    ("gan-optimizers", ["lr_sgd=-1"], "lr_sgd"),
    ("gan-optimizers", ["target_std=-0.5"], "target_std"),
    ("gan-optimizers", ["target_std=0"], "target_std"),
    ("gan-optimizers", ["target_mean=inf"], "target_mean"),
    ("gan-optimizers", ["momentum=1"], "momentum"),
    ("gan-optimizers", ["damping=-1"], "damping"),
    ("gan-optimizers", ["natural_solver=woodbury", "damping=0"], "damping"),
    ("gan-optimizers", ["optimizers=sgd,sgd"], "optimizers"),
    ("gan-optimizers", ["optimizers="], "optimizers"),
    ("gan-optimizers", ["lr_scales=0.5,2"], "lr_scales"),
    ("gan-optimizers", ["lr_scales=1,-2"], "lr_scales"),
    ("gan-optimizers", ["stable_fraction=0"], "stable_fraction"),
    ("gan-optimizers", ["steps=5"], "steps"),
    ("gan-optimizers", ["eval_every=5000"], "eval_every"),
    ("gan-optimizers", ["d_betas=0.5,1"], "d_betas"),
    ("gan-optimizers", ["batch_size=0"], "batch_size"),
    ("gan-optimizers", ["n_seeds=0"], "n_seeds"),
    ("gan-geometry", ["edi_sizes=50"], "edi_sizes"),
    ("gan-geometry", ["edi_sizes=50,25"], "edi_sizes"),
    ("gan-geometry", ["jko_steps=4,8,12"], "jko_steps"),
    ("gan-geometry", ["curvature_deltas=0.05,0.1"], "curvature_deltas"),
    ("gan-geometry", ["convexity_deltas=1.5"], "convexity_deltas"),
    ("gan-geometry", ["concentration_reference=100"], "concentration_reference"),
    ("gan-geometry", ["concentration_dampings=0"], "concentration_dampings"),
    ("gan-geometry", ["game_every=1000"], "game_every"),
    ("gan-geometry", ["edi_times=0,0.000001,0.05"], "edi_times"),
    ("gan-geometry", ["heatmap_points=1"], "heatmap_points"),
    ("gan-geometry", ["curvature_budgets=40"], "curvature_budgets"),
    ("dot-toy", ["batch_size=0"], "batch_size"),
    ("dot-toy", ["datasets="], "datasets"),
    ("dot-toy", ["seeds="], "seeds"),
    ("dot-toy", ["seeds=-1"], "seeds"),
    ("dot-toy", ["n_eval=1000"], "n_eval"),
    ("dot-toy", ["drs_percentile=100"], "drs_percentile"),
    ("dot-toy", ["k_factor=-1"], "k_factor"),
    ("dot-toy", ["batch_size=200000"], "batch_size"),
    ("dot-toy", ["num_threads=-1"], "num_threads"),
    ("dot-toy", ["g_hidden=0,256"], "g_hidden"),
    ("dot-digits", ["n_eval=10"], "n_eval"),
    ("dot-digits", ["ema_decay=1"], "ema_decay"),
    ("dot-digits", ["g_width=1"], "g_width"),
    ("dot-digits", ["batch_size=5000"], "batch_size"),
    ("dot-digits", ["n_calibration=1000"], "n_calibration"),
    ("dot-digits", ["sweep_lrs=-0.01"], "sweep_lrs"),
    ("dot-digits", ["sweep_steps=0,5"], "sweep_steps"),
    ("dot-digits", ["dot_lr=0"], "dot_lr"),
]

# sizes refused by their memory estimate (with the limit fixed at 8 GiB)
MEMORY_CASES = [
    ("graph-heat", ["n_nodes=1000000000"], "n_nodes"),
    ("graph-heat", ["n_nodes=20000", "radius=1.5"], "radius"),
    ("graph-scale", ["grid_size=1000000"], "grid_size"),
    ("graph-scale", ["n_nodes=1000000000"], "n_nodes"),
    ("thermo-limits", ["particle_counts=100,10000000000"], "particle_counts"),
    ("thermo-limits", ["n_times=10000000"], "n_times"),
    ("gan-optimizers", ["final_samples=10000000000"], "final_samples"),
    ("gan-geometry", ["heatmap_points=1000000"], "heatmap_points"),
    (
        "gan-geometry",
        ["concentration_sizes=16,100000000", "concentration_reference=1000000000"],
        "concentration_sizes",
    ),
    ("dot-toy", ["n_eval=1000000"], "n_eval"),
    ("dot-digits", ["n_eval=100000000"], "n_eval"),
]

# values that do not parse as the field's type or choice
TYPE_CASES = [
    ("graph-heat", ["method=euler"], "method"),
    ("graph-heat", ["n_nodes=2.5"], "n_nodes"),
    ("graph-inverse", ["draws=many"], "draws"),
    ("gan-optimizers", ["natural_solver=foo"], "natural_solver"),
    ("gan-optimizers", ["optimizers=rmsprop"], "optimizers"),
    ("gan-optimizers", ["activation=foo"], "activation"),
    ("gan-geometry", ["divergences=tv"], "divergences"),
    ("dot-toy", ["datasets=foo"], "datasets"),
    ("dot-toy", ["lr_schedule=cosine"], "lr_schedule"),
    ("dot-toy", ["betas=0.5"], "betas"),
    ("dot-digits", ["loss=foo"], "loss"),
]

ALL_CASES = RANGE_CASES + MEMORY_CASES + TYPE_CASES


@pytest.fixture(autouse=True)
def memory_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    """A fixed limit, so that no verdict depends on this machine's free memory."""
    monkeypatch.setenv("OTTOKIT_MEMORY_LIMIT", "8G")


def _case_id(case: tuple[str, list[str], str]) -> str:
    return f"{case[0]}:{'+'.join(case[1])}"


@pytest.mark.parametrize("name", [e.name for e in all_experiments()])
@pytest.mark.parametrize("preset", ["quick", "paper"])
def test_every_preset_validates(name: str, preset: str) -> None:
    cfg = get(name).preset(preset)
    assert validate_config(cfg) is cfg


@pytest.mark.parametrize("name", [e.name for e in all_experiments()])
def test_every_config_field_has_a_meaning(name: str) -> None:
    cls = get(name).config_cls
    assert issubclass(cls, ValidatedConfig)
    missing = [
        f.name
        for f in dataclasses.fields(cls)
        if f.init and not (f.metadata.get("spec") and f.metadata["spec"].doc.strip())
    ]
    assert missing == []


@pytest.mark.parametrize("case", RANGE_CASES + MEMORY_CASES, ids=_case_id)
def test_api_refuses_with_the_key(case: tuple[str, list[str], str]) -> None:
    name, sets, key = case
    with pytest.raises(ConfigError) as info:
        apply_overrides(get(name).preset("quick"), sets)
    assert info.value.key == key
    message = str(info.value)
    assert message.startswith(f"{key} = ") and "\n" not in message
    assert "must be" in message or "needs about" in message


@pytest.mark.parametrize("case", ALL_CASES, ids=_case_id)
def test_cli_refuses_in_one_line_before_any_run_directory(
    tmp_path: Path, case: tuple[str, list[str], str]
) -> None:
    name, sets, key = case
    args = ["run", name, "--out", str(tmp_path)]
    for item in sets:
        args += ["--set", item]
    result = runner.invoke(cli.app, args)
    assert result.exit_code == 2, result.output
    (line,) = result.stderr.strip().splitlines()
    if case in TYPE_CASES:
        assert line.startswith(f"error: --set {key}: expected ")
    elif case in MEMORY_CASES:
        assert line.startswith(f"error: {key} = ")
        assert "needs about" in line and "8.0 GiB is available" in line and "lower" in line
    else:
        assert line.startswith(f"error: {key} = ") and "must be" in line and "(e.g. " in line
    assert "Traceback" not in result.output
    assert not any(tmp_path.iterdir())


def test_the_example_in_each_message_is_itself_valid() -> None:
    """Following the suggestion ``(e.g. key=value)`` fixes the key that was named."""
    fixed = 0
    for name, sets, key in RANGE_CASES:
        base = get(name).preset("quick")
        with pytest.raises(ConfigError) as info:
            apply_overrides(base, sets)
        example = str(info.value).rsplit("(e.g. ", 1)[1].rstrip(")")
        assert example.startswith(f"{key}=")
        others = [s for s in sets if not s.startswith(f"{key}=")]
        try:
            apply_overrides(base, [*others, example])
        except ConfigError as err:
            assert err.key != key, f"{name} {sets}: the example {example} is refused: {err}"
        fixed += 1
    assert fixed == len(RANGE_CASES)


def test_seed_and_device_flags_are_checked(tmp_path: Path) -> None:
    cases = [
        (["--seed", "-1"], "error: --seed = -1: must be an integer >= 0"),
        (["--device", "banana"], "error: unknown device 'banana'; allowed: cpu, cuda or cuda:N"),
        # --set reaches the same two checks
        (["--set", "seed=-3"], "error: seed = -3: must be an integer >= 0"),
        (["--set", "device=banana"], "error: device = banana: must be cpu, cuda or cuda:N"),
    ]
    for name in ("graph-heat", "diffusion-tradeoff"):
        for args, message in cases:
            result = runner.invoke(cli.app, ["run", name, *args, "--out", str(tmp_path)])
            assert result.exit_code == 2
            assert result.stderr.startswith(message), result.stderr
    assert not any(tmp_path.iterdir())


def test_toml_config_file_is_validated_alike(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("temperature = 0.0\n")
    out = tmp_path / "runs"
    result = runner.invoke(
        cli.app, ["run", "thermo-limits", "--config", str(path), "--out", str(out)]
    )
    assert result.exit_code == 2
    assert result.stderr.startswith("error: temperature = 0.0: must be a number > 0")
    assert not out.exists()


def test_a_mutated_config_is_refused_before_the_run_directory(tmp_path: Path) -> None:
    exp = get("graph-heat")
    cfg = exp.preset("quick")
    cfg.n_nodes = 1
    with pytest.raises(ConfigError, match="n_nodes = 1"):
        run_experiment(exp, cfg, out_root=tmp_path)
    assert not any(tmp_path.iterdir())


def test_memory_refusal_names_the_estimate_and_the_override(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(ConfigError) as info:
        apply_overrides(get("graph-scale").preset("quick"), ["grid_size=1000000"])
    message = str(info.value)
    assert "TiB but 8.0 GiB is available; lower grid_size" in message
    assert "OTTOKIT_MEMORY_LIMIT=off" in message
    monkeypatch.setenv("OTTOKIT_MEMORY_LIMIT", "off")
    cfg = apply_overrides(get("graph-scale").preset("quick"), ["grid_size=1000000"])
    assert cfg.grid_size == 1_000_000


def test_distance_cdf_of_two_uniform_points_in_the_square() -> None:
    # continuity at 1, the total mass at sqrt 2, and a Monte-Carlo estimate
    assert distance_cdf(1.0) == pytest.approx(math.pi - 13.0 / 6.0, abs=1e-15)
    assert distance_cdf(1.0 + 1e-12) == pytest.approx(distance_cdf(1.0), abs=1e-10)
    assert distance_cdf(math.sqrt(2.0) - 1e-9) == pytest.approx(1.0, abs=1e-8)
    rng = np.random.default_rng(0)
    d = np.linalg.norm(rng.random((400_000, 2)) - rng.random((400_000, 2)), axis=1)
    for r in (0.05, 0.1, 0.3, 0.7, 1.0, 1.2, 1.35):
        empirical = float(np.mean(d <= r))
        sigma = math.sqrt(empirical * (1 - empirical) / d.size)
        assert distance_cdf(r) == pytest.approx(empirical, abs=5 * sigma + 1e-6)


def test_expected_degree_matches_a_built_graph() -> None:
    from ottokit.graph import random_geometric

    degrees = [random_geometric(500, 0.1, seed=s).mean_degree() for s in range(4)]
    assert np.mean(degrees) == pytest.approx(expected_degree(500, 0.1), rel=0.05)


def test_config_choices_match_the_library() -> None:
    assert typing.get_args(dot_toy.ToyName) == TOY_2D_NAMES
    assert typing.get_args(dot_digits.LossName) == LOSSES
    hints = typing.get_type_hints(gan_optimizers.GanOptimizersConfig)
    assert typing.get_args(hints["natural_solver"]) == SOLVERS
    assert len(digits("train")[0]) == dot_digits.DIGITS_TRAIN
    assert len(digits("test")[0]) == dot_digits.DIGITS_TEST

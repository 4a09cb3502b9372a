"""dot-digits (seed 003, 8 x 8 images) on tiny settings.

The experiment runs once (module fixture) through ``run(config, tmp_path)``; the tests
check the result's structure and recompute its numbers independently: the FID-like of the
generator equals ``digits_fid`` recomputed from the saved images with the cached extractor;
IS-like lies in [1, 10].
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from ottokit.dot import ProbabilityOutputWarning
from ottokit.experiments import get
from ottokit.experiments._dot_common import Streams
from ottokit.experiments._runner import to_jsonable
from ottokit.experiments.dot_digits import METHODS as DIGIT_METHODS
from ottokit.experiments.dot_digits import DotDigitsConfig
from ottokit.experiments.dot_digits import run as run_digits
from ottokit.experiments.dot_toy import DotToyConfig
from ottokit.gan.nets import ConvDiscriminator8, ConvGenerator8
from ottokit.gan.train import restore_checkpoint
from ottokit.metrics import DigitsFeatures, digits_fid
from ottokit.priors import Prior

DIGITS = replace(
    DotDigitsConfig.quick(),
    seeds=(0,),
    g_width=8,
    d_width=8,
    train_steps=20,
    n_eval=200,
    drs_pilot=200,
    mh_proposals=5,
    ddls_steps=3,
    dot_steps=5,
    sweep_steps=(2, 5),
    sweep_lrs=(0.01,),
    n_calibration=100,
    features_epochs=2,
    critic_steps=10,
)


@pytest.fixture(scope="module")
def dig(tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("dot_digits")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = run_digits(DIGITS, out)
    prob = [w for w in caught if issubclass(w.category, ProbabilityOutputWarning)]
    return result, out, prob


def test_digits_result_structure(dig) -> None:
    result, out, _ = dig
    assert result.experiment == "dot-digits"
    for rel in result.figures.values():
        assert Path(rel).is_file() or (out / rel).is_file()
    table = result.metrics["table"]
    assert set(table) == set(DIGIT_METHODS)
    for method in DIGIT_METHODS:
        for key in ("fid", "is", "precision", "recall", "samples_per_s"):
            assert math.isfinite(table[method][key]["mean"]), (method, key)
        assert 1.0 <= table[method]["is"]["mean"] <= 10.0
        assert 0.0 <= table[method]["precision"]["mean"] <= 1.0
        assert table[method]["fid"]["mean"] >= 0.0
    seed_rows = [
        c for c in result.comparisons if c.seed is not None and not c.quantity.startswith("sweep")
    ]
    assert {c.quantity.split(":")[0] for c in seed_rows} == {"CIFAR-10", "STL-10", "ImageNet"}
    assert len(result.checks) == 3
    json.dumps(to_jsonable(result.metrics))


def test_digits_fid_matches_independent_recomputation(dig) -> None:
    from ottokit.data import digits

    result, out, _ = dig
    seed = DIGITS.seed + DIGITS.seeds[0]
    feats = DigitsFeatures(cache_dir=out / "features", epochs=DIGITS.features_epochs)
    assert feats.from_cache
    saved = np.load(out / "samples" / f"digits-seed{seed}.npz")
    x_test, _ = digits("test")
    expected = digits_fid(saved["generator"], x_test, feats)
    assert result.metrics["table"]["generator"]["fid"]["mean"] == pytest.approx(expected)
    # latent DOT with the normal prior moves along spheres: G(z_T) has the generator's shape
    assert saved["DOT_latent"].shape == saved["generator"].shape == (DIGITS.n_eval, 1, 8, 8)
    assert np.abs(saved["DOT_target"]).max() <= 1.0
    # the samples come from the checkpointed generator average, not the last iterate
    assert DIGITS.ema_decay > 0
    G, D = ConvGenerator8(DIGITS.latent_dim, DIGITS.g_width), ConvDiscriminator8(DIGITS.d_width)
    E = ConvGenerator8(DIGITS.latent_dim, DIGITS.g_width)
    restore_checkpoint(out / "checkpoints" / f"digits-seed{seed}", G, D, generator_ema=E)
    gen = torch.Generator().manual_seed(Streams.from_seed(seed).latents)
    z0 = Prior("normal", (DIGITS.latent_dim,)).sample(DIGITS.n_eval, generator=gen)
    with torch.no_grad():
        np.testing.assert_allclose(E.eval()(z0).numpy(), saved["generator"], atol=1e-6)
        last = G.eval()(z0).numpy()
    assert np.abs(last - saved["generator"]).max() > 1e-3
    assert result.metrics["runs"][0]["train"]["critic_fit"]["steps"] == DIGITS.critic_steps
    assert DIGITS.ratio_steps == 0  # the rivals read the GAN's own (fine-tuned) D
    assert "ratio_fit" not in result.metrics["runs"][0]["diagnostics"]
    run0 = result.metrics["runs"][0]["train"]["last_iterate"]
    assert run0["fid"] == pytest.approx(digits_fid(last, x_test, feats), rel=1e-6)


def test_digits_sweep_cell_reproduces_the_main_dot_latent_row(dig) -> None:
    result, _, _ = dig
    rows = result.metrics["sweep"]
    assert [(r["lr"], r["steps"]) for r in rows] == [(0.01, 2), (0.01, 5)]
    # the cell (dot_lr, dot_steps) reruns the main latent DOT on the same nets and latents
    cell = rows[1]
    assert (cell["lr"], cell["steps"]) == (DIGITS.dot_lr, DIGITS.dot_steps)
    main = result.metrics["table"]["DOT latent"]
    assert cell["fid"]["mean"] == pytest.approx(main["fid"]["mean"], rel=1e-9)
    assert cell["is"]["mean"] == pytest.approx(main["is"]["mean"], rel=1e-9)
    # every cell moved the latents (and so the images) away from the start
    for r in rows:
        assert r["mean_latent_displacement"]["mean"] > 0
        assert r["mean_image_displacement"]["mean"] > 0
    sweep_rows = [c for c in result.comparisons if c.quantity.startswith("sweep:")]
    assert len(sweep_rows) == 2
    assert "Latent-DOT sweep" in result.summary


def test_digits_hinge_logits_raise_no_probability_warning(dig) -> None:
    _, _, prob = dig
    assert prob == []


def test_presets_and_registration() -> None:
    assert len(DotDigitsConfig.paper().seeds) >= 3
    assert 10 <= DotDigitsConfig.paper().dot_steps <= 100
    exp = get("dot-digits")
    assert exp.seed_id == "003" and exp.seed_file == "003_2d1dd43e5c2336b5.txt"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"n_eval": 10}, "n_eval"),
        ({"loss": "l2"}, "loss = l2: must be one of 'ns'"),
        ({"ratio_steps": -2}, "ratio_steps"),
        ({"critic_steps": -1}, "critic_steps"),
        ({"ema_decay": 1.0}, "ema_decay"),
        ({"g_width": 1}, "g_width"),
        ({"dot_lr": 0.0}, "dot_lr"),
        ({"sweep_steps": (0, 5)}, "sweep_steps"),
        ({"sweep_lrs": (-0.01,)}, "sweep_lrs"),
    ],
)
def test_digits_config_errors(tmp_path: Path, changes: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        run_digits(replace(DotDigitsConfig.quick(), **changes), tmp_path)


def test_wrong_config_type(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="DotDigitsConfig"):
        run_digits(DotToyConfig.quick(), tmp_path)

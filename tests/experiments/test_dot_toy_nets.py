"""The dot-toy networks shipped with ottokit: provenance, checksum, quality, and retraining.

* every shipped file is the architecture of the original DOT code (REFERENCE.md "Seed 003"),
  float32, a few MB, and its SHA-256 is the one its provenance records;
* a copy with one flipped byte is refused (before anything is unpickled), and so is a copy
  whose provenance was edited to match the corruption (the file's own checksum);
* the shipped 25-Gaussian generator covers >= 24 of 25 modes with >= 70 % of its samples
  within 4 sigma of a mode, on a fixed sample that is not the one it was selected on;
* ``train_networks`` with the shipped recipe is deterministic on the CPU: a tiny budget
  run twice gives identical networks, so the paper preset's seed 0 retrains the shipped ones.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from ottokit._torchio import CheckpointError
from ottokit.data import toy_2d
from ottokit.experiments.dot_toy import DotToyConfig
from ottokit.experiments.dot_toy import run as run_toy
from ottokit.experiments.dot_toy.pretrained import (
    Recipe,
    load_shipped,
    shipped_names,
    train_networks,
)
from ottokit.metrics import toy_metrics
from ottokit.ot import w2

SHIPPED = shipped_names()


def test_the_original_data_sets_ship() -> None:
    assert {"25gaussians", "swissroll"} <= set(SHIPPED)


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_weights_are_the_original_architecture_and_verified(name: str) -> None:
    nets = load_shipped(name)
    meta = nets.provenance
    path = Path(__file__).resolve().parents[2] / "src/ottokit/experiments/dot_toy/weights"
    data = (path / f"{name}.pt").read_bytes()
    assert hashlib.sha256(data).hexdigest() == meta["file_sha256"] == nets.sha256
    assert len(data) < 4 * 2**20  # a few MB
    G, D = nets.generator, nets.critic
    widths = [m.out_features for m in G.modules() if isinstance(m, torch.nn.Linear)]
    assert widths == [256, 256, 256, 2] and G.activation == "leaky_relu"
    widths = [m.out_features for m in D.modules() if isinstance(m, torch.nn.Linear)]
    assert widths == [512, 512, 512, 1] and D.activation == "leaky_relu"
    assert all(p.dtype == torch.float32 and not p.requires_grad for p in G.parameters())
    assert meta["dataset"] == name and meta["seed"] >= 0 and len(meta["commit"]) == 40
    assert meta["curve"][-1]["step"] == meta["steps"]  # the shipped state ends the curve
    assert meta["recipe"]["gp_weight"] == 0.1 and meta["recipe"]["n_critic"] == 5


def _corrupt_copy(tmp_path: Path, name: str) -> Path:
    src = Path(__file__).resolve().parents[2] / "src/ottokit/experiments/dot_toy/weights"
    for ext in (".pt", ".json"):
        shutil.copy(src / f"{name}{ext}", tmp_path / f"{name}{ext}")
    path = tmp_path / f"{name}.pt"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    return path


def test_a_corrupted_copy_is_refused(tmp_path: Path) -> None:
    _corrupt_copy(tmp_path, "25gaussians")
    with pytest.raises(CheckpointError, match="corrupt.*does not match the recorded"):
        load_shipped("25gaussians", tmp_path)
    # provenance edited to the corrupted file's hash: the file's own checksum still refuses it
    meta_path = tmp_path / "25gaussians.json"
    meta = json.loads(meta_path.read_text())
    meta["file_sha256"] = hashlib.sha256((tmp_path / "25gaussians.pt").read_bytes()).hexdigest()
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="corrupt"):
        load_shipped("25gaussians", tmp_path)
    with pytest.raises(ValueError, match="retrain=true"):
        load_shipped("8gaussians", tmp_path / "nowhere")


def test_shipped_25gaussians_generator_meets_the_quality_targets() -> None:
    G = load_shipped("25gaussians").generator
    z = 2 * torch.rand(5000, 2, generator=torch.Generator().manual_seed(2024)) - 1
    with torch.no_grad():
        x = G(z).double().numpy()
    data = toy_2d("25gaussians", 10, seed=0)
    m = toy_metrics(x, data.modes, data.sigma)
    assert m["modes_covered"] >= 24
    assert m["high_quality_fraction"] >= 0.70


def test_shipped_swissroll_generator_is_near_the_data() -> None:
    # W2 to the data within 30 % of the sampling floor W2(data, data') of two independent data
    # samples of the same size (the 1,500-step snapshot of the same run is 44 % above it)
    G = load_shipped("swissroll").generator
    z = 2 * torch.rand(2000, 2, generator=torch.Generator().manual_seed(2024)) - 1
    with torch.no_grad():
        x = G(z).double().numpy()
    a = toy_2d("swissroll", 2000, seed=11).points
    b = toy_2d("swissroll", 2000, seed=12).points
    floor = float(w2(a, b))
    assert float(w2(x, a)) <= 1.3 * floor


def test_retraining_is_deterministic_on_a_tiny_budget(tmp_path: Path) -> None:
    recipe = Recipe(g_hidden=(8,), d_hidden=(8,), n_train=512, batch_size=64, lr=1e-3,
                    lr_schedule="linear")  # fmt: skip
    runs = [train_networks("swissroll", recipe, 6, seed=5)[0] for _ in range(2)]
    for a, b in zip(runs[0].parameters(), runs[1].parameters(), strict=True):
        assert torch.equal(a, b)
    first = [p.detach().clone() for p in runs[0].parameters()]
    other = train_networks("swissroll", recipe, 6, seed=6)[0]
    assert any(not torch.equal(a, b) for a, b in zip(first, other.parameters(), strict=True))
    assert np.isfinite([float(p.abs().sum()) for p in first]).all()


def test_post_processing_datasets_without_weights_asks_to_retrain(tmp_path: Path) -> None:
    missing = [d for d in ("25gaussians", "swissroll", "8gaussians") if d not in SHIPPED]
    if not missing:
        pytest.skip("every data set ships weights")
    with pytest.raises(ValueError, match="retrain"):
        run_toy(replace(DotToyConfig.quick(), datasets=(missing[0],)), tmp_path)

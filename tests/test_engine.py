"""The training engine: verified checkpoints, the resume rule, and the state round trip."""

from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path

import pytest
import torch
from torch import nn

from ottokit._torchio import save_atomic, save_verified
from ottokit.engine import (
    CHECKPOINT_FORMAT,
    CheckpointError,
    TrainState,
    check_resume,
    data_fingerprint,
    load_checkpoint,
    resume_from,
    save_checkpoint,
)
from ottokit.flowmatch import CondOT, TrainConfig, train_velocity


def _state(seed: int = 0) -> TrainState:
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1))
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    net(torch.randn(5, 3)).sum().backward()
    opt.step()
    rng = torch.Generator().manual_seed(seed)
    return TrainState(
        step=3, rng=rng, networks={"net": net}, optimizers={"net": opt},
        history={"loss": [1.0, 0.5, 0.25]}, wall_time=1.5,
    )


def _save(path: Path, state: TrainState) -> None:
    save_checkpoint(path, "toy", state, {"lr": 1e-3}, {"data": "x"})


def test_state_round_trip_restores_everything(tmp_path: Path) -> None:
    a = _state(0)
    a.rng.manual_seed(7)
    torch.rand(3, generator=a.rng)
    _save(tmp_path / "toy.pt", a)
    ck = load_checkpoint(tmp_path / "toy.pt", "toy", networks=a.networks)
    assert ck["format"] == CHECKPOINT_FORMAT and ck["world_size"] == 1
    b = _state(1)
    b.load_state_dict(ck["state"])
    assert b.step == 3 and b.history == {"loss": [1.0, 0.5, 0.25]} and b.wall_time == 1.5
    for p, q in zip(a.networks["net"].parameters(), b.networks["net"].parameters(), strict=True):
        assert torch.equal(p, q)
    assert torch.equal(torch.rand(4, generator=a.rng), torch.rand(4, generator=b.rng))
    sa, sb = a.optimizers["net"].state_dict(), b.optimizers["net"].state_dict()
    for k in sa["state"]:
        assert torch.equal(sa["state"][k]["exp_avg"], sb["state"][k]["exp_avg"])


def _flip_inside_weight(path: Path, weight: torch.Tensor) -> None:
    """Flip 8 bits in the stored bytes of ``weight`` (found in the file)."""
    raw = bytearray(path.read_bytes())
    needle = weight.detach().contiguous().numpy().tobytes()
    at = raw.find(needle)
    assert at >= 0, "the weight's bytes are stored verbatim"
    raw[at + len(needle) // 2] ^= 0xFF
    path.write_bytes(bytes(raw))


def test_flipped_bits_inside_a_tensor_are_refused(tmp_path: Path) -> None:
    s = _state()
    path = tmp_path / "toy.pt"
    _save(path, s)
    _flip_inside_weight(path, s.networks["net"][0].weight)
    with pytest.raises(CheckpointError, match="SHA-256 .* does not match"):
        load_checkpoint(path, "toy")


def _payload(s: TrainState, **changes) -> dict:
    state = s.state_dict()
    state.update(changes)
    return {"format": CHECKPOINT_FORMAT, "kind": "toy", "version": "x", "world_size": 1,
            "state": state, "config": {}, "fingerprint": {}}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("nan", "non-finite"),
        ("shape", "different net architecture"),
        ("step", "step='twenty'"),
        ("negative_step", "step=-1"),
        ("kind", "expected a 'toy' checkpoint"),
        ("format", "format 1"),
        ("history", "history"),
        ("missing", "missing"),
        ("type", "not a tensor"),
    ],
)
def test_nonsense_contents_are_refused_even_with_a_valid_checksum(
    change: str, message: str, tmp_path: Path
) -> None:
    s = _state()
    payload = _payload(s)
    net = payload["state"]["networks"]["net"]
    if change == "nan":
        net["0.weight"] = net["0.weight"].clone().fill_(float("nan"))
    elif change == "shape":
        net["0.weight"] = torch.zeros(5, 3)
    elif change == "step":
        payload["state"]["step"] = "twenty"
    elif change == "negative_step":
        payload["state"]["step"] = -1
    elif change == "kind":
        payload["kind"] = "gan"
    elif change == "format":
        payload["format"] = 1
    elif change == "history":
        payload["state"]["history"] = {"loss": torch.zeros(2, 2)}
    elif change == "missing":
        del payload["state"]["rng"]
    elif change == "type":
        net["0.weight"] = [1.0, 2.0]
    path = tmp_path / "toy.pt"
    save_verified(path, payload)
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(path, "toy", networks=s.networks)


def test_old_unverified_checkpoints_are_refused_with_the_reason(tmp_path: Path) -> None:
    path = tmp_path / "last.pt"
    torch.save({"format": 1, "model": {}, "step": 3}, path)
    with pytest.raises(CheckpointError, match="no checksum .* older ottokit"):
        load_checkpoint(path, "velocity")


def test_writers_use_unique_temporary_names(tmp_path: Path, monkeypatch) -> None:
    seen: list[str] = []
    real_replace = os.replace

    def spy(src, dst):
        seen.append(Path(src).name)
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", spy)
    for _ in range(3):
        save_atomic(tmp_path / "ck.pt", {"w": torch.ones(1)})
    assert len(set(seen)) == 3
    assert all(n.startswith(".ck.pt.") and n.endswith(".tmp") for n in seen)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck.pt"]


def test_resume_rule() -> None:
    for bad in (True, False, "yes", None):
        with pytest.raises(ValueError, match="resume must be one of"):
            check_resume(bad)
    with pytest.raises(ValueError, match="True/False meant different things"):
        check_resume(True)
    assert resume_from(None, "auto") is False and resume_from(None, "never") is False
    with pytest.raises(CheckpointError, match="needs a checkpoint_dir"):
        resume_from(None, "require")


def test_resume_rule_is_the_same_for_both_trainers(tmp_path: Path) -> None:
    data = torch.randn(64, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    cfg = TrainConfig(n_steps=4, batch_size=16, hidden=8, depth=1, time_dim=4,
                      checkpoint_every=2, dtype="float64")
    first = train_velocity(CondOT(), data, cfg, checkpoint_dir=tmp_path, resume="never")
    assert first.resumed_from is None
    again = train_velocity(CondOT(), data, cfg, checkpoint_dir=tmp_path, resume="auto")
    assert again.resumed_from == 4
    again = train_velocity(CondOT(), data, cfg, checkpoint_dir=tmp_path, resume="require")
    assert again.resumed_from == 4
    fresh = train_velocity(CondOT(), data, cfg, checkpoint_dir=tmp_path, resume="never")
    assert fresh.resumed_from is None and torch.equal(fresh.losses, first.losses)
    ck = load_checkpoint(tmp_path / "velocity.pt", "velocity")
    assert ck["config"] == asdict(cfg)
    assert ck["fingerprint"]["data"] == data_fingerprint(data)
    assert data_fingerprint(data) != data_fingerprint(data + 1e-12)

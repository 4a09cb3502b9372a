"""Shared torch helpers: thread count restored, atomic checkpoints, strict loading."""

from __future__ import annotations

import pytest
import torch

from ottokit._torchio import CheckpointError, load_state, save_atomic, torch_threads


def test_torch_threads_sets_and_restores_even_on_error():
    before = torch.get_num_threads()
    with pytest.raises(RuntimeError, match="boom"), torch_threads(1):
        assert torch.get_num_threads() == 1
        raise RuntimeError("boom")
    assert torch.get_num_threads() == before
    with torch_threads(None), torch_threads(0), torch_threads(1, "meta"):
        assert torch.get_num_threads() == before


def test_save_atomic_round_trip_and_load_errors(tmp_path):
    path = tmp_path / "ck.pt"
    state = {"format": 2, "kind": "toy", "w": torch.arange(3.0)}
    save_atomic(path, state)
    assert not (tmp_path / "ck.pt.tmp").exists()
    got = load_state(path, what="toy", required=["w"], fmt=2, kind="toy")
    assert torch.equal(got["w"], state["w"])
    with pytest.raises(CheckpointError, match="no toy checkpoint"):
        load_state(tmp_path / "none.pt", what="toy", required=["w"], fmt=2)
    with pytest.raises(CheckpointError, match=r"missing \['v'\]"):
        load_state(path, what="toy", required=["v"], fmt=2)
    with pytest.raises(CheckpointError, match="not a toy checkpoint"):
        load_state(path, what="toy", required=["w"], fmt=2, kind="other")
    with pytest.raises(CheckpointError, match="format 2, expected 3"):
        load_state(path, what="toy", required=["w"], fmt=3)
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="corrupt or unreadable"):
        load_state(tmp_path / "bad.pt", what="toy", required=["w"], fmt=2)

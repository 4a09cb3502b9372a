"""Data-parallel training on 2 gloo ranks equals a single-process run with the same global
batch; resume under DDP is bit-identical; a failing rank fails the job."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from _ranks import run_ranks
from torch import nn

from ottokit import distributed
from ottokit.flowmatch import CondOT, TrainConfig, train_velocity
from ottokit.gan import GANTrainConfig, MLPDiscriminator, MLPGenerator, build_seeded, train_gan
from ottokit.gan.losses import make_loss
from ottokit.gan.train import load_gan_checkpoint

FM = TrainConfig(
    n_steps=6, batch_size=32, hidden=16, depth=2, time_dim=8, checkpoint_every=3, seed=2,
    dtype="float64",
)


def _fm_data() -> torch.Tensor:
    return torch.randn(100, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)


def _velocity(rank: int, coupling: str) -> dict:
    cfg = TrainConfig(**{**FM.__dict__, "coupling": coupling})
    res = train_velocity(CondOT(), _fm_data(), cfg)
    return {"params": [p.detach().clone() for p in res.model.parameters()], "losses": res.losses}


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-300))


@pytest.mark.parametrize("coupling", ["independent", "ot"])
def test_ddp_velocity_training_equals_single_process(coupling: str) -> None:
    ranks = run_ranks(_velocity, coupling)
    single = _velocity(0, coupling)
    for r in ranks:
        for p, q in zip(r["params"], single["params"], strict=True):
            assert _rel(p, q) < 1e-10
        assert _rel(r["losses"], single["losses"]) < 1e-10
    for p, q in zip(ranks[0]["params"], ranks[1]["params"], strict=True):
        assert torch.equal(p, q)  # DDP keeps the replicas identical


def _gan_nets() -> tuple[nn.Module, nn.Module]:
    G = build_seeded(0, lambda: MLPGenerator(3, (16,), 2)).double()
    D = build_seeded(1, lambda: MLPDiscriminator(2, (16,), spectral_norm=True)).double()
    return G, D


GAN = dict(
    steps=6, batch_size=16, n_critic=2, eval_every=3, eval_samples=64, checkpoint_every=3,
    seed=5, lr_schedule="linear", ema_decay=0.5, prior="uniform",
)


def _gan(rank: int, ckpt: str | None = None, crash_at: int | None = None) -> dict:
    G, D = _gan_nets()
    data = torch.randn(64, 2, generator=torch.Generator().manual_seed(3), dtype=torch.float64)

    def crash(step: int, record: dict) -> None:
        if step == crash_at:
            raise KeyboardInterrupt

    try:
        res = train_gan(
            G, D, make_loss("wgan-gp", gp_weight=1.0), data,
            g_optimizer=torch.optim.Adam(G.parameters(), 1e-2, betas=(0.5, 0.9)),
            d_optimizer=torch.optim.Adam(D.parameters(), 1e-2, betas=(0.5, 0.9)),
            config=GANTrainConfig(**GAN), checkpoint_dir=ckpt,
            callback=crash if crash_at else None,
        )
    except KeyboardInterrupt:
        return {"crashed": True}
    return {
        "params": [p.detach().clone() for p in (*G.parameters(), *D.parameters())],
        "buffers": [b.clone() for b in D.buffers()],
        "ema": [p.detach().clone() for p in res.generator_ema.parameters()],
        "history": res.history,
        "resumed_from": res.resumed_from,
    }


def test_ddp_gan_training_equals_single_process_and_resumes_bit_identically() -> None:
    """WGAN-GP with spectral norm, EMA and a linear schedule on 2 ranks vs 1 process."""
    single = _gan(0)
    with tempfile.TemporaryDirectory() as tmp:
        straight = run_ranks(_gan)
        crashed = run_ranks(_gan, tmp, 5)
        assert all(r == {"crashed": True} for r in crashed)
        ck = load_gan_checkpoint(tmp)
        assert ck["step"] == 3 and ck["world_size"] == 2
        resumed = run_ranks(_gan, tmp)
    for r in straight:
        for key in ("params", "buffers", "ema"):
            for p, q in zip(r[key], single[key], strict=True):
                assert _rel(p, q) < 1e-9, key
        for key in ("g_loss", "d_loss", "eval_w1"):
            assert _rel(r["history"][key], single["history"][key]) < 1e-9, key
    for a, b in zip(resumed, straight, strict=True):
        assert a["resumed_from"] == 3
        for key in ("params", "buffers", "ema"):
            assert all(torch.equal(p, q) for p, q in zip(a[key], b[key], strict=True)), key
        for key in ("g_loss", "d_loss", "eval_step", "eval_w1"):
            assert torch.equal(a["history"][key], b["history"][key]), key


def _odd_batch(rank: int) -> str:
    try:
        train_velocity(CondOT(), _fm_data(), TrainConfig(**{**FM.__dict__, "batch_size": 31}))
    except ValueError as err:
        return str(err)
    return ""


def _raising_rank(rank: int) -> None:
    if rank == 1:
        raise RuntimeError("rank 1 lost its data")
    train_velocity(CondOT(), _fm_data(), FM)


def test_batch_must_split_evenly_and_a_failing_rank_fails_the_job() -> None:
    for message in run_ranks(_odd_batch):
        assert "multiple of 2" in message
    with pytest.raises(mp.ProcessRaisedException, match="rank 1 lost its data"):
        run_ranks(_raising_rank, timeout=5.0)


def test_single_process_slice_is_everything() -> None:
    assert not distributed.is_distributed()
    assert Path(".").exists()

"""The cache of trained networks: a hit restores exactly what training gives, the key sees
every input, damaged entries are retrained, and the cache can be switched off."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch

from ottokit import cache
from ottokit.flowmatch import CondOT, Cosine, TrainConfig, train_velocity
from ottokit.gan import GANTrainConfig, MLPDiscriminator, MLPGenerator, build_seeded, train_gan

CFG = TrainConfig(n_steps=6, batch_size=16, hidden=8, depth=1, time_dim=4, checkpoint_every=3,
                  dtype="float64")


@pytest.fixture(autouse=True)
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "cache"
    monkeypatch.setenv("OTTOKIT_CACHE_DIR", str(root))
    monkeypatch.delenv("OTTOKIT_CACHE", raising=False)
    cache.reset_events()
    return root


def _data(scale: float = 1.0) -> torch.Tensor:
    return scale * torch.randn(50, 2, generator=torch.Generator().manual_seed(0),
                               dtype=torch.float64)


def _same(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    return all(torch.equal(p, q) for p, q in zip(a.state_dict().values(),
                                                 b.state_dict().values(), strict=True))


def test_digest_sees_values_not_layout() -> None:
    a = {"x": torch.tensor([1.0, 2.0]), "y": [1, 0.1, "s"], "z": None}
    assert cache.digest(a) == cache.digest(dict(reversed(list(a.items()))))
    assert cache.digest(a) != cache.digest({**a, "y": [1, 0.1 + 1e-17 + 2**-55, "s"]})
    assert cache.digest(torch.zeros(2)) != cache.digest(torch.zeros(2, dtype=torch.float64))
    assert cache.digest(torch.zeros(2, 1)) != cache.digest(torch.zeros(1, 2))
    assert cache.digest(1) != cache.digest(1.0) != cache.digest(True)


def test_a_hit_restores_exactly_the_trained_velocity(tmp_path: Path) -> None:
    first = train_velocity(CondOT(), _data(), CFG, cache={})
    second = train_velocity(CondOT(), _data(), CFG, checkpoint_dir=tmp_path / "ck", cache={})
    assert (first.cached, second.cached) == (False, True)
    assert _same(first.model, second.model) and torch.equal(first.losses, second.losses)
    assert (tmp_path / "ck" / "velocity.pt").is_file()  # the run still gets its checkpoint
    assert [e.hit for e in cache.events()] == [False, True]
    (entry,) = cache.entries()
    assert entry.kind == "training" and "CondOT" in entry.label


@pytest.mark.parametrize(
    "change",
    ["lr", "data", "schedule", "seed", "caller", "steps"],
)
def test_every_input_is_in_the_key(change: str) -> None:
    train_velocity(CondOT(), _data(), CFG, cache={"target": "a"})
    kw = dict(schedule=CondOT(), data=_data(), config=CFG, cache={"target": "a"})
    if change == "lr":
        kw["config"] = TrainConfig(**{**CFG.__dict__, "lr": 2e-3})
    elif change == "data":
        kw["data"] = _data(1.0 + 1e-12)
    elif change == "schedule":
        kw["schedule"] = Cosine()
    elif change == "seed":
        kw["config"] = TrainConfig(**{**CFG.__dict__, "seed": 1})
    elif change == "caller":
        kw["cache"] = {"target": "b"}
    elif change == "steps":
        kw["config"] = TrainConfig(**{**CFG.__dict__, "n_steps": 7})
    assert not train_velocity(**kw).cached


def test_checkpoint_every_is_not_in_the_key() -> None:
    train_velocity(CondOT(), _data(), CFG, cache={})
    other = TrainConfig(**{**CFG.__dict__, "checkpoint_every": 2})
    assert train_velocity(CondOT(), _data(), other, cache={}).cached


def test_damaged_entries_are_retrained_never_used(caplog: pytest.LogCaptureFixture) -> None:
    first = train_velocity(CondOT(), _data(), CFG, cache={})
    (entry,) = cache.entries()
    raw = bytearray(entry.path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    entry.path.write_bytes(bytes(raw))
    with caplog.at_level(logging.WARNING, logger="ottokit.cache"):
        again = train_velocity(CondOT(), _data(), CFG, cache={})
    assert not again.cached and "is not used" in caplog.text
    assert _same(first.model, again.model)
    assert train_velocity(CondOT(), _data(), CFG, cache={}).cached  # stored afresh


def test_cache_off_and_clear(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTTOKIT_CACHE", "off")
    train_velocity(CondOT(), _data(), CFG, cache={})
    assert cache.entries() == [] and cache.events() == []
    monkeypatch.setenv("OTTOKIT_CACHE", "on")
    train_velocity(CondOT(), _data(), CFG)  # no cache= : not cached
    assert cache.entries() == []
    train_velocity(CondOT(), _data(), CFG, cache={})
    assert len(cache.entries()) == 1 and cache.clear() == 1 and cache.entries() == []


def _gan(ckpt: Path | None = None):
    G = build_seeded(0, lambda: MLPGenerator(3, (8,), 1)).double()
    D = build_seeded(1, lambda: MLPDiscriminator(1, (8,))).double()
    data = torch.randn(40, 1, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    return train_gan(
        G, D, "ns", data,
        g_optimizer=torch.optim.Adam(G.parameters(), 1e-3),
        d_optimizer=torch.optim.Adam(D.parameters(), 1e-3),
        config=GANTrainConfig(steps=5, batch_size=8, eval_every=2, eval_samples=30,
                              ema_decay=0.5),
        checkpoint_dir=ckpt, cache={"experiment": "test"},
    )


def test_a_gan_hit_restores_networks_average_and_history(tmp_path: Path) -> None:
    a, b = _gan(), _gan(tmp_path)
    assert (a.cached, b.cached) == (False, True) and (tmp_path / "gan.pt").is_file()
    for m, n in ((a.generator, b.generator), (a.discriminator, b.discriminator),
                 (a.generator_ema, b.generator_ema)):
        assert _same(m, n)
    assert a.history.keys() == b.history.keys()
    assert all(torch.equal(a.history[k], b.history[k]) for k in a.history)
    (entry,) = cache.entries()
    assert entry.label.startswith("GAN ") and "steps, seed" in entry.label


def test_a_label_entry_names_the_run_and_is_part_of_the_key() -> None:
    train_velocity(CondOT(), _data(), CFG, cache={"label": "first"})
    train_velocity(CondOT(), _data(), CFG, cache={"label": "second"})
    assert sorted(e.label for e in cache.entries()) == ["first", "second"]

"""Flow-matching training: what it learns, and checkpoint/resume determinism."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from ottokit.flowmatch import (
    CheckpointError,
    CondOT,
    Cosine,
    GaussianMixture,
    GaussianMixtureVelocity,
    TrainConfig,
    VelocityMLP,
    load_checkpoint,
    sample_backward,
    train_velocity,
)
from ottokit.flowmatch.train import CHECKPOINT_NAME

TINY = TrainConfig(
    n_steps=40, batch_size=64, hidden=16, depth=2, time_dim=8, checkpoint_every=20, seed=3
)


@pytest.fixture(scope="module")
def data() -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.randn(300, 2, generator=g, dtype=torch.float64) * torch.tensor(
        [0.5, 1.5], dtype=torch.float64
    )


@pytest.fixture(scope="module")
def straight(data):
    return train_velocity(CondOT(), data, TINY)


def _same_parameters(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    return all(
        torch.equal(p, q)
        for p, q in zip(a.state_dict().values(), b.state_dict().values(), strict=True)
    )


class _Crash(RuntimeError):
    pass


def test_resume_after_crash_is_bit_identical(data, straight, tmp_path: Path) -> None:
    """Train 2K steps straight vs. checkpoint at K, crash at 1.5K, resume to 2K."""

    def crash_at_30(step: int, loss: float) -> None:
        if step == 30:
            raise _Crash

    with pytest.raises(_Crash):
        train_velocity(CondOT(), data, TINY, checkpoint_dir=tmp_path, callback=crash_at_30)
    assert load_checkpoint(tmp_path / CHECKPOINT_NAME)["step"] == 20
    resumed = train_velocity(CondOT(), data, TINY, checkpoint_dir=tmp_path)
    assert resumed.resumed_from == 20 and resumed.step == 40
    assert _same_parameters(straight.model, resumed.model)
    assert torch.equal(straight.losses, resumed.losses)


def test_extending_n_steps_continues_the_same_run(data, straight, tmp_path: Path) -> None:
    half = TrainConfig(**{**TINY.__dict__, "n_steps": 20})
    first = train_velocity(CondOT(), data, half, checkpoint_dir=tmp_path)
    assert first.step == 20 and first.resumed_from is None
    rest = train_velocity(CondOT(), data, TINY, checkpoint_dir=tmp_path)
    assert rest.resumed_from == 20
    assert _same_parameters(straight.model, rest.model)
    again = train_velocity(CondOT(), data, TINY, checkpoint_dir=tmp_path)  # already done: no steps
    assert again.resumed_from == 40 and _same_parameters(straight.model, again.model)


def test_same_seed_same_result_and_seed_matters(data, straight) -> None:
    global_state = torch.get_rng_state()
    repeat = train_velocity(CondOT(), data, TINY)
    assert torch.equal(global_state, torch.get_rng_state())  # the caller's RNG is untouched
    assert _same_parameters(straight.model, repeat.model)
    other = train_velocity(CondOT(), data, TrainConfig(**{**TINY.__dict__, "seed": 4}))
    assert not _same_parameters(straight.model, other.model)


def test_corrupt_missing_and_mismatched_checkpoints_are_clear_errors(data, tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="no flow-matching checkpoint"):
        train_velocity(CondOT(), data, TINY, checkpoint_dir=tmp_path, resume="require")
    with pytest.raises(CheckpointError, match="checkpoint_dir"):
        train_velocity(CondOT(), data, TINY, resume="require")
    (tmp_path / CHECKPOINT_NAME).write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="corrupt"):
        train_velocity(CondOT(), data, TINY, checkpoint_dir=tmp_path)
    torch.save({"model": {}}, tmp_path / CHECKPOINT_NAME)
    with pytest.raises(CheckpointError, match="carries no checksum"):
        load_checkpoint(tmp_path / CHECKPOINT_NAME)
    fresh = train_velocity(CondOT(), data, TINY, checkpoint_dir=tmp_path, resume="never")
    assert fresh.step == 40
    with pytest.raises(CheckpointError, match="different config"):
        train_velocity(
            CondOT(), data, TrainConfig(**{**TINY.__dict__, "lr": 5e-4}), checkpoint_dir=tmp_path
        )
    with pytest.raises(CheckpointError, match="schedule or data"):
        train_velocity(Cosine(), data, TINY, checkpoint_dir=tmp_path)
    with pytest.raises(CheckpointError, match="schedule or data"):
        train_velocity(CondOT(), data * 2, TINY, checkpoint_dir=tmp_path)


def test_learned_velocity_approaches_the_exact_one() -> None:
    """1-D N(0, 1/4) data, cond-OT: the net tends to nu_t(x) = (d s_t / s_t) x."""
    mix = GaussianMixture.one_d([0.0], [0.5])
    data = mix.sample(4096, torch.Generator().manual_seed(1))
    config = TrainConfig(
        n_steps=600, batch_size=256, hidden=64, depth=2, time_dim=16, lr=3e-3, seed=0
    )
    result = train_velocity(CondOT(), data, config)
    assert result.losses[-100:].mean() < result.losses[:20].mean()
    exact = GaussianMixtureVelocity.of(CondOT(), mix)
    x = torch.linspace(-1.0, 1.0, 21, dtype=torch.float64)[:, None]
    with torch.no_grad():
        for t in (0.1, 0.5, 0.9):
            rms = float((result.model(t, x.float()).double() - exact(t, x)).pow(2).mean().sqrt())
            assert rms < 0.15, (t, rms)  # |nu_t| reaches 1.2 on [-1, 1]
        # generated samples have roughly the data's spread
        z = torch.randn(2000, 1, generator=torch.Generator().manual_seed(2))
        gen = sample_backward(result.model, z, 1.0, n_steps=50).final
    assert abs(float(gen.std()) - 0.5) < 0.1 and abs(float(gen.mean())) < 0.1


def test_minibatch_ot_coupling_trains(data) -> None:
    result = train_velocity(
        CondOT(), data, TrainConfig(**{**TINY.__dict__, "coupling": "ot", "n_steps": 5})
    )
    assert result.step == 5 and torch.isfinite(result.losses).all()


def test_velocity_mlp_time_shapes() -> None:
    net = VelocityMLP(3, hidden=8, depth=1, time_dim=4).double()
    x = torch.zeros(5, 3, dtype=torch.float64)
    assert net(0.5, x).shape == (5, 3)
    assert net(torch.tensor(0.5), x).shape == (5, 3)
    assert net(torch.linspace(0, 1, 5), x).shape == (5, 3)
    with pytest.raises(ValueError, match="times"):
        net(torch.linspace(0, 1, 4), x)
    with pytest.raises(ValueError, match="even"):
        VelocityMLP(2, time_dim=5)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("n_steps", 0),
        ("batch_size", -1),
        ("lr", 0.0),
        ("coupling", "sinkhorn"),
        ("dtype", "float16"),
    ],
)
def test_bad_train_config(field, value) -> None:
    with pytest.raises(ValueError, match=field):
        TrainConfig(**{field: value})


def test_bad_training_input(data) -> None:
    with pytest.raises(ValueError, match="data"):
        train_velocity(CondOT(), data[:, 0], TINY)
    with pytest.raises(ValueError, match="Schedule"):
        train_velocity("cond-ot", data, TINY)  # type: ignore[arg-type]


def test_training_guards_name_what_is_wrong(tmp_path):
    data = torch.randn(32, 2, generator=torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match="dim, hidden, depth must be >= 1, got 0, 128, 3"):
        VelocityMLP(0)
    with pytest.raises(CheckpointError, match="no flow-matching checkpoint at"):
        load_checkpoint(tmp_path)
    with pytest.raises(ValueError, match="config must be a TrainConfig, got dict"):
        train_velocity(CondOT(), data, {"n_steps": 1})
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="device 'cuda' requested but CUDA is not available"):
            train_velocity(CondOT(), data, TrainConfig(n_steps=1), device="cuda")
    exploding = TrainConfig(n_steps=20, batch_size=8, hidden=8, depth=1, lr=1e30)
    with pytest.raises(FloatingPointError, match=r"loss is (nan|inf) at step \d+; lower lr"):
        train_velocity(CondOT(), data, exploding)


def test_resuming_a_checkpoint_past_the_requested_steps_is_refused(tmp_path):
    data = torch.randn(32, 2, generator=torch.Generator().manual_seed(0))
    small = {"batch_size": 8, "hidden": 8, "depth": 1, "checkpoint_every": 1}
    train_velocity(CondOT(), data, TrainConfig(n_steps=3, **small), tmp_path)
    with pytest.raises(CheckpointError, match="is at step 3, past n_steps=2"):
        train_velocity(CondOT(), data, TrainConfig(n_steps=2, **small), tmp_path, resume="require")

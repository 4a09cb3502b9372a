"""GAN trainer: it learns the seed-001 §17 problem, resumes bit-identically, stops on divergence."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from torch import Tensor, nn

from ottokit import ot
from ottokit.gan.losses import GANLoss, make_loss
from ottokit.gan.nets import (
    ConvDiscriminator8,
    ConvGenerator8,
    MLPDiscriminator,
    MLPGenerator,
    build_seeded,
)
from ottokit.gan.train import (
    CHECKPOINT_NAME,
    CheckpointError,
    GANTrainConfig,
    fit_discriminator,
    load_gan_checkpoint,
    restore_checkpoint,
    train_gan,
)

MU, SIGMA = 1.0, 0.5
DT64 = torch.float64


def gaussian_target(n: int, g: torch.Generator) -> torch.Tensor:
    return MU + SIGMA * torch.randn(n, 1, generator=g)


def seed_nets(seed: int = 0, act: str = "tanh") -> tuple[nn.Module, nn.Module]:
    """Seed 001 §17: G 16 -> 32 -> 1, D 1 -> 32 -> 1."""
    G = build_seeded(seed, lambda: MLPGenerator(16, (32,), 1))
    D = build_seeded(seed + 1, lambda: MLPDiscriminator(1, (32,), activation=act))
    return G, D


def adam(module: nn.Module, lr: float) -> torch.optim.Adam:
    return torch.optim.Adam(module.parameters(), lr=lr, betas=(0.5, 0.9))


def test_tiny_gan_learns_a_gaussian() -> None:
    """ns loss, Adam, 300 steps: W_1 to N(1, 0.5^2) falls from ~1 to a small fraction."""
    G, D = seed_nets(0)
    config = GANTrainConfig(steps=300, batch_size=64, eval_every=50, eval_samples=1000, seed=0)
    before = torch.get_rng_state()
    result = train_gan(
        G,
        D,
        "ns",
        gaussian_target,
        g_optimizer=adam(G, 2e-3),
        d_optimizer=adam(D, 5e-3),
        config=config,
    )
    assert torch.equal(torch.get_rng_state(), before)  # the caller's RNG is untouched
    assert result.status == "completed" and result.step == 300
    w = result.history["eval_w1"]
    assert result.history["eval_step"].tolist() == [0, 50, 100, 150, 200, 250, 300]
    assert w[0] > 0.8
    assert w[-2:].max() < 0.25 * w[0]
    # independent check on fresh samples: the generated law is close to N(MU, SIGMA^2)
    g = torch.Generator().manual_seed(123)
    with torch.no_grad():
        x = G(torch.randn(4000, 16, generator=g))
    assert abs(float(x.mean()) - MU) < 0.15
    assert float(ot.w_1d(x, gaussian_target(4000, g))) < 0.25
    for key in ("g_loss", "d_loss", "step_time", "wall_time"):
        assert result.history[key].shape == (300,)
    assert torch.all(torch.diff(result.history["wall_time"]) > 0)


class _Crash(RuntimeError):
    pass


@pytest.mark.parametrize(
    ("loss", "n_critic", "opt", "schedule", "ema"),
    [
        ("ns", 1, "adam", "constant", 0.0),
        ("wgan-gp", 2, "sgd", "constant", 0.0),
        ("ns", 1, "adam", "linear", 0.9),
    ],
)
def test_resume_after_crash_is_bit_identical(
    loss: str, n_critic: int, opt: str, schedule: str, ema: float, tmp_path: Path
) -> None:
    """2K steps straight == K steps, crash at K + 3, resume from the checkpoint at K."""
    data = torch.randn(200, 1, generator=torch.Generator().manual_seed(5)) * SIGMA + MU
    K = 8

    def build():
        G, D = seed_nets(3)
        if opt == "adam":
            return G, D, adam(G, 1e-3), adam(D, 1e-3)
        sgd = lambda m: torch.optim.SGD(m.parameters(), lr=1e-2, momentum=0.9)  # noqa: E731
        return G, D, sgd(G), sgd(D)

    config = GANTrainConfig(
        steps=2 * K,
        batch_size=16,
        n_critic=n_critic,
        eval_every=4,
        eval_samples=100,
        checkpoint_every=K,
        seed=11,
        lr_schedule=schedule,
        ema_decay=ema,
    )
    G1, D1, go1, do1 = build()
    straight = train_gan(G1, D1, loss, data, g_optimizer=go1, d_optimizer=do1, config=config)

    def crash(step: int, record: dict) -> None:
        if step == K + 3:
            raise _Crash

    G2, D2, go2, do2 = build()
    with pytest.raises(_Crash):
        train_gan(
            G2,
            D2,
            loss,
            data,
            g_optimizer=go2,
            d_optimizer=do2,
            config=config,
            checkpoint_dir=tmp_path,
            callback=crash,
        )
    assert load_gan_checkpoint(tmp_path / CHECKPOINT_NAME)["step"] == K
    G3, D3, go3, do3 = build()
    resumed = train_gan(
        G3,
        D3,
        loss,
        data,
        g_optimizer=go3,
        d_optimizer=do3,
        config=config,
        checkpoint_dir=tmp_path,
    )
    assert resumed.resumed_from == K and resumed.step == 2 * K
    for a, b in ((G1, G3), (D1, D3)):
        for p, q in zip(a.state_dict().values(), b.state_dict().values(), strict=True):
            assert torch.equal(p, q)
    for key in ("g_loss", "d_loss", "eval_step", "eval_w1"):
        assert torch.equal(straight.history[key], resumed.history[key]), key
    # the final checkpoint holds the final state
    G4, D4, *_ = build()
    if ema:
        E4, _ = seed_nets(99)
        restore_checkpoint(tmp_path, G4, D4, generator_ema=E4)
        for a, b in ((E4, straight.generator_ema), (resumed.generator_ema, straight.generator_ema)):
            assert all(
                torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True)
            )
    else:
        assert straight.generator_ema is None
        with pytest.raises(CheckpointError, match="no generator average"):
            restore_checkpoint(tmp_path, *build()[:2], generator_ema=seed_nets(99)[0])
        restore_checkpoint(tmp_path, G4, D4)
    assert all(torch.equal(p, q) for p, q in zip(G4.parameters(), G1.parameters(), strict=True))


def test_generator_average_is_the_ema_of_the_trajectory() -> None:
    """generator_ema = beta-EMA of the generator's parameters after each step (first step
    copied), and averaging leaves the training trajectory itself unchanged."""
    data = torch.randn(100, 1, generator=torch.Generator().manual_seed(3)) * SIGMA + MU
    beta, steps = 0.8, 7
    finals = []
    for ema in (0.0, beta):
        G, D = seed_nets(8)
        G.double(), D.double()
        trajectory: list[list[Tensor]] = []

        def record(k: int, r: dict, G: nn.Module = G, out: list = trajectory) -> None:
            out.append([p.detach().clone() for p in G.parameters()])

        result = train_gan(
            G,
            D,
            "ns",
            data.double(),
            g_optimizer=adam(G, 1e-2),
            d_optimizer=adam(D, 1e-2),
            config=GANTrainConfig(steps=steps, batch_size=16, eval_every=0, ema_decay=ema),
            callback=record,
        )
        finals.append([p.detach().clone() for p in G.parameters()])
    assert all(torch.equal(p, q) for p, q in zip(*finals, strict=True))
    expected = trajectory[0]
    for theta in trajectory[1:]:
        expected = [beta * e + (1 - beta) * t for e, t in zip(expected, theta, strict=True)]
    got = list(result.generator_ema.parameters())
    for e, g in zip(expected, got, strict=True):
        torch.testing.assert_close(g, e, rtol=1e-12, atol=1e-14)
    assert not torch.allclose(got[0], trajectory[-1][0])  # an average, not the last iterate
    for bad in (1.0, -0.1, True):
        with pytest.raises(ValueError, match="ema_decay"):
            GANTrainConfig(ema_decay=bad)


def test_linear_lr_schedule_decays_to_zero_and_pins_steps(tmp_path: Path) -> None:
    """Step k + 1 runs at lr0 (1 - k / steps) for both optimisers; resume cannot stretch it."""
    data = torch.randn(100, 1, generator=torch.Generator().manual_seed(2)) * SIGMA + MU
    G, D = seed_nets(6)
    go, do = torch.optim.SGD(G.parameters(), lr=0.02), torch.optim.SGD(D.parameters(), lr=0.05)
    steps = 10
    seen: list[tuple[float, float]] = []
    lr_during: list[tuple[float, float]] = []
    g_step = go.step

    def spy(closure=None):  # the rate in force while the generator steps
        lr_during.append((go.param_groups[0]["lr"], do.param_groups[0]["lr"]))
        return g_step(closure)

    go.step = spy  # type: ignore[method-assign]
    config = GANTrainConfig(
        steps=steps, batch_size=8, eval_every=0, checkpoint_every=5, lr_schedule="linear"
    )
    train_gan(
        G,
        D,
        "ns",
        data,
        g_optimizer=go,
        d_optimizer=do,
        config=config,
        checkpoint_dir=tmp_path,
        callback=lambda k, r: seen.append((k, go.param_groups[0]["initial_lr"])),
    )
    factors = [1 - k / steps for k in range(steps)]
    assert [g for g, _ in lr_during] == pytest.approx([0.02 * f for f in factors], rel=1e-12)
    assert [d for _, d in lr_during] == pytest.approx([0.05 * f for f in factors], rel=1e-12)
    assert lr_during[-1][0] == pytest.approx(0.002) and all(lr > 0 for lr, _ in lr_during)
    assert all(initial == 0.02 for _, initial in seen)
    with pytest.raises(CheckpointError, match="linear lr_schedule"):
        G2, D2 = seed_nets(6)
        train_gan(
            G2,
            D2,
            "ns",
            data,
            g_optimizer=torch.optim.SGD(G2.parameters(), lr=0.02),
            d_optimizer=torch.optim.SGD(D2.parameters(), lr=0.05),
            config=replace(config, steps=20),
            checkpoint_dir=tmp_path,
        )
    with pytest.raises(ValueError, match="lr_schedule"):
        GANTrainConfig(lr_schedule="cosine")  # type: ignore[arg-type]


def test_evaluation_does_not_change_the_trajectory() -> None:
    runs = []
    for eval_every in (0, 3):
        G, D = seed_nets(4)
        config = GANTrainConfig(steps=9, batch_size=8, eval_every=eval_every, eval_samples=50)
        runs.append(
            train_gan(
                G,
                D,
                "hinge",
                gaussian_target,
                g_optimizer=adam(G, 1e-3),
                d_optimizer=adam(D, 1e-3),
                config=config,
            )
        )
    assert torch.equal(runs[0].history["g_loss"], runs[1].history["g_loss"])
    assert runs[0].history["eval_w1"].numel() == 0 and runs[1].history["eval_w1"].numel() == 4


class _Constant(nn.Module):
    """x = b for every latent: a Dirac generator, W_1 to data y_i is mean |y_i - b|."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        super().__init__()
        self.b = nn.Parameter(torch.full(shape, 0.3))
        self.latent_dim = 2

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.b.expand(z.shape[0], *self.b.shape) + 0 * z.sum(1).reshape(
            -1, *[1] * self.b.ndim
        )


@pytest.mark.parametrize(
    ("shape", "D"),
    [
        ((1,), MLPDiscriminator(1, (4,))),
        ((2,), MLPDiscriminator(2, (4,))),
        ((1, 8, 8), ConvDiscriminator8(4)),
    ],
)
def test_w1_evaluation_closed_form(shape: tuple[int, ...], D: nn.Module) -> None:
    """Dirac generator at b: the step-0 W_1 equals mean_i |y_i - b| (flattened for images)."""
    data = torch.randn(40, *shape, generator=torch.Generator().manual_seed(6))
    G = _Constant(shape)
    config = GANTrainConfig(steps=1, batch_size=4, eval_every=1, eval_samples=100)
    result = train_gan(
        G,
        D,
        "ns",
        data,
        g_optimizer=torch.optim.SGD(G.parameters(), lr=0.0),
        d_optimizer=adam(D, 1e-3),
        config=config,
    )
    expected = (data - 0.3).flatten(1).norm(dim=1).mean()
    assert float(result.history["eval_w1"][0]) == pytest.approx(float(expected), rel=1e-6)


class _Recorder(torch.optim.SGD):
    """A natural-gradient-like optimiser: takes latents, calls the closure twice, and checks
    that the closure's gradients are those of the generator loss alone."""

    def __init__(self, G: nn.Module, D: nn.Module, loss: GANLoss) -> None:
        super().__init__(G.parameters(), lr=1e-3)
        self.G, self.D, self.loss = G, D, loss
        self.latents: list[torch.Tensor] = []
        self.calls = 0

    def set_latents(self, z: torch.Tensor) -> None:
        self.latents.append(z.clone())

    def step(self, closure=None):  # type: ignore[override]
        d_grads = [None if p.grad is None else p.grad.clone() for p in self.D.parameters()]
        first = closure()
        second = closure()
        self.calls += 2
        assert torch.equal(first, second)
        params = list(self.G.parameters())
        expected = torch.autograd.grad(
            self.loss.generator_loss(self.D, self.G(self.latents[-1])), params
        )
        for p, e in zip(params, expected, strict=True):
            torch.testing.assert_close(p.grad, e)  # no accumulation over the two calls
        for p, before in zip(self.D.parameters(), d_grads, strict=True):
            assert (p.grad is None and before is None) or torch.equal(p.grad, before)
        super().step()
        return first


def test_generator_step_protocol() -> None:
    G, D = seed_nets(5)
    loss = make_loss("ns")
    opt = _Recorder(G, D, loss)
    config = GANTrainConfig(steps=4, batch_size=8, eval_every=0, prior="uniform")
    result = train_gan(
        G, D, loss, gaussian_target, g_optimizer=opt, d_optimizer=adam(D, 1e-3), config=config
    )
    assert opt.calls == 8 and len(opt.latents) == 4
    assert all(z.shape == (8, 16) and z.abs().max() <= 1 for z in opt.latents)
    assert result.history["g_loss"].shape == (4,)


def test_divergence_stops_and_keeps_the_last_good_checkpoint(tmp_path: Path) -> None:
    """After a checkpoint at step 5 the learning rates jump to 1e6: the run stops with
    status 'diverged' and the checkpoint still holds the (finite) step-5 state."""

    def build():
        G, D = seed_nets(6, act="leaky_relu")
        return (
            G,
            D,
            torch.optim.SGD(G.parameters(), lr=1e-3),
            torch.optim.SGD(D.parameters(), lr=1e-3),
        )

    def blow_up(step: int, record: dict) -> None:
        if step == 5:
            for opt in (go, do):
                for group in opt.param_groups:
                    group["lr"] = 1e6

    config = GANTrainConfig(steps=100, batch_size=16, eval_every=0, checkpoint_every=5)
    G, D, go, do = build()
    result = train_gan(
        G,
        D,
        "ns",
        gaussian_target,
        g_optimizer=go,
        d_optimizer=do,
        config=config,
        checkpoint_dir=tmp_path,
        callback=blow_up,
    )
    assert result.status == "diverged"
    assert result.diverged_at is not None and 5 < result.diverged_at < 100
    assert f"diverged at step {result.diverged_at}" in result.message
    assert result.step == result.diverged_at - 1 == result.history["g_loss"].numel()
    state = load_gan_checkpoint(tmp_path)
    assert state["step"] == 5
    G5, D5, go5, do5 = build()
    reference = train_gan(
        G5,
        D5,
        "ns",
        gaussian_target,
        g_optimizer=go5,
        d_optimizer=do5,
        config=GANTrainConfig(steps=5, batch_size=16, eval_every=0),
    )
    for k, v in state["generator"].items():
        assert torch.equal(v, G5.state_dict()[k])
    assert torch.equal(state["history"]["g_loss"], reference.history["g_loss"])
    # on_nonfinite="raise"
    G, D, go, do = build()
    with pytest.raises(FloatingPointError, match="diverged at step"):
        train_gan(
            G,
            D,
            "ns",
            gaussian_target,
            g_optimizer=go,
            d_optimizer=do,
            config=GANTrainConfig(steps=100, batch_size=16, eval_every=0, on_nonfinite="raise"),
            callback=blow_up,
        )


def test_nonfinite_parameter_is_never_checkpointed(tmp_path: Path) -> None:
    """A parameter that turns NaN without touching the losses (unused by forward) is caught
    before the next checkpoint: the run stops and the checkpoint keeps the last good step."""
    G, D = seed_nets(8)
    D.unused = nn.Parameter(torch.zeros(1))

    def poison(step: int, record: dict) -> None:
        if step == 4:
            with torch.no_grad():
                D.unused.fill_(float("nan"))

    config = GANTrainConfig(
        steps=10, batch_size=8, eval_every=3, eval_samples=50, checkpoint_every=2
    )
    result = train_gan(
        G,
        D,
        "ns",
        gaussian_target,
        g_optimizer=adam(G, 1e-3),
        d_optimizer=adam(D, 1e-3),
        config=config,
        checkpoint_dir=tmp_path,
        callback=poison,
    )
    assert result.status == "diverged" and result.diverged_at == 6
    assert "parameter is not finite" in result.message
    assert result.step == 5 and result.history["g_loss"].numel() == 5
    assert result.history["eval_step"].tolist() == [0, 3]
    state = load_gan_checkpoint(tmp_path)
    assert state["step"] == 4 and torch.isfinite(state["discriminator"]["unused"]).all()


def test_wgan_gp_on_2d_and_conv_on_images_run() -> None:
    """The same trainer serves WGAN-GP on 2-D data (n_critic 2) and the conv pair on images."""
    g = torch.Generator().manual_seed(0)
    data2 = torch.randn(300, 2, generator=g) * 0.3 + torch.tensor([1.0, -1.0])
    G = build_seeded(0, lambda: MLPGenerator(2, (32, 32), 2, activation="leaky_relu"))
    D = build_seeded(1, lambda: MLPDiscriminator(2, (32, 32), activation="leaky_relu"))
    result = train_gan(
        G,
        D,
        make_loss("wgan-gp"),
        data2,
        g_optimizer=adam(G, 1e-3),
        d_optimizer=adam(D, 1e-3),
        config=GANTrainConfig(
            steps=20, batch_size=32, n_critic=2, eval_every=10, eval_samples=200, prior="uniform"
        ),
    )
    assert result.status == "completed" and result.history["eval_w1"].shape == (3,)
    images = torch.rand(64, 1, 8, 8, generator=g) * 2 - 1
    Gc = build_seeded(0, lambda: ConvGenerator8(8, 8))
    Dc = build_seeded(1, lambda: ConvDiscriminator8(8))
    result = train_gan(
        Gc,
        Dc,
        "hinge",
        images,
        g_optimizer=adam(Gc, 1e-3),
        d_optimizer=adam(Dc, 1e-3),
        config=GANTrainConfig(steps=5, batch_size=16, eval_every=5, eval_samples=64),
    )
    assert result.status == "completed" and result.history["eval_w1"].shape == (2,)


def _fit(G, D, target=gaussian_target, loss="ns", **kw):
    cfg = {"steps": 2, "batch_size": 4, "eval_every": 0}
    cfg.update(kw.pop("cfg", {}))
    return train_gan(
        G,
        D,
        loss,
        target,
        g_optimizer=kw.pop("go", adam(G, 1e-3)),
        d_optimizer=kw.pop("do", adam(D, 1e-3)),
        config=GANTrainConfig(**cfg),
        **kw,
    )


def test_config_errors() -> None:
    with pytest.raises(ValueError, match="batch_size must be an integer >= 1, got 0"):
        GANTrainConfig(batch_size=0)
    with pytest.raises(ValueError, match="steps must be an integer >= 1"):
        GANTrainConfig(steps=0)
    with pytest.raises(ValueError, match="n_critic"):
        GANTrainConfig(n_critic=0)
    with pytest.raises(ValueError, match="eval_every"):
        GANTrainConfig(eval_every=-1)
    with pytest.raises(ValueError, match="eval_metric"):
        GANTrainConfig(eval_metric="fid")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="prior"):
        GANTrainConfig(prior="cauchy")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="on_nonfinite"):
        GANTrainConfig(on_nonfinite="ignore")  # type: ignore[arg-type]


def test_trainer_errors(tmp_path: Path) -> None:
    G, D = seed_nets(7)
    frozen = seed_nets(7)[0].requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable parameters"):
        _fit(frozen, D, go=torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.1))
    with pytest.raises(ValueError, match="not trainable parameters of the generator"):
        _fit(G, D, go=adam(D, 1e-3))
    with pytest.raises(ValueError, match="unknown GAN loss"):
        _fit(G, D, loss="gan")
    with pytest.raises(TypeError, match="target must be a tensor"):
        _fit(G, D, target=[1.0, 2.0])
    with pytest.raises(ValueError, match=r"generator makes samples of shape \(1,\)"):
        _fit(G, D, target=torch.randn(10, 2))
    with pytest.raises(ValueError, match="w_1d"):
        G2 = MLPGenerator(3, (4,), 2)
        _fit(
            G2,
            MLPDiscriminator(2, (4,)),
            target=torch.randn(10, 2),
            cfg={"eval_every": 1, "eval_metric": "w_1d"},
        )

    class VectorLoss(GANLoss):
        name = "vector"

        def discriminator_loss(self, D, real, fake, *, generator=None):
            return make_loss("ns").discriminator_loss(D, real, fake)

        def generator_loss(self, D, fake):
            return D(fake)

    with pytest.raises(ValueError, match="generator_loss must return a scalar"):
        _fit(G, D, loss=VectorLoss())

    class NoLatent(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = nn.Linear(3, 1)

        def forward(self, z):
            return self.lin(z)

    with pytest.raises(ValueError, match="latent dimension is unknown"):
        _fit(NoLatent(), D)
    # checkpoints: missing, corrupt, other architecture, other config
    with pytest.raises(CheckpointError, match="no GAN checkpoint"):
        _fit(G, D, checkpoint_dir=tmp_path, resume="require")
    (tmp_path / CHECKPOINT_NAME).write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="corrupt or unreadable"):
        _fit(G, D, checkpoint_dir=tmp_path)
    _fit(G, D, checkpoint_dir=tmp_path, resume="never")
    D_wide = MLPDiscriminator(1, (16,))
    with pytest.raises(CheckpointError, match="another discriminator"):
        _fit(G, D_wide, checkpoint_dir=tmp_path, cfg={"steps": 3})
    with pytest.raises(CheckpointError, match="different config: \\['batch_size'\\]"):
        _fit(G, D, checkpoint_dir=tmp_path, cfg={"steps": 3, "batch_size": 5})
    with pytest.raises(CheckpointError, match="different discriminator architecture"):
        restore_checkpoint(tmp_path, G, D_wide)
    with pytest.raises(CheckpointError, match="past steps=1"):
        _fit(G, D, checkpoint_dir=tmp_path, cfg={"steps": 1})


def test_wgan_gp_trajectory_equals_plain_gulrajani_loop() -> None:
    """train_gan("wgan-gp") is the Gulrajani et al. 2017 loop, step for step (float64).

    The reference loop is written here with ``torch.autograd.grad(create_graph=True)``
    for the penalty: critic loss ``D(fake).mean() - D(real).mean() + 10 E(|grad D(x_hat)| - 1)^2``,
    generator loss ``-D(G(z)).mean()``, drawing the data indices, the latents and the
    interpolation weights from one generator in the trainer's order. Both networks'
    parameters must agree after every step (so every D and G gradient agrees; the
    tolerance only absorbs the 1e-12 inside the penalty's square root, which Adam
    rescales).
    """
    dtype = torch.float64
    data = torch.randn(200, 2, generator=torch.Generator().manual_seed(3), dtype=dtype) * 0.3
    data = data + torch.tensor([2.0, -1.0], dtype=dtype)

    def nets() -> tuple[nn.Module, nn.Module]:
        G = build_seeded(0, lambda: MLPGenerator(2, (16, 16), 2, activation="relu")).double()
        D = build_seeded(1, lambda: MLPDiscriminator(2, (16, 16), activation="relu")).double()
        return G, D

    steps, batch, n_critic, lr = 4, 32, 3, 1e-2
    G, D = nets()
    snapshots: list[list[torch.Tensor]] = []

    def record(step: int, rec: dict[str, float]) -> None:
        snapshots.append([p.detach().clone() for p in (*G.parameters(), *D.parameters())])

    train_gan(
        G,
        D,
        "wgan-gp",
        data,
        g_optimizer=adam(G, lr),
        d_optimizer=adam(D, lr),
        config=GANTrainConfig(
            steps=steps, batch_size=batch, n_critic=n_critic, eval_every=0, prior="uniform"
        ),
        callback=record,
    )
    Gr, Dr = nets()
    g_opt, d_opt = adam(Gr, lr), adam(Dr, lr)
    gen = torch.Generator().manual_seed(0)
    for step in range(steps):
        for _ in range(n_critic):
            real = data[torch.randint(data.shape[0], (batch,), generator=gen)]
            z = 2 * torch.rand(batch, 2, generator=gen, dtype=dtype) - 1
            with torch.no_grad():
                fake = Gr(z)
            eps = torch.rand(batch, 1, generator=gen, dtype=dtype)
            x_hat = (eps * real + (1 - eps) * fake).requires_grad_(True)
            (grad,) = torch.autograd.grad(Dr(x_hat).sum(), x_hat, create_graph=True)
            penalty = ((grad.norm(dim=1) - 1) ** 2).mean()
            d_opt.zero_grad()
            (Dr(fake).mean() - Dr(real).mean() + 10 * penalty).backward()
            d_opt.step()
        z = 2 * torch.rand(batch, 2, generator=gen, dtype=dtype) - 1
        g_opt.zero_grad()
        (-Dr(Gr(z)).mean()).backward()
        g_opt.step()
        mine = [p.detach() for p in (*Gr.parameters(), *Dr.parameters())]
        for got, want in zip(snapshots[step], mine, strict=True):
            torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-8)
    assert len(snapshots) == steps
    assert any((a - b).abs().max() > 1e-3 for a, b in zip(snapshots[-1], snapshots[0], strict=True))


def test_fit_discriminator_reaches_the_optimal_logit_of_a_frozen_generator() -> None:
    """NS loss, G = identity on N(0, 1), data N(mu, 1): the optimal logit is
    log p_data / p_G = mu x - mu^2 / 2, which a linear D reaches."""
    mu = 1.5
    torch.manual_seed(0)
    D = nn.Linear(1, 1).double()
    G = lambda z: z  # noqa: E731
    data = mu + torch.randn(
        20000, 1, generator=torch.Generator().manual_seed(4), dtype=torch.float64
    )
    opt = torch.optim.Adam(D.parameters(), lr=0.05)
    losses = fit_discriminator(
        D, G, "ns", data, opt, steps=600, batch_size=512, latent_dim=1, seed=3
    )
    assert losses.shape == (600,) and float(losses[-50:].mean()) < float(losses[:5].mean())
    assert float(D.weight.detach()) == pytest.approx(mu, abs=0.1)
    assert float(D.bias.detach()) == pytest.approx(-(mu**2) / 2, abs=0.1)
    with pytest.raises(ValueError, match="latent dimension"):
        fit_discriminator(D, G, "ns", data, opt, steps=1)
    with pytest.raises(ValueError, match="steps"):
        fit_discriminator(D, G, "ns", data, opt, steps=0, latent_dim=1)


def test_natural_gradient_step_info_is_recorded_and_survives_a_resume(tmp_path: Path) -> None:
    """Each generator step's StepInfo is in result.step_info; its numbers are history
    columns g_opt.<field>, which a resumed run continues bit-identically."""
    from ottokit.gan import ConjugateGradient, NaturalGradient

    data = torch.randn(64, 1, generator=torch.Generator().manual_seed(5)) * SIGMA + MU

    def run(steps: int, ckpt: Path | None) -> object:
        G, D = seed_nets(4)
        cg = ConjugateGradient(maxiter=200, tol=1e-10)
        opt = NaturalGradient(G.parameters(), G, lr=0.02, damping=1e-3, solver=cg)
        return train_gan(
            G, D, "ns", data, g_optimizer=opt, d_optimizer=adam(D, 1e-3),
            config=GANTrainConfig(steps=steps, batch_size=16, eval_every=0, checkpoint_every=3),
            checkpoint_dir=ckpt,
        )

    straight = run(6, None)
    assert len(straight.step_info) == 6 and straight.step_info[0].solver == "cg"
    iters = straight.history["g_opt.solve_iterations"]
    assert iters.shape == (6,) and torch.all(iters >= 1)
    assert torch.equal(iters, torch.tensor([float(i.solve_iterations) for i in straight.step_info],
                                           dtype=torch.float64))
    run(3, tmp_path)
    resumed = run(6, tmp_path)
    assert resumed.resumed_from == 3 and len(resumed.step_info) == 3  # this call's steps
    for key in ("g_opt.solve_iterations", "g_opt.solve_residual", "g_opt.grad_norm"):
        assert torch.equal(resumed.history[key], straight.history[key]), key


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"seed": 1.5}, "seed must be an int, got 1.5"),
        ({"seed": True}, "seed must be an int, got True"),
        ({"device": 0}, "device must be a string such as 'cpu' or 'cuda', got 0"),
        ({"device": "tpu"}, "device 'tpu' is not a torch device"),
    ],
)
def test_config_seed_and_device_guards(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        GANTrainConfig(**kwargs)


class _NoClosure(torch.optim.SGD):
    """An optimiser whose step forgets the closure (a plain SGD step on stale gradients)."""

    def step(self, closure=None):  # noqa: ARG002
        return super().step()


class _VectorCritic(GANLoss):
    name = "vector-critic"

    def discriminator_loss(self, D, real, fake, *, generator=None, shard=None):
        return D(fake) - D(real)

    def generator_loss(self, D, fake):
        return -D(fake).mean()


def _shared_pair() -> tuple[nn.Module, nn.Module]:
    G, D = seed_nets(7)
    D.borrowed = G.net[2]  # the generator's output layer, registered in D too
    return G, D


def _train_guard_cases() -> list:
    def bad_rows(n: int, g: torch.Generator) -> torch.Tensor:
        return torch.randn(n + 1, 1, generator=g)

    return [
        (lambda G, D: train_gan(lambda z: z, D, "ns", gaussian_target, g_optimizer=adam(D, 1e-3),
                                d_optimizer=adam(D, 1e-3)),
         TypeError, "generator must be a torch.nn.Module, got function"),
        (lambda G, D: _fit(G, D, go="adam"), TypeError,
         "g_optimizer must be a torch.optim.Optimizer instance, got str"),
        (lambda G, D: _fit(G, D, go=torch.optim.SGD([{"params": []}], lr=0.1)), ValueError,
         "g_optimizer holds no parameters"),
        (lambda G, D: _fit(G, D, target=torch.zeros(0, 1)), ValueError,
         r"target data must be a non-empty \(n, \.\.\.\) tensor, got shape \(0, 1\)"),
        (lambda G, D: _fit(G, D, target=torch.tensor([0.5, math.nan, 1.0])), ValueError,
         r"target data must be finite \(no NaN or inf\)"),
        (lambda G, D: _fit(G, D, target=bad_rows), ValueError,
         r"target\(4, generator\) must return a tensor with 4 rows, got \(5, 1\)"),
        (lambda G, D: _fit(G, D, target=lambda n, g: torch.full((n, 1), math.inf)), ValueError,
         r"target\(4, generator\) returned non-finite values"),
        (lambda G, D: _fit(G, D, loss=_VectorCritic()), ValueError,
         "discriminator_loss must return a scalar tensor"),
        (lambda G, D: _fit(G, D, go=_NoClosure(G.parameters(), lr=1e-3)), ValueError,
         r"g_optimizer.step\(closure\) did not call the closure"),
        (lambda G, D: train_gan(G, D, "ns", gaussian_target, g_optimizer=adam(G, 1e-3),
                                d_optimizer=adam(D, 1e-3), config={"steps": 2}),
         TypeError, "config must be a GANTrainConfig, got dict"),
        (lambda G, D: _fit(G, D, loss=3), TypeError,
         r"loss must be a GANLoss \(or a loss name such as 'ns'\), got int"),
        (lambda G, D: _fit(G, D, callback="print"), TypeError,
         "callback must be callable, got 'print'"),
        (lambda G, D: _fit(*_shared_pair()), ValueError,
         "the generator and the discriminator share parameters"),
        (lambda G, D: _fit(G.to("meta"), D.to("meta")), ValueError,
         r"parameters must be on config.device='cpu'; move them with .to\(device\) BEFORE"),
    ]


@pytest.mark.parametrize(("call", "error", "match"), _train_guard_cases())
def test_train_gan_input_guards(call, error: type[Exception], match: str) -> None:
    G, D = seed_nets(7)
    with pytest.raises(error, match=match):
        call(G, D)


@pytest.mark.skipif(torch.cuda.is_available(), reason="the guard is for machines without CUDA")
def test_cuda_device_without_cuda_is_refused() -> None:
    G, D = seed_nets(7)
    with pytest.raises(ValueError, match="config.device is 'cuda' but CUDA is not available"):
        _fit(G, D, cfg={"device": "cuda"})


@pytest.mark.filterwarnings("ignore:invalid value encountered in multiply:RuntimeWarning")
def test_divergence_found_by_the_generator_loss_and_by_evaluation() -> None:
    """Each non-finite check ends the run as 'diverged' with its own message: an exploding
    critic step (SGD, lr = 1e30, leaky-ReLU critic) makes the next generator loss NaN; a NaN
    planted in G makes the step-0 samples non-finite; finite samples at 1e308 against data at
    -1e308 make W_1 overflow."""
    G, D = seed_nets(0, act="leaky_relu")
    result = _fit(G, D, do=torch.optim.SGD(D.parameters(), lr=1e30))
    assert result.status == "diverged" and result.diverged_at == 1 and result.step == 0
    assert "generator loss is nan" in result.message
    assert result.history["d_loss"].numel() == 0

    G, D = seed_nets(0)
    with torch.no_grad():
        G.net[0].weight[0, 0] = math.nan
    result = _fit(G, D, cfg={"eval_every": 1, "eval_samples": 20})
    assert result.status == "diverged" and result.diverged_at == 0
    assert "the generated samples are not finite" in result.message

    G, D = (m.double() for m in seed_nets(0))
    with torch.no_grad():
        G.net[2].bias.fill_(1e308)
    data = -1e308 + torch.randn(50, 1, generator=torch.Generator().manual_seed(0), dtype=DT64)
    with pytest.warns(RuntimeWarning, match="overflow"):
        result = _fit(G, D, target=data, cfg={"eval_every": 1, "eval_samples": 20})
    assert bool(torch.isfinite(G(torch.zeros(3, 16, dtype=DT64))).all())
    assert result.status == "diverged" and result.diverged_at == 0
    assert "W_1 of the generated samples is nan" in result.message


def test_nonfinite_parameter_is_caught_at_the_end_without_checkpoints() -> None:
    """No checkpoint_dir: a parameter turned NaN in the last step (unused by forward, so no
    loss sees it) is still caught when the run ends, and that step is rolled back."""
    G, D = seed_nets(8)
    D.unused = nn.Parameter(torch.zeros(1))

    def poison(step: int, record: dict) -> None:
        if step == 3:
            with torch.no_grad():
                D.unused.fill_(math.nan)

    result = _fit(G, D, cfg={"steps": 3}, callback=poison)
    assert result.status == "diverged" and result.diverged_at == 3
    assert "a network parameter is not finite" in result.message
    assert result.step == 2 and result.history["g_loss"].numel() == 2
    with pytest.raises(FloatingPointError, match="a network parameter is not finite"):
        G, D = seed_nets(8)
        D.unused = nn.Parameter(torch.zeros(1))
        _fit(G, D, cfg={"steps": 3, "on_nonfinite": "raise"}, callback=poison)


def test_fit_discriminator_guards() -> None:
    D = nn.Linear(1, 1).double()
    data = torch.randn(64, 1, generator=torch.Generator().manual_seed(0), dtype=DT64)
    opt = torch.optim.SGD(D.parameters(), lr=0.1)
    with pytest.raises(TypeError, match="generator must be a callable z -> x, got str"):
        fit_discriminator(D, "identity", "ns", data, opt, steps=1, latent_dim=1)
    # an exploding step: the loss after the first update overflows
    wide = nn.Sequential(nn.Linear(1, 8), nn.LeakyReLU(0.2), nn.Linear(8, 1)).double()
    boom = torch.optim.SGD(wide.parameters(), lr=1e300)
    with pytest.raises(FloatingPointError, match="discriminator loss is .* after 1 steps; lower"):
        fit_discriminator(wide, lambda z: z, "ns", data, boom, steps=3, latent_dim=1)

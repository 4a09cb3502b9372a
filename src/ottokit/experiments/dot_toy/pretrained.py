"""The 2-D WGAN-GP networks of dot-toy: training, quality, and the shipped weights.

:func:`train_networks` trains the original architecture (REFERENCE.md "Seed 003") with
the WGAN-GP recipe of a :class:`Recipe`; the experiment's retrain path and the script
that produced the shipped weights (``benchmarks/train_dot_toy_nets.py``) both call it.
:func:`generator_quality` scores a generator on a fixed sample: modes covered and the
high-quality share on the mode data sets, exact W2 to the data otherwise.

The trained generator and critic of each data set ship with the package
(``weights/<name>.pt``), as the original DOT repository ships its ``trained_models``;
``weights/<name>.json`` records their provenance (commit, recipe, seed, steps, training
curve) and the file's SHA-256. :func:`load_shipped` refuses a file whose checksum does not
match and reads it with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ottokit._torchio import CheckpointError, load_verified, save_verified
from ottokit.data import toy_2d
from ottokit.experiments._dot_common import GANSeeds
from ottokit.gan.losses import make_loss
from ottokit.gan.nets import MLPDiscriminator, MLPGenerator, build_seeded
from ottokit.gan.train import GANTrainConfig, GANTrainResult, train_gan
from ottokit.metrics import toy_metrics
from ottokit.ot import w2

__all__ = [
    "QUALITY_SAMPLES",
    "QUALITY_SEED",
    "Recipe",
    "ShippedNets",
    "generator_quality",
    "load_shipped",
    "make_networks",
    "save_shipped",
    "shipped_names",
    "train_networks",
]

QUALITY_SAMPLES = 5000
QUALITY_SEED = 0x0D07  # seeds the fixed latents and data sample of generator_quality
_WEIGHTS = "weights"
_KIND = "ottokit-dot-toy-nets"


@dataclass(frozen=True)
class Recipe:
    """A WGAN-GP training recipe for the 2-D networks.

    Attributes:
        g_hidden: hidden widths of the generator (leaky ReLU).
        d_hidden: hidden widths of the critic (leaky ReLU).
        gp_weight: gradient-penalty weight.
        n_critic: critic steps per generator step.
        batch_size: samples per batch.
        lr: Adam's step size, for G and D.
        betas: Adam's betas.
        lr_schedule: ``"constant"`` or ``"linear"`` decay to zero over the run.
        n_train: training points (drawn with the generator seed of the run).
    """

    g_hidden: tuple[int, ...] = (256, 256, 256)
    d_hidden: tuple[int, ...] = (512, 512, 512)
    gp_weight: float = 0.1
    n_critic: int = 5
    batch_size: int = 256
    lr: float = 1e-4
    betas: tuple[float, float] = (0.5, 0.9)
    lr_schedule: str = "constant"
    n_train: int = 100_000


def make_networks(recipe: Recipe, seed: int) -> tuple[nn.Module, nn.Module]:
    """The generator and critic of ``recipe``, initialised from the run seed's GAN seeds."""
    seeds = GANSeeds.from_seed(seed)
    G = build_seeded(
        seeds.generator, lambda: MLPGenerator(2, recipe.g_hidden, 2, activation="leaky_relu")
    )
    D = build_seeded(
        seeds.critic, lambda: MLPDiscriminator(2, recipe.d_hidden, activation="leaky_relu")
    )
    return G, D


def train_networks(
    name: str,
    recipe: Recipe,
    steps: int,
    *,
    seed: int = 0,
    checkpoint_dir: Path | None = None,
    checkpoint_every: int = 1000,
    callback: Callable[[int, nn.Module, nn.Module], None] | None = None,
    every: int = 1000,
    device: str = "cpu",
    cache: Any = None,
) -> tuple[nn.Module, nn.Module, GANTrainResult]:
    """Train the 2-D WGAN-GP of ``recipe`` on data set ``name`` for ``steps`` generator steps.

    Args:
        name: a name of :data:`ottokit.data.TOY_2D_NAMES`.
        recipe: the architecture and training settings.
        steps: generator steps.
        seed: the run seed (networks, batches and training set from :class:`GANSeeds`).
        checkpoint_dir: where the resumable checkpoint is kept (None: none).
        checkpoint_every: checkpoint every this many steps.
        callback: ``callback(step, G, D)`` every ``every`` steps (e.g. a quality curve);
            it must not draw from the networks' training streams.
        every: the callback's period.
        device: where the networks train.
        cache: passed to :func:`ottokit.gan.train.train_gan`.

    Returns:
        The trained generator and critic (frozen, in eval mode) and the training result.
    """
    G, D = make_networks(recipe, seed)
    G, D = G.to(device), D.to(device)
    data = toy_2d(name, recipe.n_train, seed=GANSeeds.from_seed(seed).generator).points  # type: ignore[arg-type]
    g_opt = torch.optim.Adam(G.parameters(), lr=recipe.lr, betas=tuple(recipe.betas))
    d_opt = torch.optim.Adam(D.parameters(), lr=recipe.lr, betas=tuple(recipe.betas))
    tc = GANTrainConfig(
        steps=steps,
        batch_size=recipe.batch_size,
        n_critic=recipe.n_critic,
        eval_every=0,
        eval_metric="none",
        checkpoint_every=min(checkpoint_every, steps),
        seed=GANSeeds.from_seed(seed).generator,
        device=device,
        prior="uniform",
        log_every=max(min(steps // 20, 500), 1),
        lr_schedule=recipe.lr_schedule,  # type: ignore[arg-type]
    )

    def hook(step: int, record: dict[str, float]) -> None:
        if callback is not None and step % every == 0:
            with torch.no_grad():
                callback(step, G, D)

    res = train_gan(
        G,
        D,
        make_loss("wgan-gp", gp_weight=recipe.gp_weight),
        torch.as_tensor(data, dtype=torch.float32),
        g_optimizer=g_opt,
        d_optimizer=d_opt,
        config=tc,
        checkpoint_dir=checkpoint_dir,
        callback=hook if callback is not None else None,
        cache=cache,
    )
    if res.status != "completed":
        raise RuntimeError(f"WGAN-GP training on {name} (seed {seed}) diverged: {res.message}")
    for net in (G, D):
        net.eval().requires_grad_(False)
    return G, D, res


def generator_quality(G: nn.Module, name: str, n: int = QUALITY_SAMPLES) -> dict[str, float]:
    """The quality of ``G`` on ``name`` from ``n`` fixed latents (the same for every G).

    On the mode data sets: ``modes`` covered, ``high_quality`` (% within 4 sigma of the
    nearest mode) and ``kl`` of the mode histogram to the uniform one; on every data set
    ``w2``, the exact W2 to ``n`` fixed data points (both clouds of ``n`` points).
    """
    gen = torch.Generator().manual_seed(QUALITY_SEED)
    z = 2 * torch.rand(n, 2, generator=gen) - 1
    p = next(G.parameters())
    with torch.no_grad():
        x = G(z.to(device=p.device, dtype=p.dtype)).double().cpu().numpy()
    data = toy_2d(name, n, seed=QUALITY_SEED)  # type: ignore[arg-type]
    out = {"w2": float(w2(x, data.points))}
    if data.modes is not None:
        m = toy_metrics(x, data.modes, data.sigma, min_ot_samples=min(n, 5000))
        out.update(
            modes=float(m["modes_covered"]),
            high_quality=100.0 * float(m["high_quality_fraction"]),
            kl=float(m["kl_uniform"]),
        )
    return out


@dataclass(frozen=True)
class ShippedNets:
    """Trained networks of one data set as shipped, with their provenance.

    Attributes:
        generator: the generator (frozen, eval mode).
        critic: the critic (frozen, eval mode).
        provenance: the recipe, seed, steps, commit, training curve and quality.
        sha256: the checksum of the weights file.
    """

    generator: nn.Module
    critic: nn.Module
    provenance: dict[str, Any]
    sha256: str


def _weights_dir() -> Path:
    return Path(str(resources.files(__package__))) / _WEIGHTS


def shipped_names(directory: Path | None = None) -> list[str]:
    """The data sets with shipped weights."""
    d = _weights_dir() if directory is None else Path(directory)
    return sorted(p.stem for p in d.glob("*.pt") if p.with_suffix(".json").is_file())


def _file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def save_shipped(
    directory: Path, name: str, G: nn.Module, D: nn.Module, provenance: dict[str, Any]
) -> Path:
    """Write ``<name>.pt`` (float32 state dicts, checksummed) and ``<name>.json`` (provenance
    with the file's SHA-256); return the weights' path."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.pt"
    state = {
        "kind": _KIND,
        "generator": {k: v.detach().float().cpu().clone() for k, v in G.state_dict().items()},
        "critic": {k: v.detach().float().cpu().clone() for k, v in D.state_dict().items()},
    }
    save_verified(path, state)
    path.chmod(0o644)  # package data: readable by every user of an installation
    meta = {**provenance, "file": path.name, "file_sha256": _file_sha256(path)}
    (directory / f"{name}.json").write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")
    return path


def load_shipped(name: str, directory: Path | None = None) -> ShippedNets:
    """The shipped generator and critic of ``name``, checksum verified.

    Raises:
        ValueError: no weights ship for ``name``.
        CheckpointError: the file's SHA-256 differs from the provenance record's, or its
            contents fail their own checksum, or it is not a dot-toy weights file.
    """
    d = _weights_dir() if directory is None else Path(directory)
    path, meta_path = d / f"{name}.pt", d / f"{name}.json"
    if not path.is_file() or not meta_path.is_file():
        raise ValueError(
            f"no shipped dot-toy weights for {name!r} (shipped: {shipped_names(d)}); "
            "run with retrain=true to train them"
        )
    meta = json.loads(meta_path.read_text())
    actual = _file_sha256(path)
    if actual != meta.get("file_sha256"):
        raise CheckpointError(
            f"shipped weights {path} are corrupt: SHA-256 {actual[:16]}... does not match the "
            f"recorded {str(meta.get('file_sha256'))[:16]}... in {meta_path.name}; reinstall "
            "ottokit or run with retrain=true"
        )
    state = load_verified(path, what="dot-toy weights")
    if state.get("kind") != _KIND:
        raise CheckpointError(f"{path} is not a dot-toy weights file")
    recipe = Recipe(**{**meta["recipe"], "g_hidden": tuple(meta["recipe"]["g_hidden"]),
                       "d_hidden": tuple(meta["recipe"]["d_hidden"]),
                       "betas": tuple(meta["recipe"]["betas"])})  # fmt: skip
    G, D = make_networks(recipe, int(meta["seed"]))
    G.load_state_dict(state["generator"])
    D.load_state_dict(state["critic"])
    for net in (G, D):
        net.eval().requires_grad_(False)
    return ShippedNets(generator=G, critic=D, provenance=meta, sha256=actual)


def recipe_dict(recipe: Recipe) -> dict[str, Any]:
    """``recipe`` as JSON-ready values."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(recipe).items()}

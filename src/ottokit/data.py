"""Toy data sets, generated in the package (nothing is downloaded).

Each generator returns a float64 NumPy array of shape (n, d), seeded by ``seed``.
The 2-D sets follow the conventions of the works the seeds reproduce:
``gaussians_grid`` (25 Gaussians on a 5 x 5 grid, spacing 2, std 0.05, divided by
2.828) and ``swiss_roll`` (noise 0.25, divided by 7.5) as in the DOT code
(seed 003); ``gaussians_ring`` the 8-Gaussian ring of the GAN literature.
:func:`toy_2d` names these sets with the scalings of seed 003 and returns their
mode centres and per-mode standard deviation, for :func:`ottokit.metrics.toy_metrics`.
:func:`digits` is scikit-learn's 8 x 8 handwritten digits (shipped with
scikit-learn), as images in [-1, 1] with a fixed stratified train/test split.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from ottokit._checks import as_array, check_int, check_option, check_real, options
from ottokit._memory import check_memory

__all__ = [
    "swiss_roll",
    "gaussians_grid",
    "gaussians_ring",
    "two_peaks",
    "gaussian_mixture_1d",
    "TOY_2D_NAMES",
    "ToyName",
    "Toy2D",
    "toy_2d",
    "toy_2d_modes",
    "digits",
]


def _check_n(n: int, dim: int = 2) -> int:
    n = check_int(n, "n", ge=1)
    check_memory(3 * 8 * n * dim, what=f"{n} samples in dimension {dim}", knob="lower n")
    return n


def _check_std(std: float, name: str = "std") -> float:
    return check_real(std, name, ge=0)


def swiss_roll(n: int, *, noise: float = 0.25, scale: float = 7.5, seed: int = 0) -> np.ndarray:
    """2-D Swiss roll: scikit-learn's ``make_swiss_roll`` in the x-z plane, divided by ``scale``."""
    from sklearn.datasets import make_swiss_roll

    n, seed = _check_n(n, 3), check_int(seed, "seed", ge=0)
    noise, scale = _check_std(noise, "noise"), check_real(scale, "scale", gt=0)
    x, _ = make_swiss_roll(n, noise=noise, random_state=seed)
    return x[:, [0, 2]] / scale


def gaussians_grid(
    n: int,
    *,
    side: int = 5,
    spacing: float = 2.0,
    std: float = 0.05,
    scale: float = 2.828,
    seed: int = 0,
) -> np.ndarray:
    """``side**2`` Gaussians on a centred square grid (the DOT paper's 25 Gaussians)."""
    n, side, std = _check_n(n), check_int(side, "side", ge=1), _check_std(std)
    spacing, scale = check_real(spacing, "spacing", gt=0), check_real(scale, "scale", gt=0)
    rng = np.random.default_rng(check_int(seed, "seed", ge=0))
    ticks = (np.arange(side) - (side - 1) / 2) * spacing
    centres = np.stack(np.meshgrid(ticks, ticks, indexing="ij"), axis=-1).reshape(-1, 2)
    k = rng.integers(0, len(centres), n)
    return (centres[k] + std * rng.standard_normal((n, 2))) / scale


def gaussians_ring(
    n: int, *, modes: int = 8, radius: float = 2.0, std: float = 0.02, seed: int = 0
) -> np.ndarray:
    """``modes`` Gaussians evenly spaced on a circle of ``radius``."""
    n, modes, std = _check_n(n), check_int(modes, "modes", ge=1), _check_std(std)
    radius = check_real(radius, "radius", ge=0)
    rng = np.random.default_rng(check_int(seed, "seed", ge=0))
    angles = 2 * np.pi * np.arange(modes) / modes
    centres = radius * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    k = rng.integers(0, modes, n)
    return centres[k] + std * rng.standard_normal((n, 2))


def two_peaks(
    n: int, *, separation: float = 2.0, std: float = 0.3, dim: int = 2, seed: int = 0
) -> np.ndarray:
    """Equal mixture of two isotropic Gaussians at ``+-separation/2`` along the first axis."""
    dim = check_int(dim, "dim", ge=1)
    n, std = _check_n(n, dim), _check_std(std)
    separation = check_real(separation, "separation")
    rng = np.random.default_rng(check_int(seed, "seed", ge=0))
    sign = np.where(rng.random(n) < 0.5, -1.0, 1.0)
    x = std * rng.standard_normal((n, dim))
    x[:, 0] += sign * separation / 2
    return x


def gaussian_mixture_1d(
    n: int,
    means: tuple[float, ...],
    stds: tuple[float, ...],
    weights: tuple[float, ...] | None = None,
    *,
    seed: int = 0,
) -> np.ndarray:
    """Samples (n, 1) of a 1-D Gaussian mixture."""
    n = _check_n(n, 1)
    rng = np.random.default_rng(check_int(seed, "seed", ge=0))
    m, s = as_array(means, "means"), as_array(stds, "stds")
    if m.shape != s.shape or m.ndim != 1 or m.size == 0:
        raise ValueError(
            f"means and stds must be non-empty sequences of equal length, got shapes {m.shape} "
            f"and {s.shape}"
        )
    if np.any(s <= 0):
        raise ValueError(f"stds must be positive, got {s.tolist()}")
    w = np.full(m.size, 1.0 / m.size) if weights is None else as_array(weights, "weights")
    if w.shape != m.shape or np.any(w < 0) or abs(w.sum() - 1) > 1e-9:
        raise ValueError(
            f"weights must be non-negative, one per component ({m.size}), and sum to 1, got "
            f"{w.tolist()}"
        )
    k = rng.choice(m.size, size=n, p=w)
    return (m[k] + s[k] * rng.standard_normal(n))[:, None]


ToyName = Literal["25gaussians", "swissroll", "8gaussians"]
TOY_2D_NAMES: tuple[str, ...] = options(ToyName)

# 25 Gaussians (seed 003, original DOT code): grid -4, -2, ..., 4, std 0.05, all / 2.828
_GRID_SCALE = 2.828
_GRID_STD = 0.05
# 8 Gaussians: radius 2, std 0.02, all / 1.414 (the WGAN-GP toy convention, Gulrajani
# et al. 2017), so the ring has radius ~1.414 and lies inside the [-2, 2] box the DOT
# code clips to, like the 25-Gaussian grid (corner modes at ~1.414 per axis)
_RING_RADIUS = 2.0
_RING_STD = 0.02
_RING_SCALE = 1.414


@dataclass(frozen=True)
class Toy2D:
    """A named 2-D data set: ``points`` (n, 2) float64, and for mixtures the mode centres.

    ``modes`` is the (m, 2) array of mixture centres and ``sigma`` the standard
    deviation of every (isotropic) component, in the same coordinates as ``points``;
    both are ``None`` for the swiss roll, which has no modes.
    """

    name: str
    points: np.ndarray
    modes: np.ndarray | None
    sigma: float | None


def _check_toy_name(name: str) -> str:
    return check_option(name, ToyName, "2-D data set")


def toy_2d_modes(name: ToyName) -> tuple[np.ndarray | None, float | None]:
    """``(modes, sigma)`` of a named 2-D set (see :func:`toy_2d`); ``(None, None)`` for the roll.

    For "25gaussians" the centres are (2i, 2j) / 2.828 for i, j in {-2, ..., 2}, in the
    order :func:`gaussians_grid` indexes them, and sigma = 0.05 / 2.828; for
    "8gaussians" they are 2 (cos 2 pi k / 8, sin 2 pi k / 8) / 1.414, sigma = 0.02 / 1.414.
    """
    _check_toy_name(name)
    if name == "25gaussians":
        ticks = (np.arange(5) - 2) * 2.0
        grid = np.stack(np.meshgrid(ticks, ticks, indexing="ij"), axis=-1).reshape(-1, 2)
        return grid / _GRID_SCALE, _GRID_STD / _GRID_SCALE
    if name == "8gaussians":
        angles = 2 * np.pi * np.arange(8) / 8
        ring = _RING_RADIUS * np.stack([np.cos(angles), np.sin(angles)], axis=1)
        return ring / _RING_SCALE, _RING_STD / _RING_SCALE
    return None, None


def toy_2d(name: ToyName, n: int, *, seed: int = 0) -> Toy2D:
    """The 2-D target sets of seed 003 (§3.2) by name, with their modes.

    - ``"25gaussians"``: :func:`gaussians_grid` with its defaults, i.e. an equal
      mixture of N(c, 0.05^2 I) over the 5 x 5 grid c in {-4, -2, 0, 2, 4}^2, all
      divided by 2.828 (the original DOT code).
    - ``"swissroll"``: :func:`swiss_roll` with noise 0.25, divided by 7.5 (the
      original DOT code); no modes.
    - ``"8gaussians"``: :func:`gaussians_ring` with radius 2 and std 0.02, all divided
      by 1.414 (the WGAN-GP toy set; the DOT code does not fix this one, and this
      scaling puts it in the same [-2, 2] box as the other two).

    Returns a :class:`Toy2D` (points, modes, sigma), seeded by ``seed``.
    """
    _check_toy_name(name)
    n, seed = _check_n(n), check_int(seed, "seed", ge=0)
    if name == "25gaussians":
        points = gaussians_grid(n, seed=seed)
    elif name == "swissroll":
        points = swiss_roll(n, seed=seed)
    else:
        points = gaussians_ring(n, modes=8, radius=_RING_RADIUS, std=_RING_STD, seed=seed)
        points = points / _RING_SCALE
    modes, sigma = toy_2d_modes(name)
    return Toy2D(name=name, points=points, modes=modes, sigma=sigma)


Split = Literal["train", "test", "all"]


def digits(
    split: Split = "train", *, seed: int = 0, test_fraction: float = 0.25
) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's handwritten digits as images in [-1, 1], with a stratified split.

    ``load_digits`` holds 1797 grey 8 x 8 images with integer intensities 0..16
    (shipped with scikit-learn; nothing is downloaded). They are mapped by
    x -> x / 8 - 1 onto [-1, 1] (the range of a tanh generator) and returned as
    ``(images, labels)``: float32 of shape (n, 1, 8, 8) and int64 of shape (n,).

    ``split`` is "train", "test" or "all"; the train/test split is scikit-learn's
    ``train_test_split`` stratified by label with ``random_state=seed`` and
    ``test_size=test_fraction``, so it is fixed by (seed, test_fraction) and the
    two parts are disjoint and cover the set. "all" ignores both and keeps the
    original order.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    check_option(split, Split, "split")
    seed = check_int(seed, "seed", ge=0)
    bunch = load_digits()
    images = (bunch.images.astype(np.float64) / 8.0 - 1.0).astype(np.float32)[:, None]
    labels = bunch.target.astype(np.int64)
    if split == "all":
        return images, labels
    n, n_classes = len(labels), int(np.unique(labels).size)
    test_fraction = check_real(test_fraction, "test_fraction", gt=0, lt=1, example=0.25)
    n_test = int(np.ceil(test_fraction * n))
    if min(n_test, n - n_test) < n_classes:
        raise ValueError(
            f"test_fraction = {test_fraction} leaves {n_test} test and {n - n_test} training "
            f"images; a stratified split needs at least {n_classes} (one per class) in each"
        )
    x_train, x_test, y_train, y_test = train_test_split(
        images, labels, test_size=test_fraction, stratify=labels, random_state=seed
    )
    return (x_train, y_train) if split == "train" else (x_test, y_test)

"""The seed-003 2-D presets (``toy_2d``) and the digits images (``digits``) of ottokit.data."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from sklearn.datasets import make_swiss_roll

from ottokit.data import (
    TOY_2D_NAMES,
    digits,
    gaussians_grid,
    gaussians_ring,
    swiss_roll,
    toy_2d,
    toy_2d_modes,
)


def _residuals(t):
    """Distance to and index of the nearest mode, and the residual vectors."""
    d2 = ((t.points[:, None, :] - t.modes[None, :, :]) ** 2).sum(-1)
    k = d2.argmin(axis=1)
    return k, t.points - t.modes[k]


@pytest.mark.parametrize(
    ("name", "n_modes", "radius", "sigma"),
    [
        ("25gaussians", 25, None, 0.05 / 2.828),
        ("8gaussians", 8, 2.0 / 1.414, 0.02 / 1.414),
    ],
)
def test_mixture_presets_have_their_modes_and_sigma(name, n_modes, radius, sigma):
    t = toy_2d(name, 20_000, seed=3)
    assert t.name == name and t.points.shape == (20_000, 2) and t.points.dtype == np.float64
    assert t.modes.shape == (n_modes, 2)
    assert t.sigma == pytest.approx(sigma, rel=1e-12)
    if radius is not None:
        np.testing.assert_allclose(np.linalg.norm(t.modes, axis=1), radius, rtol=1e-12)
    k, res = _residuals(t)
    # residuals are N(0, sigma^2 I): per-axis sd within 3% (sd of the estimate ~0.5%)
    np.testing.assert_allclose(res.std(axis=0), sigma, rtol=0.03)
    np.testing.assert_allclose(res.mean(axis=0), 0.0, atol=4 * sigma / np.sqrt(20_000))
    # |res|^2 / sigma^2 is chi^2 with 2 degrees of freedom
    r2 = (res**2).sum(axis=1) / sigma**2
    assert stats.kstest(r2, stats.chi2(2).cdf).pvalue > 1e-3
    # equal mixture weights
    assert stats.chisquare(np.bincount(k, minlength=n_modes)).pvalue > 1e-3


def test_25gaussians_grid_spacing_and_wrapper():
    modes, sigma = toy_2d_modes("25gaussians")
    ticks = np.unique(np.round(modes[:, 0], 12))
    np.testing.assert_allclose(np.diff(ticks), 2 / 2.828, rtol=1e-12)
    np.testing.assert_allclose(ticks[[0, -1]], [-4 / 2.828, 4 / 2.828], rtol=1e-12)
    # a thin preset: the same points as the generator with its defaults
    np.testing.assert_array_equal(
        toy_2d("25gaussians", 500, seed=7).points, gaussians_grid(500, seed=7)
    )
    ring = gaussians_ring(500, modes=8, radius=2.0, std=0.02, seed=7) / 1.414
    np.testing.assert_array_equal(toy_2d("8gaussians", 500, seed=7).points, ring)


def test_swissroll_preset_scaling():
    t = toy_2d("swissroll", 4000, seed=2)
    assert t.modes is None and t.sigma is None
    np.testing.assert_array_equal(t.points, swiss_roll(4000, seed=2))
    # make_swiss_roll draws the roll parameter u before the noise, so the noiseless roll
    # with the same random_state gives the centre line: 7.5 x - (u cos u, u sin u) must be
    # N(0, 0.25^2 I)
    clean, u = make_swiss_roll(4000, noise=0.0, random_state=2)
    np.testing.assert_allclose(clean[:, [0, 2]], np.stack([u * np.cos(u), u * np.sin(u)], 1))
    res = 7.5 * t.points - clean[:, [0, 2]]
    np.testing.assert_allclose(res.std(axis=0), 0.25, rtol=0.05)
    assert stats.kstest(res.ravel() / 0.25, "norm").pvalue > 1e-3


def test_toy_2d_is_seeded():
    for name in TOY_2D_NAMES:
        a, b = toy_2d(name, 100, seed=1).points, toy_2d(name, 100, seed=1).points
        np.testing.assert_array_equal(a, b)
        assert not np.array_equal(a, toy_2d(name, 100, seed=2).points)


def test_toy_2d_errors():
    with pytest.raises(ValueError, match="unknown 2-D data set 'moons'"):
        toy_2d("moons", 10)
    with pytest.raises(ValueError, match="unknown 2-D data set"):
        toy_2d_modes("moons")
    with pytest.raises(ValueError, match="n must be a positive integer"):
        toy_2d("25gaussians", 0)
    assert toy_2d_modes("swissroll") == (None, None)


def _rows(x, y):
    flat = np.concatenate([x.reshape(len(x), -1), y[:, None].astype(np.float32)], axis=1)
    return flat[np.lexsort(flat.T[::-1])]


def test_digits_split_is_a_stratified_partition():
    xa, ya = digits("all")
    xtr, ytr = digits("train")
    xte, yte = digits("test")
    assert xa.shape == (1797, 1, 8, 8) and xa.dtype == np.float32 and ya.dtype == np.int64
    assert xtr.shape == (1347, 1, 8, 8) and xte.shape == (450, 1, 8, 8)
    # intensities 0..16 mapped by x / 8 - 1: exactly the grid {k / 8 - 1}, covering [-1, 1]
    k = (xa.astype(np.float64) + 1) * 8
    np.testing.assert_array_equal(k, np.round(k))
    assert xa.min() == -1.0 and xa.max() == 1.0
    # train and test are disjoint and together are the whole set (as a multiset of rows)
    np.testing.assert_array_equal(
        _rows(np.concatenate([xtr, xte]), np.concatenate([ytr, yte])), _rows(xa, ya)
    )
    # stratified: each class split in the 3:1 ratio up to rounding
    per_class = np.bincount(ya)
    assert np.all(np.abs(np.bincount(yte, minlength=10) - 0.25 * per_class) <= 1)


def test_digits_split_is_seeded():
    a, b = digits("test", seed=1), digits("test", seed=1)
    np.testing.assert_array_equal(a[0], b[0])
    assert not np.array_equal(a[0], digits("test", seed=2)[0])
    assert digits("test", test_fraction=0.5)[0].shape[0] == 899


def test_digits_errors():
    with pytest.raises(ValueError, match="unknown split 'val'"):
        digits("val")
    for bad in (0, 1, 1.5, -0.1):
        with pytest.raises(ValueError, match=r"test_fraction must be a number in \(0, 1\)"):
            digits("train", test_fraction=bad)
    with pytest.raises(ValueError, match="at least 10"):
        digits("train", test_fraction=0.001)
    with pytest.raises(ValueError, match="seed must be a non-negative integer"):
        digits("train", seed=-1)

"""Sample-quality metrics (ottokit.metrics): closed forms, exact identities, and digits features."""

from __future__ import annotations

import datetime
import re
import warnings

import numpy as np
import pytest
import scipy.linalg
import torch
from torch import nn

from ottokit import ot
from ottokit.data import digits, toy_2d, toy_2d_modes
from ottokit.metrics import (
    DigitsCNN,
    DigitsFeatures,
    PrecisionRecall,
    digits_fid,
    digits_is,
    digits_precision_recall,
    fid_from_features,
    frechet_distance,
    inception_like_score,
    precision_recall_knn,
    toy_metrics,
)

MODES, SIGMA = toy_2d_modes("25gaussians")


def test_toy_metrics_on_exact_25_gaussians():
    x = toy_2d("25gaussians", 5000, seed=1).points
    out = toy_metrics(x, MODES, SIGMA)
    # P(|N(0, s^2 I_2)| > 4 s) = exp(-8) = 3.4e-4: about 1.7 of 5000 samples
    assert out["high_quality_fraction"] >= 0.998
    assert out["modes_covered"] == 25 and out["n_modes"] == 25 and out["n"] == 5000
    # multinomial counts of ~200 per mode: KL ~ (m - 1) / (2 n) = 2.4e-3
    assert 0 <= out["kl_uniform"] < 0.01
    # W between two exact samples of n = 1000 (exact OT on 1000 x 1000; 5000 x 5000 takes
    # seconds): the multinomial mode counts (sd sqrt(n / 25) = 6.3) leave a mass of about
    # 25 * 0.8 * 6.3 / (2 n) = 0.06 at the wrong modes, carried at least one mode spacing
    # 2 / 2.828 = 0.71 (W2^2 >= 0.03), plus the within-mode matching: W2 ~ 0.2-0.3, still far
    # below the spacing and the W2 of a collapse onto the centre mode, which is at least the
    # RMS distance of the grid from it, 0.71 * sqrt(E(i^2 + j^2)) = 1.41
    n = 1000
    x, y = (toy_2d("25gaussians", n, seed=s).points for s in (1, 2))
    w = toy_metrics(x, MODES, SIGMA, target=y, min_ot_samples=n)
    assert w["w2"] < 0.4
    assert w["w1"] <= w["w2"] + 1e-12  # W1 <= W2 (Jensen)


def test_high_quality_fraction_is_the_rayleigh_probability():
    # an exact isotropic component: |x - c| / sigma is Rayleigh, P(<= t) = 1 - exp(-t^2 / 2)
    x = toy_2d("25gaussians", 20_000, seed=4).points
    for t in (1.0, 2.0):
        p = 1 - np.exp(-(t**2) / 2)
        frac = toy_metrics(x, MODES, SIGMA, threshold=t)["high_quality_fraction"]
        assert abs(frac - p) < 4 * np.sqrt(p * (1 - p) / 20_000)


def test_toy_metrics_on_a_collapsed_sample():
    x = MODES[7] + SIGMA * np.random.default_rng(1).standard_normal((3000, 2))
    out = toy_metrics(x, MODES, SIGMA)
    assert out["modes_covered"] == 1
    assert out["kl_uniform"] == pytest.approx(np.log(25), rel=1e-12)
    assert out["mode_counts"][7] == sum(out["mode_counts"])
    assert "w2" not in out


def test_toy_metrics_kl_and_coverage_from_a_known_histogram():
    counts = np.array([40, 20, 19, 1] + [0] * 21)
    x = np.repeat(MODES, counts, axis=0)
    # far-away points are never of high quality and do not enter the histogram
    x = np.concatenate([x, MODES[:5] + 10 * SIGMA])
    out = toy_metrics(x, MODES, SIGMA)
    p = counts / counts.sum()
    nz = p > 0
    assert out["kl_uniform"] == pytest.approx(np.sum(p[nz] * np.log(25 * p[nz])), rel=1e-12)
    assert out["mode_counts"] == counts.tolist()
    assert out["modes_covered"] == 2  # 40 and 20 reach min_count = 20, 19 does not
    assert toy_metrics(x, MODES, SIGMA, min_count=19)["modes_covered"] == 3
    assert out["high_quality_fraction"] == pytest.approx(80 / 85)
    assert np.isnan(toy_metrics(MODES + 10 * SIGMA, MODES, SIGMA)["kl_uniform"])


def test_toy_metrics_w_is_the_translation_length():
    # W_p(mu, mu shifted by c) = |c| exactly, also for empirical measures (|E(X - Y)| bound)
    x = toy_2d("25gaussians", 400, seed=5).points
    c = np.array([0.3, -0.4])
    out = toy_metrics(x, MODES, SIGMA, target=x + c, min_ot_samples=400)
    assert out["w2"] == pytest.approx(0.5, rel=1e-9)
    assert out["w1"] == pytest.approx(0.5, rel=1e-9)


def test_toy_metrics_errors():
    x = toy_2d("25gaussians", 100, seed=0).points
    with pytest.raises(ValueError, match="min_ot_samples = 5000"):
        toy_metrics(x, MODES, SIGMA, target=x)
    with pytest.raises(ValueError, match="target must have the samples' dimension 2"):
        toy_metrics(x, MODES, SIGMA, target=np.zeros((100, 3)), min_ot_samples=1)
    with pytest.raises(ValueError, match="modes must have the samples' dimension 2"):
        toy_metrics(x, np.zeros((5, 3)), SIGMA)
    with pytest.raises(ValueError, match="sigma must be a positive number"):
        toy_metrics(x, MODES, 0.0)
    with pytest.raises(ValueError, match="threshold must be a positive number"):
        toy_metrics(x, MODES, SIGMA, threshold=-1)
    with pytest.raises(ValueError, match="min_count must be a positive integer"):
        toy_metrics(x, MODES, SIGMA, min_count=0)
    with pytest.raises(ValueError, match="min_ot_samples must be a positive integer"):
        toy_metrics(x, MODES, SIGMA, target=x, min_ot_samples=0)
    with pytest.raises(ValueError, match="samples must be a non-empty"):
        toy_metrics(np.zeros((0, 2)), MODES, SIGMA)
    bad = x.copy()
    bad[3, 0] = np.nan
    with pytest.raises(ValueError, match="row 3"):
        toy_metrics(bad, MODES, SIGMA)


def test_toy_metrics_high_quality_ball_is_closed_with_radius_four_sigma_by_default():
    modes, sigma = np.array([[0.0, 0.0], [10.0, 0.0]]), 0.25
    # distances 1 = 4 sigma exactly (on the boundary, inside), 1.125 = 4.5 sigma (outside)
    x = np.array([[1.0, 0.0], [10.0, -1.0], [0.0, 1.125], [8.875, 0.0]])
    out = toy_metrics(x, modes, sigma, min_count=1)
    assert out["threshold"] == 4.0 and out["min_count"] == 1 and out["mode_counts"] == [1, 1]
    assert out["high_quality_fraction"] == 0.5
    assert toy_metrics(x, modes, sigma, threshold=4.5)["high_quality_fraction"] == 1.0


def test_toy_metrics_errors_say_how_to_fix_them():
    x = toy_2d("25gaussians", 100, seed=0).points
    bad = MODES.copy()
    bad[4, 1] = np.inf
    with pytest.raises(ValueError, match="^modes must be finite"):
        toy_metrics(x, bad, SIGMA)
    with pytest.raises(ValueError, match="got -1; a number of sigmas, e.g. 4$"):
        toy_metrics(x, MODES, SIGMA, threshold=-1)
    with pytest.raises(ValueError, match=r"got 0 \(e.g. min_count=20\)$"):
        toy_metrics(x, MODES, SIGMA, min_count=0)
    with pytest.raises(ValueError, match=r"got 0 \(e.g. min_ot_samples=5000\)$"):
        toy_metrics(x, MODES, SIGMA, target=x, min_ot_samples=0)
    with pytest.raises(ValueError, match="^target must be finite"):
        toy_metrics(x, MODES, SIGMA, target=np.where(x > 0.5, np.nan, x), min_ot_samples=1)
    with pytest.raises(TypeError, match="^samples must be an array of real numbers"):
        toy_metrics([["a", "b"]], MODES, SIGMA)
    tail = (
        r"got 100 and 60; the empirical distances are biased upwards at small n\. "
        r"Pass more points, or a smaller min_ot_samples knowingly\.$"
    )
    with pytest.raises(ValueError, match=tail):
        toy_metrics(x, MODES, SIGMA, target=x[:60], min_ot_samples=80)


def _spd(d, seed):
    a = np.random.default_rng(seed).standard_normal((d, 2 * d))
    return a @ a.T / (2 * d) + 0.1 * np.eye(d)


def test_frechet_distance_diagonal_closed_form():
    rng = np.random.default_rng(0)
    m1, m2 = rng.standard_normal(6), rng.standard_normal(6)
    v1, v2 = rng.uniform(0.1, 3, 6), rng.uniform(0.1, 3, 6)
    exact = np.sum((m1 - m2) ** 2) + np.sum((np.sqrt(v1) - np.sqrt(v2)) ** 2)
    assert frechet_distance(m1, np.diag(v1), m2, np.diag(v2)) == pytest.approx(exact, rel=1e-12)


def test_frechet_distance_against_scipy_sqrtm_and_bures():
    rng = np.random.default_rng(1)
    m1, m2 = rng.standard_normal(5), rng.standard_normal(5)
    c1, c2 = _spd(5, 2), _spd(5, 3)
    covmean = scipy.linalg.sqrtm(c1 @ c2).real
    ref = np.sum((m1 - m2) ** 2) + np.trace(c1 + c2 - 2 * covmean)
    value = frechet_distance(m1, c1, m2, c2)
    assert value == pytest.approx(ref, rel=1e-10)
    assert value == pytest.approx(ot.w2_gaussian(m1, c1, m2, c2) ** 2, rel=1e-8)
    assert frechet_distance(m2, c2, m1, c1) == pytest.approx(value, rel=1e-10)


def test_frechet_distance_singular_covariances():
    # N(0, diag(1, 0)) vs N(0, diag(0, 1)): C1^1/2 C2 C1^1/2 = 0, so d^2 = tr C1 + tr C2 = 2
    assert frechet_distance([0, 0], np.diag([1.0, 0]), [0, 0], np.diag([0, 1.0])) == (
        pytest.approx(2.0, abs=1e-12)
    )
    # rank-1 covariances along the same line, standard deviations 1 and 3: (1 - 3)^2
    u = np.array([[0.6], [0.8]])
    value = frechet_distance([0, 0], u @ u.T, [0, 0], 9 * u @ u.T)
    assert value == pytest.approx(4.0, rel=1e-7)


def test_frechet_distance_errors():
    with pytest.raises(ValueError, match="same length"):
        frechet_distance([0, 0], np.eye(2), [0, 0, 0], np.eye(3))
    with pytest.raises(ValueError, match=r"C2 must be a \(2, 2\) matrix"):
        frechet_distance([0, 0], np.eye(2), [0, 0], np.eye(3))
    with pytest.raises(ValueError, match="C1 must be symmetric"):
        frechet_distance([0, 0], [[1, 0.5], [0, 1]], [0, 0], np.eye(2))
    with pytest.raises(ValueError, match="C2 must be positive semi-definite"):
        frechet_distance([0, 0], np.eye(2), [0, 0], np.diag([1.0, -1.0]))
    with pytest.raises(ValueError, match="must be finite"):
        frechet_distance([0, np.inf], np.eye(2), [0, 0], np.eye(2))


def test_frechet_distance_names_the_argument_at_fault():
    for mu1, mu2, name in (([0, np.inf], [0, 0], "mu1"), ([0, 0], [np.nan, 0], "mu2")):
        with pytest.raises(ValueError, match=rf"^{name} must be finite"):
            frechet_distance(mu1, np.eye(2), mu2, np.eye(2))
    with pytest.raises(ValueError, match=r"^C1 must be a \(2, 2\) matrix"):
        frechet_distance([0, 0], np.eye(3), [0, 0], np.eye(2))


def test_frechet_distance_accepts_round_off_asymmetry_only():
    # an estimated covariance is symmetric up to round-off: an asymmetry of 1e-9 relative to
    # the largest entry is accepted (moving d^2 by about as little), 1e-6 is refused
    rng = np.random.default_rng(5)
    m1, m2 = rng.standard_normal(3), rng.standard_normal(3)
    c1, c2 = _spd(3, 6), _spd(3, 7)
    value = frechet_distance(m1, c1, m2, c2)
    for rel in (1e-9, 1e-6):
        e1, e2 = np.zeros((3, 3)), np.zeros((3, 3))
        e1[0, 1], e2[1, 2] = rel * np.abs(c1).max(), rel * np.abs(c2).max()
        if rel < 1e-8:
            assert frechet_distance(m1, c1 + e1, m2, c2) == pytest.approx(value, rel=1e-7)
            assert frechet_distance(m1, c1, m2, c2 + e2) == pytest.approx(value, rel=1e-7)
        else:
            with pytest.raises(ValueError, match="^C1 must be symmetric"):
                frechet_distance(m1, c1 + e1, m2, c2)
            with pytest.raises(ValueError, match="^C2 must be symmetric"):
                frechet_distance(m1, c1, m2, c2 + e2)

def test_fid_from_features_identities():
    f = np.random.default_rng(0).standard_normal((300, 8)) @ _spd(8, 4)
    assert fid_from_features(f, f) == pytest.approx(0.0, abs=1e-9)
    c = np.linspace(-1, 1, 8)
    # a translation by c adds exactly |c|^2 (same covariance)
    assert fid_from_features(f, f + c) == pytest.approx(np.sum(c**2), rel=1e-8)
    # a scaling by s: covariance s^2 C, so d^2 = (1 - s)^2 (|mean|^2 + tr C)
    s = 1.7
    cov = np.cov(f, rowvar=False)
    expected = (1 - s) ** 2 * (np.sum(f.mean(0) ** 2) + np.trace(cov))
    assert fid_from_features(f, s * f) == pytest.approx(expected, rel=1e-8)
    # torch inputs are accepted
    assert fid_from_features(torch.from_numpy(f), f + c) == pytest.approx(np.sum(c**2), rel=1e-8)


def test_fid_from_features_errors():
    f = np.zeros((10, 8))
    with pytest.raises(ValueError, match=r"needs at least d \+ 1 = 9 samples"):
        fid_from_features(f[:8], np.ones((50, 8)))
    with pytest.raises(ValueError, match="same feature dimension"):
        fid_from_features(np.ones((50, 8)), np.ones((50, 7)))


def test_fid_from_features_with_d_plus_1_rows_and_the_set_at_fault():
    # d + 1 rows are the fewest with a full-rank covariance, and enough for the identities
    f = np.random.default_rng(3).standard_normal((9, 8))
    c = np.linspace(-1, 1, 8)
    assert fid_from_features(f, f + c) == pytest.approx(np.sum(c**2), rel=1e-8)
    bad = f.copy()
    bad[2, 5] = np.nan
    good = np.random.default_rng(4).standard_normal((50, 8))
    for f1, f2, name in ((bad, good, "f1"), (good, bad, "f2")):
        with pytest.raises(ValueError, match=f"^{name} must be finite"):
            fid_from_features(f1, f2)
    for f1, f2, name in ((f[:8], good, "f1"), (good, f[:8], "f2")):
        with pytest.raises(ValueError, match=f"^{name} has 8 samples of dimension 8"):
            fid_from_features(f1, f2)

def test_inception_like_score_extremes():
    k = 10
    onehot = np.eye(k)[np.arange(500) % k]  # confident, every split balanced over k classes
    mean, std = inception_like_score(onehot, splits=5)
    assert mean == pytest.approx(k, rel=1e-12) and std == pytest.approx(0.0, abs=1e-12)
    same = np.tile(np.random.default_rng(0).dirichlet(np.ones(k)), (200, 1))
    assert inception_like_score(same, splits=4)[0] == pytest.approx(1.0, rel=1e-12)


def test_inception_like_score_is_exp_mutual_information():
    p = np.random.default_rng(1).dirichlet(0.3 * np.ones(7), size=400)

    def entropy(q):
        return -np.sum(np.where(q > 0, q * np.log(np.where(q > 0, q, 1)), 0), axis=-1)

    expected = np.exp(entropy(p.mean(0)) - entropy(p).mean())
    mean, std = inception_like_score(p, splits=1)
    assert mean == pytest.approx(expected, rel=1e-10) and std == 0.0
    assert 1 <= inception_like_score(p, splits=8)[0] <= 7


def test_inception_like_score_errors():
    with pytest.raises(ValueError, match="probability rows"):
        inception_like_score(np.ones((10, 3)))
    with pytest.raises(ValueError, match="probability rows"):
        inception_like_score(np.array([[1.5, -0.5]] * 4))
    with pytest.raises(ValueError, match=r"splits must be an integer in \[1, 4\]"):
        inception_like_score(np.full((4, 2), 0.5), splits=5)


def _exp_mutual_information(p):
    def entropy(q):
        return -np.sum(np.where(q > 0, q * np.log(np.where(q > 0, q, 1)), 0), axis=-1)

    return np.exp(entropy(p.mean(0)) - entropy(p).mean())


def test_inception_like_score_default_is_ten_contiguous_splits():
    p = np.random.default_rng(2).dirichlet(0.5 * np.ones(6), size=230)
    per_split = [_exp_mutual_information(c) for c in np.array_split(p, 10)]
    mean, std = inception_like_score(p)
    assert mean == pytest.approx(np.mean(per_split), rel=1e-10)
    assert std == pytest.approx(np.std(per_split), rel=1e-8)


def test_inception_like_score_tolerates_float32_round_off_in_the_rows():
    p = np.random.default_rng(3).dirichlet(np.ones(5), size=120)
    # rows off by 5e-5 (float32 softmax round-off is far smaller) are accepted and normalised
    scaled = p * (1 + 5e-5 * np.linspace(-1, 1, 120))[:, None]
    exact = inception_like_score(p, splits=3)
    assert inception_like_score(scaled, splits=3) == pytest.approx(exact, rel=1e-12)
    message = (
        r"^probs must hold probability rows \(non-negative, each summing to 1\); "
        r"apply a softmax to logits first$"
    )
    with pytest.raises(ValueError, match=message):
        inception_like_score(p * 1.001)
    bad = p.copy()
    bad[7, 1] = np.nan
    with pytest.raises(ValueError, match="^probs must be finite"):
        inception_like_score(bad)
    with pytest.raises(ValueError, match=r"got 121; at most n = 120 rows, e.g. 10$"):
        inception_like_score(p, splits=121)

def _brute_force_pr(real, fake, k):
    def radii(a):
        d = np.linalg.norm(a[:, None] - a[None], axis=-1)
        return np.sort(d, axis=1)[:, k]  # column 0 is the point itself

    def covered(p, c, r):
        return (np.linalg.norm(p[:, None] - c[None], axis=-1) <= r[None]).any(axis=1).mean()

    return covered(fake, real, radii(real)), covered(real, fake, radii(fake))


def test_precision_recall_identities_and_reference():
    rng = np.random.default_rng(0)
    real = rng.standard_normal((200, 4))
    assert precision_recall_knn(real, real, k=3) == PrecisionRecall(1.0, 1.0)
    far = rng.standard_normal((150, 4)) + 100
    assert precision_recall_knn(real, far, k=3) == PrecisionRecall(0.0, 0.0)
    # half the fakes are copies of reals, half a tight far clump: precision exactly 1/2
    fake = np.concatenate([real[:100], 0.01 * rng.standard_normal((100, 4)) + 100])
    pr = precision_recall_knn(real, fake, k=3)
    assert pr.precision == 0.5 and pr.recall >= 0.5
    # a shifted, shrunk cloud against an independent brute-force implementation
    fake2 = 0.7 * rng.standard_normal((120, 4)) + 0.8
    for k in (1, 3, 5):
        np.testing.assert_allclose(
            precision_recall_knn(real, fake2, k), _brute_force_pr(real, fake2, k), atol=1e-12
        )


def test_precision_recall_ball_radius_by_hand():
    real = np.array([[0.0], [1.0], [3.0]])  # k = 1 radii: 1, 1, 2
    assert precision_recall_knn(real, np.array([[4.9], [4.95]]), k=1).precision == 1.0
    assert precision_recall_knn(real, np.array([[5.1], [5.15]]), k=1).precision == 0.0


def test_precision_recall_errors():
    with pytest.raises(ValueError, match="more than k rows"):
        precision_recall_knn(np.zeros((3, 2)), np.zeros((10, 2)), k=3)
    with pytest.raises(ValueError, match="k must be a positive integer"):
        precision_recall_knn(np.zeros((5, 2)), np.zeros((5, 2)), k=0)
    with pytest.raises(ValueError, match="same feature dimension"):
        precision_recall_knn(np.zeros((5, 2)), np.zeros((5, 3)))


def test_precision_recall_balls_are_closed_and_translation_invariant():
    real = np.array([[0.0], [1.0], [3.0]])  # k = 1 radii: 1, 1, 2
    on_sphere, outside = np.array([[5.0], [-1.0]]), np.array([[5.0001], [-1.0001]])
    for shift in (0.0, 1e6):
        # a fake on a real ball's boundary is inside (|f - r| <= R_k(r), Kynkaanniemi et al.)
        pr = precision_recall_knn(real + shift, on_sphere + shift, k=1)
        assert pr.precision == 1.0
        assert precision_recall_knn(real + shift, outside + shift, k=1).precision == 0.0
    rng = np.random.default_rng(6)
    a, b = rng.standard_normal((300, 4)), 0.7 * rng.standard_normal((200, 4)) + 0.8
    expected = _brute_force_pr(a, b, 3)
    # precision and recall depend on differences only: shifting both sets changes nothing
    for shift in (0.0, 1e4, 1e8):
        assert precision_recall_knn(a + shift, b + shift) == pytest.approx(expected, abs=1e-12)


def test_precision_recall_in_several_chunks_against_brute_force():
    # 1500 centres: the points are compared in chunks of 2e6 // 1500 = 1333 rows
    rng = np.random.default_rng(7)
    real, fake = rng.standard_normal((1500, 2)), 1.2 * rng.standard_normal((1500, 2)) + 0.3
    np.testing.assert_allclose(
        precision_recall_knn(real, fake, k=2), _brute_force_pr(real, fake, 2), atol=1e-12
    )


def test_precision_recall_names_the_set_at_fault():
    good = np.zeros((10, 2))
    bad = good.copy()
    bad[4, 1] = np.inf
    for real, fake, name in ((bad, good, "real_f"), (good, bad, "fake_f")):
        with pytest.raises(ValueError, match=f"^{name} must be finite"):
            precision_recall_knn(real, fake)
    with pytest.raises(ValueError, match="got 3 real and 10 fake$"):
        precision_recall_knn(np.zeros((3, 2)), good, k=3)
    with pytest.raises(ValueError, match="got 10 real and 3 fake$"):
        precision_recall_knn(good, np.zeros((3, 2)), k=3)
    with pytest.raises(ValueError, match=r"got 0 \(e.g. k=3\)$"):
        precision_recall_knn(good, good, k=0)

@pytest.fixture(scope="module")
def extractor(tmp_path_factory):
    """The default extractor (30 epochs): for its accuracy and for the metrics' values."""
    return DigitsFeatures(tmp_path_factory.mktemp("digits_cache"), seed=0)


@pytest.fixture(scope="module")
def quick_extractor(tmp_path_factory):
    """A one-epoch extractor (a tenth of a second to train), for the tests of the cache and of
    the input checks, which need a trained model but not a good one."""
    return DigitsFeatures(tmp_path_factory.mktemp("digits_quick"), seed=0, epochs=1)


@pytest.fixture(scope="module")
def digit_sets():
    x_train, _ = digits("train")
    x_test, _ = digits("test")
    rng = np.random.default_rng(0)
    noisy = np.clip(x_test + 0.5 * rng.standard_normal(x_test.shape), -1, 1).astype(np.float32)
    noise = rng.uniform(-1, 1, x_test.shape).astype(np.float32)
    return {"train": x_train, "test": x_test, "noisy": noisy, "noise": noise}


def test_digits_classifier_accuracy(extractor):
    assert extractor.accuracy >= 0.95
    assert not extractor.from_cache and extractor.cache_file.exists()


def test_digits_extractor_reloads_from_cache(quick_extractor, digit_sets):
    extractor = quick_extractor
    assert extractor.from_cache is False and extractor.cache_file.exists()
    # the accuracy is measured on the held-out test split of the same seed
    x_test, y_test = digits("test", seed=0)
    assert extractor.accuracy == np.mean(extractor.probs(x_test).argmax(axis=1) == y_test)
    # a generator's output (a tensor that requires grad) is accepted as it is
    x = torch.from_numpy(digit_sets["test"][:10]).requires_grad_()
    np.testing.assert_array_equal(extractor.features(x), extractor.features(x.detach().numpy()))
    rng_state = torch.get_rng_state()
    again = DigitsFeatures(extractor.cache_file.parent, seed=0, epochs=1)
    assert torch.equal(torch.get_rng_state(), rng_state)  # the caller's RNG is untouched
    assert again.from_cache and again.accuracy == extractor.accuracy
    x = digit_sets["test"][:50]
    np.testing.assert_array_equal(again.features(x), extractor.features(x))
    probs = extractor.probs(x)
    assert probs.shape == (50, 10) and extractor.features(x).shape == (50, 64)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-12)


def test_digits_metrics_separate_real_from_noisy(extractor, digit_sets):
    s = digit_sets
    fid_real = digits_fid(s["test"], s["train"], extractor)
    fid_noisy = digits_fid(s["noisy"], s["train"], extractor)
    fid_noise = digits_fid(s["noise"], s["train"], extractor)
    assert 0 < fid_real < fid_noisy < fid_noise
    assert fid_real < 0.25 * fid_noisy
    is_real, is_noise = digits_is(s["test"], extractor)[0], digits_is(s["noise"], extractor)[0]
    assert 1 <= is_noise < is_real <= 10
    pr_real = digits_precision_recall(s["test"], s["train"], extractor)
    pr_noise = digits_precision_recall(s["noise"], s["train"], extractor)
    assert pr_real.precision > 0.7 and pr_real.recall > 0.7
    assert pr_noise.precision < 0.1


def test_digits_extractor_bad_cache(tmp_path):
    name = DigitsFeatures.cache_name(0, 30)
    (tmp_path / name).write_bytes(b"not a torch file")
    with pytest.raises(ValueError, match="cannot be read.*delete the file"):
        DigitsFeatures(tmp_path, seed=0)
    other = {
        "format": "ottokit.metrics.DigitsFeatures",
        "arch": "something-else/v9",
        "seed": 0,
        "epochs": 30,
        "state_dict": {},
    }
    torch.save(other, tmp_path / name)
    with pytest.raises(ValueError, match="has arch = 'something-else/v9'"):
        DigitsFeatures(tmp_path, seed=0)
    payload = torch.load(tmp_path / name, weights_only=True)
    payload["arch"] = "DigitsCNN-c16-c32-p2-f64-10/v1"
    payload["state_dict"] = {"head.weight": torch.zeros(3, 3)}
    torch.save(payload, tmp_path / name)
    with pytest.raises(ValueError, match="another architecture"):
        DigitsFeatures(tmp_path, seed=0)


def test_digits_extractor_input_errors(quick_extractor, digit_sets):
    extractor = quick_extractor
    with pytest.raises(ValueError, match=r"shape \(n, 1, 8, 8\).*got \(5, 64\)"):
        extractor.features(np.zeros((5, 64), np.float32))
    with pytest.raises(
        ValueError, match=r"got \(5, 3, 8, 8\); reshape e\.g\. with x\.reshape\(-1, 1, 8, 8\)$"
    ):
        extractor.probs(np.zeros((5, 3, 8, 8), np.float32))
    with pytest.raises(ValueError, match=r"^images must be finite \(no NaN or inf\)$"):
        extractor.features(np.full((2, 1, 8, 8), np.nan, np.float32))
    with pytest.warns(
        UserWarning,
        match=r"expects \[-1, 1\] \(ottokit\.data\.digits scales x -> x / 8 - 1\)$",
    ):
        feats = extractor.features(8 * (digit_sets["test"][:5] + 1))
    assert feats.dtype == np.float64  # as documented: features for float64 statistics (FID)
    with pytest.raises(ValueError, match="needs at least d \\+ 1 = 65 samples"):
        digits_fid(digit_sets["test"][:40], digit_sets["train"], extractor)
    with pytest.raises(TypeError, match="DigitsFeatures extractor"):
        digits_is(digit_sets["test"], object())
    with pytest.raises(ValueError, match="seed must be a non-negative integer"):
        DigitsFeatures(None, seed=-1)


def test_digits_extractor_training_is_deterministic(quick_extractor):
    # trained with and without a cache directory, and by a caller that uses 4 torch threads
    # (training runs on one: more would change the summation order, and the weights by ~1e-7)
    previous = torch.get_num_threads()
    torch.set_num_threads(4)
    try:
        b = DigitsFeatures(None, seed=0, epochs=1)
        assert torch.get_num_threads() == 4  # the caller's setting is restored
    finally:
        torch.set_num_threads(previous)
    a = quick_extractor
    c = DigitsFeatures(None, seed=4, epochs=1)
    assert b.cache_file is None and not b.from_cache
    sa, sb, sc = (m.model.state_dict() for m in (a, b, c))
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)


def test_digits_extractor_refuses_a_cache_that_is_not_its_payload(quick_extractor, tmp_path):
    name = DigitsFeatures.cache_name(0, 1)
    torch.save([1, 2, 3], tmp_path / name)
    with pytest.raises(ValueError, match="is not a cached digits extractor; delete the file"):
        DigitsFeatures(tmp_path, seed=0, epochs=1)
    payload = torch.load(quick_extractor.cache_file, weights_only=True)
    key = next(iter(payload["state_dict"]))
    expected = tuple(payload["state_dict"][key].shape)
    payload["state_dict"][key] = torch.zeros(1)
    torch.save(payload, tmp_path / name)
    with pytest.raises(ValueError, match=f"weight '{key}' has shape.*another architecture"):
        DigitsFeatures(tmp_path, seed=0, epochs=1)
    message = rf"has shape torch.Size\(\[1\]\), expected {re.escape(str(expected))} \(another"
    with pytest.raises(ValueError, match=message):
        DigitsFeatures(tmp_path, seed=0, epochs=1)
    payload["state_dict"][key] = [1.0, 2.0]  # not a tensor at all
    torch.save(payload, tmp_path / name)
    with pytest.raises(ValueError, match=f"weight '{key}' has shape None, expected"):
        DigitsFeatures(tmp_path, seed=0, epochs=1)


def test_digits_extractor_refuses_images_that_are_not_real_numbers(quick_extractor):
    with pytest.raises(TypeError, match="images must be real numbers, got dtype torch.bool"):
        quick_extractor.features(torch.zeros(2, 1, 8, 8, dtype=torch.bool))


def test_digits_scores_are_the_feature_statistics_with_their_defaults(quick_extractor, digit_sets):
    ex = quick_extractor
    x, ref = digit_sets["noisy"][:150], digit_sets["test"][:150]
    fx, fr, probs = ex.features(x), ex.features(ref), ex.probs(x)
    assert digits_fid(x, ref, ex) == fid_from_features(fx, fr)
    # 10 splits and k = 3 by default (Salimans et al. 2016; Kynkaanniemi et al. 2019)
    assert digits_is(x, ex) == inception_like_score(probs, 10)
    assert digits_is(x, ex, splits=3) == inception_like_score(probs, 3) != digits_is(x, ex)
    assert digits_precision_recall(x, ref, ex) == precision_recall_knn(fr, fx, 3)
    pr7 = digits_precision_recall(x, ref, ex, k=7)
    assert pr7 == precision_recall_knn(fr, fx, 7) != digits_precision_recall(x, ref, ex)
    message = (
        r"^features must be an? \S*DigitsFeatures, got str; "
        r"build a DigitsFeatures extractor with DigitsFeatures\(cache_dir\)$"
    )
    with pytest.raises(TypeError, match=message):
        digits_fid(x, ref, "features")


def test_digits_extractor_cache_must_be_a_weights_only_payload(tmp_path):
    name = DigitsFeatures.cache_name(0, 1)
    settings = {
        "format": "ottokit.metrics.DigitsFeatures",
        "arch": "DigitsCNN-c16-c32-p2-f64-10/v1",
        "seed": 0,
        "epochs": 1,
    }
    # the right settings but no weights
    torch.save(settings, tmp_path / name)
    with pytest.raises(ValueError, match="is not a cached digits extractor; delete the file"):
        DigitsFeatures(tmp_path, seed=0, epochs=1)
    # a pickle that needs more than tensors and plain containers is never unpickled
    payload = {**settings, "state_dict": {}, "date": datetime.date(2020, 1, 1)}
    torch.save(payload, tmp_path / name)
    with pytest.raises(ValueError, match=r"cannot be read \(UnpicklingError: it is corrupt"):
        DigitsFeatures(tmp_path, seed=0, epochs=1)


def test_digits_extractor_batches_and_input_types_do_not_change_the_features(
    quick_extractor, digit_sets, tmp_path
):
    x = digit_sets["test"][:50]
    f, p = quick_extractor.features(x), quick_extractor.probs(x)
    # the same cached weights evaluated in batches of 7 (the last one partial)
    small = DigitsFeatures(quick_extractor.cache_file.parent, seed=0, epochs=1, batch_size=7)
    assert small.from_cache and small.batch_size == 7
    np.testing.assert_allclose(small.features(x), f, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(small.probs(x), p, rtol=1e-5, atol=1e-7)
    single = DigitsFeatures(quick_extractor.cache_file.parent, seed=0, epochs=1, batch_size=1)
    np.testing.assert_allclose(single.features(x[:5]), f[:5], rtol=1e-5, atol=1e-6)
    # integer images (0..16 steps of the digits scaled to [-1, 1] are multiples of 1/8)
    ints = np.rint(8 * (x + 1)).astype(np.uint8)
    with pytest.warns(UserWarning, match=r"range over \[0, 16\]") as caught:
        from_ints = quick_extractor.features(ints)
        from_floats = quick_extractor.features(8 * (x + 1))
    assert len(caught) == 2
    np.testing.assert_allclose(from_ints, from_floats, atol=1e-5)
    # a cache directory that does not exist yet is created, parents included
    nested = DigitsFeatures(tmp_path / "a" / "b", seed=0, epochs=1)
    assert nested.cache_file.exists() and not nested.from_cache


def test_digits_extractor_range_warning_starts_beyond_one_and_a_half(quick_extractor):
    edge = np.zeros((2, 1, 8, 8), np.float32)
    edge[0, 0, 0, 0], edge[1, 0, 3, 3] = -1.5, 1.5
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        quick_extractor.probs(edge)
    for value in (-1.6, 1.6):
        with pytest.warns(UserWarning, match="ottokit.data.digits scales x -> x / 8 - 1"):
            quick_extractor.probs(np.full((1, 1, 8, 8), value, np.float32))


def test_digits_extractor_argument_errors(quick_extractor):
    with pytest.raises(ValueError, match=r"with n >= 1 .*got \(0, 1, 8, 8\)"):
        quick_extractor.features(np.zeros((0, 1, 8, 8), np.float32))
    with pytest.raises(ValueError, match=r"got 0 \(e.g. epochs=30\)$"):
        DigitsFeatures(None, epochs=0)
    with pytest.raises(ValueError, match=r"got 0 \(e.g. batch_size=1024\)$"):
        DigitsFeatures(None, batch_size=0)


def test_digits_extractor_follows_its_documented_training_recipe():
    # one epoch of the docstring's recipe written out, for seed 1 (not the default 0): weights
    # initialised under torch.manual_seed(seed), the seed's training split in batches of 64 in
    # an order drawn from a generator seeded by seed, Adam with lr 2e-3 on the cross-entropy,
    # one torch thread
    seed = 1
    x, y = (torch.from_numpy(a) for a in digits("train", seed=seed))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = DigitsCNN()
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        opt = torch.optim.Adam(model.parameters(), lr=2e-3)
        for idx in torch.randperm(len(x), generator=torch.Generator().manual_seed(seed)).split(64):
            loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    finally:
        torch.set_num_threads(previous)
    ex = DigitsFeatures(None, seed=seed, epochs=1)
    for key, value in model.state_dict().items():
        torch.testing.assert_close(ex.model.state_dict()[key], value, rtol=1e-6, atol=1e-7)
    x_test, y_test = digits("test", seed=seed)
    with torch.no_grad():
        accuracy = np.mean(model(torch.from_numpy(x_test)).argmax(dim=1).numpy() == y_test)
    assert ex.accuracy == pytest.approx(accuracy, abs=1e-12)


def test_digits_cnn_is_the_documented_architecture(quick_extractor, digit_sets, tmp_path):
    # conv 3x3 (1 -> 16), ReLU, conv 3x3 (16 -> 32), ReLU, max-pool 2, 512 -> 64 linear, ReLU
    kinds = [type(m) for m in DigitsCNN().body]
    assert kinds == [nn.Conv2d, nn.ReLU, nn.Conv2d, nn.ReLU, nn.MaxPool2d, nn.Flatten,
                     nn.Linear, nn.ReLU]
    assert quick_extractor.features(digit_sets["test"][:20]).min() >= 0.0  # after a ReLU
    # seed 0 by default: the default extractor reads the seed-0 cache file
    (tmp_path / DigitsFeatures.cache_name(0, 1)).write_bytes(b"not a torch file")
    with pytest.raises(ValueError, match="cannot be read"):
        DigitsFeatures(tmp_path, epochs=1)

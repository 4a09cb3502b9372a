"""Sharded evaluation on 2 gloo ranks equals a single-process run on the union.

* ExactVelocity(sharded=True): each rank holds a share of the data set (uneven shares, an
  empty share); the max-stabilised all-reduce of the shares' log-sum-exp and posterior
  means must give the unsharded velocity, posterior mean and log-density to 1e-12
  (relative, float64), also at queries where one share has negligible weight (its
  exp(L_r - M) underflows to 0) and at t = 0 (arg-max) and t = tau (m = 0).
* DOT (target, latent, naive), DRS, MH-GAN and DDLS with distributed=True: the samples are
  split across the ranks, every random tensor is drawn for the whole batch and sliced, so
  each rank must return the single-process result (per-sample arithmetic on fewer rows
  may differ in the last bits, hence 1e-12 rather than equality).
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from _dot_cases import (
    METHODS,
    PRIOR,
    REFUSALS,
    RTOL,
    N,
    assert_differing_arguments_refused,
    assert_same_result,
    differing_arguments,
    dot_runs,
    max_abs,
    message,
    nets,
)
from _ranks import run_ranks
from scipy import stats

from ottokit.dot import ddls, effective_lipschitz
from ottokit.experiments._dot_common import MethodRuns, Streams, compare_methods
from ottokit.flowmatch import CondOT, ExactVelocity

F64 = torch.float64
TIMES = (0.0, 0.02, 0.5, 0.95, 1.0)
SPLIT = 29  # rank 0 holds data[:29] (one cluster), rank 1 data[29:] (a far cluster)


def _velocity_problem() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Two clusters 40 apart, unequal weights; queries near each cluster and between them."""
    g = torch.Generator().manual_seed(11)
    near = torch.randn(SPLIT, 2, generator=g, dtype=F64) * torch.tensor([1.0, 0.5], dtype=F64)
    far = 0.3 * torch.randn(8, 2, generator=g, dtype=F64) + 40.0
    w = torch.rand(SPLIT + 8, generator=g, dtype=F64) + 0.05
    x = torch.cat([
        1.5 * torch.randn(12, 2, generator=g, dtype=F64),
        far[:3] + 0.1 * torch.randn(3, 2, generator=g, dtype=F64),
        torch.tensor([[20.0, 20.0], [1.0, 39.0]], dtype=F64),
    ])
    return torch.cat([near, far]), w / w.sum(), x


def _evaluate(v: ExactVelocity, x: torch.Tensor) -> dict:
    out = {}
    for t in TIMES:
        out[f"v{t}"] = v(t, x)
        out[f"ybar{t}"] = v.posterior_mean(t, x)
        if t > 0:
            out[f"logp{t}"] = v.log_density(t, x)
    return out



def _velocity_ranks(r: int) -> dict:
    data, w, x = _velocity_problem()
    mine = slice(0, SPLIT) if r == 0 else slice(SPLIT, None)
    v = ExactVelocity(CondOT(1.0), data[mine], w[mine], sharded=True, data_chunk=7)
    # uniform weights, rank 1's share empty
    u = ExactVelocity(CondOT(1.0), data if r == 0 else data[:0], sharded=True)
    per_share = w[mine] / w[mine].sum()
    return {
        "weighted": _evaluate(v, x),
        "uniform": _evaluate(u, x),
        "draws": v.sample_marginal(0.0, 20_000, torch.Generator().manual_seed(5 + r)),
        "per_share_weights": message(
            lambda: ExactVelocity(CondOT(1.0), data[mine], per_share, sharded=True)
        ),
        "other_queries": message(lambda: v(0.5, x + r)),
        "grad": message(lambda: v(0.5, x.clone().requires_grad_(True))),
    }


def _max_rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max())


@pytest.mark.parametrize("case", ["weighted", "uniform"])
def test_sharded_exact_velocity_equals_the_unsharded_one(velocity_ranks, case) -> None:
    data, w, x = _velocity_problem()
    ref = _evaluate(ExactVelocity(CondOT(1.0), data, w if case == "weighted" else None), x)
    for got in (r[case] for r in velocity_ranks):
        for key, value in ref.items():
            if key.endswith("0.0"):  # arg-max at t = 0: the very same data point
                assert torch.equal(got[key], value), key
            else:
                assert _max_rel(got[key], value) <= RTOL, key


def test_a_share_with_negligible_weight_drops_out_exactly(velocity_ranks) -> None:
    # at t = 0.02 each query near one cluster sees the other one at exp(-O(1e6)) = 0:
    # the sharded result must be that cluster's posterior alone
    data, w, x = _velocity_problem()
    near = ExactVelocity(CondOT(1.0), data[:SPLIT], w[:SPLIT] / w[:SPLIT].sum())
    far = ExactVelocity(CondOT(1.0), data[SPLIT:], w[SPLIT:] / w[SPLIT:].sum())
    got = velocity_ranks[0]["weighted"]["ybar0.02"]
    assert _max_rel(got[:12], near.posterior_mean(0.02, x[:12])) <= RTOL
    assert _max_rel(got[12:15], far.posterior_mean(0.02, x[12:15])) <= RTOL


def test_sharded_draws_agree_across_ranks_and_follow_the_weights(velocity_ranks) -> None:
    data, w, _ = _velocity_problem()
    d0, d1 = (r["draws"] for r in velocity_ranks)
    assert torch.equal(d0, d1)
    # at t = 0 (m = 1, sigma = 0) every draw is a data point, chosen with its weight
    hit = (d0[:, None, :] == data[None, :, :]).all(dim=2)
    assert torch.equal(hit.sum(dim=1), torch.ones(len(d0), dtype=torch.int64))
    counts = hit.sum(dim=0).numpy()
    assert stats.chisquare(counts, len(d0) * w.numpy()).pvalue > 1e-3


def test_sharded_misuse_is_refused_on_every_rank(velocity_ranks) -> None:
    for r in velocity_ranks:
        assert "all ranks' shares together" in r["per_share_weights"]
        assert "x must be the same on every rank" in r["other_queries"]
        assert "does not propagate gradients" in r["grad"]


def test_sharded_without_a_process_group_is_the_plain_velocity() -> None:
    data, w, x = _velocity_problem()
    ref = _evaluate(ExactVelocity(CondOT(1.0), data, w), x)
    got = _evaluate(ExactVelocity(CondOT(1.0), data, w, sharded=True), x)
    assert all(torch.equal(got[k], ref[k]) for k in ref)


def _dot_ranks(r: int) -> dict:
    out = dot_runs(True)
    G, D = nets()
    out["unseeded_K"] = effective_lipschitz(D, G, PRIOR, 20, distributed=True)
    out["unseeded_ddls"] = ddls(D, G, torch.zeros(N, 3, dtype=F64), 0.1, 3, distributed=True)
    out.update(differing_arguments(r))
    return out


HARNESS = SimpleNamespace(
    n_eval=N, n_calibration=30, dot_steps=5, dot_lr=0.05, k_pairs=20, k_factor=1.2,
    drs_percentile=90.0, drs_pilot=40, mh_proposals=6, ddls_steps=4, ddls_step=0.05,
)  # fmt: skip


class _Recording(torch.nn.Module):
    """The critic, recording the batch sizes it is asked to score."""

    def __init__(self, net: torch.nn.Module) -> None:
        super().__init__()
        self.net, self.sizes = net, set()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.sizes.add(x.shape[0])
        return self.net(x)


def _harness_run() -> tuple[MethodRuns, set[int]]:
    """The experiments' comparison harness (it always passes distributed=True), and the
    batch sizes its critic saw."""
    G, D = (net.float() for net in nets())
    D = _Recording(D)
    g = torch.Generator().manual_seed(8)
    return compare_methods(
        G,
        D,
        PRIOR,
        HARNESS,
        Streams.from_seed(5),
        real_calibration=torch.randn(30, 2, generator=g),
        real_chains=torch.randn(N, 2, generator=g),
        optimizer="adam",
        clip=2.0,
        naive="target",
        device=torch.device("cpu"),
    ), D.sizes


def _both(r: int) -> tuple[dict, dict]:
    dot = _dot_ranks(r)
    dot["harness"] = _harness_run()
    return _velocity_ranks(r), dot


@pytest.fixture(scope="module")
def ranks() -> list[tuple[dict, dict]]:
    """Both parts on one pair of gloo processes (spawning a pair costs seconds)."""
    return run_ranks(_both)


@pytest.fixture(scope="module")
def velocity_ranks(ranks) -> list[dict]:
    return [v for v, _ in ranks]


@pytest.fixture(scope="module")
def dot_ranks(ranks) -> list[dict]:
    return [d for _, d in ranks]


@pytest.fixture(scope="module")
def dot_single() -> dict:
    return dot_runs(False)




@pytest.mark.parametrize("method", METHODS)
def test_distributed_post_processing_equals_a_single_process_run(
    dot_ranks, dot_single, method
) -> None:
    for r in dot_ranks:
        assert_same_result(r[method], dot_single[method])


def test_distributed_keff_is_rank_0s_estimate(dot_ranks, dot_single) -> None:
    for r in dot_ranks:
        assert r["K"] == pytest.approx(dot_single["K"], rel=RTOL, abs=0.0)
        assert r["k"] == pytest.approx(dot_single["k"], rel=RTOL, abs=0.0)
    r0, r1 = dot_ranks
    assert r0["unseeded_K"] == r1["unseeded_K"] > 0
    # without a seed the ranks still share one stream: one chain set, not two
    assert torch.equal(r0["unseeded_ddls"].latents, r1["unseeded_ddls"].latents)
    assert not torch.equal(r0["unseeded_ddls"].latents, torch.zeros(N, 3, dtype=F64))


def test_the_experiments_harness_splits_its_methods_across_ranks(dot_ranks) -> None:
    """compare_methods (dot-toy, dot-digits) under 2 ranks gives the single-process samples,
    K and diagnostics (float32 networks: per-sample arithmetic on fewer rows, 1e-5)."""
    ref, sizes = _harness_run()
    shares = (N - N // 2, N // 2)  # rank 0 takes 6 rows, rank 1 takes 5
    assert not set(shares) & sizes  # one process scores whole batches
    assert set(ref.samples) == {"generator", "naive", "DOT target", "DOT latent",
                                "DRS", "MH-GAN", "DDLS"}  # fmt: skip
    for share, r in zip(shares, dot_ranks, strict=True):
        got, rank_sizes = r["harness"]
        assert share in rank_sizes  # each rank scores its share of the samples
        assert got.K.K_eff == pytest.approx(ref.K.K_eff, rel=1e-6)
        assert got.K.k_eff == pytest.approx(ref.K.k_eff, rel=1e-6)
        for label, x in ref.samples.items():
            assert got.samples[label].shape == x.shape, label
            assert max_abs(got.samples[label] - x) <= 1e-5 * max_abs(x), label
        for label, d in ref.diagnostics().items():
            for key, value in d.items():
                assert got.diagnostics()[label][key] == pytest.approx(
                    value, rel=1e-4, abs=1e-6
                ), (label, key)


def test_distributed_arguments_that_differ_between_ranks_are_refused(dot_ranks) -> None:
    for r in dot_ranks:
        assert_differing_arguments_refused({key: r[key] for key in REFUSALS})

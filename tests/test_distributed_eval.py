"""Sharded evaluation on 2 gloo ranks equals a single-process run on the union.

* ExactVelocity(sharded=True): each rank holds a share of the data set (uneven shares, an
  empty share); the max-stabilised all-reduce of the shares' log-sum-exp and posterior
  means must give the unsharded velocity, posterior mean and log-density to 1e-12
  (relative, float64), also at queries where one share has negligible weight (its
  exp(L_r - M) underflows to 0) and at t = 0 (arg-max) and t = tau (m = 0).
"""

from __future__ import annotations

import pytest
import torch
from _ranks import run_ranks
from scipy import stats

from ottokit.flowmatch import CondOT, ExactVelocity

F64 = torch.float64
RTOL = 1e-12
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


def _message(fn) -> str:
    try:
        fn()
    except ValueError as err:
        return str(err)
    return ""


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
        "per_share_weights": _message(
            lambda: ExactVelocity(CondOT(1.0), data[mine], per_share, sharded=True)
        ),
        "other_queries": _message(lambda: v(0.5, x + r)),
        "grad": _message(lambda: v(0.5, x.clone().requires_grad_(True))),
    }


@pytest.fixture(scope="module")
def velocity_ranks() -> list[dict]:
    return run_ranks(_velocity_ranks)


def _max_abs(t: torch.Tensor) -> float:
    return float(t.abs().max()) if t.numel() else 0.0


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

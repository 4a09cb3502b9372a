"""ottokit.distributed: shard bounds, collectives against single-process references, and
failure messages, on 2 gloo ranks."""

from __future__ import annotations

import pytest
import torch
from _ranks import run_ranks

from ottokit import distributed as D


def test_single_process_defaults() -> None:
    assert (D.is_distributed(), D.rank(), D.world_size(), D.is_main_process()) == (
        False, 0, 1, True
    )
    x = torch.arange(10.0)
    assert D.shard_bounds(10) == (0, 10)
    assert torch.equal(D.all_reduce(x, "mean"), x)
    assert torch.equal(D.all_gather_cat(x), x)
    assert D.wrap_ddp(torch.nn.Linear(2, 2), "cpu").__class__ is torch.nn.Linear
    D.check_same({"x": x})  # one process: nothing to compare
    with pytest.raises(ValueError, match="op"):
        D.all_reduce(x, "prod")


def _collectives(rank: int) -> dict:
    n = 7
    start, stop = D.shard_bounds(n)
    x = torch.arange(n, dtype=torch.float64)[start:stop] * (rank + 1)
    x_all = torch.linspace(-1.0, 2.0, n, dtype=torch.float64)
    return {
        "bounds": (start, stop),
        "sum": D.all_reduce(torch.tensor([float(rank + 1)]), "sum"),
        "mean": D.all_reduce(torch.tensor([float(rank + 1)]), "mean"),
        "max": D.all_reduce(torch.tensor([float(rank)]), "max"),
        "gather": D.all_gather_cat(x),
        "bcast": D.broadcast(torch.tensor([float(rank + 10)]), src=1),
        "obj": D.broadcast_object({"r": rank}, src=0),
        "exact": _raises(lambda: D.shard_bounds(7, exact=True)),
        "same": _raises(lambda: D.check_same({"x": x_all, "t": 0.5, "g": None})),
        # equal sums, swapped order; one ulp apart; float vs its float32 rounding
        "perm": _raises(lambda: D.check_same({"x": x_all.flip(0) if rank else x_all})),
        "ulp": _raises(lambda: D.check_same({"t": 0.1 if rank else 0.1 + 2**-56, "x": x_all})),
        "shape": _raises(lambda: D.check_same({"x": x_all.reshape(-1, 1) if rank else x_all})),
    }


def _raises(fn) -> str:
    try:
        fn()
    except ValueError as err:
        return str(err)
    return ""


def test_collectives_on_two_gloo_ranks() -> None:
    r0, r1 = run_ranks(_collectives)
    # uneven shares differ by one row and tile [0, 7)
    assert (r0["bounds"], r1["bounds"]) == ((0, 4), (4, 7))
    for r in (r0, r1):
        assert float(r["sum"]) == 3.0 and float(r["mean"]) == 1.5 and float(r["max"]) == 1.0
        expected = torch.tensor([0.0, 1, 2, 3, 8, 10, 12], dtype=torch.float64)
        assert torch.equal(r["gather"], expected)
        assert float(r["bcast"]) == 11.0 and r["obj"] == {"r": 0}
        assert "multiple of 2" in r["exact"]
        assert r["same"] == ""
        assert "x must be the same on every rank" in r["perm"]
        assert "t must be the same on every rank" in r["ulp"]
        assert "x must be the same on every rank" in r["shape"]


def _hang(rank: int) -> str:
    if rank == 1:
        return "skipped"
    try:
        D.all_reduce(torch.ones(1), "sum")
    except D.DistributedError as err:
        return str(err)
    return "no error"


def test_a_hung_peer_names_the_collective_and_the_rank() -> None:
    r0, _ = run_ranks(_hang, timeout=3.0, settle=False)  # rank 1 never joins the all_reduce
    assert "all_reduce(sum)" in r0 and "rank 0 of 2" in r0

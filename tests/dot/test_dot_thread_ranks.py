"""DOT, DRS, MH-GAN and DDLS with ``distributed=True`` on 2 ranks that are threads of this
process (``tests/_ranks.py``): the same cases and checks as the gloo ranks of
``test_distributed_eval.py``, cheap enough for every mutation run to reach the multi-rank
code (the row shares, the gathers and the cross-rank argument checks)."""

from __future__ import annotations

import pytest
from _dot_cases import (
    METHODS,
    REFUSALS,
    RTOL,
    assert_differing_arguments_refused,
    assert_same_result,
    differing_arguments,
    dot_runs,
)
from _ranks import thread_ranks

from ottokit import distributed
from ottokit.dot import _sharding


def _ranks(monkeypatch, fn) -> list:
    """thread_ranks, with the collectives DOT's Sharding imported by name routed to the patched
    ``ottokit.distributed`` too."""
    for name in ("is_distributed", "all_gather_cat", "all_reduce", "broadcast"):
        monkeypatch.setattr(_sharding, name,
                            lambda *a, _name=name, **k: getattr(distributed, _name)(*a, **k))
    return thread_ranks(monkeypatch, fn)


# one method per test: a mutation run then reruns only the methods that reach a mutant
@pytest.mark.parametrize("method", METHODS)
def test_thread_ranks_give_the_single_process_results(monkeypatch, method) -> None:
    single = dot_runs(False, (method,))
    for out in _ranks(monkeypatch, lambda r: dot_runs(True, (method,))):
        assert out["K"] == pytest.approx(single["K"], rel=RTOL, abs=0.0)
        assert out["k"] == pytest.approx(single["k"], rel=RTOL, abs=0.0)
        assert_same_result(out[method], single[method])


@pytest.mark.parametrize("which", REFUSALS)
def test_thread_ranks_refuse_arguments_that_differ(monkeypatch, which) -> None:
    for out in _ranks(monkeypatch, lambda r: differing_arguments(r, (which,))):
        assert_differing_arguments_refused(out)

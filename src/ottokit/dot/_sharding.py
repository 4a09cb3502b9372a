"""One DOT or sampler call split across the ranks of a process group (``distributed=True``).

Every rank passes the same arguments (checked). Each random tensor is drawn for the whole
sample set from a generator in the same state on every rank, and each rank keeps its
rows, so the draws are those of a single-process run; per-sample results are gathered
in the single-process order and every rank returns the whole result.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from ottokit.distributed import (
    all_gather_cat,
    all_reduce,
    broadcast,
    check_same,
    is_distributed,
    shard_bounds,
)

__all__: list[str] = []


class Sharding:
    """Which rows of an n-sample batch this rank works on, and how results come back.

    Inactive (every method an identity) unless ``distributed`` is True and a process
    group is initialised.
    """

    def __init__(self, distributed: Any) -> None:
        if not isinstance(distributed, bool):
            raise TypeError(f"distributed must be True or False, got {type(distributed).__name__}")
        self.active = distributed and is_distributed()

    def rows(self, n: int) -> slice:
        """This rank's contiguous rows of an ``n``-row batch (all of them when inactive)."""
        return slice(*shard_bounds(n)) if self.active else slice(0, n)

    def check(self, values: Mapping[str, Any]) -> None:
        """ValueError on every rank when an argument differs between the ranks."""
        if self.active:
            check_same(values)

    def gather(self, t: Tensor) -> Tensor:
        """Every rank's rows of ``t`` in rank order, i.e. the single-process batch."""
        if not self.active:
            return t
        if t.dtype == torch.bool:
            return all_gather_cat(t.to(torch.uint8)).bool()
        return all_gather_cat(t)

    def sum(self, t: Tensor) -> Tensor:
        """``t`` summed over the ranks."""
        return all_reduce(t, "sum") if self.active else t

    def count(self, k: int) -> int:
        """An integer count summed over the ranks."""
        return int(all_reduce(torch.tensor(k, dtype=torch.int64), "sum")) if self.active else k

    def slowest(self, seconds: float) -> float:
        """The largest of the ranks' times."""
        if not self.active:
            return seconds
        return float(all_reduce(torch.tensor(seconds, dtype=torch.float64), "max"))

    def from_rank0(self, value: float) -> float:
        """Rank 0's ``value`` on every rank."""
        if not self.active:
            return value
        return float(broadcast(torch.tensor(value, dtype=torch.float64)))

    def shared(
        self, gen: torch.Generator | None, device: torch.device | str
    ) -> torch.Generator | None:
        """``gen`` in the same state on every rank.

        ``None`` (torch's global stream, which differs between processes) becomes a
        generator seeded from rank 0's global stream; a given generator must already be
        in the same state everywhere (e.g. seeded alike), else ValueError.
        """
        if not self.active:
            return gen
        if gen is None:
            seed = int(broadcast(torch.randint(2**62, (1,), dtype=torch.int64)))
            shared = torch.Generator(device=device)
            shared.manual_seed(seed)
            return shared
        check_same({"seed (the generator's state)": gen.get_state()})
        return gen

"""The experiment registry: every experiment module registers one :class:`Experiment`.

An experiment is a typed config dataclass (with ``quick()`` and ``paper()``
presets and the fields ``seed: int`` and ``device: str``) plus one
``run(config, out) -> Result`` that writes into the directory ``out``. An experiment
that trains or post-processes with ottokit's data-parallel code sets
``distributed=True``: it may run on several ranks (``ottokit run EXP --nproc N``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ottokit.report.result import Result

__all__ = ["Experiment", "register", "get", "names", "all_experiments", "distributed_names"]

_REGISTRY: dict[str, Experiment] = {}


@dataclass(frozen=True)
class Experiment:
    name: str
    seed_id: str  # "000", "001", ...
    seed_file: str  # file name in shared/seeds
    title: str  # one line: what it reproduces
    config_cls: type
    run: Callable[[Any, Path], Result]
    distributed: bool = False  # runs on several torch.distributed ranks

    def preset(self, name: str) -> Any:
        if name not in ("quick", "paper"):
            raise ValueError(f"unknown preset {name!r}; allowed: quick, paper")
        return getattr(self.config_cls, name)()


def register(exp: Experiment) -> Experiment:
    if exp.name in _REGISTRY:
        raise ValueError(f"experiment {exp.name!r} registered twice")
    _REGISTRY[exp.name] = exp
    return exp


def get(name: str) -> Experiment:
    _load_all()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(
            f"unknown experiment {name!r}; allowed: {', '.join(sorted(_REGISTRY))}"
        ) from None


def names() -> list[str]:
    _load_all()
    return sorted(_REGISTRY, key=lambda n: (_REGISTRY[n].seed_id, n))


def distributed_names() -> list[str]:
    """The experiments that take several ranks (``--nproc``)."""
    return [n for n in names() if _REGISTRY[n].distributed]


def all_experiments() -> list[Experiment]:
    return [_REGISTRY[n] for n in names()]


def _load_all() -> None:
    # Importing the package imports every experiment module, which registers itself.
    import ottokit.experiments  # noqa: F401

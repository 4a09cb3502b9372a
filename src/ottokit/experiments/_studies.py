"""Experiments made of studies: each study is a frozen dataclass of named results.

A study module provides ``study(config) -> XStudy`` (the computation), ``checks(s)`` (the
seed's claims read from the fields), and ``figure(s, path)``. The experiment's ``run`` loops
over its studies and returns :func:`study_metrics` of each as its metrics, which the runner
writes to ``metrics.json`` with :func:`~ottokit.experiments._runner.to_jsonable`. Fields that
only a figure needs (solver objects, raw arrays already summarised elsewhere) are declared
with ``field(metadata=FIGURE_ONLY)`` and left out of the metrics. An experiment whose module
is one study (``study``, ``figures``, ``checks``, ``comparisons``, ``summary``) runs it with
:func:`run_study`.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from types import ModuleType
from typing import Any

from ottokit.report.result import Result

__all__ = ["FIGURE_ONLY", "fmt_list", "run_study", "study_metrics"]

FIGURE_ONLY = {"metric": False}


def study_metrics(study: Any) -> dict[str, Any]:
    """The fields of a study dataclass as ``asdict`` gives them, without figure-only ones.

    Nested dataclasses become dicts, tuples lists, and NumPy arrays and torch tensors lists
    (``tolist``); NaN stays a float (``to_jsonable`` writes it as ``"nan"``).
    """
    if not dataclasses.is_dataclass(study) or isinstance(study, type):
        raise TypeError(f"study must be a dataclass instance, got {type(study).__name__}")
    return {
        f.name: _plain(getattr(study, f.name))
        for f in dataclasses.fields(study)
        if f.metadata.get("metric", True)
    }


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return study_metrics(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if hasattr(value, "tolist"):  # NumPy arrays and scalars, torch tensors
        return value.tolist()
    return value


def fmt_list(values: Any, spec: str) -> str:
    """``[v0, v1, ...]`` with each value formatted by ``spec``."""
    return "[" + ", ".join(format(float(v), spec) for v in values) + "]"


def run_study(
    module: ModuleType, config: Any, out: Path, *, experiment: str, timed: bool = True
) -> Result:
    """The :class:`Result` of an experiment whose module is one study.

    ``module`` provides ``SEED_FILE``, ``CLAIM``, ``study(config)``, ``figures(s, directory)``
    (caption -> path), ``checks(s)``, ``comparisons(s)`` and ``summary(s)``. The metrics are
    :func:`study_metrics` of the study, followed by ``wall_time_s`` (the seconds the study
    and its figures took) when ``timed``.
    """
    out = Path(out)
    started = time.perf_counter()
    s = module.study(config)
    drawn = module.figures(s, out / "figures")
    metrics = study_metrics(s)
    if timed:
        metrics["wall_time_s"] = time.perf_counter() - started
    return Result(
        experiment=experiment,
        seed_file=module.SEED_FILE,
        claim=module.CLAIM,
        run_dir=out,
        metrics=metrics,
        figures={caption: str(path) for caption, path in drawn.items()},
        checks=module.checks(s),
        comparisons=module.comparisons(s),
        summary=module.summary(s),
    )

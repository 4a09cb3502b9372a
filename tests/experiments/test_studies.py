"""metrics.json from study dataclasses: every field as JSON, figure-only fields left out;
the result of an experiment that is one study."""

from __future__ import annotations

import json
import math
import types
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from ottokit.experiments._runner import to_jsonable
from ottokit.experiments._studies import FIGURE_ONLY, fmt_list, run_study, study_metrics
from ottokit.report.result import Check, Comparison


@dataclass(frozen=True)
class _Row:
    budget: int
    error: np.ndarray
    raw: object = field(default=None, metadata=FIGURE_ONLY)


@dataclass(frozen=True)
class _Study:
    order: float
    rows: list[_Row]
    by_name: dict[int, _Row]
    raw: object = field(metadata=FIGURE_ONLY)


def test_study_metrics_are_the_fields_without_figure_only_ones() -> None:
    row = _Row(3, np.array([0.5, 0.25]), raw=object())
    m = study_metrics(_Study(float("nan"), [row], {7: row}, raw=object()))
    expected_row = {"budget": 3, "error": [0.5, 0.25]}
    assert math.isnan(m.pop("order"))
    assert m == {"rows": [expected_row], "by_name": {7: expected_row}}
    assert type(m["rows"][0]["error"]) is list
    written = json.loads(json.dumps(to_jsonable(study_metrics(_Study(np.nan, [row], {}, None)))))
    assert written == {"order": "nan", "rows": [expected_row], "by_name": {}}


def test_study_metrics_refuses_what_is_not_a_dataclass_instance() -> None:
    with pytest.raises(TypeError, match="dataclass instance"):
        study_metrics({"order": 1.0})
    with pytest.raises(TypeError, match="dataclass instance"):
        study_metrics(_Study)


def test_fmt_list() -> None:
    assert fmt_list([0.123456, 2], ".2g") == "[0.12, 2]"
    assert fmt_list([], ".2g") == "[]"


def _one_study_module() -> types.ModuleType:
    module = types.ModuleType("one_study")
    module.SEED_FILE, module.CLAIM = "000_x.txt", "a claim"
    module.study = lambda config: _Row(config, np.array([1.0, 2.0]), raw=object())
    module.figures = lambda s, directory: {"caption": directory / f"{s.budget}.png"}
    module.checks = lambda s: [Check("budget positive", s.budget > 0)]
    module.comparisons = lambda s: [Comparison("budget", s.budget, 3)]
    module.summary = lambda s: f"budget {s.budget}"
    return module


def test_run_study_reads_everything_from_the_one_study(tmp_path: Path) -> None:
    module = _one_study_module()
    r = run_study(module, 3, tmp_path, experiment="one")
    assert (r.experiment, r.seed_file, r.claim) == ("one", "000_x.txt", "a claim")
    assert r.run_dir == tmp_path
    wall = r.metrics.pop("wall_time_s")
    assert 0.0 <= wall < 60.0
    assert r.metrics == {"budget": 3, "error": [1.0, 2.0]}
    assert r.figures == {"caption": str(tmp_path / "figures" / "3.png")}
    assert r.checks == [Check("budget positive", True)]
    assert r.comparisons == [Comparison("budget", 3, 3)]
    assert r.summary == "budget 3"
    untimed = run_study(module, 3, tmp_path, experiment="one", timed=False)
    assert untimed.metrics == {"budget": 3, "error": [1.0, 2.0]}

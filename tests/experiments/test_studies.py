"""metrics.json from study dataclasses: every field as JSON, figure-only fields left out."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

import numpy as np
import pytest

from ottokit.experiments._runner import to_jsonable
from ottokit.experiments._studies import FIGURE_ONLY, fmt_list, study_metrics


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

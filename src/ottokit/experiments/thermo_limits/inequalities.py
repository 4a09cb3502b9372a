"""The seed's inequalities recorded with both sides, at the time where each is tightest."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "EQUALITY_RTOL",
    "LENGTH",
    "LENGTH_W2",
    "RTOL",
    "SPEED",
    "SWEEP",
    "TOTAL",
    "TUR",
    "V1",
    "V1_BRACKET",
    "Inequality",
    "all_hold",
    "details",
    "inequality",
    "rel",
]

RTOL = 1e-9  # slack for inequalities between closed forms (rounding only)
EQUALITY_RTOL = 1e-8

SPEED = "Sdot >= v2^2/T"
LENGTH = "S_tot >= (int v2 dt)^2 / int T dt"
LENGTH_W2 = "(int v2 dt)^2 / int T dt >= W2^2 / int T dt"
TOTAL = "S_tot >= W2^2/(tau T)"
SWEEP = "S_tot >= W2^2/(tau T), tau sweep"
TUR = "TUR v2^2/T >= (d<r>)^2/(T<|grad r|^2>)"
V1 = "v2 >= v1"
V1_BRACKET = "v1 upper estimate >= v1 lower estimate"


@dataclass(frozen=True)
class Inequality:
    """``lhs >= rhs`` for one case, both sides at the tightest time.

    Attributes:
        inequality: which inequality (one of the names of this module).
        case: the protocol (and observable) it was checked on.
        lhs_label: what the left side is.
        rhs_label: what the right side is.
        lhs: the left side where rhs/lhs is largest.
        rhs: the right side there.
        t: that time (None for time-integrated sides).
        holds: lhs >= rhs at every time, up to ``rtol`` times the largest side.
        rtol: the rounding slack.
        min_margin: the smallest lhs - rhs over time.
    """

    inequality: str
    case: str
    lhs_label: str
    rhs_label: str
    lhs: float
    rhs: float
    t: float | None
    holds: bool
    rtol: float
    min_margin: float

    def side(self) -> str:
        """``case: lhs >= rhs at t = ...``, for a check's detail."""
        at = "" if self.t is None else f" at t = {self.t:.3g}"
        return f"{self.case}: {self.lhs:.6g} >= {self.rhs:.6g}{at}"


def inequality(
    name: str,
    case: str,
    lhs_label: str,
    rhs_label: str,
    lhs: Any,
    rhs: Any,
    t: np.ndarray | None = None,
    rtol: float = RTOL,
) -> Inequality:
    """``lhs >= rhs`` (elementwise over time if arrays) with both sides at its tightest.

    Rounding slack: ``rtol`` times the largest value of either side over time (the
    closed forms lose absolute, not relative, precision where a rate nears zero).
    The sides are reported where rhs/lhs is largest, among times where lhs is not
    negligible (else where lhs - rhs is smallest).
    """
    lhs_a, rhs_a = np.atleast_1d(np.asarray(lhs, float)), np.atleast_1d(np.asarray(rhs, float))
    scale = max(float(np.abs(lhs_a).max()), float(np.abs(rhs_a).max()), 1e-300)
    slack = rtol * scale
    margin = lhs_a - rhs_a
    relevant = np.abs(lhs_a) > 1e-6 * scale
    if relevant.any():
        ratio = np.where(relevant, rhs_a / np.where(relevant, lhs_a, 1.0), -np.inf)
        k = int(np.argmax(ratio))
    else:
        k = int(np.argmin(margin))
    return Inequality(
        inequality=name,
        case=case,
        lhs_label=lhs_label,
        rhs_label=rhs_label,
        lhs=float(lhs_a[k]),
        rhs=float(rhs_a[k]),
        t=None if t is None else float(t[k]),
        holds=bool(np.all(margin >= -slack)),
        rtol=rtol,
        min_margin=float(margin.min()),
    )


def all_hold(records: Iterable[Inequality]) -> dict[str, bool]:
    """Per inequality name, in order of appearance: whether it held in every record."""
    records = list(records)
    return {
        name: all(r.holds for r in records if r.inequality == name)
        for name in dict.fromkeys(r.inequality for r in records)
    }


def details(records: Iterable[Inequality], name: str) -> str:
    """The sides of every record of inequality ``name``, for a check's detail."""
    return "; ".join(r.side() for r in records if r.inequality == name)


def rel(a: float, b: float) -> float:
    """|a - b| / max(|a|, |b|)."""
    return abs(a - b) / max(abs(a), abs(b), 1e-300)

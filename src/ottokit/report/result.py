"""What an experiment returns: numbers, figures, and the seed's claims checked.

A :class:`Result` is written to ``result.json`` in its run directory, so the HTML
report can be rebuilt from disk alone (``ottokit report RUN_DIR``).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Check", "Comparison", "Result"]


@dataclass
class Check:
    """One of the seed's inequalities or claims, marked as holding or not."""

    name: str
    holds: bool
    detail: str = ""


@dataclass
class Comparison:
    """Our number beside the seed's (``seed`` is None where the seed gives none)."""

    quantity: str
    ours: float | str
    seed: float | str | None = None
    note: str = ""


@dataclass
class Result:
    """Outcome of ``run(config, out)``.

    ``figures`` maps a short caption to a PNG path relative to ``run_dir``;
    ``metrics`` is JSON-serialisable and also written to ``metrics.json``.
    """

    experiment: str
    seed_file: str
    claim: str
    run_dir: Path
    metrics: dict[str, Any] = field(default_factory=dict)
    figures: dict[str, str] = field(default_factory=dict)
    checks: list[Check] = field(default_factory=list)
    comparisons: list[Comparison] = field(default_factory=list)
    summary: str = ""

    @property
    def all_hold(self) -> bool:
        return all(c.holds for c in self.checks)

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["run_dir"] = str(self.run_dir)
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Result:
        return cls(
            experiment=d["experiment"],
            seed_file=d["seed_file"],
            claim=d["claim"],
            run_dir=Path(d["run_dir"]),
            metrics=d.get("metrics", {}),
            figures=d.get("figures", {}),
            checks=[Check(**c) for c in d.get("checks", [])],
            comparisons=[Comparison(**c) for c in d.get("comparisons", [])],
            summary=d.get("summary", ""),
        )

    @classmethod
    def load(cls, run_dir: Path) -> Result:
        with open(Path(run_dir) / "result.json", encoding="utf-8") as fh:
            r = cls.from_json(json.load(fh))
        r.run_dir = Path(run_dir)
        return r

"""What an experiment returns: numbers, figures, and the seed's claims checked.

A :class:`Result` is written to ``result.json`` in its run directory, so the HTML
report can be rebuilt from disk alone (``ottokit report RUN_DIR``). :meth:`Result.load`
checks what it reads: a file that is not a result raises :class:`ResultFileError`
naming it, and so does a figure outside the run directory (:func:`figure_file`), so a
shared report can never embed other local files.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePath
from typing import Any, Literal, get_args

__all__ = ["Check", "CheckKind", "Comparison", "Result", "ResultFileError", "figure_file"]

CheckKind = Literal["claim", "software"]
CHECK_KINDS: tuple[str, ...] = get_args(CheckKind)

_REQUIRED = ("experiment", "seed_file", "claim", "run_dir")


class ResultFileError(ValueError):
    """A ``result.json`` that is not a readable result, or names a file it may not."""


def figure_file(run_dir: Path, rel: str) -> Path:
    """The file a figure path names, resolved; ValueError unless it lies inside ``run_dir``.

    ``rel`` must be relative; after following ``..`` and symbolic links it must still
    be inside ``run_dir`` (whose own path is resolved too).
    """
    if not isinstance(rel, str) or not rel:
        raise ValueError(f"a figure path must be a non-empty string, got {rel!r}")
    if PurePath(rel).is_absolute() or Path(rel).is_absolute():
        raise ValueError(f"figure path {rel!r} is absolute; it must be relative to the run")
    root = Path(run_dir).resolve()
    full = (root / rel).resolve()
    if not full.is_relative_to(root):
        raise ValueError(
            f"figure path {rel!r} leads outside the run directory (to {full}); a report "
            "embeds only files inside it"
        )
    return full


@dataclass
class Check:
    """A statement checked by a run, marked as holding or not.

    ``kind="claim"``: one of the seed's statements (an inequality, a figure's trend, a
    number); when it does not hold, our measurement does not confirm the seed — a
    finding, reported with both sides. ``kind="software"``: a property of ottokit's own
    computation (conservation, convergence, agreement with an independent reference)
    that must always hold; when it does not, something is wrong in the code or the run.
    """

    name: str
    holds: bool
    detail: str = ""
    kind: CheckKind = "claim"

    def __post_init__(self) -> None:
        if self.kind not in CHECK_KINDS:
            raise ValueError(f"Check kind must be one of {CHECK_KINDS}, got {self.kind!r}")


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
    ``metrics`` is JSON-serialisable and also written to ``metrics.json``. ``error``
    is set (and the checks empty) when the run raised instead of finishing;
    ``wall_time`` is the run's duration in seconds; ``cache`` says what came from the
    cache (``{"run": "hit" | "miss" | "off", "trained_from_cache": [...],
    "trained": [...]}``).
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
    error: str = ""
    wall_time: float = 0.0
    cache: dict[str, Any] = field(default_factory=dict)

    @property
    def all_hold(self) -> bool:
        return not self.error and all(c.holds for c in self.checks)

    @property
    def claims(self) -> list[Check]:
        """The seed's claims checked by the run."""
        return [c for c in self.checks if c.kind == "claim"]

    @property
    def software_checks(self) -> list[Check]:
        """The checks of ottokit's own computation (each must hold)."""
        return [c for c in self.checks if c.kind == "software"]

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["run_dir"] = str(self.run_dir)
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Result:
        """The Result a ``to_json`` dict describes; ValueError saying what does not fit."""
        problem = _json_problem(d)
        if problem is not None:
            raise ValueError(problem)
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
            error=d.get("error", ""),
            wall_time=float(d.get("wall_time", 0.0)),
            cache=d.get("cache", {}),
        )

    @classmethod
    def load(cls, run_dir: Path) -> Result:
        """Read ``run_dir/result.json``; :class:`ResultFileError` (one line, naming the file)
        if it cannot be read, is not JSON, is not a result, or names a figure outside
        ``run_dir``."""
        path = Path(run_dir) / "result.json"
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except OSError as err:
            raise ResultFileError(f"{path}: cannot read it: {err.strerror or err}") from None
        except UnicodeDecodeError:
            raise ResultFileError(f"{path}: not UTF-8 text") from None
        except json.JSONDecodeError as err:
            raise ResultFileError(
                f"{path}: not valid JSON ({err.msg} at line {err.lineno}, column {err.colno}); "
                "the file may be truncated"
            ) from None
        try:
            r = cls.from_json(data)
            r.run_dir = Path(run_dir)
            for caption, rel in r.figures.items():
                try:
                    figure_file(r.run_dir, rel)
                except ValueError as err:
                    raise ValueError(f"figure {caption!r}: {err}") from None
        except ValueError as err:
            raise ResultFileError(f"{path}: {err}") from None
        return r


def _json_problem(d: Any) -> str | None:
    """What keeps ``d`` from being a Result's JSON (None when it fits)."""
    if not isinstance(d, dict):
        keys = ", ".join(_REQUIRED)
        return f"not a result: expected a JSON object with the keys {keys}, got {_kind(d)}"
    missing = [k for k in _REQUIRED if k not in d]
    if missing:
        return f"not a result: missing key(s) {', '.join(missing)}"
    for key in (*_REQUIRED, "summary", "error"):
        if key in d and not isinstance(d[key], str):
            return f"{key} must be a string, got {_kind(d[key])}"
    if not isinstance(d.get("metrics", {}), dict):
        return "metrics must be an object"
    if not isinstance(d.get("cache", {}), dict):
        return "cache must be an object"
    wall = d.get("wall_time", 0.0)
    if isinstance(wall, bool) or not isinstance(wall, int | float):
        return f"wall_time must be a number, got {_kind(wall)}"
    figures = d.get("figures", {})
    if not isinstance(figures, dict) or not all(isinstance(v, str) for v in figures.values()):
        return "figures must be an object mapping captions to file paths"
    number_or_text = (int, float, str)
    rows = {
        "checks": {"name": (str,), "holds": (bool,), "detail": (str,), "kind": (str,)},
        "comparisons": {
            "quantity": (str,),
            "ours": number_or_text,
            "seed": (*number_or_text, type(None)),
            "note": (str,),
        },
    }
    for key, types in rows.items():
        items = d.get(key, [])
        if not isinstance(items, list):
            return f"{key} must be a list"
        required = list(types)[:2]
        for i, item in enumerate(items):
            if (
                not isinstance(item, dict)
                or not set(required) <= set(item)
                or not set(item) <= set(types)
                or not all(isinstance(v, types[k]) for k, v in item.items())
            ):
                return f"{key}[{i}] must be an object with the keys {', '.join(types)}"
            if key == "checks" and item.get("kind", "claim") not in CHECK_KINDS:
                return f"checks[{i}].kind must be one of {', '.join(CHECK_KINDS)}"
    return None


def _kind(value: Any) -> str:
    """A JSON value's kind, as JSON names it."""
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}
    if value is None:
        return "null"
    return names.get(type(value), "a number")

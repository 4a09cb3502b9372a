"""Copy the figures the documentation shows from run directories into ``docs/figures/``.

Usage: ``python docs/figures.py RUN`` (or ``make docs-figures RUN=...``), where RUN is a
run directory of ``ottokit run``, a ``runs/EXPERIMENT`` directory, a ``reproduce``
directory (``runs/reproduce/<stamp>/``) or a root holding any of these. Every page under
``docs/`` that shows ``figures/<experiment>/<name>.png`` names the figures to copy; for each
experiment the newest finished run found under RUN is used. A PNG larger than 300 KB is
re-encoded with a palette and, if still too large, downscaled. Next to the figures,
``figures/<experiment>/source.md`` records which run and which configuration they come
from (the pages include it), so a figure never claims a preset it was not made with.
Figures an experiment's run does not provide are kept as they are and listed; a figure
that is neither in the runs nor already in ``docs/figures/`` is an error (exit status 1).
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import json
import re
import sys
import tomllib
from pathlib import Path

from PIL import Image

from ottokit.experiments import get

MAX_BYTES = 300_000
FIGURE_REF = re.compile(r"figures/([a-z0-9-]+)/([A-Za-z0-9_.-]+\.png)")


def referenced_figures(docs: Path) -> dict[str, set[str]]:
    """``{experiment: {file name}}`` of every ``figures/<exp>/<name>.png`` a page shows."""
    found: dict[str, set[str]] = {}
    for page in sorted(docs.rglob("*.md")):
        for exp, name in FIGURE_REF.findall(page.read_text(encoding="utf-8")):
            found.setdefault(exp, set()).add(name)
    return found


def find_runs(root: Path) -> dict[str, Path]:
    """The newest finished run directory of each experiment under ``root`` (depth <= 4)."""
    root = Path(root)
    if not root.is_dir():
        raise SystemExit(f"error: RUN={root} is not a directory; pass a run or reproduce directory")
    candidates = [root / "result.json"] + [
        p
        for depth in range(1, 5)
        for p in sorted(root.glob("/".join(["*"] * depth) + "/result.json"))
    ]
    runs: dict[str, Path] = {}
    for path in candidates:
        run = path.parent
        parts = run.relative_to(root).parts
        if not path.is_file() or run.name.endswith("-failed"):
            continue
        if any(p.startswith(".") for p in parts):
            continue
        experiment = json.loads(path.read_text(encoding="utf-8"))["experiment"]
        if experiment not in runs or run.name > runs[experiment].name:
            runs[experiment] = run
    return runs


def provenance(experiment: str, run: Path) -> str:
    """One Markdown line: the run and its configuration relative to the presets."""
    stored = tomllib.loads((run / "config.toml").read_text(encoding="utf-8"))
    differences = {}
    for preset in ("quick", "paper"):
        base = dataclasses.asdict(get(experiment).preset(preset))
        differences[preset] = {k: v for k, v in stored.items() if _plain(base.get(k)) != _plain(v)}
    best = min(differences, key=lambda p: len(differences[p]))
    command = f"ottokit run {experiment} --preset {best}" + "".join(
        f" --set {k}={_as_cli(v)}" for k, v in differences[best].items()
    )
    what = f"the `{best}` preset" if not differences[best] else "a reduced run"
    return f"Figures from {what} (`{command}`), run `{run.name}`.\n"


def shrink(data: bytes, limit: int = MAX_BYTES) -> bytes:
    """``data`` (a PNG) re-encoded to at most ``limit`` bytes: palette first, then smaller."""
    if len(data) <= limit:
        return data
    image = Image.open(io.BytesIO(data)).convert("RGB")
    scale = 1.0
    while True:
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        small = image.resize(size, Image.LANCZOS) if scale < 1 else image
        buffer = io.BytesIO()
        small.quantize(256).save(buffer, "PNG", optimize=True)
        if buffer.tell() <= limit or min(size) < 64:
            return buffer.getvalue()
        scale *= 0.8


def copy_figures(run_root: Path, docs: Path) -> int:
    wanted = referenced_figures(docs)
    runs = find_runs(run_root)
    missing = []
    for experiment, names in sorted(wanted.items()):
        target = docs / "figures" / experiment
        run = runs.get(experiment)
        if run is None:
            print(f"{experiment}: no finished run under {run_root}; figures kept")
        else:
            target.mkdir(parents=True, exist_ok=True)
            for name in sorted(names):
                source = run / "figures" / name
                if source.is_file():
                    (target / name).write_bytes(shrink(source.read_bytes(), MAX_BYTES))
                else:
                    print(f"{experiment}: {name} not in {run}; kept")
            (target / "source.md").write_text(provenance(experiment, run), encoding="utf-8")
            print(f"{experiment}: {len(names)} figure(s) from {run}")
        missing += [f"{experiment}/{n}" for n in sorted(names) if not (target / n).is_file()]
    if missing:
        print("error: the pages show figures that no run provided: " + ", ".join(missing))
        return 1
    return 0


def _plain(value: object) -> object:
    return list(value) if isinstance(value, tuple | list) else value


def _as_cli(value: object) -> str:
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return str(value).lower() if isinstance(value, bool) else str(value)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a run, runs/EXPERIMENT or reproduce directory")
    parser.add_argument("--docs", type=Path, default=Path(__file__).resolve().parent)
    args = parser.parse_args(argv)
    return copy_figures(args.run, args.docs)


if __name__ == "__main__":
    sys.exit(main())

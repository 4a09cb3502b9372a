"""``docs/figures.py``: the figures the pages show, copied from run and reproduce directories."""

from __future__ import annotations

import dataclasses
import importlib.util
import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ottokit._config import config_to_toml
from ottokit.experiments import get

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("docs_figures", ROOT / "docs" / "figures.py")
figures = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(figures)


def _png(side: int, seed: int = 0) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (side, side, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG")
    return buffer.getvalue()


def _run(parent: Path, name: str, experiment: str, config: object, pngs: dict[str, bytes]) -> Path:
    run = parent / experiment / name
    (run / "figures").mkdir(parents=True)
    (run / "result.json").write_text(json.dumps({"experiment": experiment}), encoding="utf-8")
    (run / "config.toml").write_text(config_to_toml(config), encoding="utf-8")
    for file, data in pngs.items():
        (run / "figures" / file).write_bytes(data)
    return run


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    docs = tmp_path / "docs"
    (docs / "seeds").mkdir(parents=True)
    (docs / "seeds" / "page.md").write_text(
        "![a](../figures/graph-heat/fig1_snapshots.png)\n![b](../figures/graph-heat/dhdt.png)\n",
        encoding="utf-8",
    )
    return docs


def test_figures_come_from_the_newest_finished_run_of_a_reproduce_tree(
    tmp_path: Path, docs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(figures, "MAX_BYTES", 20_000)  # a small limit keeps the images small
    quick = get("graph-heat").preset("quick")
    stamp = tmp_path / "runs" / "reproduce" / "20260101-000000-aaaaaa"
    _run(stamp, "20260101-000001-aaaaaa", "graph-heat", quick, {"dhdt.png": b"old"})
    big = _png(150)
    assert len(big) > figures.MAX_BYTES
    newest = _run(
        stamp,
        "20260101-000002-bbbbbb",
        "graph-heat",
        dataclasses.replace(quick, n_out=51),
        {"dhdt.png": _png(40, 1), "fig1_snapshots.png": big},
    )
    failed = _run(stamp, "20260101-000003-cccccc-failed", "graph-heat", quick, {})
    assert failed.is_dir()

    assert figures.copy_figures(tmp_path / "runs", docs) == 0
    target = docs / "figures" / "graph-heat"
    assert (target / "dhdt.png").read_bytes() == (newest / "figures" / "dhdt.png").read_bytes()
    shrunk = (target / "fig1_snapshots.png").read_bytes()
    assert len(shrunk) <= figures.MAX_BYTES
    assert Image.open(io.BytesIO(shrunk)).format == "PNG"
    source = (target / "source.md").read_text(encoding="utf-8")
    assert "a reduced run" in source and "--set n_out=51" in source and newest.name in source


def test_a_single_run_of_the_quick_preset_says_so(tmp_path: Path, docs: Path) -> None:
    pngs = {"dhdt.png": _png(20), "fig1_snapshots.png": _png(20, 1)}
    run = _run(
        tmp_path, "20260101-000000-aaaaaa", "graph-heat", get("graph-heat").preset("quick"), pngs
    )
    assert figures.copy_figures(run, docs) == 0
    source = (docs / "figures" / "graph-heat" / "source.md").read_text(encoding="utf-8")
    assert "the `quick` preset" in source and "--set" not in source


def test_a_figure_no_run_provides_is_an_error(tmp_path: Path, docs: Path) -> None:
    run = _run(
        tmp_path, "20260101-000000-aaaaaa", "graph-heat", get("graph-heat").preset("quick"), {}
    )
    assert figures.copy_figures(run, docs) == 1

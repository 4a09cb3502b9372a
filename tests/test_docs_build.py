"""The documentation site builds with ``mkdocs build --strict`` and documents the public API.

Strict mode turns every warning into a failure: a broken link or anchor, a missing figure
or snippet, a page left out of the navigation, and a docstring the API reference cannot
parse (a parameter the signature does not have, for instance).
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import pkgutil
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = (
    "graph",
    "functionals",
    "fgenerators",
    "ot",
    "jko",
    "thermo",
    "flowmatch",
    "gan",
    "dot",
    "metrics",
    "data",
    "priors",
    "engine",
    "distributed",
    "cache",
    "progress",
)
NOT_REFERENCED = {"cli", "experiments", "report"}  # the command line and what it drives


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if importlib.util.find_spec("mkdocs") is None:
        pytest.skip("mkdocs is not installed; `pip install -e '.[docs]'` (the dev extra has it)")
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-f", "mkdocs.yml", "-d", out],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, f"mkdocs build --strict failed:\n{proc.stderr[-6000:]}"
    return out


def test_site_builds_strict(site: Path) -> None:
    assert (site / "index.html").is_file()
    assert (site / "scaling-out" / "index.html").is_file()
    for page in ("000-graph", "001-gan", "002-thermo", "003-dot"):
        assert (site / "seeds" / page / "index.html").is_file()


def test_the_scaling_out_page_includes_the_readme_section(site: Path) -> None:
    html = (site / "scaling-out" / "index.html").read_text(encoding="utf-8")
    assert "--nproc-per-node" in html and "SBATCH" in html


@pytest.mark.parametrize("package", PACKAGES)
def test_reference_documents_every_public_name(site: Path, package: str) -> None:
    html = (site / "reference" / package / "index.html").read_text(encoding="utf-8")
    anchors = set(re.findall(r'id="(ottokit\.[\w.]+)"', html))
    prefix = f"ottokit.{package}."
    module = importlib.import_module(f"ottokit.{package}")
    # ``ottokit.pkg.name``, or ``ottokit.pkg.submodule.name`` where a submodule shadows it
    missing = [
        name
        for name in module.__all__
        if not any(re.fullmatch(re.escape(prefix) + rf"([a-z_0-9]+\.)?{name}", a) for a in anchors)
    ]
    assert not missing, f"docs/reference/{package}.md does not document {missing}"


def test_every_public_package_has_a_reference_page() -> None:
    import ottokit

    public = {m.name for m in pkgutil.iter_modules(ottokit.__path__) if not m.name.startswith("_")}
    assert public - NOT_REFERENCED == set(PACKAGES), "add docs/reference/<package>.md and nav"
    pages = {p.stem for p in (ROOT / "docs" / "reference").glob("*.md")}
    assert pages == set(PACKAGES)
    nav = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    for package in PACKAGES:
        assert f"reference/{package}.md" in nav

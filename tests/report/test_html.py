"""The per-run Markdown report, the self-contained HTML report, and figure saving."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import matplotlib.pyplot as plt
import pytest

from ottokit.report.figures import new_figure, save_figure
from ottokit.report.html import build_html, render_html, write_markdown
from ottokit.report.result import Check, Comparison, Result

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _result(tmp_path: Path, experiment: str, seed_file: str, holds: list[bool]) -> Result:
    run_dir = tmp_path / experiment / "20240101-120000-abcdef"
    fig, ax = new_figure()
    ax.plot([0, 1, 2], [0, 1, 4])
    save_figure(fig, run_dir / "figures" / "curve.png")
    return Result(
        experiment=experiment,
        seed_file=seed_file,
        claim="entropy decreases along the flow & <stays> positive",
        run_dir=run_dir,
        metrics={"w2": {"final": 0.125, "rate": 1.5e-4}, "n_steps": 40},
        figures={"entropy vs time": "figures/curve.png"},
        checks=[Check(f"check {i}", h, f"detail {i}") for i, h in enumerate(holds)],
        comparisons=[Comparison("decay rate", 1.98765, 2.0, "seed Fig. 3"), Comparison("t", 3)],
        summary="First paragraph.\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n- one\n- two",
    )


def test_markdown_report_has_every_section(tmp_path: Path) -> None:
    md = write_markdown(_result(tmp_path, "graph-heat", "000_x.txt", [True, False]))
    assert md.startswith("# graph-heat\n")
    assert "entropy decreases along the flow" in md
    assert "## Checks (1 of 2 hold)" in md
    assert "| ✓ | check 0 | detail 0 |" in md and "| ✗ | check 1 | detail 1 |" in md
    assert "| decay rate | 1.988 | 2 | seed Fig. 3 |" in md
    assert "| t | 3 | — |  |" in md  # the seed gives no number
    assert "![entropy vs time](figures/curve.png)" in md
    assert "| w2.final | 0.125 |" in md and "| n_steps | 40 |" in md


def test_html_is_self_contained(tmp_path: Path) -> None:
    results = [_result(tmp_path, "graph-heat", "000_x.txt", [True, False])]
    path = build_html(results, "ottokit reproduce", tmp_path / "report.html")
    text = path.read_text(encoding="utf-8")
    assert "data:image/png;base64," in text
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", text)
    assert "<link" not in text and "<script" not in text
    embedded = re.search(r"data:image/png;base64,([A-Za-z0-9+/=]+)", text)
    assert embedded and base64.b64decode(embedded.group(1)).startswith(PNG_MAGIC)
    assert '<span class="ok">✓</span>' in text and '<span class="fail">✗</span>' in text
    assert "<figcaption>entropy vs time</figcaption>" in text


def test_html_escapes_text(tmp_path: Path) -> None:
    result = _result(tmp_path, "graph-heat", "000_x.txt", [True])
    result.checks.append(Check("<script>alert(1)</script>", False, "a < b"))
    text = render_html([result], "A & B")
    assert "<script>" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "<title>A &amp; B</title>" in text
    assert "&amp; &lt;stays&gt; positive" in text


def test_html_groups_by_seed_with_an_overview(tmp_path: Path) -> None:
    results = [
        _result(tmp_path, "zeta", "001_b.txt", [True, True]),
        _result(tmp_path, "beta", "000_a.txt", [True, False, False]),
        _result(tmp_path, "alpha", "001_b.txt", [False]),
    ]
    text = render_html(results, "report")
    sections = re.findall(r"<h2>Seed <code>([^<]+)</code></h2>", text)
    assert sections == ["000_a.txt", "001_b.txt"]
    assert [text.index(f"<h3>{n}</h3>") for n in ["beta", "alpha", "zeta"]] == sorted(
        text.index(f"<h3>{n}</h3>") for n in ["beta", "alpha", "zeta"]
    )
    overview = text[text.index("<h2>Overview</h2>") : text.index("<section")]
    row = re.search(r'href="#exp-beta">beta</a>.*?</tr>', overview)
    assert row is not None
    assert re.findall(r'<td class="num">(\d+)</td>', row.group(0)) == ["1", "2"]


def test_html_renders_summary_tables_lists_and_links(tmp_path: Path) -> None:
    result = _result(tmp_path, "graph-heat", "000_x.txt", [True])
    text = render_html([result], "report", base_dir=tmp_path)
    assert "<p>First paragraph.</p>" in text
    assert "<tr><th>a</th><th>b</th></tr>" in text and "<tr><td>1</td><td>2</td></tr>" in text
    assert "<ul><li>one</li><li>two</li></ul>" in text
    assert 'href="graph-heat/20240101-120000-abcdef"' in text  # relative to the report


def test_html_notes_a_missing_figure(tmp_path: Path) -> None:
    result = _result(tmp_path, "graph-heat", "000_x.txt", [True])
    result.figures["lost"] = "figures/lost.png"
    text = render_html([result], "report")
    assert "figure missing:" in text and "lost.png" in text


def test_build_html_replaces_an_older_report(tmp_path: Path) -> None:
    path = tmp_path / "report.html"
    path.write_text("stale")
    build_html([_result(tmp_path, "e", "000_x.txt", [True])], "fresh", path)
    assert "<title>fresh</title>" in path.read_text(encoding="utf-8")


def test_save_figure_writes_png_and_never_overwrites(tmp_path: Path) -> None:
    fig, axes = new_figure(1, 2)
    assert len(axes) == 2
    path = save_figure(fig, tmp_path / "sub" / "f.png")
    assert path.read_bytes().startswith(PNG_MAGIC)
    fig2, _ = new_figure()
    with pytest.raises(FileExistsError):
        save_figure(fig2, path)
    with pytest.raises(ValueError, match=r"must end in \.png"):
        save_figure(new_figure()[0], tmp_path / "f.pdf")


def test_save_figure_closes_pyplot_figures(tmp_path: Path) -> None:
    fig = plt.figure()
    assert fig.number in plt.get_fignums()
    save_figure(fig, tmp_path / "p.png")
    assert fig.number not in plt.get_fignums()

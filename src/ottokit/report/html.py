"""Reports: ``report.md`` for one run, and one self-contained ``report.html`` for many.

The HTML file needs nothing beside itself: CSS is inline and figures are embedded
as base64 ``data:`` URIs; only files inside a run's directory are embedded
(:func:`~ottokit.report.result.figure_file`). Experiments are grouped by seed
document, and each shows the seed's claim, its checks (✓ holds / ✗ does not), our
numbers beside the seed's, the figures, the summary, and the run directory.
"""

from __future__ import annotations

import base64
import html
import math
import mimetypes
import os
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from itertools import groupby
from pathlib import Path
from typing import Any

from ottokit.report.result import Result, figure_file
from ottokit.report.rundir import atomic_write_text

__all__ = ["build_html", "render_html", "write_markdown"]

HOLDS, FAILS = "✓", "✗"

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto;
       max-width: 68rem; padding: 0 1rem; color: #1d2330; line-height: 1.45; }
h1 { margin-bottom: 0.2rem; }
h2 { border-bottom: 2px solid #d5dae3; padding-bottom: 0.2rem; margin-top: 2.5rem; }
h3 { margin-top: 2rem; }
h4 { margin: 1.2rem 0 0.4rem; color: #3b4456; }
.meta, .rundir { color: #5b6475; font-size: 0.9rem; }
table { border-collapse: collapse; margin: 0.4rem 0 1rem; font-size: 0.92rem; }
th, td { border: 1px solid #d5dae3; padding: 0.3rem 0.6rem; text-align: left;
         vertical-align: top; }
th { background: #f1f3f7; }
td.num { font-variant-numeric: tabular-nums; text-align: right; }
.ok { color: #137333; font-weight: 600; }
.fail { color: #c5221f; font-weight: 600; }
.claim { background: #f7f8fb; border-left: 4px solid #8aa1c8; padding: 0.5rem 0.8rem; }
figure { display: inline-block; margin: 0.5rem 1rem 1rem 0; vertical-align: top; }
figure img { max-width: 100%; border: 1px solid #e3e6ec; }
figcaption { font-size: 0.88rem; color: #3b4456; }
.missing { color: #c5221f; font-style: italic; }
.error { background: #fdecea; border-left: 4px solid #c5221f; padding: 0.5rem 0.8rem; }
.guide { background: #f7f8fb; padding: 0.5rem 0.8rem; }
pre { background: #f7f8fb; padding: 0.6rem; overflow-x: auto; }
code { font-size: 0.9em; }
"""


def write_markdown(result: Result) -> str:
    """The per-run ``report.md``: claim, checks, comparisons, figures, summary, metrics."""
    n_hold = sum(c.holds for c in result.checks)
    lines = [
        f"# {result.experiment}",
        "",
        f"Seed: `{result.seed_file}`  ",
        f"Run directory: `{result.run_dir}`",
        "",
        "## Claim",
        "",
        result.claim,
        "",
        f"## Checks ({n_hold} of {len(result.checks)} hold)",
        "",
    ]
    if result.error:
        lines += [f"**This run did not finish** (an error, not a finding): {result.error}", ""]
    groups = (("Seed claims", result.claims), ("Software checks", result.software_checks))
    for title, checks in groups:
        if checks:
            lines += [f"### {title}", "", "| | check | detail |", "|---|---|---|"]
            lines += [
                f"| {HOLDS if c.holds else FAILS} | {_md_cell(c.name)} | {_md_cell(c.detail)} |"
                for c in checks
            ]
            lines.append("")
    if not result.checks and not result.error:
        lines.append("No checks.")
    if result.comparisons:
        lines += ["", "## Our numbers beside the seed's", ""]
        lines += ["| quantity | ours | seed | note |", "|---|---|---|---|"]
        lines += [
            f"| {_md_cell(c.quantity)} | {_md_cell(_fmt(c.ours))} | "
            f"{_md_cell(_fmt(c.seed))} | {_md_cell(c.note)} |"
            for c in result.comparisons
        ]
    if result.figures:
        lines += ["", "## Figures", ""]
        for caption, rel in result.figures.items():
            lines += [f"![{_md_cell(caption)}]({Path(rel).as_posix()})", "", f"*{caption}*", ""]
    if result.summary.strip():
        lines += ["", "## Summary", "", result.summary.strip()]
    metrics = _flatten(result.metrics)
    if metrics:
        lines += ["", "## Metrics", "", "| metric | value |", "|---|---|"]
        lines += [f"| {_md_cell(k)} | {_md_cell(v)} |" for k, v in metrics]
    return "\n".join(lines).rstrip() + "\n"


def render_html(results: Iterable[Result], title: str, base_dir: Path | None = None) -> str:
    """The HTML text of the report; run-directory links are relative to ``base_dir``."""
    ordered = sorted(results, key=lambda r: (r.seed_file, r.experiment))
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_esc(title)}</title>",
        f"<style>{_CSS}</style>",
        "</head>",
        "<body>",
        f"<h1>{_esc(title)}</h1>",
        f'<p class="meta">{len(ordered)} experiment(s), generated {_esc(stamp)}</p>',
        _overview(ordered),
    ]
    for seed_file, group in groupby(ordered, key=lambda r: r.seed_file):
        parts.append(f'<section class="seed" id="{_anchor("seed", seed_file)}">')
        parts.append(f"<h2>Seed <code>{_esc(seed_file)}</code></h2>")
        parts += [_experiment_html(r, base_dir) for r in group]
        parts.append("</section>")
    parts += ["</body>", "</html>"]
    return "\n".join(parts) + "\n"


def build_html(results: Iterable[Result], title: str, path: Path) -> Path:
    """Write the self-contained report to ``path`` atomically (replacing an older one)."""
    path = Path(path)
    text = render_html(results, title, base_dir=path.parent)
    return atomic_write_text(path, text, overwrite=True)


READING_GUIDE = (
    "Each experiment checks two kinds of statements. A seed claim is what the seed "
    "document states: ✓ means our measurement confirms it, ✗ means it does not — a "
    "finding, reported with both numbers and the reason, not a defect of ottokit. A "
    "software check is a property of our own computation (conservation, convergence, "
    "agreement with an independent reference) and must always hold: a ✗ there, or a run "
    "that ended in an error, is a problem to fix."
)


def _status(r: Result) -> str:
    if r.error:
        return '<span class="fail">error</span>'
    if not all(c.holds for c in r.software_checks):
        return '<span class="fail">software check failing</span>'
    return '<span class="ok">ok</span>'


def _cache_note(r: Result) -> str:
    if r.cache.get("run") == "hit":
        return "run from cache"
    reused = len(r.cache.get("trained_from_cache", []))
    trained = len(r.cache.get("trained", []))
    if reused:
        return f"{reused} of {reused + trained} trainings from cache"
    return "computed"


def _overview(results: list[Result]) -> str:
    rows = []
    for r in results:
        claims, software = r.claims, r.software_checks
        confirmed = sum(c.holds for c in claims)
        sw_hold = sum(c.holds for c in software)
        rows.append(
            "<tr>"
            f'<td><a href="#{_anchor("exp", r.experiment)}">{_esc(r.experiment)}</a></td>'
            f"<td><code>{_esc(r.seed_file)}</code></td>"
            f'<td class="num">{"—" if r.error else confirmed}</td>'
            f'<td class="num">{"—" if r.error else len(claims) - confirmed}</td>'
            f'<td class="num">{"—" if r.error else f"{sw_hold} of {len(software)}"}</td>'
            f"<td>{_status(r)}</td>"
            f'<td class="num">{_esc(_duration(r.wall_time))}</td>'
            f"<td>{_esc(_cache_note(r))}</td>"
            "</tr>"
        )
    return (
        f'<p class="guide">{_esc(READING_GUIDE)}</p>\n'
        "<h2>Overview</h2>\n<table>\n"
        "<tr><th>experiment</th><th>seed</th><th>seed claims confirmed</th>"
        "<th>seed claims not confirmed (findings)</th><th>software checks holding</th>"
        "<th>status</th><th>time</th><th>source</th></tr>\n" + "\n".join(rows) + "\n</table>"
    )


def _duration(seconds: float) -> str:
    if seconds <= 0:
        return "—"
    m, s = divmod(int(round(seconds)), 60)
    return f"{m}:{s:02d}"


def _checks_table(checks: list, first: str) -> str:
    rows = "\n".join(
        f"<tr><td>{_mark(c.holds)}</td><td>{_esc(c.name)}</td><td>{_esc(c.detail)}</td></tr>"
        for c in checks
    )
    return f"<table>\n<tr><th></th><th>{first}</th><th>detail</th></tr>\n" + rows + "\n</table>"


def _experiment_html(r: Result, base_dir: Path | None) -> str:
    parts = [
        f'<article class="experiment" id="{_anchor("exp", r.experiment)}">',
        f"<h3>{_esc(r.experiment)}</h3>",
        f'<p class="claim"><strong>The seed\'s claim.</strong> {_esc(r.claim)}</p>',
    ]
    if r.error:
        parts.append(
            f'<p class="error"><strong>This run did not finish</strong> (an error, not a '
            f"finding): {_esc(r.error)}</p>"
        )
    if r.claims:
        parts += ["<h4>Seed claims</h4>", _checks_table(r.claims, "claim")]
    if r.software_checks:
        parts += ["<h4>Software checks</h4>", _checks_table(r.software_checks, "check")]
    if not r.checks and not r.error:
        parts.append("<p>No checks.</p>")
    if r.cache.get("run") == "hit":
        parts.append(
            '<p class="meta">Copied from the cache: an earlier run with the same config and '
            "the same ottokit source.</p>"
        )
    if r.comparisons:
        rows = "\n".join(
            f'<tr><td>{_esc(c.quantity)}</td><td class="num">{_esc(_fmt(c.ours))}</td>'
            f'<td class="num">{_esc(_fmt(c.seed))}</td><td>{_esc(c.note)}</td></tr>'
            for c in r.comparisons
        )
        parts += [
            "<h4>Our numbers beside the seed's</h4>",
            "<table>\n<tr><th>quantity</th><th>ours</th><th>seed</th><th>note</th></tr>\n"
            + rows
            + "\n</table>",
        ]
    if r.figures:
        parts.append("<h4>Figures</h4>")
        parts += [_figure_html(r.run_dir, caption, rel) for caption, rel in r.figures.items()]
    if r.summary.strip():
        parts += ["<h4>Summary</h4>", _render_text(r.summary)]
    metrics = _flatten(r.metrics)
    if metrics:
        rows = "\n".join(
            f'<tr><td>{_esc(k)}</td><td class="num">{_esc(v)}</td></tr>' for k, v in metrics
        )
        parts.append(
            "<details><summary>Metrics</summary>\n<table>\n"
            "<tr><th>metric</th><th>value</th></tr>\n" + rows + "\n</table></details>"
        )
    link = _link(r.run_dir, base_dir)
    parts.append(
        f'<p class="rundir">Run directory: <a href="{_esc(link)}"><code>{_esc(link)}</code></a></p>'
    )
    parts.append("</article>")
    return "\n".join(parts)


def _figure_html(run_dir: Path, caption: str, rel: str) -> str:
    try:
        file = figure_file(run_dir, rel)
    except ValueError as err:
        return f'<p class="missing">figure refused: {_esc(str(err))} ({_esc(caption)})</p>'
    if not file.is_file():
        return f'<p class="missing">figure missing: {_esc(str(file))} ({_esc(caption)})</p>'
    mime = mimetypes.guess_type(file.name)[0] or "application/octet-stream"
    data = base64.b64encode(file.read_bytes()).decode("ascii")
    return (
        f'<figure><img src="data:{mime};base64,{data}" alt="{_esc(caption)}">'
        f"<figcaption>{_esc(caption)}</figcaption></figure>"
    )


def _render_text(text: str) -> str:
    """Render paragraphs, ``- `` lists, ``#`` headings and ``|`` tables; everything escaped."""
    out = []
    for block in re.split(r"\n\s*\n", text.strip()):
        lines = [ln.strip() for ln in block.splitlines() if ln.strip()]
        if all(ln.startswith("|") for ln in lines):
            out.append(_table_html(lines))
        elif all(ln.startswith(("- ", "* ")) for ln in lines):
            items = "".join(f"<li>{_esc(ln[2:])}</li>" for ln in lines)
            out.append(f"<ul>{items}</ul>")
        elif len(lines) == 1 and lines[0].startswith("#"):
            out.append(f"<h5>{_esc(lines[0].lstrip('#').strip())}</h5>")
        else:
            out.append("<p>" + "<br>\n".join(_esc(ln) for ln in lines) + "</p>")
    return "\n".join(out)


def _table_html(lines: list[str]) -> str:
    rows = [[cell.strip() for cell in ln.strip().strip("|").split("|")] for ln in lines]
    rows = [row for row in rows if not all(re.fullmatch(r":?-{2,}:?", c) for c in row)]
    head, body = rows[0], rows[1:]
    html_rows = ["<tr>" + "".join(f"<th>{_esc(c)}</th>" for c in head) + "</tr>"]
    html_rows += ["<tr>" + "".join(f"<td>{_esc(c)}</td>" for c in row) + "</tr>" for row in body]
    return "<table>\n" + "\n".join(html_rows) + "\n</table>"


def _flatten(metrics: dict[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    """``(dotted key, formatted value)`` for every leaf of a nested metrics dict."""
    out: list[tuple[str, str]] = []
    for key, value in metrics.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out += _flatten(value, prefix=f"{name}.")
        else:
            out.append((name, _fmt(value)))
    return out


def _fmt(value: Any) -> str:
    """Short text for a number, string, or list of numbers."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return str(value) if not math.isfinite(value) else f"{value:.4g}"
    if isinstance(value, list | tuple):
        if len(value) <= 8 and all(not isinstance(v, list | tuple | dict) for v in value):
            return "[" + ", ".join(_fmt(v) for v in value) + "]"
        return f"[{len(value)} values]"
    return str(value)


def _mark(holds: bool) -> str:
    return f'<span class="ok">{HOLDS}</span>' if holds else f'<span class="fail">{FAILS}</span>'


def _link(run_dir: Path, base_dir: Path | None) -> str:
    if base_dir is None:
        return Path(run_dir).as_posix()
    try:
        return Path(os.path.relpath(Path(run_dir).resolve(), Path(base_dir).resolve())).as_posix()
    except ValueError:  # another drive on Windows
        return Path(run_dir).resolve().as_posix()


def _anchor(kind: str, name: str) -> str:
    return f"{kind}-" + re.sub(r"[^A-Za-z0-9_-]+", "-", name)


def _md_cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _esc(text: object) -> str:
    return html.escape(str(text), quote=True)

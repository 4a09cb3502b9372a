"""Matplotlib figures drawn off-screen with the Agg canvas and saved atomically as PNG.

Figures come from :class:`matplotlib.figure.Figure` with an Agg canvas attached,
not from ``pyplot``: nothing global changes, no display is needed, and figures
are freed when they go out of scope.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ottokit.report.rundir import atomic_write_bytes

__all__ = ["DPI", "new_figure", "save_figure", "draw_graph_density"]

DPI = 120


def new_figure(
    nrows: int = 1,
    ncols: int = 1,
    *,
    figsize: tuple[float, float] | None = None,
    squeeze: bool = True,
    **subplot_kw: Any,
) -> tuple[Figure, Any]:
    """Return ``(fig, axes)`` like ``plt.subplots``, on an off-screen Agg canvas.

    The default size is 4.5 x 3.5 inches per panel; the layout is constrained.
    """
    if figsize is None:
        figsize = (4.5 * ncols, 3.5 * nrows)
    fig = Figure(figsize=figsize, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=squeeze, subplot_kw=subplot_kw or None)
    return fig, axes


def save_figure(fig: Figure, path: Path, *, overwrite: bool = False) -> Path:
    """Save ``fig`` as a PNG (dpi 120, tight bounding box) atomically, then close it.

    ``path`` must end in ``.png``; its directory is created if missing. An existing
    file is only replaced when ``overwrite`` is true.
    """
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"figure path must end in .png, got {path}")
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")
        atomic_write_bytes(path, buffer.getvalue(), overwrite=overwrite)
    finally:
        _close(fig)
    return path


def _close(fig: Figure) -> None:
    """Release ``fig``; a figure made by ``pyplot`` must also be dropped from pyplot's list."""
    if getattr(fig.canvas, "manager", None) is not None:
        import matplotlib.pyplot as plt

        plt.close(fig)
    fig.clear()


def draw_graph_density(
    ax: Any,
    g: Any,
    rho: Any,
    *,
    scale: float | None = None,
    max_radius: float = 9.0,
    color: str = "tab:red",
) -> None:
    """Draw a graph with node radius proportional to ``rho_i`` (seed 000, Figure 1).

    Edges are light grey lines; every node is a small grey dot; the red disc of
    node i has radius ``max_radius * rho_i / scale`` points (``scale``: the
    largest density shown, so panels sharing it are comparable).
    """
    import numpy as np
    from matplotlib.collections import LineCollection

    pos = np.asarray(g.positions)
    if pos is None or pos.shape[1] != 2:
        raise ValueError("draw_graph_density needs 2-D node positions")
    r = np.asarray(rho, dtype=float)
    s = float(scale if scale is not None else r.max())
    ax.add_collection(LineCollection(pos[g.edges], colors="0.85", linewidths=0.3, zorder=1))
    ax.scatter(pos[:, 0], pos[:, 1], s=0.3, c="0.55", zorder=2, linewidths=0)
    radius = max_radius * r / s
    ax.scatter(pos[:, 0], pos[:, 1], s=radius**2, c=color, alpha=0.75, zorder=3, linewidths=0)
    ax.set_aspect("equal")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xticks([])
    ax.set_yticks([])

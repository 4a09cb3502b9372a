"""diffusion-tradeoff: speed-accuracy trade-off of diffusion and flow-matching schedules (seed 002).

Ikeda, Uda, Okanohara & Ito (arXiv:2407.04495): the generated distribution's sensitivity to
a perturbation of the noise start, the response (Delta W1)^2 / (tau D0), is bounded by the
forward process's kinetic cost int T Sdot dt (= int v2^2 dt for potential forces), which the
W2 geodesic (optimal transport) minimises.

Seven studies, one module each, in the setting of :mod:`.setting`:

- :mod:`.table`: Table I in the paper's recovered setting, exact beside the estimators;
- :mod:`.spread`: what moves a cell by the table's +-4 %;
- :mod:`.fig6b`: Fig. 6(b), the exact chain of the shifted-mean row;
- :mod:`.toys`: 2-D Swiss roll and two peaks with estimated velocities;
- :mod:`.highdim`: the limit int v2^2 dt ~ n_d int (d_sigma^2 + d_m^2) dt (Shaul et al. 2023);
- :mod:`.rotation`: Fig. 7, a rotational forward process and its housekeeping cost;
- :mod:`.images`: a Fig. 8 analogue, flow-matching models trained on 8 x 8 digits.

Each module has a frozen ``XStudy`` dataclass, ``study``, ``checks``, ``comparisons``,
``summary`` and ``figure`` (``figures`` for the toys); :func:`run` loops over them.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from ottokit._torchio import torch_threads
from ottokit.experiments._registry import Experiment, register
from ottokit.experiments._studies import study_metrics
from ottokit.experiments.diffusion_tradeoff import (
    fig6b,
    highdim,
    images,
    rotation,
    spread,
    table,
    toys,
)
from ottokit.experiments.diffusion_tradeoff.config import DiffusionTradeoffConfig
from ottokit.experiments.diffusion_tradeoff.setting import PAPER_TABLE_I, perturbations_1d
from ottokit.report.result import Result

__all__ = ["DiffusionTradeoffConfig", "run", "PAPER_TABLE_I", "perturbations_1d"]

SEED_FILE = "002_d42d5c4244534a1d.txt"
CLAIM = (
    "For diffusion / flow-matching generation, the response of the generated data to a "
    "perturbation of the noise, (Delta W1)^2/(tau D0), is bounded by the kinetic cost of the "
    "forward process: (Delta W1)^2/(tau D0) <= int v_loss^2 dt <= int T S_dot dt = int v2^2 dt, "
    "with v_loss(t) <= v2(t) at every time; the bound is smallest, W2(P0, Ptau)^2/tau, for "
    "optimal transport, and the paper's Table I finds the response smallest for OT "
    "(cosine 9.19e-2 > cond-OT 8.78e-2 > OT 8.54e-2 for a shifted-mean perturbation)."
)


def _figures(module: Any, s: Any, directory: Path) -> dict[str, str]:
    """A study's figures by caption: ``figures`` where it draws several, else ``figure``."""
    if hasattr(module, "figures"):
        return {caption: str(path) for caption, path in module.figures(s, directory).items()}
    return {module.CAPTION: str(module.figure(s, directory / module.FILE))}


def run(config: DiffusionTradeoffConfig, out: Path) -> Result:
    """Run every study, then check, compare, summarise and draw each."""
    out = Path(out)
    started = time.perf_counter()
    torch.manual_seed(config.seed)
    done: dict[Any, Any] = {}
    timings: dict[str, dict[str, float]] = {}

    def timed(module: Any, compute: Any) -> None:
        t0, c0 = time.perf_counter(), time.process_time()
        done[module] = compute()
        timings[module.NAME] = {
            "wall_s": time.perf_counter() - t0,
            "cpu_s": time.process_time() - c0,
        }

    # small tensors everywhere: one intra-op thread is faster and keeps shared machines quiet
    with torch_threads(1, config.device):
        timed(table, lambda: table.study(config))
        timed(spread, lambda: spread.study(config, done[table]))
        done[fig6b] = fig6b.study(done[table])
        for module in (toys, highdim, rotation, images):
            timed(module, lambda m=module: m.study(config))
    order = (table, spread, fig6b, toys, highdim, rotation, images)
    studies = [(m, done[m]) for m in order]
    figures = {}
    for m, s in studies:
        figures.update(_figures(m, s, out / "figures"))
    return Result(
        experiment="diffusion-tradeoff",
        seed_file=SEED_FILE,
        claim=CLAIM,
        run_dir=out,
        metrics={
            **{m.NAME: study_metrics(s) for m, s in studies},
            "timings": timings,
            "wall_time_s": time.perf_counter() - started,
        },
        figures=figures,
        checks=[c for m, s in studies for c in m.checks(s)],
        comparisons=[c for m, s in studies for c in m.comparisons(s)],
        summary=" ".join(text for m, s in studies if (text := m.summary(s))),
    )


register(
    Experiment(
        name="diffusion-tradeoff",
        seed_id="002",
        seed_file=SEED_FILE,
        title="Speed-accuracy trade-off: Table I (recovered setting), Fig. 6(b), the rotational "
        "force of Fig. 7, a Fig. 8 analogue on digits, 2-D toys, the high-dimensional limit",
        config_cls=DiffusionTradeoffConfig,
        run=run,
        distributed=True,
    )
)

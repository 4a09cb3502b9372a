"""thermo-limits: speed limits of Fokker-Planck thermodynamics on Ornstein-Uhlenbeck examples.

Seed 002, first half (slides "entropy production", "2-Wasserstein speed", "minimum
entropy production", "TUR", "W1 speed"). For linear forces F_t(x) = A_t x + b_t every state
is Gaussian and every quantity has a closed form, so each inequality of the seed is checked
with both sides exact:

* Sdot_t >= v2(t)^2 / T_t, with equality for potential forces and strictly for a
  rotational force (Nakazato & Ito 2021);
* S_tot >= (int v2 dt)^2 / (tau T) >= W2(P_0, P_tau)^2 / (tau T), equality on the
  W2 geodesic protocol (Aurell et al. 2012); with a time-dependent temperature
  the same chain holds with tau T replaced by int T dt (Cauchy-Schwarz);
* the TUR v2^2/T >= (d_t<r>)^2 / (T <|grad r|^2>), and v2 >= v1.

Three studies, one module each: :mod:`.closed_forms` (six 2-D protocols and three 1-D
diffusion-schedule paths at the duration tau), :mod:`.durations` (the limit over a sweep of
tau) and :mod:`.particles` (an Euler-Maruyama particle estimator beside the closed forms).
The protocols are in :mod:`.protocols`.
"""

from __future__ import annotations

import time
from pathlib import Path

from ottokit.experiments._registry import Experiment, register
from ottokit.experiments._studies import study_metrics
from ottokit.experiments.thermo_limits import closed_forms, durations, particles
from ottokit.experiments.thermo_limits.config import ThermoLimitsConfig
from ottokit.experiments.thermo_limits.protocols import (
    moving_trap,
    protocols_2d,
    schedule_protocols,
)
from ottokit.report.result import Result

__all__ = ["ThermoLimitsConfig", "run", "protocols_2d", "schedule_protocols", "moving_trap"]

SEED_FILE = "002_d42d5c4244534a1d.txt"
CLAIM = (
    "For a Fokker-Planck process the entropy production rate bounds the squared "
    "2-Wasserstein speed, Sdot_t >= v2(t)^2/T_t (equality for potential forces); hence "
    "S_tot >= W2(P_0, P_tau)^2/(tau T) with equality on the W2 geodesic (minimum entropy "
    "production = optimal transport), and v2 bounds the speed of every observable (TUR) "
    "and the W1 speed: v2 >= v_r, v2 >= v1."
)
CONVENTION = (
    "dx = (A_t x + b_t) dt + sqrt(2 T_t) dW; nu = F - T grad log P; "
    "Sdot = E|nu|^2/T; the stationary state of A = -k I is N(0, T/k)"
)


def run(config: ThermoLimitsConfig, out: Path) -> Result:
    """Closed forms, bounds and particle estimates for the OU examples; check the seed's limits."""
    out = Path(out)
    started = time.perf_counter()
    closed = closed_forms.study(config)
    sweep = durations.study(config)
    ensemble = particles.study(config)
    figs = out / "figures"
    figures = {
        closed_forms.RATES_CAPTION: closed_forms.figure_rates(closed, figs / "speed_limits.png"),
        durations.caption(sweep): durations.figure(sweep, figs / "entropy_vs_w2.png"),
        particles.CAPTION: particles.figure(ensemble, figs / "particles.png"),
        closed_forms.SCHEDULES_CAPTION: closed_forms.figure_schedules(
            closed, figs / "schedules_1d.png"
        ),
        closed_forms.STATES_CAPTION: closed_forms.figure_states(closed, figs / "states.png"),
    }
    return Result(
        experiment="thermo-limits",
        seed_file=SEED_FILE,
        claim=CLAIM,
        run_dir=out,
        metrics={
            "convention": CONVENTION,
            "closed_forms": study_metrics(closed),
            "durations": study_metrics(sweep),
            "particles": study_metrics(ensemble),
            "wall_time_s": time.perf_counter() - started,
        },
        figures={caption: str(path) for caption, path in figures.items()},
        checks=closed_forms.checks(closed) + durations.checks(sweep) + particles.checks(ensemble),
        comparisons=closed_forms.comparisons(closed),
        summary=closed_forms.summary(closed) + " " + particles.summary(ensemble),
    )


register(
    Experiment(
        name="thermo-limits",
        seed_id="002",
        seed_file=SEED_FILE,
        title="Speed limits of Fokker-Planck thermodynamics on OU processes: Sdot >= v2^2/T, "
        "S_tot >= W2^2/(tau T) (equality on the geodesic), TUR, v2 >= v1",
        config_cls=ThermoLimitsConfig,
        run=run,
    )
)

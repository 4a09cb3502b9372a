"""diffusion-tradeoff: speed-accuracy trade-off of diffusion and flow-matching schedules (seed 002).

Ikeda, Uda, Okanohara & Ito (arXiv:2407.04495): the generated distribution's
sensitivity to a perturbation of the noise start, the response
(Delta W1)^2 / (tau D0), is bounded by the forward process's kinetic cost
int T Sdot dt (= int v2^2 dt for potential forces), which the W2 geodesic
(optimal transport) minimises.

1. Table I in the paper's recovered setting (REFERENCE.md): exact responses by
   quadrature beside the paper's estimators and a learned velocity, with intervals;
   what produces the table's +-4 % spread across schedules; Fig. 6(b).
2. 2-D Swiss roll and two-peak mixture: forward and estimated reverse processes,
   responses, bounds and v_loss(t) <= v2(t); the high-dimensional limit
   int v2^2 dt ~ n_d int (d_sigma^2 + d_m^2) dt (Shaul et al. 2023).
3. Fig. 7: a rotational (non-conservative) forward process on a Swiss roll, and the
   housekeeping part of its entropy production.
4. Fig. 8 analogue: flow-matching models trained on 8 x 8 digits, eta and c2 per dimension.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from ottokit._config import ValidatedConfig, device_param, param, seed_param
from ottokit._torchio import torch_threads
from ottokit.data import swiss_roll, two_peaks
from ottokit.experiments._registry import Experiment, register
from ottokit.experiments._tradeoff_images import (
    PAPER_FIG8,
    fig_images,
    image_study,
    summarise,
)
from ottokit.experiments._tradeoff_rotation import fig_rotation, rotation_study
from ottokit.experiments._tradeoff_table import (
    KNOWN_ROWS,
    PAPER_KINETIC_BARS,
    PAPER_TABLE_I,
    SCHEDULES,
    fig_6b,
    fig_spread,
    fig_table,
    perturbations_1d,
    spread_study,
    table_one,
)
from ottokit.flowmatch import (
    CondOT,
    Cosine,
    ExactVelocity,
    KernelVelocity,
    Normal,
    conditional_kinetic_energy,
    kinetic_cost,
    ot_path_velocity,
    sample_backward,
    tradeoff,
)
from ottokit.ot import w2
from ottokit.report.figures import new_figure, save_figure
from ottokit.report.progress import progress_bar
from ottokit.report.result import Check, Comparison, Result

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


_ROOT2 = math.sqrt(2.0)  # N(0, s^2 I) against N(0, I) has finite chi^2 only for s < sqrt(2)
SpreadMethod = Literal["euler", "midpoint", "rk4"]
ImageCoupling = Literal["cond-OT", "cosine", "minibatch-OT"]


@dataclass
class DiffusionTradeoffConfig(ValidatedConfig):
    """Both presets use the paper's recovered Table I setting; ``quick`` shrinks the sizes."""

    tau: float = param(1.0, doc="horizon tau of every forward process", gt=0)
    mixture_mu: float = param(
        0.6, doc="Table I data 1/2 N(-mu, s^2) + 1/2 N(mu, s^2): mu (recovered: 0.6)"
    )
    mixture_std: float = param(0.3, doc="Table I data: the components' s (recovered: 0.3)", gt=0)
    n_samples: int = param(10_000, doc="samples per cloud of the sampled estimators", ge=100)
    n_boot: int = param(400, doc="bootstrap resamples of their 95 % intervals", ge=20)
    n_pairs: int = param(4000, doc="data-noise pairs of the OT kernel estimator (Eq. G19)", ge=10)
    kernel_bandwidth: float = param(
        0.05, doc="stated Gaussian-kernel width h of the OT kernel estimator", gt=0
    )
    train_steps: int = param(
        6000, doc="flow-matching steps of the learned 1-D velocities (0: none)", ge=0
    )
    train_hidden: int = param(128, doc="width of the learned 1-D velocity MLPs", ge=1)
    ode_steps: int = param(100, doc="rk4 steps of the sampled estimators", ge=1)
    n_save: int = param(21, doc="times on the exact W1 and v_loss curves", ge=2)
    spread_sample_counts: tuple[int, ...] = param(
        (500, 2000, 10_000), doc="spread study: W1 samples per cloud", ge=100, distinct=True
    )
    spread_repeats: int = param(12, doc="spread study: independent draws per sample count", ge=2)
    spread_methods: tuple[SpreadMethod, ...] = param(
        ("euler", "midpoint", "rk4"), doc="spread study: fixed-step ODE methods", distinct=True
    )
    spread_steps: tuple[int, ...] = param(
        (2, 4, 8, 16, 32, 100), doc="spread study: ODE step counts", ge=1, distinct=True
    )
    spread_bandwidths: tuple[float, ...] = param(
        (0.01, 0.03, 0.1, 0.3), doc="spread study: OT kernel widths h", gt=0, distinct=True
    )
    spread_pairs: tuple[int, ...] = param(
        (500, 4000), doc="spread study: OT kernel pair counts", ge=10, distinct=True
    )
    spread_pair_repeats: int = param(4, doc="spread study: pair draws per (pairs, width)", ge=2)
    spread_all_rows: bool = param(
        True, doc="spread study: bandwidths on the three known rows (false: the mean row)"
    )
    spread_end_times: tuple[float, ...] = param(
        (0.005, 0.01, 0.02, 0.04), doc="spread study: reverse ODE end times t_end", gt=0, lt=1
    )
    toy_samples: int = param(2000, doc="2-D toys: data points and kernel pairs", ge=10)
    toy_w1_samples: int = param(2000, doc="2-D toys: samples per cloud (exact-OT W1)", ge=10)
    toy_ode_steps: int = param(100, doc="2-D toys: rk4 steps", ge=1)
    highdim_dims: tuple[int, ...] = param(
        (1, 4, 16, 64, 256, 1024), doc="high-dimensional limit: dimensions", ge=1, increasing=True
    )
    highdim_points: int = param(8, doc="high-dimensional limit: data points", ge=1)
    rotation_g: tuple[float, ...] = param(
        (0.0, 3.0, 5.0), doc="Fig. 7: rotation strengths g", ge=0, increasing=True, min_items=2
    )
    rotation_h: float = param(1.1, doc="Fig. 7: the conservative rate h of H_t")
    rotation_T_fin: float = param(0.5, doc="Fig. 7: final temperature T_fin", gt=0)
    rotation_scale: float = param(
        0.9, doc="Fig. 7: perturbed start N(0, s^2 I), s", gt=0, lt=_ROOT2
    )
    rotation_data: int = param(1000, doc="Fig. 7: Swiss-roll points", ge=10)
    rotation_samples: int = param(2000, doc="Fig. 7: samples per cloud", ge=10)
    rotation_repeats: int = param(5, doc="Fig. 7: independent draws for the interval", ge=2)
    rotation_rtol: float = param(1e-5, doc="Fig. 7: dopri5 tolerance of the reverse ODE", gt=0)
    rotation_ode_steps: int = param(100, doc="Fig. 7: rk4 steps for the OT kernel velocity", ge=1)
    rotation_ot_bandwidth: float = param(
        0.05, doc="Fig. 7: kernel width of the OT path's velocity (Scott's rule blurs the roll)",
        gt=0,
    )
    rotation_kinetic_nodes: int = param(
        12, doc="Fig. 7: Gauss-Legendre times for int E|nu|^2 dt", ge=2
    )
    image_couplings: tuple[ImageCoupling, ...] = param(
        ("cond-OT", "cosine", "minibatch-OT"), doc="Fig. 8: schedules / couplings", distinct=True
    )
    image_repeats: int = param(5, doc="Fig. 8: models trained per coupling", ge=2)
    image_train_steps: int = param(5000, doc="Fig. 8: training steps per model", ge=1)
    image_hidden: int = param(256, doc="Fig. 8: MLP width", ge=1)
    image_batch: int = param(256, doc="Fig. 8: batch (and minibatch-OT) size", ge=2)
    image_samples: int = param(2000, doc="Fig. 8: generated samples per cloud", ge=10)
    image_scale: float = param(
        0.9, doc="Fig. 8: perturbed start N(0, s^2 I), s", gt=0, lt=_ROOT2
    )
    image_ode_steps: int = param(40, doc="Fig. 8: rk4 steps of generation", ge=1)
    seed: int = seed_param()
    device: str = device_param()

    @classmethod
    def paper(cls) -> DiffusionTradeoffConfig:
        return cls()

    @classmethod
    def quick(cls) -> DiffusionTradeoffConfig:
        return cls(
            n_samples=2000,
            n_boot=200,
            n_pairs=1000,
            train_steps=800,
            ode_steps=20,
            n_save=11,
            spread_sample_counts=(500, 2000, 8000),
            spread_repeats=4,
            spread_steps=(2, 4, 8, 16, 32),
            spread_bandwidths=(0.01, 0.05, 0.2),
            spread_pairs=(1000,),
            spread_pair_repeats=2,
            spread_all_rows=False,
            toy_samples=600,
            toy_w1_samples=1000,
            toy_ode_steps=20,
            highdim_dims=(1, 16, 256),
            rotation_data=500,
            rotation_samples=1000,
            rotation_repeats=3,
            rotation_ode_steps=40,
            rotation_kinetic_nodes=8,
            image_repeats=5,
            image_train_steps=1000,
            image_hidden=128,
            image_batch=128,
            image_samples=1000,
            image_ode_steps=20,
        )


def _schedule(name: str, tau: float) -> Any:
    return Cosine(tau) if name == "cosine" else CondOT(tau)


# 2-D integrated quantities are Monte Carlo estimates (2 %). The instantaneous v_loss(t) is
# a finite difference of sampled W1 over a saved interval: its noise is about
# (W1 sampling error) / (dt sqrt(D0)), near 10 % at the quick preset's sizes.
_TOL_INTEGRATED = 0.02
_TOL_INSTANTANEOUS = 0.15


def _tol(q: Any) -> float:
    return _TOL_INSTANTANEOUS if "v_loss(t)" in q.name else _TOL_INTEGRATED


def _record(r: Any) -> dict[str, Any]:
    return {
        "response": r.response,
        "response_ci": r.response_ci,
        "estimator": r.estimator,
        "flow_map": r.flow_map,
        "kinetic_method": r.kinetic_method,
        "delta_w1": r.delta_w1,
        "d0": r.d0,
        "v_loss_sq_integral": r.v_loss_sq_integral,
        "kinetic": r.kinetic,
        "kinetic_stderr": r.kinetic_stderr,
        "w2_bound": r.w2_bound,
        "inequalities": [
            {"name": q.name, "lhs": q.lhs, "rhs": q.rhs, "holds": q.lhs <= q.rhs * (1 + _tol(q))}
            for q in r.inequalities()
        ],
        "t_mid": r.t_mid.tolist(),
        "v_loss": r.v_loss.tolist(),
        "v2_mid": r.v2_mid.tolist(),
    }


def _toys(cfg: DiffusionTradeoffConfig, bar: Any) -> dict[str, Any]:
    tau = cfg.tau
    sets = {
        "swiss roll": swiss_roll(cfg.toy_samples, seed=cfg.seed),
        "two peaks": two_peaks(cfg.toy_samples, separation=3.0, std=0.3, seed=cfg.seed),
    }
    pert = Normal([1.0, 0.0], [[1.0, 0.0], [0.0, 1.0]])
    out: dict[str, Any] = {}
    for name, arr in sets.items():
        y = torch.as_tensor(arr)
        gen = torch.Generator().manual_seed(cfg.seed)
        z = torch.randn(y.shape, generator=gen, dtype=torch.float64)
        w2_sq = float(w2(y, z)) ** 2  # P0 and Ptau are shared by the schedules
        out[name] = {}
        for s in SCHEDULES:
            if s == "OT":
                est = ot_path_velocity(y, z, tau)
                path = est
            else:
                est = KernelVelocity(_schedule(s, tau), y, z)
                path = ExactVelocity(_schedule(s, tau), y)
            r = tradeoff(
                est,
                path,
                pert,
                n_samples=cfg.toy_w1_samples,
                n_steps=cfg.toy_ode_steps,
                n_save=cfg.n_save,
                n_x=1024,
                seed=cfg.seed,
                w2_squared_exact=w2_sq,
                ci="none",
            )
            fracs = [0.0, 1 / 3, 2 / 3, 1.0]
            fwd = [path.sample_marginal(f * tau, 1000, gen).numpy() for f in fracs]
            back = sample_backward(
                est,
                torch.randn(1000, 2, generator=gen, dtype=torch.float64),
                tau,
                n_steps=cfg.toy_ode_steps,
                save_at=[0.0, 1 / 3, 2 / 3, 1.0],
            )
            rec = _record(r)
            rec["forward"] = [f.tolist() for f in fwd]
            # backward trajectory saved from t = tau: reorder to t/tau = 0, 1/3, 2/3, 1
            rec["reverse"] = [x.numpy().tolist() for x in back.x.flip(0)]
            out[name][s] = rec
            bar.advance()
    return out


def _highdim(cfg: DiffusionTradeoffConfig, bar: Any) -> dict[str, Any]:
    res: dict[str, Any] = {}
    for s in ("cosine", "cond-OT"):
        sched = _schedule(s, cfg.tau)
        rows = []
        for d in cfg.highdim_dims:
            gen = torch.Generator().manual_seed(cfg.seed)
            data = torch.randn(cfg.highdim_points, d, generator=gen, dtype=torch.float64)
            kin = kinetic_cost(ExactVelocity(sched, data), n_t=24, n_x=512, seed=cfg.seed)
            approx = conditional_kinetic_energy(sched, d)
            rows.append(
                {
                    "dim": d,
                    "kinetic": kin.integral,
                    "stderr": kin.integral_stderr,
                    "n_d_int": approx,
                    "ratio": kin.integral / approx,
                }
            )
        res[s] = rows
        bar.advance()
    return res


def _rel(a: float, b: float) -> float:
    return a / b - 1.0


def run(config: DiffusionTradeoffConfig, out: Path) -> Result:
    out = Path(out)
    started = time.perf_counter()
    torch.manual_seed(config.seed)
    n_rot = len(config.rotation_g) + 1
    n_img = len(config.image_couplings) * config.image_repeats
    n_tasks = 1 + len(PAPER_TABLE_I) + 3 + 2 * len(SCHEDULES) + 2 + n_rot + n_img
    timings: dict[str, dict[str, float]] = {}

    def timed(name: str, fn: Any, *args: Any) -> Any:
        t0, c0 = time.perf_counter(), time.process_time()
        value = fn(*args)
        timings[name] = {
            "wall_s": time.perf_counter() - t0,
            "cpu_s": time.process_time() - c0,
        }
        return value

    # small tensors everywhere: one intra-op thread is faster and keeps shared machines quiet
    with torch_threads(1, config.device), progress_bar(n_tasks, "diffusion-tradeoff") as bar:
        table = timed("table_i", table_one, config, bar)
        spread = timed("spread", spread_study, config, table, bar)
        toys = timed("toys", _toys, config, bar)
        high = timed("highdim", _highdim, config, bar)
        rotation = timed("fig7", rotation_study, config, bar)
        images, chi2_images = timed("fig8", image_study, config, bar)
    image_summary = summarise(images)
    checks, comparisons, facts = _assess(config, table, spread, toys, high, rotation, image_summary)
    figs = out / "figures"
    data_2d = swiss_roll(config.rotation_data, seed=config.seed)
    figures = {
        "Table I: the paper's values, our exact response (quadrature) and our estimators with "
        "95% intervals; the mixture row's perturbation is a guess": str(
            fig_table(table, figs / "table1.png")
        ),
        "Fig. 6(b), shifted mean: response <= int v_loss^2 <= int v2^2 per schedule with the "
        "paper's bars, and the exact v_loss(t) <= v2(t)": str(fig_6b(table, figs / "fig6b.png")),
        "What moves a Table I cell away from the exact value: W1 samples, ODE steps, OT kernel "
        "bandwidth (dotted: the paper's offsets)": str(fig_spread(spread, figs / "spread.png")),
        "Fig. 7: rotational forward process on a Swiss roll, responses beside the paper's, and "
        "generated samples": str(fig_rotation(rotation, data_2d, figs / "fig7.png")),
        "Fig. 8 analogue: eta/n_d and c2/n_d of flow-matching models on 8x8 digits beside "
        "CelebA-HQ": str(fig_images(image_summary, figs / "fig8.png")),
        "Swiss roll: forward process (top) and estimated reverse process (bottom) at t/tau = "
        "0, 1/3, 2/3, 1, per schedule": str(_fig_toy(toys["swiss roll"], figs / "swiss_roll.png")),
        "Two peaks: forward and estimated reverse processes": str(
            _fig_toy(toys["two peaks"], figs / "two_peaks.png")
        ),
        "v_loss(t) against v2(t) (2-D, shifted-mean perturbation)": str(
            _fig_vloss(toys, figs / "vloss.png")
        ),
        "High-dimensional limit: int v2^2 dt / (n_d int (d_sigma^2 + d_m^2) dt) against n_d": str(
            _fig_highdim(high, figs / "highdim.png")
        ),
    }
    metrics = {
        "table_i": [
            {**asdict(c), "rel_exact_to_paper": c.rel_exact, "guess": c.row not in KNOWN_ROWS}
            for c in table.cells
        ],
        "table_i_exact": {
            row: {s: _record(r) for s, r in by_s.items()} for row, by_s in table.exact.items()
        },
        "exact_response_spread": facts["exact_schedule_spread"],
        "inequalities": [
            {"where": f"1-D {row} / exact / {s}", **q}
            for row, by_s in table.exact.items()
            for s, r in by_s.items()
            for q in _record(r)["inequalities"]
        ]
        + [
            {"where": f"2-D {n} / {s}", **q}
            for n, by_s in toys.items()
            for s, rec in by_s.items()
            for q in rec["inequalities"]
        ],
        "kernel": {"bandwidth": table.bandwidth, "n_pairs": table.n_pairs},
        "spread": asdict(spread),
        "fig7": [
            {k: v for k, v in asdict(c).items() if k != "samples"} for c in rotation
        ],
        "fig8": {
            "runs": [asdict(r) for r in images],
            "summary": image_summary,
            "chi2_exact": chi2_images,
            "paper": PAPER_FIG8,
        },
        "toys": {
            n: {
                s: {k: v for k, v in rec.items() if k not in ("forward", "reverse")}
                for s, rec in by_s.items()
            }
            for n, by_s in toys.items()
        },
        "highdim": high,
        "facts": facts,
        "timings": timings,
        "wall_time_s": time.perf_counter() - started,
    }
    return Result(
        experiment="diffusion-tradeoff",
        seed_file=SEED_FILE,
        claim=CLAIM,
        run_dir=out,
        metrics=metrics,
        figures=figures,
        checks=checks,
        comparisons=comparisons,
        summary=_summary(config, table, spread, rotation, image_summary, facts),
    )


def _fmt_ci(e: Any) -> str:
    return f"{e.response:.4e} [{e.ci[0]:.4e}, {e.ci[1]:.4e}]"


def _assess(
    cfg: DiffusionTradeoffConfig,
    table: Any,
    spread: Any,
    toys: dict[str, Any],
    high: dict[str, Any],
    rotation: list[Any],
    images: dict[str, dict[str, float]],
) -> tuple[list[Check], list[Comparison], dict[str, Any]]:
    cells = table.cells
    exact = table.exact
    facts: dict[str, Any] = {}
    # Table I, exact path
    known = [c for c in cells if c.row in KNOWN_ROWS]
    cond_ot = {c.row: c.rel_exact for c in known if c.schedule == "cond-OT"}
    facts["rel_exact_cond_ot"] = cond_ot
    spreads = {
        row: float(np.ptp([exact[row][s].response for s in SCHEDULES]) / exact[row]["OT"].response)
        for row in exact
    }
    facts["exact_schedule_spread"] = spreads
    chain = []
    for row, by_s in exact.items():
        for s, r in by_s.items():
            ok = (
                r.response <= r.v_loss_sq_integral * (1 + 1e-9)
                and r.v_loss_sq_integral <= r.kinetic
                and r.w2_bound <= r.kinetic * (1 + 1e-9)
                and bool(np.all(r.v_loss <= r.v2_mid * (1 + 1e-9)))
            )
            chain.append((f"{row} / {s}", ok))
    kin = {s: exact["shifted mean"][s].kinetic for s in SCHEDULES}
    facts["kinetic"] = kin
    ot = exact["shifted mean"]["OT"]
    tight = {s: exact["shifted mean"][s].response / exact["shifted mean"][s].v_loss_sq_integral
             for s in SCHEDULES}
    facts["response_over_vloss_integral"] = tight
    bars = {s: _rel(kin[s], PAPER_KINETIC_BARS[s]) for s in SCHEDULES}
    # estimators
    kinds = list(cells[0].estimates)
    covers = {
        k: [c.estimates[k].ci[0] <= c.exact <= c.estimates[k].ci[1] for c in known] for k in kinds
    }
    facts["ci_covers_exact"] = {k: f"{sum(v)} of {len(v)}" for k, v in covers.items()}
    order = {
        k: {
            row: [c.estimates[k].response for c in cells if c.row == row]
            for row in PAPER_TABLE_I
        }
        for k in kinds
    }
    paper_order = {
        k: all(v[0] > v[1] > v[2] for v in by_row.values()) for k, by_row in order.items()
    }
    ot_smallest = {
        k: all(v[2] <= min(v[0], v[1]) for v in by_row.values()) for k, by_row in order.items()
    }
    facts["estimators_paper_order"] = paper_order
    # the spread study
    facts["spread"] = _spread_facts(spread)
    # 2-D toys and the high-dimensional limit
    ineqs = [
        {"where": f"2-D {n} / {s}", **q}
        for n, by_s in toys.items()
        for s, rec in by_s.items()
        for q in rec["inequalities"]
    ]
    toy_failed = [q for q in ineqs if not q["holds"]]
    vloss_ok = {
        f"{n} / {s}": bool(np.all(np.asarray(rec["v_loss"]) <= 1.05 * np.asarray(rec["v2_mid"])))
        for n, by_s in toys.items()
        for s, rec in by_s.items()
    }
    last = {s: rows[-1]["ratio"] for s, rows in high.items()}
    first = {s: rows[0]["ratio"] for s, rows in high.items()}
    highdim_ok = all(abs(last[s] - 1) < abs(first[s] - 1) and abs(last[s] - 1) <= 0.1 for s in high)
    # Fig. 7
    rot = {c.name: c for c in rotation}
    g_cases = [c for c in rotation if c.g is not None]
    grows = all(a.response < b.response for a, b in zip(g_cases[:-1], g_cases[1:], strict=True))
    ot_case = rot["OT"]
    ot_small = ot_case.response < 0.1 * g_cases[0].response
    rot_bound = all(c.response <= c.kinetic_generated for c in rotation)
    hk = [c.gaussian["housekeeping"] for c in g_cases]
    hk_ok = hk[0] < 1e-6 * max(hk[-1], 1e-300) and all(
        a < b for a, b in zip(hk[:-1], hk[1:], strict=True)
    )
    facts["fig7"] = {
        c.name: {"eta": c.response, "paper": c.paper, "ci": c.ci, "bound": c.kinetic_generated}
        for c in rotation
    }
    # Fig. 8
    img_bound = all(v["bound_holds"] == 1.0 for v in images.values())

    checks = [
        Check(
            "Table I reproduced: in the recovered setting the exact (schedule-independent) "
            "response is within 1 % of the paper's cond-OT value in the three known rows",
            all(abs(v) <= 0.01 for v in cond_ot.values()),
            ", ".join(f"{r} {v:+.2%}" for r, v in cond_ot.items()),
        ),
        Check(
            "In 1-D the exact responses coincide across schedules (every time-tau map is the "
            "monotone rearrangement), to quadrature accuracy",
            max(spreads.values()) <= 1e-6,
            "relative spread per row: " + ", ".join(f"{r} {v:.1e}" for r, v in spreads.items()),
        ),
        Check(
            "Exact chain, without sampling: response <= int v_loss^2 dt <= int v2^2 dt, "
            "W2^2/tau <= int v2^2 dt and v_loss(t) <= v2(t), in every cell",
            all(ok for _, ok in chain),
            f"{sum(ok for _, ok in chain)} of {len(chain)} cells",
        ),
        Check(
            "OT has the smallest bound, int v2^2 dt = W2(P0, Ptau)^2/tau, and the tightest "
            "chain: on the OT path W1(t) is linear, so response = int v_loss^2 dt",
            kin["OT"] < min(kin["cosine"], kin["cond-OT"])
            and abs(kin["OT"] / ot.w2_bound - 1) < 1e-6
            and abs(tight["OT"] - 1) < 1e-6,
            ", ".join(f"{s}: int v2^2 {kin[s]:.4f}, response/int v_loss^2 {tight[s]:.4f}"
                      for s in SCHEDULES),
        ),
        Check(
            "Fig. 6(b): our int v2^2 dt within 3 % of the paper's bars (read off its figure)",
            all(abs(v) <= 0.03 for v in bars.values()),
            ", ".join(f"{s} {kin[s]:.4f} vs {PAPER_KINETIC_BARS[s]} ({bars[s]:+.1%})"
                      for s in SCHEDULES),
        ),
    ]
    for k in kinds:
        checks.append(
            Check(
                f"The {k} estimator's 95 % interval holds the exact value (known rows)",
                all(covers[k]),
                f"{sum(covers[k])} of {len(covers[k])}; the quadrature of the same velocity "
                "separates velocity error from sampling error (metrics table_i)",
            )
        )
        checks.append(
            Check(
                f"The paper's ordering of Table I (cosine > cond-OT > OT) with the {k} "
                "estimator in every row (the exact responses are equal: any order is "
                "estimation error)",
                paper_order[k],
                "; ".join(
                    f"{row}: " + " / ".join(f"{v:.4g}" for v in vals)
                    for row, vals in order[k].items()
                )
                + f"; OT smallest in every row: {ot_smallest[k]}",
            )
        )
    checks += [
        Check(
            "2-D toys with estimated velocities (kernel regression): the chain holds (2 % for "
            "integrated Monte Carlo quantities, 15 % for the sampled v_loss(t))",
            not toy_failed,
            f"{len(ineqs) - len(toy_failed)} of {len(ineqs)} hold"
            + (
                f"; e.g. {toy_failed[0]['where']} {toy_failed[0]['name']} "
                f"{toy_failed[0]['lhs']:.4g} vs {toy_failed[0]['rhs']:.4g} (estimation error: "
                "the OT path here is the kernel-averaged field itself, whose kinetic energy "
                "falls below its pairs' W2^2 by Jensen's inequality)"
                if toy_failed
                else ""
            ),
        ),
        Check(
            "v_loss(t) <= v2(t) at every time in 2-D (5 % tolerance for the estimates)",
            all(vloss_ok.values()),
            ", ".join(f"{k}: {v}" for k, v in vloss_ok.items()),
        ),
        Check(
            "High dimension: int v2^2 dt -> n_d int (d_sigma^2 + d_m^2) dt (ratio -> 1 as n_d "
            "grows at fixed data count; within 10 % at the largest n_d)",
            highdim_ok,
            ", ".join(
                f"{s}: ratio {first[s]:.3f} at n_d={high[s][0]['dim']} -> {last[s]:.3f} "
                f"at n_d={high[s][-1]['dim']}"
                for s in high
            ),
        ),
        Check(
            "Fig. 7: the response is bounded by int E|nu|^2 dt along the generated path "
            "(the theorem with the transporting field, non-conservative included)",
            rot_bound,
            ", ".join(f"{c.name}: {c.response:.3g} <= {c.kinetic_generated:.3g}"
                      for c in rotation),
        ),
        Check(
            "Fig. 7 (paper): the response grows with the rotation g",
            grows,
            ", ".join(f"{c.name}: {c.response:.3g} [{c.ci[0]:.3g}, {c.ci[1]:.3g}]"
                      for c in g_cases),
        ),
        Check(
            "Fig. 7 (paper): the OT response is near zero (here: below 10 % of g = 0's)",
            ot_small,
            f"OT {ot_case.response:.3g} vs g = 0 {g_cases[0].response:.3g}; paper 7.2e-6",
        ),
        Check(
            "The rotation costs housekeeping entropy production, E|nu - grad phi|^2 = T Sdot - "
            "v2^2: zero for g = 0 and growing with g (Gaussian fit of the data, closed form)",
            hk_ok,
            ", ".join(f"{c.name}: {c.gaussian['housekeeping']:.4g}" for c in g_cases),
        ),
        Check(
            "Fig. 8 analogue: eta <= c2 = tau E|u_theta|^2 for every trained model",
            img_bound,
            ", ".join(
                f"{n}: eta/n_d {v['eta_per_dim']:.3g}, c2/n_d {v['c2_per_dim']:.3g}"
                for n, v in images.items()
            ),
        ),
    ]

    comparisons = []
    for c in cells:
        guess = c.row not in KNOWN_ROWS
        est = "; ".join(
            f"{k} {_fmt_ci(e)} (quadrature {e.quadrature:.4e}, {_rel(e.response, c.paper):+.1%})"
            for k, e in c.estimates.items()
        )
        comparisons.append(
            Comparison(
                f"Table I, {c.row}, {c.schedule}" + (" (perturbation guessed)" if guess else ""),
                f"{c.exact:.5e}",
                f"{c.paper:.5e}",
                f"exact {c.rel_exact:+.2%} from the paper; {est}"
                + ("; a guess, not counted as a check" if guess else ""),
            )
        )
    for s in SCHEDULES:
        comparisons.append(
            Comparison(
                f"Fig. 6(b), int v2^2 dt, {s}",
                f"{kin[s]:.4f}",
                f"{PAPER_KINETIC_BARS[s]}",
                f"read off the paper's bar; quadrature here; int v_loss^2 = "
                f"{exact['shifted mean'][s].v_loss_sq_integral:.4f}",
            )
        )
    for c in rotation:
        comparisons.append(
            Comparison(
                f"Fig. 7, response, {c.name}",
                f"{c.response:.4g} [{c.ci[0]:.3g}, {c.ci[1]:.3g}]",
                f"{c.paper:.4g}",
                f"our Swiss roll and exact velocity; int E|nu|^2 generated "
                f"{c.kinetic_generated:.3g}, forward int T Sdot {c.kinetic_forward:.3g}; "
                f"Var P_tau {c.end_variance:.2f}",
            )
        )
    for n, v in images.items():
        comparisons.append(
            Comparison(
                f"Fig. 8, eta/n_d and c2/n_d, {n}",
                f"{v['eta_per_dim']:.3g} +- {v['eta_per_dim_sd']:.2g}, "
                f"{v['c2_per_dim']:.3g} +- {v['c2_per_dim_sd']:.2g}",
                f"{PAPER_FIG8['eta_per_dim']}, {PAPER_FIG8['c2_per_dim']} (CelebA-HQ)",
                f"8x8 digit pixels (n_d = 64), small MLP; D0 (Eq. G21) {v['d0']:.3g}",
            )
        )
    return checks, comparisons, facts


def _spread_facts(spread: Any) -> dict[str, Any]:
    paper = spread.paper_offsets["shifted mean"]
    best_ode = min(
        (
            (sum((by[s] - paper[s]) ** 2 for s in SCHEDULES[:2]), m, n)
            for m, steps in spread.ode.items()
            for n, by in steps.items()
        ),
        default=(np.inf, "", 0),
    )
    best_h = min(
        ((abs(rec["mean"]["shifted mean"] - paper["OT"]), key) for key, rec in
         spread.bandwidth.items()),
        default=(np.inf, ""),
    )
    end_fit = {
        t_end: {
            s: float(np.sqrt(np.mean([
                (by_row[row][s] - spread.paper_offsets[row][s]) ** 2 for row in by_row
            ])))
            for s in SCHEDULES
        }
        for t_end, by_row in spread.end_time.items()
    }
    return {
        "end_time_rms_mismatch": end_fit,
        "paper_offsets_mean_row": paper,
        "sampling_sd": {n: rec["sd"] for n, rec in spread.sampling.items()},
        "paper_order_fraction": {n: rec["paper_order_fraction"]
                                 for n, rec in spread.sampling.items()},
        "closest_ode": {"method": best_ode[1], "steps": best_ode[2],
                        "offsets": spread.ode[best_ode[1]][best_ode[2]] if best_ode[1] else {}},
        "closest_bandwidth": {"setting": best_h[1],
                              **(spread.bandwidth[best_h[1]] if best_h[1] else {})},
    }


def _summary(
    cfg: DiffusionTradeoffConfig,
    table: Any,
    spread: Any,
    rotation: list[Any],
    images: dict[str, dict[str, float]],
    facts: dict[str, Any],
) -> str:
    sp = facts["spread"]
    n_mid = sorted(sp["sampling_sd"])[len(sp["sampling_sd"]) // 2]
    ode, bw, paper = sp["closest_ode"], sp["closest_bandwidth"], sp["paper_offsets_mean_row"]
    fits = sp["end_time_rms_mismatch"]
    t_ot = min(fits, key=lambda e: fits[e]["OT"])
    ends = spread.end_time[t_ot]
    g_cases = [c for c in rotation if c.g is not None]
    rot = {c.name: c for c in rotation}
    guess = [c for c in table.cells if c.row not in KNOWN_ROWS]
    grows = all(a.response < b.response for a, b in zip(g_cases[:-1], g_cases[1:], strict=True))
    c2_ratio = float(np.mean([v["c2_per_dim"] for v in images.values()])) / PAPER_FIG8[
        "c2_per_dim"
    ]
    eta_ratio = float(np.mean([v["eta_per_dim"] for v in images.values()])) / PAPER_FIG8[
        "eta_per_dim"
    ]
    return (
        f"Table I in the recovered setting (q = 1/2 N(+-{cfg.mixture_mu}, {cfg.mixture_std}^2), "
        f"tau = {cfg.tau}): the exact response, the same for every schedule in 1-D, is "
        + ", ".join(f"{r} {v:+.2%}" for r, v in facts["rel_exact_cond_ot"].items())
        + " from the paper's cond-OT cells, inside each row's cosine-OT spread. Our guess for "
        f"the mixture row's perturbation misses by {guess[0].rel_exact:+.0%} (not a check). "
        f"Relative to the exact value the paper's shifted-mean cells are cosine "
        f"{paper['cosine']:+.1%}, cond-OT {paper['cond-OT']:+.1%}, OT {paper['OT']:+.1%}; the "
        "95 % bootstrap intervals of the estimators cover the exact value in "
        + ", ".join(f"{v} known cells ({k})" for k, v in facts["ci_covers_exact"].items())
        + ". What moves a cell: "
        f"W1 from {n_mid} samples scatters it by "
        + ", ".join(f"{s} {v:.1%}" for s, v in sp["sampling_sd"][n_mid].items())
        + " (sd over independent draws; the paper's order in "
        f"{sp['paper_order_fraction'][n_mid]:.0%} of them): the size of the table's spread, but "
        "not an order that repeats in every row. Fixed-step ODEs with the exact velocity leave "
        "the OT path exact (its velocity is constant along straight lines) and move cond-OT "
        f"more than cosine (closest to the paper: {ode['method']}, {ode['steps']} steps: "
        + ", ".join(f"{s} {v:+.1%}" for s, v in ode["offsets"].items())
        + "). The OT kernel estimator moves only the OT cell, downwards as the bandwidth grows "
        f"(closest: {bw.get('setting')}, "
        f"{bw.get('mean', {}).get('shifted mean', float('nan')):+.1%}, with a "
        f"{bw.get('sd', {}).get('shifted mean', float('nan')):.1%} scatter over pair draws). "
        f"Stopping the reverse ODE at t_end = {t_ot:g} lowers the OT cell by the same "
        + "/".join(f"{ends[r]['OT']:+.1%}" for r in KNOWN_ROWS)
        + " in the three rows (the paper: "
        + "/".join(f"{spread.paper_offsets[r]['OT']:+.1%}" for r in KNOWN_ROWS)
        + ") but not the other columns (cosine "
        + "/".join(f"{ends[r]['cosine']:+.1%}" for r in KNOWN_ROWS)
        + ", cond-OT "
        + "/".join(f"{ends[r]['cond-OT']:+.1%}" for r in KNOWN_ROWS)
        + "). No single stated choice reproduces all nine offsets; the spread is estimator "
        "error, not a property of the schedules. The exact bounds int v2^2 dt are "
        + ", ".join(f"{s} {v:.4f}" for s, v in facts["kinetic"].items())
        + " (the paper's bars 0.201 / 0.445 / 0.144). Fig. 7 (our Swiss roll, exact "
        "velocity, paired starts N(0, I) and N(0, 0.81 I)): "
        + ", ".join(f"{c.name} {c.response:.3g} (paper {c.paper:.3g})" for c in rotation)
        + "; the bound int E|nu|^2 dt grows with g ("
        + ", ".join(f"{c.kinetic_generated:.3g}" for c in g_cases)
        + ") and so does the rotation's housekeeping cost (Gaussian fit: "
        + ", ".join(f"{c.gaussian['housekeeping']:.3g}" for c in g_cases)
        + ("), and the response grows too. " if grows else
           "), but the response with the exact velocity does not follow: a rotation moves both "
           "generated clouds alike and W1 does not see it. ")
        + "The paper's values and its near-zero OT value "
        f"({rot['OT'].paper:.1g}; ours {rot['OT'].response:.3g}) are not reproduced; its "
        "data, score network and starts differ from ours, and P_tau of this process is not "
        f"N(0, I) (variance {g_cases[0].end_variance:.2f} per coordinate). Fig. 8 analogue "
        "(8x8 digits, perturbed start N(0, 0.81 I)): "
        + ", ".join(
            f"{n} eta/n_d {v['eta_per_dim']:.2g}, c2/n_d {v['c2_per_dim']:.3g}"
            for n, v in images.items()
        )
        + f" (CelebA-HQ latents: {PAPER_FIG8['eta_per_dim']}, {PAPER_FIG8['c2_per_dim']}); "
        f"c2/n_d is {_size_word(c2_ratio)} the paper's, eta/n_d {_size_word(eta_ratio)} it: "
        "with D0 of 64-D isotropic fits growing like n_d and a dilation of the start changing "
        "W1 only radially, eta stays O(1) whatever n_d, a reading of the paper's unknown "
        "perturbation rather than a property of the models."
    )


def _size_word(ratio: float) -> str:
    """How a ratio ours / paper reads: within a factor 2 is 'about', else 'far from'."""
    return "about" if 0.5 <= ratio <= 2.0 else "far from"


def _fig_toy(by_s: dict, path: Path) -> Path:
    fig, axes = new_figure(
        2 * len(SCHEDULES), 4, figsize=(10.0, 2.5 * 2 * len(SCHEDULES)), squeeze=False
    )
    labels = ["0", "1/3", "2/3", "1"]
    for i, s in enumerate(SCHEDULES):
        for j in range(4):
            for row, key, name in (
                (2 * i, "forward", "forward P_t"),
                (2 * i + 1, "reverse", "estimated reverse"),
            ):
                ax = axes[row, j]
                pts = np.asarray(by_s[s][key][j])
                ax.scatter(pts[:, 0], pts[:, 1], s=1.5, alpha=0.5)
                ax.set_xlim(-3.5, 3.5)
                ax.set_ylim(-3.5, 3.5)
                ax.set_xticks([])
                ax.set_yticks([])
                ax.set_title(f"{s}, {name}, t/tau={labels[j]}", fontsize=7)
    return save_figure(fig, path)


def _fig_vloss(toys: dict, path: Path) -> Path:
    fig, axes = new_figure(1, len(toys), figsize=(5.0 * len(toys), 3.6))
    for ax, (name, by_s) in zip(np.atleast_1d(axes), toys.items(), strict=True):
        for k, s in enumerate(SCHEDULES):
            rec = by_s[s]
            ax.plot(rec["t_mid"], rec["v2_mid"], "-", color=f"C{k}", label=f"v2, {s}")
            ax.plot(rec["t_mid"], rec["v_loss"], "--", color=f"C{k}", label=f"v_loss, {s}")
        ax.set_xlabel("t")
        ax.set_title(name)
        ax.legend(fontsize=7)
    return save_figure(fig, path)


def _fig_highdim(high: dict, path: Path) -> Path:
    fig, ax = new_figure()
    for s, rows in high.items():
        ax.semilogx([r["dim"] for r in rows], [r["ratio"] for r in rows], "o-", label=s)
    ax.axhline(1.0, color="grey", lw=0.8)
    ax.set_xlabel("dimension n_d (data count fixed)")
    ax.set_ylabel("int v2^2 / (n_d int (d_sigma^2 + d_m^2))")
    ax.legend()
    return save_figure(fig, path)


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

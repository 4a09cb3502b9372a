"""diffusion-tradeoff: speed-accuracy trade-off of diffusion and flow-matching schedules (seed 002).

Ikeda, Uda, Okanohara & Ito (arXiv:2407.04495): the generated distribution's
sensitivity to a perturbation of the noise start, the response
(Delta W1)^2 / (tau D0), is bounded by the forward process's kinetic cost
int v2^2 dt, which the W2 geodesic (optimal transport) minimises.

1. Table I: a 1-D two-Gaussian mixture, four perturbed starts x three schedules
   (cosine, cond-OT, OT), responses with the exact, a kernel-regressed and a
   learned velocity, beside the paper's numbers.
2. 2-D Swiss roll and two-peak mixture: forward and estimated reverse processes
   at t/tau = 0, 1/3, 2/3, 1, responses, bounds and v_loss(t) <= v2(t).
3. The high-dimensional limit int v2^2 dt ~ n_d int (d_sigma^2 + d_m^2) dt
   (Shaul et al. 2023) at fixed data count.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ottokit.data import swiss_roll, two_peaks
from ottokit.experiments._registry import Experiment, register
from ottokit.flowmatch import (
    CondOT,
    Cosine,
    ExactVelocity,
    GaussianMixture,
    GaussianMixtureVelocity,
    KernelVelocity,
    MonotoneVelocity1D,
    Normal,
    TrainConfig,
    Uniform,
    conditional_kinetic_energy,
    kinetic_cost,
    ot_path_velocity,
    sample_backward,
    tradeoff,
    train_velocity,
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
SCHEDULES = ("cosine", "cond-OT", "OT")
# Table I of arXiv:2407.04495 (REFERENCE.md): cosine / cond-OT / OT
PAPER_TABLE_I: dict[str, tuple[float, float, float]] = {
    "shifted mean": (9.1884e-2, 8.7810e-2, 8.5375e-2),
    "shifted variance": (1.078e-1, 1.047e-1, 1.022e-1),
    "Gaussian mixture": (2.764e-2, 2.674e-2, 2.611e-2),
    "uniform": (2.142e-2, 2.068e-2, 2.033e-2),
}


@dataclass
class DiffusionTradeoffConfig:
    tau: float = 1.0
    # 1-D data: equal mixture of N(-mu, s^2) and N(mu, s^2) (our choice; the paper's
    # Appendix G values were not available to us)
    mixture_mu: float = 1.5
    mixture_std: float = 0.5
    n_samples: int = 5000  # per cloud for W1 (>= 2,000)
    n_pairs: int = 2000  # pairs for kernel regression
    train_steps: int = 6000  # flow-matching steps of the learned velocity (0: skip)
    ode_steps: int = 100  # rk4 steps for transport
    n_save: int = 21
    toy_samples: int = 2000  # 2-D data sets (and kernel-regression pairs there)
    toy_w1_samples: int = 2000  # per cloud for the exact-OT W1 in 2-D
    highdim_dims: tuple[int, ...] = (1, 4, 16, 64, 256, 1024)
    highdim_points: int = 8
    seed: int = 0
    device: str = "cpu"

    @classmethod
    def paper(cls) -> DiffusionTradeoffConfig:
        return cls()

    @classmethod
    def quick(cls) -> DiffusionTradeoffConfig:
        return cls(
            n_samples=2000,
            n_pairs=400,
            train_steps=800,
            ode_steps=20,
            n_save=11,
            toy_samples=600,
            highdim_dims=(1, 16, 256),
            highdim_points=8,
        )


def perturbations_1d() -> dict[str, Any]:
    """The four perturbed noise starts of Table I (the unperturbed start is N(0, 1))."""
    return {
        "shifted mean": Normal([1.0], [[1.0]]),
        "shifted variance": Normal([0.0], [[1.44]]),
        "Gaussian mixture": GaussianMixture([[-1.0], [1.0]], [[[1.0]], [[1.0]]], [0.5, 0.5]),
        "uniform": Uniform([-2.0], [2.0]),
    }


def _schedule(name: str, tau: float) -> Any:
    return Cosine(tau) if name == "cosine" else CondOT(tau)


def _table_1d(cfg: DiffusionTradeoffConfig, out: Path, bar: Any) -> dict[str, Any]:
    tau = cfg.tau
    mixture = GaussianMixture(
        [[-cfg.mixture_mu], [cfg.mixture_mu]],
        [[[cfg.mixture_std**2]], [[cfg.mixture_std**2]]],
        [0.5, 0.5],
    )
    gen = torch.Generator().manual_seed(cfg.seed)
    data = mixture.sample(cfg.n_pairs, gen)
    noise = torch.randn(cfg.n_pairs, 1, generator=gen, dtype=torch.float64)
    exact, estimated, learned = {}, {}, {}
    for s in SCHEDULES:
        if s == "OT":
            exact[s] = MonotoneVelocity1D(mixture, tau)
            estimated[s] = ot_path_velocity(data, noise, tau)
        else:
            exact[s] = GaussianMixtureVelocity(
                _schedule(s, tau), mixture.means, mixture.covs, mixture.weights
            )
            estimated[s] = KernelVelocity(_schedule(s, tau), data, noise)
        if cfg.train_steps > 0:
            tc = TrainConfig(
                n_steps=cfg.train_steps,
                seed=cfg.seed,
                coupling="ot" if s == "OT" else "independent",
                checkpoint_every=max(cfg.train_steps // 4, 1),
            )
            res = train_velocity(
                CondOT(tau) if s == "OT" else _schedule(s, tau),
                mixture.sample(20000, gen),
                tc,
                checkpoint_dir=out / "checkpoints" / f"1d-{s}",
                device=cfg.device,
            )
            learned[s] = res.model.eval()
        bar.advance()
    w2_sq = exact["OT"].w2_squared()  # W2(P0, N(0,1))^2, exact for the 1-D mixture
    velocities = {"exact": exact, "kernel": estimated}
    if learned:
        velocities["learned"] = learned
    table: dict[str, dict[str, dict[str, dict[str, Any]]]] = {}
    for pname, pert in perturbations_1d().items():
        table[pname] = {}
        for kind, fields in velocities.items():
            table[pname][kind] = {}
            for s in SCHEDULES:
                r = tradeoff(
                    fields[s],
                    exact[s],
                    pert,
                    n_samples=cfg.n_samples,
                    n_steps=cfg.ode_steps,
                    n_save=cfg.n_save,
                    n_x=2048,
                    seed=cfg.seed,
                    w2_squared_exact=w2_sq,
                )
                table[pname][kind][s] = _record(r)
            bar.advance()
    return {"table": table, "mixture": {"mu": cfg.mixture_mu, "std": cfg.mixture_std}}


# Integrated quantities are Monte Carlo / quadrature estimates (2%). The instantaneous
# v_loss(t) is a finite difference of sampled W1 over a saved interval: its noise is about
# (W1 sampling error) / (dt sqrt(D0)), near 10% at the quick preset's sizes.
_TOL_INTEGRATED = 0.02
_TOL_INSTANTANEOUS = 0.15


def _tol(q: Any) -> float:
    return _TOL_INSTANTANEOUS if "v_loss(t)" in q.name else _TOL_INTEGRATED


def _record(r: Any) -> dict[str, Any]:
    return {
        "response": r.response,
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
                n_steps=cfg.ode_steps,
                n_save=cfg.n_save,
                n_x=1024,
                seed=cfg.seed,
                w2_squared_exact=w2_sq,
            )
            fracs = [0.0, 1 / 3, 2 / 3, 1.0]
            fwd = [path.sample_marginal(f * tau, 1000, gen).numpy() for f in fracs]
            back = sample_backward(
                est,
                torch.randn(1000, 2, generator=gen, dtype=torch.float64),
                tau,
                n_steps=cfg.ode_steps,
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


def run(config: DiffusionTradeoffConfig, out: Path) -> Result:
    out = Path(out)
    started = time.perf_counter()
    torch.manual_seed(config.seed)
    n_tasks = len(SCHEDULES) + len(perturbations_1d()) + 2 * len(SCHEDULES) + 2
    with progress_bar(n_tasks, "diffusion-tradeoff") as bar:
        one_d = _table_1d(config, out, bar)
        toys = _toys(config, bar)
        high = _highdim(config, bar)
    table = one_d["table"]

    # 1. exact responses coincide across schedules in 1-D (same time-tau map)
    spreads = {}
    for p, rows in table.items():
        vals = np.array([rows["exact"][s]["response"] for s in SCHEDULES])
        spreads[p] = float((vals.max() - vals.min()) / vals.mean())
    coincide = max(spreads.values()) <= 0.03
    # 2. every inequality of the chain, everywhere
    ineqs = [
        {"where": f"1-D {p} / {k} / {s}", **q}
        for p, rows in table.items()
        for k, by_s in rows.items()
        for s, rec in by_s.items()
        for q in rec["inequalities"]
    ] + [
        {"where": f"2-D {n} / {s}", **q}
        for n, by_s in toys.items()
        for s, rec in by_s.items()
        for q in rec["inequalities"]
    ]
    exact_rows = [q for q in ineqs if "/ exact /" in q["where"]]
    failed = [q for q in exact_rows if not q["holds"]]
    estimated_rows = [q for q in ineqs if "/ exact /" not in q["where"]]
    est_failed = [q for q in estimated_rows if not q["holds"]]
    # 3. the OT bound is the smallest kinetic cost
    kin = {s: table["shifted mean"]["exact"][s]["kinetic"] for s in SCHEDULES}
    ot_smallest_bound = kin["OT"] <= min(kin["cosine"], kin["cond-OT"])
    # 4. the paper's ordering of responses with estimated velocities
    order = {}
    for kind in [k for k in ("kernel", "learned") if k in table["shifted mean"]]:
        order[kind] = all(
            table[p][kind]["OT"]["response"]
            <= min(table[p][kind]["cosine"]["response"], table[p][kind]["cond-OT"]["response"])
            for p in table
        )
    # 5. v_loss(t) <= v2(t) in 2-D
    vloss_ok = {
        f"{n} / {s}": bool(np.all(np.asarray(rec["v_loss"]) <= 1.05 * np.asarray(rec["v2_mid"])))
        for n, by_s in toys.items()
        for s, rec in by_s.items()
    }
    # 6. high-dimensional limit
    last = {s: rows[-1]["ratio"] for s, rows in high.items()}
    first = {s: rows[0]["ratio"] for s, rows in high.items()}
    highdim_ok = all(abs(last[s] - 1) < abs(first[s] - 1) and abs(last[s] - 1) <= 0.1 for s in high)

    figs = out / "figures"
    figures = {
        "Table I: responses (Delta W1)^2/(tau D0) per perturbation, schedule and velocity, with "
        "the paper's values (exact velocities coincide across schedules in 1-D)": str(
            _fig_table(table, figs / "table1.png")
        ),
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
    checks = [
        Check(
            "With the exact velocity (the theorem's setting) every inequality holds: response "
            "<= int v_loss^2 <= int v2^2, int v2^2 >= W2^2/tau (2% tolerance), v_loss(t) <= "
            "v2(t) (15%: finite differences of sampled W1)",
            not failed,
            f"{len(exact_rows) - len(failed)} of {len(exact_rows)} hold"
            + (
                f"; failing: {failed[0]['where']} {failed[0]['name']} "
                f"{failed[0]['lhs']:.4g} vs {failed[0]['rhs']:.4g}"
                if failed
                else ""
            ),
        ),
        Check(
            "With estimated velocities (kernel regression, learned net; 1-D and 2-D) the chain, "
            "bounded by the exact forward process, holds as in the paper's figures",
            not est_failed,
            f"{len(estimated_rows) - len(est_failed)} of {len(estimated_rows)} hold"
            + (
                f"; e.g. {est_failed[0]['where']} {est_failed[0]['name']} "
                f"{est_failed[0]['lhs']:.4g} vs {est_failed[0]['rhs']:.4g} (estimation error of "
                "the velocity; the theorem bounds v_loss by the speed of the transporting field)"
                if est_failed
                else ""
            ),
        ),
        Check(
            "In 1-D the exact responses coincide across schedules (the time-tau map is the "
            "monotone rearrangement for every schedule)",
            coincide,
            "relative spread per perturbation: "
            + ", ".join(f"{p} {v:.1%}" for p, v in spreads.items()),
        ),
        Check(
            "The OT (geodesic) path has the smallest bound int v2^2 dt",
            ot_smallest_bound,
            ", ".join(f"{s} {v:.4f}" for s, v in kin.items()),
        ),
        Check(
            "v_loss(t) <= v2(t) at every time in 2-D (5% tolerance for the estimates)",
            all(vloss_ok.values()),
            ", ".join(f"{k}: {v}" for k, v in vloss_ok.items()),
        ),
        Check(
            "High dimension: int v2^2 dt -> n_d int (d_sigma^2 + d_m^2) dt (the ratio approaches 1 "
            "as n_d grows at fixed data count; within 10% at the largest n_d)",
            highdim_ok,
            ", ".join(
                f"{s}: ratio {first[s]:.3f} at n_d={high[s][0]['dim']} -> {last[s]:.3f} "
                f"at n_d={high[s][-1]['dim']}"
                for s in high
            ),
        ),
    ]
    for kind, ok in order.items():
        checks.append(
            Check(
                f"Paper's ordering with the {kind} velocity: the OT response is the "
                "smallest for every perturbation",
                ok,
                "; ".join(
                    f"{p}: " + " / ".join(f"{table[p][kind][s]['response']:.4g}" for s in SCHEDULES)
                    for p in table
                ),
            )
        )
    comparisons = []
    for p, paper in PAPER_TABLE_I.items():
        for kind in table[p]:
            comparisons.append(
                Comparison(
                    f"{p}, {kind} velocity: cosine / cond-OT / OT",
                    " / ".join(f"{table[p][kind][s]['response']:.4e}" for s in SCHEDULES),
                    " / ".join(f"{v:.4e}" for v in paper),
                    "our 1-D mixture differs from the paper's; D0 = "
                    f"{table[p][kind]['OT']['d0']:.4f}",
                )
            )
    metrics = {
        "table_1d": table,
        "mixture": one_d["mixture"],
        "exact_response_spread": spreads,
        "toys": {
            n: {
                s: {k: v for k, v in rec.items() if k not in ("forward", "reverse")}
                for s, rec in by_s.items()
            }
            for n, by_s in toys.items()
        },
        "highdim": high,
        "inequalities": ineqs,
        "wall_time_s": time.perf_counter() - started,
    }
    summary = (
        f"1-D data: equal mixture of N(+-{config.mixture_mu}, {config.mixture_std}^2), tau = "
        f"{config.tau}. With the exact velocity the responses of the three schedules agree to "
        f"{100 * max(spreads.values()):.1f}% for every perturbation, as they must: in 1-D every "
        "schedule's time-tau map is the same monotone rearrangement, so the generated "
        "distributions coincide. The paper's differences across schedules therefore come from "
        "the estimated velocity, not from the schedules' exact flows. The bounds do differ: "
        + ", ".join(f"int v2^2 = {v:.4f} ({s})" for s, v in kin.items())
        + ", the OT geodesic being the smallest. "
        + f"With the exact velocity {len(exact_rows) - len(failed)} of {len(exact_rows)} "
        f"recorded inequalities hold; with estimated velocities "
        f"{len(estimated_rows) - len(est_failed)} of {len(estimated_rows)}. "
        "The paper's ordering of responses (OT smallest) "
        + ("is reproduced" if all(order.values()) else "is not reproduced")
        + " by our estimated velocities: their responses are dominated by estimation error, "
        "which the bound does not control."
    )
    return Result(
        experiment="diffusion-tradeoff",
        seed_file=SEED_FILE,
        claim=CLAIM,
        run_dir=out,
        metrics=metrics,
        figures=figures,
        checks=checks,
        comparisons=comparisons,
        summary=summary,
    )


def _fig_table(table: dict, path: Path) -> Path:
    perts = list(table)
    kinds = list(table[perts[0]])
    fig, axes = new_figure(1, len(perts), figsize=(4.0 * len(perts), 3.6))
    width = 0.8 / (len(kinds) + 1)
    for ax, p in zip(np.atleast_1d(axes), perts, strict=True):
        x = np.arange(len(SCHEDULES))
        for k, kind in enumerate(kinds):
            ax.bar(
                x + k * width, [table[p][kind][s]["response"] for s in SCHEDULES], width, label=kind
            )
        ax.bar(x + len(kinds) * width, PAPER_TABLE_I[p], width, label="paper", color="0.6")
        ax.set_xticks(x + width * len(kinds) / 2, SCHEDULES)
        ax.set_title(p, fontsize=9)
    np.atleast_1d(axes)[0].set_ylabel("(Delta W1)^2 / (tau D0)")
    np.atleast_1d(axes)[0].legend(fontsize=7)
    return save_figure(fig, path)


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
        title="Speed-accuracy trade-off of cosine / cond-OT / OT schedules (Table I, 2-D, high-d)",
        config_cls=DiffusionTradeoffConfig,
        run=run,
        distributed=True,
    )
)

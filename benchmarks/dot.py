"""Discriminator optimal transport beside its rivals, and against the bare cost of its arithmetic.

On a small GAN trained briefly on the seed's 25 Gaussians, times DOT in target and latent
space, DRS, MH-GAN and DDLS at equal sample counts (medians over repeats, methods
interleaved), and DOT against the bare cost of its own arithmetic (steps x one forward and
backward pass of D or D o G), paired within each repeat. Every method's output is compared
with fresh data by exact W1. benchmarks/README.md describes the setup and the measurement.

Usage::

    python benchmarks/dot.py --quick         # smoke run
    python benchmarks/dot.py                 # N = 2000, 7 repeats
    python benchmarks/dot.py --n 1000 --repeats 7 --out /tmp/dot.json
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import _harness as h
import numpy as np
import torch
from torch import Tensor, nn

from ottokit import ot as ottokit_ot
from ottokit.data import gaussians_grid
from ottokit.dot import calibrate, ddls, dot_latent, dot_target, drs, effective_lipschitz, mh_gan
from ottokit.priors import Prior

DEFAULT_OUT = h.RESULTS / "dot.json"
QUICK_OUT = h.RESULTS / "dot_quick.json"
METHODS = ("dot_target", "dot_latent", "drs", "mh_gan", "ddls")

HIDDEN = 128
DEPTH = 3
LATENT = 2
TRAIN_STEPS, TRAIN_STEPS_QUICK = 1500, 300
TRAIN_BATCH = 256
DOT_STEPS = 100
DOT_LR = 0.01
CLIP = 2.0
DRS_PILOT = 10_000
MH_K = 20
DDLS_STEPS = 100
DDLS_EPS = 0.01
TARGET_RATIO = 1.3

DEFINITIONS = {
    "time_s": "wall-clock seconds of one call, median over the repeats; time_min_s the fastest. "
    "Methods alternate round-robin within each repeat, after one untimed warm-up call each.",
    "samples_per_s": "N / time_s (N returned samples per call).",
    "bare_s": "steps x [D(x) forward + torch.autograd.grad(D(x).sum(), x)] on the same (N, 2) "
    "batch (dot_target) or the same with D(G(z)) and z (dot_latent); median over the repeats.",
    "ratio_to_bare": "median over the repeats of (DOT time / bare time) within the same repeat "
    "(the two calls run back to back); ratios_to_bare_fastest: fastest DOT run / fastest bare "
    "run. Target: ratio_to_bare <= 1.3.",
    "cost": "dot_*: gradient evaluations per sample (= steps); drs: proposals per returned "
    "sample, pilot included; mh_gan: proposals per chain (K); ddls: gradient evaluations "
    "per sample (steps + 1).",
    "w1": "exact W1 (ottokit.ot.w1) between the method's N samples and N fresh data points; "
    "'generator' is G(z) itself.",
}


def mlp(d_in: int, d_out: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    d = d_in
    for _ in range(DEPTH):
        layers += [nn.Linear(d, HIDDEN), nn.LeakyReLU(0.2)]
        d = HIDDEN
    layers.append(nn.Linear(d, d_out))
    return nn.Sequential(*layers)


def train_gan(steps: int, seed: int = 0) -> tuple[nn.Module, nn.Module, float]:
    """Non-saturating GAN on the 25 Gaussians; returns G, D (eval, frozen) and seconds."""
    t0 = time.perf_counter()
    torch.manual_seed(seed)
    G, D = mlp(LATENT, 2), mlp(2, 1)
    data = torch.as_tensor(gaussians_grid(50_000, seed=seed), dtype=torch.float32)
    opt_g = torch.optim.Adam(G.parameters(), lr=1e-3, betas=(0.5, 0.9))
    opt_d = torch.optim.Adam(D.parameters(), lr=1e-3, betas=(0.5, 0.9))
    bce = nn.functional.binary_cross_entropy_with_logits
    gen = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        real = data[torch.randint(0, len(data), (TRAIN_BATCH,), generator=gen)]
        z = 2 * torch.rand(TRAIN_BATCH, LATENT, generator=gen) - 1
        fake = G(z)
        d_real, d_fake = D(real), D(fake.detach())
        loss_d = bce(d_real, torch.ones_like(d_real)) + bce(d_fake, torch.zeros_like(d_fake))
        opt_d.zero_grad()
        loss_d.backward()
        opt_d.step()
        d_gen = D(fake)
        loss_g = bce(d_gen, torch.ones_like(d_gen))
        opt_g.zero_grad()
        loss_g.backward()
        opt_g.step()
    for net in (G, D):
        net.eval()
        net.requires_grad_(False)
    return G, D, time.perf_counter() - t0


def bare_loop(f: Callable[[Tensor], Tensor], x: Tensor, steps: int) -> None:
    for _ in range(steps):
        v = x.detach().requires_grad_(True)
        torch.autograd.grad(f(v).sum(), v)


def w1(x: Tensor, y: np.ndarray) -> float:
    return float(ottokit_ot.w1(x.detach().double().numpy(), y))


def run(args: argparse.Namespace, n: int, repeats: int) -> dict[str, Any]:
    quick = args.quick

    G, D, train_s = train_gan(TRAIN_STEPS_QUICK if quick else TRAIN_STEPS)
    prior = Prior("uniform", (LATENT,))
    gen = torch.Generator().manual_seed(1)
    z = prior.sample(n, generator=gen)
    with torch.no_grad():
        y0 = G(z)
    data_eval = gaussians_grid(n, seed=11)
    held_real = torch.as_tensor(gaussians_grid(n, seed=12), dtype=torch.float32)
    cal_real = torch.as_tensor(gaussians_grid(5000, seed=13), dtype=torch.float32)

    t0 = time.perf_counter()
    K = effective_lipschitz(D, G, prior, 100, "target", seed=2)
    k_lat = effective_lipschitz(D, G, prior, 100, "latent", seed=3)
    keff_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    with torch.no_grad():
        cal = calibrate(D(cal_real)[:, 0], D(G(prior.sample(5000, generator=gen)))[:, 0])
    calib_s = time.perf_counter() - t0

    # each DOT call sits next to its bare loop, so that a pair sees the same machine load
    calls: dict[str, Callable[[], Any]] = {
        "dot_target": lambda: dot_target(D, y0, K, DOT_STEPS, DOT_LR, clip=CLIP),
        "bare_target": lambda: bare_loop(lambda x: D(x), y0, DOT_STEPS),
        "dot_latent": lambda: dot_latent(D, G, z, k_lat, DOT_STEPS, DOT_LR, prior),
        "bare_latent": lambda: bare_loop(lambda v: D(G(v)), z, DOT_STEPS),
        "drs": lambda: drs(D, G, prior, n, n_pilot=DRS_PILOT, seed=4),
        "mh_gan": lambda: mh_gan(D, G, prior, held_real, MH_K, calibrator=cal, seed=5),
        "ddls": lambda: ddls(D, G, z, DDLS_EPS, DDLS_STEPS, prior, seed=6),
    }
    timers, last = h.interleave(calls, repeats, warmup=1, alternate=False, memory=False)
    times = {k: t.times for k, t in timers.items()}
    med = {k: float(statistics.median(v)) for k, v in times.items()}
    results: dict[str, Any] = {}
    for name in METHODS:
        res = last[name]
        out = res.samples
        entry: dict[str, Any] = {
            **timers[name].summary(),
            "n_returned": int(out.shape[0]),
            "samples_per_s": int(out.shape[0]) / med[name],
            "w1_to_data": w1(out, data_eval),
        }
        if name.startswith("dot"):
            entry["cost"] = {"grad_evals_per_sample": res.steps, "K": res.K}
        elif name == "drs":
            entry["cost"] = {
                "proposals_per_sample": res.proposals_per_sample,
                "acceptance_rate": res.acceptance_rate,
                "n_pilot": res.n_pilot,
                "gamma": res.gamma,
                "log_M": res.log_M,
            }
        elif name == "mh_gan":
            entry["cost"] = {
                "proposals_per_sample": res.proposals_per_sample,
                "acceptance_rate": res.acceptance_rate,
                "chains_still_at_real_start": int(res.from_real.sum()),
            }
        else:
            entry["cost"] = {"grad_evals_per_sample": res.n_grad_evals}
        results[name] = entry
    paired = {
        k: [a / b for a, b in zip(times[k], times[f"bare_{k[4:]}"], strict=True)]
        for k in ("dot_target", "dot_latent")
    }
    ratios = {k: float(statistics.median(v)) for k, v in paired.items()}
    ratios_min = {k: min(times[k]) / min(times[f"bare_{k[4:]}"]) for k in paired}
    bare = {
        "bare_target_s": med["bare_target"],
        "bare_latent_s": med["bare_latent"],
        "times_s": {"bare_target": times["bare_target"], "bare_latent": times["bare_latent"]},
    }
    return {
        "settings": {
            "G": f"MLP {LATENT}->{HIDDEN}x{DEPTH}->2, leaky ReLU, uniform latent",
            "D": f"MLP 2->{HIDDEN}x{DEPTH}->1 (logit)",
            "train_steps": TRAIN_STEPS_QUICK if quick else TRAIN_STEPS,
            "dot": {"steps": DOT_STEPS, "lr": DOT_LR, "optimizer": "adam (0, 0.9)", "clip": CLIP},
            "drs": {"n_pilot": DRS_PILOT, "percentile": 95.0},
            "mh_gan": {"K": MH_K, "calibration": "logistic"},
            "ddls": {"steps": DDLS_STEPS, "step_size": DDLS_EPS, "mala": False},
            "dtype": "float32",
        },
        "meta": {
            "one_off_s": {"train": train_s, "k_eff_both": keff_s, "calibration": calib_s},
            "K_eff": K,
            "k_eff_latent": k_lat,
        },
        "definitions": DEFINITIONS,
        "results": results,
        "bare": bare,
        "ratios_to_bare": ratios,
        "ratios_to_bare_fastest": ratios_min,
        "ratios_to_bare_per_repeat": paired,
        "w1_generator_to_data": w1(y0, data_eval),
        "targets": {
            f"{k}_ratio_to_bare_le_{TARGET_RATIO}": {"value": v, "met": v <= TARGET_RATIO}
            for k, v in ratios.items()
        },
    }


def print_table(report: dict[str, Any]) -> None:
    res = report["results"]
    st = report["meta"]["settings"]
    print(
        f"\nN = {st['n']}, repeats = {st['repeats']}"
        f", K_eff = {report['meta']['K_eff']:.3g}, k_eff = {report['meta']['k_eff_latent']:.3g}"
    )
    print(f"{'method':<12}{'time_s':>10}{'samples/s':>12}{'W1->data':>10}  cost")
    for name in METHODS:
        r = res[name]
        cost = ", ".join(
            f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in r["cost"].items()
        )
        print(
            f"{name:<12}{r['time_s']:>10.4f}{r['samples_per_s']:>12.0f}"
            f"{r['w1_to_data']:>10.4f}  {cost}"
        )
    print(f"{'generator':<12}{'':>10}{'':>12}{report['w1_generator_to_data']:>10.4f}")
    b = report["bare"]
    for k, v in report["ratios_to_bare"].items():
        bare_s = b["bare_target_s"] if k == "dot_target" else b["bare_latent_s"]
        fastest = report["ratios_to_bare_fastest"][k]
        print(
            f"{k}: {res[k]['time_s']:.4f} s vs bare {bare_s:.4f} s -> paired ratio {v:.3f}, "
            f"fastest/fastest {fastest:.3f} (target <= {TARGET_RATIO})"
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: N=500, 3 repeats")
    parser.add_argument("--n", type=int, default=None, help="samples per method")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    n = args.n or (500 if args.quick else 2000)
    repeats = args.repeats or (3 if args.quick else 7)
    bench = h.Benchmark(
        "dot",
        argv,
        out=args.out or (QUICK_OUT if args.quick else DEFAULT_OUT),
        packages=("scikit-learn",),
        settings={"quick": args.quick, "n": n, "repeats": repeats},
    )
    report = run(args, n, repeats)
    bench.record["meta"]["settings"].update(report.pop("settings"))
    bench.record["meta"].update(report.pop("meta"))
    bench.record.update(report)
    path = bench.save()
    print_table(bench.record)
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()

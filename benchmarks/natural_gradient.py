"""Natural-gradient generator steps: ottokit's NaturalGradient beside Adam and a naive version.

Times one generator step (zero_grad, non-saturating loss on N latents with a fixed
discriminator, backward, optimiser step) for ``torch.optim.Adam``, a dense textbook natural
gradient and ``ottokit.gan.NaturalGradient`` with each of its solvers and speed options, on
the seed-001 model and a larger MLP, and compares every direction with the exact float64 step
so that no speed-up is reported without its effect on the result. benchmarks/README.md
describes the cases and how they are measured. Output: JSON under
``benchmarks/results/natural_gradient.json`` (or ``--out``) and a table on the terminal.

Usage::

    python benchmarks/natural_gradient.py --quick     # smoke run
    python benchmarks/natural_gradient.py             # everything
    python benchmarks/natural_gradient.py --cases seed --repeats 9 --out /tmp/ng.json
"""

from __future__ import annotations

import argparse
import copy
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import _harness as h
import numpy as np
import torch
from torch import Tensor, nn
from torch.func import functional_call, jacrev, vmap

from ottokit import ot as ottokit_ot
from ottokit.gan import CGConvergenceWarning, ConjugateGradient, NaturalGradient, PullbackMetric

DEFAULT_OUT = h.RESULTS / "natural_gradient.json"
N_LATENT = 256
LR_NG = 0.05
DAMPING = 1e-3
LR_ADAM = 1e-3
NAIVE_LIMIT_BYTES = 2e9  # the naive dense metric is skipped above this size
TARGET_MEAN, TARGET_STD = 2.0, 0.5  # the 1-D training target N(2, 0.5^2)

CASES: dict[str, dict[str, Any]] = {
    "seed": {"latent": 16, "hidden": (32,), "out": 1},
    "mlp1e5": {"latent": 64, "hidden": (256, 256), "out": 2},
}

# truncated CG on purpose: 10 iterations whatever the residual (CGConvergenceWarning silenced)
CG10 = ConjugateGradient(maxiter=10)

# ottokit configurations per case: name -> NaturalGradient keyword arguments; both cases
# time the same structured-Jacobian options and differ in their functional-Jacobian one
STRUCTURED: dict[str, dict[str, Any]] = {
    "ng_struct_woodbury": {"solver": "woodbury"},
    "ng_struct_woodbury_K5": {"solver": "woodbury", "metric_every": 5},
    "ng_struct_woodbury_K5_proj": {"solver": "woodbury", "metric_every": 5, "project": True},
    "ng_struct_woodbury_m64_K5": {"solver": "woodbury", "metric_samples": 64, "metric_every": 5},
    "ng_struct_woodbury_m64_K5_proj": {
        "solver": "woodbury",
        "metric_samples": 64,
        "metric_every": 5,
        "project": True,
    },
    "ng_struct_cg10": {"solver": CG10},
}
CONFIGS: dict[str, dict[str, dict[str, Any]]] = {
    "seed": {**STRUCTURED, "ng_func_woodbury": {"solver": "woodbury", "structured": False}},
    "mlp1e5": {**STRUCTURED, "ng_func_cg10": {"solver": CG10, "structured": False}},
}


def described(kwargs: dict[str, Any]) -> dict[str, Any]:
    """NaturalGradient keyword arguments for the JSON record (a solver object by its repr)."""
    return {k: v if isinstance(v, str | int | float | bool) else repr(v) for k, v in kwargs.items()}


TARGETS = {
    "seed": {"vs_adam": 2.0, "vs_naive": 10.0},
    "mlp1e5": {"vs_adam": 3.0, "vs_naive": 10.0},
}

DEFINITIONS = {
    "time_s": "median over repeats of (wall time of a block of generator steps / steps in the "
    "block); time_min_s: the fastest block. A step = zero_grad + loss + backward + optimiser "
    "step, with the discriminator fixed; for natural-gradient methods the metric work is "
    "inside the step (metric reuse amortised over the block, a multiple of metric_every).",
    "ratio_to_adam": "time_s / adam time_s (target: <= 2 on seed, <= 3 on mlp1e5)",
    "speedup_vs_naive": "naive time_s / time_s (target: >= 10)",
    "direction_cos": "median over trajectory points of cos(v, v*), v the optimiser's direction "
    "(its last_direction), v* = (g_hat_N + lambda I)^{-1} grad with the full batch's fresh "
    "metric solved densely (seed) or by Woodbury (mlp1e5) in float64; direction_rel_err: "
    "median of |v - v*| / |v*|; *_worst: the worst point.",
    "final_w1": "W1 (ottokit.ot.w_1d) between 20,000 generated samples and 20,000 target "
    "samples after the short GAN training (seed case only); g_loss_tail: mean generator loss "
    "over the last 20 steps.",
}


def make_mlp(sizes: list[int], seed: int) -> nn.Sequential:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        layers: list[nn.Module] = []
        for a, b in zip(sizes[:-1], sizes[1:], strict=True):
            layers += [nn.Linear(a, b), nn.Tanh()]
        return nn.Sequential(*layers[:-1])


def make_case(name: str) -> tuple[nn.Module, nn.Module, int]:
    c = CASES[name]
    gen = make_mlp([c["latent"], *c["hidden"], c["out"]], seed=0)
    disc = make_mlp([c["out"], 32, 1], seed=1)
    for p in disc.parameters():
        p.requires_grad_(False)
    return gen, disc, c["latent"]


def g_loss(gen: nn.Module, disc: nn.Module, z: Tensor) -> Tensor:
    """Non-saturating generator loss -log sigmoid(D(G(z))) = softplus(-D(G(z)))."""
    return nn.functional.softplus(-disc(gen(z)).squeeze(-1)).mean()


class NaiveNG:
    """Dense natural gradient: vmap(jacrev) Jacobian, dense metric, dense solve, every step."""

    def __init__(self, gen: nn.Module, lr: float, damping: float) -> None:
        self.gen, self.lr, self.damping = gen, lr, damping
        self.params = list(gen.parameters())
        self.names = [k for k, _ in gen.named_parameters()]
        self.z: Tensor | None = None
        self.last_direction: Tensor | None = None

    def set_latents(self, z: Tensor) -> None:
        self.z = z

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    def step(self, closure: Callable[[], Tensor]) -> Tensor:
        loss = closure()
        assert self.z is not None
        pdict = {k: p.detach() for k, p in zip(self.names, self.params, strict=True)}

        def f(p: dict[str, Tensor], z1: Tensor) -> Tensor:
            return functional_call(self.gen, p, (z1.unsqueeze(0),)).reshape(-1)

        jac = vmap(jacrev(f), in_dims=(None, 0))(pdict, self.z)
        n = self.z.shape[0]
        jm = torch.cat([jac[k].reshape(n * jac[k].shape[1], -1) for k in self.names], dim=1)
        metric = jm.T @ jm / n + self.damping * torch.eye(jm.shape[1])
        grad = torch.cat([p.grad.reshape(-1) for p in self.params])
        v = torch.linalg.solve(metric, grad)
        with torch.no_grad():
            torch.nn.utils.vector_to_parameters(
                torch.nn.utils.parameters_to_vector(self.params) - self.lr * v, self.params
            )
        self.last_direction = v
        return loss


def make_optimizer(method: str, case: str, gen: nn.Module) -> Any:
    if method == "adam":
        return torch.optim.Adam(gen.parameters(), lr=LR_ADAM, betas=(0.5, 0.999))
    if method == "naive":
        return NaiveNG(gen, LR_NG, DAMPING)
    return NaturalGradient(
        gen.parameters(), gen, lr=LR_NG, damping=DAMPING, **CONFIGS[case][method]
    )


def g_step(opt: Any, gen: nn.Module, disc: nn.Module, z: Tensor) -> Tensor:
    def closure() -> Tensor:
        opt.zero_grad()
        loss = g_loss(gen, disc, z)
        loss.backward()
        return loss

    if hasattr(opt, "set_latents"):
        opt.set_latents(z)
    return opt.step(closure)


def naive_bytes(case: str) -> float:
    gen, _, _ = make_case(case)
    n = sum(p.numel() for p in gen.parameters())
    return 4.0 * n * n


def setup_case(
    case: str, methods: list[str], batches: int, seed: int
) -> tuple[nn.Module, nn.Module, Tensor, dict[str, tuple[nn.Module, Any]]]:
    """The case's generator and discriminator, ``batches`` latent batches drawn with ``seed``,
    and per method a copy of the generator with its optimiser."""
    gen0, disc, latent = make_case(case)
    latents = torch.randn(
        batches, N_LATENT, latent, generator=torch.Generator().manual_seed(seed)
    )
    setups = {}
    for m in methods:
        gen = copy.deepcopy(gen0)
        setups[m] = (gen, make_optimizer(m, case, gen))
    return gen0, disc, latents, setups


def time_case(case: str, methods: list[str], repeats: int, block: int) -> dict[str, Any]:
    _, disc, pool, setups = setup_case(case, methods, block, seed=5)
    times: dict[str, list[float]] = {m: [] for m in methods}
    for rep in range(repeats + 1):  # repeat 0: untimed warm-up
        order = methods if rep % 2 else list(reversed(methods))
        for m in order:
            gen, opt = setups[m]
            t0 = time.perf_counter()
            for k in range(block):
                g_step(opt, gen, disc, pool[k])
            if rep > 0:
                times[m].append((time.perf_counter() - t0) / block)
    load = h.load_avg()
    return {m: {"status": "ok", **h.summarize(t), "load_avg_1min": load} for m, t in times.items()}


def exact_direction(gen: nn.Module, z: Tensor, grad: Tensor, case: str) -> Tensor:
    """Full-batch fresh-metric direction in float64 (dense on seed, Woodbury on mlp1e5)."""
    g64 = copy.deepcopy(gen).double()
    metric = PullbackMetric(g64, z.double(), chunk_size=64, structured=False)  # independent
    b = grad.double()
    if case == "seed":
        a = metric.dense() + DAMPING * torch.eye(metric.n_params, dtype=torch.float64)
        return torch.linalg.solve(a, b)
    jac = metric.jacobian()
    small = jac @ jac.T + metric.n_samples * DAMPING * torch.eye(jac.shape[0], dtype=torch.float64)
    y = torch.linalg.solve(small, jac @ b)
    return (b - jac.T @ y) / DAMPING


def accuracy_case(case: str, methods: list[str], points: int) -> dict[str, Any]:
    gen0, disc, zs, setups = setup_case(case, methods, points, seed=6)
    theta = torch.nn.utils.parameters_to_vector(gen0.parameters()).detach().clone()
    probe = copy.deepcopy(gen0)
    cos: dict[str, list[float]] = {m: [] for m in methods}
    rel: dict[str, list[float]] = {m: [] for m in methods}
    for k in range(points):
        # vector_to_parameters makes the parameters views of its vector, and the optimisers
        # write their parameters in place: every model gets its own copy of theta
        torch.nn.utils.vector_to_parameters(theta.clone(), probe.parameters())
        probe.zero_grad()
        g_loss(probe, disc, zs[k]).backward()
        grad = torch.nn.utils.parameters_to_vector([p.grad for p in probe.parameters()])
        v_star = exact_direction(probe, zs[k], grad, case)
        for m in methods:
            gen, opt = setups[m]
            with torch.no_grad():
                torch.nn.utils.vector_to_parameters(theta.clone(), gen.parameters())
            g_step(opt, gen, disc, zs[k])
            v = opt.last_direction.double()
            cos[m].append(float(v @ v_star / (v.norm() * v_star.norm())))
            rel[m].append(float((v - v_star).norm() / v_star.norm()))
        theta = theta - LR_NG * v_star.float()
    return {
        m: {
            "direction_cos": float(np.median(cos[m])),
            "direction_cos_worst": float(np.min(cos[m])),
            "direction_rel_err": float(np.median(rel[m])),
            "direction_rel_err_worst": float(np.max(rel[m])),
            "points": points,
        }
        for m in methods
    }


def train_1d(method: str, steps: int, seed: int = 0) -> dict[str, Any]:
    gen, _, latent = make_case("seed")
    disc = make_mlp([1, 32, 1], seed=1)
    opt_g = make_optimizer(method, "seed", gen)
    opt_d = torch.optim.Adam(disc.parameters(), lr=1e-3, betas=(0.5, 0.999))
    rng = torch.Generator().manual_seed(seed)
    losses = []
    t0 = time.perf_counter()
    status = "ok"
    for _ in range(steps):
        real = TARGET_MEAN + TARGET_STD * torch.randn(N_LATENT, 1, generator=rng)
        z = torch.randn(N_LATENT, latent, generator=rng)
        with torch.no_grad():
            fake = gen(z)
        opt_d.zero_grad()
        d_loss = (
            nn.functional.softplus(-disc(real)).mean() + nn.functional.softplus(disc(fake)).mean()
        )
        d_loss.backward()
        opt_d.step()
        z = torch.randn(N_LATENT, latent, generator=rng)
        for p in disc.parameters():
            p.requires_grad_(False)
        try:
            loss = g_step(opt_g, gen, disc, z)
        except (FloatingPointError, RuntimeError, ValueError) as exc:
            status = f"stopped: {type(exc).__name__}: {exc}"
            break
        finally:
            for p in disc.parameters():
                p.requires_grad_(True)
        losses.append(float(loss.detach()))
    wall = time.perf_counter() - t0
    with torch.no_grad():
        x = gen(torch.randn(20_000, latent, generator=rng)).squeeze(-1)
    y = TARGET_MEAN + TARGET_STD * torch.randn(20_000, generator=rng)
    return {
        "status": status,
        "steps": len(losses),
        "final_w1": float(ottokit_ot.w_1d(x.double().numpy(), y.double().numpy(), 1)),
        "g_loss_tail": float(np.mean(losses[-20:])) if losses else None,
        "generated_mean": float(x.mean()),
        "generated_std": float(x.std()),
        "wall_s": wall,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    global DAMPING, LR_NG  # the module-level settings every helper reads (--damping, --lr)
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="short smoke run")
    ap.add_argument("--cases", default="seed,mlp1e5")
    ap.add_argument("--repeats", type=int, default=None, help="timed blocks (default 7, quick 3)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--damping", type=float, default=1e-3, help="lambda for every NG method")
    ap.add_argument("--lr", type=float, default=0.05, help="eta for every NG method")
    args = ap.parse_args(argv)
    DAMPING, LR_NG = args.damping, args.lr
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore", category=CGConvergenceWarning)
    quick = args.quick
    repeats = args.repeats or (3 if quick else 7)
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    for c in cases:
        if c not in CASES:
            ap.error(f"unknown case {c!r}; choose from {', '.join(CASES)}")
    bench = h.Benchmark(
        "natural_gradient",
        argv,
        out=args.out,
        settings={
            "quick": quick,
            "N": N_LATENT,
            "lr_ng": LR_NG,
            "damping": DAMPING,
            "lr_adam": LR_ADAM,
            "repeats": repeats,
            "configs": {c: {m: described(k) for m, k in ms.items()} for c, ms in CONFIGS.items()},
            "target": f"N({TARGET_MEAN}, {TARGET_STD}^2)",
        },
    )
    result = bench.record
    result.update(definitions=DEFINITIONS, cases={}, targets={})
    for case in cases:
        gen, _, _ = make_case(case)
        n_params = sum(p.numel() for p in gen.parameters())
        nb = naive_bytes(case)
        methods = ["adam"] + (["naive"] if nb < NAIVE_LIMIT_BYTES else []) + list(CONFIGS[case])
        block = 10 if quick else 20
        h.log(f"{case}: {n_params} parameters, timing {methods}")
        timing = time_case(case, methods, repeats, block)
        if "naive" not in methods:
            timing["naive"] = {
                "status": "oom",
                "reason": f"skipped, not run: the dense metric alone would take {nb / 1e9:.1f} GB "
                f"(limit {NAIVE_LIMIT_BYTES / 1e9:.1f} GB)",
            }
        points = (4 if quick else 12) if case == "mlp1e5" else (6 if quick else 20)
        ng_methods = [m for m in methods if m != "adam"]
        h.log(f"{case}: accuracy along the exact path, {points} points")
        acc = accuracy_case(case, ng_methods, points)
        adam_t = timing["adam"]["time_s"]
        naive_t = timing["naive"].get("time_s")
        for m in ng_methods:
            t = timing[m]
            t["ratio_to_adam"] = t["time_s"] / adam_t
            t["speedup_vs_naive"] = None if naive_t is None else naive_t / t["time_s"]
            t.update(acc[m])
            if m != "naive":
                t["config"] = described(CONFIGS[case][m])
        entry: dict[str, Any] = {"n_params": n_params, "methods": timing}
        if case == "seed":
            steps = 100 if quick else 400
            h.log(f"seed: training {steps} steps with each G optimiser")
            entry["training"] = {m: train_1d(m, steps) for m in ["adam", *ng_methods]}
        result["cases"][case] = entry
        tg = TARGETS[case]
        for m in CONFIGS[case]:
            t = timing[m]
            result["targets"][f"{case}/{m}"] = {
                "ratio_to_adam": t["ratio_to_adam"],
                "adam_target": tg["vs_adam"],
                "adam_met": t["ratio_to_adam"] <= tg["vs_adam"],
                "speedup_vs_naive": t["speedup_vs_naive"],
                "naive_target": tg["vs_naive"],
                "naive_met": None
                if t["speedup_vs_naive"] is None
                else t["speedup_vs_naive"] >= tg["vs_naive"],
                "direction_cos": t["direction_cos"],
            }
    path = bench.save()
    print_table(result)
    h.log(f"wrote {path}")
    return result


def print_table(result: dict[str, Any]) -> None:
    for case, entry in result["cases"].items():
        print(f"\n{case} ({entry['n_params']} parameters, N = {N_LATENT})")
        print(f"{'method':24s} {'ms/step':>8s} {'x adam':>7s} {'naive/x':>8s} {'cos':>9s} "
              f"{'rel err':>8s} {'W1':>7s}")  # fmt: skip
        for m, t in entry["methods"].items():
            if t.get("status") != "ok":
                print(f"{m:24s} {t['status']}: {t['reason']}")
                continue
            w1 = entry.get("training", {}).get(m, {}).get("final_w1")

            def f(x: Any, fmt: str) -> str:
                return "-" if x is None else format(x, fmt)

            print(
                f"{m:24s} {1e3 * t['time_s']:8.2f} {f(t.get('ratio_to_adam'), '7.2f')} "
                f"{f(t.get('speedup_vs_naive'), '8.1f')} {f(t.get('direction_cos'), '9.6f')} "
                f"{f(t.get('direction_rel_err'), '8.2e')} {f(w1, '7.4f')}"
            )


if __name__ == "__main__":
    main()

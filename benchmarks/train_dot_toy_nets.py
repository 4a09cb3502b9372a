"""Train the shipped dot-toy networks and log their quality curve.

One process per data set (torch on one thread), resumable from ``<out>/<name>/checkpoint``:

    python benchmarks/train_dot_toy_nets.py 25gaussians --steps 6000 --lr 1e-3 --schedule linear

Every ``--every`` generator steps the generator is scored by
:func:`ottokit.experiments.dot_toy.pretrained.generator_quality` (a fixed sample), the
record is appended to ``<out>/<name>/curve.jsonl`` and the networks are kept as
``<out>/<name>/snapshots/step<k>.pt``. The run stops once the quality targets hold at two
evaluations in a row (25 Gaussians: >= ``--modes`` modes and >= ``--hq`` % within 4 sigma;
otherwise W2 <= ``--w2``; constant learning rate only), or after ``--steps``.
``--ship <dir>`` then writes the chosen snapshot and its provenance with ``save_shipped``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import time
from pathlib import Path

import torch

from ottokit.data import toy_2d
from ottokit.experiments.dot_toy.pretrained import (
    QUALITY_SAMPLES,
    QUALITY_SEED,
    Recipe,
    generator_quality,
    make_networks,
    recipe_dict,
    save_shipped,
    train_networks,
)
from ottokit.ot import w2


class TargetsMet(Exception):
    """The quality targets held at two evaluations in a row."""


def meets(name: str, q: dict[str, float], args: argparse.Namespace) -> bool:
    if "modes" in q and name == "25gaussians":
        return q["modes"] >= args.modes and q["high_quality"] >= args.hq
    return args.w2 is not None and q["w2"] <= args.w2


def commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def train(args: argparse.Namespace) -> None:
    torch.set_num_threads(1)
    run = Path(args.out) / args.name
    (run / "snapshots").mkdir(parents=True, exist_ok=True)
    recipe = Recipe(lr=args.lr, lr_schedule=args.schedule)
    (run / "recipe.json").write_text(
        json.dumps({"recipe": recipe_dict(recipe), "seed": args.seed, "commit": commit()})
    )
    curve = run / "curve.jsonl"
    hits = [0]
    t0 = [time.perf_counter(), 0]

    def on_eval(step: int, G: torch.nn.Module, D: torch.nn.Module) -> None:
        now = time.perf_counter()
        s_per_step = (now - t0[0]) / max(step - t0[1], 1)
        q = generator_quality(G, args.name)
        rec = {"step": step, **q, "s_per_step": s_per_step, "time": time.time()}
        with curve.open("a") as f:
            f.write(json.dumps(rec) + "\n")
        torch.save(
            {"generator": G.state_dict(), "critic": D.state_dict()},
            run / "snapshots" / f"step{step}.pt",
        )
        # a linear schedule only ends at --steps: stopping earlier leaves a state no run of
        # that length reproduces
        hits[0] = hits[0] + 1 if meets(args.name, q, args) and args.schedule == "constant" else 0
        t0[0], t0[1] = time.perf_counter(), step
        if hits[0] >= 2:
            raise TargetsMet(step)

    try:
        train_networks(
            args.name,
            recipe,
            args.steps,
            seed=args.seed,
            checkpoint_dir=run / "checkpoint",
            checkpoint_every=args.every,
            callback=on_eval,
            every=args.every,
        )
    except TargetsMet as stop:
        print(f"targets met at step {stop.args[0]}")


def generator_floor(name: str) -> float:
    """W2 between the quality score's data sample and an independent one of the same size."""
    a = toy_2d(name, QUALITY_SAMPLES, seed=QUALITY_SEED).points
    return float(w2(a, toy_2d(name, QUALITY_SAMPLES, seed=QUALITY_SEED + 1).points))


def ship(args: argparse.Namespace) -> None:
    run = Path(args.out) / args.name
    meta = json.loads((run / "recipe.json").read_text())
    rows = [json.loads(line) for line in (run / "curve.jsonl").read_text().splitlines()]
    step = args.step or rows[-1]["step"]
    chosen = next(r for r in rows if r["step"] == step)
    rd = meta["recipe"]
    recipe = Recipe(
        **{**rd, "g_hidden": tuple(rd["g_hidden"]), "d_hidden": tuple(rd["d_hidden"]),
           "betas": tuple(rd["betas"])}
    )  # fmt: skip
    G, D = make_networks(recipe, meta["seed"])
    state = torch.load(run / "snapshots" / f"step{step}.pt", weights_only=True)
    G.load_state_dict(state["generator"])
    D.load_state_dict(state["critic"])
    provenance = {
        "dataset": args.name,
        "recipe": rd,
        "seed": meta["seed"],
        "steps": step,
        "commit": meta["commit"],
        "trainer": "ottokit.experiments.dot_toy.pretrained.train_networks "
        "(benchmarks/train_dot_toy_nets.py), CPU, one thread",
        "quality": {k: chosen[k] for k in ("w2", "modes", "high_quality", "kl") if k in chosen},
        "seconds_per_step": sorted(r["s_per_step"] for r in rows)[len(rows) // 2],
        "train_wall_time_s": sum(
            r["s_per_step"] * (r["step"] - prev["step"])
            for prev, r in zip([{"step": 0}, *rows], rows, strict=False)
            if r["step"] <= step
        ),
        "data_w2_floor": generator_floor(args.name),
        "curve": [
            {k: r[k] for k in ("step", "w2", "modes", "high_quality") if k in r} for r in rows
        ],
    }
    print(save_shipped(Path(args.ship), args.name, G, D, provenance))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("name")
    p.add_argument("--out", default="runs/dot-toy-nets")
    p.add_argument("--steps", type=int, default=100_000)
    p.add_argument("--every", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--schedule", default="constant")
    p.add_argument("--modes", type=float, default=24)
    p.add_argument("--hq", type=float, default=70.0)
    p.add_argument("--w2", type=float, default=None)
    p.add_argument("--ship", default=None, help="write the chosen snapshot to this directory")
    p.add_argument("--step", type=int, default=None, help="the snapshot to ship (default: last)")
    args = p.parse_args()
    if args.ship:
        ship(args)
    else:
        train(args)


if __name__ == "__main__":
    main()

"""Scaling of ottokit's torch.distributed paths: one process against N, in one run.

Each case is a function run on every rank of a job that torch's launcher starts
(``python -m torch.distributed.run --standalone --nproc-per-node P``, gloo on the CPU),
once with P = 1 and once with P = N processes of one torch thread each, alternating
within every repeat so that load from other processes hits both alike (``--with-threads``
adds a job of one process with N threads: N cores without torch.distributed). Cases:

* ``exact_velocity``: ``ExactVelocity(CondOT(1.0), shard_rows(data), sharded=True)(0.5, x)``
  with 10^6 data points and 10^4 queries in d = 2 (float32); one step = one call.
* ``train_velocity``: ``train_velocity`` of a 4 x 512 velocity MLP (float32) on 10^5 points
  in d = 2 with a global batch of 4096, under DistributedDataParallel when P > 1; one
  step = one optimiser step (the first, which builds DDP's buckets, is not timed).

A case returns its step times, CPU times, base memory and a result tensor (rank 0's,
compared across process counts). JSON: ``benchmarks/results/distributed.json``.

    python benchmarks/distributed.py            # 3 repeats
    python benchmarks/distributed.py --quick    # 10^5 x 10^3, one repeat
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import _harness as h
import torch

# the ranks run this file as a script: import this checkout's ottokit, the one measured
sys.path.insert(0, str(h.ROOT.parent / "src"))

from ottokit import distributed as dist  # noqa: E402
from ottokit.flowmatch import CondOT, ExactVelocity, TrainConfig, train_velocity  # noqa: E402

GOAL_EFFICIENCY = 0.8
DEFINITIONS = {
    "time_s": "wall seconds of one step on the slowest rank (the job waits for it); "
    "median over steps and repeats (time_min_s, time_iqr_s, times_s as in _harness)",
    "speedup": "median step time with 1 process / with N processes; paired_speedup: "
    "median over repeats of the same ratio within one repeat",
    "efficiency": f"speedup / N (goal >= {GOAL_EFFICIENCY})",
    "cpu_step_s": "CPU seconds of one step summed over the ranks, median over steps",
    "work_efficiency": "cpu_step_s with 1 process / cpu_step_s with N processes: 1 when "
    "sharding adds no work; the wall-clock efficiency reaches it only when every rank has "
    "a core to itself",
    "cpu_over_wall": "a rank's CPU seconds / wall seconds over its steps: below 1 the rank "
    "waited (for a core taken by another process, or for a peer in a collective)",
    "peak_rss_mb": "VmHWM of each rank after its steps, reset (after malloc_trim) once its "
    "inputs were built; base_rss_mb: VmRSS then (interpreter, torch, this rank's inputs); "
    "peak_extra_mb = peak - base. MB = 1e6 bytes",
    "max_rel_error": "max |r_P - r_1| / max |r_1| between rank 0's results with P and 1 "
    "processes",
    "load_avg": "1-minute load average before and after each job",
}


def exact_velocity(args: argparse.Namespace) -> dict[str, Any]:
    """ExactVelocity over this rank's share of the data; every rank passes all queries."""
    dtype = getattr(torch, args.dtype)
    g = torch.Generator().manual_seed(0)
    data = torch.randn(args.n_data, 2, generator=g, dtype=dtype)
    x = torch.randn(args.n_queries, 2, generator=g, dtype=dtype)
    chunks = {k: getattr(args, k) for k in ("query_chunk", "data_chunk") if getattr(args, k)}
    v = ExactVelocity(CondOT(1.0), dist.shard_rows(data).clone(), sharded=True, **chunks)
    del data
    h.reset_peak()
    base = h.rss_mb()
    walls, cpus, out = [], [], None
    for _ in range(args.steps):
        dist.barrier()
        t0, c0 = time.perf_counter(), time.process_time()
        with torch.no_grad():
            out = v(0.5, x)
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    return {"step_s": walls, "cpu_s": cpus, "base_rss_mb": base, "result": out}


def train_velocity_case(args: argparse.Namespace) -> dict[str, Any]:
    """Data-parallel flow-matching training: every rank draws the global batch, trains on
    its slice; the result is rank 0's final parameters."""
    data = torch.randn(100_000, 2, generator=torch.Generator().manual_seed(0))
    config = TrainConfig(
        n_steps=args.train_steps + 1, batch_size=args.batch_size, hidden=512, depth=4,
        checkpoint_every=10**6, seed=0,
    )
    marks: list[tuple[float, float]] = []

    def tick(step: int, loss: float) -> None:
        marks.append((time.perf_counter(), time.process_time()))

    h.reset_peak()
    base = h.rss_mb()
    res = train_velocity(CondOT(), data, config, callback=tick)
    walls = [b[0] - a[0] for a, b in zip(marks, marks[1:], strict=False)]
    cpus = [b[1] - a[1] for a, b in zip(marks, marks[1:], strict=False)]
    params = torch.cat([p.detach().flatten() for p in res.model.parameters()])
    return {"step_s": walls, "cpu_s": cpus, "base_rss_mb": base, "result": params}


CASES: dict[str, Callable[[argparse.Namespace], dict[str, Any]]] = {
    "exact_velocity": exact_velocity,
    "train_velocity": train_velocity_case,
}


def worker(args: argparse.Namespace) -> None:
    """One rank of a job: run the case, write this rank's measurements."""
    torch.set_num_threads(args.threads)
    dist.init_from_env("cpu")
    m = CASES[args.worker](args)
    out = Path(args.worker_out)
    result = m.pop("result")
    if dist.rank() == 0:
        torch.save(result, out / "result.pt")
    m.update(rank=dist.rank(), peak_rss_mb=h.hwm_mb(), threads=torch.get_num_threads())
    (out / f"rank{dist.rank()}.json").write_text(json.dumps(m))
    torch.distributed.destroy_process_group()


def launch(case: str, procs: int, threads: int, args: argparse.Namespace) -> dict[str, Any]:
    """One job under torch's launcher: the ranks' measurements and rank 0's result."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [
            sys.executable, "-m", "torch.distributed.run", "--standalone",
            f"--nproc-per-node={procs}", __file__, "--worker", case, "--worker-out", tmp,
            "--threads", str(threads), "--n-data", str(args.n_data),
            "--n-queries", str(args.n_queries), "--steps", str(args.steps),
            "--dtype", args.dtype,
            "--query-chunk", str(args.query_chunk), "--data-chunk", str(args.data_chunk),
            "--train-steps", str(args.train_steps), "--batch-size", str(args.batch_size),
        ]
        env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
        load0, t0 = h.load_avg(), time.perf_counter()
        subprocess.run(cmd, check=True, env=env, capture_output=True)
        job = {"job_wall_s": time.perf_counter() - t0, "load_avg": [load0, h.load_avg()]}
        ranks = [json.loads(Path(tmp, f"rank{r}.json").read_text()) for r in range(procs)]
        return {**job, "ranks": ranks, "result": torch.load(Path(tmp, "result.pt"))}


def summarise(runs: list[dict[str, Any]], ref: torch.Tensor) -> dict[str, Any]:
    """One configuration over its repeats: step times, CPU, memory and load per rank."""
    n_steps = range(len(runs[0]["ranks"][0]["step_s"]))
    steps = [max(rk["step_s"][i] for rk in run["ranks"]) for run in runs for i in n_steps]
    cpu = [sum(rk["cpu_s"][i] for rk in run["ranks"]) for run in runs for i in n_steps]
    ranks = []
    for r in range(len(runs[0]["ranks"])):
        mine = [run["ranks"][r] for run in runs]
        ranks.append({
            "rank": r,
            "peak_rss_mb": max(m["peak_rss_mb"] for m in mine),
            "base_rss_mb": max(m["base_rss_mb"] for m in mine),
            "peak_extra_mb": max(m["peak_rss_mb"] - m["base_rss_mb"] for m in mine),
            "cpu_over_wall": sum(sum(m["cpu_s"]) for m in mine)
            / sum(sum(m["step_s"]) for m in mine),
        })
    err = max(float((run["result"] - ref).abs().max() / ref.abs().max()) for run in runs)
    return {
        **h.summarize(steps), "cpu_step_s": statistics.median(cpu), "ranks": ranks,
        "job_wall_s": [run["job_wall_s"] for run in runs],
        "load_avg": [run["load_avg"] for run in runs], "max_rel_error": err,
    }


def run_case(case: str, args: argparse.Namespace) -> dict[str, Any]:
    n = args.nproc
    configs = {"1proc": (1, 1), f"{n}proc": (n, 1)}
    if args.with_threads:
        configs[f"1proc_{n}threads"] = (1, n)
    runs: dict[str, list[dict[str, Any]]] = {c: [] for c in configs}
    for rep in range(args.repeats):
        for name, (procs, threads) in configs.items():
            runs[name].append(launch(case, procs, threads, args))
            step = max(max(rk["step_s"]) for rk in runs[name][-1]["ranks"])
            h.log(f"{case} repeat {rep + 1} {name}: {step:.2f} s/step")
    ref = runs["1proc"][0]["result"]
    summary = {name: summarise(r, ref) for name, r in runs.items()}
    one, many = summary["1proc"], summary[f"{n}proc"]
    paired = [
        statistics.median(a["ranks"][0]["step_s"])
        / max(statistics.median(rk["step_s"]) for rk in b["ranks"])
        for a, b in zip(runs["1proc"], runs[f"{n}proc"], strict=True)
    ]
    out = {
        "configs": summary,
        "speedup": one["time_s"] / many["time_s"],
        "efficiency": one["time_s"] / many["time_s"] / n,
        "paired_speedup": statistics.median(paired),
        "work_efficiency": one["cpu_step_s"] / many["cpu_step_s"],
    }
    if args.with_threads:
        out["speedup_threads"] = one["time_s"] / summary[f"1proc_{n}threads"]["time_s"]
    return out


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cases", default=",".join(CASES))
    p.add_argument("--nproc", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--steps", type=int, default=1)
    p.add_argument("--n-data", type=int, default=1_000_000)
    p.add_argument("--n-queries", type=int, default=10_000)
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    p.add_argument("--query-chunk", type=int, default=0, help="ExactVelocity's (0: default)")
    p.add_argument("--data-chunk", type=int, default=0, help="ExactVelocity's (0: default)")
    p.add_argument("--train-steps", type=int, default=20, help="train_velocity's timed steps")
    p.add_argument("--batch-size", type=int, default=4096, help="train_velocity's global batch")
    p.add_argument("--with-threads", action="store_true", help="also 1 process x N threads")
    p.add_argument("--quick", action="store_true", help="10^5 data x 10^3 queries, 1 repeat")
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    p.add_argument("--worker", choices=list(CASES), help=argparse.SUPPRESS)
    p.add_argument("--worker-out", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.quick:
        args.n_data, args.n_queries, args.repeats, args.train_steps = 100_000, 1_000, 1, 4
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    if args.worker:
        worker(args)
        return
    settings = {k: v for k, v in vars(args).items() if k not in ("worker", "worker_out", "out")}
    bench = h.Benchmark("distributed", argv, out=args.out, settings=settings)
    cases = {case: run_case(case, args) for case in args.cases.split(",")}
    bench.record.update(definitions=DEFINITIONS, cases=cases, targets={
        f"{case}_efficiency_ge_{GOAL_EFFICIENCY}": {
            "efficiency": c["efficiency"], "work_efficiency": c["work_efficiency"],
            "met": c["efficiency"] >= GOAL_EFFICIENCY,
        } for case, c in cases.items()
    })
    path = bench.save()
    rows = []
    for case, c in cases.items():
        for name, s in c["configs"].items():
            rows.append((case, name, h.fmt(s["time_s"]), h.fmt(s["cpu_step_s"]),
                         ", ".join(h.fmt(r["peak_rss_mb"], ".0f") for r in s["ranks"]),
                         ", ".join(h.fmt(r["cpu_over_wall"], ".2f") for r in s["ranks"]),
                         h.fmt(s["max_rel_error"], ".1e")))
    h.print_table(
        f"1 process against {args.nproc}",
        ("case", "config", "s/step", "cpu s/step", "peak MB per rank", "cpu/wall", "rel err"),
        rows, left=2,
    )
    h.print_targets(bench.record["targets"])
    print(f"wrote {path}")


if __name__ == "__main__":
    main()

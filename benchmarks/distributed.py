"""Scaling of ottokit's torch.distributed paths: one process against N, in one run.

Each case is a function run on every rank of a job that torch's launcher starts
(``python -m torch.distributed.run --standalone --nproc-per-node P``, gloo on the CPU),
once with P = 1 and once with P = N processes of one torch thread each, alternating
within every repeat so that load from other processes hits both alike (``--with-threads``
adds a job of one process with N threads: N cores without torch.distributed). Cases:

* ``exact_velocity``: ``ExactVelocity(CondOT(1.0), shard_rows(data), sharded=True)(0.5, x)``
  with 10^6 data points and 10^4 queries in d = 2 (float32); one step = one call.

A case returns its step times, CPU times and a result tensor (rank 0's, compared across
process counts). JSON: ``benchmarks/results/distributed.json`` (or ``--out``).

    python benchmarks/distributed.py            # 3 repeats
    python benchmarks/distributed.py --quick    # 10^5 x 10^3, one repeat
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from ottokit import distributed as dist  # noqa: E402
from ottokit.flowmatch import CondOT, ExactVelocity  # noqa: E402

DEFINITIONS = {
    "step_s": "wall seconds of one step on the slowest rank (the job waits for it); "
    "median over steps and repeats",
    "speedup": "median step_s with 1 process / median step_s with N processes; "
    "paired_speedup: median over repeats of the same ratio within one repeat",
    "efficiency": "speedup / N (goal >= 0.8)",
    "cpu_over_wall": "a rank's CPU seconds / wall seconds over its steps: below 1 the rank "
    "waited (for a core taken by another process, or for a peer in a collective)",
    "cpu_step_s": "CPU seconds of one step summed over the ranks, median over steps",
    "work_efficiency": "cpu_step_s with 1 process / cpu_step_s with N processes: the share "
    "of the N processes' CPU time that is the 1-process work (1 = no work added by "
    "sharding); the wall-clock efficiency cannot exceed it, and equals it only when every "
    "rank has a core to itself",
    "peak_rss_mb": "VmHWM of each rank after its steps, the high-water mark reset (after "
    "malloc_trim) once its inputs were built; base_rss_mb: VmRSS at that reset (interpreter, "
    "torch, this rank's inputs); peak_extra_mb = peak - base. MB = 1e6 B",
    "max_rel_error": "max |r_N - r_1| / max |r_1| between rank 0's results with N and 1 "
    "processes",
    "load_avg": "1-minute load average before and after each job (os.getloadavg)",
}


def _status_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1e3 / 1e6
    return float("nan")


def reset_peak() -> float:
    """Return freed heap to the system, reset VmHWM to VmRSS; the current VmRSS in MB."""
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    Path("/proc/self/clear_refs").write_text("5")
    return _status_mb("VmRSS")


def exact_velocity(args: argparse.Namespace) -> dict[str, Any]:
    """ExactVelocity over this rank's share of the data; every rank passes all queries."""
    dtype = getattr(torch, args.dtype)
    g = torch.Generator().manual_seed(0)
    data = torch.randn(args.n_data, 2, generator=g, dtype=dtype)
    x = torch.randn(args.n_queries, 2, generator=g, dtype=dtype)
    chunks = {k: getattr(args, k) for k in ("query_chunk", "data_chunk") if getattr(args, k)}
    v = ExactVelocity(CondOT(1.0), dist.shard_rows(data).clone(), sharded=True, **chunks)
    del data
    base = reset_peak()
    walls, cpus, out = [], [], None
    for _ in range(args.steps):
        dist.barrier()
        t0, c0 = time.perf_counter(), time.process_time()
        with torch.no_grad():
            out = v(0.5, x)
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    return {"step_s": walls, "cpu_s": cpus, "base_rss_mb": base, "result": out}


CASES: dict[str, Callable[[argparse.Namespace], dict[str, Any]]] = {
    "exact_velocity": exact_velocity,
}


def worker(args: argparse.Namespace) -> None:
    """One rank of a job: run the case, write this rank's measurements."""
    torch.set_num_threads(args.threads)
    dist.init_from_env("cpu")
    m = CASES[args.worker](args)
    out = Path(args.worker_out)
    if dist.rank() == 0:
        torch.save(m.pop("result"), out / "result.pt")
    m.pop("result", None)
    m.update(rank=dist.rank(), peak_rss_mb=_status_mb("VmHWM"), threads=torch.get_num_threads())
    (out / f"rank{dist.rank()}.json").write_text(json.dumps(m))
    torch.distributed.destroy_process_group()


def launch(case: str, procs: int, threads: int, args: argparse.Namespace) -> dict[str, Any]:
    """One job under torch's launcher; the ranks' measurements and rank 0's result."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [
            sys.executable, "-m", "torch.distributed.run", "--standalone",
            f"--nproc-per-node={procs}", __file__, "--worker", case, "--worker-out", tmp,
            "--threads", str(threads), "--n-data", str(args.n_data),
            "--n-queries", str(args.n_queries), "--steps", str(args.steps),
            "--dtype", args.dtype,
            "--query-chunk", str(args.query_chunk), "--data-chunk", str(args.data_chunk),
        ]
        env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
        load0, t0 = os.getloadavg()[0], time.perf_counter()
        subprocess.run(cmd, check=True, env=env, capture_output=True)
        job = {"job_wall_s": time.perf_counter() - t0, "load_avg": [load0, os.getloadavg()[0]]}
        ranks = [json.loads(Path(tmp, f"rank{r}.json").read_text()) for r in range(procs)]
        return {**job, "ranks": ranks, "result": torch.load(Path(tmp, "result.pt"))}


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    n_steps = range(len(runs[0]["ranks"][0]["step_s"]))
    steps = [max(rk["step_s"][i] for rk in run["ranks"]) for run in runs for i in n_steps]
    cpu = [sum(rk["cpu_s"][i] for rk in run["ranks"]) for run in runs for i in n_steps]
    ranks = []
    for r in range(len(runs[0]["ranks"])):
        mine = [run["ranks"][r] for run in runs]
        wall = sum(sum(m["step_s"]) for m in mine)
        ranks.append({
            "rank": r,
            "peak_rss_mb": max(m["peak_rss_mb"] for m in mine),
            "base_rss_mb": max(m["base_rss_mb"] for m in mine),
            "peak_extra_mb": max(m["peak_rss_mb"] - m["base_rss_mb"] for m in mine),
            "cpu_over_wall": sum(sum(m["cpu_s"]) for m in mine) / wall,
        })
    return {
        "step_s": statistics.median(steps), "step_min_s": min(steps), "steps_s": steps,
        "cpu_step_s": statistics.median(cpu),
        "job_wall_s": [run["job_wall_s"] for run in runs],
        "load_avg": [run["load_avg"] for run in runs], "ranks": ranks,
    }


def git_state() -> dict[str, Any]:
    def git(*a: str) -> str:
        return subprocess.run(["git", *a], cwd=ROOT, capture_output=True, text=True).stdout
    return {"commit": git("rev-parse", "HEAD").strip(),
            "dirty_src": git("status", "--porcelain", "src", "benchmarks").splitlines()}


def main(args: argparse.Namespace) -> dict[str, Any]:
    n = args.nproc
    configs = {"1proc": (1, 1), f"{n}proc": (n, 1)}
    if args.with_threads:
        configs[f"1proc_{n}threads"] = (1, n)
    meta = {
        "torch": torch.__version__, "python": platform.python_version(),
        "cpu_count": os.cpu_count(), "load_avg_start": os.getloadavg(), "git": git_state(),
        "settings": {k: v for k, v in vars(args).items() if not k.startswith("worker")},
    }
    cases = {}
    for case in args.cases.split(","):
        runs: dict[str, list] = {c: [] for c in configs}
        for rep in range(args.repeats):
            for name, (procs, threads) in configs.items():
                runs[name].append(launch(case, procs, threads, args))
                print(f"{case} repeat {rep} {name}: "
                      f"{max(r['step_s'][0] for r in runs[name][-1]['ranks']):.2f} s/step",
                      flush=True)
        ref = runs["1proc"][0]["result"]
        summary = {name: summarise(r) for name, r in runs.items()}
        for name, r in runs.items():
            summary[name]["max_rel_error"] = float(
                (r[-1]["result"] - ref).abs().max() / ref.abs().max()
            )
        one, many = summary["1proc"]["step_s"], summary[f"{n}proc"]["step_s"]
        paired = [
            statistics.median(a["ranks"][0]["step_s"]) / max(
                statistics.median(rk["step_s"]) for rk in b["ranks"])
            for a, b in zip(runs["1proc"], runs[f"{n}proc"], strict=True)
        ]
        cases[case] = {
            "configs": summary, "speedup": one / many, "efficiency": one / many / n,
            "paired_speedup": statistics.median(paired),
            "work_efficiency": summary["1proc"]["cpu_step_s"] / summary[f"{n}proc"]["cpu_step_s"],
            "goal_met": one / many / n >= 0.8,
        }
        if args.with_threads:
            cases[case]["speedup_threads"] = one / summary[f"1proc_{n}threads"]["step_s"]
    meta["load_avg_end"] = os.getloadavg()
    return {"meta": meta, "definitions": DEFINITIONS, "cases": cases}


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
    p.add_argument("--quick", action="store_true", help="10^5 data x 10^3 queries, 1 repeat")
    p.add_argument("--with-threads", action="store_true", help="also 1 process x N threads")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "distributed.json"))
    p.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    p.add_argument("--worker", choices=list(CASES), help=argparse.SUPPRESS)
    p.add_argument("--worker-out", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.quick:
        args.n_data, args.n_queries, args.repeats = 100_000, 1_000, 1
    return args


if __name__ == "__main__":
    ns = parse()
    if ns.worker:
        worker(ns)
    else:
        report = main(ns)
        Path(ns.out).parent.mkdir(parents=True, exist_ok=True)
        Path(ns.out).write_text(json.dumps(report, indent=2))
        for name, c in report["cases"].items():
            print(f"{name}: speedup {c['speedup']:.2f}x, efficiency {c['efficiency']:.0%}, "
                  f"work efficiency {c['work_efficiency']:.0%} -> {ns.out}")

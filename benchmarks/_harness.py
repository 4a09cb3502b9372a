"""What every benchmark script shares: environment, timers, peak memory, child processes, JSON.

A case script builds a :class:`Benchmark` (its ``record`` starts with ``meta``: versions,
CPU count, thread settings, git state, load average), times its calls with :class:`Timer`
(median, fastest, interquartile range, CPU time, peak memory) or :func:`interleave`, runs
anything that may crash or exhaust memory through :func:`run_in_child`, and calls
:meth:`Benchmark.save`, which writes the JSON atomically to ``benchmarks/results/``.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import importlib.metadata
import json
import math
import multiprocessing as mp
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results"
MB = 1e6
PACKAGES = ("ottokit", "numpy", "scipy", "torch", "POT")
THREAD_VARS = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "BLIS_NUM_THREADS",
)
SETUP_LIMIT_S = 900.0  # a child process must report ready within this


def log(msg: str) -> None:
    """A timestamped progress line on stderr (stdout keeps the tables)."""
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def version_of(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def load_avg() -> float | None:
    """The 1-minute load average, or None where the platform has none."""
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


def threads() -> dict[str, Any]:
    """Thread settings: the environment variables, torch's threads and the BLAS pools."""
    out: dict[str, Any] = {"env": {k: os.environ.get(k) for k in THREAD_VARS}}
    if "torch" in sys.modules:
        out["torch"] = sys.modules["torch"].get_num_threads()
    with contextlib.suppress(ImportError):
        from threadpoolctl import threadpool_info

        out["blas"] = [
            {k: p.get(k) for k in ("internal_api", "num_threads", "version")}
            for p in threadpool_info()
        ]
    return out


def git_state() -> dict[str, Any]:
    """The commit measured and whether the tree differs from it (src/ and benchmarks/)."""

    def git(*cmd: str) -> str | None:
        try:
            done = subprocess.run(
                ["git", *cmd], cwd=ROOT, capture_output=True, text=True, timeout=30
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    changes = git("status", "--porcelain", "--", "../src", "../benchmarks")
    return {
        "commit": git("rev-parse", "HEAD"),
        "dirty": None if changes is None else bool(changes),
        "changes": [] if not changes else changes.splitlines(),
    }


def environment(packages: Iterable[str] = ()) -> dict[str, Any]:
    """Versions, machine, thread settings, git state and load average, now."""
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "versions": {name: version_of(name) for name in (*PACKAGES, *packages)},
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "memory_total_gb": mem / 1e9,
        "threads": threads(),
        "git": git_state(),
        "load_avg_start": load_avg(),
    }


def ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return a / b


def summarize(times: Sequence[float]) -> dict[str, Any]:
    """Median, fastest and interquartile range of repeated timings (seconds)."""
    q25, q75 = np.percentile(times, [25, 75])
    return {
        "time_s": float(statistics.median(times)),
        "time_min_s": float(min(times)),
        "time_iqr_s": float(q75 - q25),
        "times_s": [float(t) for t in times],
    }


def median_time(fn: Callable[[], Any], calls: int, warmup: int = 1) -> float:
    """Median wall time of ``calls`` calls after ``warmup`` untimed ones."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(statistics.median(times))


def time_repeated(
    fn: Callable[[], Any], *, min_s: float = 0.0, max_calls: int = 1
) -> tuple[list[float], list[float], Any]:
    """Call ``fn`` until ``min_s`` seconds are spent or ``max_calls`` calls are made.

    Returns the wall and CPU times of the calls and the last call's result.
    """
    times: list[float] = []
    cpu_times: list[float] = []
    while True:
        start, cpu_start = time.perf_counter(), time.process_time()
        out = fn()
        times.append(time.perf_counter() - start)
        cpu_times.append(time.process_time() - cpu_start)
        if sum(times) >= min_s or len(times) >= max_calls:
            return times, cpu_times, out


def copy_bandwidth(elements: int = 20_000_000, calls: int = 5) -> tuple[float, float]:
    """Memory bandwidth in bytes/s: ``np.copyto`` of two float64 arrays (read + write).

    Returns the bandwidth and the median time of one copy (after one warm-up).
    """
    a, b = np.zeros(elements), np.ones(elements)
    copy_s = median_time(lambda: np.copyto(a, b), calls, 1)
    return 2 * 8 * elements / copy_s, copy_s


def _status_mb(key: str, pid: int | str = "self") -> float | None:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024 / MB
    except OSError:
        return None
    return None


def rss_mb() -> float | None:
    """This process's resident size now (Linux)."""
    return _status_mb("VmRSS")


def hwm_mb(pid: int | str = "self") -> float | None:
    """A process's peak resident size (VmHWM, Linux), resettable by :func:`reset_peak`."""
    return _status_mb("VmHWM", pid)


def max_rss_mb() -> float:
    """``ru_maxrss`` of this process: its peak resident size over its whole life."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / MB


def reset_peak() -> bool:
    """Return freed heap memory to the system and reset VmHWM to the current size (Linux)."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        return False
    return True


def _cuda() -> Any | None:
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
        return torch.cuda
    return None


class Timer:
    """Repeated calls of one side of a comparison: wall and CPU time, peak memory, load.

    With ``memory`` the process's peak resident size is reset before each call
    (:func:`reset_peak`, a full garbage collection: tenths of a second with torch loaded),
    so ``peak_rss_mb`` is the call's own; with ``trace_python`` tracemalloc also records the
    peak of Python-level allocations (NumPy's included, torch's not), and on CUDA
    ``torch.cuda.max_memory_allocated`` is recorded. Maxima over the calls.
    """

    def __init__(self, *, memory: bool = True, trace_python: bool = False) -> None:
        self.memory = memory
        self.trace_python = trace_python
        self.times: list[float] = []
        self.cpu_times: list[float] = []
        self.loads: list[float | None] = []
        self.peak_rss: float | None = None
        self.base_rss: float | None = None
        self.peak_reset = True
        self.python_peak: float | None = None
        self.cuda_peak: float | None = None

    def run(self, fn: Callable[[], Any]) -> Any:
        """``fn()``, timed."""
        base = None
        if self.memory:
            self.peak_reset = reset_peak() and self.peak_reset
            base = rss_mb()
        cuda = _cuda()
        if cuda is not None:
            cuda.synchronize()
            cuda.reset_peak_memory_stats()
        if self.trace_python:
            tracemalloc.start()
        self.loads.append(load_avg())
        start, cpu_start = time.perf_counter(), time.process_time()
        out = fn()
        if cuda is not None:
            cuda.synchronize()
        self.times.append(time.perf_counter() - start)
        self.cpu_times.append(time.process_time() - cpu_start)
        if self.trace_python:
            self.python_peak = _max(self.python_peak, tracemalloc.get_traced_memory()[1] / MB)
            tracemalloc.stop()
        if cuda is not None:
            self.cuda_peak = _max(self.cuda_peak, cuda.max_memory_allocated() / MB)
        if self.memory:
            self.peak_rss = _max(self.peak_rss, hwm_mb())
            self.base_rss = _max(self.base_rss, base)
        return out

    def summary(self) -> dict[str, Any]:
        """The JSON entry of this side: ``status``, times, memory, load."""
        extra = None
        if self.peak_rss is not None and self.base_rss is not None:
            extra = self.peak_rss - self.base_rss
        return {
            "status": "ok",
            **summarize(self.times),
            "cpu_s": float(statistics.median(self.cpu_times)),
            "peak_rss_mb": self.peak_rss,
            "base_rss_mb": self.base_rss,
            "peak_extra_mb": extra,
            "peak_is_own": self.memory and self.peak_reset,
            "peak_python_mb": self.python_peak,
            "peak_cuda_mb": self.cuda_peak,
            "load_avg_1min": self.loads,
        }


def _max(a: float | None, b: float | None) -> float | None:
    if a is None:
        return b
    return a if b is None else max(a, b)


def interleave(
    calls: Mapping[str, Callable[[], Any]],
    repeats: int,
    *,
    warmup: int = 1,
    alternate: bool = True,
    memory: bool = True,
) -> tuple[dict[str, Timer], dict[str, Any]]:
    """Time ``calls`` round-robin ``repeats`` times after ``warmup`` untimed rounds.

    A burst of load from other processes then hits every side alike. With ``alternate``
    the order reverses on odd repeats; ``memory`` goes to each :class:`Timer`. Returns the
    timers and each call's last result.
    """
    timers = {k: Timer(memory=memory) for k in calls}
    last: dict[str, Any] = {}
    for _ in range(warmup):
        for name, call in calls.items():
            last[name] = call()
    for rep in range(repeats):
        names = list(calls)
        if alternate and rep % 2:
            names.reverse()
        for name in names:
            last[name] = timers[name].run(calls[name])
    return timers, last


@dataclass
class ChildResult:
    """What a child process left: ``ok`` with its payload, or why it did not finish."""

    status: str  # ok | timeout | oom | crashed | error
    reason: str | None = None
    payload: dict[str, Any] = field(default_factory=dict)
    peak_rss_mb: float | None = None


def _child_main(
    conn: Connection, fn: Callable[..., dict[str, Any]], kwargs: dict[str, Any], mem_limit: int
) -> None:
    if mem_limit > 0:
        resource.setrlimit(resource.RLIMIT_AS, (mem_limit, mem_limit))
    try:
        payload = fn(conn, **kwargs)
        payload["peak_rss_mb"] = max_rss_mb()
        conn.send(("done", payload))
    except MemoryError as exc:
        conn.send(("failed", {"status": "oom", "reason": f"MemoryError {exc}".strip()}))
    except Exception as exc:  # reported, not raised: the parent records the failure
        conn.send(("failed", {"status": "error", "reason": f"{type(exc).__name__}: {exc}"}))
    finally:
        conn.close()


def run_in_child(
    fn: Callable[..., dict[str, Any]],
    kwargs: dict[str, Any],
    limit_s: float,
    mem_limit: int = 0,
    setup_limit_s: float = SETUP_LIMIT_S,
) -> ChildResult:
    """``fn(conn, **kwargs)`` in a spawned process under a time and address-space limit.

    ``fn`` (a module-level function) sends ``("ready", None)`` on ``conn`` when its set-up
    is done and returns a dict; the child is killed ``limit_s`` after it reported ready (or
    ``setup_limit_s`` after the start). ``mem_limit`` bytes caps its address space
    (``RLIMIT_AS``; 0: none). The payload gets the child's ``peak_rss_mb`` (``ru_maxrss``);
    a killed child reports its VmHWM just before the kill.
    """
    ctx = mp.get_context("spawn")
    recv_end, send_end = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child_main, args=(send_end, fn, kwargs, mem_limit), daemon=True)
    proc.start()
    send_end.close()
    result: ChildResult | None = None
    try:
        for phase, wait in (("set-up", setup_limit_s), ("run", limit_s)):
            if not recv_end.poll(wait):
                hwm = hwm_mb(proc.pid) if proc.pid is not None else None
                proc.kill()
                result = ChildResult("timeout", f"{phase} exceeded {wait:.0f} s; killed", {}, hwm)
                break
            kind, body = recv_end.recv()
            if kind == "done":
                result = ChildResult("ok", None, body, body.get("peak_rss_mb"))
                break
            if kind == "failed":
                result = ChildResult(body["status"], body["reason"])
                break
    except EOFError:
        pass
    finally:
        recv_end.close()
        proc.join(30)
        if proc.is_alive():
            proc.kill()
            proc.join()
    if result is None:  # the child died without a word
        code = proc.exitcode
        if code == -9:
            result = ChildResult("oom", "killed by SIGKILL (out of memory)")
        elif code is not None and code < 0:
            result = ChildResult("crashed", f"killed by signal {-code}")
        else:
            result = ChildResult("crashed", f"exited with code {code} without a result")
    return result


@dataclass
class IsolatedRuns:
    """Repeated runs of one timed task, each in a fresh process (:func:`run_in_child`).

    The task returns ``{"times": [...], "cpu_times": [...], "base_rss_mb": ..., ...}``.
    A failure before any timed run sets ``status`` and ``reason``; a later one is listed in
    ``failed_repeats``. Either ends the repeats, and so does a run whose median time
    exceeds ``cutoff_s`` (its noise is small next to its time). ``payload`` is the last
    successful run's.
    """

    fn: Callable[..., dict[str, Any]]
    kwargs: dict[str, Any]
    limit_s: float
    mem_limit: int = 0
    name: str = ""  # for the log
    status: str = "ok"
    reason: str | None = None
    times_s: list[float] = field(default_factory=list)
    cpu_times_s: list[float] = field(default_factory=list)
    processes: int = 0
    peak_rss_mb: float | None = None
    base_rss_mb: float | None = None
    loads: list[float] = field(default_factory=list)
    failed_repeats: list[str] = field(default_factory=list)
    payload: dict[str, Any] | None = None
    active: bool = True

    def run(self, cutoff_s: float = math.inf) -> None:
        """One more process."""
        load = load_avg()
        if load is not None:
            self.loads.append(load)
        r = run_in_child(self.fn, self.kwargs, self.limit_s, self.mem_limit)
        self.processes += 1
        self.peak_rss_mb = _max(self.peak_rss_mb, r.peak_rss_mb)
        if r.status != "ok":
            if self.times_s:
                self.failed_repeats.append(f"{r.status}: {r.reason}")
            else:
                self.status, self.reason = r.status, r.reason
            self.active = False
            return
        self.payload = r.payload
        self.times_s.extend(r.payload["times"])
        self.cpu_times_s.extend(r.payload["cpu_times"])
        self.base_rss_mb = _max(self.base_rss_mb, r.payload["base_rss_mb"])
        if statistics.median(r.payload["times"]) > cutoff_s:
            self.active = False

    def summary(self) -> dict[str, Any]:
        """``status`` and the times (medians over every timed run), memory and load."""
        ok = bool(self.times_s)
        return {
            "status": "ok" if ok else self.status,
            "reason": None if ok else self.reason,
            "time_s": statistics.median(self.times_s) if ok else None,
            "time_min_s": min(self.times_s) if ok else None,
            "times_s": self.times_s,
            "cpu_s": statistics.median(self.cpu_times_s) if ok else None,
            "cpu_times_s": self.cpu_times_s,
            "processes": self.processes,
            "peak_rss_mb": self.peak_rss_mb,
            "base_rss_mb": self.base_rss_mb,
            "load_avg_1min": statistics.mean(self.loads) if self.loads else None,
        }


def round_robin(runs: Sequence[IsolatedRuns], repeats: int, cutoff_s: float = math.inf) -> None:
    """Repeat every active run ``repeats`` times, interleaved, so that a burst of load from
    other processes hits all of them alike instead of one of them."""
    for k in range(repeats):
        for r in runs:
            if not r.active:
                continue
            name = r.name or getattr(r.fn, "__name__", "task")
            log(f"{name} run {k + 1} (limit {r.limit_s:.0f} s)")
            timed = len(r.times_s)
            r.run(cutoff_s)
            if len(r.times_s) > timed:
                log(
                    f"{name}   -> {r.times_s[-1]:.3f} s wall, {r.cpu_times_s[-1]:.3f} s cpu "
                    f"({len(r.times_s)} timed so far), peak {r.peak_rss_mb or 0:.0f} MB"
                )
            else:
                log(f"{name}   -> {(r.failed_repeats or [f'{r.status}: {r.reason}'])[-1]}")


def _json_default(x: Any) -> Any:
    if isinstance(x, np.integer | np.bool_):
        return x.item()
    if isinstance(x, np.floating):
        return float(x)
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, Path):
        return str(x)
    raise TypeError(f"not JSON serialisable: {type(x).__name__}")


def _finite(x: Any) -> Any:
    """NaN and infinities as None, so that the file is strict JSON."""
    if isinstance(x, float | np.floating) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_finite(v) for v in x]
    return x


class Benchmark:
    """One run of a benchmark script: its JSON record and where it goes.

    ``record`` holds ``benchmark`` (the name), ``meta`` (:func:`environment`, the command
    line, the settings) and whatever the script adds; :meth:`save` stamps the end of the
    run (load average, wall time, the process's peak memory) and writes the file.
    """

    def __init__(
        self,
        name: str,
        argv: Sequence[str] | None = None,
        *,
        out: Path | None = None,
        settings: Mapping[str, Any] | None = None,
        packages: Iterable[str] = (),
    ) -> None:
        self.path = Path(out) if out is not None else RESULTS / f"{name}.json"
        self.started = time.perf_counter()
        self.record: dict[str, Any] = {
            "benchmark": name,
            "meta": {
                **environment(packages),
                "argv": list(sys.argv[1:] if argv is None else argv),
                "settings": dict(settings or {}),
            },
        }

    def save(self) -> Path:
        """Write the record (atomically: a temporary file, then a rename)."""
        meta = self.record["meta"]
        meta["load_avg_end"] = load_avg()
        meta["wall_s"] = time.perf_counter() - self.started
        meta["max_rss_mb"] = max_rss_mb()
        cuda = _cuda()
        meta["cuda_max_memory_allocated_mb"] = (
            None if cuda is None else cuda.max_memory_allocated() / MB
        )
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        text = json.dumps(_finite(self.record), indent=2, default=_json_default, allow_nan=False)
        tmp.write_text(text + "\n")
        tmp.replace(self.path)
        return self.path


def fmt(x: float | None, spec: str = ".3g", suffix: str = "") -> str:
    return "-" if x is None else f"{format(x, spec)}{suffix}"


def print_table(
    title: str, columns: Sequence[str], rows: Iterable[Sequence[Any]], *, left: int = 1
) -> None:
    """A rich table on stdout; the first ``left`` columns are left-aligned."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=escape(title))
    for k, col in enumerate(columns):
        table.add_column(escape(col), justify="left" if k < left else "right")
    for row in rows:
        if row is None:
            table.add_section()
        else:
            table.add_row(*(escape(str(c)) for c in row))
    Console(width=160).print(table)


def print_targets(targets: Mapping[str, Mapping[str, Any]]) -> None:
    """The targets of a run: met or not, with the numbers behind each."""
    rows = []
    for name, v in targets.items():
        numbers = ", ".join(
            f"{k}={format(x, '.3g') if isinstance(x, float) else x}"
            for k, x in v.items()
            if k != "met" and x is not None
        )
        met = {True: "yes", False: "NO", None: "-"}.get(v.get("met"), str(v.get("met")))
        rows.append((name, met, numbers[:120]))
    print_table("Targets", ("target", "met", "numbers"), rows, left=3)

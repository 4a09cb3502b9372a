"""Mutation testing of ottokit's mathematical core with mutmut, one module at a time.

Each module in :data:`MODULES` names the source files to mutate and the tests that
check them. Its mutmut workspace is ``.mutmut/<module>/`` (``src`` and ``tests``
linked, a ``pyproject.toml`` written with that module's ``[tool.mutmut]``
section), so the mutants, their results and mutmut's per-function test selection
are cached there and a re-run only tests mutants of changed functions.

After the runs the report (``.mutmut/report.md`` and ``.mutmut/report.json``, and a
table on stdout) gives per module the killed, survived, timed-out and untested
mutants and the score ``detected / (all checked - accepted)``, detected meaning
killed or timed out, and lists every survivor with its diff. A survivor is either
killed by a new test of the mathematics or reviewed and entered in
``tools/mutation-allowlist/<module>.toml`` with its mutated line and a one-line reason; an
entry whose line no longer matches the mutant is reported stale and not honoured.

Usage::

    python tools/mutate.py                      # every module (hours on two cores)
    python tools/mutate.py graph flowmatch      # some modules
    python tools/mutate.py graph --mutants 'ottokit.graph._calculus.*'
    python tools/mutate.py graph --survivors    # after adding tests: re-test the survivors
    python tools/mutate.py --report             # the report of what has run, no run
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / ".mutmut"
ALLOWLIST = ROOT / "tools" / "mutation-allowlist"


@dataclass(frozen=True)
class Module:
    """Source files (relative to ``src/ottokit``) to mutate and the test files that check them."""

    sources: tuple[str, ...]
    tests: tuple[str, ...]


MODULES: dict[str, Module] = {
    "graph": Module(
        ("graph/_calculus.py", "graph/_edi.py", "graph/_flows.py", "graph/_graph.py",
         "graph/_inverse.py", "graph/_solve.py"),
        ("graph/test_calculus.py", "graph/test_edi.py", "graph/test_flows.py",
         "graph/test_graph_structure.py", "graph/test_inverse.py", "graph/test_solve.py"),
    ),
    "functionals": Module(
        ("functionals.py", "fgenerators.py"),
        ("test_functionals.py", "test_fgenerators.py", "graph/test_flows.py"),
    ),
    "ot": Module(("ot.py",), ("test_ot.py",)),
    "jko": Module(("jko.py",), ("test_jko.py",)),
    "flowmatch": Module(
        ("flowmatch/schedules.py", "flowmatch/velocity.py", "flowmatch/tradeoff.py",
         "flowmatch/_quantile.py"),
        ("flowmatch/test_flowmatch_schedules.py", "flowmatch/test_flowmatch_velocity.py",
         "flowmatch/test_flowmatch_tradeoff.py"),
    ),
    "thermo": Module(
        ("thermo/_linalg.py", "thermo/_ou.py", "thermo/_particles.py", "thermo/_protocols.py",
         "thermo/_rotational.py"),
        ("thermo/test_thermo.py",),
    ),
    "natural-gradient": Module(
        ("gan/natural_gradient.py", "gan/solvers.py", "gan/pullback.py"),
        ("gan/test_natural_gradient.py", "gan/test_solvers.py", "gan/test_pullback.py",
         "gan/test_jacobian.py"),
    ),
    "gan-game": Module(("gan/game.py",), ("gan/test_game.py",)),
    "dot": Module(
        ("dot/transport.py", "dot/samplers.py"),
        ("dot/test_dot_transport.py", "dot/test_dot_samplers.py", "dot/test_dot_thread_ranks.py"),
    ),
    "metrics": Module(("metrics.py",), ("test_metrics.py",)),
}

# mutmut's exit codes as statuses (mutmut.stats.status_by_exit_code, spelled out)
STATUS = {1: "killed", 3: "killed", 0: "survived", 5: "no tests", 33: "no tests",
          34: "skipped", 36: "timeout", 24: "timeout", -24: "timeout", 152: "timeout",
          255: "timeout", -9: "segfault", -11: "segfault", 2: "interrupted", None: "not checked"}
DETECTED = ("killed", "timeout", "segfault")
UNDETECTED = ("survived", "no tests", "suspicious")


def _workspace(name: str, module: Module) -> Path:
    """``.mutmut/<name>/`` with ``src`` and ``tests`` linked and this module's configuration."""
    ws = WORK / name
    ws.mkdir(parents=True, exist_ok=True)
    for link in ("src", "tests"):
        path = ws / link
        if path.is_symlink() and path.resolve() != (ROOT / link).resolve():
            path.unlink()  # a workspace copied from another checkout: test this one
        if not path.is_symlink():
            path.symlink_to(ROOT / link, target_is_directory=True)
    copied = ws / "mutants" / "tests"
    if copied.is_dir():
        # mutmut copies the tests in but never deletes one: a test file removed or moved
        # since (a stale conftest.py shadows the top one) must not run against the mutants
        for path in copied.rglob("*.py"):
            if not (ROOT / "tests" / path.relative_to(copied)).exists():
                path.unlink()
    tool = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]
    mutmut = {
        **tool["mutmut"],
        "only_mutate": ["src/ottokit/" + s for s in module.sources],
        "pytest_add_cli_args_test_selection": ["tests/" + t for t in module.tests],
    }
    lines = ["[tool.mutmut]", *(f"{k} = {json.dumps(v)}" for k, v in mutmut.items())]
    lines += ["", "[tool.pytest.ini_options]"]
    lines += [f"{k} = {json.dumps(v)}" for k, v in tool["pytest"]["ini_options"].items()]
    (ws / "pyproject.toml").write_text("\n".join(lines) + "\n")
    return ws


def _environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    # one thread per mutant: the machine is shared and the tests are small
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    # the same hypothesis examples for every mutant, no example database (tests/conftest.py)
    env["HYPOTHESIS_PROFILE"] = "mutation"
    return env


def _generate(ws: Path) -> None:
    """Bring the mutants up to date with the source (a changed function's results are reset)."""
    subprocess.run(
        [sys.executable, "-c", "import mutmut.__main__ as m; m.set_mutant_under_test('"
         "mutant_generation'); m.copy_src_dir(); m.create_mutants(1)"],
        cwd=ws, env=_environment(), check=True, capture_output=True,
    )


def run_module(
    name: str, mutants: list[str], max_children: int, survivors: bool, restat: bool = False
) -> float:
    """Run mutmut for one module; returns the wall time in seconds.

    ``survivors``: test again only the mutants that survived (or had no test) last time,
    and those not checked yet, e.g. after adding tests; mutmut otherwise keeps a result
    until its function changes, and re-tests every mutant a ``mutants`` glob names.
    """
    ws = _workspace(name, MODULES[name])
    # mutmut regenerates a file's mutants only when the source is newer than them, so mutants
    # made from another checkout (a copied workspace) or before a rebase could outlive the code
    # they mutate: date them back, and the regeneration compares every function's hash (an
    # unchanged function keeps its results)
    for made in (ws / "mutants" / "src").rglob("*.py"):
        os.utime(made, (0, 0))
    if restat:
        # mutmut profiles only new tests between runs: a function added since (its mutants
        # show "no tests") needs every test profiled again
        (ws / "mutants" / "mutmut-stats.json").unlink(missing_ok=True)
    if survivors:
        _generate(ws)
        again = (*UNDETECTED, "not checked")
        mutants = [
            m for m, (status, _) in _results(name).items()
            if status in again and (not mutants or any(fnmatch(m, p) for p in mutants))
        ]
        if not mutants:
            return 0.0
    cmd = [sys.executable, "-m", "mutmut", "run", "--max-children", str(max_children), *mutants]
    start = time.perf_counter()
    with open(ws / "run.log", "w") as log:
        proc = subprocess.run(cmd, cwd=ws, env=_environment(), stdout=log, stderr=subprocess.STDOUT)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"mutmut failed for {name} (exit {proc.returncode}); see {ws / 'run.log'}")
    return wall


def _results(name: str) -> dict[str, tuple[str, str]]:
    """Mutant name -> (status, source path) from the module's mutmut metadata."""
    out: dict[str, tuple[str, str]] = {}
    for source in MODULES[name].sources:
        path = f"src/ottokit/{source}"
        meta = WORK / name / "mutants" / (path + ".meta")
        if meta.exists():
            codes = json.loads(meta.read_text())["exit_code_by_key"]
            out.update({k: (STATUS.get(v, "suspicious"), path) for k, v in codes.items()})
    return out


_DIFFS = """
import json, sys
from mutmut.mutation.diff_apply import get_diff_for_mutant
wanted = json.load(sys.stdin)
print(json.dumps({m: get_diff_for_mutant(m, path=p) for m, p in wanted.items()}))
"""


def _diffs(name: str, wanted: dict[str, str]) -> dict[str, str]:
    """Mutant name -> unified diff, for the mutants in ``wanted`` (name -> source path)."""
    if not wanted:
        return {}
    proc = subprocess.run(
        [sys.executable, "-c", _DIFFS], input=json.dumps(wanted), cwd=WORK / name,
        env=_environment(), capture_output=True, text=True, check=True,
    )
    return json.loads(proc.stdout)


def _mutated_lines(diff: str) -> str:
    lines = diff.splitlines()
    added = [ln[1:].strip() for ln in lines if ln.startswith("+") and not ln.startswith("+++")]
    return " / ".join(added)


def load_allowlist() -> dict[str, dict[str, str]]:
    """Mutant name -> ``{"line": ..., "reason": ...}`` from the reviewed allow-lists."""
    out: dict[str, dict[str, str]] = {}
    for path in sorted(ALLOWLIST.glob("*.toml")):
        for e in tomllib.loads(path.read_text()).get("accept", []):
            if not {"mutant", "line", "reason"} <= e.keys() or not e["reason"].strip():
                raise SystemExit(f"{path}: every entry needs mutant, line and a reason: {e}")
            if e["mutant"] in out:
                raise SystemExit(f"{path}: {e['mutant']} is listed twice")
            out[e["mutant"]] = e
    return out


def report(names: list[str], walls: dict[str, float], pattern: list[str]) -> dict:
    """Score every module that has results; write ``.mutmut/report.{json,md}``."""
    allow = load_allowlist()
    summary: dict[str, dict] = {}
    for name in names:
        results = _results(name)
        if pattern:
            results = {k: v for k, v in results.items() if any(fnmatch(k, p) for p in pattern)}
        if not results:
            continue
        diffs = _diffs(name, {m: p for m, (status, p) in results.items() if status in UNDETECTED})
        counts = {s: 0 for s in (*DETECTED, *UNDETECTED, "accepted", "not checked", "skipped")}
        survivors, accepted, stale = [], [], []
        for mutant, (status, _) in sorted(results.items()):
            if status in UNDETECTED:
                diff = diffs[mutant]
                entry = allow.get(mutant)
                if entry is not None and entry["line"].strip() == _mutated_lines(diff):
                    counts["accepted"] += 1
                    accepted.append({"mutant": mutant, "reason": entry["reason"]})
                    continue
                if entry is not None:
                    stale.append(mutant)
                survivors.append({"mutant": mutant, "status": status, "diff": diff})
            elif mutant in allow:
                stale.append(mutant)  # now killed: the entry can go
            counts[status if status in counts else "not checked"] += 1
        detected = sum(counts[s] for s in DETECTED)
        undetected = sum(counts[s] for s in UNDETECTED)
        summary[name] = {
            **counts,
            "score": detected / (detected + undetected) if detected + undetected else None,
            "wall_s": walls.get(name),
            "survivors": survivors,
            "accepted_mutants": accepted,
            "stale_allowlist": stale,
        }
    WORK.mkdir(exist_ok=True)
    (WORK / "report.json").write_text(json.dumps(summary, indent=2) + "\n")
    (WORK / "report.md").write_text(_markdown(summary))
    return summary


def _markdown(summary: dict) -> str:
    head = "| module | killed | timeout | survived | no tests | accepted | not checked | score |"
    rows = [head, "|" + "---|" * 8]
    for name, s in summary.items():
        score = "n/a" if s["score"] is None else f"{100 * s['score']:.1f} %"
        rows.append(
            f"| {name} | {s['killed']} | {s['timeout']} | {s['survived']} | {s['no tests']} "
            f"| {s['accepted']} | {s['not checked']} | {score} |"
        )
    out = ["# Mutation report", "", "score = (killed + timeout) / (checked - accepted)", "", *rows]
    for name, s in summary.items():
        if s["survivors"] or s["stale_allowlist"]:
            out += ["", f"## {name}"]
        for sv in s["survivors"]:
            out += ["", f"### {sv['mutant']} ({sv['status']})", "", "```diff", sv["diff"], "```"]
        if s["stale_allowlist"]:
            out += ["", "Stale allow-list entries (killed, or the mutant changed):", ""]
            out += [f"- {m}" for m in s["stale_allowlist"]]
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("modules", nargs="*", metavar="MODULE",
                        help=f"modules to run (default: all of {', '.join(MODULES)})")
    parser.add_argument("--mutants", action="append", default=[], metavar="GLOB",
                        help="only mutants whose name matches (mutmut's names, e.g. "
                        "'ottokit.graph._calculus.*'); repeatable")
    parser.add_argument("--report", action="store_true", help="report what has run; run nothing")
    parser.add_argument("--survivors", action="store_true",
                        help="test again only last run's survivors (after adding tests)")
    parser.add_argument("--restat", action="store_true",
                        help="profile which tests reach which function again (after a refactor)")
    parser.add_argument("--max-children", type=int, default=1,
                        help="mutants tested in parallel (default 1)")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.modules) - set(MODULES))
    if unknown:
        parser.error(f"unknown module(s) {', '.join(unknown)}; choose from {', '.join(MODULES)}")
    names = args.modules or list(MODULES)
    walls: dict[str, float] = {}
    if not args.report:
        for name in names:
            print(f"mutmut: {name} ...", flush=True)
            walls[name] = run_module(
                name, args.mutants, args.max_children, args.survivors, args.restat
            )
            print(f"mutmut: {name} done in {walls[name]:.0f} s", flush=True)
    summary = report(names, walls, args.mutants)
    print((WORK / "report.md").read_text().split("\n## ")[0])
    for name, s in summary.items():
        if s["stale_allowlist"]:
            print(f"{name}: {len(s['stale_allowlist'])} stale allow-list entries (see report.md)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

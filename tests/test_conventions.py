"""The house rules that a machine can check, so that they cannot regress.

- no banner comments (``# ---- section ----``, ``# ====``, ``####``) in src/, benchmarks/, tests/;
- module docstrings of at most 25 lines in src/ and benchmarks/ (longer discussion goes to the
  documentation pages);
- no ``print`` in tests (a test asserts; what it would print belongs in the assertion message);
- no import of another package's private module from src/ or benchmarks/: ``ottokit.a._b`` may
  be imported only from inside ``ottokit.a`` (the root's private modules, ``ottokit._b``, serve
  the whole library but not the benchmarks). Tests may reach private modules on purpose;
- no shim modules in src/: a module other than a package's ``__init__`` that only re-exports.

Each rule is a function from source text to its violations; the ``detects`` tests feed it a
violating snippet, so a rule that stopped finding anything would fail there.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MAX_MODULE_DOCSTRING_LINES = 25
# a comment made of a run of rule characters, alone or around a title
_BANNER = re.compile(r"^\s*#+\s*(?:[-=#*~_]{3,}.*|.*[-=#*~]{4,}\s*)$")
ALLOWED_SHIMS: set[str] = set()


def _files(*dirs: str) -> list[Path]:
    return sorted(p for d in dirs for p in (ROOT / d).rglob("*.py") if "__pycache__" not in p.parts)


def _rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def banners(source: str) -> list[int]:
    """Line numbers of banner comments."""
    return [i for i, line in enumerate(source.splitlines(), 1) if _BANNER.match(line)]


def long_module_docstring(source: str) -> int | None:
    """The module docstring's line count where it exceeds the limit, else None."""
    doc = ast.get_docstring(ast.parse(source), clean=False)
    n = len(doc.splitlines()) if doc else 0
    return n if n > MAX_MODULE_DOCSTRING_LINES else None


def prints(source: str) -> list[int]:
    """Line numbers of calls to ``print``."""
    return [
        node.lineno
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "print"
    ]


def _is_module(dotted: str) -> bool:
    path = ROOT / "src" / Path(*dotted.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def private_imports(source: str, importer: str) -> list[tuple[int, str]]:
    """Imports of private modules owned by a package that does not contain ``importer``.

    Args:
        source: the importing module's text.
        importer: its dotted name (``ottokit.cli``, ``benchmarks.dot``).

    Returns:
        (line, private module) per offending import.
    """
    package = importer.rsplit(".", 1)[0]
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")
                base = ".".join(parent[: len(parent) - node.level + 1] + ([base] if base else []))
            targets = [base] + [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        for target in targets:
            parts = target.split(".")
            if parts[0] != "ottokit":
                continue
            for k, part in enumerate(parts):
                if part.startswith("_") and not part.startswith("__"):
                    if _is_module(".".join(parts[: k + 1])):
                        owner = ".".join(parts[:k])
                        if not importer.startswith(owner + "."):
                            found.append((node.lineno, ".".join(parts[: k + 1])))
                    break
    return sorted(set(found))


def is_shim(source: str) -> bool:
    """Whether a module holds nothing but its docstring, imports and ``__all__``."""
    body = ast.parse(source).body
    for node in body:
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            continue
        if isinstance(node, ast.Import | ast.ImportFrom):
            continue
        if isinstance(node, ast.Assign) and [getattr(t, "id", None) for t in node.targets] == [
            "__all__"
        ]:
            continue
        return False
    return any(isinstance(node, ast.ImportFrom) for node in body)


def _module_name(path: Path) -> str:
    """Dotted name; a package's ``__init__`` keeps that part, so it lies inside its package."""
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[1:] if parts[0] == "src" else parts)


def test_no_banner_comments() -> None:
    found = [f"{_rel(p)}:{n}" for p in _files("src", "benchmarks", "tests") for n in banners(
        p.read_text(encoding="utf-8"))]
    assert not found, f"banner comments: {found}"


def test_module_docstrings_are_short() -> None:
    found = {
        _rel(p): n
        for p in _files("src", "benchmarks")
        if (n := long_module_docstring(p.read_text(encoding="utf-8")))
    }
    assert not found, (
        f"module docstrings over {MAX_MODULE_DOCSTRING_LINES} lines (move the discussion to "
        f"docs/): {found}"
    )


def test_no_print_in_tests() -> None:
    found = [f"{_rel(p)}:{n}" for p in _files("tests") for n in prints(
        p.read_text(encoding="utf-8"))]
    assert not found, f"print in tests: {found}"


def test_no_private_module_of_another_package() -> None:
    found = [
        f"{_rel(p)}:{line} imports {module}"
        for p in _files("src", "benchmarks")
        for line, module in private_imports(p.read_text(encoding="utf-8"), _module_name(p))
    ]
    assert not found, f"imports of another package's private module: {found}"


def test_no_shim_modules() -> None:
    found = [
        _rel(p)
        for p in _files("src")
        if p.name != "__init__.py"
        and _rel(p) not in ALLOWED_SHIMS
        and is_shim(p.read_text(encoding="utf-8"))
    ]
    assert not found, f"modules that only re-export: {found}"


@pytest.mark.parametrize(
    "line",
    [
        "# ---------------------------------------------------------------- validation",
        "    # ------------------------------------------------------------------",
        "# ===== exact OT =====",
        "#### digits",
        "# --- 1. exact velocity",
    ],
)
def test_banners_detects(line: str) -> None:
    assert banners(f"x = 1\n{line}\ny = 2\n") == [2]


@pytest.mark.parametrize(
    "line", ["# the mixture's mean, not its mode", "x = a - b  # a - b, not b - a", "# W2 -> 0"]
)
def test_banners_leaves_plain_comments(line: str) -> None:
    assert banners(line) == []


def test_long_module_docstring_detects() -> None:
    ok = '"""One line.\n\n' + "text\n" * 22 + '"""\n'
    too_long = '"""One line.\n\n' + "text\n" * 24 + '"""\n'
    assert long_module_docstring(ok) is None
    assert long_module_docstring(too_long) == 26


def test_prints_detects() -> None:
    assert prints("def test_x():\n    value = 1\n    print(value)\n") == [3]
    assert prints("def test_x():\n    assert 'print(' in 'print(1)'\n") == []


def test_private_imports_detects() -> None:
    source = (
        "from ottokit.experiments._runner import run_experiment\n"
        "import ottokit.graph._solve\n"
        "from ottokit.experiments import _studies\n"
        "from ottokit._checks import check_int\n"
        "from ottokit.dot.transport import _apply_D\n"
    )
    assert private_imports(source, "ottokit.cli") == [
        (1, "ottokit.experiments._runner"),
        (2, "ottokit.graph._solve"),
        (3, "ottokit.experiments._studies"),
    ]
    # inside the owning package, and the root's private modules, are fine
    assert private_imports(source, "ottokit.experiments.gan_geometry.edi") == [
        (2, "ottokit.graph._solve")
    ]
    # the benchmarks stand outside the package: even the root's private modules are off limits
    assert (4, "ottokit._checks") in private_imports(source, "benchmarks.dot")


def test_is_shim_detects() -> None:
    assert is_shim('"""Doc."""\nfrom a import b\n__all__ = ["b"]\n')
    assert not is_shim('"""Doc."""\nfrom a import b\n\n\ndef c():\n    return b\n')

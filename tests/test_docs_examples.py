"""Every code block of the README and of the documentation pages runs, so examples cannot rot.

- ``python`` blocks: each file's blocks are executed in order in one namespace, in a
  temporary working directory (the README's later examples use the earlier imports).
- ``bash`` blocks: every ``ottokit ...`` command line (also after ``python -m`` or
  ``torchrun ... -m``) is parsed by the CLI's own parser without running it; for ``run``
  and ``show`` the experiment's config is resolved with the line's preset, ``--set``,
  ``--seed`` and ``--device`` and validated. The cheap commands (``ottokit list``,
  ``show``, ``--help``) run for real. ``make``, ``pip``, ``torchrun`` and ``srun`` lines
  are documented, not executed; a ``python`` script they name must exist. Any other
  command is an error, so a new kind of line gets a rule here rather than slipping through.
- ``toml`` blocks must parse.

A block opts out of execution only by a comment on the line before its opening fence,
``<!-- not-run: the reason -->``; its Python is still compiled and its ottokit lines still
parsed.
"""

from __future__ import annotations

import contextlib
import io
import re
import shlex
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
import typer.main
from typer.testing import CliRunner

from ottokit import cli
from ottokit._config import apply_overrides, validate_config
from ottokit.experiments import get, names

ROOT = Path(__file__).resolve().parents[1]
FILES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
FENCE = re.compile(r"^(?P<indent> *)(?P<fence>`{3,}|~{3,})\s*(?P<lang>[\w+-]*)")
NOT_RUN = re.compile(r"^\s*<!--\s*not-run:\s*(?P<reason>\S.*?)\s*-->\s*$")
DOCUMENTED = {"make", "pip", "torchrun", "srun"}
CHEAP = {"list", "show"}


@dataclass(frozen=True)
class Block:
    path: Path
    line: int  # 1-based line of the first code line
    lang: str
    code: str
    not_run: str | None  # the reason, when the block opts out of execution

    def where(self, offset: int = 0) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line + offset}"


def code_blocks(path: Path) -> list[Block]:
    """The fenced code blocks of a Markdown file, with the opt-out marker before each."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks, i = [], 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        fence, indent = m["fence"], len(m["indent"])
        end = i + 1
        while end < len(lines) and not lines[end].strip().startswith(fence):
            end += 1
        if end == len(lines):
            raise AssertionError(f"{path.relative_to(ROOT)}:{i + 1}: unclosed code fence")
        previous = next((lines[k] for k in range(i - 1, -1, -1) if lines[k].strip()), "")
        marker = NOT_RUN.match(previous)
        code = "\n".join(line[indent:] for line in lines[i + 1 : end])
        blocks.append(Block(path, i + 2, m["lang"].lower(), code, marker and marker["reason"]))
        i = end + 1
    return blocks


ALL_BLOCKS = [b for f in FILES for b in code_blocks(f)]
PYTHON_FILES = sorted({b.path for b in ALL_BLOCKS if b.lang in ("python", "py")})
BASH_BLOCKS = [b for b in ALL_BLOCKS if b.lang in ("bash", "sh", "shell", "console")]


def _id(path: Path) -> str:
    return str(path.relative_to(ROOT))


def test_the_documents_have_examples() -> None:
    assert len(PYTHON_FILES) >= 3, "README and docs pages with Python examples"
    assert len(BASH_BLOCKS) >= 3, "README and docs pages with command lines"


@pytest.mark.parametrize("path", PYTHON_FILES, ids=_id)
def test_python_examples_run(path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    namespace: dict[str, object] = {"__name__": "__docs_example__"}
    threads = torch.get_num_threads()
    # The examples' small networks gain nothing from intra-op threads, and on a busy
    # 2-core runner the threads spin-wait against each other (many times slower).
    torch.set_num_threads(1)
    try:
        for block in (b for b in ALL_BLOCKS if b.path == path and b.lang in ("python", "py")):
            # Leading newlines keep the Markdown line numbers in tracebacks.
            code = compile("\n" * (block.line - 1) + block.code, str(block.path), "exec")
            if block.not_run:
                continue
            with contextlib.redirect_stdout(io.StringIO()):
                exec(code, namespace)
    finally:
        torch.set_num_threads(threads)


def command_lines(block: Block) -> list[tuple[int, list[str]]]:
    """(line offset, tokens) of each shell command in a block (continuations joined)."""
    commands, pending, start = [], "", 0
    for k, raw in enumerate(block.code.splitlines()):
        if not pending:
            start = k
        if raw.rstrip().endswith("\\"):
            pending += raw.rstrip()[:-1] + " "
            continue
        text, pending = pending + raw, ""
        if text.lstrip().startswith("#!"):
            continue
        tokens = shlex.split(text, comments=True)
        if tokens:
            commands.append((start, tokens))
    return commands


def ottokit_args(tokens: list[str], where: str) -> list[str] | None:
    """The arguments given to ottokit by a command line, or None for a documented command."""
    head = tokens[0]
    if head == "ottokit":
        return tokens[1:]
    if "-m" in tokens and tokens[tokens.index("-m") + 1 : tokens.index("-m") + 2] == ["ottokit"]:
        if head in DOCUMENTED | {"python", "python3"}:
            return tokens[tokens.index("-m") + 2 :]
    if head in ("python", "python3"):
        script = next((t for t in tokens[1:] if not t.startswith("-")), None)
        assert script and (ROOT / script).is_file(), f"{where}: no script {script!r}"
        return None
    if head in DOCUMENTED or re.fullmatch(r"[A-Za-z_]\w*=.*", head):
        return None
    raise AssertionError(f"{where}: unknown command {head!r} in a bash block")


def check_ottokit_command(args: list[str], where: str) -> None:
    """Parse ``args`` with the CLI's parser and resolve experiments and ``--set`` overrides."""
    group = typer.main.get_command(cli.app)
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        try:
            if not args or args[0].startswith("-"):  # the group's own options (--help)
                group.make_context("ottokit", list(args), resilient_parsing=False)
                raise AssertionError(f"{where}: no sub-command in `ottokit {shlex.join(args)}`")
            name, rest = args[0], list(args[1:])
            assert name in group.commands, f"{where}: unknown command {name!r}"
            sub = group.commands[name].make_context(name, rest, resilient_parsing=False)
        except AssertionError:
            raise
        except Exception as exc:  # the parser's own UsageError or Exit
            if getattr(exc, "exit_code", None) == 0:  # --help
                return
            raise AssertionError(f"{where}: `ottokit {shlex.join(args)}`: {exc}") from exc
    params = sub.params
    if name in ("run", "show") and params.get("experiment") is not None:
        experiment = params["experiment"]
        assert experiment in names(), f"{where}: unknown experiment {experiment!r}"
        overrides = list(params.get("set_") or [])
        overrides += [f"{k}={params[k]}" for k in ("seed", "device") if params.get(k) is not None]
        try:
            base = get(experiment).preset(params.get("preset") or "quick")
            validate_config(apply_overrides(base, overrides))
        except ValueError as exc:
            raise AssertionError(f"{where}: {exc}") from exc
    if name == "reproduce" and params.get("only"):
        for experiment in str(params["only"]).split(","):
            assert experiment.strip() in names(), f"{where}: unknown experiment {experiment!r}"


@pytest.mark.parametrize("block", BASH_BLOCKS, ids=lambda b: b.where())
def test_bash_examples_are_valid_commands(block: Block) -> None:
    runner = CliRunner()
    for offset, tokens in command_lines(block):
        where = block.where(offset)
        args = ottokit_args(tokens, where)
        if args is None:
            continue
        check_ottokit_command(args, where)
        cheap = "--help" in args or (args and args[0] in CHEAP)
        if cheap and not block.not_run:
            result = runner.invoke(cli.app, args)
            assert result.exit_code == 0, f"{where}: {result.output}"


def test_toml_examples_parse() -> None:
    for block in (b for b in ALL_BLOCKS if b.lang == "toml"):
        try:
            tomllib.loads(block.code)
        except tomllib.TOMLDecodeError as exc:
            raise AssertionError(f"{block.where()}: {exc}") from exc


def test_opt_outs_give_a_reason() -> None:
    for path in FILES:
        for k, line in enumerate(path.read_text(encoding="utf-8").splitlines()):
            if line.lstrip().startswith("<!--") and "not-run" in line:
                assert NOT_RUN.match(line), f"{_id(path)}:{k + 1}: write <!-- not-run: reason -->"


@pytest.mark.parametrize(
    "args",
    [
        ["rnu", "graph-heat"],
        ["run", "no-such-experiment"],
        ["run", "graph-heat", "--no-such-option"],
        ["run", "graph-heat", "--nproc", "two"],
        ["run", "graph-heat", "--set", "no_such_key=1"],
        ["run", "graph-heat", "--set", "n_nodes=many"],
        ["run", "graph-heat", "--set", "n_nodes=-5"],
        ["show", "graph-heat", "--preset", "fast"],
        ["reproduce", "--only", "graph-heat,no-such-experiment"],
    ],
)
def test_a_broken_command_line_fails(args: list[str]) -> None:
    with pytest.raises(AssertionError):
        check_ottokit_command(args, "example")


def test_blocks_markers_and_continuations_are_read(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "text\n\n<!-- not-run: needs a GPU -->\n\n```bash\nottokit run dot-toy \\\n"
        "    --device cuda  # one rank\nmake test\n```\n\n```python\nx = 1\n```\n",
        encoding="utf-8",
    )
    first, second = code_blocks(page)
    assert (first.lang, first.line, first.not_run) == ("bash", 6, "needs a GPU")
    assert (second.lang, second.code, second.not_run) == ("python", "x = 1", None)
    assert command_lines(first) == [
        (0, ["ottokit", "run", "dot-toy", "--device", "cuda"]),
        (2, ["make", "test"]),
    ]

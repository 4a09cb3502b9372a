"""A content-addressed cache of trained networks and finished runs, in the user's cache directory.

Two kinds of entries, each stored with a SHA-256 and verified before use:

* ``training/<key>.pt``: the final checkpoint of a training run (:func:`train_gan`,
  :func:`train_velocity`, :func:`fit_discriminator`). The key hashes the trainer's
  config, its fingerprint (architectures, loss, optimiser classes, data), the initial
  networks and optimiser states, the world size, what the caller adds (``cache=``:
  whatever the fingerprint cannot see, e.g. a sampler's parameters) and the source of
  the modules that train. A hit restores the final state exactly as a resume would.
* ``runs/<key>/``: the files of a finished ``ottokit run`` (metrics, result, figures,
  report); the key hashes the experiment, its config, the world size and the source of
  the whole package. A hit copies them into the new run directory.

The directory is ``$OTTOKIT_CACHE_DIR``, else ``$XDG_CACHE_HOME/ottokit``, else
``~/.cache/ottokit``. ``OTTOKIT_CACHE=off`` (the CLI's ``--no-cache``) turns lookups
and stores off. A corrupt or mismatched entry is deleted and recomputed, never used.
Every lookup is logged in :func:`events` so a report can say what came from the cache.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import math
import os
import shutil
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch

__all__ = [
    "CacheEntry",
    "CacheEvent",
    "cache_dir",
    "clear",
    "digest",
    "enabled",
    "entries",
    "events",
    "log_event",
    "reset_events",
    "run_entry",
    "source_digest",
    "store_run",
    "training_entry",
]

log = logging.getLogger(__name__)

# modules whose source shapes a training trajectory (package-relative)
_TRAINING_SOURCES = (
    "engine.py",
    "_torchio.py",
    "distributed.py",
    "priors.py",
    "fgenerators.py",
    "data.py",
    "gan",
    "flowmatch",
)


@dataclass(frozen=True)
class CacheEvent:
    """One cache lookup: what was looked up, its key, and whether it was found."""

    kind: Literal["training", "run"]
    label: str
    key: str
    hit: bool


@dataclass(frozen=True)
class CacheEntry:
    """One stored entry, as :func:`entries` lists it."""

    kind: Literal["training", "run"]
    key: str
    label: str
    size_bytes: int
    created: float
    path: Path


_events: list[CacheEvent] = []


def enabled() -> bool:
    """Whether lookups and stores happen (``OTTOKIT_CACHE=off`` turns them off)."""
    return os.environ.get("OTTOKIT_CACHE", "on").strip().lower() not in ("off", "0", "no")


def cache_dir() -> Path:
    """The cache's root directory (not created here)."""
    explicit = os.environ.get("OTTOKIT_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "ottokit"


def events() -> list[CacheEvent]:
    """The lookups since the last :func:`reset_events`."""
    return list(_events)


def reset_events() -> None:
    """Forget the logged lookups (the runner does this before each run)."""
    _events.clear()


# the files of the package a run's result may depend on: modules and shipped data
_PACKAGE_SUFFIXES = frozenset({".py", ".pt", ".json"})


@functools.cache
def source_digest(scope: Literal["training", "package"] = "package") -> str:
    """SHA-256 of ottokit's source: the whole package (with the data it ships, such as
    trained networks), or the modules that train."""
    root = Path(__file__).resolve().parent
    if scope == "package":
        files = sorted(p for p in root.rglob("*") if p.suffix in _PACKAGE_SUFFIXES)
    else:
        files = []
        for name in _TRAINING_SOURCES:
            p = root / name
            files += sorted(p.rglob("*.py")) if p.is_dir() else ([p] if p.is_file() else [])
    h = hashlib.sha256()
    for f in files:
        h.update(f.relative_to(root).as_posix().encode())
        h.update(b"\0")
        h.update(f.read_bytes())
        h.update(b"\0")
    return h.hexdigest()


def digest(obj: Any) -> str:
    """A SHA-256 of nested dicts, lists, tensors, arrays and plain values.

    Tensors and arrays count by dtype, shape and bytes; dicts by sorted keys; floats by
    their exact binary value. Anything else counts by its ``repr``.
    """
    h = hashlib.sha256()
    _feed(h, obj)
    return h.hexdigest()


def _feed(h: Any, obj: Any) -> None:
    if isinstance(obj, Mapping):
        h.update(b"{")
        for k in sorted(obj, key=str):
            h.update(str(k).encode() + b":")
            _feed(h, obj[k])
        h.update(b"}")
    elif isinstance(obj, list | tuple):
        h.update(b"[")
        for v in obj:
            _feed(h, v)
            h.update(b",")
        h.update(b"]")
    elif isinstance(obj, torch.Tensor):
        t = obj.detach().cpu().contiguous()
        h.update(f"T{t.dtype}{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    elif hasattr(obj, "dtype") and hasattr(obj, "tobytes"):  # NumPy arrays and scalars
        h.update(f"A{obj.dtype}{getattr(obj, 'shape', ())}".encode() + obj.tobytes())
    elif isinstance(obj, float):
        h.update(b"f" + (obj.hex() if math.isfinite(obj) else repr(obj)).encode())
    elif obj is None or isinstance(obj, bool | int | str):
        h.update(f"{type(obj).__name__}:{obj!r}".encode())
    else:
        h.update(f"{type(obj).__qualname__}:{obj!r}".encode())


def training_entry(kind: str, material: Mapping[str, Any], label: str = "") -> tuple[str, Path]:
    """The key and file of a training run described by ``material``."""
    key = digest({"kind": kind, "source": source_digest("training"), **material})
    return key, cache_dir() / "training" / f"{key}.pt"


def run_entry(experiment: str, material: Mapping[str, Any]) -> tuple[str, Path]:
    """The key and directory of a finished run of ``experiment`` described by ``material``."""
    key = digest({"experiment": experiment, "source": source_digest("package"), **material})
    return key, cache_dir() / "runs" / key


def log_event(kind: Literal["training", "run"], label: str, key: str, hit: bool) -> None:
    """Record a lookup for :func:`events` (and the log)."""
    _events.append(CacheEvent(kind, label, key, hit))
    log.info("cache %s %s: %s (%s)", kind, "hit" if hit else "miss", label, key[:12])


def store_run(path: Path, run_dir: Path, label: str) -> None:
    """Copy a finished run directory's files (not its checkpoints) into the cache."""
    if path.exists():
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}."))
        shutil.copytree(
            run_dir, tmp / "files", ignore=shutil.ignore_patterns("checkpoints", "log.txt")
        )
        manifest = {
            str(p.relative_to(tmp / "files")): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted((tmp / "files").rglob("*"))
            if p.is_file()
        }
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1), encoding="utf-8")
        write_label(tmp / "label.json", label, "run")
        os.rename(tmp, path)
    except OSError as err:
        log.warning("could not store run %s in the cache: %s", label, err)


def verified_run_files(path: Path) -> Path | None:
    """The stored files of a run entry if every file matches its SHA-256, else None
    (a damaged entry is deleted)."""
    try:
        manifest = json.loads((path / "manifest.json").read_text(encoding="utf-8"))
        files = path / "files"
        ok = all(
            hashlib.sha256((files / rel).read_bytes()).hexdigest() == sha
            for rel, sha in manifest.items()
        ) and {str(p.relative_to(files)) for p in files.rglob("*") if p.is_file()} == set(manifest)
    except (OSError, ValueError, TypeError):
        ok = False
    if ok:
        return files
    log.warning("cache entry %s is damaged; it is deleted and the run recomputed", path)
    shutil.rmtree(path, ignore_errors=True)
    return None


def discard(path: Path, reason: str) -> None:
    """Delete a cache entry that failed verification."""
    log.warning("cache entry %s is not used (%s); it is deleted and recomputed", path, reason)
    path.unlink(missing_ok=True)
    path.with_suffix(".json").unlink(missing_ok=True)


def write_label(path: Path, label: str, kind: str) -> None:
    """Describe an entry for :func:`entries` (what it is, when it was made)."""
    path.write_text(
        json.dumps({"label": label, "kind": kind, "created": time.time()}), encoding="utf-8"
    )


def entries() -> list[CacheEntry]:
    """Every stored entry, newest first."""
    root = cache_dir()
    out: list[CacheEntry] = []
    for p in sorted((root / "training").glob("*.pt")) if (root / "training").is_dir() else []:
        meta = _read_label(p.with_suffix(".json"))
        out.append(
            CacheEntry("training", p.stem, meta.get("label", ""), p.stat().st_size,
                       meta.get("created", p.stat().st_mtime), p)
        )
    for p in sorted((root / "runs").iterdir()) if (root / "runs").is_dir() else []:
        if p.name.startswith(".") or not p.is_dir():
            continue
        meta = _read_label(p / "label.json")
        size = sum(f.stat().st_size for f in p.rglob("*") if f.is_file())
        out.append(
            CacheEntry("run", p.name, meta.get("label", ""), size,
                       meta.get("created", p.stat().st_mtime), p)
        )
    return sorted(out, key=lambda e: e.created, reverse=True)


def clear() -> int:
    """Delete every entry; return how many there were."""
    found = entries()
    for e in found:
        if e.kind == "training":
            discard_quietly = e.path.with_suffix(".json")
            e.path.unlink(missing_ok=True)
            discard_quietly.unlink(missing_ok=True)
        else:
            shutil.rmtree(e.path, ignore_errors=True)
    return len(found)


def _read_label(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}

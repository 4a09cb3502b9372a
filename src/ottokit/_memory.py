"""Refuse hopeless sizes before allocating: estimate, compare with available memory, explain.

:func:`check_memory` raises :class:`MemoryEstimateError` (a ``ValueError``) when an
estimate exceeds the memory this process may use, naming the estimate, what is
available and the setting that lowers it. The limit is the machine's available
memory (``MemAvailable`` on Linux, else physical memory), or the value of the
environment variable ``OTTOKIT_MEMORY_LIMIT`` (bytes, or with a suffix such as
``64G``); ``OTTOKIT_MEMORY_LIMIT=off`` or ``check_memory(..., override=True)``
turns the refusal off for users who know better.
"""

from __future__ import annotations

import os
import re

__all__ = ["MemoryEstimateError", "available_memory", "check_memory", "format_bytes"]

_ENV = "OTTOKIT_MEMORY_LIMIT"
_UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}


class MemoryEstimateError(ValueError):
    """A computation would need more memory than is available."""


def format_bytes(n: float) -> str:
    """``n`` bytes as ``"1.5 GiB"``."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024 or unit == "PiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def available_memory() -> int | None:
    """Bytes this process may allocate: ``OTTOKIT_MEMORY_LIMIT`` if set, else the
    machine's available memory; None when the limit is switched off or unknown."""
    text = os.environ.get(_ENV, "").strip()
    if text:
        if text.lower() in ("off", "none", "0"):
            return None
        m = re.fullmatch(r"([0-9]*\.?[0-9]+)\s*([KMGT]?)(i?B)?", text, flags=re.IGNORECASE)
        if m is None:
            raise ValueError(
                f"{_ENV}={text!r} is not a size; use bytes or a suffix, e.g. {_ENV}=64G, "
                f"or {_ENV}=off"
            )
        return int(float(m.group(1)) * _UNITS[m.group(2).upper()])
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return None


def check_memory(nbytes: float, *, what: str, knob: str, override: bool = False) -> None:
    """Raise :class:`MemoryEstimateError` if ``nbytes`` exceeds :func:`available_memory`.

    Args:
        nbytes: the estimate, in bytes.
        what: what would be allocated, e.g. ``"the edge list of random_geometric(n=10**9)"``.
        knob: how to lower it, e.g. ``"lower n or radius"``.
        override: skip the check (the caller knows better).
    """
    if override:
        return
    limit = available_memory()
    if limit is None or nbytes <= limit:
        return
    raise MemoryEstimateError(
        f"{what} needs about {format_bytes(nbytes)} but {format_bytes(limit)} is available; "
        f"{knob} (or set {_ENV}=off to try anyway)"
    )

"""Memory estimates are refused before allocation, with the estimate, the limit and the knob."""

from __future__ import annotations

import pytest

from ottokit._memory import MemoryEstimateError, available_memory, check_memory, format_bytes


def test_limit_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTTOKIT_MEMORY_LIMIT", "2G")
    assert available_memory() == 2 * 2**30
    check_memory(2**30, what="x", knob="lower n")
    with pytest.raises(MemoryEstimateError, match=r"needs about 3\.0 GiB but 2\.0 GiB.*lower n"):
        check_memory(3 * 2**30, what="x", knob="lower n")
    check_memory(3 * 2**30, what="x", knob="lower n", override=True)
    monkeypatch.setenv("OTTOKIT_MEMORY_LIMIT", "off")
    assert available_memory() is None
    check_memory(1e30, what="x", knob="lower n")
    monkeypatch.setenv("OTTOKIT_MEMORY_LIMIT", "lots")
    with pytest.raises(ValueError, match="OTTOKIT_MEMORY_LIMIT"):
        available_memory()


def test_machine_memory_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OTTOKIT_MEMORY_LIMIT", raising=False)
    avail = available_memory()
    assert avail is not None and 2**26 < avail < 2**50
    with pytest.raises(MemoryEstimateError):
        check_memory(2**60, what="x", knob="k")


def test_format_bytes() -> None:
    assert format_bytes(512) == "512 B"
    assert format_bytes(1536) == "1.5 KiB"
    assert format_bytes(7.3 * 2**40) == "7.3 TiB"

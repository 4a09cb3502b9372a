"""Mutation runs fork each test process from a server that has collected the tests: torch.func
is warmed there, since its first call imports torch's compiler stack (seconds per process)."""

from __future__ import annotations

import os

import torch

if os.environ.get("HYPOTHESIS_PROFILE") == "mutation":
    torch.func.grad(lambda x: x.sum())(torch.zeros(1))

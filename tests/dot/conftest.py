"""Mutation runs fork each test process from a server that has collected the tests: torch.optim
is warmed there, since building the first optimizer imports torch's compiler stack (seconds per
process)."""

from __future__ import annotations

import os

import torch

if os.environ.get("HYPOTHESIS_PROFILE") == "mutation":
    torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)

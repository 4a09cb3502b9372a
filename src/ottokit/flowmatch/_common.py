"""Shared validation, tensor conversion, the chunked Gaussian softmax, and the OT calls.

Torch is the primary array type: NumPy input becomes a float64 tensor, and
public functions hand NumPy back to NumPy callers (:func:`like_input`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ottokit import ot as ottokit_ot
from ottokit._checks import as_array, as_density, as_vector
from ottokit._memory import check_memory
from ottokit.distributed import all_reduce

__all__: list[str] = []

WEIGHT_ATOL = 1e-6  # how far from 1 the sum of user weights may be
_BLOCK_CHECK_BYTES = 2**26


def as_float_tensor(x: Any, name: str, *, dtype=None, device=None) -> Tensor:
    """``x`` as a floating tensor: a tensor keeps its dtype/device, anything else is float64."""
    if isinstance(x, Tensor):
        t = x if x.is_floating_point() else x.to(torch.float64)
    else:
        t = torch.as_tensor(as_array(x, name, finite=False))
    if dtype is not None or device is not None:
        t = t.to(dtype=dtype or t.dtype, device=device or t.device)
    return t


def check_finite(x: Tensor, name: str) -> None:
    """ValueError naming ``name`` and the first bad index when ``x`` has NaN or inf."""
    bad = ~torch.isfinite(x)
    if bool(bad.any()):
        k = tuple(int(i) for i in torch.nonzero(bad)[0])
        index = k[0] if len(k) == 1 else k
        raise ValueError(f"{name} must be finite; {name}[{index}] = {x[k].item()}")


def as_points(
    x: Any, name: str, *, dim: int | None = None, dtype=None, device=None, allow_empty=False
) -> Tensor:
    """``x`` as an (n, d) finite float tensor with n >= 1 (n >= 0 with ``allow_empty``) and
    d >= 1 (d == ``dim`` when given)."""
    t = as_float_tensor(x, name, dtype=dtype, device=device)
    if t.ndim != 2 or (t.shape[0] == 0 and not allow_empty) or t.shape[1] == 0:
        hint = "; reshape 1-D samples to (n, 1)" if t.ndim == 1 else ""
        raise ValueError(
            f"{name} must have shape (n, d) with n, d >= 1, got {tuple(t.shape)}{hint}"
        )
    if dim is not None and t.shape[1] != dim:
        raise ValueError(
            f"{name} has dimension {t.shape[1]}, expected {dim} (mismatched dimensions)"
        )
    check_finite(t, name)
    return t


def as_weights(w: Any, n: int, name: str = "weights", *, sharded: bool = False) -> Tensor:
    """Probability weights of length ``n`` as float64: non-negative, finite, summing to 1.

    ``sharded=True``: ``w`` is this rank's share of the weights; the shares of all ranks
    together must sum to 1 (a share alone may sum to anything, zero included).
    """
    a = w.detach().cpu().double().numpy() if isinstance(w, Tensor) else w
    if not sharded:
        a = as_density(a, n, name=name, positive=False, check_mass=False)
        total = float(a.sum())
    else:
        a = as_vector(a, n, name)
        if np.any(a < 0):
            k = int(np.argmin(a))
            raise ValueError(f"{name} must be non-negative; {name}[{k}] = {a[k]:.3g}")
        total = float(all_reduce(torch.tensor(a.sum(), dtype=torch.float64), "sum"))
    if abs(total - 1.0) > WEIGHT_ATOL:
        where = " (all ranks' shares together)" if sharded else ""
        raise ValueError(
            f"{name} must sum to 1{where} (within {WEIGHT_ATOL:g}), got {total:.12g}; "
            "normalise them"
        )
    return torch.as_tensor(a / total)


def scalar_time(t: Any, *, dtype, device) -> Tensor:
    """A single time as a 0-d tensor (a velocity field is evaluated at one time per call)."""
    tt = as_float_tensor(t, "t", dtype=dtype, device=device)
    if tt.numel() != 1:
        raise ValueError(f"t must be a single time, got shape {tuple(tt.shape)}")
    return tt.reshape(())


def like_input(y: Tensor, x: Any) -> Any:
    """``y`` as NumPy when ``x`` was not a tensor, else unchanged."""
    return y if isinstance(x, Tensor) else y.detach().cpu().numpy()


def gaussian_softmax_mean(
    x: Tensor,
    centers: Tensor,
    values: Tensor,
    log_w: Tensor,
    a: Tensor | float,
    b: Tensor | float,
    *,
    query_chunk: int,
    data_chunk: int,
    hard: bool = False,
) -> tuple[Tensor, Tensor]:
    """Softmax-weighted average of ``values`` over ``centers`` with Gaussian logits.

    Logits ``l_rk = log_w_k + a <x_r, c_k> - b |c_k|^2`` (the row constant of
    ``-|x - c|^2`` is dropped). Returns ``(sum_k softmax_k(l_r) values_k,
    logsumexp_k l_rk)``, shapes ``(B, p)`` and ``(B,)``. Queries and centers are
    both chunked and the log-sum-exp is accumulated over center chunks, so memory
    is ``O(query_chunk * data_chunk)`` whatever ``B`` and ``N``.

    ``hard=True`` returns the values of the arg-max center instead (the zero
    temperature limit; ``log_w`` then only breaks exact ties, which it ignores,
    and the second output is the maximal logit).
    """
    n_query, n_data = x.shape[0], centers.shape[0]
    rows, cols = min(query_chunk, n_query), min(data_chunk, n_data)
    # up to three (rows, cols) buffers while autograd tracks the block; small blocks never
    # come near a memory limit and skip the check (it reads /proc on every call)
    nbytes = x.element_size() * (3 * rows * cols + 2 * n_data * (values.shape[1] + 1))
    if nbytes > _BLOCK_CHECK_BYTES:
        check_memory(
            nbytes,
            what=f"velocity blocks of {rows} queries x {cols} data points",
            knob="lower query_chunk or data_chunk (memory is O(query_chunk * data_chunk))",
        )
    bias = -b * (centers * centers).sum(dim=1)
    if not hard:
        bias = bias + log_w
    alpha = float(a)
    track = torch.is_grad_enabled() and (
        x.requires_grad or centers.requires_grad or values.requires_grad
    )
    # a trailing column of ones makes one product accumulate both the weighted
    # values and the normaliser
    values1 = torch.cat([values, values.new_ones((n_data, 1))], dim=1)
    out = x.new_empty((n_query, values.shape[1]))
    lse = x.new_empty((n_query,))
    for r0 in range(0, n_query, query_chunk):
        xr = x[r0 : r0 + query_chunk]
        run_max = xr.new_full((xr.shape[0],), -math.inf)
        acc = xr.new_zeros((xr.shape[0], values1.shape[1]))
        for c0 in range(0, n_data, data_chunk):
            sl = slice(c0, c0 + data_chunk)
            logits = torch.addmm(bias[None, sl], xr, centers[sl].T, alpha=alpha)
            if hard:
                chunk_max, arg = logits.max(dim=1)
                better = chunk_max > run_max
                acc[better] = values1[c0 + arg[better]]
                run_max = torch.where(better, chunk_max, run_max)
                continue
            new_max = torch.maximum(run_max, logits.amax(dim=1))
            if track:
                p = torch.exp(logits - new_max[:, None])
            else:  # in place: one (query_chunk, data_chunk) buffer per block
                p = logits.sub_(new_max[:, None]).exp_()
            acc = acc * torch.exp(run_max - new_max)[:, None] + p @ values1[sl]
            run_max = new_max
        out[r0 : r0 + query_chunk] = acc[:, :-1] / acc[:, -1:]
        lse[r0 : r0 + query_chunk] = run_max + torch.log(acc[:, -1])
    return out, lse


def exact_plan(x: Any, y: Any) -> np.ndarray:
    """Exact OT coupling (squared Euclidean cost, uniform weights), an (n, m) NumPy array.

    :func:`ottokit.ot.plan`: POT's network simplex with an iteration limit of
    ``max(1e6, 50 n m)`` and a convergence check.
    """
    return np.asarray(ottokit_ot.plan(_as_numpy(x), _as_numpy(y)))


def w1_distance(x: Tensor, y: Tensor) -> float:
    """W1 between two uniform point clouds (n, d).

    In 1-D the closed form on sorted samples (:func:`ottokit.ot.w_1d`), otherwise
    exact OT with Euclidean cost (:func:`ottokit.ot.w1`, convergence checked).
    """
    xa, ya = _as_numpy(x), _as_numpy(y)
    if xa.shape[1] == 1:
        return float(ottokit_ot.w_1d(xa, ya, p=1))
    return float(ottokit_ot.w1(xa, ya))


def w2_squared(x: Tensor, y: Tensor) -> float:
    """W2^2 between two uniform point clouds (sorted quantiles in 1-D, exact OT otherwise)."""
    xa, ya = _as_numpy(x), _as_numpy(y)
    if xa.shape[1] == 1:
        return float(ottokit_ot.w_1d(xa, ya, p=2)) ** 2
    return float(ottokit_ot.emd(xa, ya, p=2).cost)


def _as_numpy(x: Any) -> np.ndarray:
    if isinstance(x, Tensor):
        return x.detach().cpu().double().numpy()
    return np.asarray(x, dtype=np.float64)

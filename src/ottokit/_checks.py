"""Validation at the public boundary: one checker per kind of argument, one message shape.

One exception type per kind of mistake:

* the wrong *type* -- a float or a string where an integer is needed, text or an
  arbitrary object where an array of numbers is needed, an object of the wrong
  class -- raises ``TypeError``;
* the right type with a bad *value* -- out of range, NaN or inf, the wrong shape, a
  ragged nested list, an unknown option, a covariance that is not positive definite
  -- raises ``ValueError``.

Every message names the argument and the value, says what is allowed and how to
fix it, e.g. ``n must be a positive integer, got 2.5 of type float; pass a whole
number``. String options are ``Literal[...]`` aliases and :func:`options` gives their
runtime tuple, so the allowed values are written once.
"""

from __future__ import annotations

import math
import numbers
import operator
import reprlib
import typing
from typing import Any

import numpy as np

__all__ = [
    "as_array",
    "as_covariance",
    "as_density",
    "as_vector",
    "check_instance",
    "check_int",
    "check_option",
    "check_real",
    "options",
]

MASS_RTOL = 1e-8

_repr = reprlib.Repr()
_repr.maxstring = 40
_repr.maxother = 60
_repr.maxlist = _repr.maxtuple = 6


def _show(value: Any) -> str:
    """A short repr of ``value`` for a message (arrays and long lists are abbreviated)."""
    if isinstance(value, np.ndarray):
        return np.array2string(value, threshold=6, edgeitems=2, precision=4)
    return _repr.repr(value)


def _requirement(kind: str, ge: Any, gt: Any, le: Any, lt: Any) -> str:
    """``"a positive integer"``, ``"a number in [0, 1)"`` and the like."""
    if le is None and lt is None and gt is None and ge in (0, 1):
        if kind == "integer":
            return "a positive integer" if ge == 1 else "a non-negative integer"
        if ge == 0:
            return "a non-negative number"
    if kind == "number" and ge is None and le is None and lt is None and gt == 0:
        return "a positive number"
    low = f">= {ge:g}" if ge is not None else f"> {gt:g}" if gt is not None else ""
    high = f"<= {le:g}" if le is not None else f"< {lt:g}" if lt is not None else ""
    article = "an" if kind == "integer" else "a"
    if low and high:
        left, right = ("[" if ge is not None else "("), ("]" if le is not None else ")")
        lo, hi = (ge if ge is not None else gt), (le if le is not None else lt)
        return f"{article} {kind} in {left}{lo:g}, {hi:g}{right}"
    return f"{article} {kind}" + (f" {low or high}" if low or high else "")


def _in_bounds(v: float, ge: Any, gt: Any, le: Any, lt: Any) -> bool:
    return not (
        (ge is not None and not v >= ge)
        or (gt is not None and not v > gt)
        or (le is not None and not v <= le)
        or (lt is not None and not v < lt)
    )


def _fix(name: str, example: Any, hint: str | None) -> str:
    if hint:
        return f"; {hint}"
    return "" if example is None else f" (e.g. {name}={example!r})"


def _wrong_type(name: str, value: Any, requirement: str, fix: str) -> TypeError:
    return TypeError(
        f"{name} must be {requirement}, got {_show(value)} of type {type(value).__name__}{fix}"
    )


def options(alias: Any) -> tuple[Any, ...]:
    """The allowed values of a ``Literal[...]`` alias, in order (``typing.get_args``)."""
    if typing.get_origin(alias) is not typing.Literal:
        raise TypeError(f"options() needs a Literal[...] alias, got {alias!r}")
    return typing.get_args(alias)


def check_option(value: Any, allowed: Any, name: str) -> Any:
    """``value`` if it is one of ``allowed`` (a ``Literal`` alias or an iterable).

    A value of another type than the options (e.g. a number where a name is
    expected) raises TypeError, an unknown name ValueError; both list the options.
    """
    choices = options(allowed) if typing.get_origin(allowed) is typing.Literal else tuple(allowed)
    listed = ", ".join(map(repr, choices))
    try:
        if value in choices:
            return value
    except TypeError:  # an unhashable or uncomparable value is not an option
        pass
    if not any(isinstance(value, type(c)) for c in choices):
        raise _wrong_type(name, value, f"one of {listed}", "")
    raise ValueError(f"unknown {name} {value!r}; allowed: {listed}")


def check_instance(value: Any, cls: type | tuple[type, ...], name: str, hint: str = "") -> Any:
    """``value`` if it is an instance of ``cls``, else TypeError naming ``name``."""
    if not isinstance(value, cls):
        classes = cls if isinstance(cls, tuple) else (cls,)
        wanted = " or ".join(_qualname(c) for c in classes)
        article = "an" if wanted[0] in "aeiou" else "a"
        raise TypeError(
            f"{name} must be {article} {wanted}, got {type(value).__name__}"
            + (f"; {hint}" if hint else "")
        )
    return value


def _qualname(cls: type) -> str:
    if cls.__module__ == "builtins":
        return cls.__qualname__
    public = ".".join(p for p in cls.__module__.split(".") if not p.startswith("_"))
    return f"{public}.{cls.__qualname__}"


def check_int(
    value: Any,
    name: str,
    *,
    ge: int | None = None,
    le: int | None = None,
    example: Any = None,
    hint: str | None = None,
) -> int:
    """``value`` as a Python int in ``[ge, le]``.

    Accepts ``int``, NumPy integers and 0-d integer arrays; a bool, a float (even
    ``3.0``), a string or any other object is a TypeError, an integer out of range a
    ValueError.
    """
    requirement = _requirement("integer", ge, None, le, None)
    if isinstance(value, bool | np.bool_):
        raise _wrong_type(name, value, requirement, _fix(name, example, hint))
    try:
        v = operator.index(value)
    except TypeError:
        if hint is None and isinstance(value, numbers.Real) and math.isfinite(value):
            if value == int(value):
                hint = f"pass {name}={int(value)}"
            else:
                hint = "pass a whole number" + ("" if example is None else f", e.g. {example!r}")
        raise _wrong_type(name, value, requirement, _fix(name, example, hint)) from None
    if not _in_bounds(v, ge, None, le, None):
        raise ValueError(f"{name} must be {requirement}, got {v}{_fix(name, example, hint)}")
    return v


def check_real(
    value: Any,
    name: str,
    *,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
    finite: bool = True,
    example: Any = None,
    hint: str | None = None,
) -> float:
    """``value`` as a Python float within the given bounds (finite unless ``finite=False``).

    Accepts Python and NumPy numbers and 0-d arrays or tensors; a bool, a string or
    any other object is a TypeError, NaN, an infinity or a number out of range a
    ValueError.
    """
    requirement = _requirement("number", ge, gt, le, lt)
    if isinstance(value, bool | np.bool_ | str | bytes):
        raise _wrong_type(name, value, requirement, _fix(name, example, hint))
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise _wrong_type(name, value, requirement, _fix(name, example, hint)) from None
    if math.isnan(v) or (finite and math.isinf(v)):
        raise ValueError(
            f"{name} must be {requirement}, got {v} (NaN and inf are not allowed)"
            + _fix(name, example, hint)
        )
    if not _in_bounds(v, ge, gt, le, lt):
        raise ValueError(f"{name} must be {requirement}, got {v:g}{_fix(name, example, hint)}")
    return v


def as_array(
    x: Any,
    name: str,
    *,
    ndim: int | None = None,
    finite: bool = True,
    dtype: type | None = np.float64,
) -> np.ndarray:
    """``x`` (an array-like or a tensor) as a NumPy array of ``dtype`` (None: as given).

    Text, ``None`` and other non-numeric objects are a TypeError; a ragged nested
    list, the wrong number of dimensions or (with ``finite``) NaN or inf a ValueError.
    """
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # a torch tensor, without importing torch
        x = x.detach().cpu().numpy()
    try:
        a = np.asarray(x)
    except ValueError:
        raise ValueError(
            f"{name} must be a rectangular array of numbers, got a ragged nested sequence "
            "(rows of different lengths); give every row the same length"
        ) from None
    if a.dtype == object:
        try:
            if any(e is None for e in a.flat):  # astype would turn None into NaN
                raise TypeError
            a = a.astype(np.float64)
        except (TypeError, ValueError):
            raise _wrong_type(name, x, "an array of real numbers", "") from None
    if a.dtype.kind not in "biuf":
        raise _wrong_type(name, x, "an array of real numbers", f" (dtype {a.dtype})")
    if dtype is not None:
        a = a.astype(dtype, copy=False)
    if ndim is not None and a.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimension(s), got shape {a.shape}")
    if finite and not np.all(np.isfinite(a)):
        k = np.unravel_index(int(np.flatnonzero(~np.isfinite(a))[0]), a.shape)
        at = f"[{', '.join(map(str, k))}]" if a.ndim else ""
        raise ValueError(f"{name} must be finite (no NaN or inf); {name}{at} = {a[k]}")
    return a


def as_vector(x: Any, n: int, name: str) -> np.ndarray:
    """``x`` as a finite float64 vector of length ``n`` (ValueError naming ``name``)."""
    a = as_array(x, name, finite=False)
    if a.ndim != 1 or a.shape[0] != n:
        raise ValueError(f"{name} must be a vector of length {n}, got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        k = int(np.flatnonzero(~np.isfinite(a))[0])
        raise ValueError(f"{name} must be finite; {name}[{k}] = {a[k]}")
    return a


def as_density(
    rho: Any,
    n: int,
    *,
    name: str = "rho",
    positive: bool = True,
    normalize: bool = False,
    check_mass: bool = True,
) -> np.ndarray:
    """Validate a probability vector on ``n`` nodes.

    ``positive=True`` rejects zeros (functionals with a logarithm need rho > 0).
    A total mass off 1 by more than 1e-8 (relative) is an error unless
    ``normalize=True``, which rescales it.
    """
    a = as_vector(rho, n, name)
    if np.any(a < 0):
        k = int(np.argmin(a))
        raise ValueError(f"{name} must be non-negative; {name}[{k}] = {a[k]:.3g}")
    if positive and np.any(a == 0):
        k = int(np.flatnonzero(a == 0)[0])
        raise ValueError(
            f"{name} must be strictly positive (a logarithm is taken); {name}[{k}] = 0. "
            "Add a small floor, e.g. rho + 1e-12, and renormalise."
        )
    total = float(a.sum())
    if total <= 0:
        raise ValueError(f"{name} has zero total mass")
    if normalize:
        return a / total
    if check_mass and abs(total - 1.0) > MASS_RTOL:
        raise ValueError(
            f"{name} must sum to 1 (got {total:.12g}); pass normalize=True to rescale it"
        )
    return a


def as_covariance(
    c: Any,
    name: str,
    dim: int | None = None,
    *,
    semidefinite: bool = False,
    sym_rtol: float = 1e-10,
) -> np.ndarray:
    """``c`` as a symmetric positive-definite float64 matrix (a scalar is a 1 x 1 variance).

    With ``semidefinite=True`` eigenvalues down to ``-1e-8`` times the largest entry
    pass (round-off in an estimated covariance). Asymmetry beyond ``sym_rtol`` times
    the largest entry, an eigenvalue at or below zero, or the wrong shape is a
    ValueError; the returned matrix is exactly symmetric.
    """
    a = as_array(c, name)
    if a.ndim == 0:
        a = a.reshape(1, 1)
    if a.ndim != 2 or a.shape[0] != a.shape[1] or (dim is not None and a.shape[0] != dim):
        want = f"({dim}, {dim})" if dim is not None else "square (d, d)"
        raise ValueError(f"{name} must be a {want} matrix (a covariance), got shape {a.shape}")
    scale = max(float(np.abs(a).max()), np.finfo(float).tiny)
    if np.abs(a - a.T).max() > sym_rtol * scale:
        raise ValueError(f"{name} must be symmetric; symmetrise it with ({name} + {name}.T) / 2")
    a = 0.5 * (a + a.T)
    smallest = float(np.linalg.eigvalsh(a)[0])
    if semidefinite and smallest < -1e-8 * scale:
        raise ValueError(
            f"{name} must be positive semi-definite; its smallest eigenvalue is {smallest:.3g}"
        )
    if not semidefinite and smallest <= 0:
        raise ValueError(
            f"{name} must be positive definite; its smallest eigenvalue is {smallest:.3g}"
        )
    return a

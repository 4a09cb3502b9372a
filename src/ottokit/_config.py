"""Typed dataclass configs: ``key=value`` overrides and TOML files.

Every experiment config is a dataclass whose field annotations (``int``, ``float``,
``bool``, ``str``, ``Literal[...]``, ``tuple[X, ...]`` / ``tuple[X, Y]`` of those, and
unions such as ``X | None``) say how a value is parsed. On the command line
(``--set key=value``) a value is text: booleans are ``true/false/1/0/yes/no``, tuples are
comma-separated (``1,2,3``), and ``none`` sets an optional field to ``None``.

A config file is flat TOML, one key per field, with no ``[config]`` table::

    n_nodes = 64
    t_final = 0.5
    method = "otto"
    sizes = [16, 32, 64]

TOML has no null, so ``config_to_toml`` leaves out ``None`` fields and
``config_from_toml`` keeps the base value of any key the file does not name.

A field declared with :func:`param` carries its meaning and its allowed range;
:func:`validate_config` checks every such field (type, finiteness, range, choice,
length, order) and then the config's own cross-field ``check()``, so one validation
serves ``--set``, ``--config``, presets and the Python API (configs deriving from
:class:`ValidatedConfig` run it on construction); :func:`check_config_memory` turns a
memory estimate into the same kind of error. :func:`describe_config` lists the fields
with their type, value, range and meaning.
"""

from __future__ import annotations

import dataclasses
import math
import re
import tomllib
import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

import tomli_w

from ottokit._memory import MemoryEstimateError, check_memory

__all__ = [
    "ConfigError",
    "FieldDoc",
    "Spec",
    "ValidatedConfig",
    "apply_overrides",
    "check_config_memory",
    "config_from_toml",
    "config_to_toml",
    "describe_config",
    "device_param",
    "param",
    "seed_param",
    "validate_config",
]

C = TypeVar("C")

_TRUE = frozenset({"true", "1", "yes"})
_FALSE = frozenset({"false", "0", "no"})


class ConfigError(ValueError):
    """A config key or value that does not fit the config dataclass.

    ``key`` names the offending field when there is one.
    """

    def __init__(self, message: str, *, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key

    @classmethod
    def for_key(cls, key: str, value: Any, requirement: str, example: Any = None) -> ConfigError:
        """``key = value: must be <requirement> (e.g. key=example)``, one line."""
        hint = "" if example is None else f" (e.g. {key}={_as_text(example)})"
        return cls(f"{key} = {_as_text(value)}: must be {requirement}{hint}", key=key)


@dataclass(frozen=True)
class Spec:
    """What a config field means and which values it allows.

    Bounds apply to a number, or to every item of a tuple. ``min_items`` and
    ``max_items`` bound a tuple's length (a tuple needs at least one item unless
    ``min_items=0``); ``distinct`` refuses repeated items and ``increasing`` asks for
    strictly increasing ones; ``pattern`` is a regular expression a string must match
    in full (``allowed`` says in words what it admits); ``finite`` refuses NaN and
    infinities; ``example`` is a valid value shown in error messages (the field's
    default when None).
    """

    doc: str
    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    min_items: int | None = None
    max_items: int | None = None
    pattern: str | None = None
    finite: bool = True
    example: Any = None
    allowed: str | None = None
    distinct: bool = False
    increasing: bool = False

    def bounds_text(self) -> str:
        """The numeric range as text, e.g. ``>= 1`` or ``in (0, 1]``; empty without bounds."""
        low = ("[", self.ge) if self.ge is not None else None
        low = ("(", self.gt) if low is None and self.gt is not None else low
        high = ("]", self.le) if self.le is not None else None
        high = (")", self.lt) if high is None and self.lt is not None else high
        if low and high:
            return f"in {low[0]}{_num(low[1])}, {_num(high[1])}{high[0]}"
        if low:
            return f"{'>=' if low[0] == '[' else '>'} {_num(low[1])}"
        if high:
            return f"{'<=' if high[0] == ']' else '<'} {_num(high[1])}"
        return ""


def param(
    default: Any = dataclasses.MISSING,
    *,
    doc: str,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
    min_items: int | None = None,
    max_items: int | None = None,
    pattern: str | None = None,
    finite: bool = True,
    example: Any = None,
    allowed: str | None = None,
    distinct: bool = False,
    increasing: bool = False,
) -> Any:
    """A dataclass field with a :class:`Spec`: its one-line meaning and its allowed values.

    Example::

        @dataclass
        class MyConfig(ValidatedConfig):
            n_nodes: int = param(500, doc="number of random points", ge=2)
    """
    spec = Spec(
        doc,
        ge=ge,
        gt=gt,
        le=le,
        lt=lt,
        min_items=min_items,
        max_items=max_items,
        pattern=pattern,
        finite=finite,
        example=example,
        allowed=allowed,
        distinct=distinct,
        increasing=increasing,
    )
    return dataclasses.field(default=default, metadata={"spec": spec})


def seed_param(default: int = 0) -> Any:
    """The ``seed`` field every experiment has: a non-negative integer."""
    return param(default, doc="random seed of the run (data, initialisation, sampling)", ge=0)


def device_param(default: str = "cpu") -> Any:
    """The ``device`` field every experiment has: ``cpu``, ``cuda`` or ``cuda:N``."""
    return param(
        default,
        doc="torch device the networks and tensors live on",
        pattern=r"cpu|cuda(:[0-9]+)?",
        allowed="cpu, cuda or cuda:N",
    )


class ValidatedConfig:
    """Mixin for config dataclasses: validate on construction (and on ``replace``).

    Subclasses may define ``check(self)`` for constraints between fields; it raises
    :class:`ConfigError` (``ConfigError.for_key``) naming the key.
    """

    def __post_init__(self) -> None:
        validate_config(self)

    def check(self) -> None:
        """Constraints between fields (none by default)."""


@dataclass(frozen=True)
class FieldDoc:
    """One config field as :func:`describe_config` shows it (``choices``: the values a
    ``Literal`` field, or each item of a tuple of them, may take)."""

    name: str
    type: str
    value: Any
    allowed: str
    doc: str
    choices: tuple[Any, ...] | None = None

    @property
    def value_text(self) -> str:
        """The value as ``--set`` spells it (tuples comma-separated, ``none``)."""
        return _as_text(self.value)


def check_config_memory(key: str, value: Any, nbytes: float, *, what: str, knob: str) -> None:
    """Refuse ``key = value`` when ``nbytes`` exceeds the available memory.

    For a config's ``check()``: the :class:`~ottokit._memory.MemoryEstimateError` of
    :func:`~ottokit._memory.check_memory` becomes a one-line :class:`ConfigError` naming
    the key, with the estimate, the available memory, ``knob`` and the override.
    """
    try:
        check_memory(nbytes, what=what, knob=knob)
    except MemoryEstimateError as exc:
        raise ConfigError(f"{key} = {_as_text(value)}: {exc}", key=key) from None


def validate_config(cfg: Any) -> Any:
    """Check every :func:`param` field of ``cfg``, then ``cfg.check()``; return ``cfg``.

    Raises :class:`ConfigError` naming the key, the value, what is allowed and an
    example. Fields without a :class:`Spec` are only checked for their type.
    """
    _require_instance(cfg)
    hints = _field_types(type(cfg))
    for f in dataclasses.fields(cfg):
        if not f.init:
            continue
        value, tp = getattr(cfg, f.name), hints[f.name]
        spec = f.metadata.get("spec")
        example = _example(f, spec)
        try:
            _from_value(tp, value)
        except _Mismatch:
            raise ConfigError.for_key(f.name, value, _describe(tp), example) from None
        if spec is not None and value is not None:
            problem = _spec_problem(spec, value, tp)
            if problem is not None:
                raise ConfigError.for_key(f.name, value, problem, example)
    check = getattr(cfg, "check", None)
    if callable(check):
        check()
    return cfg


def describe_config(cfg: Any) -> list[FieldDoc]:
    """Each init field of ``cfg``: name, type, current value, allowed values, meaning."""
    _require_instance(cfg)
    hints = _field_types(type(cfg))
    out = []
    for f in dataclasses.fields(cfg):
        if not f.init:
            continue
        spec = f.metadata.get("spec")
        tp = hints[f.name]
        out.append(
            FieldDoc(
                name=f.name,
                type=_describe(tp),
                value=getattr(cfg, f.name),
                allowed=_allowed_text(spec, tp),
                doc=spec.doc if spec is not None else "",
                choices=_choices(tp),
            )
        )
    return out


def _spec_problem(spec: Spec, value: Any, tp: Any) -> str | None:
    """What ``value`` violates in ``spec`` (None if nothing)."""
    if isinstance(value, tuple):
        for item in value:
            problem = _scalar_problem(spec, item)
            if problem is not None:
                return "a list whose items are each " + problem
        low = 1 if spec.min_items is None else spec.min_items
        if len(value) < low:
            return f"a list of at least {low} item{'s' if low != 1 else ''}"
        if spec.max_items is not None and len(value) > spec.max_items:
            return f"a list of at most {spec.max_items} items"
        if spec.increasing and any(not b > a for a, b in zip(value, value[1:], strict=False)):
            return "a strictly increasing list"
        if spec.distinct and len(set(value)) < len(value):
            return "a list without repeated items"
        return None
    return _scalar_problem(spec, value)


def _scalar_problem(spec: Spec, value: Any) -> str | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        if spec.finite and not math.isfinite(value):
            rng = spec.bounds_text()
            return "a finite number" + (f" {rng}" if rng else "")
        if (
            (spec.ge is not None and not value >= spec.ge)
            or (spec.gt is not None and not value > spec.gt)
            or (spec.le is not None and not value <= spec.le)
            or (spec.lt is not None and not value < spec.lt)
        ):
            kind = "an integer" if isinstance(value, int) else "a number"
            return f"{kind} {spec.bounds_text()}"
    if isinstance(value, str) and spec.pattern is not None:
        if re.fullmatch(spec.pattern, value) is None:
            return spec.allowed or f"a string matching {spec.pattern!r}"
    return None


def _allowed_text(spec: Spec | None, tp: Any) -> str:
    parts = []
    choices = _choices(tp)
    if choices is not None:
        parts.append(", ".join(str(a) for a in choices))
    if spec is not None:
        if spec.bounds_text():
            parts.append(spec.bounds_text())
        if spec.pattern is not None:
            parts.append(spec.allowed or spec.pattern)
        if spec.min_items not in (None, 1) or spec.max_items is not None:
            parts.append(f"{spec.min_items or 0}..{spec.max_items or ''} items")
        if spec.increasing:
            parts.append("increasing")
        elif spec.distinct:
            parts.append("no repeats")
    return "; ".join(parts)


def _choices(tp: Any) -> tuple[Any, ...] | None:
    """The choices of a ``Literal`` or of the items of a ``tuple[Literal[...], ...]``."""
    if typing.get_origin(tp) is Literal:
        return typing.get_args(tp)
    args = typing.get_args(tp)
    if typing.get_origin(tp) is tuple and len(args) == 2 and args[1] is Ellipsis:
        if typing.get_origin(args[0]) is Literal:
            return typing.get_args(args[0])
    return None


def _example(f: dataclasses.Field[Any], spec: Spec | None) -> Any:
    if spec is not None and spec.example is not None:
        return spec.example
    if f.default is not dataclasses.MISSING and f.default is not None:
        return f.default
    return None


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e15 else f"{x:g}"


def _as_text(value: Any) -> str:
    """A value as the command line would spell it (tuples comma-separated)."""
    if isinstance(value, tuple | list):
        return ",".join(_as_text(v) for v in value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "none"
    return str(value)


class _Mismatch(Exception):
    """Internal: a value does not fit an annotation."""


def apply_overrides(cfg: C, overrides: Sequence[str]) -> C:
    """Return a copy of ``cfg`` with each ``key=value`` in ``overrides`` applied.

    Values are parsed from text according to the field's annotation; the last
    override of a key wins. Raises :class:`ConfigError` on an unknown key or a
    value of the wrong type, e.g. ``--set n_nodes: expected int, got 'abc'``.
    """
    hints = _field_types(type(_require_instance(cfg)))
    changes: dict[str, Any] = {}
    for item in overrides:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"--set expects key=value, got {item!r}")
        tp = _lookup(hints, key, "--set")
        try:
            changes[key] = _from_text(tp, text.strip())
        except _Mismatch:
            raise ConfigError(
                f"--set {key}: expected {_describe(tp)}, got {text.strip()!r}"
            ) from None
    return dataclasses.replace(cfg, **changes)  # type: ignore[type-var]


def config_to_toml(cfg: Any) -> str:
    """Render ``cfg`` as flat TOML: tuples become arrays, ``None`` fields are left out."""
    _require_instance(cfg)
    table: dict[str, Any] = {}
    for f in dataclasses.fields(cfg):
        if not f.init:
            continue
        value = getattr(cfg, f.name)
        if value is not None:
            table[f.name] = _to_toml_value(value)
    try:
        return tomli_w.dumps(table)
    except TypeError as exc:
        raise ConfigError(f"cannot write {type(cfg).__name__} as TOML: {exc}") from None


def config_from_toml(cls: type[C], path_or_text: Path | str, base: C | None = None) -> C:
    """Read a flat TOML config for ``cls``; a :class:`~pathlib.Path` is read as a file,
    a ``str`` is parsed as TOML text.

    Keys the file names replace those of ``base``; without ``base`` every field that
    has no default must be given. Unknown keys and values of the wrong type raise
    :class:`ConfigError`.
    """
    if not dataclasses.is_dataclass(cls) or not isinstance(cls, type):
        raise TypeError(f"expected a dataclass type, got {cls!r}")
    if isinstance(path_or_text, Path):
        origin = f"config file {str(path_or_text)!r}:"
        if not path_or_text.is_file():
            raise ConfigError(f"config file not found: {path_or_text}")
        text = path_or_text.read_text(encoding="utf-8")
    else:
        origin = "config:"
        text = path_or_text
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{origin} invalid TOML: {exc}") from None

    hints = _field_types(cls)
    values: dict[str, Any] = {}
    for key, value in raw.items():
        tp = _lookup(hints, key, origin)
        try:
            values[key] = _from_value(tp, value)
        except _Mismatch:
            raise ConfigError(f"{origin} {key}: expected {_describe(tp)}, got {value!r}") from None

    if base is not None:
        if not isinstance(base, cls):
            raise TypeError(f"base must be a {cls.__name__}, got {type(base).__name__}")
        return dataclasses.replace(base, **values)  # type: ignore[type-var]
    missing = [
        f.name
        for f in dataclasses.fields(cls)
        if f.init
        and f.name not in values
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ConfigError(f"{origin} missing keys: {', '.join(missing)}")
    return cls(**values)


def _require_instance(cfg: Any) -> Any:
    if not dataclasses.is_dataclass(cfg) or isinstance(cfg, type):
        raise TypeError(f"expected a dataclass instance, got {cfg!r}")
    return cfg


def _field_types(cls: type) -> dict[str, Any]:
    """Resolved annotations of the init fields of ``cls``, in declaration order."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls) if f.init}


def _lookup(hints: dict[str, Any], key: str, origin: str) -> Any:
    if key not in hints:
        raise ConfigError(f"{origin} unknown key {key!r}; allowed: {', '.join(hints)}")
    return hints[key]


def _describe(tp: Any) -> str:
    """Human-readable name of an annotation, for error messages."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        return " or ".join("none" if a is type(None) else _describe(a) for a in args)
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            if typing.get_origin(args[0]) is Literal:
                choices = ", ".join(repr(a) for a in typing.get_args(args[0]))
                return f"comma-separated values from {choices}"
            return f"comma-separated {_describe(args[0])}s"
        return f"{len(args)} comma-separated values ({', '.join(_describe(a) for a in args)})"
    if tp is bool:
        return "bool (true/false)"
    return getattr(tp, "__name__", str(tp))


def _from_text(tp: Any, text: str) -> Any:
    """Parse command-line text according to annotation ``tp``."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is Literal:
        for allowed in args:
            try:
                parsed = allowed if text == str(allowed) else _from_text(type(allowed), text)
            except _Mismatch:
                continue
            if type(parsed) is type(allowed) and parsed == allowed:
                return allowed
        raise _Mismatch
    if origin in (typing.Union, types.UnionType):
        if type(None) in args and text.lower() == "none":
            return None
        return _first_arm(args, text, _from_text)
    if origin is tuple:
        inner = text
        if len(inner) >= 2 and (inner[0], inner[-1]) in {("(", ")"), ("[", "]")}:
            inner = inner[1:-1]
        items = [s.strip() for s in inner.split(",")] if inner.strip() else []
        if items and items[-1] == "":
            items.pop()  # allow a trailing comma, as in "1,"
        return tuple(_each(args, items, _from_text))
    if tp is bool:
        lowered = text.lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise _Mismatch
    if tp is int or tp is float:
        try:
            return tp(text)
        except ValueError:
            raise _Mismatch from None
    if tp is str:
        return text
    raise ConfigError(f"unsupported config annotation {tp!r}")


def _from_value(tp: Any, value: Any) -> Any:
    """Check (and normalise) a TOML-native value against annotation ``tp``."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is Literal:
        for allowed in args:
            if type(value) is type(allowed) and value == allowed:
                return allowed
        raise _Mismatch
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        return _first_arm(args, value, _from_value)
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise _Mismatch
        return tuple(_each(args, list(value), _from_value))
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise _Mismatch
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise _Mismatch
    if tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        raise _Mismatch
    if tp is str:
        if isinstance(value, str):
            return value
        raise _Mismatch
    raise ConfigError(f"unsupported config annotation {tp!r}")


def _first_arm(args: tuple[Any, ...], x: Any, convert: Any) -> Any:
    """``x`` converted by the first arm of a union (``None`` aside) that accepts it."""
    for arm in args:
        if arm is type(None):
            continue
        try:
            return convert(arm, x)
        except _Mismatch:
            continue
    raise _Mismatch


def _each(args: tuple[Any, ...], items: list[Any], convert: Any) -> list[Any]:
    """Convert tuple items for ``tuple[X, ...]`` or fixed-length ``tuple[X, Y]``."""
    if len(args) == 2 and args[1] is Ellipsis:
        return [convert(args[0], item) for item in items]
    if len(items) != len(args):
        raise _Mismatch
    return [convert(a, item) for a, item in zip(args, items, strict=True)]


def _to_toml_value(value: Any) -> Any:
    if isinstance(value, tuple | list):
        return [_to_toml_value(v) for v in value]
    return value

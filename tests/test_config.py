"""Config overrides (``key=value``) and flat TOML files for typed dataclass configs."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest

from ottokit._config import (
    ConfigError,
    ValidatedConfig,
    apply_overrides,
    check_config_memory,
    config_from_toml,
    config_to_toml,
    describe_config,
    device_param,
    param,
    seed_param,
    validate_config,
)


@dataclass(frozen=True)
class Cfg:
    n_nodes: int = 8
    t_final: float = 0.5
    implicit: bool = False
    name: str = "ring"
    method: Literal["otto", "linear"] = "otto"
    times: tuple[float, ...] = (0.1, 0.2)
    sizes: tuple[int, ...] = (4, 8)
    shape: tuple[int, int] = (2, 3)
    max_steps: int | None = None
    tol: float | None = 1e-6
    seed: int = 0
    device: str = "cpu"


@dataclass
class Required:
    n: int
    h: float = 1.0
    seen: list[int] = field(default_factory=list, init=False)


@pytest.mark.parametrize(
    ("item", "key", "expected"),
    [
        ("n_nodes=64", "n_nodes", 64),
        ("n_nodes=-3", "n_nodes", -3),
        ("t_final=2", "t_final", 2.0),
        ("t_final=1e-3", "t_final", 1e-3),
        ("implicit=true", "implicit", True),
        ("implicit=YES", "implicit", True),
        ("implicit=1", "implicit", True),
        ("implicit=false", "implicit", False),
        ("implicit=no", "implicit", False),
        ("implicit=0", "implicit", False),
        ("name=grid 2d", "name", "grid 2d"),
        ("name=a=b", "name", "a=b"),
        ("method=linear", "method", "linear"),
        ("times=0.5,1,2.5", "times", (0.5, 1.0, 2.5)),
        ("times=(0.5, 1)", "times", (0.5, 1.0)),
        ("times=", "times", ()),
        ("sizes=1,2,3", "sizes", (1, 2, 3)),
        ("sizes=7", "sizes", (7,)),
        ("shape=4,5", "shape", (4, 5)),
        ("max_steps=100", "max_steps", 100),
        ("max_steps=none", "max_steps", None),
        ("tol=None", "tol", None),
        ("tol=0.25", "tol", 0.25),
    ],
)
def test_override_parses_each_type(item: str, key: str, expected: object) -> None:
    cfg = apply_overrides(Cfg(), [item])
    value = getattr(cfg, key)
    assert value == expected
    assert type(value) is type(expected)


def test_overrides_return_new_config_and_last_wins() -> None:
    base = Cfg()
    cfg = apply_overrides(base, ["n_nodes=5", "n_nodes=6", "method=linear"])
    assert (cfg.n_nodes, cfg.method) == (6, "linear")
    assert (base.n_nodes, base.method) == (8, "otto")
    assert apply_overrides(base, []) == base


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ("n_nodes=abc", "--set n_nodes: expected int, got 'abc'"),
        ("n_nodes=1.5", "--set n_nodes: expected int, got '1.5'"),
        ("t_final=fast", "--set t_final: expected float, got 'fast'"),
        ("implicit=maybe", "--set implicit: expected bool (true/false), got 'maybe'"),
        ("method=euler", "--set method: expected one of 'otto', 'linear', got 'euler'"),
        ("sizes=1,x", "--set sizes: expected comma-separated ints, got '1,x'"),
        ("times=1,,2", "--set times: expected comma-separated floats, got '1,,2'"),
        ("shape=1,2,3", "--set shape: expected 2 comma-separated values (int, int), got '1,2,3'"),
        ("max_steps=lots", "--set max_steps: expected int or none, got 'lots'"),
        ("n_nodes", "--set expects key=value, got 'n_nodes'"),
        ("=3", "--set expects key=value, got '=3'"),
    ],
)
def test_override_errors_say_what_was_expected(item: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        apply_overrides(Cfg(), [item])
    assert str(info.value) == message


def test_unknown_key_lists_allowed_keys() -> None:
    with pytest.raises(ConfigError) as info:
        apply_overrides(Cfg(), ["n_node=3"])
    msg = str(info.value)
    assert "unknown key 'n_node'" in msg
    assert "allowed: n_nodes, t_final, implicit, name, method, times" in msg


def test_config_error_is_a_value_error() -> None:
    assert issubclass(ConfigError, ValueError)


def test_overrides_need_a_dataclass_instance() -> None:
    with pytest.raises(TypeError):
        apply_overrides(Cfg, ["n_nodes=3"])


def test_toml_round_trip() -> None:
    cfg = Cfg(
        n_nodes=3,
        t_final=2.0,
        implicit=True,
        name="torus",
        method="linear",
        times=(1.0, 2.5),
        sizes=(1, 2),
        shape=(7, 9),
        max_steps=12,
        tol=None,
        seed=4,
        device="cuda",
    )
    text = config_to_toml(cfg)
    table = tomllib.loads(text)
    assert table["times"] == [1.0, 2.5]  # tuples are written as arrays
    assert "tol" not in table  # None is left out
    assert not any(line.startswith("[") for line in text.splitlines())  # flat, no tables
    back = config_from_toml(Cfg, text, base=Cfg())
    assert back == Cfg(**{**cfg.__dict__, "tol": Cfg().tol})
    assert config_from_toml(Cfg, text) == back


def test_toml_file_overrides_only_the_keys_it_names(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('n_nodes = 32\nt_final = 3\nsizes = [5, 6]\nmethod = "linear"\n')
    base = Cfg(name="base", seed=9)
    cfg = config_from_toml(Cfg, path, base=base)
    assert (cfg.n_nodes, cfg.sizes, cfg.method) == (32, (5, 6), "linear")
    assert cfg.t_final == 3.0 and type(cfg.t_final) is float  # TOML int accepted for float
    assert (cfg.name, cfg.seed) == ("base", 9)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("n_nodes = 'abc'", "config: n_nodes: expected int, got 'abc'"),
        ("n_nodes = 2.0", "config: n_nodes: expected int, got 2.0"),
        ("n_nodes = true", "config: n_nodes: expected int, got True"),
        ("implicit = 1", "config: implicit: expected bool (true/false), got 1"),
        ("method = 'euler'", "config: method: expected one of 'otto', 'linear', got 'euler'"),
        ("sizes = [1, 2.5]", "config: sizes: expected comma-separated ints, got [1, 2.5]"),
        ("sizes = 3", "config: sizes: expected comma-separated ints, got 3"),
    ],
)
def test_toml_values_are_type_checked(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        config_from_toml(Cfg, text, base=Cfg())
    assert str(info.value) == message


def test_toml_unknown_key_and_bad_syntax(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"unknown key 'nodes'; allowed: n_nodes"):
        config_from_toml(Cfg, "nodes = 3")
    with pytest.raises(ConfigError, match="invalid TOML"):
        config_from_toml(Cfg, "n_nodes = = 3")
    bad = tmp_path / "bad.toml"
    bad.write_text("n_nodes = 'x'\n")
    with pytest.raises(ConfigError, match=r"bad\.toml'?: n_nodes: expected int"):
        config_from_toml(Cfg, bad)


def test_toml_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        config_from_toml(Cfg, tmp_path / "nope.toml")


def test_toml_without_base_needs_required_fields() -> None:
    with pytest.raises(ConfigError, match="missing keys: n"):
        config_from_toml(Required, "h = 2.0")
    cfg = config_from_toml(Required, "n = 3")
    assert (cfg.n, cfg.h) == (3, 1.0)
    assert "seen" not in config_to_toml(cfg)  # init=False fields are not config


@dataclass
class Ranged(ValidatedConfig):
    n: int = param(5, doc="nodes", ge=2)
    r: float = param(0.1, doc="radius", gt=0, le=2)
    eps: tuple[float, ...] = param((0.1, 0.01), doc="sizes", gt=0, min_items=2)
    method: Literal["a", "b"] = param("a", doc="method")
    seed: int = seed_param()
    device: str = device_param()

    def check(self) -> None:
        if self.n > 100 and self.r > 1:
            raise ConfigError.for_key("r", self.r, "<= 1 when n > 100", 0.1)


@pytest.mark.parametrize(
    ("changes", "key", "fragment"),
    [
        ({"n": 1}, "n", "n = 1: must be an integer >= 2 (e.g. n=5)"),
        ({"r": float("nan")}, "r", "a finite number in (0, 2]"),
        ({"r": float("inf")}, "r", "a finite number"),
        ({"r": 0.0}, "r", "in (0, 2]"),
        ({"r": 2.5}, "r", "in (0, 2]"),
        ({"eps": (0.1,)}, "eps", "at least 2 items"),
        ({"eps": (0.1, -1.0)}, "eps", "items are each a number > 0"),
        ({"seed": -1}, "seed", ">= 0"),
        ({"device": "banana"}, "device", "cpu, cuda or cuda:N"),
        ({"n": 2.5}, "n", "must be int"),
        ({"n": True}, "n", "must be int"),
        ({"method": "c"}, "method", "one of 'a', 'b'"),
        ({"n": 200, "r": 1.5}, "r", "<= 1 when n > 100"),
    ],
)
def test_validated_config_refuses_with_key_value_range_and_example(
    changes: dict, key: str, fragment: str
) -> None:
    with pytest.raises(ConfigError) as info:
        Ranged(**changes)
    assert info.value.key == key
    assert fragment in str(info.value)
    assert "\n" not in str(info.value)


def test_validation_serves_overrides_and_toml_alike() -> None:
    with pytest.raises(ConfigError, match="n = 0"):
        apply_overrides(Ranged(), ["n=0"])
    with pytest.raises(ConfigError, match="r = -1"):
        config_from_toml(Ranged, "r = -1.0\n", base=Ranged())
    ok = apply_overrides(Ranged(), ["n=200", "r=0.5", "device=cuda:1"])
    assert (ok.n, ok.r, ok.device) == (200, 0.5, "cuda:1")


def test_validate_config_sees_mutation_after_construction() -> None:
    cfg = Ranged()
    cfg.n = 0
    with pytest.raises(ConfigError, match="n = 0"):
        validate_config(cfg)


def test_describe_config_lists_type_value_range_and_meaning() -> None:
    rows = {d.name: d for d in describe_config(Ranged(n=7))}
    assert list(rows) == ["n", "r", "eps", "method", "seed", "device"]
    assert (rows["n"].value, rows["n"].allowed, rows["n"].doc) == (7, ">= 2", "nodes")
    assert rows["r"].allowed == "in (0, 2]"
    assert rows["method"].allowed == "a, b"
    assert rows["device"].allowed == "cpu, cuda or cuda:N"


@dataclass
class Ordered(ValidatedConfig):
    sizes: tuple[int, ...] = param((2, 4), doc="sizes", ge=1, increasing=True)
    names: tuple[Literal["a", "b", "c"], ...] = param(("a",), doc="names", distinct=True)
    empty_ok: tuple[float, ...] = param((), doc="may be empty", gt=0, min_items=0)


@pytest.mark.parametrize(
    ("changes", "key", "fragment"),
    [
        ({"sizes": (4, 2)}, "sizes", "sizes = 4,2: must be a strictly increasing list"),
        ({"sizes": (2, 2)}, "sizes", "must be a strictly increasing list"),
        ({"sizes": (0, 2)}, "sizes", "items are each an integer >= 1"),
        ({"names": ("a", "a")}, "names", "names = a,a: must be a list without repeated items"),
        ({"names": ("d",)}, "names", "must be comma-separated values from 'a', 'b', 'c'"),
        ({"empty_ok": (-1.0,)}, "empty_ok", "items are each a number > 0"),
    ],
)
def test_order_repeats_and_choices_of_lists(changes: dict, key: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        Ordered(**changes)
    assert info.value.key == key
    assert fragment in str(info.value)
    assert Ordered(sizes=(1, 5, 9), names=("c", "a"), empty_ok=()).names == ("c", "a")


def test_item_problems_are_named_before_the_length() -> None:
    with pytest.raises(ConfigError, match=r"eps = -1\.0: must be a list whose items are each"):
        Ranged(eps=(-1.0,))


def test_describe_config_lists_choices_and_the_command_line_spelling() -> None:
    rows = {d.name: d for d in describe_config(Ordered(names=("b", "c")))}
    assert rows["names"].choices == ("a", "b", "c")
    assert rows["names"].allowed == "a, b, c; no repeats"
    assert rows["names"].value_text == "b,c"
    assert rows["sizes"].allowed == ">= 1; increasing" and rows["sizes"].choices is None
    assert rows["empty_ok"].value_text == ""


def test_memory_estimates_become_config_errors_naming_the_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTTOKIT_MEMORY_LIMIT", "1G")
    check_config_memory("n", 10, 2**29, what="x", knob="lower n")
    with pytest.raises(ConfigError) as info:
        check_config_memory("n", 10, 2**31, what="the array", knob="lower n")
    assert info.value.key == "n"
    assert str(info.value) == (
        "n = 10: the array needs about 2.0 GiB but 1.0 GiB is available; lower n "
        "(or set OTTOKIT_MEMORY_LIMIT=off to try anyway)"
    )

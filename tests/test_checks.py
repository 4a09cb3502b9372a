"""The boundary checkers: one exception type per kind of mistake, messages that name it."""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import pytest
import torch

from ottokit._checks import (
    as_array,
    as_covariance,
    check_instance,
    check_int,
    check_option,
    check_real,
    options,
)

Colour = Literal["red", "green"]


@pytest.mark.parametrize("value", [3, np.int64(3), np.array(3), torch.tensor(3)])
def test_check_int_accepts_integers_of_any_kind(value):
    out = check_int(value, "n", ge=1)
    assert out == 3 and type(out) is int


@pytest.mark.parametrize("value", [2.5, 3.0, "3", None, True, np.bool_(True), [3]])
def test_check_int_refuses_non_integers_with_a_type_error(value):
    with pytest.raises(TypeError, match=r"^n must be a positive integer, got .* of type"):
        check_int(value, "n", ge=1)


def test_check_int_suggests_the_integer_a_whole_float_means():
    with pytest.raises(TypeError, match=r"got 3\.0 of type float; pass n=3$"):
        check_int(3.0, "n", ge=1)


@pytest.mark.parametrize(
    ("kwargs", "value", "message"),
    [
        ({"ge": 1}, 0, "max_steps must be a positive integer, got 0"),
        ({"ge": 0}, -1, "max_steps must be a non-negative integer, got -1"),
        ({"ge": 2}, 1, "max_steps must be an integer >= 2, got 1"),
        ({"ge": 1, "le": 4}, 5, r"max_steps must be an integer in \[1, 4\], got 5"),
        ({"ge": 1, "example": 100}, 0, r"got 0 \(e\.g\. max_steps=100\)$"),
    ],
)
def test_check_int_range_errors_say_what_is_allowed(kwargs, value, message):
    with pytest.raises(ValueError, match=message):
        check_int(value, "max_steps", **kwargs)


@pytest.mark.parametrize(
    "value", [2, 2.5, np.float32(2.5), np.array(2.5), torch.tensor(2.5, dtype=torch.float64)]
)
def test_check_real_accepts_numbers_of_any_kind(value):
    out = check_real(value, "eps", gt=0)
    assert out == float(value) and type(out) is float


@pytest.mark.parametrize("value", ["0.1", b"1", None, True, [0.1], np.ones(2), object()])
def test_check_real_refuses_non_numbers_with_a_type_error(value):
    with pytest.raises(TypeError, match=r"^eps must be a positive number, got .* of type"):
        check_real(value, "eps", gt=0)


@pytest.mark.parametrize(
    ("kwargs", "value", "message"),
    [
        ({"gt": 0}, math.nan, r"tol must be a positive number, got nan \(NaN and inf"),
        ({"gt": 0}, math.inf, r"tol must be a positive number, got inf \(NaN and inf"),
        ({"gt": 0}, 0.0, "tol must be a positive number, got 0"),
        ({"ge": 0}, -1e-3, "tol must be a non-negative number, got -0.001"),
        ({"gt": 0, "lt": 1}, 1.0, r"tol must be a number in \(0, 1\), got 1"),
        ({"ge": 1}, 0.5, "tol must be a number >= 1, got 0.5"),
        ({"gt": 0, "hint": "try 1e-9"}, -1.0, "got -1; try 1e-9$"),
    ],
)
def test_check_real_value_errors_say_what_is_allowed(kwargs, value, message):
    with pytest.raises(ValueError, match=message):
        check_real(value, "tol", **kwargs)


def test_check_real_admits_infinity_only_when_asked():
    assert check_real(math.inf, "t", gt=0, finite=False) == math.inf
    with pytest.raises(ValueError, match="NaN"):
        check_real(math.nan, "t", finite=False)


def test_options_come_from_the_literal_alias():
    assert options(Colour) == ("red", "green")
    with pytest.raises(TypeError, match="Literal"):
        options(("red", "green"))


def test_check_option_with_an_alias_or_a_tuple():
    assert check_option("red", Colour, "colour") == "red"
    assert check_option("green", ("red", "green"), "colour") == "green"
    with pytest.raises(ValueError, match=r"^unknown colour 'blue'; allowed: 'red', 'green'$"):
        check_option("blue", Colour, "colour")
    for wrong in (3, None, ["red"], {"red": 1}):
        with pytest.raises(TypeError, match=r"^colour must be one of 'red', 'green', got"):
            check_option(wrong, Colour, "colour")


def test_check_instance_names_the_argument_and_the_public_class():
    from ottokit.graph import Graph

    with pytest.raises(TypeError, match=r"^g must be an ottokit\.graph\.Graph, got str; see x$"):
        check_instance("g", Graph, "g", hint="see x")
    with pytest.raises(TypeError, match=r"^n must be an int or float, got str$"):
        check_instance("1", (int, float), "n")
    assert check_instance(3, int, "n") == 3


@pytest.mark.parametrize(
    ("value", "error", "message"),
    [
        ("abc", TypeError, r"x must be an array of real numbers, got 'abc' of type str"),
        (None, TypeError, "x must be an array of real numbers, got None"),
        ([1.0, None], TypeError, "x must be an array of real numbers"),
        ({"a": 1}, TypeError, "x must be an array of real numbers"),
        ([1 + 2j], TypeError, "dtype complex128"),
        ([[0.0, 1.0], [2.0]], ValueError, "x must be a rectangular array .* ragged"),
        ([0.0, math.nan], ValueError, r"x must be finite \(no NaN or inf\); x\[1\] = nan"),
        ([[0.0], [math.inf]], ValueError, r"x\[1, 0\] = inf"),
    ],
)
def test_as_array_refuses_each_kind_of_mistake(value, error, message):
    with pytest.raises(error, match=message):
        as_array(value, "x")


def test_as_array_converts_tensors_and_keeps_integer_dtypes_on_request():
    t = torch.arange(4.0, requires_grad=True)
    np.testing.assert_array_equal(as_array(t, "x"), [0.0, 1.0, 2.0, 3.0])
    assert as_array([1, 2], "e", dtype=None).dtype.kind == "i"
    assert as_array([1, 2], "e").dtype == np.float64
    with pytest.raises(ValueError, match="x must have 2 dimension"):
        as_array([1.0], "x", ndim=2)


def test_as_covariance_checks_shape_symmetry_and_definiteness():
    c = np.array([[2.0, 0.5], [0.5, 1.0]])
    np.testing.assert_array_equal(as_covariance(c, "C"), c)
    np.testing.assert_array_equal(as_covariance(4.0, "C"), [[4.0]])
    with pytest.raises(ValueError, match=r"C must be a \(3, 3\) matrix \(a covariance\)"):
        as_covariance(c, "C", 3)
    with pytest.raises(ValueError, match="C must be symmetric"):
        as_covariance([[1.0, 0.5], [0.0, 1.0]], "C")
    with pytest.raises(ValueError, match="C must be positive definite; .* -1"):
        as_covariance(-np.eye(2), "C")
    singular = np.array([[1.0, 1.0], [1.0, 1.0]])
    with pytest.raises(ValueError, match="C must be positive definite"):
        as_covariance(singular, "C")
    np.testing.assert_array_equal(as_covariance(singular, "C", semidefinite=True), singular)
    with pytest.raises(ValueError, match="C must be positive semi-definite"):
        as_covariance(-np.eye(2), "C", semidefinite=True)

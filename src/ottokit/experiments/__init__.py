"""Experiments, one module per seed experiment; importing this package registers them all."""

from ottokit.experiments import graph_heat, graph_inverse, graph_scale  # noqa: F401  (register)
from ottokit.experiments._registry import Experiment, all_experiments, get, names, register

__all__ = ["Experiment", "all_experiments", "get", "names", "register"]

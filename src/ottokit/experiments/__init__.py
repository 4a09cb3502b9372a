"""Experiments, one module per seed experiment; importing this package registers them all."""

from ottokit.experiments._registry import Experiment, all_experiments, get, names, register

__all__ = ["Experiment", "all_experiments", "get", "names", "register"]

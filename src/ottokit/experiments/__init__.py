"""Experiments, one module (or package, one module per study) per seed experiment.

Importing this package imports every public module and package in it, and each
registers its :class:`Experiment`; a new experiment is one new module here.
"""

import importlib
import pkgutil

from ottokit.experiments._registry import Experiment, all_experiments, get, names, register

for _module in pkgutil.iter_modules(__path__):
    if not _module.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["Experiment", "all_experiments", "get", "names", "register"]

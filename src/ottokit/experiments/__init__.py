"""Experiments, one module (or package, one module per study) per seed experiment.

Importing this package imports every public module and package in it, and each
registers its :class:`Experiment`; a new experiment is one new module here. The registry,
the runner and ``reproduce`` are the package's public face to the command line.
"""

import importlib
import pkgutil

from ottokit.experiments._registry import (
    Experiment,
    all_experiments,
    distributed_names,
    get,
    names,
    register,
)
from ottokit.experiments._reproduce import available_cores, reproduce
from ottokit.experiments._runner import (
    PRESETS,
    RunOutputError,
    rebuild_report,
    resume_run,
    run_experiment,
    select_experiments,
)

for _module in pkgutil.iter_modules(__path__):
    if not _module.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_module.name}")

__all__ = [
    "PRESETS",
    "Experiment",
    "RunOutputError",
    "all_experiments",
    "available_cores",
    "distributed_names",
    "get",
    "names",
    "rebuild_report",
    "register",
    "reproduce",
    "resume_run",
    "run_experiment",
    "select_experiments",
]

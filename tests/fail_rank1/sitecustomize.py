"""Put on PYTHONPATH by tests/test_cli_distributed.py: in the process of rank 1 of a
torchrun job, the experiment raises, so the test sees how a failing rank ends the job."""

import os

if os.environ.get("RANK") == "1":
    from ottokit.experiments import _runner

    def _fail(exp, config):
        raise RuntimeError("rank 1 failed on purpose")

    _runner._run_as_worker = _fail

"""Progress bars for experiments (the implementation lives in :mod:`ottokit._progress`,
below the methods layer, so that training loops can use it too)."""

from ottokit._progress import ProgressBar, is_quiet, progress_bar, set_quiet

__all__ = ["ProgressBar", "is_quiet", "progress_bar", "set_quiet"]

"""Progress bars for experiments: :mod:`ottokit.progress` under its former name."""

from ottokit.progress import ProgressBar, is_quiet, progress_bar, set_quiet

__all__ = ["ProgressBar", "is_quiet", "progress_bar", "set_quiet"]

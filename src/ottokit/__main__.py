"""``python -m ottokit`` (and ``torchrun -m ottokit``) run the command line."""

from ottokit.cli import main

main()

"""`python -m churnmodel` runs the command line."""

from churnmodel.cli import run

run()

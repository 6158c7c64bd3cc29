"""``python -m secondorder.experiments <experiment> --profile <profile>`` (see :mod:`.reproduce`)."""

from secondorder.experiments.reproduce import cli

cli()

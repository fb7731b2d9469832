"""The ``eventblocks`` command line, one module per command group."""

from blocks._cli.app import main

__all__ = ["main"]

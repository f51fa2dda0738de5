"""The ``cnn-desktop`` command: one module per group of subcommands, the parser in ``main``."""

from cnn_desktop.cli.main import main

__all__ = ["main"]

"""The ``ganaug`` command: a thin layer over the public API, its options read from the config dataclasses."""

from ganaug.cli.commands import main

__all__ = ["main"]

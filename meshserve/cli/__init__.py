"""The `meshserve` command: `main` parses the arguments; each subcommand is a module in `commands/`."""

from meshserve.cli.main import main

__all__ = ["main"]

"""Subcommands of `meshserve`; every module here defines `register(subparsers)`."""

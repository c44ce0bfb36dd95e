"""The one-line error every command raises for bad input (exit code 2)."""

from __future__ import annotations

import click

# Errors that mean "the user's input or environment is wrong": one line, exit code 2.
USER_ERRORS = (ValueError, FileNotFoundError, NotADirectoryError, FileExistsError, PermissionError)


class UserError(click.ClickException):
    """Bad input; printed as `Error: ...` with exit code 2."""

    exit_code = 2

"""Errors that reach the user as one line, never as a traceback."""


class UserError(Exception):
    """Bad input from the user: the CLI prints `Error: <message>` and exits with status 2."""


class ConfigError(UserError, ValueError):
    """An impossible configuration; the message names the offending field first."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(f"{field}: {message}")

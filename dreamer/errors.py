"""Errors that end a command with a one-line message (the CLI prints it and exits non-zero)."""


class ConfigError(ValueError):
    """A bad configuration value or argument; the message is one line meant for the user (exit
    status 2). Defined here, with no imports, so the CLI reports it without loading the config."""


class TrainingError(RuntimeError):
    """The run cannot go on; its last checkpoint is kept."""


def first_line(err: BaseException) -> str:
    """An error's type and the first line of its message: enough for a one-line report."""
    lines = str(err).splitlines()
    return f"{type(err).__name__}: {lines[0]}" if lines else type(err).__name__

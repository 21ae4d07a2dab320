"""Errors that end a command with a one-line message (the CLI prints it and exits non-zero)."""


class ConfigError(ValueError):
    """A bad configuration value or argument; the message is one line meant for the user (exit
    status 2). Defined here, with no imports, so the CLI reports it without loading the config."""


class TrainingError(RuntimeError):
    """The run cannot go on; its last checkpoint is kept."""

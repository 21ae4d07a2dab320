"""Errors that end a command with a one-line message (the CLI prints it and exits non-zero)."""


class TrainingError(RuntimeError):
    """The run cannot go on; its last checkpoint is kept."""

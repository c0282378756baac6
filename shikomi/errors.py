"""User-facing errors: printed as one line by the CLI, never as a traceback."""


class UserError(Exception):
    """A mistake in the user's input, config or paths. The message says what to fix."""

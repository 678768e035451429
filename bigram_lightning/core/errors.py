"""The one exception type for the user's mistakes: the data module's checks raise it, and train.py and the tools
print it as `error: <problem>: <fix>` on one line, exit code 2, no traceback."""


class UserError(ValueError):
    """A problem with the user's input, reported as one line that names the problem and the fix."""

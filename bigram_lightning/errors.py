class UserError(Exception):
    """A problem with the user's input, reported as one line that names the problem and the fix (no traceback)."""


class Diverged(UserError):
    """Training stopped at a non-finite or exploded loss."""

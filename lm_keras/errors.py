"""The one exception type for mistakes a user can fix (bad flags, files, text).

Commands print its message as one line and exit non-zero, without a traceback.
It subclasses ValueError so library callers can catch it the usual way.
"""


class UserError(ValueError):
    """A mistake in the user's input; the message names the input and the fix."""

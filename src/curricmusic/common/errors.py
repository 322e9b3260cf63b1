"""The one exception type for user mistakes.

Library code raises :class:`UserError` for bad input (a wrong config value, a missing file, an
impossible setting). The CLI prints its message as a single line and exits with status 2, so a
user never sees a traceback for their own mistake. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

__all__ = ["UserError"]


class UserError(Exception):
    """A mistake in the user's input, with a message that names the file, key or value."""

"""The one exception type users see, printed without a traceback at the edge."""

from __future__ import annotations


class BaseforgeError(Exception):
    """A problem the user can fix: ``message`` says what, ``hint`` says how."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message}\n  hint: {self.hint}" if self.hint else self.message

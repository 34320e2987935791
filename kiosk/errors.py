"""Errors a user can cause; the CLI shows their message and exits non-zero, never a traceback."""


class KioskError(Exception):
    """Base of all user-fixable errors; str() is the one-line message to show."""


class ModelError(KioskError):
    """A model file is missing, corrupted or of the wrong shape."""

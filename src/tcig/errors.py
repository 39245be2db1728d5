"""One exception family: every error a user can cause carries a one-line, actionable message."""


class TCIGError(Exception):
    """Base class; the command line prints the message on one line and exits with code 2."""


class LayoutError(TCIGError):
    """A layout file is missing, unreadable, malformed or has no labelled pixel."""


class ClassNameError(TCIGError):
    """A class name cannot be matched to any guiding segmenter's labels."""


class ModelLoadError(TCIGError):
    """A model id or folder cannot be loaded (missing, corrupt, pickle-only, offline)."""


class ConfigError(TCIGError):
    """An option or a combination of options is invalid."""

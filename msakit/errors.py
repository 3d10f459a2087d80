"""The errors a user can cause, and nothing else.

Every failure that comes from the user's input (a setting, a data file, a run directory, an
argument) is raised as a ``MsakitError`` whose message is one line naming the culprit (the
file, split, key or setting) and what to do. The command line prints that line and exits
non-zero; any other exception is a bug in msakit and is reported as one (``--debug`` shows
its traceback).

Each class also derives from the built-in exception a caller would expect (``ValueError``,
``FileNotFoundError``), so ``except ValueError`` keeps working.
"""

from __future__ import annotations


class MsakitError(Exception):
    """Base class: a problem with the user's input, explained in one line."""

    def __str__(self) -> str:  # the message as given, even where KeyError is a base
        return str(self.args[0]) if self.args else self.__class__.__name__


class ConfigError(MsakitError, ValueError):
    """A setting is unknown, of the wrong type or outside its valid range."""


class UnknownNameError(MsakitError, KeyError):
    """A name (setting, model, split) that does not exist; the message lists the valid ones."""


class DataError(MsakitError, ValueError):
    """A data file is missing, unreadable, malformed or inconsistent."""


class RunDirError(MsakitError, ValueError):
    """A run directory is missing, incomplete, damaged, or not what the command expects."""


class MissingFileError(MsakitError, FileNotFoundError):
    """A file or directory the user named does not exist."""


class ExistingRunError(MsakitError, FileExistsError):
    """A run directory already holds a run and would be overwritten."""


class DivergedError(MsakitError, FloatingPointError):
    """Training produced a non-finite loss; the message names the last good checkpoint."""


__all__ = ["ConfigError", "DataError", "DivergedError", "ExistingRunError", "MissingFileError", "MsakitError", "RunDirError", "UnknownNameError"]

"""The package's error family: everything a user can fix derives from :class:`FKTError`.

The command-line tools catch :class:`FKTError` alone and print its message (which names the bad
value and the fix) instead of a traceback. Each class also derives from the built-in exception a
caller would expect (``ValueError``, ``FileNotFoundError``, ``KeyError``, ``ImportError``,
``FloatingPointError``), so code written against those keeps working.
"""

from __future__ import annotations


class FKTError(Exception):
    """Base of every error a user can fix by changing a setting, a file or an installation."""


class ConfigError(FKTError, ValueError):
    """A configuration value is missing or invalid; the message names the key and the fix."""


class UnknownNameError(ConfigError, KeyError):
    """A registry was asked for a name it does not hold; the message lists the known ones."""

    def __str__(self) -> str:
        # KeyError.__str__ would repr() the message and wrap it in quotes.
        return str(self.args[0])


class MissingPathError(ConfigError, FileNotFoundError):
    """A path given in the configuration (run directory, recipe, folder) does not exist."""


class DatasetNotFoundError(MissingPathError):
    """The dataset's files are not where the cfg says; the message says how to get them."""


class DataFormatError(FKTError, ValueError):
    """A dataset file is not in the format its adapter expects; the message names the file."""


class CheckpointError(FKTError, ValueError):
    """A checkpoint is missing, unreadable, or was saved from another backbone."""


class MissingDependencyError(FKTError, ImportError):
    """An optional package a feature needs is absent or too old; the message says what to
    install."""


class NonFiniteLossError(FKTError, FloatingPointError):
    """Training produced a NaN or infinite loss; the message gives the step and the terms."""

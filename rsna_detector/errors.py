"""The bases of every error and warning the library raises on purpose.

Every library error derives from :class:`RsnaDetectorError` *and* keeps the built-in base it
had before (``ValueError`` for bad input, ``OSError`` for the file system, ``RuntimeError`` for
the environment, ...), so both ``except RsnaDetectorError`` and existing ``except ValueError``
code catch it::

    class LabelError(RsnaDetectorError, ValueError): ...

The command line catches :class:`RsnaDetectorError` (and ``OSError``) and prints the message in
one line. Errors raised while handling another keep it as their cause (``raise ... from err``).
"""
from __future__ import annotations

__all__ = ["RsnaDetectorError", "RsnaDetectorWarning", "InputFileNotFoundError", "InvalidArgumentError"]


class RsnaDetectorError(Exception):
    """Base of every error the library raises on purpose; the message names the file, line,
    field or patient concerned and what was expected."""


class InputFileNotFoundError(RsnaDetectorError, FileNotFoundError):
    """A file or folder the caller named does not exist, or holds none of the files looked for;
    the message names it and what was looked for."""


class InvalidArgumentError(RsnaDetectorError, ValueError):
    """An argument of the wrong shape, size or value (a function's or a layer's): the message
    names the function or argument, what was expected and what was given. Modules with an
    error class of their own (``LabelError``, ``ConfigError``, ...) raise that instead."""


class RsnaDetectorWarning(UserWarning):
    """Base of every warning the library emits on purpose."""

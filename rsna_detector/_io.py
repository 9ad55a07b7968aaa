"""Atomic file writes: a reader sees the old file or the whole new one, never a part.

:func:`atomic_path` gives a writer that streams (h5py, PIL, pydicom, a download)
a temporary path beside the target; when the writer is done the temporary file
is renamed over the target (``os.replace``, atomic on one file system), and on
any failure it is removed and the old target is left as it was.
:func:`atomic_write` writes bytes or text that way, flushed to disk first;
:func:`atomic_folder` does the same for a whole folder (an exported model);
:func:`write_json` is the library's one JSON writer for reports (metrics,
summaries) and :func:`json_text` its text; :func:`save_figure` writes every matplotlib
figure (atomically, refusing a link planted to lead outside its folder).
:func:`rename_over` is the one rename that replaces a file (the library's only
``os.replace``), also used to move a bad file aside. :func:`check_output_file` and
:func:`check_output_folder` check an output location before a long job starts.

Temporary files are named ``.<name>.<random>.partial`` (hidden, unique), so that
concurrent writers of one target never share one and a leftover is easy to spot.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import secrets
from pathlib import Path

import numpy as np

from .errors import RsnaDetectorError

__all__ = ["atomic_path", "atomic_folder", "atomic_write", "rename_over", "write_json", "json_text", "save_figure",
           "OutputPathError", "check_output_file", "check_output_folder", "OutputExistsError", "NotJsonError"]

TEMPORARY_SUFFIX = ".partial"
"""The ending of every temporary file :func:`atomic_path` creates."""


def rename_over(source, target):
    """Rename ``source`` to ``target``, replacing ``target`` when it exists (atomic on one file system).

    Parameters
    ----------
    source, target : str or Path
        On the same file system (a rename across file systems raises ``OSError``).

    Returns
    -------
    Path
        ``target``.
    """
    os.replace(source, target)
    return Path(target)


@contextlib.contextmanager
def atomic_path(path):
    """A temporary path beside ``path`` to write to; it becomes ``path`` when the block succeeds.

    Parameters
    ----------
    path : str or Path
        The target; its folder must exist.

    Yields
    ------
    Path
        ``.<name>.<random>.partial`` in the target's folder, not yet created:
        the block creates and writes it (``open(temporary, "wb")``,
        ``h5py.File(temporary, "w")``, ``image.save(temporary)``), so it gets the
        usual permissions (0666 less the umask). Not creating it first leaves no
        moment in which an empty file exists that a caller cannot yet name (what a
        signal handler that removes the file it is writing needs).

    Notes
    -----
    When the block ends normally the file is renamed over ``path``; when it
    raises (``KeyboardInterrupt`` too) the file is removed, ``path`` is left as
    it was and the exception propagates. The data is not flushed to disk here
    (a writer that needs that, like :func:`atomic_write`, calls ``os.fsync``).
    """
    path = Path(path)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}{TEMPORARY_SUFFIX}")
    try:
        yield temporary
        rename_over(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_folder(path, *, replace=False):
    """A temporary folder beside ``path`` to fill; it becomes ``path`` when the block succeeds.

    Parameters
    ----------
    path : str or Path
        The target folder; its parent must exist.
    replace : bool
        Whether an existing ``path`` may be replaced (it is moved aside, the new
        folder renamed in, then the old one deleted: ``path`` never holds a mix).

    Yields
    ------
    Path
        ``.<name>.<random>.partial`` beside the target, not yet created (the block
        creates it, e.g. ``tf.saved_model.save`` does).

    Raises
    ------
    FileExistsError
        When ``path`` exists and ``replace`` is False (checked before the block runs).

    Notes
    -----
    A reader that watches the parent folder (TensorFlow Serving loading a new
    version) sees the folder appear complete. On failure the temporary folder is
    deleted and ``path`` is left as it was.
    """
    import shutil

    path = Path(path)
    if path.exists() and not replace:
        raise OutputExistsError(f"{path} already exists (pass replace=True to replace it)")
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}{TEMPORARY_SUFFIX}")
    try:
        yield temporary
        if path.exists():
            aside = path.with_name(f".{path.name}.{secrets.token_hex(8)}.old")
            rename_over(path, aside)
            rename_over(temporary, path)
            shutil.rmtree(aside, ignore_errors=True)
        else:
            rename_over(temporary, path)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise


def atomic_write(path, data, *, encoding="utf-8"):
    """Write ``data`` to ``path`` atomically, flushed to disk.

    Parameters
    ----------
    path : str or Path
        The target; its folder must exist.
    data : str or bytes
        Text is written with ``encoding``, line ends as they are (``'\\n'``).
    encoding : str

    Returns
    -------
    Path
        ``path``. The file gets the usual permissions (0666 less the umask).
    """
    path = Path(path)
    payload = data.encode(encoding) if isinstance(data, str) else bytes(data)
    with atomic_path(path) as temporary, open(temporary, "xb") as stream:
        stream.write(payload)
        stream.flush()
        os.fsync(stream.fileno())
    return path


def _plain(value):
    """``json.dumps``' fallback: numpy scalars and arrays, paths."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise NotJsonError(f"{type(value).__name__} is not JSON serialisable: {value!r:.80}")


def _finite_or_none(value):
    """``value`` with every NaN or infinite float replaced by None (JSON has no token for them)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite_or_none(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite_or_none(item) for item in value]
    return value


def json_text(data, *, indent=2):
    """``data`` as JSON text, as :func:`write_json` writes it (NaN and infinities as ``null``; see there)."""
    plain = json.loads(json.dumps(data, default=_plain))
    return json.dumps(_finite_or_none(plain), indent=indent, allow_nan=False)


def write_json(path, data, *, indent=2):
    """Write ``data`` as JSON, atomically; undefined numbers become ``null``.

    Parameters
    ----------
    path : str or Path
    data : JSON-like
        dicts, lists, tuples, str, int, float, bool, None; numpy scalars and
        arrays and paths are converted. NaN and infinities (undefined metrics)
        are written as ``null``: the ``NaN`` token Python's json writes is not JSON.
    indent : int

    Returns
    -------
    Path

    Raises
    ------
    TypeError
        A value of another type, named in the message; nothing is written.
    """
    return atomic_write(path, json_text(data, indent=indent) + "\n")


def save_figure(figure, path, **savefig_options):
    """Write a matplotlib figure to ``path`` atomically: the library's one ``savefig``.

    Parameters
    ----------
    figure : matplotlib.figure.Figure
    path : str or Path
        The image file; its format from its suffix (``.png``) unless ``format=``
        is given. Refused (:class:`rsna_detector._paths.UnsafePathError`, nothing
        written) when it resolves outside its folder, e.g. a link planted there
        pointing elsewhere; an existing file (or a link inside the folder) is
        replaced, never written through.
    **savefig_options
        Passed to ``figure.savefig`` (``dpi=100``).

    Returns
    -------
    Path
    """
    from ._paths import path_in_folder

    path = path_in_folder(Path(path).parent, Path(path).name)
    options = {"format": path.suffix.lstrip(".").lower() or "png", **savefig_options}
    with atomic_path(path) as temporary:
        figure.savefig(temporary, **options)
    return path


class OutputPathError(RsnaDetectorError, OSError):
    """An output file or folder cannot be written where it was asked for; checked before the work starts."""


class OutputExistsError(OutputPathError, FileExistsError):
    """``atomic_folder``: the folder exists and ``replace`` is False."""


class NotJsonError(RsnaDetectorError, TypeError):
    """``write_json``/``json_text``: a value of a type JSON cannot hold (the type and value named)."""


def _nearest_existing(path):
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return Path(".").absolute()


def _check_creatable_in(path, what, folder):
    """OutputPathError unless ``folder`` (a path's folder, maybe not there yet) can be created and written in."""
    existing = _nearest_existing(folder)
    if not existing.is_dir():
        raise OutputPathError(f"{path}: {what} cannot be written: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise OutputPathError(f"{path}: {what} cannot be written: no permission to write in {existing}")


def check_output_file(path, what="output file"):
    """Check, before a long job, that ``path`` can be written as a file (its folders are created when missing).

    Raises
    ------
    OutputPathError
        ``path`` is an existing folder, one of its parents is a file, or the
        nearest existing folder is not writable; the message names ``path`` and ``what``.
    """
    path = Path(path).absolute()
    if path.is_dir():
        raise OutputPathError(f"{path}: {what} is an existing folder; give a file name")
    _check_creatable_in(path, what, path.parent)
    return path


def check_output_folder(path, what="output folder"):
    """Check, before a long job, that ``path`` is a folder or can be created as one; OutputPathError otherwise."""
    path = Path(path).absolute()
    if path.exists() and not path.is_dir():
        raise OutputPathError(f"{path}: {what} is an existing file, not a folder")
    _check_creatable_in(path, what, path)
    return path

"""Atomic file writes: a reader sees the old file or the whole new one, never a part.

:func:`atomic_write` writes next to the target under a unique hidden name,
flushes it to disk and renames it over the target (``os.replace``, atomic on
one file system); on any failure the temporary file is removed and the old
target is left as it was. :func:`write_json` is the library's one JSON writer
for reports (metrics, summaries).
"""
from __future__ import annotations

import json
import math
import os
import secrets
from pathlib import Path

import numpy as np

__all__ = ["atomic_write", "write_json"]


def atomic_write(path, data, *, encoding="utf-8"):
    """Write ``data`` to ``path`` atomically.

    Parameters
    ----------
    path : str or Path
        The target; its folder must exist.
    data : str or bytes
        Text is written with ``encoding`` and ``'\\n'`` line ends.
    encoding : str

    Returns
    -------
    Path
        ``path``. The file gets the usual permissions (0666 less the umask).
    """
    path = Path(path)
    payload = data.encode(encoding) if isinstance(data, str) else bytes(data)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    handle = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(payload)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return path


def _plain(value):
    """``json.dumps``' fallback: numpy scalars and arrays, paths."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable: {value!r:.80}")


def _finite_or_none(value):
    """``value`` with every NaN or infinite float replaced by None (JSON has no token for them)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite_or_none(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite_or_none(item) for item in value]
    return value


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
    plain = json.loads(json.dumps(data, default=_plain))
    return atomic_write(path, json.dumps(_finite_or_none(plain), indent=indent, allow_nan=False) + "\n")

"""File names built from data (patientIds, file stems) that cannot leave their folder.

A patientId comes from a CSV the library does not control. Every reader and
writer that turns one into a file name goes through :func:`path_in_folder`,
which refuses a name with a path separator, ``..``, a drive letter, a NUL byte
or nothing at all, and (for writers) resolves the result and checks that it is
still inside the folder, so that a link planted in the folder cannot redirect
the write either.
"""
from __future__ import annotations

import re
from pathlib import Path

from .errors import RsnaDetectorError

__all__ = ["UnsafePathError", "PATIENT_ID_CHARACTERS", "patient_id_problem", "check_patient_id",
           "path_in_folder"]

#: What an RSNA patientId is made of (they are UUIDs: hex digits and '-').
PATIENT_ID_CHARACTERS = "letters, digits and '-'"
_PATIENT_ID = re.compile(r"[A-Za-z0-9-]+")
_DRIVE = re.compile(r"^[A-Za-z]:")


class UnsafePathError(RsnaDetectorError, ValueError):
    """A name taken from data would put a file outside its folder; the message names it and the folder."""


def _name_problem(name):
    """Why ``name`` cannot be one file name inside a folder, or None."""
    if not name:
        return "it is empty"
    if "\x00" in name:
        return "it contains a NUL byte"
    if name.startswith(("/", "\\")):
        return "it is an absolute path (leading separator)"
    if _DRIVE.match(name):
        return "it starts with a drive letter"
    if "/" in name or "\\" in name:
        return "it contains a path separator"
    if name in (".", ".."):
        return f"it is {name!r}"
    return None


def patient_id_problem(patient_id):
    """Why ``patient_id`` is not a valid RSNA patientId, or None.

    Parameters
    ----------
    patient_id : str

    Returns
    -------
    str or None
        A short reason (path separator, '..', drive letter, leading '/',
        empty, other characters).
    """
    text = str(patient_id)
    problem = _name_problem(text)
    if problem is None and ".." in text:
        problem = "it contains '..'"
    if problem is None and not _PATIENT_ID.fullmatch(text):
        bad = sorted({c for c in text if not (c.isascii() and (c.isalnum() or c == "-"))})
        problem = f"it contains {', '.join(repr(c) for c in bad)}"
    return None if problem is None else f"{problem}; expected {PATIENT_ID_CHARACTERS} only"


def check_patient_id(patient_id, where="patientId"):
    """``patient_id`` as a str when it is a valid RSNA patientId.

    Raises
    ------
    UnsafePathError
        Naming ``where`` (a file and line, or a field) and the reason.
    """
    problem = patient_id_problem(patient_id)
    if problem:
        raise UnsafePathError(f"{where}: patientId {str(patient_id)!r} refused: {problem}")
    return str(patient_id)


def path_in_folder(folder, name, suffix="", *, for_writing=True):
    """``folder / (name + suffix)``, refused when it would not be a file directly inside ``folder``.

    Parameters
    ----------
    folder : str or Path
        The folder the file must stay in.
    name : str
        A name taken from data (a patientId, a file stem).
    suffix : str
        Appended to ``name`` (``'.png'``, ``'.dcm'``).
    for_writing : bool
        Also resolve the path (links included) and check that it is still
        inside the resolved ``folder``: a link in the folder pointing elsewhere
        is refused. Readers pass False (a folder of linked DICOMs is fine).

    Returns
    -------
    Path
        ``Path(folder) / (name + suffix)``.

    Raises
    ------
    UnsafePathError
        The name is empty or has a path separator, is ``.``/``..``, starts
        with a drive letter, or (writing) the resolved path leaves ``folder``;
        the message names the name and the folder.
    """
    folder = Path(folder)
    file_name = f"{name}{suffix}"
    problem = _name_problem(str(name)) or _name_problem(file_name)
    if problem:
        raise UnsafePathError(f"{file_name!r}: refused as a file name in {folder}: {problem}")
    path = folder / file_name
    if for_writing:
        root = folder.resolve()
        resolved = path.resolve()
        if resolved.parent != root:
            raise UnsafePathError(f"{path}: refused: it resolves to {resolved}, outside the output folder {root}")
    return path

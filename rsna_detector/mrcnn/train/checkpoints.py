"""Run folders and checkpoints: how they are named, claiming a new run's folder, finding the newest checkpoint.

A run of a config named ``NAME`` writes into ``<model_dir>/<name><YYYYmmddTHHMMSS>``
(``<name>`` is ``NAME`` lower-cased; matterport's minute stamps are read too), with a
suffix ``_2``, ``_3``, ... when another run took that folder first, and its
checkpoints are ``mask_rcnn_<name>_<epoch:04d>.h5`` there. ``find_last`` also finds
folders renamed by hand (``<name>_finetune``), as matterport's. ``MaskRCNN.set_log_dir``,
``make_log_dir`` and ``find_last`` (``model.py``) are built on these functions.
"""
from __future__ import annotations

import os
import re
import warnings

from ...errors import InputFileNotFoundError, RsnaDetectorWarning

__all__ = [
    "CHECKPOINT_PATTERN",
    "UnreadableCheckpointWarning",
    "CheckpointNotFoundError",
    "checkpoint_name",
    "parse_checkpoint_name",
    "is_checkpoint_file",
    "checkpoint_files",
    "checkpoint_file",
    "run_of_checkpoint",
    "checkpoint_path_in",
    "claim_run_folder",
    "find_last_checkpoint",
    "run_folders",
    "checkpoint_problem",
]

# The one place the checkpoint file name is written: the prefix and extension matterport's
# ``find_last`` looks for, and the name this library (and matterport) writes between them.
_PREFIX, _EXTENSION = "mask_rcnn", ".h5"
#: Checkpoint file names inside a log directory (``str.format`` with ``name`` and ``epoch``).
CHECKPOINT_PATTERN = _PREFIX + "_{name}_{epoch:04d}" + _EXTENSION
# A checkpoint's file name, parsed: the config's name and the four-digit epoch.
_NAME_RE = re.escape(_PREFIX) + r"_(?P<name>[\w.-]+?)_(?P<epoch>\d{4})" + re.escape(_EXTENSION)
# A run folder's time stamp: matterport's minutes, or seconds plus a suffix (_2, _3, ...) when taken.
_RUN_STAMP = r"(?P<stamp>\d{8}T\d{4}(?:\d{2})?)(?:_(?P<suffix>\d+))?"
# <model_dir>/<name><stamp>/mask_rcnn_<name>_<epoch>.h5, either path separator.
_CHECKPOINT_RE = re.compile(r".*[/\\](?P<run>[\w.-]*?" + _RUN_STAMP + r")[/\\]" + _NAME_RE + "$")


class CheckpointNotFoundError(InputFileNotFoundError):
    """No checkpoint where one was looked for (no run folder, no checkpoint file, none readable);
    the message names the folder and what was looked for."""


def checkpoint_name(name, epoch):
    """The file name of the checkpoint of config ``name`` after ``epoch`` epochs:
    ``mask_rcnn_<name>_<epoch:04d>.h5``."""
    return CHECKPOINT_PATTERN.format(name=name, epoch=int(epoch))


def parse_checkpoint_name(file_name):
    """``(name, epoch)`` of a file name :func:`checkpoint_name` writes; None for any other name.

    ``file_name`` is a bare name (``mask_rcnn_rsna_0007.h5`` -> ``("rsna", 7)``), not a path.
    """
    match = re.fullmatch(_NAME_RE, str(file_name))
    return None if match is None else (match.group("name"), int(match.group("epoch")))


def is_checkpoint_file(file_name):
    """Whether a bare file name is a checkpoint as matterport's ``find_last`` sees it:
    ``mask_rcnn*.h5`` (matterport's own ``mask_rcnn_coco.h5`` too)."""
    return file_name.startswith(_PREFIX) and file_name.endswith(_EXTENSION)


def checkpoint_files(folder):
    """The checkpoint file names (:func:`is_checkpoint_file`) in ``folder``, in string order
    (the highest epoch last); [] for a missing folder."""
    if not os.path.isdir(folder):
        return []
    return sorted(f for f in os.listdir(folder) if is_checkpoint_file(f))


def checkpoint_file(template, epoch):
    """``template`` (:func:`checkpoint_path_in`'s ``{epoch:04d}``, or matterport's ``*epoch*``
    placeholder) filled in for ``epoch``."""
    if "*epoch*" in template:
        return template.replace("*epoch*", f"{epoch:04d}")
    return template.format(epoch=epoch)


class UnreadableCheckpointWarning(RsnaDetectorWarning):
    """``find_last`` skipped a checkpoint it cannot read (truncated, empty, not HDF5), or a run folder
    without checkpoints; the message names it."""


def run_of_checkpoint(model_path):
    """The run folder and epoch of a checkpoint path of this library's naming.

    Parameters
    ----------
    model_path : str or Path or None
        ``.../<name><YYYYmmddTHHMM[SS][_N]>/mask_rcnn_<name>_<EEEE>.h5``, either
        path separator.

    Returns
    -------
    (str, int) or None
        The run folder's name and ``EEEE`` (epochs done); None for any other path.
    """
    match = _CHECKPOINT_RE.match(str(model_path)) if model_path else None
    if match is None:
        return None
    return match.group("run"), int(match.group("epoch"))


def checkpoint_path_in(folder, name):
    """``<folder>/mask_rcnn_<name>_{epoch:04d}.h5``: a ``str.format`` template taking ``epoch``."""
    def escaped(text):  # braces in a folder or config name are literal in the template
        return str(text).replace("{", "{{").replace("}", "}}")

    return os.path.join(escaped(folder), CHECKPOINT_PATTERN.replace("{name}", escaped(name)))


def claim_run_folder(model_dir, base):
    """Create a new run's folder atomically (``os.mkdir``) and return its path.

    Parameters
    ----------
    model_dir : str
        Created when missing.
    base : str
        The folder wanted (``<model_dir>/<name><stamp>``); when another run already
        has it (two runs started in the same second), ``<base>_2``, ``<base>_3``,
        ... is taken instead, so no run ever writes into another's folder.

    Returns
    -------
    str
    """
    os.makedirs(model_dir, exist_ok=True)
    number = 1
    while True:
        folder = base if number == 1 else f"{base}_{number}"
        try:
            os.mkdir(folder)
            return folder
        except FileExistsError:
            number += 1


def find_last_checkpoint(model_dir, name):
    """Path of the last readable checkpoint of the last run folder of ``name`` (``MaskRCNN.find_last``).

    The folder and file matterport's ``find_last`` picks: the last folder whose name
    starts with ``name`` (:func:`run_folders`), and in it the last ``mask_rcnn*.h5``
    file in string order (the highest epoch). Where matterport fails, this goes on
    instead: a file that cannot be read as a weights file (truncated by a crash or a
    full disk, empty, not HDF5) is skipped with an :class:`UnreadableCheckpointWarning`
    naming it and why, and so is a folder without a readable checkpoint (a run that
    stopped before its first epoch ended): the search goes on in the folder before it.

    Parameters
    ----------
    model_dir : str
    name : str
        The config's ``NAME``, lower-cased.

    Returns
    -------
    str

    Raises
    ------
    CheckpointNotFoundError
        A ``FileNotFoundError`` naming ``model_dir`` and what was looked for (no run folder, no
        checkpoint, or none readable).
    """
    runs = run_folders(model_dir, name)
    if not runs:
        raise CheckpointNotFoundError(f"find_last: no run folder '{name}*' in model_dir "
                                      f"{model_dir!r}: train first or give a weights path")
    unreadable = []
    for run in runs:
        folder = os.path.join(model_dir, run)
        checkpoints = checkpoint_files(folder)[::-1]
        if not checkpoints and run != runs[-1]:
            warnings.warn(f"find_last: the run folder {folder} holds no mask_rcnn*.h5 checkpoint; "
                          "looking in the folder before it", UnreadableCheckpointWarning, stacklevel=3)
        for checkpoint in checkpoints:
            path = os.path.join(folder, checkpoint)
            problem = checkpoint_problem(path)
            if problem is None:
                return path
            unreadable.append(path)
            warnings.warn(f"find_last: skipping the unreadable checkpoint {path} ({problem})",
                          UnreadableCheckpointWarning, stacklevel=3)
    if unreadable:
        raise CheckpointNotFoundError(f"find_last: no readable mask_rcnn_*.h5 checkpoint in the run folders "
                                      f"{runs} of {model_dir!r} (unreadable: {', '.join(unreadable)})")
    raise CheckpointNotFoundError(f"find_last: no mask_rcnn_*.h5 checkpoint in the run folders {runs} of "
                                  f"{model_dir!r}")


def run_folders(model_dir, name):
    """The run folders of ``name`` in ``model_dir``, last first in matterport's order; [] when none.

    As matterport's ``find_last``: every folder whose name starts with ``name`` (a renamed
    ``<name>_finetune`` too), in reverse string order. One refinement for this library's own
    folders: the ``_N`` suffix of ``<name><stamp>_N`` compares as a number, so ``_10`` comes
    after ``_9`` (a string order would put it before ``_2``; matterport never wrote suffixes).
    """
    run_re = re.compile(re.escape(name) + _RUN_STAMP + "$")
    try:
        entries = os.listdir(model_dir)
    except FileNotFoundError:
        return []

    def order(entry):
        match = run_re.match(entry)
        if match is None or match.group("suffix") is None:
            return entry
        return f"{entry[:match.start('suffix')]}{int(match.group('suffix')):020d}"

    runs = [e for e in entries if e.startswith(name) and os.path.isdir(os.path.join(model_dir, e))]
    return sorted(runs, key=order, reverse=True)


def checkpoint_problem(path):
    """Why ``path`` cannot be read as a whole Keras-2 HDF5 weights file, or None.

    Reads the layout and every dataset's metadata, not the values: a dataset that is
    not numeric or was never written (``weights.keras2_hdf5.weights_file_problem``) is
    a problem too.
    """
    from ...weights.keras2_hdf5 import weights_file_problem

    return weights_file_problem(path)

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

from ...errors import RsnaDetectorWarning

__all__ = [
    "CHECKPOINT_PATTERN",
    "UnreadableCheckpointWarning",
    "run_of_checkpoint",
    "checkpoint_path_in",
    "claim_run_folder",
    "find_last_checkpoint",
    "run_folders",
    "checkpoint_problem",
]

#: Checkpoint file names inside a log directory (``str.format`` with ``name`` and ``epoch``).
CHECKPOINT_PATTERN = "mask_rcnn_{name}_{epoch:04d}.h5"
# A run folder's time stamp: matterport's minutes, or seconds plus a suffix (_2, _3, ...) when taken.
_RUN_STAMP = r"(?P<stamp>\d{8}T\d{4}(?:\d{2})?)(?:_(?P<suffix>\d+))?"
# <model_dir>/<name><stamp>/mask_rcnn_<name>_<epoch>.h5, either path separator.
_CHECKPOINT_RE = re.compile(
    r".*[/\\](?P<run>[\w.-]*?" + _RUN_STAMP + r")[/\\]mask_rcnn_[\w.-]+?_(?P<epoch>\d{4})\.h5$")


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
    return os.path.join(folder, f"mask_rcnn_{name}_{{epoch:04d}}.h5")


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
    FileNotFoundError
        Naming ``model_dir`` and what was looked for (no run folder, no
        checkpoint, or none readable).
    """
    runs = run_folders(model_dir, name)
    if not runs:
        raise FileNotFoundError(f"find_last: no run folder '{name}*' in model_dir "
                                f"{model_dir!r}: train first or give a weights path")
    unreadable = []
    for run in runs:
        folder = os.path.join(model_dir, run)
        checkpoints = sorted((f for f in os.listdir(folder) if f.startswith("mask_rcnn") and f.endswith(".h5")),
                             reverse=True)
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
        raise FileNotFoundError(f"find_last: no readable mask_rcnn_*.h5 checkpoint in the run folders {runs} "
                                f"of {model_dir!r} (unreadable: {', '.join(unreadable)})")
    raise FileNotFoundError(f"find_last: no mask_rcnn_*.h5 checkpoint in the run folders {runs} of "
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

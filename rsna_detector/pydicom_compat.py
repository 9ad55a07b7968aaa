"""pydicom as the public RSNA notebooks call it, ``pydicom.read_file`` included.

Every public RSNA Pneumonia notebook written for matterport's Mask_RCNN (MD.ai's
lesson notebook, the "Mask-RCNN and COCO transfer learning" kernel and the ones
derived from them) reads its DICOMs with ``pydicom.read_file(path)``. pydicom 3.0,
which this library requires, removed ``read_file`` (it had been an alias of
``pydicom.dcmread`` since pydicom 1.0, deprecated in 2.x). Such a notebook runs on
the library after changing its import line only::

    import pydicom                                          # before
    from rsna_detector import pydicom_compat as pydicom     # after

This module is pydicom itself for every name (``pydicom.dcmread``,
``pydicom.config``, ``pydicom.Dataset``, ``pydicom.__version__``, ... are forwarded
to the installed pydicom) plus the two names pydicom 3 removed that notebooks call:
:func:`read_file` and :func:`write_file`, thin forwards to ``dcmread`` /
``dcmwrite``. Datasets read through it are ordinary pydicom datasets.

Why a module the notebook imports, and not the other two ways:

* *Supporting pydicom 2.4 as well* would not make the notebooks run: a fresh
  ``pip install rsna_detector`` (Colab, Kaggle) installs the newest pydicom, 3.x,
  so ``read_file`` would still be missing unless the user also pinned
  ``pydicom<3``, a step that is not an import change. It would also hold the
  library back: its DICOM reader (``data.dicom``) uses ``pydicom.pixels``, new in
  pydicom 3.
* *Adding ``read_file`` to the installed pydicom when rsna_detector is imported*
  (a monkey-patch) would change a third-party module for every program in the
  process, behind the user's back, and bring back a name pydicom removed on
  purpose.

The forward is explicit and costs one import line.
"""
from __future__ import annotations

import pydicom as _pydicom

__all__ = ["read_file", "write_file"]


def read_file(fp, defer_size=None, stop_before_pixels=False, force=False, specific_tags=None):
    """``pydicom.dcmread`` under its pre-3.0 name (same arguments, same result).

    Parameters
    ----------
    fp : str, PathLike or binary file
        The DICOM file.
    defer_size, stop_before_pixels, force, specific_tags
        As ``pydicom.dcmread``.

    Returns
    -------
    pydicom.dataset.FileDataset
    """
    return _pydicom.dcmread(fp, defer_size=defer_size, stop_before_pixels=stop_before_pixels, force=force,
                            specific_tags=specific_tags)


def write_file(filename, dataset, write_like_original=True):
    """``pydicom.dcmwrite`` under its pre-3.0 name.

    ``write_like_original`` as pydicom 2's: True writes the dataset as it was read
    (no preamble or file meta enforced); False enforces the DICOM file format.
    """
    return _pydicom.dcmwrite(filename, dataset, enforce_file_format=not write_like_original)


def __getattr__(name):
    """Every other name is the installed pydicom's (PEP 562)."""
    return getattr(_pydicom, name)


def __dir__():
    return sorted(set(dir(_pydicom)) | set(__all__))

"""A quiet, readable console for the command line, the demo and the notebooks.

TensorFlow writes two kinds of noise to the terminal: C++/absl log lines while
its libraries load (``oneDNN custom operations are on``, ``Could not find cuda
drivers``, ``WARNING: All log messages before absl::InitializeLog()``), and C++
log lines while it runs (grappler's ``op_level_cost_estimator ... Error in
PredictCost() for the op ... CropAndResize``, printed for every traced graph, and
``failed call to cuInit`` on a machine without a GPU). The first kind ignores
``TF_CPP_MIN_LOG_LEVEL``: it is written before TensorFlow reads it, so the only
way to hide it is to point file descriptor 2 elsewhere while ``tensorflow``
is imported. The second kind obeys ``TF_CPP_MIN_LOG_LEVEL``, which must be set
before TensorFlow is imported.

Nothing here runs on import: importing :mod:`rsna_detector` (or this module)
changes no environment variable, logger or warning filter. The command line
calls :func:`configure_console` once, before anything imports TensorFlow; a
notebook calls :func:`quiet_tensorflow` in its first cell.
"""
from __future__ import annotations

import contextlib
import importlib.abc
import importlib.util
import logging
import math
import os
import sys

__all__ = ["QUIET_TF_CPP_LEVEL", "quiet_tensorflow", "configure_console", "format_table"]

#: ``TF_CPP_MIN_LOG_LEVEL`` set by :func:`quiet_tensorflow`: 3 keeps FATAL only. Errors that
#: matter reach Python as exceptions; the C++ ERROR lines seen in practice are CPU-only
#: machines' ``failed call to cuInit``.
QUIET_TF_CPP_LEVEL = "3"
#: Seconds between two redraws of a progress bar when stderr is not a terminal (a log file,
#: a pipe): each redraw there is a new run of bytes, not an update in place.
NON_TTY_BAR_INTERVAL_S = "30"
_PYTHON_LOGGERS = ("tensorflow", "absl", "h5py")


def quiet_tensorflow(verbose=False):
    """Hide TensorFlow's C++ and absl log output in this process.

    Sets ``TF_CPP_MIN_LOG_LEVEL`` to :data:`QUIET_TF_CPP_LEVEL`, makes the first
    ``import tensorflow`` run with file descriptor 2 sent to ``os.devnull`` (the
    start-up lines ignore the variable), and raises the ``tensorflow`` and
    ``absl`` Python loggers to ERROR. Call it before TensorFlow is imported;
    afterwards only the Python loggers can still be quietened.

    Parameters
    ----------
    verbose : bool
        True leaves everything as TensorFlow has it (nothing is changed).

    Returns
    -------
    bool
        Whether anything was changed: False when ``verbose`` or when the user set
        ``TF_CPP_MIN_LOG_LEVEL`` (their choice is respected, start-up lines included).
    """
    if verbose or "TF_CPP_MIN_LOG_LEVEL" in os.environ:
        return False
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = QUIET_TF_CPP_LEVEL
    if "tensorflow" in sys.modules:
        _raise_python_loggers()
    elif not any(isinstance(finder, _SilentTensorFlowImport) for finder in sys.meta_path):
        sys.meta_path.insert(0, _SilentTensorFlowImport())
    return True


def configure_console(verbose=False):
    """Console set-up of the ``rsna-detector`` command (its process only).

    * TensorFlow quiet unless ``verbose`` (:func:`quiet_tensorflow`);
    * this library's log records (``rsna_detector.*``) printed as
      ``level: message`` on stderr: warnings and errors, plus INFO when ``verbose``;
    * when stderr is not a terminal, progress bars redraw every
      :data:`NON_TTY_BAR_INTERVAL_S` seconds instead of ten times a second, so that a
      log file keeps a few lines per loop, not a megabyte of carriage returns
      (tqdm reads ``TQDM_MININTERVAL``; a value the user set is kept).

    Parameters
    ----------
    verbose : bool
    """
    quiet_tensorflow(verbose)
    library_logger = logging.getLogger("rsna_detector")
    if not any(getattr(handler, "_rsna_console", False) for handler in library_logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
        handler._rsna_console = True
        library_logger.addHandler(handler)
        library_logger.propagate = False
    library_logger.setLevel(logging.INFO if verbose else logging.WARNING)
    if not _is_terminal(sys.stderr):
        os.environ.setdefault("TQDM_MININTERVAL", NON_TTY_BAR_INTERVAL_S)


def format_table(rows, headers=("", "")):
    """A plain-text table with aligned columns.

    Parameters
    ----------
    rows : sequence of sequences
        Cells; floats are written with 3 decimals (NaN as ``-``), other values with ``str``.
    headers : sequence of str
        Column titles (one per column).

    Returns
    -------
    str
        Header, a rule of dashes, then one line per row; numbers right-aligned,
        text left-aligned; no trailing newline.
    """
    cells = [[_cell(value) for value in row] for row in rows]
    table = [list(headers)] + cells
    widths = [max(len(row[k]) for row in table if k < len(row)) for k in range(len(headers))]
    numeric = [all(_is_number(row[k]) for row in rows if k < len(row)) for k in range(len(headers))]

    def line(row):
        parts = [(text.rjust if numeric[k] else text.ljust)(widths[k]) for k, text in enumerate(row)]
        return "  ".join(parts).rstrip()

    return "\n".join([line(table[0]), "  ".join("-" * w for w in widths)] + [line(row) for row in cells])


def _cell(value):
    if isinstance(value, float):
        return "-" if math.isnan(value) else f"{value:.3f}"
    return str(value)


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_terminal(stream):
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _raise_python_loggers():
    for name in _PYTHON_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)


@contextlib.contextmanager
def _stderr_descriptor_to_devnull():
    """Send file descriptor 2 (what C++ code writes to) to ``os.devnull`` for the block."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


class _SilentTensorFlowImport(importlib.abc.MetaPathFinder):
    """Import hook: the first ``import tensorflow`` runs with stderr's descriptor silenced.

    It removes itself when used; an import error is re-raised unchanged (its
    traceback is printed by Python after the descriptor is restored).
    """

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "tensorflow":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None:
            return spec
        spec.loader = _SilentLoader(spec.loader)
        return spec


class _SilentLoader(importlib.abc.Loader):
    def __init__(self, loader):
        self.loader = loader

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        try:
            with _stderr_descriptor_to_devnull():
                self.loader.exec_module(module)
        finally:  # the module keeps its own loader (resource readers, inspect, reloads)
            module.__loader__ = self.loader
            module.__spec__.loader = self.loader
        _raise_python_loggers()

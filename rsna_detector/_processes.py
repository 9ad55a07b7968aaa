"""Worker process pools started safely beside threads (one start method for the whole package).

``fork`` copies the calling process with only the calling thread: a lock that another thread
held at that moment (tqdm's monitor, TensorFlow's thread pools, a notebook kernel's threads)
stays locked in the child for ever. Python 3.12 warns about it (``DeprecationWarning: ... use of
fork() may lead to deadlocks in the child``) and Python 3.14 no longer forks by default on Linux.
The package's pools therefore **spawn** their workers: each starts a fresh interpreter that
imports only what its task needs (the data workers import no TensorFlow; the start-up cost is in
docs/PERFORMANCE.md). Spawned workers stay children of the process that started them, which
``convert``'s die-with-the-parent rule relies on (a forkserver would be their parent instead).

Spawned workers import ``__main__`` again, as ``__mp_main__`` (Python's documented "safe
importing of the main module"). Notebooks, the ``rsna-detector`` command, ``python -c``/``-m``
and scripts whose work sits under ``if __name__ == "__main__":`` are unaffected; a script that
calls the library from its top level would run again in every worker (and one read from standard
input, ``python - < script.py``, cannot be imported by a worker at all).
:func:`main_reruns_in_workers` recognises that script, and the pools then fork as before (where
the platform can fork); the training input falls back to threads (it runs beside TensorFlow).
"""
from __future__ import annotations

import ast
import multiprocessing
import os
import sys
from concurrent.futures import ProcessPoolExecutor

__all__ = ["START_METHOD", "main_reruns_in_workers", "process_pool", "worker_context"]

#: how the package starts worker processes (see the module docstring)
START_METHOD = "spawn"


def process_pool(max_workers, initializer=None, initargs=()):
    """A ``ProcessPoolExecutor`` whose workers are started by :func:`worker_context`.

    Parameters
    ----------
    max_workers : int
        Worker processes.
    initializer, initargs
        As ``ProcessPoolExecutor``'s: run once in each worker (module-level callables).

    Returns
    -------
    concurrent.futures.ProcessPoolExecutor
    """
    return ProcessPoolExecutor(max_workers=max_workers, mp_context=worker_context(), initializer=initializer,
                               initargs=initargs)


def worker_context():
    """The multiprocessing context of the package's worker pools.

    Returns
    -------
    multiprocessing.context.BaseContext
        :data:`START_METHOD` (spawn); fork where spawning would run a script's top level again in
        every worker (:func:`main_reruns_in_workers`) and the platform forks.
    """
    if main_reruns_in_workers() and "fork" in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context(START_METHOD)


def main_reruns_in_workers():
    """True when a spawned worker, importing ``__main__`` again, would rerun the code that calls this.

    That is a script (or a ``python -m`` module) whose source is re-executed by spawned children,
    calling the library from top-level code outside an ``if __name__ == "__main__":`` block; when
    the caller is not the main module's top level (another thread), a script without any such
    block. Interactive sessions and notebooks (no main file, or a guarded launcher), ``python -c``
    and ``-m`` packages' ``__main__`` modules are never re-executed.

    Returns
    -------
    bool
        True also when the main module's source cannot be read or parsed (a script read from
        standard input, ``python - < script.py``, is named ``<stdin>``): a spawned worker would
        fail to import it.
    """
    main = sys.modules.get("__main__")
    path = _reexecuted_main_file(main)
    if path is None:
        return False
    try:
        with open(path, "rb") as source:
            tree = ast.parse(source.read(), filename=path)
    except (OSError, SyntaxError, ValueError):
        return True
    guards = [(node.lineno, node.end_lineno) for node in tree.body if _is_main_guard(node)]
    line = _top_level_line(main)
    if line is None:
        return not guards
    return not any(first <= line <= last for first, last in guards)


def _reexecuted_main_file(main):
    """The file a spawned child runs again as ``__mp_main__`` (multiprocessing.spawn's rules), or None."""
    if main is None:
        return None
    name = getattr(getattr(main, "__spec__", None), "name", None)
    if name is not None and (name == "__main__" or name.endswith(".__main__")):
        return None  # `python -m package`: its __main__ is never re-imported
    path = getattr(main, "__file__", None)
    if path is None or os.path.splitext(os.path.basename(path))[0] == "ipython":
        return None
    return path


def _is_main_guard(node):
    """``if __name__ == "__main__":`` (either side)."""
    if not isinstance(node, ast.If) or not isinstance(node.test, ast.Compare) or len(node.test.ops) != 1:
        return False
    if not isinstance(node.test.ops[0], ast.Eq):
        return False
    sides = [node.test.left, node.test.comparators[0]]
    names = [side.id for side in sides if isinstance(side, ast.Name)]
    constants = [side.value for side in sides if isinstance(side, ast.Constant)]
    return names == ["__name__"] and constants == ["__main__"]


def _top_level_line(main):
    """The line of the main module's top-level code on this thread's stack, or None."""
    frame = sys._getframe(1)
    namespace = vars(main)
    while frame is not None:
        if frame.f_code.co_name == "<module>" and frame.f_globals is namespace:
            return frame.f_lineno
        frame = frame.f_back
    return None

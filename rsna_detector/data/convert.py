"""A folder of DICOM files -> 8-bit PNG or JPEG images, in parallel (the report's ``dicom_to_jpg``).

Bad files never stop the batch: each is reported by name in the returned
:class:`ConversionReport` and in one logged summary. Outputs are written
under a temporary name and renamed into place, so an interrupted run never
leaves a half-written image under its final name.

Interruption
------------
* Ctrl-C (SIGINT) or SIGTERM: the queued files are cancelled, the workers are
  terminated at once (each removes the temporary file it was writing), and
  ``KeyboardInterrupt`` propagates (the CLI exits with status 130).
* The parent killed outright (SIGKILL): on Linux each worker gets SIGTERM from
  the kernel (``PR_SET_PDEATHSIG``), elsewhere a watcher thread notices the new
  parent within half a second; either way the worker removes its temporary
  file and exits. Workers ignore SIGINT: the parent decides.
* Started with SIGINT ignored (``nohup``, a background job of a script), the
  command ignores Ctrl-C too, as any program does; SIGTERM (``kill``) stops it
  as above.

Workers are spawned (``rsna_detector._processes``: safe beside threads), so
each is a child of the converting process.
"""
from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
from concurrent.futures import as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path

from .._io import atomic_path
from .._processes import process_pool
from ..errors import InputFileNotFoundError, InvalidArgumentError

__all__ = ["ConversionReport", "convert_dicoms", "convert_one", "list_dicom_files"]

log = logging.getLogger(__name__)

_PIL_FORMATS = {"png": "PNG", "jpg": "JPEG"}


@dataclass
class ConversionReport:
    """What :func:`convert_dicoms` did.

    Attributes
    ----------
    converted : list of str
        Output files written.
    skipped_existing : list of str
        Output files that already existed and were kept (``overwrite=False``).
    failed : dict of str -> str
        Input DICOM path -> why it could not be converted.
    """

    converted: list = field(default_factory=list)
    skipped_existing: list = field(default_factory=list)
    failed: dict = field(default_factory=dict)

    def __str__(self):
        lines = [f"converted {len(self.converted)}, kept {len(self.skipped_existing)} existing, "
                 f"failed {len(self.failed)}"]
        lines += [f"  failed: {message}" if message.startswith(path) else f"  failed: {path}: {message}"
                  for path, message in self.failed.items()]
        return "\n".join(lines)


def list_dicom_files(source):
    """The DICOM files of a folder (``*.dcm``, any case, sorted) or of a list of paths.

    Parameters
    ----------
    source : str, Path or iterable of str/Path
        A folder, one file, or a list of files.

    Returns
    -------
    list of Path

    Raises
    ------
    InputFileNotFoundError
        (a ``FileNotFoundError``) ``source`` is a path that does not exist.
    """
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if path.is_dir():
            return sorted(p for p in path.iterdir() if p.suffix.lower() == ".dcm" and p.is_file())
        if not path.exists():
            raise InputFileNotFoundError(f"{path}: no such folder or file")
        return [path]
    return [Path(p) for p in source]


# the temporary file this process is writing (a worker removes it when told to stop)
_writing = None


def _remove_temporary_and_exit(signum, frame):
    """A worker's SIGTERM handler: remove the half-written file, exit at once."""
    if _writing is not None:
        with contextlib.suppress(OSError):
            os.unlink(_writing)
    os._exit(128 + signum)


def _die_with_parent(parent_pid):
    """SIGTERM to this process when its parent dies (Linux prctl; a polling thread elsewhere)."""
    if sys.platform.startswith("linux"):
        import ctypes

        try:
            libc = ctypes.CDLL(None, use_errno=True)
            if libc.prctl(1, int(signal.SIGTERM), 0, 0, 0) == 0:  # 1 = PR_SET_PDEATHSIG
                if os.getppid() != parent_pid:  # the parent died before prctl took effect
                    os.kill(os.getpid(), signal.SIGTERM)
                return
        except (OSError, AttributeError):
            pass

    def watch():
        while os.getppid() == parent_pid:
            threading.Event().wait(0.5)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="watch-parent", daemon=True).start()


def _init_worker(parent_pid):
    """Pool initializer: ignore Ctrl-C (the parent stops the pool), clean up on SIGTERM, die with the parent."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _remove_temporary_and_exit)
    _die_with_parent(parent_pid)


def convert_one(source, output, fmt="png", size=None, quality=95):
    """Convert one DICOM file; write ``output`` atomically.

    Parameters
    ----------
    source : str or Path
        The DICOM file.
    output : str or Path
        The image file to write.
    fmt : {'png', 'jpg'}
        Output format.
    size : int, optional
        Resize to ``[size, size]`` (see :func:`rsna_detector.data.dicom.read_dicom`).
    quality : int
        JPEG quality (ignored for PNG).

    Returns
    -------
    str or None
        None on success, else the reason (naming the file).
    """
    from PIL import Image

    from .dicom import DicomReadError, read_dicom_image

    global _writing

    output = Path(output)
    try:
        image = read_dicom_image(source, size=size)
        options = {"quality": int(quality)} if fmt == "jpg" else {}
        # atomic_path removes the temporary file on any exception, KeyboardInterrupt too; the
        # SIGTERM handler (which exits without unwinding) removes the one named by _writing.
        with atomic_path(output) as temporary:
            _writing = temporary
            Image.fromarray(image).save(temporary, format=_PIL_FORMATS[fmt], **options)
    except DicomReadError as error:
        return str(error)
    except Exception as error:  # a write failure (disk full, permissions) is reported, not raised
        return f"{source}: could not write {output} ({type(error).__name__}: {error})"
    finally:
        _writing = None
    return None


def _plan(files, dst_dir, fmt, overwrite, report):
    """(source, output) pairs to convert; fills skipped/failed for the others."""
    from .._paths import UnsafePathError, path_in_folder

    tasks, owners = [], {}
    for source in files:
        try:
            output = path_in_folder(dst_dir, source.stem, f".{fmt}")
        except UnsafePathError as error:
            report.failed[str(source)] = f"{source}: {error}"
            continue
        if output in owners:
            report.failed[str(source)] = f"{source}: output name {output.name} already used by {owners[output]}"
            continue
        owners[output] = source
        if output.exists() and not overwrite:
            report.skipped_existing.append(str(output))
        else:
            tasks.append((source, output))
    return tasks


def _record(report, source, output, message):
    if message is None:
        report.converted.append(str(output))
    else:
        report.failed[str(source)] = message


def _run_serial(tasks, options, report, bar):
    for source, output in tasks:
        _record(report, source, output, convert_one(source, output, **options))
        bar.update(1)


def _run_parallel(tasks, options, report, bar, workers):
    pending = {}
    pool = process_pool(workers, initializer=_init_worker, initargs=(os.getpid(),))
    try:
        pending = {pool.submit(convert_one, source, output, **options): (source, output)
                   for source, output in tasks}
        for future in as_completed(pending):
            source, output = pending.pop(future)
            _record(report, source, output, future.result())
            bar.update(1)
    except BrokenProcessPool as error:
        for source, _ in pending.values():
            report.failed[str(source)] = f"{source}: not converted, a worker process died ({error})"
    except BaseException:  # Ctrl-C, SIGTERM: stop now, not after the queue
        _stop_workers(pool)
        raise
    pool.shutdown(wait=True)


def _stop_workers(pool):
    """Cancel the queued files and terminate the workers (each removes its temporary file)."""
    terminate = getattr(pool, "terminate_workers", None)  # Python >= 3.14
    if terminate is not None:
        terminate()
        return
    processes = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        with contextlib.suppress(OSError, ValueError):
            process.terminate()
    for process in processes:
        with contextlib.suppress(OSError, ValueError, AssertionError):
            process.join(timeout=5)


@contextlib.contextmanager
def _sigterm_as_interrupt():
    """In the main thread, SIGTERM raises KeyboardInterrupt so that the pool and temporary files are cleaned up."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def convert_dicoms(src_dir, dst_dir, *, fmt="png", size=None, workers=None, overwrite=False, quality=95,
                   progress=True):
    """Convert DICOM files to 8-bit grey PNG or JPEG images, in parallel.

    Each ``<stem>.dcm`` becomes ``dst_dir/<stem>.<fmt>`` (in the Kaggle layout
    the stem is the patientId). Pixels are read by
    :func:`rsna_detector.data.dicom.read_dicom` (fast JPEG path, MONOCHROME1
    inverted, wide data windowed or min-max scaled).

    Parameters
    ----------
    src_dir : str, Path or iterable of str/Path
        A folder of ``.dcm`` files, or a list of DICOM files.
    dst_dir : str or Path
        Output folder, created if needed.
    fmt : {'png', 'jpg'}
        Output format.
    size : int, optional
        Resize to ``[size, size]``; None keeps each file's size.
    workers : int, optional
        Worker processes (default ``os.cpu_count()``); 1 converts in this process.
    overwrite : bool
        Replace existing outputs; otherwise they are kept and counted in
        ``skipped_existing``.
    quality : int
        JPEG quality 1-95 (ignored for PNG).
    progress : bool
        Show a tqdm progress bar.

    Returns
    -------
    ConversionReport
        Bad files (not DICOM, truncated, no pixels, unwritable output) are
        listed in ``failed`` by name and logged in one warning; they never
        stop the batch.

    Raises
    ------
    ValueError
        ``fmt`` is not 'png' or 'jpg', or ``size``/``workers``/``quality`` is out of range.
    FileNotFoundError
        ``src_dir`` does not exist.
    KeyboardInterrupt
        On Ctrl-C or SIGTERM: the workers are stopped at once and no temporary
        file is left (see the module docstring).
    """
    from tqdm.auto import tqdm

    fmt = _check_arguments(fmt, size, workers, quality)
    files = list_dicom_files(src_dir)
    dst_dir = Path(dst_dir)
    dst_dir.mkdir(parents=True, exist_ok=True)
    report = ConversionReport()
    tasks = _plan(files, dst_dir, fmt, overwrite, report)
    options = {"fmt": fmt, "size": size, "quality": quality}
    workers = min(workers or os.cpu_count() or 1, max(len(tasks), 1))
    with _sigterm_as_interrupt(), tqdm(total=len(tasks), desc="convert", unit="file", disable=not progress) as bar:
        if workers == 1:
            _run_serial(tasks, options, report, bar)
        else:
            _run_parallel(tasks, options, report, bar, workers)
    report.converted.sort()
    if report.failed:
        log.warning("%d of %d DICOM files could not be converted:\n%s", len(report.failed), len(files),
                    "\n".join(f"  {message}" for message in report.failed.values()))
    return report


def _check_arguments(fmt, size, workers, quality):
    fmt = str(fmt).lower().lstrip(".")
    fmt = "jpg" if fmt == "jpeg" else fmt
    if fmt not in _PIL_FORMATS:
        raise InvalidArgumentError(f"fmt must be 'png' or 'jpg', got {fmt!r}")
    if size is not None and int(size) <= 0:
        raise InvalidArgumentError(f"size must be a positive number of pixels or None, got {size}")
    if workers is not None and int(workers) < 1:
        raise InvalidArgumentError(f"workers must be at least 1 or None, got {workers}")
    if not 1 <= int(quality) <= 100:
        raise InvalidArgumentError(f"quality must be between 1 and 100, got {quality}")
    return fmt

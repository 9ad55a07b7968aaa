"""A folder of DICOM files -> 8-bit PNG or JPEG images, in parallel (the report's ``dicom_to_jpg``).

Bad files never stop the batch: each is reported by name in the returned
:class:`ConversionReport` and in one logged summary. Outputs are written
under a temporary name and renamed into place, so an interrupted run never
leaves a half-written image under its final name.
"""
from __future__ import annotations

import logging
import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path

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
    FileNotFoundError
        ``source`` is a path that does not exist.
    """
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if path.is_dir():
            return sorted(p for p in path.iterdir() if p.suffix.lower() == ".dcm" and p.is_file())
        if not path.exists():
            raise FileNotFoundError(f"{path}: no such folder or file")
        return [path]
    return [Path(p) for p in source]


def _temporary_name(output):
    return output.with_name(f".{output.name}.partial")


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

    output = Path(output)
    temporary = _temporary_name(output)
    try:
        image = read_dicom_image(source, size=size)
        options = {"quality": int(quality)} if fmt == "jpg" else {}
        Image.fromarray(image).save(temporary, format=_PIL_FORMATS[fmt], **options)
        os.replace(temporary, output)
    except DicomReadError as error:
        return str(error)
    except Exception as error:  # a write failure (disk full, permissions) is reported, not raised
        temporary.unlink(missing_ok=True)
        return f"{source}: could not write {output} ({type(error).__name__}: {error})"
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
    try:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            pending = {pool.submit(convert_one, source, output, **options): (source, output)
                       for source, output in tasks}
            for future in as_completed(pending):
                source, output = pending.pop(future)
                _record(report, source, output, future.result())
                bar.update(1)
    except BrokenProcessPool as error:
        for source, _ in pending.values():
            report.failed[str(source)] = f"{source}: not converted, a worker process died ({error})"


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
    with tqdm(total=len(tasks), desc="convert", unit="file", disable=not progress) as bar:
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
        raise ValueError(f"fmt must be 'png' or 'jpg', got {fmt!r}")
    if size is not None and int(size) <= 0:
        raise ValueError(f"size must be a positive number of pixels or None, got {size}")
    if workers is not None and int(workers) < 1:
        raise ValueError(f"workers must be at least 1 or None, got {workers}")
    if not 1 <= int(quality) <= 100:
        raise ValueError(f"quality must be between 1 and 100, got {quality}")
    return fmt

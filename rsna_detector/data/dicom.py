"""DICOM files -> 8-bit grey images and header metadata.

Two decode paths give the same picture (within the tolerance stated in
:func:`read_dicom`):

* the *reference* path: pydicom decodes the pixel data (``pixel_array``),
  the values are brought to uint8 (:func:`to_uint8`) and the full image is
  resized with :func:`resize_square`;
* the *fast* path, for 8-bit single-frame grey JPEG Baseline files (every RSNA
  file): the encapsulated JPEG stream is decoded by libjpeg-turbo (simplejpeg,
  strict) with DCT-domain downscaling (as Pillow's ``Image.draft``), then
  resized exactly to the target size with the same :func:`resize_square`.

Before either path decodes, the image size (Rows x Columns, and the size the
compressed stream's own frame header declares) is checked against
:data:`MAX_IMAGE_PIXELS`, and a compressed stream's integrity is checked
(:mod:`rsna_detector.data.dicom_stream`).

Errors are :class:`DicomReadError` (a ``ValueError``) naming the file and
the reason: whatever goes wrong while reading one file is that file's
``DicomReadError``, so a batch (predict, convert, the EDA) reports it and goes
on. A header value that cannot be parsed (a PixelSpacing written ``0,139``, a
WindowWidth of 0) is not an error: a :class:`DicomMetadataWarning` names the
file and the field, the field reads as None (the window is not used) and the
pixels are read as usual.
"""
from __future__ import annotations

import contextlib
import os
import re
import threading
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..errors import InvalidArgumentError, RsnaDetectorError
from .dicom_pixels import DicomMetadataWarning, power_of_two_reduction, resize_square, to_uint8, warn_header
from .dicom_stream import (
    StreamError,
    decode_jpeg_strict,
    frame_header,
    jpeg_entropy_problem,
    jpeg_stream_problem,
    size_problem,
    strict_decoding_applies,
)

__all__ = [
    "DicomMetadata",
    "DicomMetadataWarning",
    "DicomReadError",
    "JPEG_BASELINE",
    "FAST_PATH_TOLERANCE",
    "MAX_IMAGE_PIXELS",
    "parse_age",
    "read_dicom",
    "read_dicom_image",
    "read_dicom_metadata",
    "resize_square",
    "to_uint8",
]

#: Transfer Syntax UID of JPEG Baseline (Process 1), the RSNA files' syntax.
JPEG_BASELINE = "1.2.840.10008.1.2.4.50"

#: Guaranteed agreement of the fast and the reference path on 8-bit JPEG
#: Baseline files, in grey levels: (mean absolute difference, maximum
#: absolute difference) over the resized image. Checked on the 16 real RSNA
#: samples by ``tests/data/test_dicom.py``.
FAST_PATH_TOLERANCE = (0.5, 4)

#: Transfer syntaxes whose frames are JPEG streams (SOI ... EOI markers): baseline,
#: extended, lossless (processes 14 and 14 SV1).
_JPEG_SYNTAXES = frozenset({JPEG_BASELINE, "1.2.840.10008.1.2.4.51", "1.2.840.10008.1.2.4.57",
                            "1.2.840.10008.1.2.4.70"})
#: Other compressed syntaxes whose streams end with the marker FFD9 (JPEG-LS EOI, JPEG 2000 and
#: HTJ2K EOC): a stream that does not is cut short.
_FFD9_SYNTAXES = frozenset({"1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.81", "1.2.840.10008.1.2.4.90",
                            "1.2.840.10008.1.2.4.91", "1.2.840.10008.1.2.4.92", "1.2.840.10008.1.2.4.93",
                            "1.2.840.10008.1.2.4.201", "1.2.840.10008.1.2.4.202", "1.2.840.10008.1.2.4.203"})


def _pixel_limit_from_environment(default=50_000_000):
    value = os.environ.get("RSNA_DETECTOR_MAX_IMAGE_PIXELS", "").replace("_", "").strip()
    return int(value) if value.isdigit() and int(value) > 0 else default


#: The largest image (Rows x Columns pixels, one frame) read: a file whose header or
#: compressed stream declares more is a :class:`DicomReadError` before anything is decoded
#: or allocated (a 1 KB file can declare 65500 x 65500 pixels). 50 million by default
#: (about 7000 x 7000; the largest X-ray detectors give about 4300 x 4300); raise it by
#: assigning this attribute, or for every process (worker processes included) with the
#: environment variable ``RSNA_DETECTOR_MAX_IMAGE_PIXELS`` set before the library is imported.
MAX_IMAGE_PIXELS = _pixel_limit_from_environment()

_AGE_PATTERN = re.compile(r"^\s*(-?\d+)\s*([DWMY]?)\s*$", re.IGNORECASE)
_DAYS_PER_UNIT = {"D": 1, "W": 7, "M": 365.25 / 12, "Y": 365.25, "": 365.25}
_MAX_PLAUSIBLE_AGE = 120


class DicomReadError(RsnaDetectorError, ValueError):
    """A DICOM file could not be read; the message names the file and the reason.

    Attributes
    ----------
    path : str
        The file.
    reason : str
        Why it could not be read (not a DICOM file, no pixel data, truncated,
        fails to decode, unsupported format).
    """

    def __init__(self, path, reason):
        self.path = str(path)
        self.reason = str(reason)
        super().__init__(f"{self.path}: {self.reason}")

    def __reduce__(self):  # picklable across process pools
        return (type(self), (self.path, self.reason))


@dataclass(frozen=True)
class DicomMetadata:
    """Header fields of one DICOM file used by the library.

    Attributes
    ----------
    patient_id : str
        PatientID, or the file stem when the header has none (RSNA: they are equal).
    age : int or None
        PatientAge in whole years, parsed from DICOM age strings such as
        ``'51'``, ``'051Y'``, ``'6M'`` (0 years); None when missing or unparsable.
    age_implausible : bool
        True when ``age`` is above 120 or below 0 (the RSNA data has a few
        ages of 140-160); such ages are flagged, not dropped.
    sex : str or None
        PatientSex (``'M'``, ``'F'``, ``'O'``).
    view_position : str or None
        ViewPosition (``'PA'``, ``'AP'``, ...).
    modality : str or None
        Modality (``'CR'`` for RSNA).
    rows, columns : int
        Image height and width in pixels (0 when the header lacks them).
    pixel_spacing : tuple of float or None
        PixelSpacing ``(row spacing, column spacing)`` in mm.
    photometric_interpretation : str or None
        ``'MONOCHROME2'``, ``'MONOCHROME1'``, ``'RGB'``, ...
    transfer_syntax_uid : str or None
        The file meta Transfer Syntax UID (``JPEG_BASELINE`` for RSNA).
    bits_stored : int or None
        BitsStored (8 for RSNA).
    """

    patient_id: str
    age: int | None
    age_implausible: bool
    sex: str | None
    view_position: str | None
    modality: str | None
    rows: int
    columns: int
    pixel_spacing: tuple[float, float] | None
    photometric_interpretation: str | None
    transfer_syntax_uid: str | None
    bits_stored: int | None

    def to_dict(self):
        """The fields as a plain ``dict`` (for a pandas row or JSON)."""
        return asdict(self)


def parse_age(value):
    """Whole years from a DICOM age string (``'51'``, ``'051Y'``, ``'6M'``, ``'10D'``), else None."""
    if value is None:
        return None
    match = _AGE_PATTERN.match(str(value))
    if match is None:
        return None
    number, unit = int(match.group(1)), match.group(2).upper()
    if unit in ("", "Y"):
        return number
    return int(number * _DAYS_PER_UNIT[unit] // _DAYS_PER_UNIT["Y"])


def _text(dataset, keyword):
    value = dataset.get(keyword)
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _int(dataset, keyword):
    value = dataset.get(keyword)
    return None if value is None or value == "" else int(value)


def _spacing(dataset, keyword):
    value = dataset.get(keyword)
    if value is None or value == "":
        return None
    from pydicom.multival import MultiValue

    values = tuple(float(v) for v in (value if isinstance(value, (MultiValue, list, tuple)) else [value]))
    if len(values) != 2 or not all(np.isfinite(values)):
        raise DicomReadError(f"expected two finite numbers (row, column spacing in mm), got {len(values)}")
    return values


def _field(dataset, keyword, parse, path):
    """``parse(dataset, keyword)``; a value it cannot parse is warned about (file and field named) and is None."""
    try:
        return parse(dataset, keyword)
    except Exception as error:  # noqa: BLE001 - vendors write every kind of non-conforming value
        try:
            raw = dataset.get_item(keyword).value if keyword in dataset else None
        except Exception:  # noqa: BLE001 - the raw bytes are only for the message
            raw = "?"
        warn_header(path, keyword, f"{raw!r} cannot be read ({type(error).__name__}: {error})", "it reads as None")
        return None


def _metadata_from_dataset(dataset, path):
    age = _field(dataset, "PatientAge", lambda d, k: parse_age(d.get(k)), path)
    file_meta = getattr(dataset, "file_meta", None)
    syntax = _field(file_meta, "TransferSyntaxUID", _text, path) if file_meta is not None else None
    return DicomMetadata(
        patient_id=_field(dataset, "PatientID", _text, path) or Path(path).stem,
        age=age,
        age_implausible=age is not None and not 0 <= age <= _MAX_PLAUSIBLE_AGE,
        sex=_field(dataset, "PatientSex", _text, path),
        view_position=_field(dataset, "ViewPosition", _text, path),
        modality=_field(dataset, "Modality", _text, path),
        rows=_field(dataset, "Rows", _int, path) or 0,
        columns=_field(dataset, "Columns", _int, path) or 0,
        pixel_spacing=_field(dataset, "PixelSpacing", _spacing, path),
        photometric_interpretation=_field(dataset, "PhotometricInterpretation", _text, path),
        transfer_syntax_uid=syntax,
        bits_stored=_field(dataset, "BitsStored", _int, path),
    )


_PARSE_LOCK = threading.Lock()


def _read_dataset(path, *, headers_only):
    """pydicom Dataset of ``path``; DicomReadError when it is not a readable DICOM file."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        # catch_warnings swaps process-wide state: serialise the (short) parse so that
        # concurrent readers (threaded input pipelines) never see each other's warnings.
        with _PARSE_LOCK, warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            dataset = pydicom.dcmread(path, stop_before_pixels=headers_only)
    except InvalidDicomError as error:
        raise DicomReadError(path, f"not a DICOM file ({error})") from error
    except OSError as error:
        raise DicomReadError(path, f"cannot be read ({error})") from error
    except Exception as error:  # pydicom raises many types on garbage input
        raise DicomReadError(path, f"not a DICOM file or truncated header ({type(error).__name__}: {error})") from error
    for warning in caught:
        if "end of file" in str(warning.message).lower():
            raise DicomReadError(path, f"truncated file ({warning.message})")
    _check_last_element_complete(dataset, path)
    return dataset


def _check_last_element_complete(dataset, path):
    """pydicom stops silently at a file cut inside an element value: detect that from the element's length."""
    from pydicom.dataelem import RawDataElement

    if not len(dataset):
        return
    last = dataset.get_item(max(dataset.keys()))
    if not isinstance(last, RawDataElement) or last.length == 0xFFFFFFFF:
        return
    size = os.path.getsize(path)
    if last.value_tell + last.length > size:
        raise DicomReadError(path, f"truncated file (element {last.tag} needs {last.length} bytes, "
                                   f"the file ends after {size - last.value_tell})")


def read_dicom_metadata(path):
    """Header fields of a DICOM file, without reading the pixel data.

    Parameters
    ----------
    path : str or Path
        A DICOM file.

    Returns
    -------
    DicomMetadata

    Raises
    ------
    DicomReadError
        The file cannot be read or is not a DICOM file.
    """
    with _file_errors(path):
        return _metadata_from_dataset(_read_dataset(path, headers_only=True), path)


# ---------------------------------------------------------------- compressed stream checks
def _first_frame(dataset, path):
    """The first encapsulated frame (bytes); DicomReadError when the encapsulation is broken."""
    from pydicom.encaps import generate_frames

    frames = int(dataset.get("NumberOfFrames", 1) or 1)
    try:
        return next(generate_frames(dataset.PixelData, number_of_frames=frames))
    except Exception as error:  # pydicom raises several types on a cut item
        raise DicomReadError(path, f"encapsulated pixel data truncated or broken ({type(error).__name__}: "
                                   f"{error})") from error


def _check_size(rows, columns, what, path):
    problem = size_problem(rows, columns, MAX_IMAGE_PIXELS, what)
    if problem:
        raise DicomReadError(path, problem)


def _checked_stream(dataset, metadata, path):
    """``(first frame, FrameHeader or None)`` of compressed pixel data, checked; None for native data.

    DicomReadError when the stream is cut short or corrupt, or declares an image
    above :data:`MAX_IMAGE_PIXELS`.
    """
    syntax = metadata.transfer_syntax_uid
    if syntax not in _JPEG_SYNTAXES and syntax not in _FFD9_SYNTAXES:
        return None
    stream = _first_frame(dataset, path)
    header = frame_header(stream)
    if header is not None:
        _check_size(header.rows, header.columns, "the compressed stream's frame header", path)
    if syntax in _JPEG_SYNTAXES:
        problem = jpeg_stream_problem(stream)
    elif not bytes(stream).rstrip(b"\x00").endswith(b"\xff\xd9"):
        problem = f"compressed stream truncated: {len(stream)} bytes without the end marker FFD9"
    else:
        problem = None
    if problem:
        raise DicomReadError(path, problem)
    return stream, header


# ---------------------------------------------------------------- decode paths
def _fast_path_applies(dataset, metadata, header):
    return (
        metadata.transfer_syntax_uid == JPEG_BASELINE
        and dataset.get("BitsAllocated") == 8
        and dataset.get("SamplesPerPixel", 1) == 1
        and int(dataset.get("NumberOfFrames", 1) or 1) == 1
        and dataset.get("PixelRepresentation", 0) == 0
        and metadata.photometric_interpretation in ("MONOCHROME1", "MONOCHROME2")
        and strict_decoding_applies(header)
        and (header.rows, header.columns) == (metadata.rows, metadata.columns)
    )


def _decode_fast(stream, metadata, size, path):
    """libjpeg-turbo decode of the JPEG stream with DCT-domain downscaling (Pillow ``draft``'s factors: 1-8)."""
    factor = 1 if size is None else min(8, power_of_two_reduction(metadata.columns, metadata.rows, int(size)))
    try:
        image = decode_jpeg_strict(stream, factor)
    except StreamError as error:  # never retried: the reference path's check finds the same
        raise DicomReadError(path, str(error)) from error
    if size is not None:
        image = resize_square(image, size)
    if metadata.photometric_interpretation == "MONOCHROME1":
        image = 255 - image
    return np.ascontiguousarray(image)


def _decode_reference(dataset, stream, path):
    """pydicom decode of the first frame -> uint8 [H, W]; an 8-bit JPEG stream's entropy data checked first."""
    from pydicom.pixels import pixel_array

    problem = jpeg_entropy_problem(stream) if stream is not None else None
    if problem:
        raise DicomReadError(path, problem)
    try:
        array = pixel_array(dataset, index=0)
    except NotImplementedError as error:
        raise DicomReadError(path, f"unsupported format ({error})") from error
    except Exception as error:
        raise DicomReadError(
            path, f"pixel data truncated or fails to decode ({type(error).__name__}: {error})") from error
    if array.ndim == 3 and int(dataset.get("SamplesPerPixel", 1)) == 1:
        array = array[0]  # a decoder that kept the frame axis
    return to_uint8(array, dataset)


def read_dicom(path, *, size=None, fast=True):
    """Read a DICOM file as an 8-bit grey image and its header metadata.

    The pixel values become uint8 as :func:`to_uint8` states: 8-bit data as
    stored; wider data through the file's VOI LUT or window when it has one
    (``apply_voi_lut``), else min-max scaled to 0..255; colour to grey;
    MONOCHROME1 inverted so that bone is bright. Multi-frame files: the first
    frame only.

    With ``fast=True``, 8-bit single-frame grey JPEG Baseline files (the RSNA
    files) are decoded by libjpeg-turbo with DCT-domain downscaling; the result
    differs from the reference path (``fast=False``: pydicom ``pixel_array``,
    then :func:`resize_square`) by at most ``FAST_PATH_TOLERANCE`` (mean
    absolute difference <= 0.5 grey levels, maximum <= 4, at any
    size; without resizing they differ by at most 1 grey level, the
    libjpeg IDCT rounding of pylibjpeg against libjpeg-turbo). Other files go through
    the reference path. A header value that cannot be parsed is warned about
    (:class:`DicomMetadataWarning`, naming the file and the field) and reads as
    None; the pixels are read as usual.

    Parameters
    ----------
    path : str or Path
        A DICOM file.
    size : int, optional
        Resize to ``[size, size]`` (aspect ratio not kept, see
        :func:`resize_square`); None keeps the file's size.
    fast : bool
        Allow the fast JPEG path.

    Returns
    -------
    image : numpy.ndarray
        uint8 [H, W] (``[size, size]`` when size is given).
    metadata : DicomMetadata
        Header fields; ``rows``/``columns`` are the file's own size.

    Raises
    ------
    DicomReadError
        Not a DICOM file, no pixel data, truncated or undecodable pixel data,
        a compressed stream cut short or corrupt (JPEG: SOI/EOI and the marker
        structure are checked, since decoders fill a cut stream with grey, and
        8-bit JPEG streams are decoded strictly, so that entropy data cut and
        closed with an EOI is refused on both paths; JPEG-LS and JPEG 2000: the
        end marker), an image larger than :data:`MAX_IMAGE_PIXELS` (Rows x
        Columns or the stream's frame header; checked before decoding),
        unsupported format, and anything else that fails while reading this
        file; the message names the file. Such a file is never decoded into a
        picture.
    """
    if size is not None and int(size) <= 0:
        raise InvalidArgumentError(f"size must be a positive number of pixels or None, got {size}")
    with _file_errors(path):
        dataset = _read_dataset(path, headers_only=False)
        metadata = _metadata_from_dataset(dataset, path)
        if "PixelData" not in dataset:
            other = [k for k in ("FloatPixelData", "DoubleFloatPixelData") if k in dataset]
            reason = f"unsupported format ({other[0]} is not read)" if other else "no pixel data (7FE0,0010)"
            raise DicomReadError(path, reason)
        _check_size(metadata.rows, metadata.columns, "Rows x Columns", path)
        stream, header = _checked_stream(dataset, metadata, path) or (None, None)
        if fast and _fast_path_applies(dataset, metadata, header):
            return _decode_fast(stream, metadata, size, path), metadata
        image = _decode_reference(dataset, stream, path)
        if size is not None:
            image = resize_square(image, size)
        return image, metadata


@contextlib.contextmanager
def _file_errors(path):
    """Whatever goes wrong while reading one file becomes that file's DicomReadError (a batch goes on)."""
    try:
        yield
    except DicomReadError:
        raise
    except Exception as error:  # noqa: BLE001 - pydicom and the decoders raise many types on bad files
        raise DicomReadError(path, f"cannot be read ({type(error).__name__}: {error})") from error


def read_dicom_image(path, size=None, fast=True):
    """The uint8 [H, W] (or [size, size]) image of :func:`read_dicom`, without metadata."""
    return read_dicom(path, size=size, fast=fast)[0]

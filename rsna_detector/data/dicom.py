"""DICOM files -> 8-bit grey images and header metadata.

Two decode paths give the same picture (within the tolerance stated in
:func:`read_dicom`):

* the *reference* path: pydicom decodes the pixel data (``pixel_array``),
  the values are brought to uint8 (:func:`to_uint8`) and the full image is
  resized with :func:`resize_square`;
* the *fast* path, for 8-bit single-frame grey JPEG Baseline files (every RSNA
  file): the encapsulated JPEG stream is decoded by Pillow (libjpeg-turbo)
  with DCT-domain downscaling (``Image.draft``), then resized exactly to the
  target size with the same :func:`resize_square`.

Errors are :class:`DicomReadError` (a ``ValueError``) naming the file and
the reason.
"""
from __future__ import annotations

import io
import os
import re
import threading
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..errors import RsnaDetectorError

__all__ = [
    "DicomMetadata",
    "DicomReadError",
    "JPEG_BASELINE",
    "FAST_PATH_TOLERANCE",
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


def _metadata_from_dataset(dataset, path):
    age = parse_age(dataset.get("PatientAge"))
    spacing = dataset.get("PixelSpacing")
    file_meta = getattr(dataset, "file_meta", None)
    syntax = file_meta.get("TransferSyntaxUID") if file_meta is not None else None
    return DicomMetadata(
        patient_id=_text(dataset, "PatientID") or Path(path).stem,
        age=age,
        age_implausible=age is not None and not 0 <= age <= _MAX_PLAUSIBLE_AGE,
        sex=_text(dataset, "PatientSex"),
        view_position=_text(dataset, "ViewPosition"),
        modality=_text(dataset, "Modality"),
        rows=_int(dataset, "Rows") or 0,
        columns=_int(dataset, "Columns") or 0,
        pixel_spacing=tuple(float(v) for v in spacing) if spacing else None,
        photometric_interpretation=_text(dataset, "PhotometricInterpretation"),
        transfer_syntax_uid=str(syntax) if syntax else None,
        bits_stored=_int(dataset, "BitsStored"),
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
    return _metadata_from_dataset(_read_dataset(path, headers_only=True), path)


# ---------------------------------------------------------------- pixels -> uint8
def _grey_from_colour(array):
    """[H, W, 3] RGB -> [H, W] float64 luma (ITU-R BT.601 weights)."""
    return array[..., :3].astype(np.float64) @ np.array([0.299, 0.587, 0.114])


def _scale_to_uint8(array, low, high):
    """Map ``[low, high]`` linearly to ``[0, 255]``; a constant image becomes 0."""
    if not high > low:
        return np.zeros(array.shape, np.uint8)
    scaled = (np.asarray(array, np.float64) - low) * (255.0 / (high - low))
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def _voi_output_range(dataset):
    """(low, high) of what pydicom's ``apply_voi_lut`` can output for this dataset."""
    from pydicom.pixels import apply_voi_lut

    if dataset.get("VOILUTSequence"):
        descriptor = dataset.VOILUTSequence[0].LUTDescriptor
        entries, first_map = descriptor[0] or 2 ** 16, descriptor[1]
        lut = apply_voi_lut(np.arange(first_map, first_map + entries, dtype=np.int64), dataset)
        return float(lut.min()), float(lut.max())
    # a window saturates at its output bounds: probing with -inf/+inf yields them
    bounds = apply_voi_lut(np.array([-np.inf, np.inf]), dataset, prefer_lut=False)
    return float(bounds[0]), float(bounds[1])


def _has_voi(dataset):
    return bool(dataset.get("VOILUTSequence")) or ("WindowCenter" in dataset and "WindowWidth" in dataset)


def to_uint8(array, dataset):
    """Decoded pixel values -> uint8 grey [H, W], bone bright.

    Rules, in order:

    1. colour ([H, W, 3], RGB after pydicom's YBR->RGB conversion; PALETTE
       COLOR through its colour LUT) becomes grey by BT.601 luma;
    2. uint8 data (8 bits stored or fewer) are used as stored;
    3. wider data (12/16-bit, signed, float): the modality LUT / rescale is
       applied, then, when the file has a VOI LUT or WindowCenter/WindowWidth,
       pydicom's ``apply_voi_lut`` (the first LUT, else the first window) and
       the VOI output range is mapped linearly to 0..255 (values outside the
       window saturate at 0 / 255); without VOI data the image is min-max
       scaled to 0..255;
    4. MONOCHROME1 images are inverted (``255 - v``) so that bone is bright as
       in MONOCHROME2.

    Parameters
    ----------
    array : numpy.ndarray
        One frame as pydicom decodes it: [H, W] or [H, W, samples].
    dataset : pydicom.Dataset
        Its header (photometric interpretation, LUTs, windows).

    Returns
    -------
    numpy.ndarray
        uint8 [H, W].
    """
    from pydicom.pixels import apply_color_lut, apply_modality_lut, apply_voi_lut

    photometric = str(dataset.get("PhotometricInterpretation", "MONOCHROME2")).upper()
    if photometric == "PALETTE COLOR":
        array = apply_color_lut(array, dataset)
    if array.ndim == 3:
        grey = _grey_from_colour(array)
        if array.dtype == np.uint8:
            image = np.clip(np.rint(grey), 0, 255).astype(np.uint8)
        else:
            image = _scale_to_uint8(grey, grey.min(), grey.max())
    elif array.dtype == np.uint8:
        image = array
    else:
        values = apply_modality_lut(array, dataset)
        if _has_voi(dataset):
            low, high = _voi_output_range(dataset)
            image = _scale_to_uint8(apply_voi_lut(values, dataset), low, high)
        else:
            image = _scale_to_uint8(values, float(np.min(values)), float(np.max(values)))
    if photometric == "MONOCHROME1":
        image = 255 - image
    return np.ascontiguousarray(image, dtype=np.uint8)


# ---------------------------------------------------------------- resizing
def resize_square(image, size):
    """Resize a uint8 grey image to ``[size, size]`` (aspect ratio not kept).

    The one resize used by both decode paths. Shrinking happens in two steps:
    first a block average over ``k x k`` pixels (Pillow ``Image.reduce``),
    ``k`` the largest power of two with ``k * size <= min(H, W)`` -- the
    reduction libjpeg performs in the DCT domain on the fast path -- then
    Pillow ``BOX`` (area average) to exactly ``size``. Enlarging uses
    ``BILINEAR``. An image already ``[size, size]`` is returned unchanged.

    Parameters
    ----------
    image : numpy.ndarray
        uint8 [H, W].
    size : int
        Output side in pixels.

    Returns
    -------
    numpy.ndarray
        uint8 [size, size].
    """
    from PIL import Image

    return _resize_pil(Image.fromarray(np.asarray(image, np.uint8)), size)


def _power_of_two_reduction(width, height, size):
    """Largest power of two ``k`` with ``k * size <= min(width, height)`` (1 when none)."""
    ratio = min(width, height) // size
    return 1 << (ratio.bit_length() - 1) if ratio >= 1 else 1


def _resize_pil(picture, size):
    from PIL import Image

    size = int(size)
    if size <= 0:
        raise ValueError(f"size must be a positive number of pixels, got {size}")
    factor = _power_of_two_reduction(*picture.size, size)
    if factor > 1:
        picture = picture.reduce(factor)
    if picture.size != (size, size):
        shrinking = size <= min(picture.size)
        picture = picture.resize((size, size), Image.Resampling.BOX if shrinking else Image.Resampling.BILINEAR)
    return np.asarray(picture, np.uint8)


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


def _jpeg_stream_problem(stream):
    """Why a JPEG stream (SOI ... EOI) is truncated or corrupt, or None.

    Walks the markers: each segment's length is followed, the entropy-coded data
    after SOS runs to the next marker that is neither a stuffed ``FF00`` nor a
    restart marker, and EOI must be the last two bytes (before the DICOM
    padding, ``00``). Decoders accept a cut stream and fill the rest with
    grey, so this check is what tells a damaged file from an image.
    """
    data = bytes(stream).rstrip(b"\x00")
    if not data.startswith(b"\xff\xd8"):
        return "JPEG stream corrupt: it does not start with the SOI marker FFD8"
    position, size = 2, len(data)
    while position + 1 < size:
        if data[position] != 0xFF:
            return f"JPEG stream corrupt: no marker at byte {position} of {size}"
        marker = data[position + 1]
        if marker == 0xFF:  # fill byte before a marker
            position += 1
        elif marker == 0xD9:
            if position + 2 == size:
                return None
            return f"JPEG stream corrupt: EOI marker at byte {position}, {size - position - 2} bytes before its end"
        elif 0xD0 <= marker <= 0xD7 or marker == 0x01:
            position += 2
        else:
            if position + 4 > size:
                break
            position += 2 + int.from_bytes(data[position + 2:position + 4], "big")
            if marker == 0xDA:
                position = _end_of_entropy_data(data, position)
    return f"JPEG stream truncated: {size} bytes without the EOI marker FFD9 at the end"


def _end_of_entropy_data(data, position):
    """Index of the first marker after entropy-coded data starting at ``position`` (``len(data)`` if none)."""
    while True:
        position = data.find(b"\xff", position)
        if position < 0 or position + 1 >= len(data):
            return len(data)
        following = data[position + 1]
        if following != 0x00 and not 0xD0 <= following <= 0xD7:
            return position
        position += 2


def _check_compressed_stream(dataset, metadata, path):
    """DicomReadError when the first frame's compressed stream is cut short or corrupt."""
    syntax = metadata.transfer_syntax_uid
    if syntax not in _JPEG_SYNTAXES and syntax not in _FFD9_SYNTAXES:
        return
    stream = _first_frame(dataset, path)
    if syntax in _JPEG_SYNTAXES:
        problem = _jpeg_stream_problem(stream)
    elif not bytes(stream).rstrip(b"\x00").endswith(b"\xff\xd9"):
        problem = f"compressed stream truncated: {len(stream)} bytes without the end marker FFD9"
    else:
        problem = None
    if problem:
        raise DicomReadError(path, problem)


# ---------------------------------------------------------------- decode paths
def _fast_path_applies(dataset, metadata):
    return (
        metadata.transfer_syntax_uid == JPEG_BASELINE
        and dataset.get("BitsAllocated") == 8
        and dataset.get("SamplesPerPixel", 1) == 1
        and int(dataset.get("NumberOfFrames", 1) or 1) == 1
        and dataset.get("PixelRepresentation", 0) == 0
        and metadata.photometric_interpretation in ("MONOCHROME1", "MONOCHROME2")
    )


def _decode_fast(dataset, metadata, size, path):
    """Pillow decode of the encapsulated JPEG with DCT-domain downscaling; raises on any problem."""
    from PIL import Image

    stream = _first_frame(dataset, path)
    picture = Image.open(io.BytesIO(stream), formats=["JPEG"])
    if picture.size != (metadata.columns, metadata.rows):
        raise ValueError(f"JPEG stream is {picture.size}, header says {metadata.columns}x{metadata.rows}")
    if size is not None:
        picture.draft("L", (int(size), int(size)))
    try:
        picture.load()
    except OSError as error:  # Pillow's "image file is truncated", "broken data stream": never retried
        raise DicomReadError(path, f"JPEG stream truncated or corrupt ({error})") from error
    if picture.mode != "L":
        picture = picture.convert("L")
    image = _resize_pil(picture, size) if size is not None else np.asarray(picture, np.uint8)
    if metadata.photometric_interpretation == "MONOCHROME1":
        image = 255 - image
    return np.ascontiguousarray(image)


def _decode_reference(dataset, path):
    """pydicom decode of the first frame -> uint8 [H, W]."""
    from pydicom.pixels import pixel_array

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
    files) are decoded by Pillow with DCT-domain downscaling; the result
    differs from the reference path (``fast=False``: pydicom ``pixel_array``,
    then :func:`resize_square`) by at most ``FAST_PATH_TOLERANCE`` (mean
    absolute difference <= 0.5 grey levels, maximum <= 4, at any
    size; without resizing they differ by at most 1 grey level, the
    libjpeg IDCT rounding of pylibjpeg against libjpeg-turbo). Other files, and any fast-path
    failure, go through the reference path.

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
        structure are checked, since decoders fill a cut stream with grey;
        JPEG-LS and JPEG 2000: the end marker), unsupported format; the
        message names the file. Such a file is never decoded into a picture.
    """
    if size is not None and int(size) <= 0:
        raise ValueError(f"size must be a positive number of pixels or None, got {size}")
    dataset = _read_dataset(path, headers_only=False)
    metadata = _metadata_from_dataset(dataset, path)
    if "PixelData" not in dataset:
        other = [k for k in ("FloatPixelData", "DoubleFloatPixelData") if k in dataset]
        reason = f"unsupported format ({other[0]} is not read)" if other else "no pixel data (7FE0,0010)"
        raise DicomReadError(path, reason)
    _check_compressed_stream(dataset, metadata, path)
    if fast and _fast_path_applies(dataset, metadata):
        try:
            return _decode_fast(dataset, metadata, size, path), metadata
        except DicomReadError:
            raise
        except Exception:  # e.g. a JPEG variant Pillow rejects: the reference path decides
            pass
    image = _decode_reference(dataset, path)
    if size is not None:
        image = resize_square(image, size)
    return image, metadata


def read_dicom_image(path, size=None, fast=True):
    """The uint8 [H, W] (or [size, size]) image of :func:`read_dicom`, without metadata."""
    return read_dicom(path, size=size, fast=fast)[0]

"""The compressed pixel data of a DICOM file, checked before any decoder runs.

Decoders accept a damaged stream and fill what is missing with grey, and they
allocate what the stream's own header says; so before a JPEG, JPEG-LS or
JPEG 2000 frame reaches a decoder, this module

* reads the image size from the stream's frame header (JPEG / JPEG-LS ``SOFn``,
  JPEG 2000 ``SIZ``), so that a size above the limit is refused before any
  allocation (:func:`size_problem`);
* walks a JPEG stream's markers: SOI first, every segment's length followed, EOI
  the last two bytes (:func:`jpeg_stream_problem`);
* decodes 8-bit Huffman JPEG streams with libjpeg-turbo (simplejpeg) in strict
  mode, where a premature end of the entropy-coded data (a stream cut and closed
  with an EOI marker), a bad Huffman code or a lost restart marker is an error,
  not a warning: :func:`decode_jpeg_strict` is the fast path's decoder and
  :func:`jpeg_entropy_problem` the reference path's check.

Functions return the reason as text (None when the stream is fine), or raise
:class:`StreamError`; :mod:`rsna_detector.data.dicom` turns both into its
``DicomReadError`` naming the file.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import RsnaDetectorError

__all__ = ["FrameHeader", "StreamError", "frame_header", "size_problem", "jpeg_stream_problem",
           "strict_decoding_applies", "decode_jpeg_strict", "jpeg_entropy_problem"]

#: JPEG start-of-frame markers (SOF0-SOF15 less DHT C4, JPG C8, DAC CC) and JPEG-LS SOF55 (F7).
_SOF_MARKERS = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF, 0xF7})
#: Huffman-coded baseline, extended and progressive frames: what libjpeg-turbo decodes (at 8 bits).
_HUFFMAN_DCT = frozenset({0xC0, 0xC1, 0xC2})
#: libjpeg-turbo's warnings that mean image data was lost (``jerror.h``): with strict decoding
#: simplejpeg raises them; other warnings (an unknown JFIF revision, extraneous bytes between
#: segments) leave the pixels whole.
_DATA_LOSS = ("premature end", "bad huffman code", "instead of rst", "inconsistent progression",
              "invalid sos parameters", "bad arithmetic code", "huffman table")


class StreamError(RsnaDetectorError, ValueError):
    """A compressed stream is cut short or corrupt; the message says how (the caller names the file)."""


@dataclass(frozen=True)
class FrameHeader:
    """The image a compressed stream declares.

    Attributes
    ----------
    marker : int or None
        The JPEG ``SOFn`` marker's second byte (``0xC0`` baseline, ``0xF7``
        JPEG-LS); None for JPEG 2000.
    precision : int
        Bits per sample.
    rows, columns : int
        Height and width in pixels.
    components : int
        Samples per pixel.
    """

    marker: int | None
    precision: int
    rows: int
    columns: int
    components: int


def _jpeg_frame_header(data):
    """The ``SOFn`` segment of a JPEG or JPEG-LS stream, read up to the first SOS; None when absent."""
    position, size = 2, len(data)
    while position + 4 <= size and data[position] == 0xFF:
        marker = data[position + 1]
        if marker == 0xFF:
            position += 1
            continue
        if marker == 0xDA or marker == 0xD9:
            return None
        length = int.from_bytes(data[position + 2:position + 4], "big")
        if marker in _SOF_MARKERS and position + 10 <= size:
            segment = data[position + 4:position + 10]
            return FrameHeader(marker, segment[0], int.from_bytes(segment[1:3], "big"),
                               int.from_bytes(segment[3:5], "big"), segment[5])
        position += 2 + length
    return None


def _j2k_frame_header(data):
    """The ``SIZ`` segment of a JPEG 2000 codestream (``FF4F FF51``); None when absent."""
    start = data.find(b"\xff\x4f\xff\x51", 0, 4096)
    if start < 0 or start + 42 > len(data):
        return None
    siz = data[start + 4:]
    field = [int.from_bytes(siz[i:i + 4], "big") for i in range(4, 20, 4)]  # Xsiz, Ysiz, XOsiz, YOsiz
    components = int.from_bytes(siz[36:38], "big")
    precision = (siz[38] & 0x7F) + 1 if len(siz) > 38 else 0
    return FrameHeader(None, precision, max(field[1] - field[3], 0), max(field[0] - field[2], 0), components)


def frame_header(stream):
    """The image size a JPEG, JPEG-LS or JPEG 2000 stream declares, read without decoding.

    Parameters
    ----------
    stream : bytes
        One encapsulated frame (DICOM padding included).

    Returns
    -------
    FrameHeader or None
        None when no frame header is found (the stream is then refused by the
        marker checks, or by the decoder).
    """
    data = bytes(stream)
    if data.startswith(b"\xff\xd8"):
        return _jpeg_frame_header(data)
    return _j2k_frame_header(data)


def size_problem(rows, columns, limit, what):
    """Why an image of ``rows`` x ``columns`` pixels is refused (above ``limit`` pixels), or None.

    Parameters
    ----------
    rows, columns : int
    limit : int
        The most pixels (``rows * columns``) allowed.
    what : str
        Where the size was read (``'Rows x Columns'``, ``'the JPEG frame header'``).
    """
    pixels = int(rows) * int(columns)
    if pixels <= int(limit):
        return None
    return (f"image too large: {what} says {rows} x {columns} = {pixels:,} pixels, above the limit of "
            f"{int(limit):,} (rsna_detector.data.dicom.MAX_IMAGE_PIXELS or the environment variable "
            "RSNA_DETECTOR_MAX_IMAGE_PIXELS; raise it to read larger images): not decoded")


# ---------------------------------------------------------------- JPEG marker structure
def jpeg_stream_problem(stream):
    """Why a JPEG stream (SOI ... EOI) is truncated or corrupt, or None.

    Walks the markers: each segment's length is followed, the entropy-coded data
    after SOS runs to the next marker that is neither a stuffed ``FF00`` nor a
    restart marker, and EOI must be the last two bytes (before the DICOM
    padding, ``00``). A stream cut and closed with an EOI passes this walk: the
    strict decode (:func:`decode_jpeg_strict`, :func:`jpeg_entropy_problem`)
    finds that one.
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


# ---------------------------------------------------------------- strict entropy decoding
def strict_decoding_applies(header):
    """True for the streams libjpeg-turbo decodes: 8-bit Huffman (baseline, extended, progressive), 1 or 3 samples."""
    return (header is not None and header.marker in _HUFFMAN_DCT and header.precision == 8
            and header.components in (1, 3))


def decode_jpeg_strict(stream, factor=1):
    """Decode an 8-bit JPEG stream to grey with libjpeg-turbo, refusing any loss of image data.

    Parameters
    ----------
    stream : bytes
        A JPEG stream that :func:`strict_decoding_applies` to.
    factor : {1, 2, 4, 8}
        DCT-domain downscaling (libjpeg's scaled IDCT, what Pillow's ``draft``
        does): the output is ``ceil(H / factor) x ceil(W / factor)``.

    Returns
    -------
    numpy.ndarray
        uint8 [H', W] grey (colour streams through libjpeg's YCbCr->grey).

    Raises
    ------
    StreamError
        The entropy-coded data ends early (a stream cut and closed with EOI), a
        Huffman code is bad, a restart marker is lost, or libjpeg-turbo cannot
        decode the stream at all.
    """
    import simplejpeg

    header = frame_header(stream)
    options = {"colorspace": "GRAY", "min_factor": factor}
    if header is not None:
        options.update(min_height=-(-header.rows // factor), min_width=-(-header.columns // factor))
    try:
        image = simplejpeg.decode_jpeg(bytes(stream), strict=True, **options)
    except ValueError as error:
        if any(text in str(error).lower() for text in _DATA_LOSS):
            raise StreamError(f"JPEG stream truncated or corrupt: {error}") from error
        try:  # a warning that loses no image data (e.g. an unknown JFIF revision)
            image = simplejpeg.decode_jpeg(bytes(stream), strict=False, **options)
        except ValueError as fatal:
            raise StreamError(f"JPEG stream corrupt: {fatal}") from fatal
    return np.ascontiguousarray(image[..., 0])


def jpeg_entropy_problem(stream):
    """Why the entropy-coded data of a JPEG stream is incomplete or corrupt, or None (the reference path's check).

    Decodes at 1/8 scale with :func:`decode_jpeg_strict` (every coefficient is
    still read; about a third of a full decode's time). Streams it does not
    apply to (12/16-bit, lossless, JPEG-LS, arithmetic coding) return None:
    only their marker structure is checked.
    """
    if not strict_decoding_applies(frame_header(stream)):
        return None
    try:
        decode_jpeg_strict(stream, factor=8)
    except StreamError as error:
        return str(error)
    return None

"""A TensorFlow Serving REST client for the exported detector: the request from DICOM files, the answer as boxes.

TF Serving answers ``POST http://HOST:8501/v1/models/<name>:predict`` with a JSON
body. :func:`serving_request` builds the body from DICOM files in the "columnar"
form, ``{"signature_name": "serving_default", "inputs": {"images": [[...]]}}``
(one uint8 grey image per file, all of one size); TF Serving's answer is
``{"outputs": {"boxes": ..., "class_ids": ..., "scores": ..., "num_detections":
...}}``, which :func:`parse_serving_response` turns into one
``submission.ImagePrediction`` per file, boxes in the file's own pixels (ready
for ``write_submission``). :func:`post_serving_request` sends it (standard
library only). docs/DEPLOY.md shows the request and answer.

Read at ``size`` (e.g. 256 for the RSNA model), a 1024 x 1024 file becomes a
16 times smaller request; the model gets what ``predict`` gives it (the same
decode at that size) and the boxes are scaled back to the file's pixels as
``predict`` scales them.
"""
from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import RsnaDetectorError

__all__ = ["ServingError", "ServingRequest", "serving_request", "parse_serving_response", "post_serving_request"]


class ServingError(RsnaDetectorError, ValueError):
    """A request that cannot be built, or an answer that is not the exported detector's."""


@dataclass
class ServingRequest:
    """A predict request for TF Serving, and what is needed to read its answer.

    Attributes
    ----------
    body : dict
        The JSON body: ``signature_name`` and ``inputs.images`` (uint8 values as
        nested lists, ``[N, H, W]``).
    patient_ids : list of str
        The files' names without ``.dcm``, in the batch's order.
    scales : ndarray, float32, [N, 4]
        Multiplies a box ``(y1, x1, y2, x2)`` in the sent image's pixels into the file's pixels.
    """

    body: dict
    patient_ids: list = field(default_factory=list)
    scales: np.ndarray = None

    def to_json(self):
        """The body as JSON text (what to POST)."""
        return json.dumps(self.body)


def serving_request(paths, *, size=None, signature_name="serving_default", fast=True):
    """The TF Serving predict request for DICOM files.

    Parameters
    ----------
    paths : str, Path or sequence of them
        DICOM files whose images have one size (or any sizes, with ``size``).
    size : int, optional
        Read each image at ``size x size`` (``data.dicom.read_dicom``); None sends
        the files' own pixels.
    signature_name : str
        ``serving_default`` (grey ``[N, H, W]``); the export's other signature,
        ``serving_nhwc``, needs ``[N, H, W, C]``.
    fast : bool
        ``read_dicom``'s fast JPEG path.

    Returns
    -------
    ServingRequest

    Raises
    ------
    ServingError
        No file, or files of different sizes without ``size``.
    DicomReadError
        A file that cannot be read (named).
    """
    from ..data.dicom import read_dicom

    paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
    if not paths:
        raise ServingError("serving_request: no DICOM file given")
    images, scales = [], []
    for path in paths:
        image, meta = read_dicom(path, size=size, fast=fast)
        images.append(image)
        height, width = image.shape[:2]
        scales.append([meta.rows / height, meta.columns / width, meta.rows / height, meta.columns / width])
    shapes = {image.shape for image in images}
    if len(shapes) > 1:
        raise ServingError(f"serving_request: the images have different sizes {sorted(shapes)}: one request holds "
                           "one size; give size= or send them in separate requests")
    body = {"signature_name": signature_name, "inputs": {"images": np.stack(images).tolist()}}
    return ServingRequest(body, [Path(path).stem for path in paths], np.asarray(scales, np.float32))


def parse_serving_response(response, request):
    """The detections of each file from TF Serving's answer to ``request``.

    Parameters
    ----------
    response : dict or str
        The answer's JSON (``{"outputs": {...}}``) or its text; an ``{"error": ...}``
        answer raises.
    request : ServingRequest

    Returns
    -------
    list of submission.ImagePrediction
        One per file, in the request's order: ``boxes`` float32 ``[n, (y1, x1, y2, x2)]``
        in the file's pixels, ``scores`` float32 ``[n]``.

    Raises
    ------
    ServingError
        An error answer, or one without the detector's outputs for every image.
    """
    from ..mrcnn.export.runners import results_from_outputs
    from .submission import ImagePrediction

    if isinstance(response, (str, bytes)):
        response = json.loads(response)
    if "error" in response:
        raise ServingError(f"TF Serving answered with an error: {response['error']}")
    outputs = response.get("outputs")
    needed = {"boxes", "class_ids", "scores", "num_detections"}
    if not isinstance(outputs, dict) or not needed <= set(outputs):
        raise ServingError(f"TF Serving's answer has no outputs {sorted(needed)} (columnar 'outputs' expected, "
                           f"got keys {sorted(response)})")
    results = results_from_outputs(outputs)
    if len(results) != len(request.patient_ids):
        raise ServingError(f"TF Serving answered for {len(results)} images, the request held "
                           f"{len(request.patient_ids)}")
    return [ImagePrediction(patient_id, result["rois"].astype(np.float32) * scale, result["scores"])
            for patient_id, result, scale in zip(request.patient_ids, results, request.scales, strict=True)]


def post_serving_request(url, request, *, timeout=60.0):
    """POST ``request`` to a TF Serving predict URL and return its answer (a dict).

    Parameters
    ----------
    url : str
        ``http://HOST:8501/v1/models/<name>:predict`` (or ``.../versions/<v>:predict``).
    request : ServingRequest
    timeout : float
        Seconds.

    Raises
    ------
    ServingError
        TF Serving's error answer (HTTP 4xx/5xx with ``{"error": ...}``).
    OSError
        The server cannot be reached.
    """
    post = urllib.request.Request(url, data=request.to_json().encode(), method="POST",
                                  headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(post, timeout=timeout) as answer:
            return json.loads(answer.read())
    except urllib.error.HTTPError as error:
        raise ServingError(f"{url}: HTTP {error.code}: {error.read().decode(errors='replace')[:500]}") from error

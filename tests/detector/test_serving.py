"""The TF Serving REST client (issue 21): requests built from DICOM files, answers read back as boxes.

No server: the request's JSON goes through the exported SavedModel called directly, the way
TF Serving feeds a columnar request to a signature, and the outputs come back in TF Serving's
columnar answer (``{"outputs": {name: nested lists}}``). The boxes must be ``detect()``'s on
the same pixels, scaled to the file's pixels as ``predict`` scales them.
"""
import http.server
import json
import threading

import numpy as np
import pytest
import tensorflow as tf

from rsna_detector.data.dicom import read_dicom
from rsna_detector.detector.serving import (
    ServingError,
    parse_serving_response,
    post_serving_request,
    serving_request,
)
from tests.helpers import smooth_image, write_jpeg_dicom


@pytest.fixture(scope="module")
def served(exported_detector):
    return exported_detector.model, tf.saved_model.load(str(exported_detector.version))


def _tf_serving_answer(loaded, request_json):
    """What TF Serving answers to a columnar predict request (JSON in, JSON out; the masks left out for speed)."""
    body = json.loads(request_json)
    signature = loaded.signatures[body["signature_name"]]
    outputs = signature(images=tf.constant(np.asarray(body["inputs"]["images"], np.uint8)))
    return json.dumps({"outputs": {name: value.numpy().tolist() for name, value in outputs.items() if name != "masks"}})


def test_the_request_holds_the_files_pixels(rsna_dir):
    paths = sorted((rsna_dir / "images").glob("*.dcm"))[:3]
    request = serving_request(paths, size=64)
    images = np.asarray(request.body["inputs"]["images"])
    assert request.body["signature_name"] == "serving_default" and images.shape == (3, 64, 64)
    np.testing.assert_array_equal(images[1], read_dicom(paths[1], size=64)[0])
    assert request.patient_ids == [path.stem for path in paths]
    np.testing.assert_array_equal(request.scales, np.full((3, 4), 1024 / 64, np.float32))
    assert json.loads(request.to_json()) == request.body


def test_a_served_answer_gives_detect_on_the_same_pixels(served, rsna_dir):
    model, loaded = served
    paths = sorted((rsna_dir / "images").glob("*.dcm"))
    request = serving_request(paths, size=64)
    predictions = parse_serving_response(_tf_serving_answer(loaded, request.to_json()), request)
    expected = model.detect([read_dicom(path, size=64)[0] for path in paths])
    assert [p.patient_id for p in predictions] == [path.stem for path in paths]
    assert sum(len(p.boxes) for p in predictions) > 0
    for prediction, reference in zip(predictions, expected, strict=True):
        np.testing.assert_array_equal(prediction.boxes, reference["rois"].astype(np.float32) * 16)
        np.testing.assert_array_equal(prediction.scores, reference["scores"])


def test_full_size_files_are_sent_as_they_are(served, rsna_dir):
    model, loaded = served
    paths = sorted((rsna_dir / "images").glob("*.dcm"))[:2]
    request = serving_request(paths)
    assert np.asarray(request.body["inputs"]["images"]).shape == (2, 1024, 1024)
    predictions = parse_serving_response(json.loads(_tf_serving_answer(loaded, request.to_json())), request)
    expected = model.detect([read_dicom(path)[0] for path in paths])
    for prediction, reference in zip(predictions, expected, strict=True):
        np.testing.assert_array_equal(prediction.boxes, reference["rois"].astype(np.float32))


def test_files_of_different_sizes_need_a_size(tmp_path):
    small = write_jpeg_dicom(tmp_path / "small.dcm", smooth_image(64, 64))
    large = write_jpeg_dicom(tmp_path / "large.dcm", smooth_image(96, 80))
    with pytest.raises(ServingError, match="different sizes"):
        serving_request([small, large])
    request = serving_request([small, large], size=32)
    np.testing.assert_allclose(request.scales[1], [96 / 32, 80 / 32, 96 / 32, 80 / 32])


def test_error_and_foreign_answers_are_named(tmp_path):
    request = serving_request(write_jpeg_dicom(tmp_path / "a.dcm", smooth_image(64, 64)))
    with pytest.raises(ServingError, match="answered with an error: images: the batch is empty"):
        parse_serving_response({"error": "images: the batch is empty"}, request)
    with pytest.raises(ServingError, match="no outputs"):
        parse_serving_response({"predictions": [[0.1]]}, request)


class _FakeServing(http.server.BaseHTTPRequestHandler):
    """Answers POST .../rsna:predict with a fixed detection; anything else with TF Serving's error form."""

    received = []

    def do_POST(self):  # noqa: N802 (http.server's name)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        _FakeServing.received.append((self.path, body))
        ok = self.path.endswith("/rsna:predict")
        answer = {"outputs": {"boxes": [[[1, 2, 3, 4]]], "class_ids": [[1]], "scores": [[0.9]],
                              "num_detections": [1]}} if ok else {"error": "Servable not found"}
        payload = json.dumps(answer).encode()
        self.send_response(200 if ok else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


def test_post_sends_the_json_and_reads_the_answer(tmp_path):
    request = serving_request(write_jpeg_dicom(tmp_path / "p1.dcm", smooth_image(64, 64)))
    server = http.server.HTTPServer(("127.0.0.1", 0), _FakeServing)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{server.server_port}/v1/models"
        answer = post_serving_request(f"{base}/rsna:predict", request, timeout=30)
        with pytest.raises(ServingError, match="HTTP 404: .*Servable not found"):
            post_serving_request(f"{base}/other:predict", request, timeout=30)
    finally:
        server.shutdown()
        thread.join(timeout=30)
        server.server_close()
    assert _FakeServing.received[0] == ("/v1/models/rsna:predict", request.body)
    (prediction,) = parse_serving_response(answer, request)
    assert prediction.patient_id == "p1"
    np.testing.assert_array_equal(prediction.boxes, [[1, 2, 3, 4]])

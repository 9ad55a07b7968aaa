"""Issue 21: the exported detector gives what ``detect()`` gives, in every format.

One seeded tiny model (``helpers.seeded_detector``: random weights that detect bright
blobs and nothing on a dark image) is exported once per session (``exported_detector``,
``detector.export.export_detector``) as a SavedModel, a float32 TFLite file and an ONNX file. The SavedModel runs in a fresh process that never imports rsna_detector
(plain ``tf.saved_model.load``); TFLite and ONNX Runtime run here. Each is compared
with ``MaskRCNN.detect`` on synthetic images of several sizes (grey and RGB, batches
of 1 and 8, one image without detections) and on the 16 real RSNA DICOMs: same
count, boxes within 1 pixel, scores within 1e-4, masks' IoU above 0.99.
"""
import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from rsna_detector.detector.export import compare_results
from rsna_detector.mrcnn.export import ExportError, OnnxDetector, TFLiteDetector
from rsna_detector.mrcnn.export.runners import results_from_outputs

SCORE_TOLERANCE = 1e-4
#: TFLite's pre-processing is float32 (no float64 in its built-in ops): where scikit-image's float64 resize lands
#: within float32's precision of an integer, a pixel comes out one grey level off. Exact for no resize and for
#: power-of-two factors (RSNA's 1024 -> 256); otherwise the scores move a little (measured: 2.0e-4 at most here).
TFLITE_RESIZED_SCORE_TOLERANCE = 1e-3


@pytest.fixture(scope="module")
def exported(exported_detector):
    return exported_detector


def _blobs(rng, count, height, width, channels=None):
    """Dark noisy images with bright rectangles and ellipses (what the random model reacts to)."""
    images = rng.integers(0, 50, (count, height, width)).astype(np.uint8)
    yy, xx = np.mgrid[0:height, 0:width]
    for image in images:
        for _ in range(2):
            cy, cx = rng.uniform(0.2, 0.8) * height, rng.uniform(0.2, 0.8) * width
            ry, rx = rng.uniform(0.1, 0.3) * height, rng.uniform(0.1, 0.3) * width
            image[((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1] = rng.integers(150, 256)
    return np.repeat(images[..., None], channels, axis=3) if channels else images


#: Synthetic cases whose resize factor float32 does not represent exactly (see TFLITE_RESIZED_SCORE_TOLERANCE).
FLOAT32_INEXACT = {"rgb 100x80 batch 3 (scale 0.64)", "grey 41x50 batch 2 (scale 1.28)"}


def _synthetic_cases():
    """Batches of one size each: (name, uint8 array); 64 is the model's size (no resize)."""
    rng = np.random.default_rng(0)
    return [
        ("grey 64 batch 1", _blobs(rng, 1, 64, 64)),
        ("rgb 64 batch 8", _blobs(rng, 8, 64, 64, channels=3)),
        ("grey 256 batch 8 (scale 1/4)", _blobs(rng, 8, 256, 256)),
        ("grey [N, H, W, 1] 128x96 batch 2 (scale 1/2)", _blobs(rng, 2, 128, 96, channels=1)),
        ("rgb 100x80 batch 3 (scale 0.64)", _blobs(rng, 3, 100, 80, channels=3)),
        ("grey 41x50 batch 2 (scale 1.28)", _blobs(rng, 2, 41, 50)),
        ("black 64: no detections", np.zeros((1, 64, 64), np.uint8)),
    ]


def _real_cases(rsna_dir):
    from rsna_detector.data.dicom import read_dicom_image

    paths = sorted((rsna_dir / "images").glob("*.dcm"))
    assert len(paths) == 16
    images = np.stack([read_dicom_image(path, fast=False) for path in paths])  # 1024 x 1024, full size
    return [("16 RSNA DICOMs batch 8 (a)", images[:8]), ("16 RSNA DICOMs batch 8 (b)", images[8:])]


#: Run in a fresh interpreter: TensorFlow and numpy only.
_SAVED_MODEL_SCRIPT = textwrap.dedent("""
    import sys
    import numpy as np
    import tensorflow as tf
    folder, inputs, outputs = sys.argv[1:4]
    detector = tf.saved_model.load(folder)
    serve = detector.signatures["serving_default"]
    cases = np.load(inputs)
    results = {}
    for name in cases.files:
        for key, value in serve(images=tf.constant(cases[name])).items():
            results[f"{name}/{key}"] = value.numpy()
    np.savez(outputs, **results)
    assert not any(module.split(".")[0] == "rsna_detector" for module in sys.modules), "rsna_detector was imported"
    print("modules:", "rsna_detector" in sys.modules)
""")


def _run_saved_model_in_fresh_process(exported, cases, tmp_path):
    inputs, outputs = tmp_path / "cases.npz", tmp_path / "outputs.npz"
    np.savez(inputs, **{f"case{k}": images for k, (_, images) in enumerate(cases)})
    script = tmp_path / "run_saved_model.py"
    script.write_text(_SAVED_MODEL_SCRIPT)
    done = subprocess.run([sys.executable, str(script), str(exported.version), str(inputs), str(outputs)],
                          capture_output=True, text=True, timeout=900, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "modules: False" in done.stdout
    loaded = np.load(outputs)
    return [{key.split("/")[1]: loaded[key] for key in loaded.files if key.startswith(f"case{k}/")}
            for k in range(len(cases))]


def _assert_parity(name, expected, got, score_tolerance=SCORE_TOLERANCE):
    worst = compare_results(expected, got)
    assert (worst["count_mismatches"] == 0 and worst["max_box_difference"] <= 1
            and worst["max_score_difference"] <= score_tolerance and worst["min_mask_iou"] > 0.99), (name, worst)
    return worst


def _assert_exact(name, worst):
    assert (worst["max_box_difference"] == 0 and worst["max_score_difference"] == 0.0
            and worst["min_mask_iou"] == 1.0), (name, worst)


@pytest.fixture(scope="module")
def synthetic(exported):
    cases = _synthetic_cases()
    return cases, [exported.model.detect(list(images)) for _, images in cases]


def test_the_cases_have_detections_and_one_image_has_none(synthetic):
    cases, expected = synthetic
    counts = {name: sum(len(r["rois"]) for r in results) for (name, _), results in zip(cases, expected)}
    assert counts["black 64: no detections"] == 0
    assert sum(counts.values()) >= 10 and sum(1 for count in counts.values() if count) >= 5, counts


def test_saved_model_in_a_process_without_rsna_detector_equals_detect(exported, synthetic, tmp_path):
    cases, expected = synthetic
    outputs = _run_saved_model_in_fresh_process(exported, cases, tmp_path)
    for (name, _), reference, output in zip(cases, expected, outputs, strict=True):
        _assert_exact(name, _assert_parity(name, reference, results_from_outputs(output)))


def test_saved_model_equals_detect_on_real_dicoms(exported, rsna_dir, tmp_path):
    cases = _real_cases(rsna_dir)
    outputs = _run_saved_model_in_fresh_process(exported, cases, tmp_path)
    detections = 0
    for (name, images), output in zip(cases, outputs, strict=True):
        worst = _assert_parity(name, exported.model.detect(list(images)), results_from_outputs(output))
        _assert_exact(name, worst)
        detections += worst["detections"]
    assert detections > 0


@pytest.mark.parametrize("fmt", ["tflite", "onnx"])
def test_tflite_and_onnx_equal_detect(exported, synthetic, fmt):
    detector = TFLiteDetector(exported.tflite) if fmt == "tflite" else OnnxDetector(exported.onnx)
    cases, expected = synthetic
    for (name, images), reference in zip(cases, expected, strict=True):
        inexact = fmt == "tflite" and name in FLOAT32_INEXACT
        _assert_parity(f"{fmt}: {name}", reference, detector.detect(images),
                       TFLITE_RESIZED_SCORE_TOLERANCE if inexact else SCORE_TOLERANCE)


@pytest.mark.parametrize("fmt", ["tflite", "onnx"])
def test_tflite_and_onnx_equal_detect_on_real_dicoms(exported, rsna_dir, fmt):
    detector = TFLiteDetector(exported.tflite) if fmt == "tflite" else OnnxDetector(exported.onnx)
    for name, images in _real_cases(rsna_dir):
        _assert_parity(f"{fmt}: {name}", exported.model.detect(list(images)), detector.detect(images))


_ONNX_ONLY_SCRIPT = textwrap.dedent("""
    import sys
    import numpy as np
    import onnxruntime as ort
    session = ort.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])
    images = np.zeros((2, 64, 64, 1), np.uint8)
    images[:, 20:40, 10:50] = 220
    names = [output.name for output in session.get_outputs()]
    outputs = dict(zip(names, session.run(names, {"images": images})))
    assert not any(module.split(".")[0] in ("tensorflow", "rsna_detector") for module in sys.modules)
    print({name: list(value.shape) for name, value in outputs.items()})
""")


def test_the_onnx_file_runs_with_onnxruntime_alone(exported, tmp_path):
    script = tmp_path / "onnx_only.py"
    script.write_text(_ONNX_ONLY_SCRIPT)
    done = subprocess.run([sys.executable, str(script), str(exported.onnx)], capture_output=True, text=True,
                          timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    shapes = json.loads(done.stdout.strip().replace("'", '"'))
    depth = exported.model.config.DETECTION_MAX_INSTANCES
    assert shapes == {"boxes": [2, depth, 4], "class_ids": [2, depth], "masks": [2, depth, 64, 64],
                      "num_detections": [2], "scores": [2, depth]}


@pytest.mark.parametrize("bad, message", [
    (np.zeros((1, 64, 64), np.float32), "expected uint8"),
    (np.zeros((64, 64), np.uint8), "got shape"),
    (np.zeros((1, 64, 64, 2), np.uint8), "got shape"),
    (np.zeros((0, 64, 64), np.uint8), "empty"),
])
def test_the_runners_name_bad_input(exported, bad, message):
    for detector in (TFLiteDetector(exported.tflite), OnnxDetector(exported.onnx)):
        with pytest.raises(ExportError, match=message):
            detector(bad)


def test_the_saved_model_names_bad_input_inside_the_graph(exported):
    import tensorflow as tf

    serve = tf.saved_model.load(str(exported.version)).signatures["serving_default"]
    for bad, message in [(np.zeros((64, 64), np.uint8), r"images: expected uint8 images \[N, H, W\]"),
                         (np.zeros((1, 2, 64, 64, 3), np.uint8), r"got shape\] \[1 2 64 64 3\]"),
                         (np.zeros((1, 64, 64, 2), np.uint8), "got shape"),
                         (np.zeros((0, 64, 64), np.uint8), "the batch is empty"),
                         (np.zeros((1, 64, 64), np.float32), "expected to be a uint8 tensor")]:
        with pytest.raises(tf.errors.InvalidArgumentError, match=message):
            serve(images=tf.constant(bad))

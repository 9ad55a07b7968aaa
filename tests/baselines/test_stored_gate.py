"""Classifier gating stored in the post-processing description and applied to predictions."""
import numpy as np
import pytest

from rsna_detector.baselines.gating import GatingError, apply_stored_gate, store_gate
from rsna_detector.detector.postprocess import PostProcessing
from rsna_detector.detector.submission import ImagePrediction
from tests.helpers import smooth_image, write_jpeg_dicom


def _constant_classifier(path, bias):
    """A 'vgg19' classifier whose score is sigmoid(bias) for every image (its weights are zero)."""
    import keras

    inputs = keras.Input((32, 32, 3))
    pooled = keras.layers.GlobalAveragePooling2D()(inputs)
    output = keras.layers.Dense(1, activation="sigmoid", kernel_initializer="zeros",
                                bias_initializer=keras.initializers.Constant(bias))(pooled)
    path.parent.mkdir(parents=True, exist_ok=True)
    keras.Model(inputs, output, name="vgg19_pneumonia").save(path)
    return path


@pytest.fixture
def stored(tmp_path):
    files = [write_jpeg_dicom(tmp_path / f"{pid}.dcm", smooth_image(64, 64, seed=i)) for i, pid in enumerate("ab")]
    PostProcessing(min_confidence=0.5).save(tmp_path / "postprocessing.json")
    predictions = [ImagePrediction(pid, [[1, 2, 30, 40]], [0.9]) for pid in "ab"]
    return tmp_path, files, predictions


@pytest.mark.parametrize("bias, kept", [(-5.0, 0), (5.0, 1)])  # scores 0.0067 and 0.9933 against the gate 0.5
def test_the_stored_gate_vetoes_images_its_classifier_scores_below_the_threshold(stored, bias, kept):
    folder, files, predictions = stored
    classifier = _constant_classifier(folder / "models" / "gate.keras", bias)
    description = store_gate(folder, 0.5, classifier)
    assert description.gate_threshold == 0.5 and description.gate_classifier == "models/gate.keras"
    assert PostProcessing.load(folder / "postprocessing.json") == description
    assert "classifier gate 0.5" in description.describe()
    gated = apply_stored_gate(predictions, files, description, folder)
    assert [p.patient_id for p in gated] == ["a", "b"]
    assert [len(p.boxes) for p in gated] == [kept, kept]
    np.testing.assert_array_equal(gated[0].boxes.shape, (kept, 4))


def test_no_gate_changes_nothing_and_a_gate_needs_its_classifier(stored):
    folder, files, predictions = stored
    assert apply_stored_gate(predictions, files, PostProcessing(), folder) == predictions
    with pytest.raises(GatingError, match="gate_threshold without gate_classifier"):
        apply_stored_gate(predictions, files, PostProcessing(gate_threshold=0.5), folder)
    with pytest.raises(FileNotFoundError, match="nothing.keras: classifier file not found"):
        store_gate(folder, 0.5, folder / "nothing.keras")

"""Classifier baselines: metrics against hand-computed values, models, CheXNet weights, data pipeline."""
import json

import numpy as np
import pytest

from rsna_detector.baselines import classifier as clf
from rsna_detector.weights.keras2_hdf5 import read_hdf5_weights

# y = [1, 0, 1, 0], scores = [0.9, 0.8, 0.7, 0.1]: the hand-worked example of several tests
Y = np.array([1, 0, 1, 0])
S = np.array([0.9, 0.8, 0.7, 0.1])


# --------------------------------------------------------------------------- numpy metrics
def test_roc_curve_and_auc_by_hand():
    fpr, tpr, thresholds = clf.roc_curve(Y, S)
    # score >= 0.9: TP 1 FP 0; >= 0.8: 1, 1; >= 0.7: 2, 1; >= 0.1: 2, 2
    np.testing.assert_allclose(fpr, [0, 0, 0.5, 0.5, 1])
    np.testing.assert_allclose(tpr, [0, 0.5, 0.5, 1, 1])
    np.testing.assert_allclose(thresholds, [np.inf, 0.9, 0.8, 0.7, 0.1])
    # pairs (positive above negative): 0.9>0.8, 0.9>0.1, 0.7<0.8, 0.7>0.1 -> 3/4
    assert clf.roc_auc(Y, S) == pytest.approx(0.75)


def test_roc_auc_counts_ties_as_one_half():
    # positive 0.5 ties negative 0.5 (1/2), positive 0.2 below it (0) -> 0.5 / 2 pairs
    assert clf.roc_auc([1, 0, 1], [0.5, 0.5, 0.2]) == pytest.approx(0.25)
    fpr, tpr, _ = clf.roc_curve([1, 0, 1], [0.5, 0.5, 0.2])
    np.testing.assert_allclose(fpr, [0, 1, 1])
    np.testing.assert_allclose(tpr, [0, 0.5, 1])


def test_average_precision_by_hand():
    precision, recall, thresholds = clf.pr_curve(Y, S)
    np.testing.assert_allclose(precision, [1, 0.5, 2 / 3, 0.5])
    np.testing.assert_allclose(recall, [0.5, 0.5, 1, 1])
    np.testing.assert_allclose(thresholds, [0.9, 0.8, 0.7, 0.1])
    # AP = 0.5 * 1 + 0 * 0.5 + 0.5 * 2/3 + 0 * 0.5
    assert clf.average_precision(Y, S) == pytest.approx(0.5 + 1 / 3)


def test_perfect_and_single_class_scores():
    assert clf.roc_auc([0, 0, 1, 1], [0.1, 0.2, 0.3, 0.4]) == 1.0
    assert clf.average_precision([0, 0, 1, 1], [0.1, 0.2, 0.3, 0.4]) == 1.0
    assert np.isnan(clf.roc_auc([1, 1], [0.2, 0.3]))
    assert np.isnan(clf.average_precision([0, 0], [0.2, 0.3]))
    assert clf.best_f1_threshold([0, 0], [0.2, 0.3]) == (pytest.approx(np.nan, nan_ok=True), 0.0)


def test_confusion_matrix_and_best_f1_by_hand():
    np.testing.assert_array_equal(clf.confusion_matrix(Y, S, 0.75), [[1, 1], [1, 1]])
    np.testing.assert_array_equal(clf.confusion_matrix(Y, S, 0.7), [[1, 1], [0, 2]])  # >= threshold
    # F1 at 0.9: 2/3; 0.8: 1/2; 0.7: 4/5; 0.1: 2/3
    threshold, f1 = clf.best_f1_threshold(Y, S)
    assert threshold == pytest.approx(0.7)
    assert f1 == pytest.approx(0.8)


def test_classification_metrics_and_figures(tmp_path):
    metrics = clf.classification_metrics(Y, S, threshold=0.75, out_dir=tmp_path)
    assert metrics["confusion_matrix"] == [[1, 1], [1, 1]]
    assert metrics["accuracy"] == pytest.approx(0.5)
    assert metrics["precision"] == pytest.approx(0.5)
    assert metrics["recall"] == pytest.approx(0.5)
    assert metrics["f1"] == pytest.approx(0.5)
    assert metrics["best_threshold"] == pytest.approx(0.7)
    assert metrics["best_confusion_matrix"] == [[1, 1], [0, 2]]
    assert metrics["roc_auc"] == pytest.approx(0.75)
    for path in metrics["figures"].values():
        assert (tmp_path / path.rsplit("/", 1)[-1]).stat().st_size > 1000
    assert json.loads((tmp_path / "metrics.json").read_text())["pr_auc"] == pytest.approx(0.5 + 1 / 3)


def test_metric_input_errors():
    with pytest.raises(clf.ClassifierError, match="one score per label"):
        clf.roc_auc([0, 1], [0.5])
    with pytest.raises(clf.ClassifierError, match="labels 0 and 1"):
        clf.roc_auc([0, 2], [0.5, 0.2])


def test_class_weights_inverse_frequency():
    assert clf.class_weights([0, 0, 0, 1]) == {0: pytest.approx(4 / 6), 1: pytest.approx(2.0)}
    assert clf.class_weights([1, 1]) == {0: 1.0, 1: pytest.approx(1.0)}


# --------------------------------------------------------------------------- the F1 training metric
def test_f1_metric_matches_hand_values():
    metric = clf.BinaryF1Score(threshold=0.5)
    # predictions > 0.5: [1, 1, 0, 1, 0] against [1, 0, 1, 1, 0]: TP 2, FP 1, FN 1 -> 4 / 6
    metric.update_state(np.array([[1], [0], [1]], "float32"), np.array([[0.9], [0.6], [0.4]], "float32"))
    metric.update_state(np.array([[1], [0]], "float32"), np.array([[0.7], [0.2]], "float32"))
    assert float(metric.result()) == pytest.approx(2 / 3)
    metric.reset_state()
    # 0.5 exactly is negative (> threshold, as keras Precision/Recall): TP 0, FN 1 -> 0
    metric.update_state(np.array([[1.0]]), np.array([[0.5]]))
    assert float(metric.result()) == 0.0
    metric.reset_state()
    # sample weights: TP weight 3, FP weight 1 -> 6 / 7
    metric.update_state(np.array([[1], [0]], "float32"), np.array([[0.9], [0.8]], "float32"),
                        sample_weight=np.array([3.0, 1.0], "float32"))
    assert float(metric.result()) == pytest.approx(6 / 7)


def test_f1_metric_agrees_with_numpy_f1():
    rng = np.random.default_rng(3)
    y, s = rng.integers(0, 2, 50), rng.random(50)
    metric = clf.BinaryF1Score(threshold=0.4)
    metric.update_state(y.astype("float32")[:, None], s.astype("float32")[:, None])
    predicted = s > 0.4
    tp, fp, fn = (predicted & (y == 1)).sum(), (predicted & (y == 0)).sum(), (~predicted & (y == 1)).sum()
    assert float(metric.result()) == pytest.approx(2 * tp / (2 * tp + fp + fn), rel=1e-6)


# --------------------------------------------------------------------------- preprocessing and augmentation
def test_preprocess_modes_by_hand():
    grey = np.full((1, 2, 2), 100, np.uint8)
    np.testing.assert_allclose(clf.preprocess_images(grey, "vgg19", "rescale"), 100 / 255, rtol=1e-6)
    # caffe mode (VGG19, ResNet50): BGR, minus the ImageNet means
    np.testing.assert_allclose(clf.preprocess_images(grey, "resnet50")[0, 0, 0], [100 - 103.939, 100 - 116.779,
                                                                                 100 - 123.68], rtol=1e-5)
    # torch mode (DenseNet121 / CheXNet): /255, minus mean, over std
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    np.testing.assert_allclose(clf.preprocess_images(grey, "chexnet")[0, 1, 1], (100 / 255 - mean) / std, rtol=1e-5)
    assert clf.preprocess_images(grey, "densenet121").shape == (1, 2, 2, 3)
    with pytest.raises(clf.ClassifierError, match="expected one of"):
        clf.preprocess_images(grey, "inception")


def test_augmentation_changes_pixels_not_shape():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (32, 32, 1), dtype=np.uint8)
    augmenter = clf.classifier_augmentation()
    augmenter.seed_(1)
    out = augmenter(images=[image] * 4)
    assert all(o.shape == (32, 32, 1) and o.dtype == np.uint8 for o in out)
    assert sum(not np.array_equal(o, image) for o in out) >= 3


# --------------------------------------------------------------------------- data
def write_classifier_data(out):
    """12 synthetic patients at 64 px in the Kaggle layout under ``out`` (the classifier tests' data set)."""
    from rsna_detector.data.synthetic import make_synthetic_dataset

    make_synthetic_dataset(out, n_train=12, n_test=0, seed=1, image_size=64, workers=1, progress=False)
    return out


@pytest.fixture(scope="module")
def synthetic_dir(tmp_path_factory):
    return write_classifier_data(tmp_path_factory.mktemp("classifier_data"))


def test_labelled_images_from_a_kaggle_dir(synthetic_dir):
    from rsna_detector.data.labels import load_patient_records

    ids, targets, paths = clf.labelled_images(synthetic_dir)
    records = load_patient_records(synthetic_dir / "stage_2_train_labels.csv")
    assert ids == list(records)
    assert targets.tolist() == [records[i].target for i in ids]
    assert all(p.name == f"{i}.dcm" and p.is_file() for i, p in zip(ids, paths, strict=True))


def test_labelled_images_keeps_patients_with_images(rsna_dir):
    ids, targets, paths = clf.labelled_images(rsna_dir)
    manifest = (rsna_dir / "MANIFEST.csv").read_text()
    assert len(ids) == 16 and int(targets.sum()) == 5  # the 16 sample DICOMs: 5 positive, 11 negative
    assert all(i in manifest for i in ids)


def test_sequence_batches(synthetic_dir):
    ids, targets, paths = clf.labelled_images(synthetic_dir)
    sequence = clf.ClassifierSequence(paths, targets, name="vgg19", image_size=32, batch_size=5)
    assert isinstance(sequence, clf.ClassifierSequence) and len(sequence) == 3
    images, labels = sequence[2]
    assert images.shape == (2, 32, 32, 3) and images.dtype == np.float32
    np.testing.assert_array_equal(labels[:, 0], targets[10:12])
    with pytest.raises(IndexError):
        sequence[3]


# --------------------------------------------------------------------------- models
@pytest.mark.parametrize("name", clf.CLASSIFIER_NAMES)
def test_every_classifier_builds_and_trains_one_step(name, synthetic_dir):
    model = clf.build_classifier(name, weights=None, input_shape=(32, 32, 3), run_eagerly=True)
    assert model.output_shape == (None, 1)
    assert model.name == f"{name}_pneumonia"
    _, targets, paths = clf.labelled_images(synthetic_dir)
    images, labels = clf.ClassifierSequence(paths[:4], targets[:4], name=name, image_size=32, batch_size=4,
                                            augment=True)[0]
    before = [np.array(w) for w in model.get_layer("pneumonia").get_weights()]
    logs = model.train_on_batch(images, labels, return_dict=True)
    assert set(logs) >= {"loss", "accuracy", "precision", "recall", "f1"} and np.isfinite(logs["loss"])
    after = model.get_layer("pneumonia").get_weights()
    assert not np.allclose(before[0], after[0])


def _keras2_name(name):
    """Keras 2.1's DenseNet121 spelled its stem ``conv1/conv``, ``conv1/bn``, ``conv1/relu``."""
    return {"conv1_conv": "conv1/conv", "conv1_bn": "conv1/bn", "conv1_relu": "conv1/relu"}.get(name, name)


def _write_keras2_group(group, model, *, chunks=1, scale=1.0):
    """What Keras 2 ``save_weights`` wrote into ``group``: ``layer_names``; per layer a group with ``weight_names``.

    ``chunks > 1`` splits ``layer_names`` into ``layer_names0..`` as Keras 2 did for long lists, and writes a
    weightless layer's ``weight_names`` as an attribute with a null dataspace (``h5py.Empty``). Every array is
    multiplied by ``scale`` (a decoy copy of the weights).
    """
    import h5py

    names = np.array([_keras2_name(layer.name).encode() for layer in model.layers])
    if chunks == 1:
        group.attrs["layer_names"] = names
    else:
        for index, part in enumerate(np.array_split(names, chunks)):
            group.attrs[f"layer_names{index}"] = part
    group.attrs["backend"] = b"tensorflow"
    group.attrs["keras_version"] = b"2.1.4"
    for layer in model.layers:
        name = _keras2_name(layer.name)
        layer_group = group.create_group(name)
        weight_names = [f"{name}/{w.name}:0" for w in layer.weights]
        if not weight_names and chunks > 1:
            layer_group.attrs["weight_names"] = h5py.Empty("S1")
        else:
            layer_group.attrs["weight_names"] = [w.encode() for w in weight_names]
        for weight_name, weight in zip(weight_names, layer.weights, strict=True):
            layer_group.create_dataset(weight_name, data=np.asarray(weight) * scale)


def _write_keras2_weights(model, path, **options):
    """A Keras-2 ``save_weights`` file of ``model`` (options: :func:`_write_keras2_group`)."""
    import h5py

    with h5py.File(path, "w") as handle:
        _write_keras2_group(handle, model, **options)


@pytest.fixture(scope="module")
def chexnet_source():
    """A 14-class CheXNet-layout model (DenseNet121 + Dense(14)) with random weights, BN statistics included."""
    import keras

    backbone = keras.applications.DenseNet121(include_top=False, weights=None, input_shape=(32, 32, 3),
                                              pooling="avg")
    model = keras.Model(backbone.input, keras.layers.Dense(14, activation="sigmoid", name="predictions")(
        backbone.output))
    rng = np.random.default_rng(7)
    for layer in model.layers:
        if layer.weights:
            layer.set_weights([rng.uniform(0.5, 1.5, w.shape).astype("float32") for w in layer.weights])
    return model


def _assert_backbone_matches(model, source):
    compared = 0
    for layer in model.layers:
        if layer.weights and layer.name != "pneumonia":
            for got, expected in zip(layer.get_weights(), source.get_layer(layer.name).get_weights(), strict=True):
                np.testing.assert_array_equal(got, expected)
            compared += 1
    assert compared == sum(1 for layer in source.layers if layer.weights) - 1  # all but the 14-unit top


def test_chexnet_keras2_file_loads_and_head_is_replaced(chexnet_source, tmp_path):
    path = tmp_path / "brucechou1983_CheXNet_Keras_0.3.0_weights.h5"
    _write_keras2_weights(chexnet_source, path)
    stored = read_hdf5_weights(path, normalise_names=True)
    assert "conv1_conv" in stored and "predictions" in stored and "conv1_relu" not in stored
    model = clf.build_classifier("chexnet", weights=path, input_shape=(32, 32, 3), compile=False)
    assert model.output_shape == (None, 1)
    assert model.layers[-1].name == "pneumonia" and model.layers[-1].units == 1
    _assert_backbone_matches(model, chexnet_source)


def test_chexnet_keras3_weights_file_loads(chexnet_source, tmp_path):
    path = tmp_path / "chexnet.weights.h5"
    chexnet_source.save_weights(path)
    model = clf.build_classifier("chexnet", weights=path, input_shape=(32, 32, 3), compile=False)
    assert model.output_shape == (None, 1)
    _assert_backbone_matches(model, chexnet_source)


def test_keras2_loader_errors(chexnet_source, tmp_path):
    import keras

    keras3 = tmp_path / "k3.weights.h5"
    chexnet_source.save_weights(keras3)
    with pytest.raises(clf.ClassifierError, match="no 'layer_names' attribute"):
        clf.load_keras2_weights(chexnet_source, keras3)
    small = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="predictions")])
    path = tmp_path / "k2.h5"
    _write_keras2_weights(chexnet_source, path)
    with pytest.raises(clf.ClassifierError,
                       match=r"predictions: kernel: file shape \(1024, 14\) vs model shape \(4, 3\)"):
        clf.load_keras2_weights(small, path)
    other = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="not_there")])
    with pytest.raises(clf.ClassifierError, match="no weights for 1 layer"):
        clf.load_keras2_weights(other, path)


def test_chexnet_file_with_chunked_layer_names_loads(chexnet_source, tmp_path):
    """Keras 2 split a long ``layer_names`` into ``layer_names0..N``; weightless layers may hold h5py.Empty."""
    path = tmp_path / "chunked.h5"
    _write_keras2_weights(chexnet_source, path, chunks=3)
    model = clf.build_classifier("chexnet", weights=path, input_shape=(32, 32, 3), compile=False)
    _assert_backbone_matches(model, chexnet_source)


def test_root_layer_names_win_over_a_model_weights_group(chexnet_source, tmp_path):
    """Keras 2 read ``model_weights`` only when the root had no ``layer_names``."""
    import h5py

    path = tmp_path / "both.h5"
    with h5py.File(path, "w") as handle:
        _write_keras2_group(handle, chexnet_source)
        _write_keras2_group(handle.create_group("model_weights"), chexnet_source, scale=2.0)
    _assert_backbone_matches(clf.build_classifier("chexnet", weights=path, input_shape=(32, 32, 3), compile=False),
                             chexnet_source)
    full_model = tmp_path / "model_save.h5"  # model.save: the weights only under model_weights
    with h5py.File(full_model, "w") as handle:
        _write_keras2_group(handle.create_group("model_weights"), chexnet_source)
    _assert_backbone_matches(
        clf.build_classifier("chexnet", weights=full_model, input_shape=(32, 32, 3), compile=False), chexnet_source)


def test_a_missing_required_layer_assigns_nothing(chexnet_source, tmp_path):
    import keras

    path = tmp_path / "k2.h5"
    _write_keras2_weights(chexnet_source, path)
    model = keras.Sequential([keras.Input((1024,)), keras.layers.Dense(14, name="predictions"),
                              keras.layers.Dense(2, name="not_in_file")])
    before = model.get_layer("predictions").get_weights()
    with pytest.raises(clf.ClassifierError, match=r"no weights for 1 layer\(s\) of .*, e.g. not_in_file; "
                                                  r"the file holds \d+ layers with weights"):
        clf.load_keras2_weights(model, path)
    for got, expected in zip(model.get_layer("predictions").get_weights(), before, strict=True):
        np.testing.assert_array_equal(got, expected)
    assert clf.load_keras2_weights(model, path, required=["predictions"]) == ["predictions"]
    np.testing.assert_array_equal(model.get_layer("predictions").get_weights()[0],
                                  chexnet_source.get_layer("predictions").get_weights()[0])


def test_unknown_name_is_refused():
    with pytest.raises(clf.ClassifierError, match="vgg19, resnet50, densenet121, chexnet"):
        clf.build_classifier("vgg16", weights=None)


def test_train_then_evaluate_on_the_validation_split(synthetic_dir, tmp_path):
    from rsna_detector.data.splits import split_patients

    model = clf.build_classifier("vgg19", weights=None, input_shape=(32, 32, 3), run_eagerly=True)
    model, history = clf.train_classifier(synthetic_dir, model=model, epochs=1, batch_size=4, image_size=32,
                                          val_fraction=0.3, seed=5, verbose=0)
    assert set(history.history) >= {"loss", "f1", "val_loss", "val_f1"}
    metrics = clf.evaluate_classifier(model, synthetic_dir, val_fraction=0.3, seed=5, batch_size=4,
                                      out_dir=tmp_path)
    ids, targets, _ = clf.labelled_images(synthetic_dir)
    _, val_ids = split_patients(ids, targets, val_fraction=0.3, seed=5)
    assert metrics["patient_ids"] == val_ids and metrics["n"] == 4  # round(0.3 * 12)
    again = clf.classification_metrics([targets[ids.index(i)] for i in val_ids], metrics["scores"])
    assert again["confusion_matrix"] == metrics["confusion_matrix"]
    assert (tmp_path / "roc_curve.png").is_file() and (tmp_path / "pr_curve.png").is_file()

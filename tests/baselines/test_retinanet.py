"""RetinaNet baseline: keras-retinanet CSV files, anchors, losses, augmentation, weights, training and evaluation."""
import math

import numpy as np
import pytest

from rsna_detector.baselines import retinanet as rn
from rsna_detector.baselines.retinanet.resnet50_imagenet import _old_resnet50_name
from rsna_detector.data.labels import PatientRecord, load_patient_records, yxyx_to_xywh

SMALL_BACKBONE = dict(input_conv_filters=[64], input_conv_kernel_sizes=[7], stackwise_num_filters=[64, 64, 128, 128],
                      stackwise_num_blocks=[1, 1, 1, 1], stackwise_num_strides=[1, 2, 2, 2], block_type="basic_block")

LABELS = """patientId,x,y,width,height,Target
p1,264.0,152.0,213.0,379.0,1
p1,562.0,152.0,256.0,453.0,1
p2,,,,,0
p3,10.5,20.25,100.0,50.5,1
"""


def _record(patient_id, boxes_yxyx):
    boxes = np.asarray(boxes_yxyx, np.float32).reshape(-1, 4)
    return PatientRecord(patient_id, int(len(boxes) > 0), None, yxyx_to_xywh(boxes).astype(np.float32), boxes)


# --------------------------------------------------------------------------- CSV files
def test_csv_round_trip_with_negatives(tmp_path):
    labels = tmp_path / "labels.csv"
    labels.write_text(LABELS)
    records = load_patient_records(labels)
    annotations, classes = rn.write_retinanet_csv(records, "images", tmp_path / "annotations.csv")
    assert annotations.read_text().splitlines() == [
        "images/p1.dcm,264,152,477,531,Pneumonia",  # x1 = x, y1 = y, x2 = x + width, y2 = y + height
        "images/p1.dcm,562,152,818,605,Pneumonia",
        "images/p2.dcm,,,,,",
        "images/p3.dcm,10.5,20.25,110.5,70.75,Pneumonia",
    ]
    assert classes == tmp_path / "classes.csv" and classes.read_text() == "Pneumonia,0\n"
    back, paths = rn.read_retinanet_csv(annotations, with_paths=True)
    assert list(back) == ["p1", "p2", "p3"]
    assert back == records  # ids, targets, boxes and boxes_xywh exactly
    assert paths["p2"] == tmp_path / "images" / "p2.dcm"  # relative to the CSV's folder, as keras-retinanet


def test_csv_round_trip_of_the_real_labels(rsna_dir, tmp_path):
    records = load_patient_records(rsna_dir / "labels" / "stage_2_train_labels.csv")
    path, _ = rn.write_retinanet_csv(records, "/data/stage_2_train_images", tmp_path / "train.csv")
    lines = path.read_text().splitlines()
    assert len(lines) == 30227  # one row per box, one per negative patient: the label file's rows
    assert sum(line.endswith(",,,,,") for line in lines) == 20672
    assert rn.read_retinanet_csv(path) == records


@pytest.mark.parametrize("row, message", [
    ("a.dcm,1,2,3", r"t.csv:2: 4 fields"),
    ("a.dcm,5,2,5,9,Pneumonia", r"t.csv:2: box x1=5, y1=2, x2=5, y2=9: expected x2 > x1"),
    ("a.dcm,1,2,x,9,Pneumonia", r"t.csv:2: x1,y1,x2,y2 = '1,2,x,9': expected numbers"),
    ("a.dcm,1,,,,", r"t.csv:2: x1,y1,x2,y2 = '1,,,': give all four"),
    ("a.dcm,1,2,3,4,Opacity", r"t.csv:2: class 'Opacity'; expected one of Pneumonia"),
    ("b.dcm,,,,,", r"t.csv:2: image b has boxes and a negative row \(line 1\)"),
])
def test_csv_errors_name_file_and_line(tmp_path, row, message):
    path = tmp_path / "t.csv"
    first = "b.dcm,1,2,3,4,Pneumonia" if row.startswith("b.dcm") else "c.dcm,,,,,"
    lines = [first, row] if not row.startswith("b.dcm") else [row, first]
    path.write_text("\n".join(lines) + "\n")
    rn.write_classes_csv(tmp_path / "classes.csv")
    with pytest.raises(rn.RetinaNetError, match=message):
        rn.read_retinanet_csv(path)


def test_classes_csv_errors(tmp_path):
    path = tmp_path / "classes.csv"
    path.write_text("Pneumonia,0\nOther\n")
    with pytest.raises(rn.RetinaNetError, match=r"classes.csv:2: expected 'class_name,class_id'"):
        rn.read_classes_csv(path)
    path.write_text("Pneumonia,zero\n")
    with pytest.raises(rn.RetinaNetError, match=r"classes.csv:1: class id 'zero'"):
        rn.read_classes_csv(path)


# --------------------------------------------------------------------------- anchors and losses
def test_anchors_sized_for_rsna_boxes():
    assert rn.rsna_anchor_size(512) == 4.0 and rn.rsna_anchor_size(256) == 2.0
    anchors = rn.rsna_anchor_generator(256)(np.zeros((1, 256, 256, 3), "float32"))
    assert list(anchors) == ["P3", "P4", "P5", "P6", "P7"]
    p3 = np.asarray(anchors["P3"])
    assert p3.shape == (32 * 32 * 9, 4)
    heights, widths = p3[:9, 2] - p3[:9, 0], p3[:9, 3] - p3[:9, 1]
    # sides int(8 * 2 * 2**(k/3)) = 16, 20, 25; ratio order 1, 1.5, 2.25 (height / width); half-sides rounded
    np.testing.assert_array_equal(heights[:3], [16, 20, 24])  # 12.5 rounds half to even
    np.testing.assert_array_equal(widths[:3], [16, 20, 24])
    np.testing.assert_array_equal(heights[6:], [24, 30, 38])
    np.testing.assert_array_equal(widths[6:], [10, 14, 16])
    p7 = np.asarray(anchors["P7"])
    assert p7.shape == (2 * 2 * 9, 4) and p7[0, 2] - p7[0, 0] == 256  # int(128 * 2) = the image side


def test_box_loss_is_smooth_l1_sigma_3_summed_over_coordinates():
    losses = rn.retinanet_losses()
    target = np.zeros((1, 1, 4), "float32")
    predicted = np.array([[[0.05, -0.2, 1.0, 0.0]]], "float32")
    value = float(losses["box_loss"](target, predicted)) * losses["loss_weights"]["bbox_regression"]
    # smooth L1, sigma 3: 0.5 * 9 * 0.05**2 + (0.2 - 0.5 / 9) + (1 - 0.5 / 9) + 0
    assert value == pytest.approx(0.01125 + 0.2 - 1 / 18 + 1 - 1 / 18, rel=1e-5)


def test_focal_loss_by_hand():
    focal = rn.retinanet_losses()["classification_loss"]
    # logit 0 (p = 0.5): positive alpha * (1 - p)**2 * -log p, negative (1 - alpha) * p**2 * -log(1 - p)
    assert float(focal(np.array([[1.0]]), np.array([[0.0]]))) == pytest.approx(0.25 * 0.25 * math.log(2), rel=1e-5)
    assert float(focal(np.array([[0.0]]), np.array([[0.0]]))) == pytest.approx(0.75 * 0.25 * math.log(2), rel=1e-5)


# --------------------------------------------------------------------------- images and augmentation
def test_preprocess_subtracts_the_bgr_means():
    out = rn.preprocess_images(np.full((2, 3, 3), 100, np.uint8))
    assert out.shape == (2, 3, 3, 3) and out.dtype == np.float32
    np.testing.assert_allclose(out[1, 2, 2], [100 - 103.939, 100 - 116.779, 100 - 123.68], rtol=1e-6)


def test_flip_moves_boxes_with_the_image():
    import imgaug.augmenters as iaa

    image = np.zeros((40, 60), np.uint8)
    image[5:15, 10:30] = 255
    out, boxes = rn.augment_image_and_boxes(iaa.Fliplr(1.0), image, [[5, 10, 15, 30]])
    np.testing.assert_allclose(boxes, [[5, 30, 15, 50]])  # x1' = 60 - 30, x2' = 60 - 10
    assert out[5:15, 30:50].min() == 255 and out.sum() == image.sum()


def test_random_transform_keeps_boxes_on_the_object():
    image = np.zeros((128, 128), np.uint8)
    image[40:80, 50:74] = 255
    augmenter = rn.retinanet_augmentation()
    for seed in range(8):
        augmenter.seed_(seed)
        out, boxes = rn.augment_image_and_boxes(augmenter, image, [[40, 50, 80, 74]])
        rows, columns = np.nonzero(out > 127)
        assert boxes.shape == (1, 4)
        # the enclosing box of the transformed corners is the object's extent, to interpolation
        np.testing.assert_allclose(boxes[0], [rows.min(), columns.min(), rows.max() + 1, columns.max() + 1], atol=2.5)


def test_boxes_pushed_out_of_the_image_are_dropped():
    import imgaug.augmenters as iaa

    image = np.zeros((100, 100), np.uint8)
    shift = iaa.Affine(translate_px={"x": 60})
    _, boxes = rn.augment_image_and_boxes(shift, image, [[10, 10, 20, 20], [10, 30, 20, 60]])
    np.testing.assert_allclose(boxes, [[10, 70, 20, 80]])  # the second box keeps 10/30 of its area


# --------------------------------------------------------------------------- blob images
def _blob_set(folder, count, seed, size=128):
    """DICOMs (JPEG Baseline, as RSNA's) of noise with 0-2 bright ellipses; records hold their boxes."""
    from rsna_detector.data.synthetic import write_jpeg_dicom

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    rows, columns = np.mgrid[:size, :size] + 0.5
    records = {}
    for index in range(count):
        image = rng.normal(60, 10, (size, size))
        boxes = []
        for _ in range(rng.integers(0, 3)):
            height = round(rng.uniform(0.2, 0.4) * size)
            width = round(height / rng.uniform(1.0, 2.0))
            top, left = round(rng.uniform(0, size - height)), round(rng.uniform(0, size - width))
            inside = ((rows - top - height / 2) / (height / 2)) ** 2 + ((columns - left - width / 2) / (width / 2)) ** 2
            image[inside <= 1] += 100
            boxes.append([top, left, top + height, left + width])
        patient_id = f"blob{seed}_{index:04d}"
        write_jpeg_dicom(folder / f"{patient_id}.dcm", np.clip(image, 0, 255).astype(np.uint8), patient_id=patient_id)
        records[patient_id] = _record(patient_id, boxes)
    return records


@pytest.fixture(scope="module")
def blob_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("blobs")
    return _blob_set(folder, 12, seed=3), folder


def test_sequence_scales_and_pads_boxes(blob_dir):
    records, folder = blob_dir
    ids = list(records)[:5]
    sequence = rn.RetinaNetSequence([folder / f"{i}.dcm" for i in ids], [records[i].boxes for i in ids],
                                    image_size=64, batch_size=4, max_boxes=3)
    assert len(sequence) == 2
    images, targets = sequence[0]
    assert images.shape == (4, 64, 64, 3) and targets["boxes"].shape == (4, 3, 4)
    for row, patient_id in enumerate(ids[:4]):
        count = records[patient_id].n_boxes
        np.testing.assert_allclose(targets["boxes"][row, :count], records[patient_id].boxes / 2)  # 128 -> 64 px
        assert (targets["labels"][row, :count] == 0).all() and (targets["labels"][row, count:] == -1).all()
        assert (targets["boxes"][row, count:] == -1).all()
    assert sequence[1][0].shape[0] == 1
    dataset = sequence.as_dataset()
    assert int(dataset.cardinality()) == 2 and len(list(dataset)) == 2


# --------------------------------------------------------------------------- weights
def _old_keras_name_of(hub_name):
    return _old_resnet50_name(hub_name)


def test_imagenet_file_loads_into_keras_hub_resnet50(tmp_path):
    """A file in the old Keras ResNet-50 layout (conv biases, epsilon 1e-3) loads by name, biases folded into BN."""
    import h5py
    import keras_hub

    encoder = keras_hub.models.ResNetBackbone(**rn.resnet50_config(), image_shape=(64, 64, 3))
    rng = np.random.default_rng(0)
    expected = {}
    path = tmp_path / "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"
    with h5py.File(path, "w") as handle:
        names = []
        for conv in [layer for layer in encoder.layers if layer.name.endswith("_conv")]:
            bn = encoder.get_layer(conv.name[:-5] + "_bn")
            kernel = rng.normal(0, 0.1, conv.kernel.shape).astype("float32")
            channels = kernel.shape[-1]
            bias, gamma, beta, mean = (rng.normal(0, 1, channels).astype("float32") for _ in range(4))
            variance = rng.uniform(0.5, 2, channels).astype("float32")
            for name, arrays, kinds in ((_old_keras_name_of(conv.name), [kernel, bias], ["kernel", "bias"]),
                                        (_old_keras_name_of(bn.name), [gamma, beta, mean, variance],
                                         ["gamma", "beta", "moving_mean", "moving_variance"])):
                group = handle.create_group(name)
                group.attrs["weight_names"] = [f"{name}/{kind}:0".encode() for kind in kinds]
                for kind, array in zip(kinds, arrays, strict=True):
                    group.create_dataset(f"{name}/{kind}:0", data=array)
                names.append(name.encode())
            expected[conv.name] = (kernel, bias, gamma, beta, mean, variance)
        handle.attrs["layer_names"] = names
    assert b"res2a_branch1" in names and b"bn5c_branch2c" in names and b"bn_conv1" in names
    assert rn.load_resnet50_imagenet_weights(encoder, path) == 53
    for conv_name, (kernel, bias, gamma, beta, mean, variance) in expected.items():
        np.testing.assert_array_equal(encoder.get_layer(conv_name).get_weights()[0], kernel)
        bn = encoder.get_layer(conv_name[:-5] + "_bn").get_weights()
        np.testing.assert_allclose(bn[2], mean - bias, rtol=1e-6)  # BN(conv + b) = BN'(conv)
        np.testing.assert_allclose(bn[3], variance + 1e-3 - 1e-5, rtol=1e-6)  # same variance + epsilon
        np.testing.assert_array_equal(bn[0], gamma)
        np.testing.assert_array_equal(bn[1], beta)


def test_imagenet_loader_names_what_is_missing(tmp_path):
    import h5py
    import keras_hub

    encoder = keras_hub.models.ResNetBackbone(**rn.resnet50_config(), image_shape=(32, 32, 3))
    path = tmp_path / "empty.h5"
    with h5py.File(path, "w") as handle:
        handle.attrs["layer_names"] = []
    with pytest.raises(rn.RetinaNetError, match="no weights for conv1/bn_conv1"):
        rn.load_resnet50_imagenet_weights(encoder, path)


# --------------------------------------------------------------------------- model, prediction, evaluation
@pytest.fixture(scope="module")
def small_model():
    return rn.build_retinanet(64, weights=None, backbone_config=SMALL_BACKBONE, learning_rate=1e-4,
                              run_eagerly=True, seed=0)


def test_heads_start_from_the_retinanet_initialisation(small_model):
    classification = small_model.classification_head.prediction_layer
    np.testing.assert_allclose(np.asarray(classification.bias), -math.log(99), rtol=1e-6)
    np.testing.assert_array_equal(np.asarray(small_model.box_head.prediction_layer.bias), 0.0)
    assert np.std(np.asarray(small_model.classification_head.conv_layers[0].kernel)) == pytest.approx(0.01, rel=0.05)
    logits = np.asarray(small_model(rn.preprocess_images(np.zeros((1, 64, 64), np.uint8)))["cls_logits"])
    assert abs(float(np.mean(1 / (1 + np.exp(-logits)))) - 0.01) < 0.005  # every anchor starts near the prior


def test_train_step_predict_and_shared_evaluation(small_model, blob_dir, tmp_path):
    from rsna_detector.detector.evaluate import rsna_score
    from rsna_detector.detector.submission import parse_submission

    records, folder = blob_dir
    _, history = rn.train_retinanet((records, folder), model=small_model, epochs=1, batch_size=4, steps_per_epoch=2,
                                    val_fraction=None, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    paths = [folder / f"{i}.dcm" for i in records]
    predictions = rn.predict_retinanet(small_model, paths, batch_size=5)
    assert [p.patient_id for p in predictions] == list(records)
    for prediction in predictions:
        assert prediction.boxes.shape[1:] == (4,) and (prediction.boxes >= 0).all()
        assert (prediction.boxes[:, [2, 3]] <= 128).all()  # original (128 px) pixels, not the 64 px input
        assert (np.diff(prediction.scores) <= 0).all()
    metrics = rn.evaluate_retinanet(small_model, (records, folder), split="all", out_dir=tmp_path,
                                    submission=tmp_path / "submission.csv")
    ground_truth = {i: records[i].boxes for i in records}
    by_id = {p.patient_id: p for p in metrics["predictions"]}
    assert metrics["rsna_score"] == pytest.approx(rsna_score(ground_truth, by_id), nan_ok=True)
    assert metrics["counts"]["images"] == 12 and (tmp_path / "metrics.json").is_file()
    written = parse_submission(tmp_path / "submission.csv")
    assert set(written) == set(records)


def test_detection_metrics_by_hand():
    records = {"a": _record("a", [[0, 0, 10, 10]]), "b": _record("b", []), "c": _record("c", [])}
    from rsna_detector.detector.submission import ImagePrediction

    predictions = [ImagePrediction("a", [[0, 0, 10, 10]], [0.9]), ImagePrediction("b", [[0, 0, 5, 5]], [0.6]),
                   ImagePrediction("c", np.zeros((0, 4)), np.zeros(0))]
    metrics = rn.detection_metrics(records, predictions)
    # compute_ap_boxes: a found (1), b a false box (0), c nothing at all (1): the batch_ap convention
    assert metrics["per_image_ap"] == [1.0, 0.0, 1.0] and metrics["map50"] == pytest.approx(2 / 3)
    assert metrics["map50_positive"] == 1.0 and metrics["mean_iou"] == 1.0
    assert metrics["rsna_score"] == pytest.approx(0.5)  # (1 + 0) / 2, c left out
    assert metrics["best_rsna_score"] == 1.0 and metrics["best_threshold"] == pytest.approx(0.62)


def test_both_detectors_report_the_one_metrics_dictionary():
    from rsna_detector.detector import evaluate
    from rsna_detector.detector.submission import ImagePrediction

    records = {"a": _record("a", [[0, 0, 10, 10]]), "b": _record("b", [])}
    predictions = [ImagePrediction("a", [[0, 0, 10, 5]], [0.9]),
                   ImagePrediction("b", np.zeros((0, 4)), np.zeros(0))]
    metrics = rn.detection_metrics(records, predictions, model_threshold=0.05)
    # the Mask R-CNN's dictionary (evaluate_detector) has the same keys, computed by the same function
    mask_rcnn_records = [evaluate.EvalRecord(0, np.array([[0, 0, 10, 10]]), np.ones(1, np.int32), np.zeros((0, 0, 1)),
                                             np.zeros((0, 4), np.float32), np.zeros(0, np.int32),
                                             np.zeros(0, np.float32), np.zeros((0, 0, 0)))]
    assert list(metrics) == list(evaluate.detection_metrics(mask_rcnn_records, "box"))
    # box IoU 0.5: an AP@0.5 hit (>=), a competition hit at 0.40 and 0.45 only (>)
    assert metrics["iou"] == "box" and metrics["map50"] == 1.0 and metrics["mean_iou"] == pytest.approx(0.5)
    assert metrics["rsna_score"] == pytest.approx(0.25) and metrics["model_threshold"] == 0.05


@pytest.mark.slow
def test_small_retinanet_learns_blobs(tmp_path):
    """A small RetinaNet trained for a few CPU minutes finds blobs it has not seen: mAP@0.5 >= 0.5."""
    from rsna_detector.detector.evaluate import rsna_score
    from rsna_detector.detector.submission import parse_submission

    train = _blob_set(tmp_path / "train", 256, seed=0)
    test = _blob_set(tmp_path / "test", 32, seed=1)
    model = rn.build_retinanet(128, weights=None, backbone_config=SMALL_BACKBONE, learning_rate=1e-4, seed=0)
    rn.train_retinanet((train, tmp_path / "train"), model=model, epochs=8, batch_size=8, val_fraction=None,
                       augment=False, verbose=0)
    metrics = rn.evaluate_retinanet(model, (test, tmp_path / "test"), split="all",
                                    submission=tmp_path / "submission.csv")
    print({k: v for k, v in metrics.items() if k not in ("per_image_ap", "sweep", "predictions")})
    assert metrics["map50"] >= 0.5
    by_id = {p.patient_id: p for p in metrics["predictions"]}
    assert metrics["rsna_score"] == pytest.approx(rsna_score({i: test[i].boxes for i in test}, by_id))
    assert set(parse_submission(tmp_path / "submission.csv")) == set(test)


def test_prediction_with_a_short_last_batch_in_graph_mode(blob_dir):
    """keras-hub's NMS fails on a retraced (unknown) batch size: chunks are padded to the batch size."""
    records, folder = blob_dir
    model = rn.build_retinanet(64, weights=None, backbone_config=SMALL_BACKBONE, compile=False, seed=1)
    paths = [folder / f"{i}.dcm" for i in list(records)[:3]]
    first = rn.predict_retinanet(model, paths, batch_size=2)  # chunks of 2 and 1
    again = rn.predict_retinanet(model, paths, batch_size=3)  # another batch size on the same model
    assert [p.patient_id for p in first] == [p.patient_id for p in again] == [p.stem for p in paths]
    for a, b in zip(first, again, strict=True):
        np.testing.assert_allclose(a.scores, b.scores, rtol=1e-4)

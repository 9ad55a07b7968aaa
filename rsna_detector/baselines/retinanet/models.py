"""RetinaNet baseline on keras-hub (the report's section 4), evaluated like the Mask R-CNN.

Model
-----
keras-hub's ``RetinaNetObjectDetector`` over a ``RetinaNetBackbone`` (FPN P3-P7,
P6 from C5) over a ``ResNetBackbone`` built from a ResNet-50 config, offline (no
preset download). One class ('Pneumonia'). Two corrections to keras-hub 0.32's
defaults, as the RetinaNet paper and keras-retinanet have them:

* the prior-probability bias ``-log((1 - 0.01) / 0.01)`` goes on the
  *classification* head's last layer (keras-hub 0.32 puts it on the box head);
* the head convolutions start from N(0, 0.01) weights (keras-hub: N(0, 0.05),
  which makes the initial logits of a from-scratch model explode).

Losses: focal loss (alpha 0.25 with class balancing, gamma 2) and smooth L1 with
sigma 3, i.e. keras-hub's Huber loss with delta ``1 / sigma**2`` weighted by
``4 sigma**2`` (Keras' Huber averages over the 4 coordinates, keras-retinanet
sums them), both summed and normalised by the number of positive anchors.

Weights: ``weights='imagenet'`` loads the registry's Keras ResNet-50 ImageNet file
(``resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5``, old Keras layer
names) into the keras-hub ResNet by name: each convolution bias is folded into
the following batch normalisation's moving mean and the variance is shifted
for keras-hub's smaller epsilon, so conv + BN compute what they did. keras-hub's
ResNet strides in the 3x3 convolution of a block (ResNet "v1.5"), the old Keras
file in the first 1x1 one, so the loaded network is a close initialisation, not
the same function. Batch normalisation stays frozen when weights are loaded.

Anchors
-------
Levels P3-P7 (strides 8-128), three scales per level and three aspect ratios.
Sized for RSNA boxes: ``anchor_size = 4 * image_size / 512`` (keras-hub's
default 4 at 512 pixels), so the anchors run from 1/16 of the image (64 pixels
of a 1024 image) to 1.6 image sides, covering the RSNA boxes (square root of the
area 48-609 pixels at 1024, 1-99 % range 98-482); aspect ratios (height / width)
1, 1.5 and 2.25 (RSNA boxes: median 1.45, 5-95 % range 0.68-2.52).

Data
----
Images are read at ``image_size`` (DICOMs through ``read_dicom``'s fast path,
PNG/JPEG through Pillow), grey repeated to 3 channels, the ImageNet BGR means
(Keras 'caffe' mode, the old ResNet-50 file's preprocessing) subtracted.
Training images get the report's random transform (keras-retinanet's
``random_transform_generator``: rotation +-0.1 rad, translation +-0.1 of the
image, shear +-0.1 rad, scaling 0.9-1.1 per axis, flips x and y with probability
0.5), boxes transformed with the image (the enclosing box of the transformed
corners, clipped to the image).

Annotations: keras-retinanet's CSV format, ``path,x1,y1,x2,y2,class_name`` (one
row per box, pixels of the original image, ``x2``/``y2`` exclusive as the
engine's boxes), a negative image as ``path,,,,,``, and the classes CSV
``Pneumonia,0``.

Evaluation is the Mask R-CNN's: ``evaluate.detection_metrics`` by box IoU and
``evaluate.write_detection_report``; submissions go through
``submission.write_submission``.
"""
from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np

from .data.batching import ShuffledBatches
from .saved_models import load_model_for_prediction, save_trained_model

__all__ = [
    "RetinaNetError",
    "RETINANET_CLASS_NAME",
    "RSNA_ASPECT_RATIOS",
    "DEFAULT_IMAGE_SIZE",
    "SMOOTH_L1_SIGMA",
    "resnet50_config",
    "rsna_anchor_size",
    "rsna_anchor_generator",
    "load_resnet50_imagenet_weights",
    "retinanet_losses",
    "build_retinanet",
    "compile_retinanet",
    "write_retinanet_csv",
    "read_retinanet_csv",
    "write_classes_csv",
    "read_classes_csv",
    "retinanet_augmentation",
    "augment_image_and_boxes",
    "preprocess_images",
    "read_grey_image",
    "RetinaNetSequence",
    "train_retinanet",
    "predict_retinanet",
    "detection_metrics",
    "evaluate_retinanet",
    "add_subcommands",
]

RETINANET_CLASS_NAME = "Pneumonia"
RSNA_ASPECT_RATIOS = (1.0, 1.5, 2.25)  # height / width, keras-hub's convention
DEFAULT_IMAGE_SIZE = 256
SMOOTH_L1_SIGMA = 3.0
MIN_LEVEL, MAX_LEVEL = 3, 7
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
_IMAGE_SUFFIXES = (".dcm", ".png", ".jpg", ".jpeg")


class RetinaNetError(ValueError):
    """Invalid RetinaNet input: a malformed annotation CSV (file and line named), bad weights or data."""


# --------------------------------------------------------------------------- model
def resnet50_config():
    """keras-hub ``ResNetBackbone`` arguments of ResNet-50 (v1, bottleneck blocks 3-4-6-3).

    Returns
    -------
    dict
        ``input_conv_filters``, ``input_conv_kernel_sizes``, ``stackwise_num_filters``,
        ``stackwise_num_blocks``, ``stackwise_num_strides``, ``block_type``,
        ``use_pre_activation``; ``image_shape`` is added by :func:`build_retinanet`.
    """
    return {
        "input_conv_filters": [64],
        "input_conv_kernel_sizes": [7],
        "stackwise_num_filters": [64, 128, 256, 512],
        "stackwise_num_blocks": [3, 4, 6, 3],
        "stackwise_num_strides": [1, 2, 2, 2],
        "block_type": "bottleneck_block",
        "use_pre_activation": False,
    }


def rsna_anchor_size(image_size):
    """keras-hub ``anchor_size`` (base anchor side / stride) for RSNA boxes at ``image_size``: ``4 * S / 512``."""
    return 4.0 * float(image_size) / 512.0


def rsna_anchor_generator(image_size, aspect_ratios=RSNA_ASPECT_RATIOS, anchor_size=None):
    """keras-hub ``AnchorGenerator`` for RSNA boxes (levels P3-P7, 3 scales, ``yxyx`` pixels).

    Parameters
    ----------
    image_size : int
    aspect_ratios : sequence of float
        Anchor height / width.
    anchor_size : float, optional
        Default :func:`rsna_anchor_size`.

    Returns
    -------
    keras_hub.layers.AnchorGenerator
        Anchor sides ``int(2**level * anchor_size * 2**(k / 3))``, k = 0, 1, 2,
        before the aspect ratio.
    """
    import keras_hub

    return keras_hub.layers.AnchorGenerator(
        bounding_box_format="yxyx", min_level=MIN_LEVEL, max_level=MAX_LEVEL, num_scales=3,
        aspect_ratios=[float(r) for r in aspect_ratios],
        anchor_size=rsna_anchor_size(image_size) if anchor_size is None else float(anchor_size))


def _old_resnet50_name(hub_name):
    """keras-hub ResNet layer name -> the old Keras ResNet-50 layer name, or None for other layers.

    ``conv1_conv`` -> ``conv1``, ``conv1_bn`` -> ``bn_conv1``, ``stack{k}_block{i}_{j}_conv`` ->
    ``res{k+2}{a,b,...}_branch{1,2a,2b,2c}`` (j = 0 is the shortcut), ``..._bn`` -> ``bn{k+2}...``.
    """
    if hub_name in ("conv1_conv", "conv1_bn"):
        return "conv1" if hub_name.endswith("conv") else "bn_conv1"
    parts = hub_name.split("_")  # stack{k}_block{i}_{j}_{conv|bn}
    if len(parts) != 4 or not parts[0].startswith("stack") or not parts[1].startswith("block"):
        return None
    stage = int(parts[0][5:]) + 2
    block = "abcdefghijklmnopqrstuvwxyz"[int(parts[1][5:])]
    branch = {"0": "1", "1": "2a", "2": "2b", "3": "2c"}[parts[2]]
    prefix = "res" if parts[3] == "conv" else "bn"
    return f"{prefix}{stage}{block}_branch{branch}"


def load_resnet50_imagenet_weights(encoder, path, *, old_epsilon=1e-3):
    """Load the old Keras ResNet-50 ImageNet file into a keras-hub ResNet-50 ``ResNetBackbone``.

    Convolutions get the file's kernels; each convolution's bias ``b`` is folded
    into the next batch normalisation (``moving_mean - b``), whose variance
    becomes ``moving_variance + old_epsilon - new_epsilon`` so that
    ``BN(conv(x) + b)`` is unchanged.

    Parameters
    ----------
    encoder : keras_hub.models.ResNetBackbone
        Built from :func:`resnet50_config`.
    path : str or Path
        ``resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5`` (Keras-2 HDF5,
        layers ``conv1``, ``bn_conv1``, ``res2a_branch2a``, ``bn2a_branch2a``, ...).
    old_epsilon : float
        Batch-normalisation epsilon of the file's model (Keras 2's default 1e-3).

    Returns
    -------
    int
        Number of convolutions loaded (53 for ResNet-50).

    Raises
    ------
    RetinaNetError
        A layer is missing from the file or a shape differs.
    """
    from .weights.keras2_hdf5 import WeightsFileError, read_hdf5_weights

    try:
        stored = read_hdf5_weights(path)
    except WeightsFileError as error:
        raise RetinaNetError(str(error)) from error
    loaded = 0
    for conv in [layer for layer in encoder.layers if layer.name.endswith("_conv") and layer.weights]:
        bn = encoder.get_layer(conv.name[: -len("_conv")] + "_bn")
        conv_name, bn_name = _old_resnet50_name(conv.name), _old_resnet50_name(bn.name)
        if conv_name not in stored or bn_name not in stored:
            raise RetinaNetError(f"{path}: no weights for {conv_name}/{bn_name} (keras-hub layer {conv.name}); "
                                 "expected the Keras ResNet-50 ImageNet file")
        kernel, *bias = stored[conv_name]
        gamma, beta, mean, variance = stored[bn_name]
        if tuple(kernel.shape) != tuple(conv.kernel.shape):
            raise RetinaNetError(f"{path}: {conv_name} kernel {kernel.shape}, keras-hub {conv.name} "
                                 f"{tuple(conv.kernel.shape)}")
        conv.set_weights([kernel])
        folded_mean = mean - bias[0] if bias else mean
        bn.set_weights([gamma, beta, folded_mean, variance + old_epsilon - bn.epsilon])
        loaded += 1
    return loaded


def retinanet_losses(sigma=SMOOTH_L1_SIGMA, alpha=0.25, gamma=2.0):
    """The report's RetinaNet losses as keras-hub ``compile`` arguments.

    Returns
    -------
    dict
        ``box_loss`` (Huber, delta ``1 / sigma**2``, summed), ``classification_loss``
        (binary focal cross-entropy from logits, class balancing ``alpha``,
        ``gamma``, summed) and ``loss_weights`` (``4 sigma**2`` for the boxes: then
        the box loss is keras-retinanet's smooth L1 summed over the 4 coordinates).
    """
    import keras

    return {
        "box_loss": keras.losses.Huber(delta=1.0 / sigma ** 2, reduction="sum"),
        "classification_loss": keras.losses.BinaryFocalCrossentropy(
            apply_class_balancing=True, alpha=alpha, gamma=gamma, from_logits=True, reduction="sum"),
        "loss_weights": {"bbox_regression": 4.0 * sigma ** 2, "cls_logits": 1.0},
    }


def compile_retinanet(model, learning_rate=1e-4, *, clipnorm=None, run_eagerly=False):
    """Compile with Adam and :func:`retinanet_losses` (the report's best learning rate: 1e-4)."""
    import keras

    optimizer = keras.optimizers.Adam(learning_rate, clipnorm=clipnorm)
    model.compile(optimizer=optimizer, run_eagerly=run_eagerly, **retinanet_losses())
    return model


def _initialise_heads(model, prior_probability, seed):
    rng = np.random.default_rng(seed)
    for head in (model.classification_head, model.box_head):
        for layer in [*head.conv_layers, head.prediction_layer]:
            layer.kernel.assign(rng.normal(0.0, 0.01, tuple(layer.kernel.shape)).astype("float32"))
            if layer.bias is not None:
                layer.bias.assign(np.zeros(tuple(layer.bias.shape), "float32"))
    bias = model.classification_head.prediction_layer.bias
    bias.assign(np.full(tuple(bias.shape), -math.log((1 - prior_probability) / prior_probability), "float32"))


def _weights_file(weights):
    if weights is None or str(weights).lower() == "none":
        return None
    from .weights import fetch_weights

    return fetch_weights(weights)


def build_retinanet(image_size=DEFAULT_IMAGE_SIZE, *, weights="imagenet", backbone_config=None,
                    aspect_ratios=RSNA_ASPECT_RATIOS, anchor_size=None, learning_rate=1e-4, min_confidence=0.05,
                    nms_iou_threshold=0.5, max_detections=100, freeze_batchnorm=None, prior_probability=0.01,
                    compile=True, run_eagerly=False, seed=None):
    """A one-class RetinaNet (keras-hub) with a ResNet backbone, built offline.

    Parameters
    ----------
    image_size : int
        Square input side (a multiple of 128 keeps P7 aligned; 256 or 512 for RSNA).
    weights : 'imagenet', None or path
        'imagenet' (or a path to the same file): the registry's Keras ResNet-50
        ImageNet file, see :func:`load_resnet50_imagenet_weights`; None: random.
    backbone_config : dict, optional
        ``ResNetBackbone`` arguments; default :func:`resnet50_config` (a smaller
        config makes a small test model; ImageNet weights need ResNet-50).
    aspect_ratios, anchor_size
        See :func:`rsna_anchor_generator`.
    learning_rate : float
    min_confidence : float
        Detections scoring below it are dropped by the decoder.
    nms_iou_threshold : float
    max_detections : int
        Detections kept per image after NMS.
    freeze_batchnorm : bool, optional
        Keep the backbone's batch normalisation in inference mode; default True
        when weights are loaded.
    prior_probability : float
        Initial foreground probability of every anchor.
    compile : bool
        :func:`compile_retinanet`.
    run_eagerly : bool
    seed : int, optional
        Seeds Keras' initialisers and the head initialisation.

    Returns
    -------
    keras_hub.models.RetinaNetObjectDetector
        Input float32 ``[B, S, S, 3]`` (:func:`preprocess_images`); ``predict``
        gives ``boxes`` [B, max_detections, (y1, x1, y2, x2)] in input pixels,
        ``confidence``, ``labels`` and ``num_detections``.
    """
    import keras
    import keras_hub

    if seed is not None:
        keras.utils.set_random_seed(int(seed))
    shape = (int(image_size), int(image_size), 3)
    encoder = keras_hub.models.ResNetBackbone(**(backbone_config or resnet50_config()), image_shape=shape)
    weights_file = _weights_file(weights)
    if weights_file is not None:
        load_resnet50_imagenet_weights(encoder, weights_file)
    if weights_file is not None if freeze_batchnorm is None else freeze_batchnorm:
        for layer in encoder.layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.trainable = False
    backbone = keras_hub.models.RetinaNetBackbone(image_encoder=encoder, min_level=MIN_LEVEL, max_level=MAX_LEVEL,
                                                  use_p5=False, image_shape=shape)
    decoder = keras_hub.layers.NonMaxSuppression(bounding_box_format="yxyx", from_logits=True,
                                                 iou_threshold=nms_iou_threshold,
                                                 confidence_threshold=min_confidence, max_detections=max_detections)
    model = keras_hub.models.RetinaNetObjectDetector(
        backbone=backbone, num_classes=1, bounding_box_format="yxyx",
        anchor_generator=rsna_anchor_generator(image_size, aspect_ratios, anchor_size),
        classification_head_prior_probability=prior_probability, prediction_decoder=decoder)
    _initialise_heads(model, prior_probability, seed)
    if compile:
        compile_retinanet(model, learning_rate, run_eagerly=run_eagerly)
    return model


# --------------------------------------------------------------------------- keras-retinanet CSV files
def _number(value):
    """An integer when the value is one (RSNA's pixels), else the float's shortest exact text."""
    value = float(value)
    return str(int(value)) if value.is_integer() else repr(value)


def _as_record_list(records):
    return list(records.values()) if isinstance(records, dict) else list(records)


def write_classes_csv(path, class_names=(RETINANET_CLASS_NAME,)):
    """keras-retinanet's classes CSV: ``name,id`` per line (``Pneumonia,0``). Returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as stream:
        csv.writer(stream, lineterminator="\n").writerows([name, i] for i, name in enumerate(class_names))
    return path


def read_classes_csv(path):
    """``{class_name: id}`` from a classes CSV; RetinaNetError naming the line on a malformed row."""
    path = Path(path)
    classes = {}
    with open(path, newline="") as stream:
        for line, row in enumerate(csv.reader(stream), start=1):
            if len(row) != 2:
                raise RetinaNetError(f"{path}:{line}: expected 'class_name,class_id', got {','.join(row)!r}")
            name, class_id = row
            if not class_id.strip().isdigit():
                raise RetinaNetError(f"{path}:{line}: class id {class_id!r} is not a non-negative integer")
            if name in classes:
                raise RetinaNetError(f"{path}:{line}: class {name!r} listed twice")
            classes[name] = int(class_id)
    return classes


def write_retinanet_csv(records, image_dir, path, *, classes_path=None, extension=".dcm"):
    """Write keras-retinanet annotation and class CSVs.

    Parameters
    ----------
    records : dict id -> PatientRecord, or iterable of PatientRecord
    image_dir : str or Path
        Folder of the images; each row's path is ``image_dir / (patientId + extension)``
        as given (relative paths are read relative to the CSV's folder, as
        keras-retinanet does).
    path : str or Path
        Annotation CSV: ``path,x1,y1,x2,y2,Pneumonia`` per box (pixels of the
        original image; integers when they are, else exact floats) and
        ``path,,,,,`` for an image without box. No header.
    classes_path : str or Path, optional
        Class CSV; default ``classes.csv`` beside ``path``.
    extension : str

    Returns
    -------
    (Path, Path)
        The annotation and class files.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as stream:
        writer = csv.writer(stream, lineterminator="\n")
        for record in _as_record_list(records):
            image_path = str(Path(image_dir) / f"{record.patient_id}{extension}")
            if record.n_boxes == 0:
                writer.writerow([image_path, "", "", "", "", ""])
            for y1, x1, y2, x2 in np.asarray(record.boxes, np.float32):
                writer.writerow([image_path, *map(_number, (x1, y1, x2, y2)), RETINANET_CLASS_NAME])
    classes_path = write_classes_csv(Path(classes_path) if classes_path else path.with_name("classes.csv"))
    return path, classes_path


def _parse_box(row, path, line):
    try:
        x1, y1, x2, y2 = (float(value) for value in row[1:5])
    except ValueError:
        raise RetinaNetError(f"{path}:{line}: x1,y1,x2,y2 = {','.join(row[1:5])!r}: expected numbers") from None
    if not all(map(math.isfinite, (x1, y1, x2, y2))):
        raise RetinaNetError(f"{path}:{line}: x1,y1,x2,y2 must be finite")
    if x2 <= x1 or y2 <= y1:
        raise RetinaNetError(f"{path}:{line}: box x1={x1:g}, y1={y1:g}, x2={x2:g}, y2={y2:g}: expected x2 > x1 and "
                             "y2 > y1")
    return y1, x1, y2, x2


def _read_rows(path, class_names):
    """``{patient_id: (image_path, [boxes], negative_line)}`` in first-appearance order."""
    images = {}
    with open(path, newline="") as stream:
        for line, row in enumerate(csv.reader(stream), start=1):
            if len(row) != 6:
                raise RetinaNetError(f"{path}:{line}: {len(row)} fields; expected path,x1,y1,x2,y2,class_name")
            image_path, class_name = row[0], row[5]
            entry = images.setdefault(Path(image_path).stem, [image_path, [], None])
            if entry[0] != image_path:
                raise RetinaNetError(f"{path}:{line}: image {Path(image_path).stem} also listed as {entry[0]}")
            if not any(row[1:]):
                entry[2] = line
            elif not all(row[1:5]):
                raise RetinaNetError(f"{path}:{line}: x1,y1,x2,y2 = {','.join(row[1:5])!r}: give all four "
                                     "(a box) or none (a negative image, 'path,,,,,')")
            elif class_name not in class_names:
                raise RetinaNetError(f"{path}:{line}: class {class_name!r}; expected one of {', '.join(class_names)}")
            else:
                entry[1].append(_parse_box(row, path, line))
            if entry[1] and entry[2] is not None:
                raise RetinaNetError(f"{path}:{line}: image {Path(image_path).stem} has boxes and a negative row "
                                     f"(line {entry[2]})")
    return images


def read_retinanet_csv(path, *, classes_path=None, with_paths=False):
    """Read a keras-retinanet annotation CSV back into patient records (inverse of :func:`write_retinanet_csv`).

    Parameters
    ----------
    path : str or Path
    classes_path : str or Path, optional
        Class CSV; default ``classes.csv`` beside ``path`` when it exists, else
        the class names are not checked against a file.
    with_paths : bool
        Also return the image paths.

    Returns
    -------
    records : dict id -> PatientRecord
        Id = image file name without extension, first-appearance order;
        ``target`` 1 with boxes, ``boxes`` float32 ``(y1, x1, y2, x2)``,
        ``boxes_xywh`` float32 ``(x1, y1, x2 - x1, y2 - y1)``, ``class_name`` None.
        Records written by :func:`write_retinanet_csv` from labels without a
        class file come back equal.
    paths : dict id -> Path
        Only with ``with_paths``; relative paths resolved against the CSV's folder.

    Raises
    ------
    RetinaNetError
        A row without 6 fields, a non-numeric or empty box (x2 <= x1 or
        y2 <= y1), an unknown class, or an image with both boxes and a negative
        row; the message names the file and line.
    """
    from .data.labels import PatientRecord, yxyx_to_xywh

    path = Path(path)
    classes_path = Path(classes_path) if classes_path else path.with_name("classes.csv")
    class_names = list(read_classes_csv(classes_path)) if classes_path.is_file() else None
    images = _read_rows(path, class_names if class_names is not None else _AnyName())
    records, paths = {}, {}
    for patient_id, (image_path, boxes, _) in images.items():
        yxyx = np.asarray(boxes, np.float32).reshape(-1, 4)
        records[patient_id] = PatientRecord(patient_id=patient_id, target=int(len(yxyx) > 0), class_name=None,
                                            boxes_xywh=yxyx_to_xywh(yxyx).astype(np.float32), boxes=yxyx)
        paths[patient_id] = Path(image_path) if Path(image_path).is_absolute() else path.parent / image_path
    return (records, paths) if with_paths else records


class _AnyName:
    """Accepts every non-empty class name (no classes file to check against)."""

    def __contains__(self, name):
        return bool(name)

    def __iter__(self):
        return iter(["any non-empty name"])


# --------------------------------------------------------------------------- images and augmentation
def read_grey_image(path, size=None):
    """A uint8 grey image and the file's own size.

    Parameters
    ----------
    path : str or Path
        A DICOM (``.dcm``, read through ``read_dicom``'s fast path) or an image
        Pillow reads (PNG, JPEG).
    size : int, optional
        Resize to ``[size, size]`` (``resize_square``); None keeps the size.

    Returns
    -------
    image : uint8 [H, W] or [size, size]
    original_size : (int, int)
        The file's (height, width); boxes in the file's pixels scale from it.
    """
    from .data.dicom import read_dicom, resize_square

    path = Path(path)
    if path.suffix.lower() == ".dcm":
        image, metadata = read_dicom(path, size=size)
        return image, (int(metadata.rows), int(metadata.columns))
    from PIL import Image

    try:
        with Image.open(path) as picture:
            grey = np.asarray(picture.convert("L"))
    except OSError as error:
        raise RetinaNetError(f"{path}: not a readable image ({error})") from None
    return (grey if size is None else resize_square(grey, size)), grey.shape[:2]


def preprocess_images(images):
    """uint8 grey ``[B, H, W]`` (or ``[B, H, W, 1]``) -> float32 ``[B, H, W, 3]`` minus the ImageNet BGR means."""
    images = np.asarray(images)
    if images.ndim == 4 and images.shape[-1] == 1:
        images = images[..., 0]
    if images.ndim != 3:
        raise RetinaNetError(f"images: expected [B, H, W] grey images, got shape {images.shape}")
    return images[..., None].astype(np.float32) - np.asarray(CAFFE_MEAN_BGR, np.float32)


def retinanet_augmentation():
    """The report's random transform (keras-retinanet's ``random_transform_generator``) as imgaug.

    Rotation +-0.1 rad, translation +-0.1 of the image side, shear +-0.1 rad,
    scaling 0.9-1.1 independently in x and y, flip left-right and up-down each
    with probability 0.5; outside pixels black.

    Returns
    -------
    imgaug.augmenters.Sequential
    """
    import imgaug.augmenters as iaa

    degrees = math.degrees(0.1)
    return iaa.Sequential([
        iaa.Affine(rotate=(-degrees, degrees), shear=(-degrees, degrees),
                   translate_percent={"x": (-0.1, 0.1), "y": (-0.1, 0.1)},
                   scale={"x": (0.9, 1.1), "y": (0.9, 1.1)}, mode="constant", cval=0),
        iaa.Fliplr(0.5),
        iaa.Flipud(0.5),
    ], name="retinanet_random_transform")


def augment_image_and_boxes(augmenter, image, boxes, *, min_visible=0.5):
    """Apply one random draw of ``augmenter`` to an image and its boxes.

    Parameters
    ----------
    augmenter : imgaug augmenter
    image : uint8 [H, W]
    boxes : float [N, (y1, x1, y2, x2)]
        Pixels of ``image``.
    min_visible : float
        A box keeping less than this share of its (transformed) area inside the
        image is dropped.

    Returns
    -------
    image : uint8 [H, W]
    boxes : float32 [M, (y1, x1, y2, x2)]
        The enclosing boxes of the transformed corners, clipped to the image.
    """
    from imgaug.augmentables.bbs import BoundingBox, BoundingBoxesOnImage

    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    on_image = BoundingBoxesOnImage([BoundingBox(x1=b[1], y1=b[0], x2=b[3], y2=b[2]) for b in boxes],
                                    shape=image.shape[:2] + (1,))
    out_image, out_boxes = augmenter(image=image[..., None], bounding_boxes=on_image)
    kept = out_boxes.remove_out_of_image_fraction_(1.0 - min_visible).clip_out_of_image_()
    result = np.asarray([[b.y1, b.x1, b.y2, b.x2] for b in kept.bounding_boxes], np.float32).reshape(-1, 4)
    return out_image[..., 0], result


# --------------------------------------------------------------------------- the input pipeline
class RetinaNetSequence(ShuffledBatches):
    """Batches of (preprocessed images, {'boxes', 'labels'}) for keras-hub's RetinaNet.

    keras-hub's ``fit`` takes arrays or a ``tf.data.Dataset`` (not a Keras
    ``PyDataset``): :meth:`as_dataset` streams the batches through
    ``tf.data.Dataset.from_generator``, reading the next batch while the model
    trains on the current one.

    Parameters
    ----------
    paths : sequence of path
        DICOM or PNG/JPEG files.
    boxes : sequence of float arrays [N_i, (y1, x1, y2, x2)], optional
        Per image, pixels of the original file; None for prediction.
    image_size : int
    batch_size : int
    augment : bool
        Apply :func:`retinanet_augmentation` to image and boxes (training only).
    shuffle : bool
        Reshuffle at every epoch (:meth:`on_epoch_end`).
    max_boxes : int, optional
        Boxes per image after padding; default the largest count (at least 1).
    seed : int

    Batches
    -------
    images float32 [B, S, S, 3]; ``boxes`` float32 [B, max_boxes, 4] in input
    pixels and ``labels`` float32 [B, max_boxes] (0 = Pneumonia), both padded
    with -1; the last batch may be short. Without boxes: ``(images,)``.
    """

    def __init__(self, paths, boxes=None, *, image_size=DEFAULT_IMAGE_SIZE, batch_size=8, augment=False,
                 shuffle=False, max_boxes=None, seed=0):
        self.paths = [Path(p) for p in paths]
        self.boxes = None if boxes is None else [np.asarray(b, np.float32).reshape(-1, 4) for b in boxes]
        if self.boxes is not None and len(self.boxes) != len(self.paths):
            raise RetinaNetError(f"boxes: {len(self.boxes)} arrays for {len(self.paths)} paths")
        counts = [len(b) for b in self.boxes] if self.boxes else [0]
        self.max_boxes = int(max_boxes or max(1, max(counts)))
        self.image_size, self.batch_size, self.shuffle = int(image_size), int(batch_size), shuffle
        self._init_order(retinanet_augmentation() if augment else None, seed)

    def sample(self, index):
        """Image ``index`` (uint8 [S, S]) and its boxes in input pixels (float32 [N, 4]), augmented when training."""
        from .data.labels import scale_boxes

        image, original = read_grey_image(self.paths[index], self.image_size)
        boxes = np.zeros((0, 4), np.float32) if self.boxes is None else scale_boxes(
            self.boxes[index], original, self.image_size).astype(np.float32)
        if self.augmenter is not None:
            image, boxes = augment_image_and_boxes(self.augmenter, image, boxes)
        return image, boxes[: self.max_boxes]

    def __getitem__(self, index):
        indices = self.batch_indices(index)
        samples = [self.sample(i) for i in indices]
        images = preprocess_images(np.stack([image for image, _ in samples]))
        if self.boxes is None:
            return (images,)
        boxes = np.full((len(samples), self.max_boxes, 4), -1.0, np.float32)
        labels = np.full((len(samples), self.max_boxes), -1.0, np.float32)
        for row, (_, sample_boxes) in enumerate(samples):
            boxes[row, : len(sample_boxes)] = sample_boxes
            labels[row, : len(sample_boxes)] = 0.0
        return images, {"boxes": boxes, "labels": labels}

    def as_dataset(self):
        """A ``tf.data.Dataset`` of the batches (one pass = one epoch, reshuffled after each pass)."""
        import tensorflow as tf

        size = self.image_size
        images = tf.TensorSpec((None, size, size, 3), tf.float32)
        if self.boxes is None:
            signature = (images,)
        else:
            signature = (images, {"boxes": tf.TensorSpec((None, self.max_boxes, 4), tf.float32),
                                  "labels": tf.TensorSpec((None, self.max_boxes), tf.float32)})

        def batches():
            for index in range(len(self)):
                yield self[index]
            self.on_epoch_end()

        dataset = tf.data.Dataset.from_generator(batches, output_signature=signature)
        return dataset.apply(tf.data.experimental.assert_cardinality(len(self))).prefetch(1)


# --------------------------------------------------------------------------- training
def _records_and_paths(data, image_dir):
    """``(records, paths)`` from a Kaggle dir, (records, image_dir) or a keras-retinanet CSV file."""
    from .classifier import ClassifierError, patient_images

    if isinstance(data, (str, Path)) and Path(data).suffix.lower() == ".csv" and Path(data).is_file():
        return read_retinanet_csv(data, with_paths=True)
    try:
        return patient_images(data, image_dir)
    except ClassifierError as error:
        raise RetinaNetError(str(error)) from None


def _split_ids(records, val_fraction, seed):
    from .data.splits import split_patients

    ids = list(records)
    if not val_fraction:
        return ids, []
    return split_patients(ids, [records[i].target for i in ids], val_fraction=val_fraction, seed=seed)


def _image_size_of(model):
    return int(model.input_shape[1])


def train_retinanet(data, image_dir=None, *, model=None, image_size=DEFAULT_IMAGE_SIZE, weights="imagenet",
                    epochs=50, batch_size=32, learning_rate=1e-4, augment=True, val_fraction=0.1, seed=42,
                    steps_per_epoch=None, backbone_config=None, callbacks=None, verbose=1):
    """Train the RetinaNet baseline (defaults: the report's lr 1e-4, 50 epochs, batch 32).

    Parameters
    ----------
    data : path, dict, list or (records, image_dir)
        A Kaggle-layout data directory, records with ``image_dir``, or a
        keras-retinanet annotation CSV (see :func:`read_retinanet_csv`).
    image_dir : path, optional
    model : RetinaNetObjectDetector, optional
        Continue training this model (``image_size``, ``weights``,
        ``backbone_config`` and ``learning_rate`` are then not used).
    image_size : int
    weights : 'imagenet', None or path
    epochs, batch_size : int
    learning_rate : float
    augment : bool
        The report's random transform on training images.
    val_fraction : float or None
        Patient-level validation share (stratified by target); None or 0 trains
        on every image. Use the same value and ``seed`` in :func:`evaluate_retinanet`.
    seed : int
    steps_per_epoch : int, optional
    backbone_config : dict, optional
    callbacks : list of keras callbacks, optional
    verbose : int

    Returns
    -------
    model : RetinaNetObjectDetector
    history : keras.callbacks.History
        Losses ``loss``, ``bbox_regression_loss``, ``cls_logits_loss`` (and
        ``val_*`` with a validation set).
    """
    records, paths = _records_and_paths(data, image_dir)
    train_ids, val_ids = _split_ids(records, val_fraction, seed)
    if model is None:
        model = build_retinanet(image_size, weights=weights, backbone_config=backbone_config,
                                learning_rate=learning_rate, seed=seed)
    size = _image_size_of(model)
    max_boxes = max(1, max(records[i].n_boxes for i in records))

    def make(ids, **kwargs):
        return RetinaNetSequence([paths[i] for i in ids], [records[i].boxes for i in ids], image_size=size,
                                 batch_size=batch_size, max_boxes=max_boxes, **kwargs).as_dataset()

    history = model.fit(make(train_ids, augment=augment, shuffle=True, seed=seed),
                        validation_data=make(val_ids) if val_ids else None, epochs=epochs,
                        steps_per_epoch=steps_per_epoch, callbacks=callbacks, verbose=verbose,
                        shuffle=False)  # the sequence shuffles
    return model, history


# --------------------------------------------------------------------------- prediction and evaluation
def _to_original(boxes, image_size, original):
    from .data.labels import scale_boxes

    boxes = scale_boxes(boxes, image_size, original).astype(np.float32)
    height, width = original
    boxes = np.clip(boxes, 0, [height, width, height, width]).astype(np.float32)
    return boxes


def _predict_batch(model, images, batch_size):
    """``model.predict`` on exactly ``batch_size`` images (the last ones repeated), outputs cut back.

    keras-hub 0.32's NonMaxSuppression needs a static batch size: once a predict
    function has seen two batch sizes, TensorFlow retraces it with an unknown
    batch dimension and the NMS fails. So every call gets ``batch_size`` images,
    and the predict function is rebuilt when ``batch_size`` changes.
    """
    if getattr(model, "_rsna_predict_batch", None) != batch_size:
        model.make_predict_function(force=True)
        model._rsna_predict_batch = batch_size
    count = len(images)
    if count < batch_size:
        images = np.concatenate([images, np.repeat(images[-1:], batch_size - count, axis=0)])
    output = model.predict(images, batch_size=batch_size, verbose=0)
    return {key: np.asarray(value)[:count] for key, value in output.items()}


def predict_retinanet(model, paths, *, batch_size=8, min_confidence=None):
    """Detections of each image, in the pixels of the original image.

    Parameters
    ----------
    model : RetinaNetObjectDetector
        From :func:`build_retinanet` / :func:`train_retinanet`.
    paths : sequence of path
        DICOM or PNG/JPEG files; the patient id is the file name without extension.
    batch_size : int
    min_confidence : float, optional
        Keep detections scoring at least this (the model's decoder already
        dropped those below its ``min_confidence``).

    Returns
    -------
    list of ImagePrediction
        In ``paths`` order; boxes float32 ``(y1, x1, y2, x2)`` scaled from the
        input size to the file's size and clipped to it, scores descending.
    """
    from .submission import ImagePrediction

    paths = [Path(p) for p in paths]
    size = _image_size_of(model)
    predictions = []
    for start in range(0, len(paths), batch_size):
        chunk = paths[start:start + batch_size]
        images, originals = zip(*(read_grey_image(p, size) for p in chunk))
        output = _predict_batch(model, preprocess_images(np.stack(images)), batch_size)
        for row, (path, original) in enumerate(zip(chunk, originals)):
            count = int(output["num_detections"][row])
            boxes = output["boxes"][row, :count].astype(np.float32)
            scores = output["confidence"][row, :count].astype(np.float32)
            keep = np.ones(count, bool) if min_confidence is None else scores >= min_confidence
            boxes = _to_original(boxes[keep], size, original)
            scores = scores[keep]
            valid = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
            order = np.argsort(-scores[valid], kind="stable")
            predictions.append(ImagePrediction(path.stem, boxes[valid][order], scores[valid][order]))
    return predictions


def _eval_records(records, predictions):
    """``evaluate.EvalRecord`` s of the ground truth and detections (one class, no masks), original pixels."""
    from .evaluate import records_from_predictions

    return records_from_predictions({p.patient_id: records[p.patient_id].boxes for p in predictions}, predictions)


def _decoder_threshold(model):
    """The minimum confidence of the model's NMS decoder, None when it has none."""
    return getattr(getattr(model, "prediction_decoder", None), "confidence_threshold", None)


def detection_metrics(records, predictions, *, model_threshold=None):
    """``evaluate.detection_metrics`` of ``predictions`` against ``records``' boxes, by box IoU (no masks).

    Parameters
    ----------
    records : dict patient id -> PatientRecord
        Ground truth; ``boxes`` [G, (y1, x1, y2, x2)] in original pixels.
    predictions : list of ImagePrediction
        Boxes in the same pixels (:func:`predict_retinanet`); each id must be in ``records``.
    model_threshold : float, optional
        Reported as ``model_threshold`` (NaN when None).

    Returns
    -------
    dict
        The Mask R-CNN's metrics dictionary, ``iou`` 'box' (see :func:`evaluate_retinanet`).
    """
    from . import evaluate

    return evaluate.detection_metrics(_eval_records(records, predictions), "box", model_threshold=model_threshold)


def evaluate_retinanet(model, data, image_dir=None, *, split="validation", val_fraction=0.1, seed=42, batch_size=8,
                       out_dir=None, submission=None):
    """Evaluate the RetinaNet exactly as the Mask R-CNN is evaluated.

    Parameters
    ----------
    model : RetinaNetObjectDetector
    data, image_dir
        As :func:`train_retinanet`.
    split : {'validation', 'all'}
        'validation' rebuilds :func:`train_retinanet`'s split from
        ``val_fraction`` and ``seed``.
    val_fraction : float
    seed : int
    batch_size : int
    out_dir : path, optional
        ``metrics.json``, ``precision_recall.png`` and ``threshold_sweep.png``
        written there (``evaluate.write_detection_report``, as for the Mask R-CNN).
    submission : path, optional
        The evaluated images' predictions written as a Kaggle CSV (``write_submission``).

    Returns
    -------
    dict
        ``evaluate.detection_metrics``' dict by box IoU (``iou`` 'box': a
        RetinaNet has no masks; the Mask R-CNN reports box IoU too, so the
        numbers compare): ``map50`` (mean over images of ``compute_ap_boxes``
        at IoU 0.5; an image with neither ground truth nor detection counts 1,
        detections without ground truth 0), ``map50_positive``, ``mean_iou``,
        ``model_threshold`` (the NMS decoder's minimum confidence),
        ``rsna_score``, ``best_threshold``/``best_rsna_score``, ``counts``,
        ``per_image_ap``, ``sweep``; plus ``predictions`` (list of
        ImagePrediction); with ``out_dir`` ``metrics_json`` and ``figures``.
    """
    from . import evaluate
    from .submission import write_submission

    records, paths = _records_and_paths(data, image_dir)
    if split == "validation":
        ids = _split_ids(records, val_fraction, seed)[1]
    elif split == "all":
        ids = list(records)
    else:
        raise RetinaNetError(f"split {split!r}: expected 'validation' or 'all'")
    if not ids:
        raise RetinaNetError("no image to evaluate (empty validation split)")
    predictions = predict_retinanet(model, [paths[i] for i in ids], batch_size=batch_size)
    eval_records = _eval_records(records, predictions)
    metrics = evaluate.detection_metrics(eval_records, "box", model_threshold=_decoder_threshold(model))
    if out_dir is not None:
        evaluate.write_detection_report(eval_records, metrics, out_dir)
    if submission is not None:
        metrics["submission"] = str(write_submission(predictions, submission))
    metrics["predictions"] = predictions
    return metrics


# --------------------------------------------------------------------------- command line
def _cmd_train(args):
    model, history = train_retinanet(
        args.data, image_size=args.image_size, weights=None if args.weights == "none" else args.weights,
        epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.learning_rate,
        augment=not args.no_augment, val_fraction=args.val_fraction or None, seed=args.seed,
        steps_per_epoch=args.steps_per_epoch, verbose=0 if args.quiet else 1)
    summary = save_trained_model(model, history, args.out)
    if args.export_csv:
        records, paths = _records_and_paths(args.data, None)
        write_retinanet_csv(records, Path(next(iter(paths.values()))).parent, args.export_csv)
    print(summary)
    return 0


def _cmd_evaluate(args):
    import keras_hub  # noqa: F401  (registers the RetinaNet classes for loading)

    model = load_model_for_prediction(args.model)
    metrics = evaluate_retinanet(model, args.data, split=args.split, val_fraction=args.val_fraction,
                                 seed=args.seed, batch_size=args.batch_size, out_dir=args.out,
                                 submission=args.submission)
    shown = {k: v for k, v in metrics.items() if k not in ("per_image_ap", "sweep", "predictions")}
    print(json.dumps(shown, indent=2, default=str))
    return 0


def add_subcommands(subparsers):
    """Register ``retinanet-train`` and ``retinanet-evaluate`` on an argparse subparsers object.

    Each parser sets ``func`` to a function of the parsed arguments returning
    the exit code (0 on success); errors are raised as ``ValueError`` subclasses
    (or ``FileNotFoundError``) for the caller to print and turn into a non-zero status.
    """
    train = subparsers.add_parser(
        "retinanet-train", help="train the RetinaNet baseline (keras-hub, ResNet-50 FPN)",
        description="Train a one-class RetinaNet with the report's settings (focal loss, smooth L1 sigma 3, "
                    "Adam 1e-4, batch 32, random transform) on a Kaggle-layout data directory or a "
                    "keras-retinanet annotation CSV. Saves a .keras model.")
    train.add_argument("--data", required=True, help="Kaggle-layout data directory or annotation CSV")
    train.add_argument("--out", default="retinanet.keras", help="model file to write (default: %(default)s)")
    train.add_argument("--weights", default="imagenet", help="imagenet (default), none, or a weights file")
    train.add_argument("--image-size", type=int, default=DEFAULT_IMAGE_SIZE, help="input side (default: 256)")
    train.add_argument("--epochs", type=int, default=50, help="epochs (default: 50)")
    train.add_argument("--batch-size", type=int, default=32, help="batch size (default: 32)")
    train.add_argument("--steps-per-epoch", type=int, default=None, help="batches per epoch (default: all)")
    train.add_argument("--learning-rate", type=float, default=1e-4, help="Adam learning rate (default: 1e-4)")
    train.add_argument("--val-fraction", type=float, default=0.1, help="validation share, 0 for none (default: 0.1)")
    train.add_argument("--no-augment", action="store_true", help="no random transform")
    train.add_argument("--export-csv", default=None, help="also write the data as keras-retinanet CSV files here")
    train.add_argument("--seed", type=int, default=42, help="split and initialisation seed (default: 42)")
    train.add_argument("--quiet", action="store_true", help="no progress output")
    train.set_defaults(func=_cmd_train)

    evaluate = subparsers.add_parser(
        "retinanet-evaluate", help="mAP@0.5, mean IoU and the competition score of a RetinaNet",
        description="Evaluate a saved RetinaNet on the validation split of --data (same --val-fraction and --seed "
                    "as in training) with the Mask R-CNN's metrics; writes metrics.json to --out and optionally "
                    "the predictions as a Kaggle CSV.")
    evaluate.add_argument("--model", required=True, help="a .keras model written by retinanet-train")
    evaluate.add_argument("--data", required=True, help="Kaggle-layout data directory or annotation CSV")
    evaluate.add_argument("--out", default="retinanet_evaluation", help="output folder (default: %(default)s)")
    evaluate.add_argument("--split", choices=["validation", "all"], default="validation",
                          help="images to evaluate (default: validation)")
    evaluate.add_argument("--val-fraction", type=float, default=0.1, help="validation share used in training")
    evaluate.add_argument("--seed", type=int, default=42, help="split seed used in training (default: 42)")
    evaluate.add_argument("--batch-size", type=int, default=8, help="batch size (default: 8)")
    evaluate.add_argument("--submission", default=None, help="write the predictions as a Kaggle CSV here")
    evaluate.set_defaults(func=_cmd_evaluate)
    return subparsers

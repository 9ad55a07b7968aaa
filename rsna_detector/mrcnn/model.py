"""The Mask R-CNN facade, compatible with matterport's ``mrcnn.model``.

Use it as matterport's module::

    import rsna_detector.mrcnn.model as modellib

    model = modellib.MaskRCNN(mode="inference", config=config, model_dir="logs")
    model.load_weights("mask_rcnn_coco.h5", by_name=True,
                       exclude=["mrcnn_class_logits", "mrcnn_bbox_fc", "mrcnn_bbox", "mrcnn_mask"])
    results = model.detect([image])           # list of dicts: rois, class_ids, scores, masks

:class:`MaskRCNN` holds matterport's methods; the work is done elsewhere: the
inference graph and the detect machinery in ``inference``, the training graph in
``training_graph.build_training_model``, the training loop in ``loop.train``, run
folders and checkpoint finding in ``checkpoints``, weights files in ``weights``.
The rest of this module re-exports matterport's module-level names (graph
functions, layers, losses, ``load_image_gt``, ``data_generator``, ...) that
notebooks reach as ``modellib.<name>``, from the modules that define them.
"""
from __future__ import annotations

import copy
import datetime
import os
from collections import OrderedDict

import keras
import numpy as np

# Besides what MaskRCNN uses, these imports re-export matterport's module-level names for notebooks
# (``modellib.resnet_graph``, ...; the second part of __all__). Where the engine's function takes
# other arguments, ``compat`` gives matterport's signature.
from .inference.detect import (
    ModelError,
    build_inference_model,
    check_molded_shape,
    make_detect_function,
    mold_one,
    unmold_detections,
)
from .input.generator import data_generator
from .input.ground_truth import load_image_gt
from .input.head_targets import build_detection_targets, generate_random_rois
from .input.rpn_targets import build_rpn_targets
from .layers.backbone import BatchNorm, conv_block, identity_block, resnet_graph
from .layers.box_ops import (
    apply_box_deltas_graph,
    batch_pack_graph,
    clip_boxes_graph,
    denorm_boxes_graph,
    norm_boxes_graph,
    overlaps_graph,
    trim_zeros_graph,
)
from .layers.compat import find_ancestor, log2_graph, smooth_l1_loss
from .layers.detection import DetectionLayer, refine_detections_graph
from .layers.detection_targets import DetectionTargetLayer, detection_targets_graph
from .layers.heads import build_fpn_mask_graph, fpn_classifier_graph
from .layers.losses import (
    mrcnn_bbox_loss_graph,
    mrcnn_class_loss_graph,
    mrcnn_mask_loss_graph,
    rpn_bbox_loss_graph,
    rpn_class_loss_graph,
)
from .layers.proposals import ProposalLayer
from .layers.roi_align import PyramidROIAlign
from .layers.rpn import build_rpn_model, rpn_graph
from .ops.anchors import compute_backbone_shapes, pyramid_anchors
from .ops.boxes import norm_boxes
from .ops.image_meta import compose_image_meta, parse_image_meta, parse_image_meta_graph
from .ops.molding import mold_image, unmold_image
from .train.checkpoints import (
    CHECKPOINT_PATTERN,
    UnreadableCheckpointWarning,
    checkpoint_path_in,
    claim_run_folder,
    find_last_checkpoint,
    run_of_checkpoint,
)
from .train.hdf5_weights import load_hdf5_weights, save_hdf5_weights

__all__ = [
    "MaskRCNN",
    "ModelError",
    "UnreadableCheckpointWarning",
    "build_inference_model",
    "log",
    "format_log",
    "MODES",
    "CHECKPOINT_PATTERN",
] + [
    # matterport's module-level names, re-exported for notebooks
    "BatchNorm", "resnet_graph", "identity_block", "conv_block", "rpn_graph", "build_rpn_model",
    "ProposalLayer", "PyramidROIAlign", "DetectionTargetLayer", "DetectionLayer", "fpn_classifier_graph",
    "build_fpn_mask_graph", "norm_boxes_graph", "denorm_boxes_graph", "parse_image_meta_graph",
    "apply_box_deltas_graph", "clip_boxes_graph", "overlaps_graph", "trim_zeros_graph", "batch_pack_graph",
    "log2_graph", "smooth_l1_loss", "rpn_class_loss_graph", "rpn_bbox_loss_graph", "mrcnn_class_loss_graph",
    "mrcnn_bbox_loss_graph", "mrcnn_mask_loss_graph", "detection_targets_graph", "refine_detections_graph",
    "mold_image", "compose_image_meta", "parse_image_meta", "load_image_gt", "data_generator",
    "compute_backbone_shapes", "unmold_image", "build_rpn_targets", "build_detection_targets",
    "generate_random_rois",
]

#: Modes of :class:`MaskRCNN`.
MODES = ("training", "inference")


def format_log(text, array=None):
    """The line :func:`log` prints: ``text``, then the shape, min, max and dtype of ``array``."""
    if array is not None:
        array = np.asarray(array)
        text = text.ljust(25) + f"shape: {str(array.shape):20}  "
        if array.size:
            text += f"min: {array.min():10.5f}  max: {array.max():10.5f}"
        else:
            text += f"min: {'':10}  max: {'':10}"
        text += f"  {array.dtype}"
    return text


def log(text, array=None):
    """Print ``text``, followed by the shape, min, max and dtype of ``array`` when given.

    matterport's debugging helper; returns None, as matterport's, so that a notebook
    cell ending with it shows the line once (:func:`format_log` gives the text).
    """
    print(format_log(text, array))


class MaskRCNN:
    """matterport's ``MaskRCNN``: build, detect, load/save weights, train.

    Parameters
    ----------
    mode : {'training', 'inference'}
    config : Config
    model_dir : str or Path
        Where training logs and checkpoints go (``<model_dir>/<name><timestamp>/``).

    Attributes
    ----------
    keras_model : keras.Model
    epoch : int
        Epochs already trained (recovered from a checkpoint's name by ``load_weights``).
    log_dir, checkpoint_path : str
        See :meth:`set_log_dir`.
    trace_count : int
        How many times a detect function was traced (stays 1 per molded image shape).
    """

    def __init__(self, mode, config, model_dir):
        if mode not in MODES:
            raise ModelError(f"MaskRCNN: mode: expected one of {MODES}, got {mode!r}")
        self.mode = mode
        self.config = config
        self.model_dir = str(model_dir)
        self.trace_count = 0
        self._anchor_cache = {}
        self._detect_functions = {}
        self.set_log_dir()
        self.keras_model = self.build(mode=mode, config=config)

    # ------------------------------------------------------------------
    # building
    # ------------------------------------------------------------------
    def build(self, mode, config):
        """The Keras model of ``mode`` (training graph from ``training_graph.build_training_model``)."""
        if mode == "training":
            from .layers.training_graph import build_training_model

            return build_training_model(config)
        return build_inference_model(config)

    def get_anchors(self, image_shape):
        """Normalized anchors for a molded image shape, computed once per shape.

        Parameters
        ----------
        image_shape : (H, W, ...)

        Returns
        -------
        ndarray, float32, [A, (y1, x1, y2, x2)]
            ``anchors.pyramid_anchors`` (the first ``RPN_PYRAMID_LEVELS`` pyramid levels,
            in the RPN's output order), normalized.
            The pixel anchors of the last shape computed (not served from the cache) are
            kept in ``self.anchors``, as matterport's.
        """
        # Keyed by the whole shape, as matterport: (H, W) and (H, W, 3) are two entries, and
        # self.anchors follows each computation.
        key = tuple(int(v) for v in image_shape)
        if key not in self._anchor_cache:
            pixel_anchors = pyramid_anchors(self.config, image_shape)
            self.anchors = pixel_anchors
            self._anchor_cache[key] = norm_boxes(pixel_anchors, key[:2]).astype(np.float32)
        return self._anchor_cache[key]

    # ------------------------------------------------------------------
    # inference
    # ------------------------------------------------------------------
    def _mold_one(self, image, index):
        return mold_one(self.config, image, index)

    def mold_inputs(self, images):
        """Resize and normalize images as the network expects them (matterport's method).

        Parameters
        ----------
        images : list of ndarray
            RGB ``[H, W, 3]`` (or grayscale ``[H, W]`` / ``[H, W, 1]``), uint8 range.
            After resizing they must share one shape (true in 'square' mode).

        Returns
        -------
        molded_images : ndarray, [N, h, w, C]
            ``mold_image`` of the resized images (float64 with the default
            numpy ``MEAN_PIXEL``, as matterport).
        image_metas : ndarray, [N, IMAGE_META_SIZE]
            ``compose_image_meta`` (image id 0, no active class).
        windows : ndarray, int, [N, (y1, x1, y2, x2)]
            The real image's pixels inside each molded image.
        """
        molded = [mold_one(self.config, image, i) for i, image in enumerate(images)]
        shapes = {m[0].shape for m in molded}
        if len(shapes) > 1:
            raise ModelError(f"mold_inputs: images resize to different shapes {sorted(shapes)}; "
                             "mold them one shape at a time (detect does this for you)")
        return (np.stack([m[0] for m in molded]), np.stack([m[1] for m in molded]),
                np.stack([m[2] for m in molded]))

    def unmold_detections(self, detections, mrcnn_mask, original_image_shape, image_shape, window):
        """Detections of one image in the original image's pixels (matterport's method).

        Returns ``(boxes, class_ids, scores, masks)``: int32 ``[N, (y1, x1, y2, x2)]``
        original-image pixels, int32 ``[N]``, ``[N]``, bool ``[H, W, N]`` (float64 when N is 0,
        as matterport's); see ``detect.unmold_detections`` for the parameters and the details.
        """
        return unmold_detections(detections, mrcnn_mask, original_image_shape, image_shape, window)

    def _detect_function(self, image_shape):
        """The compiled detect graph for one molded shape (``detect.make_detect_function``), made once.

        ``(images, metas) -> (detections, masks)``, ``masks`` the ``[B, D, 28, 28]``
        probabilities of each detection's class.
        """
        key = (int(image_shape[0]), int(image_shape[1]))
        if key not in self._detect_functions:
            check_molded_shape(key)
            self._detect_functions[key] = make_detect_function(
                self.keras_model, self.config, key, self.get_anchors(image_shape), on_trace=self._count_trace)
        return self._detect_functions[key]

    def _count_trace(self):
        self.trace_count += 1

    def detect(self, images, verbose=0):
        """Detect objects in images of any size and number.

        Parameters
        ----------
        images : list of ndarray
            RGB ``[H, W, 3]`` or grayscale ``[H, W]`` / ``[H, W, 1]``, uint8 range; sizes
            may differ. Run in chunks of ``config.BATCH_SIZE`` (the last may be shorter).
        verbose : int
            1 prints what goes in (matterport's logging).

        Returns
        -------
        list of dict, one per image
            ``rois`` int32 ``[N, (y1, x1, y2, x2)]`` in the original image's pixels,
            ``class_ids`` int32 ``[N]``, ``scores`` float32 ``[N]``, ``masks`` bool
            ``[H, W, N]`` (the original size; float64 ``[H, W, 0]`` without detections,
            as matterport's).
        """
        if self.mode != "inference":
            raise ModelError("detect: create the model with mode='inference'")
        if isinstance(images, np.ndarray) and images.ndim == 4:
            images = list(images)
        if not isinstance(images, (list, tuple)):
            raise ModelError(f"detect: expected a list of images, got {type(images).__name__}")
        if verbose:
            log(f"Processing {len(images)} images")
            for image in images:
                log("image", image)
        results = [None] * len(images)
        batch_size = self.config.BATCH_SIZE
        for start in range(0, len(images), batch_size):
            indices = range(start, min(start + batch_size, len(images)))
            molded = {i: self._mold_one(images[i], i) for i in indices}
            by_shape = OrderedDict()
            for i in indices:
                by_shape.setdefault(molded[i][0].shape, []).append(i)
            for shape, members in by_shape.items():
                self._detect_group(shape, [molded[i] for i in members], members, results, verbose)
        return results

    def _detect_group(self, shape, molded, indices, results, verbose):
        molded_images = np.stack([m[0] for m in molded]).astype(np.float32)
        image_metas = np.stack([m[1] for m in molded]).astype(np.float32)
        if verbose:
            log("molded_images", molded_images)
            log("image_metas", image_metas)
            log("anchors", self.get_anchors(shape))
        detections, masks = self._detect_function(shape)(molded_images, image_metas)
        detections, masks = detections.numpy(), masks.numpy()
        for k, i in enumerate(indices):
            _, _, window, original_shape = molded[k]
            rois, class_ids, scores, full_masks = self.unmold_detections(
                detections[k], masks[k], original_shape, shape, window)
            results[i] = {"rois": rois, "class_ids": class_ids, "scores": scores, "masks": full_masks}

    def export(self, path, **options):
        """Extension: this detector, :meth:`detect`'s molding and unmolding inside, as a SavedModel for TF Serving.

        Writes ``path/<version>/`` and returns it; ``options``: ``version``, ``min_confidence``,
        ``masks``, ``replace`` (``export.saved_model.export_saved_model``; docs/DEPLOY.md).
        """
        from .export.saved_model import export_saved_model

        return export_saved_model(self, path, **options)

    def detect_molded(self, molded_images, image_metas, verbose=0):
        """Detect objects in images already molded (as ``load_image_gt`` + ``mold_image`` give them).

        matterport's debugging entry point: no resizing, and the results are in the
        molded images' pixels (window = the whole molded image).

        Parameters
        ----------
        molded_images : ndarray or list, float32, [BATCH_SIZE, H, W, C]
            Mean pixel subtracted; one shape (H, W multiples of 64).
        image_metas : ndarray, [BATCH_SIZE, IMAGE_META_SIZE]
        verbose : int
            1 logs the inputs.

        Returns
        -------
        list of dict
            As :meth:`detect`, boxes and masks in molded-image pixels.

        Raises
        ------
        ModelError
            Not in inference mode, a batch that is not ``BATCH_SIZE`` long (matterport's
            rule), or images of different shapes.
        """
        if self.mode != "inference":
            raise ModelError("detect_molded: create the model with mode='inference'")
        if len(molded_images) != self.config.BATCH_SIZE:
            raise ModelError(f"detect_molded: expected BATCH_SIZE={self.config.BATCH_SIZE} molded images, "
                             f"got {len(molded_images)}")
        shapes = {tuple(np.shape(image)) for image in molded_images}
        if len(shapes) > 1:
            raise ModelError(f"detect_molded: the molded images must share one shape, got {sorted(shapes)}")
        molded_images = np.asarray(molded_images, np.float32)
        image_metas = np.asarray(image_metas, np.float32)
        if verbose:
            log(f"Processing {len(molded_images)} images")
            for image in molded_images:
                log("image", image)
            log("molded_images", molded_images)
            log("image_metas", image_metas)
            log("anchors", self.get_anchors(molded_images.shape[1:]))
        shape = molded_images.shape[1:]
        detections, masks = self._detect_function(shape)(molded_images, image_metas)
        detections, masks = detections.numpy(), masks.numpy()
        results = []
        for i in range(len(molded_images)):
            window = np.array([0, 0, shape[0], shape[1]], np.int32)
            rois, class_ids, scores, full_masks = self.unmold_detections(
                detections[i], masks[i], shape, shape, window)
            results.append({"rois": rois, "class_ids": class_ids, "scores": scores, "masks": full_masks})
        return results

    def ancestor(self, tensor, name, checked=None):
        """A tensor computed inside the graph upstream of ``tensor``, by matterport's TF-1 name.

        Keras 3 has no TensorFlow graph to search, so the names matterport's notebooks
        use are resolved explicitly: ``"ROI/pre_nms_anchors:0"``,
        ``"ROI/refined_anchors:0"``, ``"ROI/refined_anchors_clipped:0"`` and
        ``"ROI/rpn_non_max_suppression:0"`` (also its ``/NonMaxSuppressionV2:0`` and
        ``/NonMaxSuppressionV3:0`` spellings) give a tensor that :meth:`run_graph` can
        evaluate (see ``compat.find_ancestor`` for shapes). Any other name gives None,
        as matterport's search did when nothing matched. ``checked`` is accepted for
        compatibility and ignored.
        """
        return find_ancestor(tensor, name)

    def run_graph(self, images, outputs, image_metas=None):
        """Values of intermediate tensors for the given images (debugging, as matterport).

        Parameters
        ----------
        images : list of ndarray
            Raw images, molded here; or, when ``image_metas`` is given, images already
            molded (resized, padded, mean subtracted: ``mold_image`` of
            ``load_image_gt``'s image), used as they are.
        outputs : list of (str, KerasTensor)
            Tensors of ``keras_model`` (e.g. ``model.keras_model.get_layer("ROI").output``)
            or from :meth:`ancestor`.
        image_metas : ndarray, optional
            ``[N, IMAGE_META_SIZE]`` of the molded ``images``.

        Returns
        -------
        OrderedDict
            ``name -> ndarray``; each is also logged (:func:`log`), as matterport does.
        """
        if self.mode != "inference":
            raise ModelError("run_graph: create the model with mode='inference'")
        outputs = OrderedDict(outputs)
        missing = [name for name, tensor in outputs.items() if tensor is None]
        if missing:
            raise ModelError(f"run_graph: no tensor given for {missing} (ancestor() found none?)")
        probe = keras.Model(self.keras_model.inputs, list(outputs.values()))
        if image_metas is None:
            molded_images, metas, _ = self.mold_inputs(images)
        else:
            molded_images = np.asarray(images, np.float32)
            metas = np.asarray(image_metas, np.float32)
        anchors = self.get_anchors(molded_images.shape[1:])
        anchors = np.ascontiguousarray(np.broadcast_to(anchors, (len(molded_images),) + anchors.shape))
        values = probe([molded_images, metas, anchors], training=False)
        if not isinstance(values, (list, tuple)):
            values = [values]
        results = OrderedDict((name, keras.ops.convert_to_numpy(v)) for name, v in zip(outputs, values, strict=True))
        for name, value in results.items():
            log(name, value)
        return results

    # ------------------------------------------------------------------
    # weights and checkpoints
    # ------------------------------------------------------------------
    def load_weights(self, filepath, by_name=False, exclude=None, *, require_complete=False):
        """Load a Keras-1/Keras-2 HDF5 weights file (matterport's, Keras' ImageNet, ours); adopt its log dir.

        See ``weights.load_hdf5_weights`` for ``by_name`` and ``exclude``; as in
        matterport, giving ``exclude`` forces ``by_name=True``. When the path is a
        checkpoint of this library's naming, ``epoch`` and ``log_dir`` follow it
        (training resumes there). ``require_complete=True`` (not in matterport) refuses
        a file that leaves any layer with weights unloaded (``IncompleteWeightsError``,
        nothing assigned): the command line's ``predict`` and ``evaluate`` load so.

        Returns
        -------
        weights.WeightsLoadResult
            The layers loaded, missing from the file, excluded and unused
            (matterport returned None).
        """
        if exclude:
            by_name = True
        result = load_hdf5_weights(self.keras_model, filepath, by_name=by_name, exclude=exclude,
                                   require_complete=require_complete)
        self.set_log_dir(str(filepath))
        return result

    def get_imagenet_weights(self):
        """Path of the ImageNet ResNet-50 file matterport starts from (``init_with="imagenet"``).

        The file ``resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5`` (Keras 1
        layout, MD5 a268eb855778b3df3c7506639542a6af) comes from the weights registry
        (``rsna_detector.weights.fetch_weights("imagenet")``): found in
        ``$RSNA_DETECTOR_WEIGHTS_DIR`` or the cache, else downloaded, and checked.
        Load it with ``load_weights(path, by_name=True)``.

        Returns
        -------
        str
        """
        from rsna_detector.weights import fetch_weights

        return str(fetch_weights("imagenet"))

    def save_weights(self, filepath):
        """Write the weights (Keras-2 HDF5 layout, atomically, with config and epoch)."""
        return save_hdf5_weights(self.keras_model, filepath, config=self.config, epoch=self.epoch)

    def set_log_dir(self, model_path=None):
        """Set ``log_dir``, ``checkpoint_path`` and ``epoch`` (matterport's naming, to the second).

        New run: ``log_dir = <model_dir>/<name><now:%Y%m%dT%H%M%S>`` and ``epoch = 0``;
        the folder is created by :meth:`make_log_dir` when training starts, with a
        suffix ``_2``, ``_3``, ... when another run already took that name.
        With ``model_path`` of the form ``.../<run folder>/mask_rcnn_<name>_<EEEE>.h5``
        (run folder ``<name><YYYYmmddTHHMM[SS][_N]>``) the run continues in
        ``<model_dir>/<run folder>`` with ``epoch = EEEE`` (epochs done).
        ``checkpoint_path`` is ``<log_dir>/mask_rcnn_<name>_{epoch:04d}.h5``.
        """
        self.epoch = 0
        run = run_of_checkpoint(model_path)
        if run:
            run_folder, self.epoch = run
            self._new_run = False
            self._set_run_folder(os.path.join(self.model_dir, run_folder))
        else:
            name = str(self.config.NAME).lower()
            self._new_run = True
            self._set_run_folder(os.path.join(self.model_dir, f"{name}{datetime.datetime.now():%Y%m%dT%H%M%S}"))

    def _set_run_folder(self, folder):
        self.log_dir = folder
        self.checkpoint_path = checkpoint_path_in(folder, str(self.config.NAME).lower())

    def make_log_dir(self):
        """Create ``log_dir`` before anything is written there; returns it.

        A new run's folder is created atomically (``os.mkdir``): when another run
        already has that name (two runs started in the same second), the suffix
        ``_2``, ``_3``, ... is added, so no run ever writes into another's
        folder. A resumed run (``load_weights`` of one of its checkpoints) keeps
        its folder.
        """
        if not getattr(self, "_new_run", False):
            os.makedirs(self.log_dir, exist_ok=True)
            return self.log_dir
        folder = claim_run_folder(self.model_dir, self.log_dir)
        self._new_run = False
        self._set_run_folder(folder)
        return folder

    def find_last(self):
        """Path of the newest readable checkpoint of the newest run of this config's NAME.

        See ``checkpoints.find_last_checkpoint`` for the search order; an unreadable
        checkpoint is skipped with an :class:`UnreadableCheckpointWarning`, and a
        ``FileNotFoundError`` names ``model_dir`` when nothing readable is found.
        """
        return find_last_checkpoint(self.model_dir, str(self.config.NAME).lower())

    # ------------------------------------------------------------------
    # training
    # ------------------------------------------------------------------
    def train(self, train_dataset, val_dataset, learning_rate, epochs, layers, augmentation=None,
              custom_callbacks=None, no_augmentation_sources=None, **options):
        """Train up to epoch ``epochs`` (see ``loop.train``).

        ``layers`` is 'heads', '3+', '4+', '5+', 'all' or a regex; ``options`` (e.g.
        ``verbose``) go to ``loop.train``. Returns what it returns.
        """
        if self.mode != "training":
            raise ModelError("train: create the model with mode='training'")
        if not self.config.USE_RPN_ROIS:
            # matterport's train() did not feed input_roi either (its fit failed on the input count).
            raise ModelError(
                "train: USE_RPN_ROIS is False, so the model takes its ROIs as the input 'input_roi', which "
                "train() does not make; call compile(learning_rate, momentum) and then keras_model.fit("
                "data_generator(dataset, config, random_rois=config.POST_NMS_ROIS_TRAINING, "
                "batch_size=config.BATCH_SIZE), steps_per_epoch=...)")
        from .train.loop import train

        return train(self, train_dataset, val_dataset, learning_rate, epochs, layers,
                     augmentation=augmentation, custom_callbacks=custom_callbacks,
                     no_augmentation_sources=no_augmentation_sources, **options)

    def compile(self, learning_rate, momentum):
        """Compile ``keras_model`` for training: SGD with ``momentum`` and the config's clip norm.

        matterport's method (``train`` calls it). The five losses and the L2 weight
        decay are part of the training model's own step
        (``training.MaskRCNNTrainingModel``), so after ``compile`` the model trains with
        ``keras_model.fit`` on ``data_generator`` batches as matterport's did.
        """
        if self.mode != "training":
            raise ModelError("compile: create the model with mode='training'")
        from .train.loop import compile_training_model

        config = copy.copy(self.config)
        config.LEARNING_MOMENTUM = momentum
        compile_training_model(self.keras_model, learning_rate, config)

    def find_trainable_layer(self, layer):
        """The layer that owns the weights (matterport unwrapped ``TimeDistributed``; no wrappers here)."""
        if isinstance(layer, keras.layers.TimeDistributed):
            return self.find_trainable_layer(layer.layer)
        return layer

    def get_trainable_layers(self):
        """Top-level layers of ``keras_model`` that have weights (the nested ``rpn_model`` included)."""
        return [self.find_trainable_layer(layer) for layer in self.keras_model.layers if layer.weights]

    def set_trainable(self, layer_regex, keras_model=None, indent=0, verbose=1):
        """matterport's method: make the layers matching ``layer_regex`` trainable, freeze the others.

        ``layer_regex`` is a preset ('heads', '3+', '4+', '5+', 'all') or a regular
        expression; batch normalisation stays frozen unless ``config.TRAIN_BN``.
        ``indent`` is accepted for compatibility and ignored. Returns the names of the
        trainable layers (see ``loop.set_trainable``).
        """
        from .train.loop import set_trainable

        return set_trainable(keras_model or self.keras_model, layer_regex, train_bn=self.config.TRAIN_BN,
                             verbose=verbose)

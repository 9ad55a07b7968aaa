"""The TensorFlow side of the peer benchmark: ``rsna_detector.mrcnn`` at the equalised settings.

Imported by the worker process of our engine only (``peer_worker.py --engine ours``); it never
imports torch. TensorFlow is imported inside the functions, so the orchestrator can import it.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import peer_common as pc

try:
    import rsna_detector  # noqa: F401
except ImportError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def set_threads(threads):
    """TF's intra-op and inter-op pools (before any op runs)."""
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)


def versions():
    import tensorflow as tf

    return {"tensorflow": tf.__version__, "engine": str(Path(sys.modules["rsna_detector"].__file__).parent)
            if "rsna_detector" in sys.modules else "rsna_detector",
            "TF_ENABLE_ONEDNN_OPTS": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default")}


def samples_dataset(images, boxes):
    """A matterport ``Dataset`` over the samples (filled-box masks, class 1)."""
    from rsna_detector.mrcnn import utils

    class Samples(utils.Dataset):
        def load_image(self, image_id):
            return images[image_id]

        def load_mask(self, image_id):
            masks = np.zeros((pc.IMAGE_SIZE, pc.IMAGE_SIZE, len(boxes[image_id])), bool)
            for k, (y1, x1, y2, x2) in enumerate(boxes[image_id]):
                masks[y1:y2, x1:x2, k] = True
            return masks, np.ones(len(boxes[image_id]), np.int32)

    dataset = Samples()
    dataset.add_class("synthetic", 1, "opacity")
    for i in range(len(images)):
        dataset.add_image("synthetic", image_id=i, path=None)
    dataset.prepare()
    return dataset


def our_config(batch, peer_settings=True):
    """``DetectorConfig`` with ``IMAGES_PER_GPU = batch``; with ``peer_settings`` the peer's anchors."""
    from rsna_detector.detector.config import DetectorConfig

    class BenchConfig(DetectorConfig):
        IMAGES_PER_GPU = batch
        SEED = 0
        DATA_LOADER_WORKERS = 0

    if peer_settings:
        BenchConfig.NAME = "peer_settings"
        BenchConfig.RPN_ANCHOR_SCALES = pc.PEER_ANCHOR_SCALES
    config = BenchConfig()
    assert config.POST_NMS_ROIS_INFERENCE == pc.POST_NMS_INFERENCE
    assert config.POST_NMS_ROIS_TRAINING == pc.POST_NMS_TRAINING
    assert config.TRAIN_ROIS_PER_IMAGE == pc.TRAIN_ROIS_PER_IMAGE
    assert config.RPN_TRAIN_ANCHORS_PER_IMAGE == pc.RPN_ANCHORS_PER_IMAGE
    assert config.RPN_NMS_THRESHOLD == pc.RPN_NMS_THRESHOLD
    assert (config.DETECTION_MIN_CONFIDENCE, config.DETECTION_NMS_THRESHOLD, config.DETECTION_MAX_INSTANCES) == (
        pc.DETECTION_MIN_CONFIDENCE, pc.DETECTION_NMS_THRESHOLD, pc.DETECTION_MAX_INSTANCES)
    assert config.TRAIN_BN is False and config.IMAGE_MIN_DIM == config.IMAGE_MAX_DIM == pc.IMAGE_SIZE
    assert tuple(config.RPN_ANCHOR_RATIOS) == pc.ANCHOR_RATIOS
    assert (config.LEARNING_MOMENTUM, config.GRADIENT_CLIP_NORM, config.WEIGHT_DECAY) == (
        pc.MOMENTUM, pc.CLIP_NORM, pc.WEIGHT_DECAY)
    return config.validate()


class OurInference:
    """``MaskRCNN.detect`` of an inference model (random weights, seeded)."""

    def __init__(self, peer_settings, batch, model_dir):
        import keras

        from rsna_detector.mrcnn.model import MaskRCNN

        keras.utils.set_random_seed(0)
        self.model = MaskRCNN("inference", our_config(batch, peer_settings), model_dir=model_dir)

    def __call__(self, images):
        results = self.model.detect(images)
        return sum(len(r["scores"]) for r in results)


class OurTraining:
    """One compiled training step of ``MaskRCNN.train``'s model on a fixed batch."""

    def __init__(self, peer_settings, images, boxes, layers="all"):
        import tensorflow as tf

        from rsna_detector.mrcnn.input import pipeline
        from rsna_detector.mrcnn.layers import training_graph
        from rsna_detector.mrcnn.train import loop

        config = our_config(len(images), peer_settings)
        self.config = config
        self.keras_model = training_graph.build_training_model(config)
        loop.set_trainable(self.keras_model, layers, train_bn=config.TRAIN_BN)
        loop.compile_training_model(self.keras_model, pc.LEARNING_RATE, config)
        batch = pipeline.TrainingBatches(samples_dataset(images, boxes), config, shuffle=False).batch(0)
        self.iterator = iter(tf.data.Dataset.from_tensors((tuple(batch),)).repeat())
        self.keras_model.make_train_function()

    def __call__(self):
        logs = self.keras_model.train_function(self.iterator)
        return float(logs["loss"])


# ----------------------------------------------------------------------------
# FLOPs and the kernels' peak
# ----------------------------------------------------------------------------

def _stage_of(layer_name):
    if layer_name == "conv1" or layer_name.startswith("res"):
        return "backbone"
    if layer_name.startswith("fpn_"):
        return "FPN"
    if layer_name.startswith(("mrcnn_class", "mrcnn_bbox")):
        return "box head"
    if layer_name.startswith("mrcnn_mask"):
        return "mask head"
    return None


def _layer_macs(layer, in_shape):
    """Multiply-adds of one weight layer on an input of concrete shape ``in_shape`` (0 if none)."""
    import keras

    from rsna_detector.mrcnn.layers.heads import WindowDense

    if isinstance(layer, WindowDense):
        kh, kw = layer.kernel_size
        return int(np.prod(in_shape[:-3])) * kh * kw * in_shape[-1] * layer.filters
    if isinstance(layer, keras.layers.Conv2DTranspose):
        kh, kw = layer.kernel_size
        return int(np.prod(in_shape[:-1])) * kh * kw * in_shape[-1] * layer.filters
    if isinstance(layer, keras.layers.Conv2D):
        kh, kw = layer.kernel_size
        out = layer.compute_output_shape(tuple(in_shape))
        return int(np.prod(out[:-1])) * kh * kw * in_shape[-1] * layer.filters // layer.groups
    if isinstance(layer, keras.layers.Dense):
        return int(np.prod(in_shape[:-1])) * in_shape[-1] * layer.units
    return 0


def count_flops(model, images):
    """FLOPs (2 x multiply-adds of the convolutions and matrix products) of one ``detect(images)``, per stage.

    Counted from the concrete input shape of every weight layer in a real call (so the box head
    sees the real number of proposals, the mask head the real detections); the RPN's shared
    sub-model from the feature maps it runs on (``rpn_conv_shared`` 3x3 with 512 filters and
    its two 1x1 outputs on P2..P6). Element-wise work (BN, ReLU, ROI align, NMS) is not counted.
    """
    import keras

    km = model.keras_model
    molded, metas, _ = model.mold_inputs(images)
    anchors = model.get_anchors(molded.shape[1:])
    anchors = np.ascontiguousarray(np.broadcast_to(anchors, (len(images),) + anchors.shape))
    weight_layers = [layer for layer in km.layers if _stage_of(layer.name) and layer.weights]
    inputs = []
    for layer in weight_layers:
        value = layer.input
        inputs.append(value[0] if isinstance(value, (list, tuple)) else value)
    rpn = km.get_layer("rpn_model")
    levels = [km.get_layer(f"fpn_p{i}").output for i in range(2, 2 + model.config.RPN_PYRAMID_LEVELS)]
    probe = keras.Model(km.inputs, inputs + levels)
    values = probe([molded.astype(np.float32), metas.astype(np.float32), anchors.astype(np.float32)],
                   training=False)
    flops = {stage: 0 for stage in pc.FLOP_STAGES}
    for layer, value in zip(weight_layers, values[:len(weight_layers)], strict=True):
        flops[_stage_of(layer.name)] += 2 * _layer_macs(layer, tuple(value.shape))
    for value in values[len(weight_layers):]:
        shape = tuple(value.shape)
        for layer in rpn.layers:
            if isinstance(layer, keras.layers.Conv2D):
                cin = shape[-1] if layer.name == "rpn_conv_shared" else rpn.get_layer("rpn_conv_shared").filters
                flops["RPN head"] += 2 * _layer_macs(layer, shape[:-1] + (cin,))
    return flops


def peak():
    """Best GEMM and convolution rates of TensorFlow on this machine (``pc.PEAK_KERNELS``), float32."""
    import tensorflow as tf

    rates = {}
    for name, kind, shape in pc.PEAK_KERNELS:
        if kind == "gemm":
            m, k, n = shape
            a, b = tf.random.normal([m, k]), tf.random.normal([k, n])
            fn = tf.function(lambda a=a, b=b: tf.matmul(a, b))
        else:
            batch, h, w, cin, cout = shape
            x, kernel = tf.random.normal([batch, h, w, cin]), tf.random.normal([3, 3, cin, cout])
            fn = tf.function(lambda x=x, kernel=kernel: tf.nn.conv2d(x, kernel, 1, "SAME"))
        rates[name] = pc.best_rate(lambda fn=fn: fn().numpy(), pc.kernel_flops(kind, shape))
    return rates

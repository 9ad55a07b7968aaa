"""The old Keras ResNet-50 ImageNet file loaded into keras-hub's ResNet-50 (names mapped, conv biases folded)."""
from __future__ import annotations

from ...weights.keras2_hdf5 import WeightsFileError, read_hdf5_weights
from .settings import RetinaNetError

__all__ = ["load_resnet50_imagenet_weights"]


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

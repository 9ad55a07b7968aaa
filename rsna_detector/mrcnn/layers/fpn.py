"""Feature Pyramid Network on the backbone's ``[C2, C3, C4, C5]``, with matterport's layer names."""
from __future__ import annotations

import keras

from ...errors import InvalidArgumentError
from .sparse_conv import SparseGradientConv2D

__all__ = ["build_fpn"]


def build_fpn(backbone_features, config):
    """Top-down pathway with lateral connections.

    Parameters
    ----------
    backbone_features : list of KerasTensor
        ``[C2, C3, C4, C5]`` with strides 4, 8, 16, 32 (any channel counts).
    config : Config
        ``TOP_DOWN_PYRAMID_SIZE`` (channels of every pyramid level).

    Returns
    -------
    list of KerasTensor
        ``[P2, P3, P4, P5, P6]``, strides 4 .. 64, ``TOP_DOWN_PYRAMID_SIZE`` channels.
        Layers: 1x1 laterals ``fpn_c5p5`` .. ``fpn_c2p2``, upsampling
        ``fpn_p5upsampled`` .. ``fpn_p3upsampled``, sums ``fpn_p4add`` .. ``fpn_p2add``,
        3x3 'same' outputs ``fpn_p2`` .. ``fpn_p5`` and ``fpn_p6`` (a 1x1 max-pool with
        stride 2 of P5, used by the RPN only).
    """
    if len(backbone_features) != 4:
        raise InvalidArgumentError(f"build_fpn: expected [C2, C3, C4, C5], got {len(backbone_features)} feature maps")
    depth = config.TOP_DOWN_PYRAMID_SIZE
    c2, c3, c4, c5 = backbone_features
    merged = {5: keras.layers.Conv2D(depth, (1, 1), name="fpn_c5p5")(c5)}
    for level, c in ((4, c4), (3, c3), (2, c2)):
        upsampled = keras.layers.UpSampling2D(size=(2, 2), name=f"fpn_p{level + 1}upsampled")(merged[level + 1])
        lateral = keras.layers.Conv2D(depth, (1, 1), name=f"fpn_c{level}p{level}")(c)
        merged[level] = keras.layers.Add(name=f"fpn_p{level}add")([upsampled, lateral])
    # Conv2D layers whose backward pass skips the cells without gradient (see sparse_conv).
    pyramid = [SparseGradientConv2D(depth, (3, 3), padding="same", name=f"fpn_p{level}")(merged[level])
               for level in (2, 3, 4, 5)]
    p6 = keras.layers.MaxPooling2D(pool_size=(1, 1), strides=2, name="fpn_p6")(pyramid[-1])
    return pyramid + [p6]

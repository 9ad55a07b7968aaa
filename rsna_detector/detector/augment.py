"""Augmentation presets (imgaug pipelines) for training the detector.

Both presets are ``imgaug.augmenters`` pipelines, so they plug straight into
``MaskRCNN.train(..., augmentation=...)`` as in matterport notebooks. The engine
applies geometric augmenters to the image and its masks alike and the
photometric ones (multiply, contrast, blur, sharpen) to the image only; boxes
are recomputed from the augmented masks.

``imgaug`` here is the module installed by the numpy-2-compatible ``pyimgaug``
fork (see pyproject.toml for why).
"""
from __future__ import annotations

import warnings

from ..errors import InvalidArgumentError

__all__ = [
    "report_augmentation",
    "rsna_notebook_augmentation",
    "get_augmentation",
    "AUGMENTATION_PRESETS",
    "show_augmented_samples",
]


def _iaa():
    import imgaug.augmenters as iaa  # imported lazily: it pulls in scipy/skimage

    # imgaug's PiecewiseAffine calls a scikit-image method deprecated in 0.26, once per
    # image: one targeted filter instead of a warning for every training image.
    warnings.filterwarnings("ignore", message="`estimate` is deprecated", category=FutureWarning)
    return iaa


def report_augmentation():
    """The report's augmentation: a contrast change and a light sharpening.

    The report names "Contrast, Sharpen" without parameters; the ranges are
    those the RSNA notebook used for the same operations (contrast factor
    0.9-1.1, sharpen alpha 0-0.1). Photometric only: boxes never move.

    Returns
    -------
    imgaug.augmenters.Sequential
    """
    iaa = _iaa()
    return iaa.Sequential(
        [iaa.LinearContrast((0.9, 1.1)), iaa.Sharpen(alpha=(0.0, 0.1), lightness=1.0)],
        name="report_contrast_sharpen",
    )


def rsna_notebook_augmentation():
    """The well-known RSNA Mask R-CNN notebook's augmentation (docs/DATA_AND_SETTINGS.md, Settings).

    One of {Affine(scale x 0.98-1.02, y 0.98-1.04, translate x +-2 %, y +-4 %,
    rotate +-2 deg, shear +-1 deg), PiecewiseAffine(0.001-0.025)}, then one of
    {Multiply 0.9-1.1, contrast 0.9-1.1}, then one of {GaussianBlur sigma 0-0.1,
    Sharpen alpha 0-0.1}.

    Returns
    -------
    imgaug.augmenters.Sequential
    """
    iaa = _iaa()
    from . import piecewise_affine  # imgaug's PiecewiseAffine, same draws and results, ~20x faster

    geometric = iaa.OneOf(
        [
            iaa.Affine(
                scale={"x": (0.98, 1.02), "y": (0.98, 1.04)},
                translate_percent={"x": (-0.02, 0.02), "y": (-0.04, 0.04)},
                rotate=(-2, 2),
                shear=(-1, 1),
            ),
            piecewise_affine.PiecewiseAffine(scale=(0.001, 0.025)),
        ]
    )
    intensity = iaa.OneOf([iaa.Multiply((0.9, 1.1)), iaa.LinearContrast((0.9, 1.1))])
    detail = iaa.OneOf([iaa.GaussianBlur(sigma=(0.0, 0.1)), iaa.Sharpen(alpha=(0.0, 0.1))])
    return iaa.Sequential([geometric, intensity, detail], name="rsna_notebook")


AUGMENTATION_PRESETS = {
    "report": report_augmentation,
    "notebook": rsna_notebook_augmentation,
}


def get_augmentation(name):
    """Return a preset by name ('report', 'notebook'), or None for 'none'/None.

    An imgaug augmenter passed in is returned unchanged.
    """
    if name is None or name == "none":
        return None
    if not isinstance(name, str):
        return name
    try:
        return AUGMENTATION_PRESETS[name]()
    except KeyError as error:
        choices = ", ".join(["none", *AUGMENTATION_PRESETS])
        raise InvalidArgumentError(f"unknown augmentation preset {name!r}; expected one of: {choices}") from error


def show_augmented_samples(dataset, config, image_ids, augmentation, n_variants=3, seed=0):
    """Draw each image beside ``n_variants`` augmented versions, boxes overlaid.

    Parameters
    ----------
    dataset : rsna_detector.mrcnn.utils.Dataset
        A prepared dataset (for example a ``DetectorDataset``).
    config : rsna_detector.mrcnn.config.Config
    image_ids : sequence of int
        Dataset image ids (rows of the figure).
    augmentation : imgaug augmenter or preset name
    n_variants : int
        Augmented copies per image (columns after the original).
    seed : int
        Seeds imgaug so the figure is repeatable.

    Returns
    -------
    matplotlib.figure.Figure
        One row per image: the original (boxes in green) then the augmented
        versions, boxes recomputed from the augmented masks (in red).
    """
    import imgaug
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    from ..mrcnn.input.ground_truth import load_image_gt

    augmentation = get_augmentation(augmentation)
    imgaug.seed(seed)
    n_cols = n_variants + 1
    fig, axes = plt.subplots(len(image_ids), n_cols, figsize=(3 * n_cols, 3 * len(image_ids)), squeeze=False)
    for row, image_id in enumerate(image_ids):
        for col in range(n_cols):
            aug = augmentation if col else None
            image, _, _, boxes, _ = load_image_gt(dataset, config, image_id, augmentation=aug)
            ax = axes[row, col]
            ax.imshow(image[..., 0], cmap="gray")
            for y1, x1, y2, x2 in boxes:
                ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, lw=1.5,
                                       edgecolor="red" if col else "lime"))
            ax.set_title("original" if col == 0 else f"augmented {col}", fontsize=9)
            ax.axis("off")
    fig.tight_layout()
    return fig

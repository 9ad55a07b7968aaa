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

Modules
-------
:mod:`.settings` (class name, anchor settings, the package's error; no Keras),
:mod:`.models` (build and compile), :mod:`.resnet50_imagenet` (ImageNet weights),
:mod:`.annotations` (keras-retinanet CSV files), :mod:`.preprocessing` (images,
augmentation), :mod:`.sequence` (the input pipeline), :mod:`.training`,
:mod:`.prediction`, :mod:`.evaluation`. Importing the package is cheap: each name
is imported from its module (Keras and keras-hub with it) when first used.
"""
from ..._lazy import lazy_exports as _lazy_exports

# module -> the public names it defines (each imported from its module when first used)
_EXPORTS = {
    "settings": ["RetinaNetError", "RETINANET_CLASS_NAME", "RSNA_ASPECT_RATIOS", "DEFAULT_IMAGE_SIZE",
                 "SMOOTH_L1_SIGMA"],
    "models": ["resnet50_config", "rsna_anchor_size", "rsna_anchor_generator", "retinanet_losses", "build_retinanet",
               "compile_retinanet"],
    "resnet50_imagenet": ["load_resnet50_imagenet_weights"],
    "annotations": ["write_retinanet_csv", "read_retinanet_csv", "write_classes_csv", "read_classes_csv"],
    "preprocessing": ["retinanet_augmentation", "augment_image_and_boxes", "preprocess_images", "read_grey_image"],
    "sequence": ["RetinaNetSequence"],
    "training": ["train_retinanet"],
    "prediction": ["predict_retinanet"],
    "evaluation": ["detection_metrics", "evaluate_retinanet"],
}

__all__ = [name for names in _EXPORTS.values() for name in names]
__getattr__, __dir__ = _lazy_exports(__name__, _EXPORTS)

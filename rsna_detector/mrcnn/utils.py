"""Numpy utilities of the Mask R-CNN engine (matterport's ``mrcnn.utils`` API).

Box convention: pixel boxes are ``(y1, x1, y2, x2)`` with ``y2``/``x2`` *exclusive*
(a box covering rows 2..4 is ``y1=2, y2=5``). Inside the graph boxes are
normalized by :func:`norm_boxes`: ``(y1, x1, y2 - 1, x2 - 1) / (H - 1, W - 1)``.

Contents: the :class:`Dataset` base class; box and mask helpers; image resizing;
anchors; image meta; evaluation (:func:`compute_matches`, :func:`compute_ap`,
:func:`compute_ap_boxes`, :func:`compute_ap_range`, :func:`compute_recall`).
TF graph versions of the box operations live in ``mrcnn/box_ops.py``
(:func:`box_refinement_graph` and :func:`batch_slice` are reachable from here, as
in matterport).

Every function returns what matterport v2.1's function of the same name returns
(values, dtypes, thresholds, edge cases), which the differential tests against
matterport's own code hold. Where a function goes further it says so under
"Extension"; those are inputs on which matterport fails (an assertion, a crash,
or a silently wrong result), never ones on which it works.
"""
from __future__ import annotations

import logging
import math
import random
import warnings

import numpy as np

from ..errors import RsnaDetectorError
from .matching import greedy_match

__all__ = [
    "Dataset",
    "DatasetError",
    "DatasetKeyError",
    "DatasetAssertionError",
    "NoGroundTruthError",
    "COCO_MODEL_URL",
    # boxes and masks
    "extract_bboxes",
    "compute_iou",
    "compute_overlaps",
    "compute_overlaps_masks",
    "non_max_suppression",
    "box_refinement",
    "box_refinement_graph",
    "apply_box_deltas",
    "norm_boxes",
    "denorm_boxes",
    "trim_zeros",
    "batch_slice",
    # images and masks
    "resize",
    "resize_image",
    "resize_mask",
    "minimize_mask",
    "expand_mask",
    "mold_mask",
    "unmold_mask",
    # anchors
    "generate_anchors",
    "generate_pyramid_anchors",
    "compute_backbone_shapes",
    # image meta and molding
    "compose_image_meta",
    "parse_image_meta",
    "mold_image",
    "unmold_image",
    # evaluation
    "compute_matches",
    "compute_ap",
    "compute_ap_boxes",
    "compute_ap_range",
    "compute_recall",
    # weights
    "download_trained_weights",
]

logger = logging.getLogger(__name__)

#: Where matterport's COCO weights are published (the registry entry 'coco' holds its checksum).
COCO_MODEL_URL = "https://github.com/matterport/Mask_RCNN/releases/download/v2.0/mask_rcnn_coco.h5"

# Feature maps are halved 6 times (P2..P6), so padded sides are multiples of 2**6.
_PAD_MULTIPLE = 64


class DatasetError(RsnaDetectorError, ValueError):
    """A :class:`Dataset` was used with a wrong name, id or file."""


class DatasetKeyError(DatasetError, KeyError):
    """An unknown ``'source.id'`` key (also a ``KeyError``, which matterport raised)."""

    __str__ = Exception.__str__  # KeyError would quote the message


class DatasetAssertionError(DatasetError, AssertionError):
    """A broken :class:`Dataset` precondition (also an ``AssertionError``, which matterport raised)."""


class NoGroundTruthError(RsnaDetectorError, ValueError, ZeroDivisionError):
    """A recall was asked of an image without ground truth (matterport raised as well)."""


# ============================================================================
# Dataset
# ============================================================================

class Dataset:
    """Base class of data sets (matterport's API).

    Subclass it, register classes with :meth:`add_class` and images with
    :meth:`add_image`, override :meth:`load_mask` (and :meth:`load_image` if the
    files are not ordinary pictures), then call :meth:`prepare` before use::

        class Shapes(Dataset):
            def load_mask(self, image_id): ...

        ds = Shapes()
        ds.add_class("shapes", 1, "square")
        ds.add_image("shapes", image_id=0, path="a.png")
        ds.prepare()

    Class 0 is always the background ``'BG'``. Internal image and class ids are
    ``0..n-1``; each source keeps its own ids (``'source.id'`` in the maps).
    """

    def __init__(self, class_map=None):
        self._image_ids = []
        self.image_info = []
        self.class_info = [{"source": "", "id": 0, "name": "BG"}]
        self.source_class_ids = {}
        self._empty_mask_logged = False

    def add_class(self, source, class_id, class_name):
        """Register class ``class_id`` of ``source`` (no-op if already registered)."""
        if "." in source:
            raise DatasetAssertionError(f"add_class: source {source!r} must not contain a dot")
        for info in self.class_info:
            if info["source"] == source and info["id"] == class_id:
                return
        self.class_info.append({"source": source, "id": class_id, "name": class_name})

    def add_image(self, source, image_id, path, **kwargs):
        """Register an image; extra keyword arguments are kept in its ``image_info`` dict."""
        info = {"id": image_id, "source": source, "path": path}
        info.update(kwargs)
        self.image_info.append(info)

    def image_reference(self, image_id):
        """A string naming the image for debugging (override: a URL, a file name)."""
        return ""

    def prepare(self, class_map=None):
        """Build the internal id tables; call it after adding classes and images.

        ``class_map`` is accepted for matterport compatibility and ignored (as
        matterport ignores it). ``sources`` is sorted (matterport's order was
        that of a ``set``).
        """
        self.num_classes = len(self.class_info)
        self.class_ids = np.arange(self.num_classes)
        self.class_names = [_clean_name(c["name"]) for c in self.class_info]
        self.num_images = len(self.image_info)
        self._image_ids = np.arange(self.num_images)
        self.class_from_source_map = {
            f"{info['source']}.{info['id']}": cid for cid, info in zip(self.class_ids, self.class_info)
        }
        self.image_from_source_map = {
            f"{info['source']}.{info['id']}": iid for iid, info in zip(self._image_ids, self.image_info)
        }
        self.sources = sorted({c["source"] for c in self.class_info})
        self.source_class_ids = {
            source: [cid for cid, info in enumerate(self.class_info)
                     if cid == 0 or info["source"] == source]
            for source in self.sources
        }

    def append_data(self, class_info, image_info):
        """matterport's legacy id tables of external data sets (arguments unused, as in matterport).

        Builds ``external_to_class_id`` (``'<ds><id>'`` -> internal class id, from
        the ``(ds, id)`` pairs in each class info's ``'map'`` list) and
        ``external_to_image_id`` (``'<ds><id>'`` -> internal image id, from each
        image info's ``'ds'`` and ``'id'``).

        Extension: class and image infos without ``'map'`` / ``'ds'`` (the
        background class always) are skipped; matterport raised ``KeyError``.
        """
        del class_info, image_info
        self.external_to_class_id = {
            f"{ds}{source_id}": class_id
            for class_id, info in enumerate(self.class_info) for ds, source_id in info.get("map", ())
        }
        self.external_to_image_id = {
            f"{info['ds']}{info['id']}": image_id
            for image_id, info in enumerate(self.image_info) if "ds" in info
        }

    @property
    def image_ids(self):
        """Internal image ids, ``np.arange(num_images)`` (after :meth:`prepare`)."""
        return self._image_ids

    def map_source_class_id(self, source_class_id):
        """Internal class id of ``'source.class_id'`` (e.g. ``'coco.12'``).

        Raises
        ------
        DatasetKeyError
            (a ``KeyError``) for an unknown key.
        """
        try:
            return self.class_from_source_map[source_class_id]
        except AttributeError as error:
            raise DatasetError("map_source_class_id: call prepare() first") from error
        except KeyError as error:
            raise DatasetKeyError(f"map_source_class_id: no class {source_class_id!r}") from error

    def get_source_class_id(self, class_id, source):
        """The id that ``source`` gives to internal class ``class_id``.

        Raises
        ------
        DatasetAssertionError
            (an ``AssertionError``) when the class belongs to another source.
        """
        info = self.class_info[class_id]
        if info["source"] != source:
            raise DatasetAssertionError(
                f"get_source_class_id: class {class_id} belongs to source {info['source']!r}, not {source!r}"
            )
        return info["id"]

    def source_image_link(self, image_id):
        """Path or URL of the image (override to point at an online copy)."""
        return self.image_info[image_id]["path"]

    def load_image(self, image_id):
        """Read the image file of ``image_id`` as matterport does.

        Returns
        -------
        ndarray, [H, W, C], the file's dtype
            A 2-D (grayscale) picture is repeated to 3 channels
            (``skimage.color.gray2rgb``) and an alpha channel (``C == 4``) is
            dropped; nothing else is changed: a 16-bit or float file keeps its
            dtype and values, as in matterport.

        Raises
        ------
        DatasetError
            Naming the file, when it cannot be decoded (``FileNotFoundError``
            is raised as is).
        """
        import skimage.color
        import skimage.io

        path = self.image_info[image_id]["path"]
        try:
            image = skimage.io.imread(path)
        except FileNotFoundError:
            raise
        except Exception as exc:  # skimage/imageio raise many types for corrupt files
            raise DatasetError(f"{path}: cannot read the image ({exc})") from exc
        if image.ndim != 3:
            image = skimage.color.gray2rgb(image)
        if image.shape[-1] == 4:
            image = image[..., :3]
        return image

    def load_mask(self, image_id):
        """Instance masks of the image: override in subclasses.

        Returns
        -------
        masks : ndarray, bool, [H, W, N]
        class_ids : ndarray, int32, [N]

        The base class returns matterport's "no instance" arrays: float
        ``[0, 0, 0]`` masks and int32 ``[0]`` class ids (``load_image_gt`` turns
        them into ``[H, W, 0]``), and logs a warning (once per data set;
        matterport logged it on every call).
        """
        if not self._empty_mask_logged:
            logger.warning("%s.load_mask is not overridden: returning no instances",
                           type(self).__name__)
            self._empty_mask_logged = True
        return np.empty([0, 0, 0]), np.empty([0], np.int32)


def _clean_name(name):
    """Shorten a class name to its first comma-separated part."""
    return ",".join(str(name).split(",")[:1])


# ============================================================================
# Boxes
# ============================================================================

def extract_bboxes(mask):
    """Bounding boxes of instance masks.

    Parameters
    ----------
    mask : ndarray, [H, W, N]
        Instance masks (any dtype; non-zero is inside).

    Returns
    -------
    ndarray, int32, [N, (y1, x1, y2, x2)]
        ``y2``/``x2`` exclusive. An empty mask gives ``(0, 0, 0, 0)``.
    """
    mask = np.asarray(mask)
    if mask.ndim != 3:
        raise ValueError(f"extract_bboxes: expected masks [H, W, N], got shape {mask.shape}")
    boxes = np.zeros([mask.shape[-1], 4], dtype=np.int32)
    for i in range(mask.shape[-1]):
        rows = np.flatnonzero(np.any(mask[:, :, i], axis=1))
        cols = np.flatnonzero(np.any(mask[:, :, i], axis=0))
        if rows.size:
            boxes[i] = [rows[0], cols[0], rows[-1] + 1, cols[-1] + 1]
    return boxes


def _areas(boxes):
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def _as_boxes(boxes, name):
    """float64 [N, 4] (extra columns dropped); None or empty input gives [0, 4]."""
    if boxes is None:
        return np.zeros((0, 4))
    boxes = np.asarray(boxes, dtype=np.float64)
    if boxes.size == 0:
        return boxes.reshape(0, 4)
    if boxes.ndim != 2 or boxes.shape[1] < 4:
        raise ValueError(f"{name}: expected boxes [N, (y1, x1, y2, x2)], got shape {boxes.shape}")
    return boxes[:, :4]


def _box_array(boxes):
    """``boxes`` as an array of its own dtype; an empty input becomes ``[0, 4]``."""
    boxes = np.asarray(boxes)
    return boxes.reshape(0, 4) if boxes.size == 0 else boxes


def _iou(intersection, union):
    """``intersection / union`` without numpy's 0/0 warning (the result is NaN there, as in matterport)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return intersection / union


def compute_iou(box, boxes, box_area, boxes_area):
    """IoU of one box with each of ``boxes``.

    Parameters
    ----------
    box : array, [4]
        ``(y1, x1, y2, x2)``.
    boxes : array, [N, 4]
    box_area : float
        Area of ``box``.
    boxes_area : array, [N]
        Areas of ``boxes`` (passed in so that callers can compute them once).

    Returns
    -------
    ndarray, [N]
        In the promoted dtype of the inputs (float64 for integer boxes); NaN
        where the union is empty (two zero-area boxes), as in matterport.
    """
    box, boxes = np.asarray(box), _box_array(boxes)
    y1 = np.maximum(box[0], boxes[:, 0])
    y2 = np.minimum(box[2], boxes[:, 2])
    x1 = np.maximum(box[1], boxes[:, 1])
    x2 = np.minimum(box[3], boxes[:, 3])
    intersection = np.maximum(x2 - x1, 0) * np.maximum(y2 - y1, 0)
    return _iou(intersection, box_area + np.asarray(boxes_area) - intersection)


def compute_overlaps(boxes1, boxes2):
    """IoU of every pair of boxes.

    Parameters
    ----------
    boxes1 : array, [N1, (y1, x1, y2, x2)]
    boxes2 : array, [N2, (y1, x1, y2, x2)]

    Returns
    -------
    ndarray, float64, [N1, N2]
        Computed in the promoted dtype of the inputs (float32 boxes give float32
        IoUs stored as float64, as matterport's loop did); NaN for pairs of
        zero-area boxes.
    """
    boxes1, boxes2 = _box_array(boxes1), _box_array(boxes2)
    y1 = np.maximum(boxes1[:, None, 0], boxes2[None, :, 0])
    y2 = np.minimum(boxes1[:, None, 2], boxes2[None, :, 2])
    x1 = np.maximum(boxes1[:, None, 1], boxes2[None, :, 1])
    x2 = np.minimum(boxes1[:, None, 3], boxes2[None, :, 3])
    intersection = np.maximum(x2 - x1, 0) * np.maximum(y2 - y1, 0)
    union = _areas(boxes2)[None, :] + _areas(boxes1)[:, None] - intersection
    return np.asarray(_iou(intersection, union), dtype=np.float64)


def compute_overlaps_masks(masks1, masks2):
    """IoU of every pair of masks.

    Parameters
    ----------
    masks1 : array, [H, W, N1]
    masks2 : array, [H, W, N2]
        Values > 0.5 are inside.

    Returns
    -------
    ndarray, [N1, N2]
        float32 (matterport's precision: pixel counts are exact up to 2**24
        pixels); float64 zeros when either set is empty; NaN for two empty masks.
    """
    masks1, masks2 = np.asarray(masks1), np.asarray(masks2)
    if masks1.shape[-1] == 0 or masks2.shape[-1] == 0:
        return np.zeros((masks1.shape[-1], masks2.shape[-1]))
    if masks1.shape[:-1] != masks2.shape[:-1]:
        raise ValueError("compute_overlaps_masks: mask sizes differ: "
                         f"{masks1.shape[:-1]} vs {masks2.shape[:-1]}")
    flat1 = (masks1 > 0.5).reshape(-1, masks1.shape[-1]).astype(np.float32)
    flat2 = (masks2 > 0.5).reshape(-1, masks2.shape[-1]).astype(np.float32)
    intersection = np.dot(flat1.T, flat2)
    union = np.sum(flat1, axis=0)[:, None] + np.sum(flat2, axis=0)[None, :] - intersection
    return _iou(intersection, union)


def non_max_suppression(boxes, scores, threshold):
    """Greedy non-maximum suppression.

    Parameters
    ----------
    boxes : array, [N, (y1, x1, y2, x2)]
        Integer boxes are computed in float32, float boxes in their own dtype.
    scores : array, [N]
    threshold : float
        A box is dropped when its IoU with a kept, higher-scoring box is > threshold.

    Returns
    -------
    ndarray, int32, [K]
        Indices of the kept boxes, highest score first (ties in matterport's
        order: ``argsort(scores)[::-1]``).

    Extension: no boxes give an empty result (matterport asserted ``N > 0``).
    """
    boxes = _box_array(boxes)
    scores = np.asarray(scores).reshape(-1)
    if len(scores) != len(boxes):
        raise ValueError(f"non_max_suppression: {len(boxes)} boxes but {len(scores)} scores")
    if boxes.dtype.kind != "f":
        boxes = boxes.astype(np.float32)
    areas = _areas(boxes)
    order = scores.argsort()[::-1]
    keep = []
    while order.size:
        best, rest = order[0], order[1:]
        keep.append(best)
        iou = compute_iou(boxes[best], boxes[rest], areas[best], areas[rest])
        order = rest[~(iou > threshold)]
    return np.array(keep, dtype=np.int32)


def box_refinement(box, gt_box):
    """Deltas that move ``box`` onto ``gt_box`` (matterport's parameterisation).

    Parameters
    ----------
    box, gt_box : array, [N, (y1, x1, y2, x2)]
        Boxes with positive height and width.

    Returns
    -------
    ndarray, float32, [N, (dy, dx, log(dh), log(dw))]
        ``dy = (gt_center_y - center_y) / height``, ``dh = gt_height / height``.
    """
    box = np.asarray(box, dtype=np.float32).reshape(-1, 4)
    gt_box = np.asarray(gt_box, dtype=np.float32).reshape(-1, 4)
    size = box[:, 2:] - box[:, :2]
    center = box[:, :2] + 0.5 * size
    gt_size = gt_box[:, 2:] - gt_box[:, :2]
    gt_center = gt_box[:, :2] + 0.5 * gt_size
    shift = (gt_center - center) / size
    log_scale = np.log(gt_size / size)
    return np.concatenate([shift, log_scale], axis=1).astype(np.float32)


def box_refinement_graph(box, gt_box):
    """TF version of :func:`box_refinement` (``box_ops.box_refinement_graph``).

    Parameters
    ----------
    box, gt_box : Tensor, [N, (y1, x1, y2, x2)]

    Returns
    -------
    Tensor, float32, [N, (dy, dx, log(dh), log(dw))]
    """
    from .box_ops import box_refinement_graph as graph_function

    return graph_function(box, gt_box)


def batch_slice(inputs, graph_fn, batch_size, names=None):
    """Run a per-item graph function over the batch axis and stack the results.

    matterport's helper, here ``box_ops.batch_slice`` (see there for the shapes).
    """
    from .box_ops import batch_slice as slice_function

    return slice_function(inputs, graph_fn, batch_size, names=names)


def apply_box_deltas(boxes, deltas):
    """Apply deltas from :func:`box_refinement` (the inverse operation).

    Parameters
    ----------
    boxes : array, [N, (y1, x1, y2, x2)]
    deltas : array, [N, (dy, dx, log(dh), log(dw))]

    Returns
    -------
    ndarray, float32, [N, (y1, x1, y2, x2)]
        Each step is rounded to float32 as matterport's in-place float32
        arithmetic does (products with float64 deltas are taken in float64).
    """
    boxes = np.asarray(boxes).astype(np.float32).reshape(-1, 4)
    deltas = np.asarray(deltas).reshape(-1, 4)
    size = boxes[:, 2:] - boxes[:, :2]
    center = boxes[:, :2] + 0.5 * size
    center = (center + deltas[:, :2] * size).astype(np.float32)
    size = (size * np.exp(deltas[:, 2:])).astype(np.float32)
    top_left = center - 0.5 * size
    return np.concatenate([top_left, top_left + size], axis=1).astype(np.float32)


def _norm_scale_shift(shape):
    height, width = int(shape[0]), int(shape[1])
    scale = np.array([height - 1, width - 1, height - 1, width - 1], dtype=np.float64)
    shift = np.array([0, 0, 1, 1], dtype=np.float64)
    return scale, shift


def norm_boxes(boxes, shape):
    """Pixel boxes to normalized coordinates.

    Parameters
    ----------
    boxes : array, [..., (y1, x1, y2, x2)]
        Pixels, ``y2``/``x2`` exclusive.
    shape : (height, width) or (height, width, channels)

    Returns
    -------
    ndarray, float32, [..., 4]
        ``(y1, x1, y2 - 1, x2 - 1) / (H - 1, W - 1, H - 1, W - 1)``: in normalized
        coordinates ``(y2, x2)`` is inside the box.
    """
    scale, shift = _norm_scale_shift(shape)
    return ((np.asarray(boxes, dtype=np.float64) - shift) / scale).astype(np.float32)


def denorm_boxes(boxes, shape):
    """Normalized boxes back to pixels (inverse of :func:`norm_boxes`).

    Returns
    -------
    ndarray, int32, [..., (y1, x1, y2, x2)]
        Rounded to the nearest pixel (half to even), ``y2``/``x2`` exclusive.
    """
    scale, shift = _norm_scale_shift(shape)
    return np.around(np.asarray(boxes, dtype=np.float64) * scale + shift).astype(np.int32)


def trim_zeros(x):
    """Drop the rows of a 2-D array that are all zero (padding).

    Parameters
    ----------
    x : array, [rows, columns]

    Returns
    -------
    ndarray, [kept rows, columns]
    """
    x = np.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"trim_zeros: expected a 2-D array, got shape {x.shape}")
    return x[~np.all(x == 0, axis=1)]


# ============================================================================
# Images and masks
# ============================================================================

def resize(image, output_shape, order=1, mode="constant", cval=0, clip=True, preserve_range=False,
           anti_aliasing=False, anti_aliasing_sigma=None):
    """``skimage.transform.resize`` with matterport's defaults (matterport's wrapper).

    Bool input is converted to float64 0/1 first, which is what the scikit-image
    of matterport's time did (today's refuses to interpolate bool arrays).

    Returns
    -------
    ndarray, float, ``output_shape`` (plus the trailing axes of ``image``)
    """
    import skimage.transform

    image = np.asarray(image)
    if image.dtype == bool:
        image = image.astype(np.float64)
    return skimage.transform.resize(
        image, output_shape, order=order, mode=mode, cval=cval, clip=clip,
        preserve_range=preserve_range, anti_aliasing=anti_aliasing, anti_aliasing_sigma=anti_aliasing_sigma)


def _scale_for(h, w, min_dim, max_dim, min_scale, mode):
    scale = 1
    if min_dim:
        scale = max(1, min_dim / min(h, w))  # scale up, never down
    if min_scale and scale < min_scale:
        scale = min_scale
    if max_dim and mode == "square":
        longest = max(h, w)
        if round(longest * scale) > max_dim:
            scale = max_dim / longest
    return scale


def _centre_padding(size, target):
    before = (target - size) // 2
    return before, target - size - before


def _random_offset(rng, high):
    """Uniform int in ``[0, high]``: Python's ``random`` when ``rng`` is None (matterport's source)."""
    if rng is None:
        return random.randint(0, high)
    return int(rng.integers(0, high + 1))


def resize_image(image, min_dim=None, max_dim=None, min_scale=None, mode="square", *, rng=None):
    """Resize an image keeping its aspect ratio, then pad or crop it.

    Parameters
    ----------
    image : ndarray, [H, W] or [H, W, C]
    min_dim : int, optional
        Scale up (never down) so that the short side is at least ``min_dim``.
    max_dim : int, optional
        'square' mode: the long side is at most ``max_dim`` (this wins over
        ``min_dim``/``min_scale``) and the image is padded to ``max_dim x max_dim``.
    min_scale : float, optional
        Scale up by at least this factor.
    mode : {'none', 'square', 'pad64', 'crop'}
        'none': unchanged. 'square': scale and zero-pad (centred) to a square of
        ``max_dim``. 'pad64': scale by ``min_dim``/``min_scale``, then zero-pad each
        side (centred) up to a multiple of 64 (``min_dim`` must be a multiple of 64).
        'crop': scale by ``min_dim``/``min_scale``, then take a random
        ``min_dim x min_dim`` crop (training only).
    rng : numpy.random.Generator, optional
        Extension: source of the crop position. None uses Python's ``random``
        module, as matterport (seed it with ``random.seed``).

    Returns
    -------
    image : ndarray, same dtype as the input
        Resized bilinearly (``skimage``, no anti-aliasing) and cast back to the
        input dtype: integer images are *truncated*, as matterport's
        ``astype`` does. A scale of exactly 1 skips the resize.
    window : tuple (y1, x1, y2, x2)
        Where the image lies in the result, exclusive ``y2``/``x2``.
    scale : float
        Resizing factor (the int 1 when not resized).
    padding : list
        ``[(top, bottom), (left, right), (0, 0)]`` (one ``(0, 0)`` per axis after the first two).
    crop : tuple (y, x, height, width) or None

    Extension: 2-D images are accepted in every mode (matterport's padding
    failed on them).
    """
    image = np.asarray(image)
    if image.ndim not in (2, 3):
        raise ValueError(f"resize_image: expected an image [H, W] or [H, W, C], got shape {image.shape}")
    if mode not in ("none", "square", "pad64", "crop"):
        raise ValueError(f"resize_image: mode must be 'none', 'square', 'pad64' or 'crop', got {mode!r}")
    h, w = image.shape[:2]
    extra_axes = [(0, 0)] * (image.ndim - 2)
    window, scale, padding, crop = (0, 0, h, w), 1, [(0, 0), (0, 0)] + extra_axes, None
    if mode == "none":
        return image, window, scale, padding, crop
    if mode == "square" and not max_dim:
        raise ValueError("resize_image: 'square' mode needs max_dim")
    if mode == "crop" and not min_dim:
        raise ValueError("resize_image: 'crop' mode needs min_dim")
    if mode == "pad64" and min_dim and min_dim % _PAD_MULTIPLE:
        raise ValueError(f"resize_image: 'pad64' mode needs min_dim a multiple of 64, got {min_dim}")

    dtype = image.dtype
    scale = _scale_for(h, w, min_dim, max_dim, min_scale, mode)
    if scale != 1:
        image = resize(image, (round(h * scale), round(w * scale)), preserve_range=True).astype(dtype)
    h, w = image.shape[:2]

    if mode == "crop":
        y = _random_offset(rng, h - min_dim)
        x = _random_offset(rng, w - min_dim)
        crop = (y, x, min_dim, min_dim)
        return image[y:y + min_dim, x:x + min_dim], (0, 0, min_dim, min_dim), scale, padding, crop

    if mode == "square":
        target_h = target_w = max_dim
    else:  # pad64
        target_h = -(-h // _PAD_MULTIPLE) * _PAD_MULTIPLE
        target_w = -(-w // _PAD_MULTIPLE) * _PAD_MULTIPLE
    top, bottom = _centre_padding(h, target_h)
    left, right = _centre_padding(w, target_w)
    padding = [(top, bottom), (left, right)] + extra_axes
    image = np.pad(image, padding, mode="constant", constant_values=0)
    return image, (top, left, top + h, left + w), scale, padding, crop


def resize_mask(mask, scale, padding, crop=None):
    """Resize masks with the scale and padding (or crop) of :func:`resize_image`.

    Parameters
    ----------
    mask : ndarray, [H, W, N]
    scale : float
    padding : list of pairs
        As returned by :func:`resize_image`.
    crop : tuple (y, x, height, width), optional

    Returns
    -------
    ndarray, same dtype, [round(H*scale) (+ padding or cropped), ..., N]
        ``scipy.ndimage.zoom(order=0)`` (nearest neighbour, corners aligned),
        exactly matterport's sampling; a scale of 1 is the identity and skips it.
    """
    import scipy.ndimage

    mask = np.asarray(mask)
    if mask.ndim != 3:
        raise ValueError(f"resize_mask: expected masks [H, W, N], got shape {mask.shape}")
    if scale != 1:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # old scipy warned about how it rounds the output shape
            mask = scipy.ndimage.zoom(mask, zoom=[scale, scale, 1], order=0)
    if crop is not None:
        y, x, ch, cw = crop
        return mask[y:y + ch, x:x + cw]
    pads = [tuple(p) for p in padding[:2]] + [(0, 0)]
    return np.pad(mask, pads, mode="constant", constant_values=0)


def _box_slice(bbox):
    y1, x1, y2, x2 = (int(v) for v in np.asarray(bbox)[:4])
    return y1, x1, y2, x2


def minimize_mask(bbox, mask, mini_shape):
    """Crop each mask to its box and resize it to ``mini_shape`` (saves memory).

    Parameters
    ----------
    bbox : array, int, [N, (y1, x1, y2, x2)]
    mask : ndarray, [H, W, N]
    mini_shape : (height, width)

    Returns
    -------
    ndarray, bool, [mini_h, mini_w, N]
        Bilinear resize (:func:`resize`) rounded half to even: a pixel is set
        when the interpolated value is > 0.5 (matterport's ``np.around``).

    Raises
    ------
    ValueError
        When a box has zero area.
    """
    mask = np.asarray(mask)
    mini_shape = tuple(int(v) for v in mini_shape)
    mini_mask = np.zeros(mini_shape + (mask.shape[-1],), dtype=bool)
    for i in range(mask.shape[-1]):
        y1, x1, y2, x2 = _box_slice(bbox[i])
        crop = mask[:, :, i].astype(bool)[y1:y2, x1:x2]
        if crop.size == 0:
            raise ValueError(f"minimize_mask: box {i} {(y1, x1, y2, x2)} has zero area")
        mini_mask[:, :, i] = np.around(resize(crop, mini_shape)).astype(bool)
    return mini_mask


def expand_mask(bbox, mini_mask, image_shape):
    """Resize mini masks back into their boxes (inverse of :func:`minimize_mask`).

    Parameters
    ----------
    bbox : array, int, [N, (y1, x1, y2, x2)]
    mini_mask : ndarray, [mini_h, mini_w, N]
    image_shape : (H, W, ...)

    Returns
    -------
    ndarray, bool, [H, W, N]
        Bilinear resize rounded half to even (> 0.5), as matterport.

    Extension: a zero-area box leaves its mask empty (matterport failed).
    """
    mini_mask = np.asarray(mini_mask)
    mask = np.zeros(tuple(int(v) for v in image_shape[:2]) + (mini_mask.shape[-1],), dtype=bool)
    for i in range(mini_mask.shape[-1]):
        y1, x1, y2, x2 = _box_slice(bbox[i])
        if y2 > y1 and x2 > x1:
            mask[y1:y2, x1:x2, i] = np.around(resize(mini_mask[:, :, i], (y2 - y1, x2 - x1))).astype(bool)
    return mask


def mold_mask(mask, config):
    """matterport's unimplemented placeholder, kept for its API: returns None."""
    del mask, config
    return None


def unmold_mask(mask, bbox, image_shape):
    """Paste a small float mask predicted by the network into a full-size binary mask.

    Parameters
    ----------
    mask : ndarray, float, [h, w]
        Typically 28x28 probabilities.
    bbox : (y1, x1, y2, x2)
        Box in pixels of ``image_shape`` to fit the mask in.
    image_shape : (H, W, ...)

    Returns
    -------
    ndarray, bool, [H, W]
        True where the bilinearly resized mask is >= 0.5 (matterport's threshold).

    Extension: the part of a box outside the image is cut off, and an empty box
    gives an empty mask (matterport failed on both).
    """
    height, width = int(image_shape[0]), int(image_shape[1])
    full_mask = np.zeros((height, width), dtype=bool)
    y1, x1, y2, x2 = _box_slice(bbox)
    if y2 <= y1 or x2 <= x1:
        return full_mask
    resized = resize(mask, (y2 - y1, x2 - x1)) >= 0.5
    top, left = max(y1, 0), max(x1, 0)
    bottom, right = min(y2, height), min(x2, width)
    if bottom > top and right > left:
        full_mask[top:bottom, left:right] = resized[top - y1:bottom - y1, left - x1:right - x1]
    return full_mask


# ============================================================================
# Anchors
# ============================================================================

def generate_anchors(scales, ratios, shape, feature_stride, anchor_stride):
    """Anchors of one feature map.

    Parameters
    ----------
    scales : float or array, [S]
        Anchor sides in pixels (of a square anchor of the same area).
    ratios : array, [R]
        Width / height ratios.
    shape : (height, width)
        Feature-map size in cells.
    feature_stride : int
        Image pixels per feature-map cell.
    anchor_stride : int
        Anchors on every ``anchor_stride``-th cell.

    Returns
    -------
    ndarray, float64, [cells * R * S, (y1, x1, y2, x2)]
        Centred on ``(i * feature_stride, j * feature_stride)``; cells in row-major
        order, and at each cell the ratios in the given order (scales within ratios).
        Height ``scale / sqrt(ratio)``, width ``scale * sqrt(ratio)``.
    """
    scales = np.asarray(scales, dtype=np.float64).reshape(-1)
    ratios = np.asarray(ratios, dtype=np.float64).reshape(-1)
    ratio_grid, scale_grid = np.meshgrid(ratios, scales, indexing="ij")
    sizes = np.stack([scale_grid / np.sqrt(ratio_grid), scale_grid * np.sqrt(ratio_grid)], axis=-1)
    sizes = sizes.reshape(-1, 2)  # [K, (height, width)]
    ys = np.arange(0, shape[0], anchor_stride) * feature_stride
    xs = np.arange(0, shape[1], anchor_stride) * feature_stride
    centre_y, centre_x = np.meshgrid(ys, xs, indexing="ij")
    centres = np.stack([centre_y.ravel(), centre_x.ravel()], axis=-1).astype(np.float64)  # [P, 2]
    top_left = centres[:, None, :] - 0.5 * sizes[None, :, :]
    bottom_right = centres[:, None, :] + 0.5 * sizes[None, :, :]
    return np.concatenate([top_left, bottom_right], axis=-1).reshape(-1, 4)


def generate_pyramid_anchors(scales, ratios, feature_shapes, feature_strides, anchor_stride):
    """Anchors of every pyramid level, one scale per level, concatenated.

    Levels are taken from ``zip(scales, feature_shapes, feature_strides)``: with
    fewer scales than levels, only the first ``len(scales)`` levels get anchors
    (see ``Config.RPN_PYRAMID_LEVELS``).

    Returns
    -------
    ndarray, float64, [N, (y1, x1, y2, x2)]
        Anchors of ``scales[0]`` first, then ``scales[1]``, ...
    """
    levels = [
        generate_anchors(scale, ratios, shape, stride, anchor_stride)
        for scale, shape, stride in zip(scales, feature_shapes, feature_strides)
    ]
    if not levels:
        return np.zeros((0, 4))
    return np.concatenate(levels, axis=0)


def compute_backbone_shapes(config, image_shape):
    """Feature-map sizes of the backbone levels.

    Parameters
    ----------
    config : Config
    image_shape : (H, W, ...)

    Returns
    -------
    ndarray, int, [len(BACKBONE_STRIDES), (height, width)]
        ``ceil(H / stride), ceil(W / stride)`` per stride, or
        ``config.COMPUTE_BACKBONE_SHAPE(image_shape)`` when ``BACKBONE`` is a callable.
    """
    if callable(config.BACKBONE):
        return config.COMPUTE_BACKBONE_SHAPE(image_shape)
    height, width = int(image_shape[0]), int(image_shape[1])
    return np.array([[math.ceil(height / s), math.ceil(width / s)] for s in config.BACKBONE_STRIDES])


# ============================================================================
# Image meta and molding
# ============================================================================

def compose_image_meta(image_id, original_image_shape, image_shape, window, scale, active_class_ids):
    """Pack the attributes of an image into one vector.

    Layout: ``[image_id, original_image_shape (3), image_shape (3),
    window (y1, x1, y2, x2) in pixels of image_shape (4), scale (1),
    active_class_ids (NUM_CLASSES)]`` (``config.IMAGE_META_SIZE`` values).

    Returns
    -------
    ndarray, [IMAGE_META_SIZE]
        numpy's type for the values, as matterport: float64 as soon as one value
        is a float (the scale of a resized image), int64 when all are integers.
    """
    parts = [[image_id], list(original_image_shape), list(image_shape), list(window),
             [scale], list(active_class_ids)]
    if len(parts[1]) != 3 or len(parts[2]) != 3 or len(parts[3]) != 4:
        raise ValueError("compose_image_meta: expected 3-value shapes and a 4-value window, got "
                         f"{original_image_shape}, {image_shape}, {window}")
    return np.array([value for part in parts for value in part])


def parse_image_meta(meta):
    """Unpack vectors made by :func:`compose_image_meta`.

    Parameters
    ----------
    meta : ndarray, [batch, IMAGE_META_SIZE] (or one vector [IMAGE_META_SIZE])

    Returns
    -------
    dict
        ``image_id`` int32 [batch], ``original_image_shape`` int32 [batch, 3],
        ``image_shape`` int32 [batch, 3], ``window`` int32 [batch, 4] (pixels),
        ``scale`` float32 [batch], ``active_class_ids`` int32 [batch, NUM_CLASSES]
        (without the batch axis for one vector: an extension).
    """
    meta = np.asarray(meta)
    return {
        "image_id": meta[..., 0].astype(np.int32),
        "original_image_shape": meta[..., 1:4].astype(np.int32),
        "image_shape": meta[..., 4:7].astype(np.int32),
        "window": meta[..., 7:11].astype(np.int32),
        "scale": meta[..., 11].astype(np.float32),
        "active_class_ids": meta[..., 12:].astype(np.int32),
    }


def mold_image(images, config):
    """Network input from RGB images ``[..., C]``: float32 pixels minus ``config.MEAN_PIXEL``.

    Returns
    -------
    ndarray
        In the promoted type of float32 and ``MEAN_PIXEL`` (float64 for the
        default numpy array), exactly matterport's ``astype(float32) - MEAN_PIXEL``.
    """
    return np.asarray(images).astype(np.float32) - config.MEAN_PIXEL


def unmold_image(normalized_images, config):
    """Inverse of :func:`mold_image`: add the mean pixel back and cast to uint8.

    The cast truncates, as matterport's ``astype(np.uint8)`` (so a molded pixel
    can come back one lower than it was). Values outside 0..255 are clipped
    first (matterport's cast wrapped them around; extension).
    """
    images = np.asarray(normalized_images) + config.MEAN_PIXEL
    return np.clip(images, 0, 255).astype(np.uint8)


# ============================================================================
# Evaluation
# ============================================================================

def _first_rows(boxes):
    """How many rows of ``boxes`` are not all-zero padding (matterport keeps that many leading entries)."""
    boxes = np.asarray(boxes)
    if boxes.size == 0:
        return 0
    return len(trim_zeros(boxes.reshape(len(boxes), -1)))


def _descending(scores):
    """matterport's descending order: ``argsort(scores)[::-1]`` (ties in that order)."""
    return np.argsort(np.asarray(scores))[::-1]


def compute_matches(gt_boxes, gt_class_ids, gt_masks,
                    pred_boxes, pred_class_ids, pred_scores, pred_masks,
                    iou_threshold=0.5, score_threshold=0.0):
    """Match predictions to ground truth by *mask* IoU (:func:`.matching.greedy_match`, the library's one matcher).

    Parameters
    ----------
    gt_boxes : array, [G, (y1, x1, y2, x2)]
        All-zero rows are padding: with ``g`` non-zero rows, the first ``g``
        ground truths (boxes, class ids, masks) are used (padding goes last).
    gt_class_ids : array, int, [G]
    gt_masks : ndarray, [H, W, G]
    pred_boxes : array, [P, (y1, x1, y2, x2)]
        The same for the predictions (the first ``p`` scores, class ids, masks).
    pred_class_ids : array, int, [P]
    pred_scores : array, float, [P]
    pred_masks : ndarray, [H, W, P]
    iou_threshold : float
        A match needs IoU >= this.
    score_threshold : float
        Overlaps below this are ignored (matterport's name; it is an IoU floor).

    Returns
    -------
    gt_match : ndarray, float64, [g]
        Index (in score order) of the prediction matched to each ground truth, -1 if none.
    pred_match : ndarray, float64, [p]
        Index of the ground truth matched to each prediction *sorted by
        descending score* (``argsort(scores)[::-1]``), -1 if none.
    overlaps : ndarray, [p, g]
        Mask IoUs (:func:`compute_overlaps_masks`), predictions in that order.
    """
    n_gt, n_pred = _first_rows(gt_boxes), _first_rows(pred_boxes)
    gt_masks = np.asarray(gt_masks)[..., :n_gt]
    order = _descending(np.asarray(pred_scores)[:n_pred])
    pred_class_ids = np.asarray(pred_class_ids)[order]
    pred_masks = np.asarray(pred_masks)[..., order]
    overlaps = compute_overlaps_masks(pred_masks, gt_masks)
    gt_match, pred_match = greedy_match(overlaps, iou_threshold, iou_floor=score_threshold,
                                        gt_class_ids=np.asarray(gt_class_ids), pred_class_ids=pred_class_ids)
    return gt_match, pred_match, overlaps


def _average_precision(gt_match, pred_match):
    """VOC-style AP (area under the monotone precision/recall curve) of one image.

    Returns ``(ap, precisions, recalls)`` with the padded curves, computed as
    matterport does (recalls in float32). Without ground truth the recalls are
    0/0: NaN with predictions (so the AP is NaN), and the AP is 0.0 without.
    """
    hits = np.cumsum(pred_match > -1)
    precisions = hits / (np.arange(len(pred_match)) + 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        recalls = hits.astype(np.float32) / len(gt_match)
    precisions = np.concatenate([[0], precisions, [0]])
    recalls = np.concatenate([[0], recalls, [1]])
    # precision at each recall = best precision at that recall or beyond
    precisions = np.maximum.accumulate(precisions[::-1])[::-1]
    steps = np.flatnonzero(recalls[:-1] != recalls[1:]) + 1
    ap = np.sum((recalls[steps] - recalls[steps - 1]) * precisions[steps])
    return ap, precisions, recalls


def compute_ap(gt_boxes, gt_class_ids, gt_masks,
               pred_boxes, pred_class_ids, pred_scores, pred_masks,
               iou_threshold=0.5):
    """Average precision of one image at an IoU threshold, matching by mask IoU.

    Parameters are those of :func:`compute_matches`.

    Returns
    -------
    mAP : numpy float64
        Area under the monotone precision/recall curve. Edge cases, as in
        matterport: ground truth but no prediction -> 0.0; neither ground truth
        nor prediction -> 0.0; predictions but no ground truth -> NaN. (How
        images without ground truth count is the caller's decision: see
        ``rsna_detector.evaluate.batch_ap``.)
    precisions : ndarray, [p + 2]
        Monotone precision after each prediction, padded with 0 at both ends.
    recalls : ndarray, [p + 2]
        Recall after each prediction, padded with 0 and 1.
    overlaps : ndarray, [p, g]
        Mask IoUs, predictions in descending score order.
    """
    gt_match, pred_match, overlaps = compute_matches(
        gt_boxes, gt_class_ids, gt_masks, pred_boxes, pred_class_ids, pred_scores, pred_masks,
        iou_threshold)
    ap, precisions, recalls = _average_precision(gt_match, pred_match)
    return ap, precisions, recalls, overlaps


def compute_ap_boxes(gt_boxes, gt_class_ids, pred_boxes, pred_class_ids, pred_scores,
                     iou_threshold=0.5):
    """Like :func:`compute_ap` but matching by *box* IoU (no masks needed; not in matterport).

    For filled-rectangle instances (RSNA boxes) box IoU equals mask IoU, and the
    result equals :func:`compute_ap`'s, edge cases included.

    Parameters
    ----------
    gt_boxes : array, [G, (y1, x1, y2, x2)]
    gt_class_ids : array, int, [G]
    pred_boxes : array, [P, (y1, x1, y2, x2)]
    pred_class_ids : array, int, [P]
    pred_scores : array, float, [P]
    iou_threshold : float
        A match needs IoU >= this.

    Returns
    -------
    (mAP, precisions, recalls, overlaps)
        As :func:`compute_ap`; ``overlaps`` are box IoUs [p, g] (float64),
        predictions in descending score order.
    """
    n_gt, n_pred = _first_rows(gt_boxes), _first_rows(pred_boxes)
    gt_boxes = _box_array(gt_boxes)[:n_gt]
    order = _descending(np.asarray(pred_scores)[:n_pred])
    overlaps = compute_overlaps(_box_array(pred_boxes)[order], gt_boxes)
    gt_match, pred_match = greedy_match(overlaps, iou_threshold, gt_class_ids=np.asarray(gt_class_ids),
                                        pred_class_ids=np.asarray(pred_class_ids)[order])
    ap, precisions, recalls = _average_precision(gt_match, pred_match)
    return ap, precisions, recalls, overlaps


def compute_ap_range(gt_box, gt_class_id, gt_mask,
                     pred_box, pred_class_id, pred_score, pred_mask,
                     iou_thresholds=None, verbose=1):
    """Mean of :func:`compute_ap` over IoU thresholds (default 0.50, 0.55, ..., 0.95).

    Returns
    -------
    numpy float64
        The mean AP (NaN when an AP is NaN); with ``verbose`` each threshold's
        AP is printed, as matterport does.

    Extension: ``iou_thresholds`` may be a numpy array (matterport's
    ``iou_thresholds or ...`` refused one).
    """
    if iou_thresholds is None or len(iou_thresholds) == 0:
        iou_thresholds = np.arange(0.5, 1.0, 0.05)
    aps = []
    for threshold in iou_thresholds:
        ap = compute_ap(gt_box, gt_class_id, gt_mask, pred_box, pred_class_id, pred_score,
                        pred_mask, iou_threshold=threshold)[0]
        if verbose:
            print(f"AP @{threshold:.2f}:\t {ap:.3f}")
        aps.append(ap)
    mean_ap = np.array(aps).mean()
    if verbose:
        print(f"AP @{iou_thresholds[0]:.2f}-{iou_thresholds[-1]:.2f}:\t {mean_ap:.3f}")
    return mean_ap


def compute_recall(pred_boxes, gt_boxes, iou):
    """Fraction of ground-truth boxes that some prediction overlaps with IoU >= ``iou``.

    Parameters
    ----------
    pred_boxes : array, [P, (y1, x1, y2, x2)]
    gt_boxes : array, [G, (y1, x1, y2, x2)], G >= 1
    iou : float

    Returns
    -------
    recall : float
        Distinct ground truths that are the best match of a prediction with IoU
        >= ``iou``, over ``G``.
    positive_ids : ndarray, int, [K]
        Indices of the predictions whose best IoU is >= ``iou``.

    Raises
    ------
    NoGroundTruthError
        (a ``ValueError`` and a ``ZeroDivisionError``) when ``G == 0``: a recall
        is not defined, and matterport raised too.
    """
    overlaps = compute_overlaps(pred_boxes, gt_boxes)
    if overlaps.shape[1] == 0:
        raise NoGroundTruthError("compute_recall: no ground-truth boxes, so recall is undefined")
    best_iou = np.max(overlaps, axis=1)
    best_gt = np.argmax(overlaps, axis=1)
    positive_ids = np.where(best_iou >= iou)[0]
    return len(set(best_gt[positive_ids].tolist())) / overlaps.shape[1], positive_ids


# ============================================================================
# Weights
# ============================================================================

def download_trained_weights(coco_model_path, verbose=1):
    """Fetch matterport's COCO weights (``mask_rcnn_coco.h5``) to ``coco_model_path``.

    Delegates to ``rsna_detector.weights.fetch_weights('coco', destination=...)``,
    which checks the file's checksum and, offline or when the download fails,
    raises ``WeightsOfflineError`` naming :data:`COCO_MODEL_URL` and where to put
    the file; nothing is written then.

    Returns
    -------
    The path of the weights file (matterport returned None).
    """
    from rsna_detector.weights import fetch_weights

    if verbose > 0:
        print(f"Downloading pretrained model to {coco_model_path} ...")
    path = fetch_weights("coco", destination=coco_model_path, progress=verbose > 0)
    if verbose > 0:
        print("... done downloading pretrained model!")
    return path

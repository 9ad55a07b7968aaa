"""Drawing of images, instances, anchors and evaluation curves (matterport's API).

Headless-safe: matplotlib is imported only inside the functions, ``plt.show()``
is called only for a figure the function created itself *and* only under an
interactive backend (never under Agg, PDF, SVG, ...).

As matterport's, the drawing functions return None (a notebook cell that ends with
one then shows its picture once, not once more as the cell's value). To keep the
figure, pass ``ax=`` (where the function takes it) and use ``ax.figure``, or take
``plt.gcf()`` under a non-interactive backend (nothing was shown or closed).
:func:`apply_mask` and :func:`draw_box` change the image in place and return it, as
matterport's do. The inspection tables (:func:`display_table`,
:func:`display_weight_stats`, and their content as values, :func:`table_html` and
:func:`weight_stats`) live in ``tables`` and are re-exported here.

Boxes are ``(y1, x1, y2, x2)`` pixels with ``y2``/``x2`` exclusive; masks are
``[H, W, N]``; ``N`` may be 0 everywhere.
"""
from __future__ import annotations

import colorsys
import random

import numpy as np

from ..data.images import grey_to_rgb
from ..errors import InvalidArgumentError
from .eval.metrics import compute_matches
from .ops.boxes import as_boxes
from .ops.masks import unmold_mask
from .tables import Markup, display_table, display_weight_stats, table_html, weight_stats

__all__ = [
    "random_colors",
    "apply_mask",
    "display_images",
    "display_instances",
    "display_top_masks",
    "display_differences",
    "draw_boxes",
    "plot_precision_recall",
    "plot_overlaps",
    "draw_rois",
    "draw_box",
    "display_table",
    "table_html",
    "display_weight_stats",
    "weight_stats",
    "Markup",
]

_NON_INTERACTIVE_BACKENDS = {"agg", "pdf", "ps", "svg", "pgf", "cairo", "template"}


# ----------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------

def _pyplot():
    import matplotlib.pyplot as plt

    return plt


def _is_interactive_backend() -> bool:
    import matplotlib

    return matplotlib.get_backend().lower() not in _NON_INTERACTIVE_BACKENDS


def _new_axes(ax, figsize):
    """``(figure, axes, created)``: the given axes or a new single-axes figure."""
    if ax is not None:
        return ax.figure, ax, False
    fig, ax = _pyplot().subplots(1, figsize=figsize)
    return fig, ax, True


def _finish(created):
    """Show a figure the function created itself, under an interactive backend only; returns None."""
    if created and _is_interactive_backend():
        _pyplot().show()


def _as_rgb(image):
    """``[H, W, 3]`` of a grey ``[H, W]`` / ``[H, W, 1]`` or a colour ``[H, W, C >= 3]`` image (extra channels,
    e.g. alpha, dropped); ValueError naming the shape otherwise."""
    image = np.asarray(image)
    if image.ndim > 3:  # grey_to_rgb also takes batches; a drawing takes one image
        raise InvalidArgumentError(f"image: expected one image [H, W], [H, W, 1] or [H, W, C], got shape {image.shape}")
    return grey_to_rgb(image[..., :3] if image.ndim == 3 else image)


def _masks_or_empty(masks, image, count):
    """``masks`` as an array, or ``[H, W, 0]`` zeros for None / empty input with no instance."""
    if count == 0 and (masks is None or np.asarray(masks).size == 0):
        return np.zeros(image.shape[:2] + (0,), dtype=bool)
    return np.asarray(masks)


def _check_count(name, values, count):
    if values is not None and len(values) != count:
        raise InvalidArgumentError(f"{name}: expected {count} entries (one per instance), got {len(values)}")


def _frame(ax, height, width, title):
    ax.set_ylim(height + 10, -10)
    ax.set_xlim(-10, width + 10)
    ax.axis("off")
    ax.set_title(title)


def _draw_rectangle(ax, box, color, linestyle="dashed", alpha=0.7, linewidth=2):
    from matplotlib import patches

    y1, x1, y2, x2 = box
    # imshow centres pixel i on i, so the edges of rows y1..y2-1 are y1-0.5 and y2-0.5
    ax.add_patch(patches.Rectangle((x1 - 0.5, y1 - 0.5), x2 - x1, y2 - y1, linewidth=linewidth, alpha=alpha,
                                   linestyle=linestyle, edgecolor=color, facecolor="none"))


def _draw_contours(ax, mask, color):
    from matplotlib.patches import Polygon
    from skimage.measure import find_contours

    # pad so that masks touching the border still give closed contours
    padded = np.pad(np.asarray(mask, dtype=np.uint8), 1)
    for contour in find_contours(padded, 0.5):
        ax.add_patch(Polygon(np.fliplr(contour) - 1, facecolor="none", edgecolor=color))


# ----------------------------------------------------------------------------
# public functions
# ----------------------------------------------------------------------------

def random_colors(N, bright=True, rng=None):
    """``N`` distinct RGB colours (floats in 0..1), evenly spaced in hue, shuffled.

    Shuffled by Python's ``random`` module, as matterport's (``random.seed`` repeats
    it), or by ``rng`` (a ``numpy.random.Generator``, extension) when given.
    """
    brightness = 1.0 if bright else 0.7
    colors = [colorsys.hsv_to_rgb(i / max(N, 1), 1.0, brightness) for i in range(N)]
    if rng is None:
        random.shuffle(colors)
        return colors
    return [colors[i] for i in rng.permutation(N)]


def apply_mask(image, mask, color, alpha=0.5):
    """Blend ``color`` into ``image`` where ``mask == 1``, in place (matterport's behaviour).

    Parameters
    ----------
    image : ndarray, [H, W, 3+]
        Values 0..255; changed in place (values are cast to its dtype, so a uint8
        image is truncated as numpy casts).
    mask : ndarray, [H, W]
        Pixels equal to 1 (or True) are blended.
    color : (r, g, b) floats in 0..1
    alpha : float
        Weight of the colour.

    Returns
    -------
    ndarray
        ``image`` itself.
    """
    inside = np.asarray(mask) == 1
    for channel in range(3):
        plane = image[:, :, channel]
        image[:, :, channel] = np.where(inside, plane * (1 - alpha) + alpha * color[channel] * 255, plane)
    return image


def display_images(images, titles=None, cols=4, cmap=None, norm=None, interpolation=None):
    """Show images in a grid with optional titles (a new figure; returns None)."""
    plt = _pyplot()
    images = list(images)
    titles = list(titles) if titles is not None else [""] * len(images)
    _check_count("titles", titles, len(images))
    rows = max(1, -(-len(images) // cols))
    fig = plt.figure(figsize=(14, 14 * rows / cols))
    for i, (image, title) in enumerate(zip(images, titles, strict=False), start=1):
        ax = fig.add_subplot(rows, cols, i)
        ax.set_title(title, fontsize=9)
        ax.axis("off")
        ax.imshow(np.asarray(image).astype(np.uint8), cmap=cmap, norm=norm, interpolation=interpolation)
    _finish(True)


def display_instances(image, boxes, masks, class_ids, class_names, scores=None, title="",
                      figsize=(16, 16), ax=None, show_mask=True, show_bbox=True, colors=None,
                      captions=None):
    """Draw instances (boxes, masks with contours, captions) over an image.

    Parameters
    ----------
    image : ndarray, [H, W, 3] (or grayscale [H, W])
    boxes : array, [N, (y1, x1, y2, x2)]
    masks : ndarray, [H, W, N] or None
    class_ids : array, int, [N]
    class_names : list of str
        Indexed by class id.
    scores : array, [N], optional
    title : str
    figsize : (width, height)
        Of the new figure when ``ax`` is None.
    ax : matplotlib Axes, optional
    show_mask, show_bbox : bool
    colors : list of N colours, optional
    captions : list of N str, optional
        Default ``'<class name> <score>'``.

    Returns
    -------
    None
    """
    image = _as_rgb(image)
    boxes = as_boxes(boxes, "display_instances: boxes")
    count = len(boxes)
    class_ids = np.zeros(0, int) if class_ids is None else np.asarray(class_ids).reshape(-1)
    _check_count("class_ids", class_ids, count)
    _check_count("scores", scores, count)
    _check_count("captions", captions, count)
    _check_count("colors", colors, count)
    if masks is not None:
        masks = np.asarray(masks)
        if masks.ndim != 3 or masks.shape[-1] != count:
            raise InvalidArgumentError(f"masks: expected [H, W, {count}], got shape {masks.shape}")
    if not count:
        print("\n*** No instances to display *** \n")
    colors = colors or random_colors(count)
    _, ax, created = _new_axes(ax, figsize)
    _frame(ax, image.shape[0], image.shape[1], title)

    shown = image.astype(np.float64)
    for i in range(count):
        if not np.any(boxes[i]):
            continue  # padding or an instance cropped away
        if show_bbox:
            _draw_rectangle(ax, boxes[i], colors[i])
        if captions is not None:
            caption = captions[i]
        else:
            caption = str(class_names[int(class_ids[i])])
            if scores is not None and scores[i]:  # matterport leaves a score of 0 out
                caption += f" {float(scores[i]):.3f}"
        ax.text(boxes[i][1], boxes[i][0] + 8, caption, color="w", size=11, backgroundcolor="none")
        if masks is not None and show_mask:
            shown = apply_mask(shown, masks[:, :, i], colors[i])
        if masks is not None:
            _draw_contours(ax, masks[:, :, i], colors[i])
    ax.imshow(np.clip(shown, 0, 255).astype(np.uint8))
    _finish(created)


def display_top_masks(image, mask, class_ids, class_names, limit=4):
    """Show the image and, for the ``limit`` classes covering most pixels, their masks.

    Draws ``limit + 1`` panels on a new figure; returns None.
    """
    image = _as_rgb(image)
    mask = np.asarray(mask)
    class_ids = np.asarray(class_ids).reshape(-1)
    _check_count("class_ids", class_ids, mask.shape[-1])
    panels, titles = [image], [f"H x W={image.shape[0]}x{image.shape[1]}"]
    unique_ids = np.unique(class_ids)
    areas = [mask[:, :, class_ids == cid].sum() for cid in unique_ids]
    # as matterport: classes without mask pixels are not shown
    ranked = [cid for area, cid in sorted(zip(areas, unique_ids, strict=True), key=lambda p: -p[0]) if area > 0]
    for slot in range(limit):
        if slot < len(ranked):
            cid = ranked[slot]
            selected = mask[:, :, class_ids == cid]
            # label each instance with its own value so that touching instances differ
            panel = np.sum(selected * np.arange(1, selected.shape[-1] + 1), axis=-1)
            titles.append(str(class_names[int(cid)]))
        else:
            panel = np.zeros(mask.shape[:2])
            titles.append("-")
        panels.append(panel)
    display_images(panels, titles=titles, cols=limit + 1, cmap="Blues_r")


def plot_precision_recall(AP, precisions, recalls, ax=None):
    """Draw the precision/recall curve returned by ``utils.compute_ap``; returns None."""
    _, ax, created = _new_axes(ax, (8, 6))
    ax.set_title(f"Precision-Recall Curve. AP@50 = {float(AP):.3f}")
    ax.set_xlabel("Recall")
    ax.set_ylabel("Precision")
    ax.set_ylim(0, 1.1)
    ax.set_xlim(0, 1.1)
    ax.plot(np.asarray(recalls), np.asarray(precisions))
    _finish(created)


def plot_overlaps(gt_class_ids, pred_class_ids, pred_scores, overlaps, class_names,
                  threshold=0.5, ax=None):
    """Grid of IoUs between predictions (rows) and ground truth (columns); returns None.

    ``overlaps`` is ``[P, G]`` as from ``utils.compute_ap``; cells >= ``threshold``
    are labelled "match" when the classes agree, "wrong" otherwise.
    """
    overlaps = np.asarray(overlaps, dtype=np.float64).reshape(len(pred_class_ids), len(gt_class_ids))
    _, ax, created = _new_axes(ax, (12, 10))
    ax.imshow(overlaps if overlaps.size else np.zeros((1, 1)), cmap="Blues", vmin=0, vmax=1)
    ax.set_yticks(np.arange(len(pred_class_ids)))
    ax.set_yticklabels([f"{class_names[int(c)]} ({float(s):.2f})"
                        for c, s in zip(pred_class_ids, pred_scores, strict=False)])
    ax.set_xticks(np.arange(len(gt_class_ids)))
    ax.set_xticklabels([str(class_names[int(c)]) for c in gt_class_ids], rotation=90)
    for i, j in np.ndindex(*overlaps.shape):
        value = overlaps[i, j]
        label = ""
        if value >= threshold:
            label = "match" if pred_class_ids[i] == gt_class_ids[j] else "wrong"
        ax.text(j, i, f"{value:.3f}\n{label}", ha="center", va="center", fontsize=9,
                color="white" if value > 0.5 else "black")
    ax.set_xlabel("Ground Truth")
    ax.set_ylabel("Predictions and Scores")
    _finish(created)


def draw_boxes(image, boxes=None, refined_boxes=None, masks=None, captions=None,
               visibilities=None, title="", ax=None):
    """Draw boxes (e.g. anchors or ROIs), their refined versions, masks and captions.

    Parameters
    ----------
    image : ndarray, [H, W, 3]
    boxes : array, [N, (y1, x1, y2, x2)], optional
        Drawn dashed when ``refined_boxes`` is given too, solid otherwise.
    refined_boxes : array, [N, 4], optional
        Drawn solid, joined to ``boxes`` by a line.
    masks : ndarray, [H, W, N], optional
    captions : list of N str, optional
    visibilities : array, [N], optional
        0 hidden, 1 faint dotted, 2 normal (default).
    title : str
    ax : matplotlib Axes, optional

    Returns
    -------
    None
    """
    image = _as_rgb(image)
    boxes = None if boxes is None else as_boxes(boxes, "draw_boxes: boxes")
    refined = None if refined_boxes is None else as_boxes(refined_boxes, "draw_boxes: refined_boxes")
    count = len(boxes) if boxes is not None else (len(refined) if refined is not None else 0)
    if boxes is not None and refined is not None:
        _check_count("refined_boxes", refined, count)
    _check_count("captions", captions, count)
    _check_count("visibilities", visibilities, count)
    if masks is not None and np.asarray(masks).shape[-1] != count:
        raise InvalidArgumentError(f"masks: expected [H, W, {count}], got shape {np.asarray(masks).shape}")
    _, ax, created = _new_axes(ax, (12, 12))
    _frame(ax, image.shape[0], image.shape[1], title)
    colors = random_colors(count)
    shown = image.astype(np.float64)
    for i in range(count):
        visibility = 2 if visibilities is None else int(visibilities[i])
        if visibility == 0:
            continue
        color = colors[i] if visibility == 2 else "gray"
        style = "dotted" if visibility == 1 else ("dashed" if refined is not None else "solid")
        alpha = 0.5 if visibility == 1 else 1.0
        if boxes is not None:
            _draw_rectangle(ax, boxes[i], color, linestyle=style, alpha=alpha)
        if refined is not None:
            _draw_rectangle(ax, refined[i], color, linestyle="solid", alpha=alpha)
            if boxes is not None:
                ax.plot([boxes[i][1], refined[i][1]], [boxes[i][0], refined[i][0]], color=color)
        if captions is not None:
            anchor = refined[i] if refined is not None else boxes[i]
            ax.text(anchor[1], anchor[0], captions[i], size=11, color="w",
                    bbox={"facecolor": color, "alpha": 0.5, "pad": 1, "edgecolor": "none"})
        if masks is not None:
            shown = apply_mask(shown, np.asarray(masks)[:, :, i], colors[i])
            _draw_contours(ax, np.asarray(masks)[:, :, i], colors[i])
    ax.imshow(np.clip(shown, 0, 255).astype(np.uint8))
    _finish(created)


def display_differences(image, gt_box, gt_class_id, gt_mask, pred_box, pred_class_id, pred_score,
                        pred_mask, class_names, title="", ax=None, show_mask=True, show_box=True,
                        iou_threshold=0.5, score_threshold=0.5):
    """Draw ground truth (green) and predictions (red) with ``score / IoU`` captions.

    Predictions are matched to ground truth by mask IoU (``utils.compute_matches``);
    a matched prediction's caption shows its IoU with its match, an unmatched
    one its best IoU. Returns None.
    """
    image = _as_rgb(image)
    gt_box = as_boxes(gt_box, "display_differences: gt_box")
    pred_box = as_boxes(pred_box, "display_differences: pred_box")
    gt_mask = _masks_or_empty(gt_mask, image, len(gt_box))
    pred_mask = _masks_or_empty(pred_mask, image, len(pred_box))
    gt_keep = np.any(gt_box != 0, axis=1)
    pred_keep = np.any(pred_box != 0, axis=1)
    gt_box, gt_class_id = gt_box[gt_keep], np.asarray(gt_class_id).reshape(-1)[gt_keep]
    gt_mask = np.asarray(gt_mask)[..., gt_keep]
    order = np.argsort(-np.asarray(pred_score, dtype=np.float64).reshape(-1)[pred_keep], kind="stable")
    pred_box = pred_box[pred_keep][order]
    pred_class_id = np.asarray(pred_class_id).reshape(-1)[pred_keep][order]
    pred_score = np.asarray(pred_score, dtype=np.float64).reshape(-1)[pred_keep][order]
    pred_mask = np.asarray(pred_mask)[..., pred_keep][..., order]

    gt_match, pred_match, overlaps = compute_matches(
        gt_box, gt_class_id, gt_mask, pred_box, pred_class_id, pred_score, pred_mask,
        iou_threshold=iou_threshold, score_threshold=score_threshold)
    colors = [(0, 1, 0, 0.8)] * len(gt_box) + [(1, 0, 0, 1)] * len(pred_box)
    captions = [""] * len(gt_box)
    for i, score in enumerate(pred_score):
        if pred_match[i] > -1:
            iou = overlaps[i, int(pred_match[i])]  # compute_matches gives float indices, as matterport
        else:
            iou = overlaps[i].max() if overlaps.shape[1] else 0.0
        captions.append(f"{score:.2f} / {iou:.2f}")
    display_instances(
        image,
        np.concatenate([gt_box, pred_box]),
        np.concatenate([gt_mask, pred_mask], axis=-1),
        np.concatenate([gt_class_id, pred_class_id]).astype(int),
        class_names,
        scores=np.concatenate([np.zeros(len(gt_box)), pred_score]),
        title=title or "Ground Truth and Detections\n GT=green, pred=red, captions: score/IoU",
        ax=ax, show_mask=show_mask, show_bbox=show_box, colors=colors, captions=captions,
    )


def draw_rois(image, rois, refined_rois, mask, class_ids, class_names, limit=10):
    """Draw up to ``limit`` training ROIs with their refinements and masks; print the class balance.

    matterport's debugging view of detection targets (``data_generator(...,
    detection_targets=True)``). ROIs are drawn dashed (grey for background ones);
    a positive ROI also gets its refined box (solid), a line joining the two, its
    class name and its mask pasted into the ROI. With more than ``limit`` ROIs a
    random sample is drawn (``np.random``, as matterport). Prints the numbers of
    positive and negative ROIs and the positive ratio. Returns None.

    Parameters
    ----------
    image : ndarray, [H, W, 3]
    rois : array, [N, (y1, x1, y2, x2)]
        Pixels.
    refined_rois : array, [N, (y1, x1, y2, x2)]
    mask : ndarray, [N, h, w]
        Each ROI's mask of its own class, in the ROI's frame.
    class_ids : array, int, [N]
        0 for background ROIs.
    class_names : list of str
    limit : int
    """
    from matplotlib import lines

    image = _as_rgb(image)
    rois = np.asarray(rois)
    class_ids = np.asarray(class_ids).reshape(-1)
    _check_count("refined_rois", refined_rois, len(rois))
    _check_count("class_ids", class_ids, len(rois))
    _check_count("mask", mask, len(rois))
    ids = np.arange(len(rois), dtype=np.int32)
    if len(ids) > limit:
        ids = np.random.choice(ids, limit, replace=False)
    _, ax, created = _new_axes(None, (12, 12))
    if len(rois) > limit:
        ax.set_title(f"Showing {len(ids)} random ROIs out of {len(rois)}")
    else:
        ax.set_title(f"{len(ids)} ROIs")
    ax.set_ylim(image.shape[0] + 20, -20)  # room outside the image, as matterport
    ax.set_xlim(-50, image.shape[1] + 20)
    ax.axis("off")
    shown = image.astype(np.float64)
    for index in ids:
        color = np.random.rand(3)
        class_id = int(class_ids[index])
        y1, x1, y2, x2 = rois[index][:4]
        _draw_rectangle(ax, (y1, x1, y2, x2), color if class_id else "gray", alpha=1.0)
        if not class_id:
            continue
        ry1, rx1, ry2, rx2 = np.asarray(refined_rois[index])[:4]
        _draw_rectangle(ax, (ry1, rx1, ry2, rx2), color, linestyle="solid", alpha=1.0)
        ax.add_line(lines.Line2D([x1, rx1], [y1, ry1], color=color))
        ax.text(rx1, ry1 + 8, str(class_names[class_id]), color="w", size=11, backgroundcolor="none")
        full_mask = unmold_mask(np.asarray(mask[index]), np.asarray(rois[index][:4]).astype(np.int32),
                                      image.shape)
        apply_mask(shown, full_mask, color)
    ax.imshow(np.clip(shown, 0, 255).astype(np.uint8))
    positives = int(np.sum(class_ids > 0))
    print("Positive ROIs: ", positives)
    print("Negative ROIs: ", int(np.sum(class_ids == 0)))
    print("Positive Ratio: {:.2f}".format(positives / max(len(class_ids), 1)))
    _finish(created)


def draw_box(image, box, color):
    """Draw a box outline 2 pixels wide into ``image``, in place (matterport's ``draw_box``).

    Parameters
    ----------
    image : ndarray, [H, W, 3]
        Changed in place.
    box : (y1, x1, y2, x2)
        Integer pixels. As matterport, the lines are drawn on rows ``y1, y1+1`` and
        ``y2, y2+1`` and on columns ``x1, x1+1`` and ``x2, x2+1`` (the bottom and right
        lines lie just outside an exclusive ``y2``/``x2``), clipped by the image.
    color : sequence of 3 int
        RGB.

    Returns
    -------
    ndarray
        ``image`` itself.
    """
    y1, x1, y2, x2 = (int(v) for v in box[:4])
    for row in (y1, y2):
        image[row:row + 2, x1:x2] = color
    for column in (x1, x2):
        image[y1:y2, column:column + 2] = color
    return image

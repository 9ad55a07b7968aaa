"""Drawing of images, instances, anchors and evaluation curves (matterport's API).

Headless-safe: matplotlib is imported only inside the functions, ``plt.show()``
is called only for a figure the function created itself *and* only under an
interactive backend (never under Agg, PDF, SVG, ...). Every function returns the
``matplotlib.figure.Figure`` it drew on (the figure of ``ax`` when one is given),
so that callers can ``fig.savefig(...)``.

Boxes are ``(y1, x1, y2, x2)`` pixels with ``y2``/``x2`` exclusive; masks are
``[H, W, N]``; ``N`` may be 0 everywhere.
"""
from __future__ import annotations

import colorsys

import numpy as np

from . import utils

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


def _finish(fig, created):
    if created and _is_interactive_backend():
        _pyplot().show()
    return fig


def _as_rgb(image):
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    if image.ndim == 2:
        image = np.stack([image] * 3, axis=-1)
    if image.ndim != 3 or image.shape[-1] < 3:
        raise ValueError(f"expected an image [H, W], [H, W, 1] or [H, W, 3], got shape {image.shape}")
    return image[..., :3]


def _masks_or_empty(masks, image, count):
    """``masks`` as an array, or ``[H, W, 0]`` zeros for None / empty input with no instance."""
    if count == 0 and (masks is None or np.asarray(masks).size == 0):
        return np.zeros(image.shape[:2] + (0,), dtype=bool)
    return np.asarray(masks)


def _check_count(name, values, count):
    if values is not None and len(values) != count:
        raise ValueError(f"{name}: expected {count} entries (one per instance), got {len(values)}")


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

    ``rng`` (a ``numpy.random.Generator``, extension) makes the order repeatable.
    """
    brightness = 1.0 if bright else 0.7
    colors = [colorsys.hsv_to_rgb(i / max(N, 1), 1.0, brightness) for i in range(N)]
    rng = np.random.default_rng() if rng is None else rng
    return [colors[i] for i in rng.permutation(N)]


def apply_mask(image, mask, color, alpha=0.5):
    """Blend ``color`` into ``image`` where ``mask`` is 1.

    Parameters
    ----------
    image : ndarray, [H, W, 3]
        Values 0..255.
    mask : ndarray, [H, W]
    color : (r, g, b) floats in 0..1
    alpha : float
        Weight of the colour.

    Returns
    -------
    ndarray, same shape and dtype as ``image`` (a new array)
    """
    image = np.asarray(image)
    inside = np.asarray(mask).astype(bool)[..., None]
    tint = np.asarray(color[:3], dtype=np.float64) * 255
    blended = image * (1 - alpha) + alpha * tint
    return np.where(inside, blended, image).astype(image.dtype)


def display_images(images, titles=None, cols=4, cmap=None, norm=None, interpolation=None):
    """Show images in a grid with optional titles; returns the Figure."""
    plt = _pyplot()
    images = list(images)
    titles = list(titles) if titles is not None else [""] * len(images)
    _check_count("titles", titles, len(images))
    rows = max(1, -(-len(images) // cols))
    fig = plt.figure(figsize=(14, 14 * rows / cols))
    for i, (image, title) in enumerate(zip(images, titles), start=1):
        ax = fig.add_subplot(rows, cols, i)
        ax.set_title(title, fontsize=9)
        ax.axis("off")
        ax.imshow(np.asarray(image).astype(np.uint8), cmap=cmap, norm=norm, interpolation=interpolation)
    return _finish(fig, True)


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
    matplotlib.figure.Figure
    """
    image = _as_rgb(image)
    boxes = utils._as_boxes(boxes, "display_instances: boxes")
    count = len(boxes)
    class_ids = np.zeros(0, int) if class_ids is None else np.asarray(class_ids).reshape(-1)
    _check_count("class_ids", class_ids, count)
    _check_count("scores", scores, count)
    _check_count("captions", captions, count)
    _check_count("colors", colors, count)
    if masks is not None:
        masks = np.asarray(masks)
        if masks.ndim != 3 or masks.shape[-1] != count:
            raise ValueError(f"masks: expected [H, W, {count}], got shape {masks.shape}")
    colors = colors or random_colors(count)
    fig, ax, created = _new_axes(ax, figsize)
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
            if scores is not None:
                caption += f" {float(scores[i]):.3f}"
        ax.text(boxes[i][1], boxes[i][0] + 8, caption, color="w", size=11, backgroundcolor="none")
        if masks is not None and show_mask:
            shown = apply_mask(shown, masks[:, :, i], colors[i])
        if masks is not None:
            _draw_contours(ax, masks[:, :, i], colors[i])
    ax.imshow(np.clip(shown, 0, 255).astype(np.uint8))
    return _finish(fig, created)


def display_top_masks(image, mask, class_ids, class_names, limit=4):
    """Show the image and, for the ``limit`` classes covering most pixels, their masks.

    Returns the Figure (``limit + 1`` panels).
    """
    image = _as_rgb(image)
    mask = np.asarray(mask)
    class_ids = np.asarray(class_ids).reshape(-1)
    _check_count("class_ids", class_ids, mask.shape[-1])
    panels, titles = [image], [f"H x W={image.shape[0]}x{image.shape[1]}"]
    unique_ids = np.unique(class_ids)
    areas = [mask[:, :, class_ids == cid].sum() for cid in unique_ids]
    ranked = [cid for _, cid in sorted(zip(areas, unique_ids), key=lambda p: -p[0])]
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
    return display_images(panels, titles=titles, cols=limit + 1, cmap="Blues_r")


def plot_precision_recall(AP, precisions, recalls, ax=None):
    """Draw the precision/recall curve returned by ``utils.compute_ap``; returns the Figure."""
    fig, ax, created = _new_axes(ax, (8, 6))
    ax.set_title(f"Precision-Recall Curve. AP@50 = {float(AP):.3f}")
    ax.set_xlabel("Recall")
    ax.set_ylabel("Precision")
    ax.set_ylim(0, 1.1)
    ax.set_xlim(0, 1.1)
    ax.plot(np.asarray(recalls), np.asarray(precisions))
    return _finish(fig, created)


def plot_overlaps(gt_class_ids, pred_class_ids, pred_scores, overlaps, class_names,
                  threshold=0.5, ax=None):
    """Grid of IoUs between predictions (rows) and ground truth (columns); returns the Figure.

    ``overlaps`` is ``[P, G]`` as from ``utils.compute_ap``; cells >= ``threshold``
    are labelled "match" when the classes agree, "wrong" otherwise.
    """
    overlaps = np.asarray(overlaps, dtype=np.float64).reshape(len(pred_class_ids), len(gt_class_ids))
    fig, ax, created = _new_axes(ax, (12, 10))
    ax.imshow(overlaps if overlaps.size else np.zeros((1, 1)), cmap="Blues", vmin=0, vmax=1)
    ax.set_yticks(np.arange(len(pred_class_ids)))
    ax.set_yticklabels([f"{class_names[int(c)]} ({float(s):.2f})"
                        for c, s in zip(pred_class_ids, pred_scores)])
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
    return _finish(fig, created)


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
    matplotlib.figure.Figure
    """
    image = _as_rgb(image)
    boxes = None if boxes is None else utils._as_boxes(boxes, "draw_boxes: boxes")
    refined = None if refined_boxes is None else utils._as_boxes(refined_boxes, "draw_boxes: refined_boxes")
    count = len(boxes) if boxes is not None else (len(refined) if refined is not None else 0)
    if boxes is not None and refined is not None:
        _check_count("refined_boxes", refined, count)
    _check_count("captions", captions, count)
    _check_count("visibilities", visibilities, count)
    if masks is not None and np.asarray(masks).shape[-1] != count:
        raise ValueError(f"masks: expected [H, W, {count}], got shape {np.asarray(masks).shape}")
    fig, ax, created = _new_axes(ax, (12, 12))
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
    return _finish(fig, created)


def display_differences(image, gt_box, gt_class_id, gt_mask, pred_box, pred_class_id, pred_score,
                        pred_mask, class_names, title="", ax=None, show_mask=True, show_box=True,
                        iou_threshold=0.5, score_threshold=0.5):
    """Draw ground truth (green) and predictions (red) with ``score / IoU`` captions.

    Predictions are matched to ground truth by mask IoU (``utils.compute_matches``);
    a matched prediction's caption shows its IoU with its match, an unmatched
    one its best IoU. Returns the Figure.
    """
    image = _as_rgb(image)
    gt_box = utils._as_boxes(gt_box, "display_differences: gt_box")
    pred_box = utils._as_boxes(pred_box, "display_differences: pred_box")
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

    gt_match, pred_match, overlaps = utils.compute_matches(
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
    return display_instances(
        image,
        np.concatenate([gt_box, pred_box]),
        np.concatenate([gt_mask, pred_mask], axis=-1),
        np.concatenate([gt_class_id, pred_class_id]).astype(int),
        class_names,
        scores=np.concatenate([np.zeros(len(gt_box)), pred_score]),
        title=title or "Ground Truth and Detections\n GT=green, pred=red, captions: score/IoU",
        ax=ax, show_mask=show_mask, show_bbox=show_box, colors=colors, captions=captions,
    )

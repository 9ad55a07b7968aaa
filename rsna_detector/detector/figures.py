"""Pictures of detections: ground truth beside prediction (the report's figure)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["plot_gt_vs_prediction", "save_gt_vs_prediction"]


def _draw_boxes(ax, image, boxes, scores, color, title):
    from matplotlib.patches import Rectangle

    ax.imshow(image if image.ndim == 2 else image[..., 0], cmap="gray")
    for k, (y1, x1, y2, x2) in enumerate(np.asarray(boxes, np.float32).reshape(-1, 4)):
        ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor=color, linewidth=2))
        if scores is not None:
            ax.text(x1, max(y1 - 3, 0), f"{scores[k]:.2f}", color=color, fontsize=8, va="bottom")
    ax.set_title(title, fontsize=9)
    ax.axis("off")


def plot_gt_vs_prediction(image, gt_boxes, pred_boxes, pred_scores, title=""):
    """Two panels: ground truth (left, green) and prediction with scores (right, red).

    Parameters
    ----------
    image : uint8 [H, W] or [H, W, 3]
    gt_boxes, pred_boxes : float [N, (y1, x1, y2, x2)] in the image's pixels
    pred_scores : float [N]
    title : str
        Figure title (for example the patientId).

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(8, 4.4))
    _draw_boxes(left, image, gt_boxes, None, "lime", f"ground truth ({len(np.reshape(gt_boxes, (-1, 4)))} boxes)")
    _draw_boxes(right, image, pred_boxes, pred_scores, "red", f"prediction ({len(pred_scores)} boxes)")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def save_gt_vs_prediction(model, dataset, image_ids, out_dir, postprocessing="auto"):
    """Run the detector on dataset images and save one PNG per image.

    Parameters
    ----------
    model : MaskRCNN in inference mode
    dataset : DetectorDataset (or any Dataset with ``load_image``/``load_mask``)
    image_ids : sequence of int
    out_dir : str or Path
    postprocessing : PostProcessing, 'auto' or None
        The boxes drawn are those of ``postprocess.detect`` with it: 'auto' (default) the
        model's ``postprocessing`` (the submitted boxes), None every box of ``model.detect``.

    Returns
    -------
    list of Path
        The written files, ``<out_dir>/<patientId or image id>.png``.

    Raises
    ------
    UnsafePathError
        A patientId that would put the picture outside ``out_dir`` (a path
        separator, '..', a drive letter, a link leading out); checked before
        the image is read, so nothing is written for it.
    """
    import matplotlib.pyplot as plt

    from .._io import save_figure
    from .._paths import path_in_folder
    from ..mrcnn.utils import extract_bboxes
    from .postprocess import detect

    if postprocessing == "auto":
        postprocessing = getattr(model, "postprocessing", None)

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for image_id in image_ids:
        name = dataset.image_info[image_id].get("id", image_id)
        path = path_in_folder(out_dir, str(name), ".png")
        image = dataset.load_image(image_id)
        masks, _ = dataset.load_mask(image_id)
        found = detect(model, [image], postprocessing)[0]
        fig = plot_gt_vs_prediction(image, extract_bboxes(masks), found.boxes, found.scores, title=str(name))
        save_figure(fig, path, dpi=80)
        plt.close(fig)
        written.append(path)
    return written

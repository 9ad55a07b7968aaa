"""mrcnn.visualize: every function draws headless on Agg (the figure, plt.gcf(), saves to PNG),
returns None as matterport's (a notebook cell shows the picture once), accepts empty inputs,
and never calls plt.show() under a non-interactive backend."""
import os
import subprocess
import sys

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from rsna_detector.mrcnn import utils, visualize  # noqa: E402

CLASS_NAMES = ["BG", "opacity", "other"]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def scene():
    image = np.full((48, 64, 3), 90, np.uint8)
    masks = np.zeros((48, 64, 2), bool)
    masks[4:20, 6:30, 0] = True
    masks[26:44, 34:60, 1] = True
    return image, utils.extract_bboxes(masks), masks, np.array([1, 2])


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


@pytest.fixture
def no_show(monkeypatch):
    def fail():
        raise AssertionError("plt.show() called under Agg")
    monkeypatch.setattr(plt, "show", fail)


def drawn(returned):
    """The figure a drawing function drew on, after checking it returned None as matterport's."""
    assert returned is None
    return plt.gcf()


def assert_saves_png(fig, tmp_path, name):
    assert isinstance(fig, Figure)
    path = tmp_path / f"{name}.png"
    fig.savefig(path)
    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE) and len(data) > 1000


def test_module_import_does_not_import_matplotlib():
    code = "import sys, rsna_detector.mrcnn.visualize; print('matplotlib' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env={**os.environ, "MPLBACKEND": "Agg"}, check=True)
    assert result.stdout.strip() == "False"


def test_display_instances(scene, tmp_path, no_show):
    image, boxes, masks, class_ids = scene
    fig = drawn(visualize.display_instances(image, boxes, masks, class_ids, CLASS_NAMES,
                                            scores=[0.91, 0.5], title="two"))
    ax = fig.axes[0]
    assert ax.get_title() == "two"
    assert [t.get_text() for t in ax.texts] == ["opacity 0.910", "other 0.500"]
    assert len(ax.patches) == 4  # 2 boxes + 2 mask contours
    assert_saves_png(fig, tmp_path, "instances")


def test_display_instances_empty_and_on_given_axes(tmp_path, no_show):
    fig, ax = plt.subplots()
    returned = visualize.display_instances(np.zeros((32, 32, 3), np.uint8), np.zeros((0, 4)),
                                           np.zeros((32, 32, 0), bool), np.zeros(0, int), CLASS_NAMES,
                                           ax=ax)
    assert returned is None and not ax.patches
    assert_saves_png(ax.figure, tmp_path, "empty")


def test_display_instances_rejects_mismatched_inputs(scene):
    image, boxes, masks, _ = scene
    with pytest.raises(ValueError, match="class_ids: expected 2 entries"):
        visualize.display_instances(image, boxes, masks, [1], CLASS_NAMES)


def test_display_instances_with_custom_captions_without_masks(scene, tmp_path, no_show):
    image, boxes, _, class_ids = scene
    fig = drawn(visualize.display_instances(image[..., 0], boxes, None, class_ids, CLASS_NAMES,
                                            captions=["a", "b"], show_bbox=False))
    assert [t.get_text() for t in fig.axes[0].texts] == ["a", "b"]
    assert not fig.axes[0].patches
    assert_saves_png(fig, tmp_path, "captions")


def test_display_top_masks(scene, tmp_path, no_show):
    image, _, masks, class_ids = scene
    fig = drawn(visualize.display_top_masks(image, masks, class_ids, CLASS_NAMES, limit=3))
    # the image, then the classes by area: "other" (18x26) before "opacity" (16x24), then a blank
    assert [ax.get_title() for ax in fig.axes] == ["H x W=48x64", "other", "opacity", "-"]
    assert_saves_png(fig, tmp_path, "top_masks")
    empty = drawn(visualize.display_top_masks(image, np.zeros((48, 64, 0), bool), np.zeros(0, int), CLASS_NAMES))
    assert_saves_png(empty, tmp_path, "top_masks_empty")


def test_display_images(tmp_path, no_show):
    fig = drawn(visualize.display_images([np.zeros((8, 8, 3)), np.ones((8, 8))], titles=["a", "b"], cols=2))
    assert [ax.get_title() for ax in fig.axes] == ["a", "b"]
    assert_saves_png(fig, tmp_path, "images")


def test_plot_precision_recall(tmp_path, no_show):
    ap, precisions, recalls, _ = utils.compute_ap_boxes(
        np.array([[0, 0, 10, 10], [20, 20, 30, 30]]), np.array([1, 1]),
        np.array([[0, 0, 10, 10]]), np.array([1]), np.array([0.9]))
    fig = drawn(visualize.plot_precision_recall(ap, precisions, recalls))
    ax = fig.axes[0]
    assert ax.get_title() == "Precision-Recall Curve. AP@50 = 0.500"
    np.testing.assert_allclose(ax.lines[0].get_xdata(), recalls)
    assert_saves_png(fig, tmp_path, "pr")
    empty = drawn(visualize.plot_precision_recall(0.0, [], []))
    assert_saves_png(empty, tmp_path, "pr_empty")


def test_plot_overlaps(tmp_path, no_show):
    overlaps = np.array([[0.8, 0.0], [0.1, 0.6]])
    fig = drawn(visualize.plot_overlaps([1, 2], [1, 1], [0.9, 0.7], overlaps, CLASS_NAMES))
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert texts == ["0.800\nmatch", "0.000\n", "0.100\n", "0.600\nwrong"]
    assert_saves_png(fig, tmp_path, "overlaps")
    assert_saves_png(drawn(visualize.plot_overlaps([], [], [], np.zeros((0, 0)), CLASS_NAMES)), tmp_path, "ov0")


def test_draw_boxes(scene, tmp_path, no_show):
    image, boxes, masks, _ = scene
    fig = drawn(visualize.draw_boxes(image, boxes=boxes, refined_boxes=boxes + 2, masks=masks,
                                     captions=["x", "y"], visibilities=[2, 0], title="rois"))
    ax = fig.axes[0]
    # the hidden second box draws nothing: 2 rectangles + 1 contour, 1 joining line, 1 caption
    assert len(ax.patches) == 3 and len(ax.lines) == 1
    assert [t.get_text() for t in ax.texts] == ["x"]
    assert_saves_png(fig, tmp_path, "boxes")
    assert_saves_png(drawn(visualize.draw_boxes(image)), tmp_path, "boxes_none")
    assert_saves_png(drawn(visualize.draw_boxes(image, boxes=np.zeros((0, 4)))), tmp_path, "boxes_empty")


def test_display_differences(scene, tmp_path, no_show):
    image, boxes, masks, _ = scene
    pred_boxes = np.array([boxes[1], [0, 0, 8, 10]])  # a hit on gt 1 and a miss
    pred_masks = np.zeros((48, 64, 2), bool)
    pred_masks[..., 0] = masks[..., 1]
    pred_masks[0:8, 0:10, 1] = True
    fig = drawn(visualize.display_differences(image, boxes, np.array([1, 1]), masks, pred_boxes,
                                              np.array([1, 1]), np.array([0.6, 0.8]), pred_masks,
                                              CLASS_NAMES))
    captions = [t.get_text() for t in fig.axes[0].texts]
    # ground truth has empty captions; predictions sorted by score: the miss (0.8) shares
    # 4x4 pixels with gt 0 (16 / (384 + 80 - 16) = 0.036), the hit (0.6) has IoU 1 with gt 1
    assert captions == ["", "", "0.80 / 0.04", "0.60 / 1.00"]
    assert_saves_png(fig, tmp_path, "differences")


def test_display_differences_with_nothing(tmp_path, no_show):
    image = np.zeros((16, 16, 3), np.uint8)
    fig = drawn(visualize.display_differences(image, np.zeros((0, 4)), np.zeros(0, int), None,
                                              np.zeros((0, 4)), np.zeros(0, int), np.zeros(0), None,
                                              CLASS_NAMES))
    assert_saves_png(fig, tmp_path, "differences_empty")


def test_apply_mask_blends_by_hand():
    image = np.full((2, 2, 3), 100, np.uint8)
    mask = np.array([[1, 0], [0, 0]])
    out = visualize.apply_mask(image, mask, (1.0, 0.0, 0.0), alpha=0.5)
    # inside: 100 * 0.5 + 0.5 * 255 = 177.5 -> 177 (red), 100 * 0.5 = 50 (green, blue)
    assert out[0, 0].tolist() == [177, 50, 50]
    assert out[1, 1].tolist() == [100, 100, 100]
    # in place, as matterport's (callers such as display_instances rely on it)
    assert out is image and out.dtype == np.uint8


def test_random_colors():
    colors = visualize.random_colors(5, rng=np.random.default_rng(0))
    assert len(colors) == 5 and len(set(colors)) == 5
    assert all(0 <= c <= 1 for color in colors for c in color)
    assert colors == visualize.random_colors(5, rng=np.random.default_rng(0))
    assert visualize.random_colors(0) == []


def test_show_only_for_own_figure_under_an_interactive_backend(monkeypatch, scene):
    image, boxes, masks, class_ids = scene
    calls = []
    monkeypatch.setattr(plt, "show", lambda: calls.append(1))
    visualize.display_instances(image, boxes, masks, class_ids, CLASS_NAMES)
    assert calls == []  # Agg
    monkeypatch.setattr(visualize, "_is_interactive_backend", lambda: True)
    visualize.display_instances(image, boxes, masks, class_ids, CLASS_NAMES)
    assert calls == [1]
    _, ax = plt.subplots()
    visualize.display_instances(image, boxes, masks, class_ids, CLASS_NAMES, ax=ax)
    assert calls == [1]  # the caller owns that figure

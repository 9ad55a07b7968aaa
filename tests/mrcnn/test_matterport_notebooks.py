"""Acceptance: the calls of matterport's notebooks and of a public RSNA kernel, on our engine.

Each test makes, in order, the calls a notebook makes (read from the notebooks for the facts;
the code here is this project's), with only the imports changed, on small synthetic data, on
CPU, with tiny settings and a few steps instead of the notebooks' paths, step counts and
weight downloads:

* matterport's ``samples/shapes/train_shapes.ipynb``: ShapesConfig / ShapesDataset, training
  the heads then all layers, inference from ``find_last()``, drawing, ``compute_ap``;
* the calls of ``samples/coco/inspect_data.ipynb``, ``inspect_model.ipynb`` and
  ``inspect_weights.ipynb``, on the shapes data;
* the "Mask-RCNN and COCO transfer learning" RSNA kernel on ``rsna-detector synth`` data,
  with ``pydicom`` imported from ``rsna_detector.pydicom_compat``.

Changes beyond the imports, each forced by today's stack and listed in the lead's docs:
``tf.identity(<Keras tensor>)`` in inspect_model is dropped (Keras 3 tensors cannot enter
TensorFlow functions; ``run_graph`` takes the layer output as it is), and ResNet-50's last
stage-4 block is ``res4f_out`` where the notebook, on ResNet-101, reads ``res4w_out``.
"""
import os
import random

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from skimage.draw import disk, polygon  # noqa: E402

# --- the notebooks' imports, changed to the library ---
import rsna_detector.mrcnn.model as modellib  # noqa: E402
from rsna_detector.mrcnn import utils, visualize  # noqa: E402
from rsna_detector.mrcnn.config import Config  # noqa: E402
from rsna_detector.mrcnn.model import log  # noqa: E402
from rsna_detector.mrcnn.visualize import display_images  # noqa: E402


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def get_ax(rows=1, cols=1, size=4):
    _, ax = plt.subplots(rows, cols, figsize=(size * cols, size * rows))
    return ax


# ----------------------------------------------------------------------------
# the shapes sample: config and dataset as train_shapes.ipynb defines them
# ----------------------------------------------------------------------------

class ShapesConfig(Config):
    NAME = "shapes"
    GPU_COUNT = 1
    IMAGES_PER_GPU = 2  # notebook: 8
    NUM_CLASSES = 1 + 3
    IMAGE_MIN_DIM = 64  # notebook: 128
    IMAGE_MAX_DIM = 64
    RPN_ANCHOR_SCALES = (4, 8, 16, 32, 64)  # notebook: (8, ..., 128) for 128-pixel images
    TRAIN_ROIS_PER_IMAGE = 32
    STEPS_PER_EPOCH = 2  # notebook: 100
    VALIDATION_STEPS = 1  # notebook: 5
    BACKBONE = "tiny"  # notebook: the default resnet101; CPU test speed
    POST_NMS_ROIS_TRAINING = 200
    POST_NMS_ROIS_INFERENCE = 100


class ShapesDataset(utils.Dataset):
    """Squares, circles and triangles on a plain background (the sample's dataset)."""

    def load_shapes(self, count, height, width):
        self.add_class("shapes", 1, "square")
        self.add_class("shapes", 2, "circle")
        self.add_class("shapes", 3, "triangle")
        for i in range(count):
            bg_color, shapes = self.random_image(height, width)
            self.add_image("shapes", image_id=i, path=None, width=width, height=height,
                           bg_color=bg_color, shapes=shapes)

    def load_image(self, image_id):
        info = self.image_info[image_id]
        image = np.ones([info["height"], info["width"], 3], dtype=np.uint8)
        image = image * np.array(info["bg_color"], np.uint8).reshape([1, 1, 3])
        for shape, color, dims in info["shapes"]:
            image = self.draw_shape(image, shape, dims, color)
        return image

    def image_reference(self, image_id):
        return self.image_info[image_id]["shapes"]

    def load_mask(self, image_id):
        info = self.image_info[image_id]
        shapes = info["shapes"]
        mask = np.zeros([info["height"], info["width"], len(shapes)], dtype=np.uint8)
        for i, (shape, _, dims) in enumerate(shapes):
            mask[:, :, i:i + 1] = self.draw_shape(mask[:, :, i:i + 1].copy(), shape, dims, 1)
        occlusion = np.logical_not(mask[:, :, -1]).astype(np.uint8)  # later shapes lie on top
        for i in range(len(shapes) - 2, -1, -1):
            mask[:, :, i] = mask[:, :, i] * occlusion
            occlusion = np.logical_and(occlusion, np.logical_not(mask[:, :, i]))
        class_ids = np.array([self.class_names.index(s[0]) for s in shapes])
        return mask.astype(bool), class_ids.astype(np.int32)

    @staticmethod
    def draw_shape(image, shape, dims, color):
        x, y, s = dims
        shape_hw = image.shape[:2]
        if shape == "square":
            image[max(y - s, 0):y + s, max(x - s, 0):x + s] = color
        elif shape == "circle":
            image[disk((y, x), s, shape=shape_hw)] = color
        else:
            rows = [y - s, y + s * 0.5, y + s * 0.5]
            cols = [x, x - s / 0.866, x + s / 0.866]
            image[polygon(rows, cols, shape=shape_hw)] = color
        return image

    @staticmethod
    def random_shape(height, width):
        shape = random.choice(["square", "circle", "triangle"])
        color = tuple(random.randint(0, 255) for _ in range(3))
        buffer = 8
        y = random.randint(buffer, height - buffer - 1)
        x = random.randint(buffer, width - buffer - 1)
        s = random.randint(buffer, height // 4)
        return shape, color, (x, y, s)

    def random_image(self, height, width):
        bg_color = np.array([random.randint(0, 255) for _ in range(3)])
        shapes, boxes = [], []
        for _ in range(random.randint(1, 3)):
            shape, color, dims = self.random_shape(height, width)
            shapes.append((shape, color, dims))
            x, y, s = dims
            boxes.append([y - s, x - s, y + s, x + s])
        keep = utils.non_max_suppression(np.array(boxes), np.arange(len(boxes)), 0.3)
        return bg_color, [s for i, s in enumerate(shapes) if i in keep]


def _shapes(count, config, seed):
    random.seed(seed)
    dataset = ShapesDataset()
    dataset.load_shapes(count, config.IMAGE_SHAPE[0], config.IMAGE_SHAPE[1])
    dataset.prepare()
    return dataset


# ----------------------------------------------------------------------------
# train_shapes.ipynb
# ----------------------------------------------------------------------------

@pytest.mark.slow  # two training runs and a new inference model: about a minute on 2 cores
def test_train_shapes_notebook(tmp_path, capsys):
    MODEL_DIR = str(tmp_path / "logs")
    config = ShapesConfig()
    config.display()
    dataset_train = _shapes(12, config, seed=1)
    dataset_val = _shapes(4, config, seed=2)

    image_ids = np.random.choice(dataset_train.image_ids, 4)
    for image_id in image_ids:
        image = dataset_train.load_image(image_id)
        mask, class_ids = dataset_train.load_mask(image_id)
        visualize.display_top_masks(image, mask, class_ids, dataset_train.class_names)

    model = modellib.MaskRCNN(mode="training", config=config, model_dir=MODEL_DIR)
    # init_with = "coco" / "imagenet" need the downloads; random initial weights here.
    model.train(dataset_train, dataset_val, learning_rate=config.LEARNING_RATE, epochs=1, layers="heads")
    model.train(dataset_train, dataset_val, learning_rate=config.LEARNING_RATE / 10, epochs=2, layers="all")

    class InferenceConfig(ShapesConfig):
        GPU_COUNT = 1
        IMAGES_PER_GPU = 1

    inference_config = InferenceConfig()
    model = modellib.MaskRCNN(mode="inference", config=inference_config, model_dir=MODEL_DIR)
    model_path = model.find_last()
    assert model_path.endswith("mask_rcnn_shapes_0002.h5")
    print("Loading weights from ", model_path)
    model.load_weights(model_path, by_name=True)

    image_id = random.choice(dataset_val.image_ids)
    original_image, image_meta, gt_class_id, gt_bbox, gt_mask = \
        modellib.load_image_gt(dataset_val, inference_config, image_id, use_mini_mask=False)
    log("original_image", original_image)
    log("image_meta", image_meta)
    log("gt_class_id", gt_class_id)
    log("gt_bbox", gt_bbox)
    log("gt_mask", gt_mask)
    assert gt_mask.shape[:2] == original_image.shape[:2]  # use_mini_mask=False: full-size masks
    visualize.display_instances(original_image, gt_bbox, gt_mask, gt_class_id, dataset_train.class_names,
                                figsize=(8, 8))
    results = model.detect([original_image], verbose=1)
    r = results[0]
    visualize.display_instances(original_image, r["rois"], r["masks"], r["class_ids"], dataset_val.class_names,
                                r["scores"], ax=get_ax())

    APs = []
    for image_id in np.random.choice(dataset_val.image_ids, 3):
        image, image_meta, gt_class_id, gt_bbox, gt_mask = \
            modellib.load_image_gt(dataset_val, inference_config, image_id, use_mini_mask=False)
        molded_images = np.expand_dims(modellib.mold_image(image, inference_config), 0)
        assert molded_images.shape == (1, 64, 64, 3)
        r = model.detect([image], verbose=0)[0]
        AP, precisions, recalls, overlaps = utils.compute_ap(gt_bbox, gt_class_id, gt_mask, r["rois"],
                                                             r["class_ids"], r["scores"], r["masks"])
        APs.append(AP)
    print("mAP: ", np.mean(APs))
    out = capsys.readouterr().out
    assert "Configurations:" in out and "Processing 1 images" in out and "mAP: " in out
    assert len(APs) == 3


# ----------------------------------------------------------------------------
# inspect_data.ipynb
# ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def shapes_data():
    config = ShapesConfig()
    return config, _shapes(6, config, seed=5)


def test_inspect_data_notebook_dataset_and_masks(shapes_data, capsys):
    config, dataset = shapes_data
    print("Image Count: {}".format(len(dataset.image_ids)))
    print("Class Count: {}".format(dataset.num_classes))
    for i, info in enumerate(dataset.class_info):
        print("{:3}. {:50}".format(i, info["name"]))

    for image_id in np.random.choice(dataset.image_ids, 4):
        image = dataset.load_image(image_id)
        mask, class_ids = dataset.load_mask(image_id)
        visualize.display_top_masks(image, mask, class_ids, dataset.class_names)

    image_id = random.choice(dataset.image_ids)
    image = dataset.load_image(image_id)
    mask, class_ids = dataset.load_mask(image_id)
    bbox = utils.extract_bboxes(mask)
    print("image_id ", image_id, dataset.image_reference(image_id))
    log("image", image)
    log("mask", mask)
    log("class_ids", class_ids)
    log("bbox", bbox)
    visualize.display_instances(image, bbox, mask, class_ids, dataset.class_names)

    # resize (the notebook's "Resize Images" cell)
    original_shape = image.shape
    image, window, scale, padding, _ = utils.resize_image(
        image, min_dim=config.IMAGE_MIN_DIM, max_dim=config.IMAGE_MAX_DIM, mode=config.IMAGE_RESIZE_MODE)
    mask = utils.resize_mask(mask, scale, padding)
    bbox = utils.extract_bboxes(mask)
    print("Original shape: ", original_shape)
    visualize.display_instances(image, bbox, mask, class_ids, dataset.class_names)

    # mini masks
    image, image_meta, class_ids, bbox, mask = modellib.load_image_gt(dataset, config, image_id,
                                                                      use_mini_mask=False)
    display_images([image] + [mask[:, :, i] for i in range(min(mask.shape[-1], 7))])
    visualize.display_instances(image, bbox, mask, class_ids, dataset.class_names)
    mask = utils.minimize_mask(bbox, mask, config.MINI_MASK_SHAPE)
    display_images([image] + [mask[:, :, i] for i in range(min(mask.shape[-1], 7))])
    mask = utils.expand_mask(bbox, mask, image.shape)
    visualize.display_instances(image, bbox, mask, class_ids, dataset.class_names)
    out = capsys.readouterr().out
    assert "Class Count: 4" in out and "  1. square" in out


def test_inspect_data_notebook_anchors(shapes_data, capsys):
    config, dataset = shapes_data
    backbone_shapes = modellib.compute_backbone_shapes(config, config.IMAGE_SHAPE)
    anchors = utils.generate_pyramid_anchors(config.RPN_ANCHOR_SCALES, config.RPN_ANCHOR_RATIOS, backbone_shapes,
                                             config.BACKBONE_STRIDES, config.RPN_ANCHOR_STRIDE)
    num_levels = len(backbone_shapes)
    anchors_per_cell = len(config.RPN_ANCHOR_RATIOS)
    anchors_per_level = []
    for level in range(num_levels):
        num_cells = backbone_shapes[level][0] * backbone_shapes[level][1]
        anchors_per_level.append(anchors_per_cell * num_cells // config.RPN_ANCHOR_STRIDE ** 2)
    assert sum(anchors_per_level) == anchors.shape[0]
    image_id = np.random.choice(dataset.image_ids, 1)[0]
    image, image_meta, _, _, _ = modellib.load_image_gt(dataset, config, image_id)
    _, ax = plt.subplots(1, figsize=(10, 10))
    ax.imshow(image)
    for level in range(num_levels):
        colors = visualize.random_colors(num_levels)
        level_start = sum(anchors_per_level[:level])
        level_anchors = anchors[level_start:level_start + anchors_per_level[level]]
        center_cell = backbone_shapes[level] // 2
        center_anchor = anchors_per_cell * ((center_cell[0] * backbone_shapes[level][1] / config.RPN_ANCHOR_STRIDE ** 2)
                                            + center_cell[1] / config.RPN_ANCHOR_STRIDE)
        level_center = int(center_anchor)
        for i, rect in enumerate(level_anchors[level_center:level_center + anchors_per_cell]):
            y1, x1, y2, x2 = rect
            ax.add_patch(matplotlib.patches.Rectangle((x1, y1), x2 - x1, y2 - y1, facecolor="none",
                                                      edgecolor=(i + 1) * np.array(colors[level]) / anchors_per_cell))


def test_inspect_data_notebook_data_generator_with_random_rois(shapes_data, capsys):
    config, dataset = shapes_data
    random_rois = 200
    g = modellib.data_generator(dataset, config, shuffle=True, random_rois=random_rois, batch_size=2,
                                detection_targets=True)
    [normalized_images, image_meta, rpn_match, rpn_bbox, gt_class_ids, gt_boxes, gt_masks, rpn_rois, rois], \
        [mrcnn_class_ids, mrcnn_bbox, mrcnn_mask] = next(g)
    log("rois", rois)
    log("mrcnn_class_ids", mrcnn_class_ids)
    image_id = modellib.parse_image_meta(image_meta)["image_id"][0]
    print("image_id: ", image_id, dataset.image_reference(image_id))
    mrcnn_class_ids = mrcnn_class_ids[:, :, 0]
    b = 0
    sample_image = modellib.unmold_image(normalized_images[b], config)
    backbone_shapes = modellib.compute_backbone_shapes(config, config.IMAGE_SHAPE)
    anchors = utils.generate_pyramid_anchors(config.RPN_ANCHOR_SCALES, config.RPN_ANCHOR_RATIOS, backbone_shapes,
                                             config.BACKBONE_STRIDES, config.RPN_ANCHOR_STRIDE)
    indices = np.where(rpn_match[b] == 1)[0]
    refined_anchors = utils.apply_box_deltas(anchors[indices], rpn_bbox[b, :len(indices)] * config.RPN_BBOX_STD_DEV)
    positive_anchor_ids = np.where(rpn_match[b] == 1)[0]
    visualize.draw_boxes(sample_image, boxes=anchors[positive_anchor_ids], refined_boxes=refined_anchors,
                         ax=get_ax())
    bbox_specific = mrcnn_bbox[b, np.arange(mrcnn_bbox.shape[1]), mrcnn_class_ids[b], :]
    refined_rois = utils.apply_box_deltas(rois[b].astype(np.float32), bbox_specific[:, :4] * config.BBOX_STD_DEV)
    mask_specific = mrcnn_mask[b, np.arange(mrcnn_mask.shape[1]), :, :, mrcnn_class_ids[b]]
    visualize.draw_rois(sample_image, rois[b], refined_rois, mask_specific, mrcnn_class_ids[b], dataset.class_names)
    images, titles = [], []
    for i in random.sample(range(rois.shape[1]), 4):
        image = visualize.draw_box(sample_image.copy(), rois[b, i, :4].astype(np.int32), [255, 0, 0])
        image = visualize.draw_box(image, refined_rois[i].astype(np.int64), [0, 255, 0])
        images.append(image)
        titles.append("ROI {}".format(i))
        images.append(mask_specific[i] * 255)
        titles.append(mrcnn_class_ids[b, i])
    display_images(images[:8], titles=titles[:8], cols=4, cmap="Blues", interpolation="none")


# ----------------------------------------------------------------------------
# inspect_model.ipynb and inspect_weights.ipynb
# ----------------------------------------------------------------------------

class InspectShapesConfig(ShapesConfig):
    BACKBONE = "resnet50"  # the notebooks read res2c_out, res3c_out, res4*_out
    IMAGE_MIN_DIM = IMAGE_MAX_DIM = 128
    RPN_ANCHOR_SCALES = (8, 16, 32, 64, 128)
    GPU_COUNT = 1
    IMAGES_PER_GPU = 1
    PRE_NMS_LIMIT = 1000
    DETECTION_MIN_CONFIDENCE = 0.0  # random weights: keep whatever is found


@pytest.fixture(scope="module")
def inspected(tmp_path_factory):
    config = InspectShapesConfig()
    config.display()
    dataset = _shapes(6, config, seed=9)
    model = modellib.MaskRCNN(mode="inference", model_dir=str(tmp_path_factory.mktemp("logs")), config=config)
    weights_path = str(tmp_path_factory.mktemp("w") / "mask_rcnn_shapes.h5")
    model.save_weights(weights_path)  # stands in for the downloaded COCO file
    model.load_weights(weights_path, by_name=True)
    # random weights call everything background; favour class 1 so that the cells see detections
    logits = model.keras_model.get_layer("mrcnn_class_logits")
    logits.set_weights([logits.get_weights()[0] * 0.01, np.array([0.0, 4.0, 0.0, 0.0], np.float32)])
    return config, dataset, model


def test_inspect_model_notebook_detection_and_precision(inspected, capsys):
    config, dataset, model = inspected
    image_id = random.choice(dataset.image_ids)
    image, image_meta, gt_class_id, gt_bbox, gt_mask = \
        modellib.load_image_gt(dataset, config, image_id, use_mini_mask=False)
    info = dataset.image_info[image_id]
    print("image ID: {}.{} ({}) {}".format(info["source"], info["id"], image_id, dataset.image_reference(image_id)))
    results = model.detect([image], verbose=1)
    ax = get_ax(1)
    r = results[0]
    visualize.display_instances(image, r["rois"], r["masks"], r["class_ids"], dataset.class_names, r["scores"],
                                ax=ax, title="Predictions")
    log("gt_class_id", gt_class_id)
    log("gt_bbox", gt_bbox)
    log("gt_mask", gt_mask)
    AP, precisions, recalls, overlaps = utils.compute_ap(gt_bbox, gt_class_id, gt_mask, r["rois"], r["class_ids"],
                                                         r["scores"], r["masks"])
    visualize.plot_precision_recall(AP, precisions, recalls)
    visualize.plot_overlaps(gt_class_id, r["class_ids"], r["scores"], overlaps, dataset.class_names)

    def compute_batch_ap(image_ids):
        APs = []
        for image_id in image_ids:
            image, image_meta, gt_class_id, gt_bbox, gt_mask = \
                modellib.load_image_gt(dataset, config, image_id, use_mini_mask=False)
            r = model.detect([image], verbose=0)[0]
            AP, precisions, recalls, overlaps = utils.compute_ap(gt_bbox, gt_class_id, gt_mask, r["rois"],
                                                                 r["class_ids"], r["scores"], r["masks"])
            APs.append(AP)
        return APs

    APs = compute_batch_ap(np.random.choice(dataset.image_ids, 2))
    print("mAP @ IoU=50: ", np.mean(APs))
    assert len(r["rois"]) > 0 and "mAP @ IoU=50" in capsys.readouterr().out


def test_inspect_model_notebook_rpn_targets(inspected):
    config, dataset, model = inspected
    image, image_meta, gt_class_id, gt_bbox, gt_mask = \
        modellib.load_image_gt(dataset, config, dataset.image_ids[0], use_mini_mask=False)
    model.get_anchors(image.shape)
    target_rpn_match, target_rpn_bbox = modellib.build_rpn_targets(image.shape, model.anchors, gt_class_id,
                                                                   gt_bbox, model.config)
    positive_anchor_ix = np.where(target_rpn_match[:] == 1)[0]
    positive_anchors = model.anchors[positive_anchor_ix]
    refined_anchors = utils.apply_box_deltas(positive_anchors,
                                             target_rpn_bbox[:positive_anchors.shape[0]] * model.config.RPN_BBOX_STD_DEV)
    visualize.draw_boxes(image, boxes=positive_anchors, refined_boxes=refined_anchors, ax=get_ax())


def test_inspect_model_notebook_step_by_step(inspected, capsys):
    config, dataset, model = inspected
    image, image_meta, gt_class_id, gt_bbox, gt_mask = \
        modellib.load_image_gt(dataset, config, dataset.image_ids[1], use_mini_mask=False)
    model.get_anchors(image.shape)  # detect() sets model.anchors in the notebook

    # Stage 1: RPN
    pillar = model.keras_model.get_layer("ROI").output
    nms_node = model.ancestor(pillar, "ROI/rpn_non_max_suppression:0")
    if nms_node is None:
        nms_node = model.ancestor(pillar, "ROI/rpn_non_max_suppression/NonMaxSuppressionV2:0")
    if nms_node is None:
        nms_node = model.ancestor(pillar, "ROI/rpn_non_max_suppression/NonMaxSuppressionV3:0")
    rpn = model.run_graph([image], [
        ("rpn_class", model.keras_model.get_layer("rpn_class").output),
        ("pre_nms_anchors", model.ancestor(pillar, "ROI/pre_nms_anchors:0")),
        ("refined_anchors", model.ancestor(pillar, "ROI/refined_anchors:0")),
        ("refined_anchors_clipped", model.ancestor(pillar, "ROI/refined_anchors_clipped:0")),
        ("post_nms_anchor_ix", nms_node),
        ("proposals", model.keras_model.get_layer("ROI").output),
    ])
    limit = 20
    sorted_anchor_ids = np.argsort(rpn["rpn_class"][:, :, 1].flatten())[::-1]
    visualize.draw_boxes(image, boxes=model.anchors[sorted_anchor_ids[:limit]], ax=get_ax())
    ax = get_ax(1, 2)
    pre_nms_anchors = utils.denorm_boxes(rpn["pre_nms_anchors"][0], image.shape[:2])
    refined_anchors = utils.denorm_boxes(rpn["refined_anchors"][0], image.shape[:2])
    refined_anchors_clipped = utils.denorm_boxes(rpn["refined_anchors_clipped"][0], image.shape[:2])
    visualize.draw_boxes(image, boxes=pre_nms_anchors[:limit], refined_boxes=refined_anchors[:limit], ax=ax[0])
    visualize.draw_boxes(image, refined_boxes=refined_anchors_clipped[:limit], ax=ax[1])
    ixs = rpn["post_nms_anchor_ix"][:limit]
    visualize.draw_boxes(image, refined_boxes=refined_anchors_clipped[ixs], ax=get_ax())
    h, w = config.IMAGE_SHAPE[:2]
    proposals = rpn["proposals"][0, :limit] * np.array([h, w, h, w])
    visualize.draw_boxes(image, refined_boxes=proposals, ax=get_ax())
    iou_threshold = 0.7
    recall, positive_anchor_ids = utils.compute_recall(model.anchors, gt_bbox, iou_threshold)
    print("All Anchors ({:5})       Recall: {:.3f}  Positive anchors: {}".format(
        model.anchors.shape[0], recall, len(positive_anchor_ids)))
    recall, positive_anchor_ids = utils.compute_recall(rpn["refined_anchors"][0], gt_bbox, iou_threshold)
    recall, positive_anchor_ids = utils.compute_recall(proposals, gt_bbox, iou_threshold)

    # Stage 2: proposal classification
    mrcnn = model.run_graph([image], [
        ("proposals", model.keras_model.get_layer("ROI").output),
        ("probs", model.keras_model.get_layer("mrcnn_class").output),
        ("deltas", model.keras_model.get_layer("mrcnn_bbox").output),
        ("masks", model.keras_model.get_layer("mrcnn_mask").output),
        ("detections", model.keras_model.get_layer("mrcnn_detection").output),
    ])
    det_class_ids = mrcnn["detections"][0, :, 4].astype(np.int32)
    det_count = np.where(det_class_ids == 0)[0][0]
    det_class_ids = det_class_ids[:det_count]
    detections = mrcnn["detections"][0, :det_count]
    print("{} detections: {}".format(det_count, np.array(dataset.class_names)[det_class_ids]))
    captions = ["{} {:.3f}".format(dataset.class_names[int(c)], s) if c > 0 else ""
                for c, s in zip(detections[:, 4], detections[:, 5])]
    visualize.draw_boxes(image, refined_boxes=utils.denorm_boxes(detections[:, :4], image.shape[:2]),
                         visibilities=[2] * len(detections), captions=captions, title="Detections", ax=get_ax())
    proposals = np.around(mrcnn["proposals"][0] * np.array([h, w, h, w])).astype(np.int32)
    roi_class_ids = np.argmax(mrcnn["probs"][0], axis=1)
    roi_scores = mrcnn["probs"][0, np.arange(roi_class_ids.shape[0]), roi_class_ids]
    roi_class_names = np.array(dataset.class_names)[roi_class_ids]
    roi_positive_ixs = np.where(roi_class_ids > 0)[0]
    print("{} Valid proposals out of {}".format(np.sum(np.any(proposals, axis=1)), proposals.shape[0]))
    print(list(zip(*np.unique(roi_class_names, return_counts=True))))
    ixs = np.random.randint(0, proposals.shape[0], limit)
    captions = ["{} {:.3f}".format(dataset.class_names[c], s) if c > 0 else ""
                for c, s in zip(roi_class_ids[ixs], roi_scores[ixs])]
    visualize.draw_boxes(image, boxes=proposals[ixs], visibilities=np.where(roi_class_ids[ixs] > 0, 2, 1),
                         captions=captions, title="ROIs Before Refinement", ax=get_ax())
    roi_bbox_specific = mrcnn["deltas"][0, np.arange(proposals.shape[0]), roi_class_ids]
    log("roi_bbox_specific", roi_bbox_specific)
    refined_proposals = utils.apply_box_deltas(proposals, roi_bbox_specific * config.BBOX_STD_DEV).astype(np.int32)
    ids = np.random.randint(0, len(roi_positive_ixs), 5)
    visualize.draw_boxes(image, boxes=proposals[roi_positive_ixs][ids],
                         refined_boxes=refined_proposals[roi_positive_ixs][ids],
                         visibilities=np.where(roi_class_ids[roi_positive_ixs][ids] > 0, 1, 0), ax=get_ax())
    keep = np.where(roi_class_ids > 0)[0]
    keep = np.intersect1d(keep, np.where(roi_scores >= config.DETECTION_MIN_CONFIDENCE)[0])
    pre_nms_boxes, pre_nms_scores = refined_proposals[keep], roi_scores[keep]
    pre_nms_class_ids = roi_class_ids[keep]
    nms_keep = []
    for class_id in np.unique(pre_nms_class_ids):
        ixs = np.where(pre_nms_class_ids == class_id)[0]
        class_keep = utils.non_max_suppression(pre_nms_boxes[ixs], pre_nms_scores[ixs],
                                               config.DETECTION_NMS_THRESHOLD)
        nms_keep = np.union1d(nms_keep, keep[ixs[class_keep]])
    keep = np.intersect1d(keep, nms_keep).astype(np.int32)
    print("\nKept after per-class NMS: {}\n{}".format(keep.shape[0], keep))

    # Stage 3: masks
    display_images(np.transpose(gt_mask, [2, 0, 1]), cmap="Blues")
    mrcnn = model.run_graph([image], [
        ("detections", model.keras_model.get_layer("mrcnn_detection").output),
        ("masks", model.keras_model.get_layer("mrcnn_mask").output),
    ])
    det_class_ids = mrcnn["detections"][0, :, 4].astype(np.int32)
    det_count = np.where(det_class_ids == 0)[0][0]
    det_class_ids = det_class_ids[:det_count]
    det_boxes = utils.denorm_boxes(mrcnn["detections"][0, :, :4], image.shape[:2])
    det_mask_specific = np.array([mrcnn["masks"][0, i, :, :, c] for i, c in enumerate(det_class_ids)])
    det_masks = np.array([utils.unmold_mask(m, det_boxes[i], image.shape) for i, m in enumerate(det_mask_specific)])
    log("det_mask_specific", det_mask_specific)
    log("det_masks", det_masks)
    display_images(det_mask_specific[:4] * 255, cmap="Blues", interpolation="none")
    display_images(det_masks[:4] * 255, cmap="Blues", interpolation="none")
    assert det_count > 0 and det_mask_specific.shape == (det_count, 28, 28)
    assert det_masks.shape == (det_count,) + image.shape[:2]

    # Activations (``tf.identity(...)`` around the input layer's output dropped: Keras 3)
    activations = model.run_graph([image], [
        ("input_image", model.keras_model.get_layer("input_image").output),
        ("res2c_out", model.keras_model.get_layer("res2c_out").output),
        ("res3c_out", model.keras_model.get_layer("res3c_out").output),
        ("res4f_out", model.keras_model.get_layer("res4f_out").output),  # notebook, resnet101: res4w_out
        ("rpn_bbox", model.keras_model.get_layer("rpn_bbox").output),
        ("roi", model.keras_model.get_layer("ROI").output),
    ])
    display_images(np.transpose(activations["res2c_out"][0, :, :, :4], [2, 0, 1]))
    plt.figure(figsize=(12, 3))
    for i, title in enumerate(["dy", "dx", "dw", "dh"]):
        plt.subplot(1, 4, i + 1)
        plt.title(title)
        plt.hist(activations["rpn_bbox"][0, :, i], 50)
    plt.figure(figsize=(10, 5))
    plt.subplot(1, 2, 1)
    plt.scatter(activations["roi"][0, :, 0], activations["roi"][0, :, 1])
    assert activations["input_image"].shape == (1, 128, 128, 3)
    assert "detections:" in capsys.readouterr().out


def test_inspect_model_notebook_unmold_input_image(inspected):
    config, dataset, model = inspected
    image = dataset.load_image(dataset.image_ids[0])
    activations = model.run_graph([image], [("input_image", model.keras_model.get_layer("input_image").output)])
    plt.imshow(modellib.unmold_image(activations["input_image"][0], config))


def test_inspect_weights_notebook(inspected, capsys):
    config, dataset, model = inspected
    visualize.display_weight_stats(model)
    LAYER_TYPES = ["Conv2D", "Dense", "Conv2DTranspose"]
    layers = model.get_trainable_layers()
    layers = list(filter(lambda layer: layer.__class__.__name__ in LAYER_TYPES, layers))[:6]
    _, ax = plt.subplots(len(layers), 2, figsize=(10, 3 * len(layers)), gridspec_kw={"hspace": 1})
    for index, layer in enumerate(layers):
        weights = layer.get_weights()
        for w, weight in enumerate(weights):
            tensor = layer.weights[w]
            ax[index, w].set_title(tensor.name)
            ax[index, w].hist(weight[w].flatten(), 50)
    out = capsys.readouterr().out
    assert "WEIGHT NAME" in out and "res2a_branch2a/kernel" in out and "mrcnn_mask/kernel" in out


# ----------------------------------------------------------------------------
# the RSNA kernel "Mask-RCNN and COCO transfer learning" on synthetic data
# ----------------------------------------------------------------------------

@pytest.mark.slow  # two training runs with augmentation and a submission: about a minute on 2 cores
def test_rsna_transfer_learning_kernel(tmp_path, capsys):
    import glob

    import pandas as pd
    from imgaug import augmenters as iaa

    from rsna_detector import pydicom_compat as pydicom
    from rsna_detector.data.synthetic import make_synthetic_dataset

    DATA_DIR = str(tmp_path / "input")
    ROOT_DIR = str(tmp_path / "working")
    os.makedirs(ROOT_DIR)
    # seed 6: the 4 validation images below hold 2 positives. A matterport Config skips images
    # without objects (TRAIN_ON_EMPTY_IMAGES False), so an all-negative validation set has nothing
    # to validate: matterport's generator loops forever there, ours raises DataPipelineError.
    make_synthetic_dataset(DATA_DIR, n_train=16, n_test=3, image_size=128, seed=6, workers=1, progress=False)
    train_dicom_dir = os.path.join(DATA_DIR, "stage_2_train_images")
    test_dicom_dir = os.path.join(DATA_DIR, "stage_2_test_images")

    def get_dicom_fps(dicom_dir):
        return list(set(glob.glob(dicom_dir + "/" + "*.dcm")))

    def parse_dataset(dicom_dir, anns):
        image_fps = get_dicom_fps(dicom_dir)
        image_annotations = {fp: [] for fp in image_fps}
        for _, row in anns.iterrows():
            image_annotations[os.path.join(dicom_dir, row["patientId"] + ".dcm")].append(row)
        return image_fps, image_annotations

    class DetectorConfig(Config):
        NAME = "pneumonia"
        GPU_COUNT = 1
        IMAGES_PER_GPU = 2  # kernel: 8
        BACKBONE = "tiny"  # kernel: resnet50
        NUM_CLASSES = 2
        IMAGE_MIN_DIM = 64  # kernel: 256
        IMAGE_MAX_DIM = 64
        RPN_ANCHOR_SCALES = (4, 8, 16, 32)  # kernel: (16, 32, 64, 128) at 256 pixels
        TRAIN_ROIS_PER_IMAGE = 32
        MAX_GT_INSTANCES = 4
        DETECTION_MAX_INSTANCES = 3
        DETECTION_MIN_CONFIDENCE = 0.78
        DETECTION_NMS_THRESHOLD = 0.01
        STEPS_PER_EPOCH = 2  # kernel: 200
        VALIDATION_STEPS = 1

    config = DetectorConfig()
    config.display()

    class DetectorDataset(utils.Dataset):
        def __init__(self, image_fps, image_annotations, orig_height, orig_width):
            super().__init__(self)
            self.add_class("pneumonia", 1, "Lung Opacity")
            for i, fp in enumerate(image_fps):
                self.add_image("pneumonia", image_id=i, path=fp, annotations=image_annotations[fp],
                               orig_height=orig_height, orig_width=orig_width)

        def image_reference(self, image_id):
            return self.image_info[image_id]["path"]

        def load_image(self, image_id):
            ds = pydicom.read_file(self.image_info[image_id]["path"])
            image = ds.pixel_array
            if len(image.shape) != 3 or image.shape[2] != 3:
                image = np.stack((image,) * 3, -1)
            return image

        def load_mask(self, image_id):
            info = self.image_info[image_id]
            annotations = info["annotations"]
            count = len(annotations)
            if count == 0:
                mask = np.zeros((info["orig_height"], info["orig_width"], 1), dtype=np.uint8)
                class_ids = np.zeros((1,), dtype=np.int32)
            else:
                mask = np.zeros((info["orig_height"], info["orig_width"], count), dtype=np.uint8)
                class_ids = np.zeros((count,), dtype=np.int32)
                for i, a in enumerate(annotations):
                    if a["Target"] == 1:
                        x, y, w, h = int(a["x"]), int(a["y"]), int(a["width"]), int(a["height"])
                        mask[y:y + h + 1, x:x + w + 1, i] = 255  # cv2.rectangle(..., -1) fills both ends
                        class_ids[i] = 1
            return mask.astype(bool), class_ids.astype(np.int32)

    anns = pd.read_csv(os.path.join(DATA_DIR, "stage_2_train_labels.csv"))
    image_fps, image_annotations = parse_dataset(train_dicom_dir, anns=anns)
    ds = pydicom.read_file(image_fps[0])
    ORIG_SIZE = ds.pixel_array.shape[0]
    image_fps_list = sorted(image_fps)
    random.seed(42)
    random.shuffle(image_fps_list)
    val_size = 4
    image_fps_val, image_fps_train = image_fps_list[:val_size], image_fps_list[val_size:]
    dataset_train = DetectorDataset(image_fps_train, image_annotations, ORIG_SIZE, ORIG_SIZE)
    dataset_train.prepare()
    dataset_val = DetectorDataset(image_fps_val, image_annotations, ORIG_SIZE, ORIG_SIZE)
    dataset_val.prepare()

    class_ids = [0]
    while class_ids[0] == 0:  # a positive sample
        image_id = random.choice(dataset_train.image_ids)
        image = dataset_train.load_image(image_id)
        mask, class_ids = dataset_train.load_mask(image_id)
    masked = np.zeros(image.shape[:2])
    for i in range(mask.shape[2]):
        masked += image[:, :, 0] * mask[:, :, i]
    plt.imshow(masked, cmap="gray")

    model = modellib.MaskRCNN(mode="training", config=config, model_dir=ROOT_DIR)
    # the kernel loads COCO weights here (exclude=the four class-specific head layers)
    augmentation = iaa.Sequential([
        iaa.OneOf([iaa.Affine(scale={"x": (0.98, 1.02), "y": (0.98, 1.04)},
                              translate_percent={"x": (-0.02, 0.02), "y": (-0.04, 0.04)},
                              rotate=(-2, 2), shear=(-1, 1)),
                   iaa.PiecewiseAffine(scale=(0.001, 0.025))]),
        iaa.OneOf([iaa.Multiply((0.9, 1.1)), iaa.ContrastNormalization((0.9, 1.1))]),
        iaa.OneOf([iaa.GaussianBlur(sigma=(0.0, 0.1)), iaa.Sharpen(alpha=(0.0, 0.1))]),
    ])
    imggrid = augmentation.draw_grid(image[:, :, 0], cols=5, rows=2)
    plt.imshow(imggrid[:, :, 0], cmap="gray")

    LEARNING_RATE = 0.006
    model.train(dataset_train, dataset_val, learning_rate=LEARNING_RATE * 2, epochs=1, layers="heads",
                augmentation=None)
    history = model.keras_model.history.history.copy()
    model.train(dataset_train, dataset_val, learning_rate=LEARNING_RATE, epochs=2, layers="all",
                augmentation=augmentation)
    new_history = model.keras_model.history.history
    for k in new_history:
        history[k] = history[k] + new_history[k]
    epochs = range(1, len(next(iter(history.values()))) + 1)
    pd.DataFrame(history, index=epochs)
    for key in ("loss", "val_loss", "mrcnn_class_loss", "val_mrcnn_class_loss", "mrcnn_bbox_loss",
                "val_mrcnn_bbox_loss"):
        assert len(history[key]) == 2, key
    best_epoch = np.argmin(history["val_loss"])

    dir_names = next(os.walk(model.model_dir))[1]
    key = config.NAME.lower()
    dir_names = sorted(filter(lambda f: f.startswith(key), dir_names))
    fps = []
    for d in dir_names:
        dir_name = os.path.join(model.model_dir, d)
        checkpoints = sorted(filter(lambda f: f.startswith("mask_rcnn"), next(os.walk(dir_name))[2]))
        if checkpoints:
            fps.append(os.path.join(dir_name, checkpoints[best_epoch]))
    model_path = sorted(fps)[-1]
    assert model_path.endswith(f"mask_rcnn_pneumonia_{best_epoch + 1:04d}.h5")

    class InferenceConfig(DetectorConfig):
        GPU_COUNT = 1
        IMAGES_PER_GPU = 1

    inference_config = InferenceConfig()
    model = modellib.MaskRCNN(mode="inference", config=inference_config, model_dir=ROOT_DIR)
    model.load_weights(model_path, by_name=True)

    def get_colors_for_class_ids(class_ids):
        return [(.941, .204, .204) for class_id in class_ids if class_id == 1]

    fig = plt.figure(figsize=(10, 10))
    for i in range(2):
        image_id = random.choice(dataset_val.image_ids)
        original_image, image_meta, gt_class_id, gt_bbox, gt_mask = \
            modellib.load_image_gt(dataset_val, inference_config, image_id, use_mini_mask=False)
        plt.subplot(2, 2, 2 * i + 1)
        visualize.display_instances(original_image, gt_bbox, gt_mask, gt_class_id, dataset_val.class_names,
                                    colors=get_colors_for_class_ids(gt_class_id), ax=fig.axes[-1])
        plt.subplot(2, 2, 2 * i + 2)
        r = model.detect([original_image])[0]
        visualize.display_instances(original_image, r["rois"], r["masks"], r["class_ids"], dataset_val.class_names,
                                    r["scores"], colors=get_colors_for_class_ids(r["class_ids"]), ax=fig.axes[-1])

    def predict(image_fps, filepath, min_conf=0.95):
        resize_factor = ORIG_SIZE / config.IMAGE_SHAPE[0]
        with open(filepath, "w") as file:
            file.write("patientId,PredictionString\n")
            for image_id in image_fps:
                image = pydicom.read_file(image_id).pixel_array
                if len(image.shape) != 3 or image.shape[2] != 3:
                    image = np.stack((image,) * 3, -1)
                image, window, scale, padding, crop = utils.resize_image(
                    image, min_dim=config.IMAGE_MIN_DIM, min_scale=config.IMAGE_MIN_SCALE,
                    max_dim=config.IMAGE_MAX_DIM, mode=config.IMAGE_RESIZE_MODE)
                patient_id = os.path.splitext(os.path.basename(image_id))[0]
                r = model.detect([image])[0]
                out_str = patient_id + ","
                assert len(r["rois"]) == len(r["class_ids"]) == len(r["scores"])
                for i in range(len(r["rois"])):
                    if r["scores"][i] > min_conf:
                        x1, y1 = r["rois"][i][1], r["rois"][i][0]
                        width, height = r["rois"][i][3] - x1, r["rois"][i][2] - y1
                        out_str += " {} {} {} {} {}".format(round(r["scores"][i], 2), x1 * resize_factor,
                                                            y1 * resize_factor, width * resize_factor,
                                                            height * resize_factor)
                file.write(out_str + "\n")

    submission_fp = os.path.join(ROOT_DIR, "submission.csv")
    predict(get_dicom_fps(test_dicom_dir), filepath=submission_fp)
    output = pd.read_csv(submission_fp, names=["patientId", "PredictionString"])
    assert len(output) == 1 + 3 and output.iloc[0, 0] == "patientId"

"""mrcnn.utils: boxes, IoU, NMS, resizing, masks, image meta, Dataset (hand-computed values)."""
import logging
import math

import numpy as np
import pytest

from rsna_detector.mrcnn import utils
from rsna_detector.mrcnn.config import Config

A = [0, 0, 10, 10]      # area 100
B = [5, 5, 15, 15]      # area 100, A∩B = 5x5 = 25 -> IoU 25/175 = 1/7
C = [0, 0, 10, 20]      # area 200, A∩C = 100 -> IoU 0.5; B∩C = 5x10 = 50 -> 50/250 = 0.2
D = [20, 20, 30, 30]    # disjoint from all


class TestBoxes:
    def test_extract_bboxes_is_exclusive(self):
        mask = np.zeros((10, 12, 3), dtype=bool)
        mask[2:5, 3:8, 0] = True          # rows 2..4, cols 3..7
        mask[9, 11, 1] = True             # a single pixel in the corner
        boxes = utils.extract_bboxes(mask)
        assert boxes.dtype == np.int32
        assert boxes.tolist() == [[2, 3, 5, 8], [9, 11, 10, 12], [0, 0, 0, 0]]

    def test_extract_bboxes_of_no_instance(self):
        assert utils.extract_bboxes(np.zeros((4, 4, 0), bool)).shape == (0, 4)

    def test_compute_iou(self):
        boxes = np.array([B, C, D], dtype=float)
        iou = utils.compute_iou(np.array(A), boxes, 100.0, np.array([100.0, 200.0, 100.0]))
        np.testing.assert_allclose(iou, [1 / 7, 0.5, 0.0])

    def test_compute_overlaps(self):
        overlaps = utils.compute_overlaps(np.array([A, B]), np.array([A, C, D]))
        np.testing.assert_allclose(overlaps, [[1.0, 0.5, 0.0], [1 / 7, 0.2, 0.0]])

    def test_compute_overlaps_with_empty_sets(self):
        assert utils.compute_overlaps(np.zeros((0, 4)), np.array([A])).shape == (0, 1)
        assert utils.compute_overlaps(np.array([A, B]), np.zeros((0, 4))).shape == (2, 0)

    def test_compute_overlaps_masks(self):
        m1 = np.zeros((4, 4, 1))
        m1[0:2, :, 0] = 1  # 8 pixels
        m2 = np.zeros((4, 4, 2))
        m2[1:3, :, 0] = 1  # 8 pixels, 4 shared -> 4/12
        m2[3, 3, 1] = 1                                 # disjoint
        np.testing.assert_allclose(utils.compute_overlaps_masks(m1, m2), [[1 / 3, 0.0]])
        assert utils.compute_overlaps_masks(m1, np.zeros((4, 4, 0))).shape == (1, 0)

    def test_non_max_suppression(self):
        boxes = np.array([A, B, C, D])
        scores = np.array([0.9, 0.8, 0.7, 0.6])
        # A kept; C (IoU 0.5 with A) dropped; B (1/7 with A) and D (0 with all) kept
        keep = utils.non_max_suppression(boxes, scores, 0.3)
        assert keep.dtype == np.int32 and keep.tolist() == [0, 1, 3]
        # a lower threshold also drops B
        assert utils.non_max_suppression(boxes, scores, 0.1).tolist() == [0, 3]

    def test_non_max_suppression_orders_by_score(self):
        boxes = np.array([A, B, C, D])
        # C is best now: it drops A (IoU 0.5); B (0.2 with C) and D survive
        keep = utils.non_max_suppression(boxes, np.array([0.6, 0.7, 0.9, 0.8]), 0.3)
        assert keep.tolist() == [2, 3, 1]
        assert utils.non_max_suppression(np.zeros((0, 4)), np.zeros(0), 0.5).tolist() == []

    def test_box_refinement_by_hand(self):
        # box centre (5, 5) size 10x10; gt (2, 4, 22, 9): centre (12, 6.5), size 20x5
        deltas = utils.box_refinement(np.array([[0, 0, 10, 10]]), np.array([[2, 4, 22, 9]]))
        assert deltas.dtype == np.float32
        np.testing.assert_allclose(deltas, [[0.7, 0.15, math.log(2), math.log(0.5)]], rtol=1e-6)

    def test_apply_box_deltas_inverts_box_refinement(self):
        rng = np.random.default_rng(0)
        top_left = rng.uniform(0, 100, (20, 2))
        boxes = np.concatenate([top_left, top_left + rng.uniform(5, 50, (20, 2))], axis=1)
        top_left = rng.uniform(0, 100, (20, 2))
        gt = np.concatenate([top_left, top_left + rng.uniform(5, 50, (20, 2))], axis=1)
        restored = utils.apply_box_deltas(boxes, utils.box_refinement(boxes, gt))
        np.testing.assert_allclose(restored, gt, atol=1e-3)

    def test_norm_and_denorm_boxes(self):
        boxes = np.array([[0, 0, 10, 20], [5, 10, 11, 21]])
        normed = utils.norm_boxes(boxes, (11, 21))
        # (y1, x1, y2 - 1, x2 - 1) / (10, 20)
        np.testing.assert_allclose(normed, [[0, 0, 0.9, 0.95], [0.5, 0.5, 1.0, 1.0]], rtol=1e-6)
        assert normed.dtype == np.float32
        back = utils.denorm_boxes(normed, (11, 21, 3))
        assert back.dtype == np.int32 and back.tolist() == boxes.tolist()

    def test_trim_zeros(self):
        x = np.array([[1, 2, 3, 4], [0, 0, 0, 0], [0, 0, 0, 5]])
        assert utils.trim_zeros(x).tolist() == [[1, 2, 3, 4], [0, 0, 0, 5]]
        with pytest.raises(ValueError, match="2-D"):
            utils.trim_zeros(np.zeros(3))


class TestResizeImage:
    def test_none_mode_returns_the_image_unchanged(self):
        image = np.full((30, 20, 3), 7, np.uint8)
        out, window, scale, padding, crop = utils.resize_image(image, 64, 128, mode="none")
        assert out is image
        assert (window, scale, padding, crop) == ((0, 0, 30, 20), 1, [(0, 0), (0, 0), (0, 0)], None)

    def test_square_scales_up_to_min_dim_and_pads(self):
        image = np.full((100, 50, 3), 200, np.uint8)
        out, window, scale, padding, crop = utils.resize_image(image, 64, 128, mode="square")
        # scale = 64 / 50 = 1.28; long side 128 <= 128 -> (128, 64), padded 32 left and right
        assert scale == pytest.approx(1.28)
        assert out.shape == (128, 128, 3) and out.dtype == np.uint8
        assert padding == [(0, 0), (32, 32), (0, 0)]
        assert window == (0, 32, 128, 96)
        assert crop is None
        assert (out[:, 32:96] == 200).all() and (out[:, :32] == 0).all() and (out[:, 96:] == 0).all()

    def test_square_max_dim_wins_over_min_dim(self):
        image = np.ones((60, 40), np.float32)
        out, window, scale, padding, _ = utils.resize_image(image, 80, 96, mode="square")
        # min_dim asks for 2.0 (long side 120 > 96) -> 96 / 60 = 1.6 -> (96, 64)
        assert scale == pytest.approx(1.6)
        assert out.shape == (96, 96) and out.dtype == np.float32
        assert padding == [(0, 0), (16, 16), (0, 0)] and window == (0, 16, 96, 80)  # three pairs, as matterport

    def test_pad64_without_scaling(self):
        image = np.ones((100, 70, 3), np.uint8)
        out, window, scale, padding, _ = utils.resize_image(image, 64, None, mode="pad64")
        # 100 -> 128 (14 + 14), 70 -> 128 (29 + 29)
        assert scale == 1 and out.shape == (128, 128, 3)
        assert padding == [(14, 14), (29, 29), (0, 0)] and window == (14, 29, 114, 99)

    def test_pad64_with_scaling(self):
        image = np.ones((100, 70, 3), np.uint8)
        out, window, scale, padding, _ = utils.resize_image(image, 128, None, mode="pad64")
        # scale 128/70: (183, 128) -> height padded to 192 (4 + 5)
        assert scale == pytest.approx(128 / 70)
        assert out.shape == (192, 128, 3)
        assert padding == [(4, 5), (0, 0), (0, 0)] and window == (4, 0, 187, 128)

    def test_pad64_needs_min_dim_multiple_of_64(self):
        with pytest.raises(ValueError, match="multiple of 64"):
            utils.resize_image(np.ones((10, 10, 3)), 100, None, mode="pad64")

    def test_crop_takes_a_min_dim_square_of_the_image(self):
        image = np.arange(100 * 80, dtype=np.int32).reshape(100, 80)
        out, window, scale, padding, crop = utils.resize_image(
            image, 64, None, mode="crop", rng=np.random.default_rng(3))
        y, x, h, w = crop
        assert (h, w) == (64, 64) and 0 <= y <= 36 and 0 <= x <= 16
        assert window == (0, 0, 64, 64) and scale == 1
        assert (out == image[y:y + 64, x:x + 64]).all()

    def test_unknown_mode(self):
        with pytest.raises(ValueError, match="mode must be"):
            utils.resize_image(np.ones((10, 10, 3)), 64, 64, mode="stretch")


class TestMasks:
    def test_resize_mask_follows_the_image(self):
        mask = np.zeros((100, 50, 1), bool)
        mask[10:30, 10:20, 0] = True
        _, window, scale, padding, _ = utils.resize_image(np.zeros((100, 50, 3)), 64, 128, mode="square")
        resized = utils.resize_mask(mask, scale, padding)
        assert resized.shape == (128, 128, 1) and resized.dtype == bool
        # nearest pixel centres: rows 13..37 and cols 13..25 (+32 padding) come from the box
        assert utils.extract_bboxes(resized).tolist() == [[13, 45, 38, 58]]

    def test_resize_mask_with_crop(self):
        mask = np.zeros((10, 10, 2), bool)
        mask[2:4, 2:4, 1] = True
        cropped = utils.resize_mask(mask, 1, None, crop=(1, 1, 5, 5))
        assert cropped.shape == (5, 5, 2)
        assert utils.extract_bboxes(cropped).tolist() == [[0, 0, 0, 0], [1, 1, 3, 3]]

    def test_minimize_and_expand_round_trip_on_a_rectangle(self):
        mask = np.zeros((40, 50, 1), bool)
        mask[5:25, 10:43, 0] = True
        bbox = utils.extract_bboxes(mask)
        mini = utils.minimize_mask(bbox, mask, (8, 8))
        assert mini.shape == (8, 8, 1) and mini.dtype == bool and mini.all()
        expanded = utils.expand_mask(bbox, mini, (40, 50, 3))
        assert expanded.shape == (40, 50, 1)
        assert (expanded == mask).all()

    def test_minimize_mask_rejects_an_empty_box(self):
        with pytest.raises(ValueError, match="zero area"):
            utils.minimize_mask(np.array([[3, 3, 3, 8]]), np.ones((10, 10, 1)), (4, 4))

    def test_unmold_mask(self):
        small = np.zeros((4, 4), np.float32)
        small[:, :2] = 0.9
        small[:, 2:] = 0.1
        full = utils.unmold_mask(small, (2, 2, 10, 10), (12, 12, 3))
        # 4 -> 8 columns: output column 3 samples 0.75*0.9 + 0.25*0.1 = 0.7, column 4 samples 0.3
        expected = np.zeros((12, 12), bool)
        expected[2:10, 2:6] = True
        assert full.dtype == bool and (full == expected).all()

    def test_unmold_mask_cuts_a_box_outside_the_image(self):
        full = utils.unmold_mask(np.ones((4, 4)), (-2, -2, 6, 6), (5, 5))
        expected = np.zeros((5, 5), bool)
        expected[:5, :5] = True
        assert (full == expected).all()


class TestImageMeta:
    def test_compose_and_parse(self):
        meta = utils.compose_image_meta(7, (1024, 1024, 3), (256, 256, 3), (0, 0, 256, 256), 0.25, [1, 1])
        assert meta.shape == (14,)
        assert len(meta) == Config.from_dict({"NUM_CLASSES": 2}).IMAGE_META_SIZE
        other = utils.compose_image_meta(3, (512, 256, 3), (256, 256, 3), (0, 64, 256, 192), 0.5, [1, 0])
        parsed = utils.parse_image_meta(np.stack([meta, other]))
        assert parsed["image_id"].tolist() == [7, 3]
        assert parsed["original_image_shape"].tolist() == [[1024, 1024, 3], [512, 256, 3]]
        assert parsed["image_shape"].tolist() == [[256, 256, 3], [256, 256, 3]]
        assert parsed["window"].tolist() == [[0, 0, 256, 256], [0, 64, 256, 192]]
        np.testing.assert_allclose(parsed["scale"], [0.25, 0.5])
        assert parsed["active_class_ids"].tolist() == [[1, 1], [1, 0]]
        assert utils.parse_image_meta(meta)["window"].tolist() == [0, 0, 256, 256]

    def test_mold_and_unmold_image(self):
        config = Config()
        image = np.zeros((2, 2, 3), np.uint8)
        image[0, 0] = [124, 117, 104]
        molded = utils.mold_image(image, config)
        assert molded.dtype == np.float64  # float32 pixels minus the float64 MEAN_PIXEL, as matterport
        np.testing.assert_allclose(molded[0, 0], [0.3, 0.2, 0.1], atol=1e-4)
        np.testing.assert_allclose(molded[1, 1], [-123.7, -116.8, -103.9], atol=1e-4)
        assert (utils.unmold_image(molded, config) == image).all()
        # unmolding truncates (matterport's astype), and clips what is out of range
        assert utils.unmold_image(np.array([[0.9 - 123.7, -200.0, 300.0]]), config).tolist() == [[0, 0, 255]]

    def test_compute_backbone_shapes(self):
        config = Config()
        assert utils.compute_backbone_shapes(config, (256, 256, 3)).tolist() == [
            [64, 64], [32, 32], [16, 16], [8, 8], [4, 4]]
        # ceil for sides that are not multiples of the stride
        assert utils.compute_backbone_shapes(config, (100, 70)).tolist() == [
            [25, 18], [13, 9], [7, 5], [4, 3], [2, 2]]

    def test_compute_backbone_shapes_of_a_callable_backbone(self):
        class Custom(Config):
            BACKBONE = staticmethod(lambda image, config: image)
            COMPUTE_BACKBONE_SHAPE = staticmethod(lambda shape: [[shape[0] // 2, shape[1] // 2]])
        assert utils.compute_backbone_shapes(Custom(), (64, 32, 3)) == [[32, 16]]


class TestDataset:
    def make(self):
        ds = utils.Dataset()
        ds.add_class("shapes", 1, "square")
        ds.add_class("shapes", 2, "circle, round")
        ds.add_class("shapes", 1, "square")  # duplicate: ignored
        ds.add_class("coco", 1, "person")
        ds.add_image("shapes", image_id="a", path="a.png", height=6, width=4)
        ds.add_image("coco", image_id=42, path="b.png", extra="kept")
        ds.prepare()
        return ds

    def test_prepare_builds_the_tables(self):
        ds = self.make()
        assert ds.num_classes == 4
        assert ds.class_names == ["BG", "square", "circle", "person"]
        assert ds.class_ids.tolist() == [0, 1, 2, 3]
        assert ds.num_images == 2 and ds.image_ids.tolist() == [0, 1]
        assert ds.sources == ["", "coco", "shapes"]
        assert ds.source_class_ids == {"": [0], "coco": [0, 3], "shapes": [0, 1, 2]}
        assert ds.map_source_class_id("coco.1") == 3
        assert ds.get_source_class_id(2, "shapes") == 2
        assert ds.image_from_source_map == {"shapes.a": 0, "coco.42": 1}
        assert ds.image_info[1]["extra"] == "kept"
        assert ds.source_image_link(0) == "a.png"
        assert ds.image_reference(0) == ""

    def test_errors_name_what_is_wrong(self):
        ds = self.make()
        with pytest.raises(utils.DatasetError, match="no class 'coco.9'"):
            ds.map_source_class_id("coco.9")
        with pytest.raises(utils.DatasetError, match="belongs to source 'shapes'"):
            ds.get_source_class_id(1, "coco")
        with pytest.raises(utils.DatasetError, match="must not contain a dot"):
            ds.add_class("a.b", 1, "x")

    def test_default_load_mask_is_empty_and_logs_once(self, caplog):
        ds = self.make()
        with caplog.at_level(logging.WARNING, logger="rsna_detector.mrcnn.input.base_dataset"):
            mask, class_ids = ds.load_mask(0)
            ds.load_mask(0)
        assert mask.shape == (0, 0, 0)  # matterport's "no instance" arrays
        assert class_ids.shape == (0,) and class_ids.dtype == np.int32
        assert sum("load_mask is not overridden" in r.message for r in caplog.records) == 1

    def test_load_image_gives_rgb_in_the_files_dtype(self, tmp_path):
        import skimage.io

        gray = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
        rgba = np.zeros((3, 4, 4), np.uint8)
        rgba[..., 0], rgba[..., 3] = 50, 255
        deep = (gray.astype(np.uint16) * 257)  # 16-bit grayscale of the same picture
        ds = utils.Dataset()
        for name, image in (("gray", gray), ("rgba", rgba), ("deep", deep)):
            skimage.io.imsave(tmp_path / f"{name}.png", image, check_contrast=False)
            ds.add_image("t", name, str(tmp_path / f"{name}.png"))
        ds.prepare()
        loaded_gray, loaded_rgba, loaded_deep = (ds.load_image(i) for i in ds.image_ids)
        assert loaded_gray.shape == (3, 4, 3) and loaded_gray.dtype == np.uint8
        assert (loaded_gray[..., 2] == gray).all()
        assert loaded_rgba.shape == (3, 4, 3) and (loaded_rgba[..., 0] == 50).all()
        # 16 bits stay 16 bits, as in matterport (no conversion to 8 bits)
        assert loaded_deep.dtype == np.uint16 and (loaded_deep[..., 0] == deep).all()

    @pytest.mark.filterwarnings("ignore::DeprecationWarning")  # imageio tries its legacy plugins
    def test_load_image_of_a_bad_file_names_it(self, tmp_path):
        path = tmp_path / "broken.png"
        path.write_bytes(b"not a png")
        ds = utils.Dataset()
        ds.add_image("t", 0, str(path))
        ds.prepare()
        with pytest.raises(utils.DatasetError, match="broken.png"):
            ds.load_image(0)


def test_download_trained_weights_delegates_to_the_registry(monkeypatch, tmp_path, capsys):
    import rsna_detector.weights

    calls = []

    def fake_fetch(name, **kwargs):
        calls.append((name, kwargs))
        return kwargs["destination"]

    monkeypatch.setattr(rsna_detector.weights, "fetch_weights", fake_fetch)
    target = tmp_path / "mask_rcnn_coco.h5"
    assert utils.download_trained_weights(target, verbose=0) == target
    assert calls == [("coco", {"destination": target, "progress": False})]
    assert capsys.readouterr().out == ""

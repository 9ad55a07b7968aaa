"""load_image_gt, augmentation alignment, and the seeded batch stream."""
import imgaug.augmenters as iaa
import numpy as np
import pytest

from rsna_detector.mrcnn import utils
from rsna_detector.mrcnn.config import Config
from rsna_detector.mrcnn.input import ground_truth, pipeline
from rsna_detector.mrcnn.input.generator import data_generator
from rsna_detector.mrcnn.ops.anchors import pyramid_anchors


class SmallConfig(Config):
    NAME = "pipeline_test"
    BACKBONE = "tiny"
    NUM_CLASSES = 2
    IMAGES_PER_GPU = 3
    IMAGE_MIN_DIM = 64
    IMAGE_MAX_DIM = 64
    RPN_ANCHOR_SCALES = (8, 16, 32)
    RPN_TRAIN_ANCHORS_PER_IMAGE = 32
    MAX_GT_INSTANCES = 2
    MINI_MASK_SHAPE = (16, 16)
    USE_MINI_MASK = False
    SEED = 7


class RectDataset(utils.Dataset):
    """64x64 grey images; image i holds the rectangles ``boxes[i]`` (bright, 200)."""

    def __init__(self, boxes):
        super().__init__()
        self.add_class("shapes", 1, "rect")
        for i, image_boxes in enumerate(boxes):
            self.add_image("shapes", image_id=i, path=None, boxes=image_boxes)
        self.prepare()

    def load_image(self, image_id):
        image = np.full((64, 64, 3), 30, np.uint8)
        for y1, x1, y2, x2 in self.image_info[image_id]["boxes"]:
            image[y1:y2, x1:x2] = 200
        return image

    def load_mask(self, image_id):
        boxes = self.image_info[image_id]["boxes"]
        mask = np.zeros((64, 64, len(boxes)), bool)
        for i, (y1, x1, y2, x2) in enumerate(boxes):
            mask[y1:y2, x1:x2, i] = True
        return mask, np.ones(len(boxes), np.int32)


BOX = (10, 8, 30, 20)  # y1, x1, y2, x2


def bright_box(image):
    ys, xs = np.nonzero(image[..., 0] > 100)
    return [ys.min(), xs.min(), ys.max() + 1, xs.max() + 1]


class TestLoadImageGt:
    def test_plain(self):
        dataset = RectDataset([[BOX]])
        image, meta, class_ids, bbox, mask = ground_truth.load_image_gt(dataset, SmallConfig(), 0)
        assert image.shape == (64, 64, 3) and mask.shape == (64, 64, 1)
        np.testing.assert_array_equal(bbox, [BOX])
        np.testing.assert_array_equal(class_ids, [1])
        assert meta.shape == (SmallConfig().IMAGE_META_SIZE,)

    def test_image_without_objects_is_kept(self):
        dataset = RectDataset([[]])
        image, meta, class_ids, bbox, mask = ground_truth.load_image_gt(dataset, SmallConfig(), 0)
        assert image.shape == (64, 64, 3)
        assert class_ids.shape == (0,) and bbox.shape == (0, 4) and mask.shape == (64, 64, 0)

    def test_mini_mask(self):
        config = SmallConfig()
        _, _, _, bbox, mask = ground_truth.load_image_gt(RectDataset([[BOX]]), config, 0, use_mini_mask=True)
        assert mask.shape == (16, 16, 1) and mask.all()
        np.testing.assert_array_equal(bbox, [BOX])

    def test_matterport_keywords_use_mini_mask_and_augment(self):
        config = SmallConfig()
        config.USE_MINI_MASK = True
        config.validate()
        _, _, _, bbox, mask = ground_truth.load_image_gt(RectDataset([[BOX]]), config, 0, use_mini_mask=False)
        assert mask.shape == (64, 64, 1)  # the keyword overrides the config, as in matterport
        flipped = {tuple(ground_truth.load_image_gt(RectDataset([[BOX]]), SmallConfig(), 0, seed=s, augment=True)[3][0])
                   for s in range(12)}
        # x 8..20 in a 64-wide image mirrors to 44..56; both outcomes occur over 12 seeds
        assert flipped == {BOX, (10, 44, 30, 56)}

    def test_fliplr_moves_image_mask_and_box_together(self):
        image, _, _, bbox, mask = ground_truth.load_image_gt(RectDataset([[BOX]]), SmallConfig(), 0,
                                                     augmentation=iaa.Fliplr(1.0), seed=0)
        flipped = [10, 64 - 20, 30, 64 - 8]
        np.testing.assert_array_equal(bbox, [flipped])
        assert bright_box(image) == flipped
        np.testing.assert_array_equal(utils.extract_bboxes(mask), [flipped])

    def test_affine_shift_moves_all_three(self):
        shift = iaa.Affine(translate_px={"x": 5, "y": -3})
        image, _, _, bbox, mask = ground_truth.load_image_gt(RectDataset([[BOX]]), SmallConfig(), 0,
                                                     augmentation=shift, seed=0)
        moved = [7, 13, 27, 25]
        np.testing.assert_array_equal(bbox, [moved])
        assert bright_box(image) == moved
        assert mask[:, :, 0].sum() == 20 * 12

    def test_random_draw_shared_by_image_and_mask(self):
        augmentation = iaa.Sequential([iaa.Fliplr(0.5), iaa.Affine(translate_px={"x": (-6, 6), "y": (-6, 6)}),
                                       iaa.Multiply((0.8, 1.2))])
        dataset = RectDataset([[BOX]])
        for seed in range(6):
            image, _, _, bbox, _ = ground_truth.load_image_gt(dataset, SmallConfig(), 0, augmentation=augmentation, seed=seed)
            assert bright_box(image) == list(bbox[0])

    def test_multiply_changes_image_only(self):
        plain, _, _, plain_bbox, plain_mask = ground_truth.load_image_gt(RectDataset([[BOX]]), SmallConfig(), 0)
        image, _, _, bbox, mask = ground_truth.load_image_gt(RectDataset([[BOX]]), SmallConfig(), 0,
                                                     augmentation=iaa.Multiply(0.5), seed=0)
        assert image[0, 0, 0] == 15 and image[15, 10, 0] == 100
        np.testing.assert_array_equal(bbox, plain_bbox)
        np.testing.assert_array_equal(mask, plain_mask)

    def test_box_pushed_out_of_the_image_drops_its_instance(self):
        dataset = RectDataset([[BOX, (40, 40, 50, 50)]])
        shift = iaa.Affine(translate_px={"x": -25})
        _, _, class_ids, bbox, mask = ground_truth.load_image_gt(dataset, SmallConfig(), 0, augmentation=shift, seed=0)
        np.testing.assert_array_equal(bbox, [[40, 15, 50, 25]])
        assert len(class_ids) == 1 and mask.shape[-1] == 1

    def test_size_changing_augmentation_is_refused(self):
        with pytest.raises(ValueError, match="changed the image shape"):
            ground_truth.load_image_gt(RectDataset([[BOX]]), SmallConfig(), 0,
                               augmentation=iaa.Resize(0.5), seed=0)

    def test_mask_count_mismatch_names_the_image(self):
        class Broken(RectDataset):
            def load_mask(self, image_id):
                mask, _ = super().load_mask(image_id)
                return mask, np.ones(3, np.int32)

        with pytest.raises(ValueError, match="image 0 .*1 masks but 3 class ids"):
            ground_truth.load_image_gt(Broken([[BOX]]), SmallConfig(), 0)


def stream_dataset():
    # 5 images: three with one box, one with two, one negative
    return RectDataset([[BOX], [(30, 30, 50, 60)], [], [BOX, (40, 40, 60, 60)], [(5, 5, 25, 25)]])


def keeping_empty_images():
    config = SmallConfig()
    config.TRAIN_ON_EMPTY_IMAGES = True
    return config.validate()


class TestTrainingBatches:
    def test_shapes_dtypes_and_padding(self):
        config = keeping_empty_images()
        batches = pipeline.TrainingBatches(stream_dataset(), config, shuffle=False)
        images, meta, rpn_match, rpn_bbox, class_ids, boxes, masks = batches.batch(0)
        anchors = len(pyramid_anchors(config))
        assert anchors == 3 * (16 * 16 + 8 * 8 + 4 * 4)  # 3 ratios on P2..P4 (3 scales)
        assert images.shape == (3, 64, 64, 3) and images.dtype == np.float32
        assert meta.shape == (3, config.IMAGE_META_SIZE)
        assert rpn_match.shape == (3, anchors, 1) and rpn_match.dtype == np.int32
        assert rpn_bbox.shape == (3, 32, 4)
        assert class_ids.shape == (3, 2) and boxes.shape == (3, 2, 4) and masks.shape == (3, 64, 64, 2)
        np.testing.assert_array_equal(class_ids, [[1, 0], [1, 0], [0, 0]])
        np.testing.assert_array_equal(boxes[0], [BOX, (0, 0, 0, 0)])
        np.testing.assert_array_equal(boxes[2], 0)  # the negative image is in the batch
        assert np.sum(rpn_match[2] == -1) == 32 and np.sum(rpn_match[2] == 1) == 0
        np.testing.assert_allclose(images[0, 0, 0], 30 - config.MEAN_PIXEL, rtol=1e-6)

    def test_every_image_once_per_data_epoch(self):
        batches = pipeline.TrainingBatches(stream_dataset(), SmallConfig(), shuffle=True, seed=3)
        first = [batches.image_id_at(p) for p in range(5)]
        second = [batches.image_id_at(p) for p in range(5, 10)]
        assert sorted(first) == sorted(second) == [0, 1, 2, 3, 4]
        assert first != second  # a fresh permutation each data epoch

    def test_same_seed_same_batches_in_any_order(self):
        augmentation = iaa.Affine(translate_px={"x": (-5, 5)})
        one = pipeline.TrainingBatches(stream_dataset(), SmallConfig(), augmentation=augmentation)
        two = pipeline.TrainingBatches(stream_dataset(), SmallConfig(), augmentation=augmentation)
        late = two.batch(4)
        for a, b in zip(one.batch(4), late):
            np.testing.assert_array_equal(a, b)
        other = pipeline.TrainingBatches(stream_dataset(), SmallConfig(), augmentation=augmentation, seed=99)
        assert any(not np.array_equal(a, b) for a, b in zip(one.batch(4), other.batch(4)))

    def test_no_augmentation_sources(self):
        flip = iaa.Fliplr(1.0)
        batches = pipeline.TrainingBatches(stream_dataset(), SmallConfig(), shuffle=False, augmentation=flip,
                                       no_augmentation_sources=["shapes"])
        np.testing.assert_array_equal(batches.batch(0)[5][0, 0], BOX)

    def test_more_instances_than_max_are_subsampled(self):
        config = keeping_empty_images()
        config.MAX_GT_INSTANCES = 1
        batches = pipeline.TrainingBatches(stream_dataset(), config.validate(), shuffle=False, batch_size=5)
        class_ids = batches.batch(0)[4]
        np.testing.assert_array_equal(class_ids[:, 0], [1, 1, 0, 1, 1])

    def test_class_count_mismatch_is_refused(self):
        config = SmallConfig()
        config.NUM_CLASSES = 3
        with pytest.raises(ValueError, match="NUM_CLASSES"):
            pipeline.TrainingBatches(stream_dataset(), config.validate())


def test_tf_dataset_yields_the_stream_in_order():
    config = SmallConfig()
    batches = pipeline.TrainingBatches(stream_dataset(), config)
    dataset = pipeline.make_input_dataset(batches, start_batch=2, workers=2)
    for index, (element,) in zip(range(2, 5), dataset.take(3)):
        expected = batches.batch(index)
        assert len(element) == 7
        for got, want in zip(element, expected):
            np.testing.assert_array_equal(got.numpy(), want)


def test_pipeline_error_names_the_image():
    class Broken(RectDataset):
        def load_image(self, image_id):
            raise OSError("unreadable file")

    batches = pipeline.TrainingBatches(Broken([[BOX]]), SmallConfig(), batch_size=1)
    with pytest.raises(ValueError, match="image 0 .*unreadable file"):
        batches.batch(0)


def test_data_generator_matterport_signature():
    inputs, outputs = next(data_generator(stream_dataset(), SmallConfig(), shuffle=False, batch_size=2))
    assert outputs == [] and len(inputs) == 7 and inputs[0].shape == (2, 64, 64, 3)


def test_worker_error_surfaces_through_tf_data_instead_of_hanging():
    class Broken(RectDataset):
        def load_image(self, image_id):
            if image_id == 2:
                raise OSError("unreadable file")
            return super().load_image(image_id)

    batches = pipeline.TrainingBatches(Broken([[BOX], [], [BOX]]), keeping_empty_images(), shuffle=False,
                                             batch_size=1)
    iterator = iter(pipeline.make_input_dataset(batches, workers=2))
    next(iterator), next(iterator)  # images 0 and 1 are fine
    with pytest.raises(Exception, match="image 2 .*unreadable file"):
        next(iterator)

"""rsna_detector.detector.piecewise_affine.PiecewiseAffine gives imgaug's PiecewiseAffine results (same draws, same warp up to
rounding ties), and moves masks with the image in the training pipeline."""
import numpy as np
import pytest

iaa = pytest.importorskip("imgaug.augmenters")

from rsna_detector.detector.piecewise_affine import PiecewiseAffine as FastPiecewiseAffine  # noqa: E402
from rsna_detector.detector.piecewise_affine import piecewise_affine_coordinates  # noqa: E402

RNG = np.random.default_rng(0)
GREY = (RNG.random((96, 96)) * 255).astype(np.uint8)
IMAGES = {
    "grey repeated to RGB": np.repeat(GREY[..., None], 3, axis=-1),
    "colour, not square": (RNG.random((96, 72, 3)) * 255).astype(np.uint8),
    "two masks 0/255": (RNG.random((96, 96, 2)) > 0.5).astype(np.uint8) * 255,
    "2-D": GREY,
}
SETTINGS = [dict(scale=(0.001, 0.025)),  # the RSNA notebook's
            dict(scale=(0.01, 0.08), nb_rows=(2, 6), nb_cols=(3, 5))]


def _pair(seed, **settings):
    reference, fast = iaa.PiecewiseAffine(**settings), FastPiecewiseAffine(**settings)
    reference.seed_(seed)
    fast.seed_(seed)
    return reference, fast


@pytest.mark.filterwarnings("ignore:`estimate` is deprecated")
@pytest.mark.parametrize("name", list(IMAGES))
@pytest.mark.parametrize("settings", SETTINGS)
def test_bilinear_warp_equals_imgaugs_up_to_rounding_ties(name, settings):
    image = IMAGES[name]
    for seed in range(6):
        reference, fast = _pair(seed, **settings)
        want, got = reference.augment_image(image), fast.augment_image(image)
        assert got.dtype == want.dtype and got.shape == want.shape
        difference = np.abs(got.astype(int) - want.astype(int))
        assert difference.max() <= 1 and (difference > 0).mean() < 2e-3, (seed, difference.max())
        assert not np.array_equal(got, image)  # it did warp


@pytest.mark.filterwarnings("ignore:`estimate` is deprecated")
def test_nearest_neighbour_and_bool_warps_match_but_for_ties():
    for seed in range(4):
        reference, fast = _pair(seed, scale=0.05, order=0)
        want, got = reference.augment_image(IMAGES["2-D"]), fast.augment_image(IMAGES["2-D"])
        assert (want != got).mean() < 1e-3  # a coordinate at exactly .5 may round the other way
        mask = IMAGES["two masks 0/255"] > 0
        reference, fast = _pair(seed, scale=0.05)
        assert (reference.augment_image(mask) != fast.augment_image(mask)).mean() < 1e-3


def test_no_jitter_and_tiny_images_are_left_alone():
    assert piecewise_affine_coordinates((64, 64, 3), 4, 4, np.zeros((16, 2))) is None
    assert piecewise_affine_coordinates((1, 64), 4, 4, np.full((16, 2), 0.01)) is None


def test_corner_grid_maps_pixels_by_hand_computed_scale():
    # 2 x 2 control points at the corners (0, 0) .. (11, 11); imgaug clips the moved points to the last
    # pixel (10), so a negligible jitter gives the affine map (r, c) -> (r, c) * 10 / 11 on both triangles
    coordinates = piecewise_affine_coordinates((11, 11), 2, 2, np.full((4, 2), 1e-15))
    rows, cols = np.mgrid[0:11, 0:11]
    np.testing.assert_allclose(coordinates, np.stack([rows, cols]) * 10 / 11, atol=1e-9)


def test_the_notebook_preset_uses_it():
    from rsna_detector.detector.augment import rsna_notebook_augmentation

    geometric = rsna_notebook_augmentation()[0]
    assert any(isinstance(child, FastPiecewiseAffine) for child in geometric)


def test_masks_move_with_the_image_in_the_training_pipeline():
    from rsna_detector.mrcnn.input.ground_truth import augment_image_and_masks

    image = np.zeros((96, 96, 3), np.uint8)
    image[20:60, 30:80] = 200
    mask = image[..., :1] > 100
    for seed in range(4):
        moved_image, moved_mask = augment_image_and_masks(image, mask, iaa.Sequential([FastPiecewiseAffine(0.04)]),
                                                          seed=seed)
        assert not np.array_equal(moved_mask, mask)  # the mask was warped ...
        from_image = moved_image[..., 0] > 100
        overlap = (from_image & moved_mask[..., 0]).sum() / (from_image | moved_mask[..., 0]).sum()
        assert overlap > 0.97  # ... like the image

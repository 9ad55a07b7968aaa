"""Augmentation presets."""
import numpy as np
import pytest

from rsna_detector.augment import get_augmentation, report_augmentation, rsna_notebook_augmentation


def test_presets_by_name_and_errors():
    assert get_augmentation(None) is None and get_augmentation("none") is None
    assert get_augmentation("report").name == "report_contrast_sharpen"
    assert get_augmentation("notebook").name == "rsna_notebook"
    with pytest.raises(ValueError, match="unknown augmentation preset 'flip'.*notebook"):
        get_augmentation("flip")


def test_report_preset_is_photometric_and_mild():
    image = np.tile(np.linspace(40, 200, 64, dtype=np.uint8), (64, 1))[..., None].repeat(3, -1)
    out = report_augmentation().to_deterministic()(image=image)
    assert out.shape == image.shape and out.dtype == np.uint8
    # contrast 0.9-1.1 around the middle grey and a light sharpen: no pixel moves far
    assert np.abs(out.astype(int) - image).max() <= 20


def test_notebook_preset_moves_a_box_only_slightly():
    import imgaug

    imgaug.seed(0)
    image = np.zeros((128, 128, 3), np.uint8)
    image[40:80, 30:70] = 255
    for _ in range(5):
        out = rsna_notebook_augmentation()(image=image)
        ys, xs = np.nonzero(out[..., 0] > 128)
        # translation at most 2 % in x (2.6 px) and 4 % in y (5 px), small scale/rotation
        assert abs(ys.min() - 40) <= 8 and abs(xs.min() - 30) <= 6

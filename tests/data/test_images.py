"""grey_to_rgb: the one grey -> RGB conversion."""
import numpy as np
import pytest

from rsna_detector.data.images import grey_to_rgb


def test_grey_is_repeated_to_three_identical_channels():
    grey = np.arange(6, dtype=np.uint8).reshape(2, 3)
    for image in (grey, grey[..., None]):
        rgb = grey_to_rgb(image)
        assert rgb.shape == (2, 3, 3) and rgb.dtype == np.uint8
        assert all((rgb[..., c] == grey).all() for c in range(3))


def test_rgb_and_batches():
    rgb = np.random.default_rng(0).integers(0, 255, (4, 5, 3)).astype(np.uint16)
    assert (grey_to_rgb(rgb) == rgb).all() and grey_to_rgb(rgb).dtype == np.uint16
    assert grey_to_rgb(np.zeros((7, 4, 5, 1), np.float32)).shape == (7, 4, 5, 3)


@pytest.mark.parametrize("shape", [(4,), (4, 5, 2), (4, 5, 4)])
def test_other_shapes_are_named_errors(shape):
    with pytest.raises(ValueError, match=r"scan\.png: expected .* got shape"):
        grey_to_rgb(np.zeros(shape), "scan.png")

"""Augmentation presets."""
import numpy as np
import pytest

from rsna_detector.detector.augment import get_augmentation, report_augmentation, rsna_notebook_augmentation


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


def test_show_augmented_samples_draws_originals_and_variants(tmp_path):
    from rsna_detector.data.synthetic import make_synthetic_dataset
    from rsna_detector.detector.augment import show_augmented_samples
    from rsna_detector.detector.config import CPUDemoConfig
    from rsna_detector.detector.dataset import DetectorDataset

    make_synthetic_dataset(tmp_path, n_train=12, n_test=1, seed=4, image_size=256, workers=1, progress=False)
    dataset = DetectorDataset.from_data_dir(tmp_path, image_size=128)
    config = CPUDemoConfig()
    positives = [i for i in dataset.image_ids if len(dataset.image_info[i]["boxes"])][:2]
    fig = show_augmented_samples(dataset, config, positives, "notebook", n_variants=2, seed=1)
    assert len(fig.axes) == 2 * 3
    boxes_drawn = [len(ax.patches) for ax in fig.axes]
    assert boxes_drawn[0] == len(dataset.image_info[positives[0]]["boxes"]) and all(n > 0 for n in boxes_drawn)
    fig.savefig(tmp_path / "aug.png")
    assert (tmp_path / "aug.png").stat().st_size > 1000

"""``run_demo(data_dir)`` without weights on an offline machine (issue 14, item 14): it says at once
that the COCO weights are missing and where to put them, and never touches the network."""
import socket

import pytest

from rsna_detector.weights import WeightsOfflineError


@pytest.fixture
def no_network(monkeypatch):
    """Every connection attempt (name lookup included) is recorded and fails."""
    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise AssertionError(f"network call attempted: {args}")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    return attempts


@pytest.fixture
def empty_weights_places(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("RSNA_DETECTOR_CACHE", str(cache))
    monkeypatch.delenv("RSNA_DETECTOR_WEIGHTS_DIR", raising=False)
    monkeypatch.delenv("RSNA_DETECTOR_OFFLINE", raising=False)  # not declared offline: just no network
    return cache


@pytest.fixture(scope="module")
def kaggle_dir(tmp_path_factory):
    from rsna_detector.data.synthetic import make_synthetic_dataset

    folder = tmp_path_factory.mktemp("kaggle")
    make_synthetic_dataset(folder, n_train=6, n_test=2, seed=0, image_size=64, workers=1, progress=False)
    return folder


def test_real_data_without_weights_says_at_once_where_to_put_them(kaggle_dir, tmp_path, no_network,
                                                                  empty_weights_places):
    from rsna_detector.detector.demo import run_demo

    out = tmp_path / "demo"
    with pytest.raises(WeightsOfflineError) as caught:
        run_demo(out, data_dir=kaggle_dir, progress=False)
    message = str(caught.value)
    assert "mask_rcnn_coco.h5" in message and "not on this machine" in message
    assert "RSNA_DETECTOR_WEIGHTS_DIR" in message and str(empty_weights_places) in message
    assert "weights='coco'" in message and "--weights coco" in message
    assert no_network == []
    assert not out.exists()  # "at once": refused before its first step (which creates OUT), nothing written


def test_weights_put_in_the_weights_folder_are_used_without_a_download(kaggle_dir, tmp_path, monkeypatch,
                                                                       no_network, empty_weights_places):
    """The check finds a copy placed by hand (checked like any other); a wrong copy is refused by name."""
    from rsna_detector.detector.demo import resolve_demo_weights
    from rsna_detector.weights import WeightsChecksumError

    folder = tmp_path / "weights"
    folder.mkdir()
    (folder / "mask_rcnn_coco.h5").write_bytes(b"not the COCO file")
    monkeypatch.setenv("RSNA_DETECTOR_WEIGHTS_DIR", str(folder))
    with pytest.raises(WeightsChecksumError, match="mask_rcnn_coco.h5"):
        resolve_demo_weights(None, synthetic=False)
    assert resolve_demo_weights(None, synthetic=True) is None
    assert resolve_demo_weights("none", synthetic=False) == "none"
    assert no_network == []

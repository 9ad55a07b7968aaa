"""Weights registry, cache, checksums and offline errors (rsna_detector.weights). No network."""
import hashlib
import json

import pytest

from rsna_detector.weights import registry as w

PAYLOAD = b"fake weights \x00\x01" * 1000


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    for name in (w.ENV_WEIGHTS_DIR, w.ENV_OFFLINE, w.ENV_CACHE):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # default cache never touches the real home


@pytest.fixture
def source(tmp_path):
    path = tmp_path / "upstream" / "fake.h5"
    path.parent.mkdir()
    path.write_bytes(PAYLOAD)
    return path


def _registry(source, md5=None, sha256=None, size=None):
    md5 = md5 or hashlib.md5(PAYLOAD).hexdigest()
    entry = w.WeightsEntry("fake", "fake.h5", url=source.as_uri(), size=size or len(PAYLOAD), md5=md5,
                           sha256=sha256, description="test entry")
    return {"fake": entry}


def test_packaged_registry_entries():
    entries = {e["name"]: e for e in w.list_weights()}
    assert set(entries) == {"coco", "imagenet", "chexnet"}
    coco = entries["coco"]
    assert coco["filename"] == "mask_rcnn_coco.h5"
    assert coco["url"] == "https://github.com/matterport/Mask_RCNN/releases/download/v2.0/mask_rcnn_coco.h5"
    assert coco["size"] == 257_557_808 and coco["md5"] == "e98aaff6f99e307b5e2a8a3ff741a518"
    assert entries["imagenet"]["md5"] == "a268eb855778b3df3c7506639542a6af"
    assert entries["chexnet"]["url"] is None and "CheXNet-Keras" in entries["chexnet"]["manual"]


def test_verify_file_reports_expected_and_got(tmp_path):
    path = tmp_path / "x.bin"
    path.write_bytes(b"abc")
    got = w.verify_file(path, md5="900150983CD24FB0D6963F7D28E17F72")  # case-insensitive
    assert got == {"size": 3, "md5": "900150983cd24fb0d6963f7d28e17f72",
                   "sha256": hashlib.sha256(b"abc").hexdigest()}
    with pytest.raises(w.WeightsChecksumError, match="md5: expected 0+, got 900150983cd24fb0d6963f7d28e17f72"):
        w.verify_file(path, md5="0" * 32)
    with pytest.raises(w.WeightsChecksumError, match="size: expected 4, got 3"):
        w.verify_file(path, size=4)


def test_download_records_sha256_and_cache_hit_does_not_download_again(source, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    registry = _registry(source)
    path = w.fetch_weights("fake", cache_dir=cache, registry=registry, progress=False)
    assert path == cache / "fake.h5" and path.read_bytes() == PAYLOAD
    recorded = json.loads((cache / w.CHECKSUMS_FILE).read_text())["fake.h5"]
    assert recorded["sha256"] == hashlib.sha256(PAYLOAD).hexdigest() and recorded["size"] == len(PAYLOAD)
    assert sorted(p.name for p in cache.iterdir()) == ["checksums.json", "fake.h5"]  # no .part left

    def no_download(*args, **kwargs):
        raise AssertionError("downloaded although the file is cached")

    monkeypatch.setattr(w, "_download", no_download)
    assert w.fetch_weights("fake", cache_dir=cache, registry=registry, offline=True) == path


def test_recorded_sha256_is_verified_afterwards(source, tmp_path):
    cache = tmp_path / "cache"
    registry = _registry(source, md5=None)
    registry["fake"] = w.WeightsEntry("fake", "fake.h5", url=source.as_uri())  # no md5, no size
    path = w.fetch_weights("fake", cache_dir=cache, registry=registry, progress=False)
    path.write_bytes(PAYLOAD[:-1] + b"!")  # silent corruption after the first download
    with pytest.raises(w.WeightsChecksumError, match="sha256: expected .*moved aside") as error:
        w.fetch_weights("fake", cache_dir=cache, registry=registry, offline=True)
    assert not path.exists() and (cache / "fake.h5.corrupt").exists()
    assert str(cache / "fake.h5.corrupt") in str(error.value)


def test_local_file_with_the_right_hash_loads(source, tmp_path, monkeypatch):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "fake.h5").write_bytes(PAYLOAD)
    monkeypatch.setenv(w.ENV_WEIGHTS_DIR, str(folder))
    monkeypatch.setattr(w, "_download", lambda *a, **k: pytest.fail("must not download"))
    registry = _registry(source)
    assert w.fetch_weights("fake", cache_dir=tmp_path / "cache", registry=registry) == folder / "fake.h5"
    # an explicit path to a registered file name is checked too
    assert w.fetch_weights(folder / "fake.h5", registry=registry, cache_dir=tmp_path / "c") == folder / "fake.h5"


def test_wrong_hash_is_refused_with_a_clear_message(source, tmp_path, monkeypatch):
    folder = tmp_path / "mine"
    folder.mkdir()
    bad = folder / "fake.h5"
    bad.write_bytes(b"x" * len(PAYLOAD))
    monkeypatch.setenv(w.ENV_WEIGHTS_DIR, str(folder))
    registry = _registry(source)
    expected_md5 = hashlib.md5(PAYLOAD).hexdigest()
    got_md5 = hashlib.md5(b"x" * len(PAYLOAD)).hexdigest()
    with pytest.raises(w.WeightsChecksumError, match=f"md5: expected {expected_md5}, got {got_md5}.*not used"):
        w.fetch_weights("fake", cache_dir=tmp_path / "cache", registry=registry)
    assert bad.exists()  # a file the user placed is refused, not moved


def test_corrupt_download_is_moved_aside(source, tmp_path):
    registry = _registry(source, md5="0" * 32)
    cache = tmp_path / "cache"
    with pytest.raises(w.WeightsChecksumError, match="md5: expected 0{32}"):
        w.fetch_weights("fake", cache_dir=cache, registry=registry, progress=False)
    assert not (cache / "fake.h5").exists() and (cache / "fake.h5.corrupt").exists()


def test_offline_error_names_url_file_and_folder(source, tmp_path, monkeypatch):
    monkeypatch.setenv(w.ENV_OFFLINE, "1")
    monkeypatch.setattr(w, "_download", lambda *a, **k: pytest.fail("must not download offline"))
    cache = tmp_path / "cache"
    with pytest.raises(w.WeightsOfflineError) as error:
        w.fetch_weights("fake", cache_dir=cache, registry=_registry(source))
    message = str(error.value)
    for part in (source.as_uri(), "fake.h5", str(cache), w.ENV_WEIGHTS_DIR, "offline"):
        assert part in message


def test_unreachable_url_is_an_offline_error(tmp_path):
    missing = tmp_path / "nowhere" / "fake.h5"
    registry = _registry(missing)
    with pytest.raises(w.WeightsOfflineError, match="the download failed") as error:
        w.fetch_weights("fake", cache_dir=tmp_path / "cache", registry=registry, progress=False)
    assert missing.as_uri() in str(error.value)
    assert [p.name for p in (tmp_path / "cache").iterdir()] == []  # the partial file is removed


def test_chexnet_without_url_tells_where_to_put_the_file(tmp_path):
    with pytest.raises(w.WeightsOfflineError, match="no public download URL") as error:
        w.fetch_weights("chexnet", cache_dir=tmp_path / "cache")
    assert "brucechou1983_CheXNet_Keras_0.3.0_weights.h5" in str(error.value)
    assert w.ENV_WEIGHTS_DIR in str(error.value)


def test_unknown_name_lists_the_registry(tmp_path):
    with pytest.raises(w.UnknownWeightsError, match="coco.*imagenet.*chexnet"):
        w.fetch_weights("resnet152", cache_dir=tmp_path)


def test_unregistered_local_file_is_returned_unchecked(tmp_path):
    path = tmp_path / "my_checkpoint.h5"
    path.write_bytes(b"anything")
    assert w.fetch_weights(str(path), cache_dir=tmp_path / "cache") == path


def test_destination_receives_a_copy(source, tmp_path):
    registry = _registry(source)
    cache = tmp_path / "cache"
    w.fetch_weights("fake", cache_dir=cache, registry=registry, progress=False)
    target = tmp_path / "project" / "weights"
    target.mkdir(parents=True)
    path = w.fetch_weights("fake", cache_dir=cache, registry=registry, destination=target, offline=True)
    assert path == target / "fake.h5" and path.read_bytes() == PAYLOAD


def test_default_cache_dir_follows_the_environment(tmp_path, monkeypatch):
    assert w.default_cache_dir() == tmp_path / "home" / ".cache" / "rsna_detector" / "weights"
    monkeypatch.setenv(w.ENV_CACHE, str(tmp_path / "elsewhere"))
    assert w.default_cache_dir() == tmp_path / "elsewhere"

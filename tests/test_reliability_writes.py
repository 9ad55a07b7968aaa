"""Writers under hostile use (issue 22, cases 7 and 8): ``synth`` never replaces a real data set's files
unless told to, and every figure goes through ``_io.save_figure`` (atomic, never through a link planted
in the output folder)."""
import pytest

from rsna_detector._paths import UnsafePathError


def _kaggle_like(folder):
    """A folder as a Kaggle download has it: the three CSVs and a real-looking DICOM folder."""
    folder.mkdir()
    for name in ("stage_2_train_labels.csv", "stage_2_detailed_class_info.csv", "stage_2_sample_submission.csv"):
        (folder / name).write_text(f"the real {name}\n")
    (folder / "stage_2_train_images").mkdir()
    (folder / "stage_2_train_images" / "real.dcm").write_bytes(b"real")
    return folder


def _contents(folder):
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# --------------------------------------------------------------------------- case 7
def test_synth_refuses_a_folder_holding_a_real_data_set(tmp_path, capsys):
    from rsna_detector.cli import main

    data = _kaggle_like(tmp_path / "rsna")
    before = _contents(data)
    code = main(["synth", str(data), "--n-train", "2", "--n-test", "1", "--image-size", "64", "--workers", "1",
                 "--quiet"])
    assert code != 0 and _contents(data) == before  # nothing written, nothing replaced
    message = capsys.readouterr().err
    assert str(data) in message and "not a synthetic data set" in message and "--overwrite" in message


def test_synth_writes_into_an_empty_folder_or_its_own_set_and_with_overwrite(tmp_path):
    from rsna_detector.data.synthetic import SyntheticTargetError, make_synthetic_dataset

    options = {"n_train": 2, "n_test": 1, "image_size": 64, "workers": 1, "progress": False}
    first = _contents(make_synthetic_dataset(tmp_path / "synthetic", **options).out_dir)
    assert _contents(make_synthetic_dataset(tmp_path / "synthetic", **options).out_dir) == first  # rerun: same set
    data = _kaggle_like(tmp_path / "rsna")
    with pytest.raises(SyntheticTargetError):
        make_synthetic_dataset(data, **options)
    make_synthetic_dataset(data, overwrite=True, **options)
    assert (data / "stage_2_train_labels.csv").read_text().startswith("patientId,")


# --------------------------------------------------------------------------- case 8
def test_eda_never_writes_through_a_link_planted_in_its_output_folder(tmp_path):
    from rsna_detector.data.synthetic import make_synthetic_dataset
    from rsna_detector.eda import run_eda

    make_synthetic_dataset(tmp_path / "data", n_train=12, n_test=0, seed=3, image_size=64, workers=1,
                           progress=False)
    outside = tmp_path / "precious.txt"
    outside.write_text("keep me")
    (tmp_path / "out" / "figures").mkdir(parents=True)
    (tmp_path / "out" / "figures" / "centroids.png").symlink_to(outside)
    with pytest.raises(UnsafePathError, match=r"centroids\.png: refused: it resolves to .*precious\.txt"):
        run_eda(tmp_path / "data", tmp_path / "out", with_images=False, progress=False)
    assert outside.read_text() == "keep me"


def test_save_figure_is_atomic_and_replaces_a_link_inside_the_folder_not_its_target(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from rsna_detector._io import save_figure

    figure = plt.figure(figsize=(1, 1))
    (tmp_path / "other.png").write_bytes(b"other")
    (tmp_path / "plot.png").symlink_to(tmp_path / "other.png")
    path = save_figure(figure, tmp_path / "plot.png", dpi=20)
    plt.close(figure)
    assert not path.is_symlink() and path.read_bytes().startswith(b"\x89PNG")
    assert (tmp_path / "other.png").read_bytes() == b"other"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.png", "plot.png"]  # no temporary file left

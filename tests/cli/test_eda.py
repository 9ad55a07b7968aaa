"""The eda command: arguments, the report written, a bad --sample-grid named."""
import argparse
import json

import pytest

from rsna_detector.cli import eda as eda_cli


@pytest.fixture(scope="module")
def synthetic_dir(tmp_path_factory):
    """20 synthetic patients at 256 px (as tests/test_eda.py's data set)."""
    from rsna_detector.data.synthetic import make_synthetic_dataset

    root = tmp_path_factory.mktemp("synthetic")
    make_synthetic_dataset(root, n_train=20, n_test=0, seed=3, image_size=256, workers=1, progress=False)
    return root


def test_command_line_no_images(synthetic_dir, tmp_path, capsys):
    parser = argparse.ArgumentParser(prog="rsna-detector")
    eda_cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["eda", "--data", str(synthetic_dir), "--out", str(tmp_path / "out"), "--no-images",
                              "--sample-grid", "4", "--quiet"])
    assert args.func(args) == 0
    assert f"wrote {tmp_path / 'out' / 'report.md'}" in capsys.readouterr().out
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["headers"]["available"] is False and summary["data"]["with_images"] is False
    assert {"age", "sample_grid", "header_dump"} <= {s["part"] for s in summary["skipped"]}
    assert not (tmp_path / "out" / "figures" / "sample_grid.png").exists()
    assert "*Figure not produced: images not read" in (tmp_path / "out" / "report.md").read_text()
    bad = parser.parse_args(["eda", "--data", str(synthetic_dir), "--out", str(tmp_path), "--sample-grid", "-1"])
    with pytest.raises(ValueError, match="--sample-grid"):
        bad.func(bad)

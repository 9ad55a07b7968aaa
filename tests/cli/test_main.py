"""The command line's frame: the parser (every group, --verbose anywhere, no TensorFlow), `python -m`, and
errors: the library's and the file system's in one line with status 2, anything else a traceback."""
import subprocess
import sys
from pathlib import Path

import pytest

from rsna_detector import cli
from rsna_detector.cli import build_parser
from rsna_detector.errors import RsnaDetectorError

ROOT = Path(__file__).resolve().parents[2]


def test_verbose_is_accepted_before_and_after_the_subcommand():
    parser = build_parser()
    assert parser.parse_args(["demo"]).verbose is False
    assert parser.parse_args(["demo", "--verbose"]).verbose is True
    assert parser.parse_args(["--verbose", "demo"]).verbose is True
    assert parser.parse_args(["eda", "--data", "d", "--out", "o", "--verbose"]).verbose is True


def test_every_command_group_registers_its_commands_in_help_order():
    commands = list(build_parser()._subparsers._group_actions[0].choices)
    assert commands == ["demo", "train", "evaluate", "predict", "submit", "export", "convert", "synth", "eda",
                        "classifier-train", "classifier-evaluate", "retinanet-train", "retinanet-evaluate"]


def test_python_dash_m_runs_the_command_line():
    done = subprocess.run([sys.executable, "-m", "rsna_detector.cli", "--help"], capture_output=True, text=True,
                          cwd=str(ROOT), env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: rsna-detector") and "retinanet-evaluate" in done.stdout


def _run_failing(monkeypatch, error):
    """``rsna-detector synth OUT`` whose library call raises ``error``."""
    def fail(*args, **kwargs):
        raise error

    monkeypatch.setattr("rsna_detector.data.synthetic.make_synthetic_dataset", fail)
    return cli.main(["synth", "out", "--quiet"])


@pytest.mark.parametrize("error", [
    RsnaDetectorError("labels.csv, line 3: Target 'x' is not 0 or 1"),
    FileNotFoundError(2, "No such file or directory", "/data/labels.csv"),
    cli.CommandLineError("submit: give --results FILE..."),
])
def test_library_and_file_system_errors_are_one_line_with_status_2(monkeypatch, capsys, error):
    assert _run_failing(monkeypatch, error) == 2
    err = capsys.readouterr().err
    assert err == f"rsna-detector synth: error: {error}\n"


def test_a_library_error_keeps_its_builtin_base_and_is_reported(monkeypatch, capsys):
    class Bad(RsnaDetectorError, ValueError):
        pass

    assert _run_failing(monkeypatch, Bad("bad.csv: expected a header")) == 2
    assert capsys.readouterr().err.count("\n") == 1
    assert issubclass(cli.CommandLineError, ValueError) and issubclass(cli.CommandLineError, RsnaDetectorError)


def test_an_error_that_is_not_the_librarys_is_not_swallowed(monkeypatch):
    """A bare ValueError or TypeError is a bug, not bad input: it propagates with its traceback."""
    with pytest.raises(TypeError, match="a bug"):
        _run_failing(monkeypatch, TypeError("a bug"))
    with pytest.raises(ValueError, match="also a bug"):
        _run_failing(monkeypatch, ValueError("also a bug"))


def test_ctrl_c_is_status_130_in_one_line(monkeypatch, capsys):
    assert _run_failing(monkeypatch, KeyboardInterrupt()) == 130
    assert capsys.readouterr().err == "rsna-detector synth: interrupted\n"


def test_importing_the_main_module_runs_nothing():
    """Tools that import every module of the package (documentation, the error-class walk) start no command."""
    import importlib

    module = importlib.import_module("rsna_detector.cli.__main__")
    assert module.main is cli.main

"""The quiet console: TensorFlow's C++ noise hidden by default, a --verbose switch, the user's
TF_CPP_MIN_LOG_LEVEL respected, no global change on import, and the small formatting helpers."""
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from rsna_detector.console import format_table

ROOT = Path(__file__).resolve().parents[1]

# Imports TensorFlow and runs a traced graph holding CropAndResize (the op grappler complains about).
TF_WORK = textwrap.dedent("""
    import tensorflow as tf

    @tf.function
    def crop(x):
        return tf.image.crop_and_resize(x, [[0.0, 0.0, 1.0, 1.0]], [0], [4, 4])

    print(crop(tf.zeros([1, 8, 8, 1])).shape)
""")


def _python(code, **env_changes):
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    env["PYTHONPATH"] = str(ROOT)
    env.update({k: v for k, v in env_changes.items() if v is not None})
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300,
                          cwd=str(ROOT))


def test_quiet_tensorflow_hides_the_cpp_and_absl_lines():
    loud = _python(TF_WORK)
    quiet = _python("from rsna_detector.console import quiet_tensorflow\nassert quiet_tensorflow()\n" + TF_WORK)
    assert quiet.returncode == 0 and loud.returncode == 0, quiet.stderr + loud.stderr
    assert quiet.stdout.strip() == loud.stdout.strip() == "(1, 4, 4, 1)"
    assert quiet.stderr == ""
    if not loud.stderr:
        pytest.skip("this TensorFlow build prints nothing at start-up: nothing to compare with")


def test_a_tf_cpp_min_log_level_set_by_the_user_is_respected():
    code = ("import os, sys\nfrom rsna_detector.console import quiet_tensorflow\n"
            "changed = quiet_tensorflow()\n"
            "print(changed, os.environ['TF_CPP_MIN_LOG_LEVEL'], len(sys.meta_path))")
    baseline = _python("import sys; print(len(sys.meta_path))")
    out = _python(code, TF_CPP_MIN_LOG_LEVEL="0")
    changed, level, finders = out.stdout.split()
    assert (changed, level, finders) == ("False", "0", baseline.stdout.strip())


def test_verbose_changes_nothing():
    code = ("import os, sys\nfrom rsna_detector.console import quiet_tensorflow\n"
            "print(quiet_tensorflow(verbose=True), 'TF_CPP_MIN_LOG_LEVEL' in os.environ)")
    assert _python(code).stdout.split() == ["False", "False"]


def test_importing_the_library_changes_no_global_logging_state():
    code = textwrap.dedent("""
        import logging, os, sys, warnings
        import numpy, pandas  # third-party dependencies add warning filters of their own on import
        def state():
            loggers = {name: (lg.level, len(lg.handlers), lg.propagate)
                       for name, lg in logging.root.manager.loggerDict.items() if isinstance(lg, logging.Logger)}
            return (dict(os.environ), logging.root.level, len(logging.root.handlers), list(warnings.filters),
                    [type(f).__name__ for f in sys.meta_path], loggers)
        before = state()
        import rsna_detector, rsna_detector.console, rsna_detector.cli, rsna_detector.detector.demo
        rsna_detector.cli.build_parser()
        after = state()
        new_loggers = set(after[-1]) - set(before[-1])
        assert before[:-1] == after[:-1], [a for a, b in zip(before, after) if a != b]
        assert all(after[-1][name] == (logging.NOTSET, 0, True) for name in new_loggers), after[-1]
        print("ok")
    """)
    out = _python(code)
    assert out.stdout.strip() == "ok", out.stderr[-2000:]


def test_format_table_aligns_text_left_and_numbers_right():
    text = format_table([("mAP", 0.5), ("a longer name", 12.34567), ("undefined", float("nan")), ("count", 7)],
                        headers=("metric", "value"))
    assert text.splitlines() == [
        "metric          value",
        "-------------  ------",
        "mAP             0.500",
        "a longer name  12.346",
        "undefined           -",
        "count               7",
    ]


def test_epoch_line_names_every_loss_once():
    from rsna_detector.mrcnn.train.progress import format_epoch_line

    logs = {"loss": 1.98351, "rpn_class_loss": 0.0712, "rpn_bbox_loss": 0.5, "mrcnn_class_loss": 0.2,
            "mrcnn_bbox_loss": 0.3, "mrcnn_mask_loss": 0.1, "val_loss": 2.0, "val_rpn_class_loss": 9.0}
    line = format_epoch_line(3, 10, logs, seconds=21.6)
    assert line == ("epoch  3/10  loss 1.984  rpn_class 0.071  rpn_bbox 0.500  mrcnn_class 0.200  "
                    "mrcnn_bbox 0.300  mrcnn_mask 0.100 | val loss 2.000  (22 s)")

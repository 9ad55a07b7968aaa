"""Worker pools' start method (``rsna_detector._processes``, issue 26): spawn, safe beside threads,
except where spawned workers would run a script's top level again; checked in real scripts."""
import subprocess
import sys
from pathlib import Path

import pytest

from rsna_detector import _processes

ROOT = Path(__file__).resolve().parents[1]

DECISIONS = """\
import sys, threading
sys.path.insert(0, {root!r})
from rsna_detector._processes import worker_context

def method():
    return worker_context().get_start_method()

print("top", method())
thread = threading.Thread(target=lambda: print("thread", method()))
thread.start()
thread.join()
"""
GUARD = """\
if __name__ == "__main__":
    print("guard", method())
"""


def _run(arguments, cwd):
    completed = subprocess.run([sys.executable, *arguments], capture_output=True, text=True, cwd=cwd, timeout=300)
    assert completed.returncode == 0, (completed.stdout, completed.stderr)
    return completed.stdout.splitlines()


def _script(folder, text):
    path = folder / "script.py"
    path.write_text(text, encoding="utf-8")
    return path


def test_in_this_test_run_pools_spawn():
    assert _processes.START_METHOD == "spawn"
    assert not _processes.main_reruns_in_workers()
    assert _processes.worker_context().get_start_method() == "spawn"


def test_a_guarded_script_spawns_except_from_code_outside_its_guard(tmp_path):
    script = _script(tmp_path, DECISIONS.format(root=str(ROOT)) + GUARD)
    # top-level code outside the guard would run again in a spawned worker: fork, as before
    assert _run([str(script)], tmp_path) == ["top fork", "thread spawn", "guard spawn"]


def test_a_script_without_guard_forks(tmp_path):
    script = _script(tmp_path, DECISIONS.format(root=str(ROOT)))
    assert _run([str(script)], tmp_path) == ["top fork", "thread fork"]


def test_code_given_with_dash_c_spawns(tmp_path):
    code = DECISIONS.format(root=str(ROOT)) + GUARD
    assert _run(["-c", code], tmp_path) == ["top spawn", "thread spawn", "guard spawn"]


def test_a_script_read_from_standard_input_forks(tmp_path):
    """Its ``__file__`` is ``<stdin>``, which a spawned worker cannot import."""
    code = DECISIONS.format(root=str(ROOT)) + GUARD
    completed = subprocess.run([sys.executable, "-"], input=code, capture_output=True, text=True, cwd=tmp_path,
                               timeout=300)
    assert completed.stdout.splitlines() == ["top fork", "thread fork", "guard fork"], completed.stderr


@pytest.mark.parametrize("test", ['__name__ == "__main__"', "'__main__' == __name__", "__name__ != '__main__'",
                                  "__name__ == '__mp_main__'", "name == '__main__'"])
def test_what_counts_as_a_guard(test):
    import ast

    (node,) = ast.parse(f"if {test}:\n    pass\n").body
    assert _processes._is_main_guard(node) == (test in {'__name__ == "__main__"', "'__main__' == __name__"})


SYNTHETIC = """\
import multiprocessing, sys
sys.path.insert(0, {root!r})
import rsna_detector._processes as processes
from rsna_detector.data.synthetic import make_synthetic_dataset

print("imported as", __name__, flush=True)
chosen = []
decide = processes.worker_context
processes.worker_context = lambda: chosen.append(decide()) or chosen[-1]

def run():
    summary = make_synthetic_dataset({out!r}, n_train=4, n_test=2, seed=0, image_size=64, workers=2, progress=False)
    print("images", len(list(summary.train_images.glob("*.dcm"))) + len(list(summary.test_images.glob("*.dcm"))))
    print("start method", chosen[-1].get_start_method())
"""


def test_a_script_without_guard_still_runs_once_with_worker_processes(tmp_path):
    """Spawned workers would run it again, each starting a pool of its own: the pools fork instead."""
    script = _script(tmp_path, SYNTHETIC.format(root=str(ROOT), out=str(tmp_path / "data")) + "run()\n")
    assert _run([str(script)], tmp_path) == ["imported as __main__", "images 6", "start method fork"]


def test_a_guarded_script_spawns_its_workers(tmp_path):
    """Each spawned worker imports the script as ``__mp_main__`` (its guarded work does not run there)."""
    script = _script(tmp_path, SYNTHETIC.format(root=str(ROOT), out=str(tmp_path / "data"))
                     + 'if __name__ == "__main__":\n    run()\n')
    lines = _run([str(script)], tmp_path)
    workers = lines.count("imported as __mp_main__")
    assert sorted(lines) == sorted(["imported as __main__", "images 6", "start method spawn"]
                                   + ["imported as __mp_main__"] * workers), lines
    assert 1 <= workers <= 2, lines

"""``rsna-detector convert`` interrupted (issue 14, item 11): real processes, real signals.

The command runs in its own session with two workers on copies of a 1024x1024 DICOM (a few
seconds of work); once the first outputs appear it is killed (SIGKILL), terminated (SIGTERM)
or interrupted (SIGINT to its process group, as Ctrl-C in a terminal). Then no worker may
survive its parent, an interrupt must end the command within two seconds, and no temporary
``.partial`` file may be left; every output that exists is a complete PNG.
"""
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses /proc and POSIX signals")

N_FILES = 120


@pytest.fixture(scope="module")
def source_folder(tmp_path_factory):
    from rsna_detector.data.synthetic import write_jpeg_dicom

    folder = tmp_path_factory.mktemp("dicoms")
    noise = np.random.default_rng(0).integers(0, 256, (1024, 1024)).astype(np.uint8)  # slow to encode as PNG
    first = folder / "p0000.dcm"
    write_jpeg_dicom(first, noise, patient_id="p0000", quality=95)
    for index in range(1, N_FILES):
        shutil.copy(first, folder / f"p{index:04d}.dcm")
    return folder


def _children(pid):
    """PIDs whose parent is ``pid`` (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def _alive(pid):
    """True while ``pid`` exists and is not a zombie (a dead process not yet reaped)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _start_convert(source, out, workers=2):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[2]),
                                                        os.environ.get("PYTHONPATH", "")])}
    process = subprocess.Popen(
        [sys.executable, "-c", "import sys; from rsna_detector.cli import main; sys.exit(main())",
         "convert", str(source), str(out), "--workers", str(workers), "--quiet"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        children = _children(process.pid)
        if len(children) >= (workers if workers > 1 else 0) and out.is_dir() and len(list(out.glob("*.png"))) >= 2:
            return process, children
        if process.poll() is not None:
            pytest.fail(f"convert ended before it could be interrupted: {process.communicate()}")
        time.sleep(0.05)
    process.kill()
    pytest.fail("convert did not start converting within 60 s")


def _wait_gone(pids, seconds):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and any(_alive(pid) for pid in pids):
        time.sleep(0.05)
    return [pid for pid in pids if _alive(pid)]


def _assert_clean_outputs(out):
    assert sorted(p.name for p in out.iterdir() if p.name.endswith(".partial")) == []
    outputs = sorted(out.glob("*.png"))
    assert 0 < len(outputs) < N_FILES  # interrupted in the middle
    for path in outputs:
        assert path.read_bytes()[-8:] == b"IEND\xaeB`\x82"  # complete PNG files only


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_workers_die_with_their_parent(source_folder, tmp_path, sig):
    out = tmp_path / "out"
    process, workers = _start_convert(source_folder, out)
    try:
        os.kill(process.pid, sig)
        process.wait(timeout=20)
        survivors = _wait_gone(workers, 5)
        assert survivors == [], f"worker(s) {survivors} outlived the parent killed by {sig.name}"
    finally:
        for pid in _children(process.pid) + workers:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
    _assert_clean_outputs(out)


@pytest.mark.parametrize("n_workers", [2, 1])
def test_ctrl_c_stops_within_two_seconds(source_folder, tmp_path, n_workers):
    out = tmp_path / "out"
    process, workers = _start_convert(source_folder, out, n_workers)
    try:
        started = time.monotonic()
        os.killpg(process.pid, signal.SIGINT)  # what a terminal sends on Ctrl-C: the whole group
        process.wait(timeout=20)
        elapsed = time.monotonic() - started
        survivors = _wait_gone(workers, 2)
    finally:
        for pid in _children(process.pid) + workers:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
    assert elapsed < 2.0, f"convert took {elapsed:.1f} s to stop after Ctrl-C"
    assert survivors == []
    assert process.returncode == 130
    assert "interrupted" in process.stderr.read().decode()
    _assert_clean_outputs(out)

#!/usr/bin/env bash
# The floor job (issue 26): a venv holding the LOWEST version of every runtime dependency that
# pyproject.toml allows (tensorflow, keras, keras-hub, numpy, pandas, pydicom, h5py, scikit-image,
# ...: each `name>=X` installed as `name==X`, by .ci/floor_constraints.py), a check that pip really
# installed those versions, then the fast test suite in it. pip resolves everything else
# (tensorflow-text, protobuf, opencv-python, the test tools) to what those floors accept.
#
#   make test-floor                                  # or: .ci/test_floor_versions.sh
#   .ci/test_floor_versions.sh tests/data -x         # pytest arguments replace `tests`
#   PYTHON=python3.11 FLOOR_VENV=/tmp/floor make test-floor
#
# PYTHON: the venv's interpreter (default python3). Run it on the lowest Python that
# requires-python allows (3.11): old releases of numpy, scipy and pandas have no wheels for newer
# Pythons, so on 3.12/3.13 some floors cannot be installed (pip then tries to build them from
# source: that is not a failure of the library's ranges). With PYTHON=python3.10 pip refuses the
# library (requires-python >=3.11: keras >= 3.15 and keras-hub 0.32 are published for Python >= 3.11
# only). FLOOR_VENV (default .venv-floor) is rebuilt when the floors or the interpreter change,
# reused otherwise.
# Not part of .ci/run: the first install downloads TensorFlow (about 600 MB) and the tests take
# 15-60 minutes on 2 shared cores. Run it after changing a lower bound, and before a release.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
VENV="${FLOOR_VENV:-.venv-floor}"
export RSNA_DATA_DIR="${RSNA_DATA_DIR:-$(cd .. && pwd)/shared/rsna}"
export MPLBACKEND=Agg

if ! version="$("$PYTHON" --version 2>&1)"; then
    echo "PYTHON=$PYTHON does not run: $version" >&2
    exit 2
fi
floors="$(python3 .ci/floor_constraints.py pyproject.toml)"
wanted="$version"$'\n'"$floors"
if [[ ! -f "$VENV/floor-constraints.txt" || "$(cat "$VENV/floor-constraints.txt")" != "$wanted" ]]; then
    rm -rf "$VENV"
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --upgrade pip
    printf '%s\n' "$floors" > "$VENV/floors.txt"
    "$VENV/bin/pip" install --quiet -c "$VENV/floors.txt" -e ".[test]"
    # matterport's Mask_RCNN, the test oracle (no declared dependencies; see the Makefile)
    "$VENV/bin/pip" install --quiet --no-deps mrcnn-colab==2.1.0
    printf '%s\n' "$wanted" > "$VENV/floor-constraints.txt"
fi
"$VENV/bin/python" --version
"$VENV/bin/python" .ci/floor_constraints.py --check pyproject.toml
"$VENV/bin/python" -m pytest -q -p no:cacheprovider "${@:-tests}"

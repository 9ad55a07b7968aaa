#!/usr/bin/env bash
# The floor job (issue 26): builds a fresh venv holding the LOWEST version of every runtime dependency
# that pyproject.toml allows (tensorflow, keras, keras-hub, numpy, pandas, pydicom, h5py,
# scikit-image, ...: each `name>=X` pinned to `name==X` by .ci/floor_constraints.py), checks that
# pip really installed those versions, then runs the fast test suite in it. pip resolves everything
# else (tensorflow-text, protobuf, opencv-python, the test tools) to what those floors accept.
#
#   make test-floor                      # or: .ci/test_floor_versions.sh [pytest arguments]
#   PYTHON=python3.11 make test-floor    # the interpreter of the venv (default python3)
#
# Run it on the lowest Python that requires-python allows (3.11): older releases of numpy, scipy
# and pandas have no wheels for newer Pythons, so on 3.12/3.13 some floors cannot be installed
# (pip then fails to build them from source: that is not a failure of the library's ranges).
# With PYTHON=python3.10, pip refuses the library (requires-python >=3.11: keras >= 3.15 and
# keras-hub 0.32 are published for Python >= 3.11 only).
# Not part of .ci/run: the install downloads TensorFlow (about 600 MB) and the tests take 10-20
# minutes on 2 cores. Run it after changing a lower bound in pyproject.toml, and before a release.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
VENV="${FLOOR_VENV:-.venv-floor}"
export RSNA_DATA_DIR="${RSNA_DATA_DIR:-$(cd .. && pwd)/shared/rsna}"
export MPLBACKEND=Agg

rm -rf "$VENV"
"$PYTHON" -m venv "$VENV"
"$VENV/bin/pip" install --quiet --upgrade pip
python3 .ci/floor_constraints.py pyproject.toml > "$VENV/floor-constraints.txt"
echo "floors (from pyproject.toml):"
sed 's/^/  /' "$VENV/floor-constraints.txt"
"$VENV/bin/pip" install --quiet -c "$VENV/floor-constraints.txt" -e ".[test]"
# matterport's Mask_RCNN, the test oracle (no declared dependencies; see the Makefile)
"$VENV/bin/pip" install --quiet --no-deps mrcnn-colab==2.1.0
"$VENV/bin/python" .ci/floor_constraints.py --check pyproject.toml
"$VENV/bin/python" --version
"$VENV/bin/python" -m pytest -q -p no:cacheprovider tests "$@"

"""Fixtures of the engine's tests: matterport's own code as the oracle (``tests/matterport_oracle.py``)."""
import pytest

from tests import matterport_oracle as oracle


@pytest.fixture(scope="module")
def mpm():
    """matterport's ``model.py`` namespace (skips the test when matterport is not installed)."""
    return oracle.model()


@pytest.fixture(scope="module")
def mpu():
    """matterport's ``mrcnn.utils`` (skips the test when matterport is not installed)."""
    return oracle.utils()

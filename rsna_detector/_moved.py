"""Module paths that moved in 0.2 (issue 13): importing one names the new place.

The detector's modules moved from the top level into :mod:`rsna_detector.detector`
(``train`` -> ``schedule``, ``predict`` -> ``inference``), and ``data.dataset`` with them,
since a dataset of the engine's is not part of the engine-free data layer. The package's
names (``from rsna_detector import DetectorConfig, train, predict``) did not move. An
import of an old path fails at once with the path to use instead, rather than a bare
``No module named ...``.
"""
from __future__ import annotations

import importlib.abc
import sys

__all__ = ["MOVED_MODULES", "install"]

#: old module path -> where it lives now
MOVED_MODULES = {
    "rsna_detector.config": "rsna_detector.detector.config",
    "rsna_detector.augment": "rsna_detector.detector.augment",
    "rsna_detector.augmenters": "rsna_detector.detector.augmenters",
    "rsna_detector.train": "rsna_detector.detector.schedule",
    "rsna_detector.predict": "rsna_detector.detector.inference",
    "rsna_detector.evaluate": "rsna_detector.detector.evaluate",
    "rsna_detector.competition": "rsna_detector.detector.competition",
    "rsna_detector.submission": "rsna_detector.detector.submission",
    "rsna_detector.figures": "rsna_detector.detector.figures",
    "rsna_detector.demo": "rsna_detector.detector.demo",
    "rsna_detector.data.dataset": "rsna_detector.detector.dataset",
}


class _MovedModuleFinder(importlib.abc.MetaPathFinder):
    """Refuses the old paths of moved modules with a message that names the new one."""

    def find_spec(self, fullname, path=None, target=None):
        new_name = MOVED_MODULES.get(fullname)
        if new_name is None:
            return None
        raise ModuleNotFoundError(
            f"{fullname} moved to {new_name} in rsna_detector 0.2: import it from there "
            "(the package's own names, e.g. `from rsna_detector import train`, are unchanged)",
            name=fullname)


def install():
    """Put the finder on ``sys.meta_path`` once (it answers only for ``MOVED_MODULES``)."""
    if not any(isinstance(finder, _MovedModuleFinder) for finder in sys.meta_path):
        sys.meta_path.append(_MovedModuleFinder())

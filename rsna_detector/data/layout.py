"""``KaggleLayout``: where the label CSVs and image folders of a data directory are.

Two layouts are recognised:

* the Kaggle download, everything at the top of ``DATA``::

      DATA/stage_2_train_labels.csv
      DATA/stage_2_detailed_class_info.csv
      DATA/stage_2_sample_submission.csv
      DATA/stage_2_train_images/<patientId>.dcm
      DATA/stage_2_test_images/<patientId>.dcm

  (the stage 1 names, ``stage_1_*``, are accepted as well; stage 2 wins when
  both are present);
* the sample layout of the shared real samples: ``DATA/labels/`` holding the
  same CSV names and ``DATA/images/`` holding training DICOMs.

Paths that are absent are ``None``; ``require_labels()`` raises a clear error
when no labels file was found.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ..errors import RsnaDetectorError

__all__ = ["KaggleLayout", "LayoutError", "TRAIN_LABELS", "CLASS_INFO", "SAMPLE_SUBMISSION", "TRAIN_IMAGES",
           "TEST_IMAGES", "SAMPLE_LABELS_FOLDER", "SAMPLE_IMAGES_FOLDER"]

_STAGES = ("stage_2", "stage_1")  # the first is the final stage's, written by make_synthetic_dataset
_LABELS_NAME = "{stage}_train_labels.csv"
_CLASS_INFO_NAME = "{stage}_detailed_class_info.csv"
_SUBMISSION_NAME = "{stage}_sample_submission.csv"
_TRAIN_IMAGES_NAME = "{stage}_train_images"
_TEST_IMAGES_NAME = "{stage}_test_images"

#: The Kaggle download's names (stage 2), the one place the library spells them.
TRAIN_LABELS = _LABELS_NAME.format(stage=_STAGES[0])
CLASS_INFO = _CLASS_INFO_NAME.format(stage=_STAGES[0])
SAMPLE_SUBMISSION = _SUBMISSION_NAME.format(stage=_STAGES[0])
TRAIN_IMAGES = _TRAIN_IMAGES_NAME.format(stage=_STAGES[0])
TEST_IMAGES = _TEST_IMAGES_NAME.format(stage=_STAGES[0])
#: The sample layout's folders (the shared real samples): CSVs in ``labels/``, DICOMs in ``images/``.
SAMPLE_LABELS_FOLDER = "labels"
SAMPLE_IMAGES_FOLDER = "images"

_CSV_FOLDERS = (".", SAMPLE_LABELS_FOLDER)
_TRAIN_IMAGES_NAMES = tuple(_TRAIN_IMAGES_NAME.format(stage=stage) for stage in _STAGES) + (SAMPLE_IMAGES_FOLDER,)
_TEST_IMAGES_NAMES = tuple(_TEST_IMAGES_NAME.format(stage=stage) for stage in _STAGES)


class LayoutError(RsnaDetectorError, FileNotFoundError):
    """A data directory lacks a file the caller needs; the message names the
    directory and every path that was looked for."""


def _csv_candidates(root: Path, pattern: str) -> list[Path]:
    return [root / folder / pattern.format(stage=stage) for stage in _STAGES for folder in _CSV_FOLDERS]


def _first_file(candidates) -> Optional[Path]:
    return next((path for path in candidates if path.is_file()), None)


def _first_dir(candidates) -> Optional[Path]:
    return next((path for path in candidates if path.is_dir()), None)


@dataclass(frozen=True)
class KaggleLayout:
    """The files of an RSNA data directory (``None`` where absent).

    Attributes
    ----------
    root : Path
        The data directory.
    train_labels : Path or None
        ``stage_2_train_labels.csv`` (``patientId,x,y,width,height,Target``).
    class_info : Path or None
        ``stage_2_detailed_class_info.csv`` (``patientId,class``).
    sample_submission : Path or None
        ``stage_2_sample_submission.csv`` (``patientId,PredictionString``).
    train_images : Path or None
        Folder of training DICOMs ``<patientId>.dcm`` (``stage_2_train_images/``
        or, in the sample layout, ``images/``).
    test_images : Path or None
        Folder of test DICOMs (``stage_2_test_images/``).
    """

    root: Path
    train_labels: Optional[Path] = None
    class_info: Optional[Path] = None
    sample_submission: Optional[Path] = None
    train_images: Optional[Path] = None
    test_images: Optional[Path] = None

    @classmethod
    def from_dir(cls, data_dir) -> "KaggleLayout":
        """Find the RSNA files in ``data_dir`` (a path, or a ``KaggleLayout`` returned as is).

        Raises
        ------
        LayoutError
            When ``data_dir`` is not a directory.
        """
        if isinstance(data_dir, KaggleLayout):
            return data_dir
        root = Path(os.fspath(data_dir)).expanduser()
        if not root.is_dir():
            raise LayoutError(f"{root}: not a directory (expected an RSNA data directory in the Kaggle layout)")
        return cls(
            root=root,
            train_labels=_first_file(_csv_candidates(root, _LABELS_NAME)),
            class_info=_first_file(_csv_candidates(root, _CLASS_INFO_NAME)),
            sample_submission=_first_file(_csv_candidates(root, _SUBMISSION_NAME)),
            train_images=_first_dir(root / name for name in _TRAIN_IMAGES_NAMES),
            test_images=_first_dir(root / name for name in _TEST_IMAGES_NAMES),
        )

    def require_labels(self) -> Path:
        """The training labels CSV; raises ``LayoutError`` naming what was looked for when absent."""
        return self._require(self.train_labels, _csv_candidates(self.root, _LABELS_NAME), "training labels file")

    def require_class_info(self) -> Path:
        """The detailed class info CSV; raises ``LayoutError`` when absent."""
        return self._require(self.class_info, _csv_candidates(self.root, _CLASS_INFO_NAME), "class info file")

    def require_train_images(self) -> Path:
        """The training image folder; raises ``LayoutError`` when absent."""
        return self._require(self.train_images, [self.root / n for n in _TRAIN_IMAGES_NAMES],
                             "training image folder")

    def require_test_images(self) -> Path:
        """The test image folder; raises ``LayoutError`` when absent."""
        return self._require(self.test_images, [self.root / n for n in _TEST_IMAGES_NAMES], "test image folder")

    def _require(self, path, candidates, what) -> Path:
        if path is not None:
            return path
        looked = ", ".join(str(p.relative_to(self.root)).replace(os.sep, "/") for p in candidates)
        raise LayoutError(f"{self.root}: no {what} found (looked for {looked})")

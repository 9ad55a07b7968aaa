"""``DetectorDataset``: RSNA patients as a matterport-style ``Dataset``.

One class, 'Lung Opacity' (class id 1; 0 is background). Images come from the
DICOM files, read at the training size through the fast decode path and
repeated to 3 channels (the COCO-pretrained backbone expects RGB). Masks are
the label boxes filled as rectangles: RSNA labels are boxes, not outlines, so
a filled box is the only mask the labels support, and the mask head then
learns box-shaped masks whose bounding boxes are the detections. Negative
patients are kept, with zero masks, and are trained on.
"""
from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np

from ..data.images import grey_to_rgb
from ..data.labels import POSITIVE_CLASS
from ..data.splits import DEFAULT_SPLIT_SEED
from ..mrcnn.utils import Dataset

__all__ = ["DetectorDataset", "boxes_to_masks", "SOURCE", "CLASS_NAME", "records_and_image_dir"]

log = logging.getLogger(__name__)

SOURCE = "rsna"
CLASS_NAME = POSITIVE_CLASS


def boxes_to_masks(boxes, height, width):
    """Filled-rectangle masks for engine boxes.

    Parameters
    ----------
    boxes : float array [N, (y1, x1, y2, x2)]
        Pixels, y2/x2 exclusive; rounded to the nearest pixel, clipped to the
        image, and at least one pixel tall and wide.
    height, width : int

    Returns
    -------
    bool array [height, width, N]
    """
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    masks = np.zeros((height, width, len(boxes)), dtype=bool)
    for i, (y1, x1, y2, x2) in enumerate(np.round(boxes).astype(int)):
        y1, x1 = np.clip(y1, 0, height - 1), np.clip(x1, 0, width - 1)
        y2, x2 = np.clip(max(y2, y1 + 1), 1, height), np.clip(max(x2, x1 + 1), 1, width)
        masks[y1:y2, x1:x2, i] = True
    return masks


class DetectorDataset(Dataset):
    """RSNA patients with their opacity boxes.

    Parameters
    ----------
    image_size : int, optional
        Side the images are read at (square); the config's IMAGE_MAX_DIM
        (256 for the RSNA settings). None reads the file's own size.

    Each image's ``image_info`` entry holds ``path``, ``id`` (the patientId),
    ``boxes`` (float32 [N, (y1, x1, y2, x2)] in the file's pixels), ``target``
    and ``class_name``.
    """

    def __init__(self, image_size=None):
        super().__init__()
        self.image_size = image_size
        self.add_class(SOURCE, 1, CLASS_NAME)

    # ------------------------------------------------------------------ build
    def add_patients(self, records, image_dir):
        """Add ``PatientRecord``s whose DICOM is ``image_dir/<patientId>.dcm``.

        Returns the list of patient ids whose file is missing (they are not
        added; one warning names them).

        Raises
        ------
        UnsafePathError
            A patientId that is not an RSNA id (a path separator, '..', a
            drive letter...): no file outside ``image_dir`` is ever read.
        """
        from .._paths import check_patient_id, path_in_folder

        image_dir = Path(image_dir)
        missing = []
        for record in records:
            check_patient_id(record.patient_id, where=f"{image_dir}: patient record")
            path = path_in_folder(image_dir, record.patient_id, ".dcm", for_writing=False)
            if not path.is_file():
                missing.append(record.patient_id)
                continue
            self.add_image(SOURCE, image_id=record.patient_id, path=str(path), boxes=record.boxes,
                           target=record.target, class_name=record.class_name)
        if missing:
            shown = ", ".join(missing[:10]) + (f" and {len(missing) - 10} more" if len(missing) > 10 else "")
            warnings.warn(f"{image_dir}: {len(missing)} patients have no DICOM file and were left out: {shown}",
                          stacklevel=2)
        return missing

    @classmethod
    def from_records(cls, records, image_dir, *, image_size=None, patient_ids=None):
        """A prepared dataset from ``{patientId: PatientRecord}`` (or a list of records).

        ``patient_ids`` selects and orders a subset.
        """
        if isinstance(records, dict):
            records = [records[pid] for pid in patient_ids] if patient_ids is not None else list(records.values())
        elif patient_ids is not None:
            wanted = set(patient_ids)
            records = [r for r in records if r.patient_id in wanted]
        dataset = cls(image_size=image_size)
        dataset.add_patients(records, image_dir)
        dataset.prepare()
        return dataset

    @classmethod
    def from_patient_table(cls, boxes_table, image_dir, *, image_size=None, patient_ids=None):
        """A prepared dataset from a label table (one row per box, ``read_labels``'s columns)."""
        from ..data.labels import records_from_frame

        return cls.from_records(records_from_frame(boxes_table), image_dir, image_size=image_size,
                                patient_ids=patient_ids)

    @classmethod
    def from_data_dir(cls, data_dir, *, image_size=None, patient_ids=None, strict=True):
        """A prepared dataset of the training patients of a Kaggle-layout directory."""
        records, image_dir = records_and_image_dir(data_dir, strict)
        return cls.from_records(records, image_dir, image_size=image_size, patient_ids=patient_ids)

    @classmethod
    def split_from_data_dir(cls, data_dir, *, image_size=None, val_fraction=None, val_count=None,
                            seed=DEFAULT_SPLIT_SEED, strict=True, train_negatives_per_positive=None):
        """(train, validation) datasets, split at patient level, stratified by Target.

        Default split: 10 % of patients for validation. ``train_negatives_per_positive``
        (for example 1.0) keeps at most that many negative patients per positive
        one in the *training* split, drawn with ``seed`` (downsampling negatives,
        as top RSNA solutions did, speeds up short trainings); the validation
        split keeps the real proportions.
        """
        from ..data.splits import split_patients

        records, image_dir = records_and_image_dir(data_dir, strict)
        if val_fraction is None and val_count is None:
            val_fraction = 0.1
        ids = list(records)
        train_ids, val_ids = split_patients(ids, [records[i].target for i in ids], val_fraction=val_fraction,
                                            val_count=val_count, seed=seed)
        if train_negatives_per_positive is not None:
            train_ids = _downsample_negatives(train_ids, records, train_negatives_per_positive, seed)
        return (cls.from_records(records, image_dir, image_size=image_size, patient_ids=train_ids),
                cls.from_records(records, image_dir, image_size=image_size, patient_ids=val_ids))

    # ------------------------------------------------------------------ read
    def load_image(self, image_id):
        """uint8 [S, S, 3] (or the file's size when ``image_size`` is None), grey repeated to RGB."""
        from ..data.dicom import read_dicom

        info = self.image_info[image_id]
        image, meta = read_dicom(info["path"], size=self.image_size)
        info["original_shape"] = (meta.rows, meta.columns)
        return grey_to_rgb(image, info["path"])

    def load_mask(self, image_id):
        """(bool [S, S, N], int32 [N]): filled boxes scaled to the loaded size; N = 0 for negatives."""
        info = self.image_info[image_id]
        rows, columns = self._original_shape(image_id)
        height, width = (self.image_size, self.image_size) if self.image_size else (rows, columns)
        boxes = np.asarray(info["boxes"], np.float32).reshape(-1, 4)
        scale = np.array([height / rows, width / columns, height / rows, width / columns], np.float32)
        masks = boxes_to_masks(boxes * scale, height, width)
        return masks, np.ones(masks.shape[-1], np.int32)

    def load_boxes(self, image_id):
        """Ground-truth boxes float32 [N, (y1, x1, y2, x2)] in the file's own pixels."""
        return np.asarray(self.image_info[image_id]["boxes"], np.float32).reshape(-1, 4)

    def image_reference(self, image_id):
        """The DICOM path of an image."""
        return self.image_info[image_id]["path"]

    def patient_id(self, image_id):
        """The RSNA patientId of an image."""
        return self.image_info[image_id]["id"]

    def _original_shape(self, image_id):
        info = self.image_info[image_id]
        if "original_shape" not in info:
            from ..data.dicom import read_dicom_metadata

            meta = read_dicom_metadata(info["path"])
            info["original_shape"] = (meta.rows, meta.columns)
        return info["original_shape"]


def _downsample_negatives(patient_ids, records, negatives_per_positive, seed):
    """Keep every positive id and at most ``negatives_per_positive`` x as many negatives (seeded), in order."""
    positives = [i for i in patient_ids if records[i].target == 1]
    negatives = [i for i in patient_ids if records[i].target == 0]
    keep = min(len(negatives), int(round(negatives_per_positive * len(positives))))
    chosen = set(np.random.default_rng(seed).choice(len(negatives), size=keep, replace=False).tolist())
    kept_negatives = {negatives[k] for k in chosen}
    return [i for i in patient_ids if records[i].target == 1 or i in kept_negatives]


def records_and_image_dir(data_dir, strict):
    """The patient records (``load_patient_records``) and training image folder of a Kaggle layout in ``data_dir``."""
    from ..data.labels import load_patient_records
    from ..data.layout import KaggleLayout

    layout = KaggleLayout.from_dir(data_dir)
    labels_csv = layout.require_labels()
    image_dir = layout.require_train_images()
    records = load_patient_records(labels_csv, layout.class_info, strict=strict)
    return records, image_dir

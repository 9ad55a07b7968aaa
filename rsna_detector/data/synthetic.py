"""A synthetic RSNA data set in the exact Kaggle layout.

``make_synthetic_dataset`` writes::

    OUT/stage_2_train_labels.csv          patientId,x,y,width,height,Target
    OUT/stage_2_detailed_class_info.csv   patientId,class   (row-aligned)
    OUT/stage_2_sample_submission.csv     patientId,PredictionString
    OUT/stage_2_train_images/<patientId>.dcm
    OUT/stage_2_test_images/<patientId>.dcm

The DICOMs are what the real ones are: JPEG Baseline, 8-bit MONOCHROME2,
modality CR, with PatientID = file stem, PatientAge (a string), PatientSex,
ViewPosition, PixelSpacing and UIDs. The images are chest-like (dark lung
fields, bright mediastinum, heart, spine, ribs and clavicles, soft edges,
noise); every opacity is a soft bright region whose bounding box is exactly
its label. Proportions follow the real labels: 22.5 % of patients positive; of
those 43.5 / 54.3 / 2.0 / 0.2 % have 1 / 2 / 3 / 4 boxes; negatives are 57 %
'No Lung Opacity / Not Normal' and 43 % 'Normal'.

``preset='easy'`` (the default, the demo's) draws bright opacities inside the
drawn lungs; ``preset='realistic'`` draws the boxes from the real label
distribution (sizes, positions, the split over the image halves) and fainter,
patchier opacities under varying exposure and noise (``synthetic_image.PRESETS``):
a benchmark that a small detector does not saturate.

Everything derives from the seed: the same seed gives byte-identical files
whatever the number of worker processes (each image has its own random
stream, seeded by ``(seed, split, index)``).

The set is marked as synthetic by a small file ``OUT/.rsna_detector_synthetic``
(:data:`SYNTHETIC_MARKER`). A folder that holds anything else (a Kaggle download,
say) is refused (:class:`SyntheticTargetError`) unless ``overwrite=True``
(``rsna-detector synth --overwrite``): its CSVs would be replaced and its DICOMs
mixed with synthetic ones. An empty folder, or a synthetic set written before, is
written into.
"""
from __future__ import annotations

import csv
import io
import logging
import os
import time
import uuid
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .._io import atomic_path, atomic_write
from .._processes import process_pool
from ..errors import InvalidArgumentError, RsnaDetectorError
from .box_distribution import sample_real_boxes
from .dicom import JPEG_BASELINE
from .labels import (
    CLASS_COLUMNS,
    LABEL_COLUMNS,
    NORMAL_CLASS,
    NOT_NORMAL_CLASS,
    POSITIVE_CLASS,
    RSNA_IMAGE_SIZE,
    SUBMISSION_COLUMNS,
)
from .layout import CLASS_INFO, SAMPLE_SUBMISSION, TEST_IMAGES, TRAIN_IMAGES, TRAIN_LABELS
from .synthetic_image import (
    ChestGeometry,
    get_preset,
    sample_chest_geometry,
    sample_opacity_boxes,
    synthetic_chest_image,
)

__all__ = [
    "SYNTHETIC_MARKER",
    "SyntheticTargetError",
    "SyntheticSummary",
    "make_synthetic_dataset",
    "write_jpeg_dicom",
    "POSITIVE_FRACTION",
    "BOX_COUNT_PROBABILITIES",
    "NEGATIVE_CLASS_PROBABILITIES",
]

log = logging.getLogger(__name__)

POSITIVE_FRACTION = 0.225
#: P(1, 2, 3, 4 boxes | positive): 2614, 3266, 119, 13 of the 6012 real positive patients.
BOX_COUNT_PROBABILITIES = {1: 2614 / 6012, 2: 3266 / 6012, 3: 119 / 6012, 4: 13 / 6012}
#: Negative classes: 11,821 and 8,851 real rows.
NEGATIVE_CLASS_PROBABILITIES = {NOT_NORMAL_CLASS: 11821 / 20672, NORMAL_CLASS: 8851 / 20672}

SAMPLE_PREDICTION = "0.5 0 0 100 100"
#: The file that marks a folder as a synthetic data set (written first, so an interrupted run can be rerun).
SYNTHETIC_MARKER = ".rsna_detector_synthetic"


class SyntheticTargetError(RsnaDetectorError, FileExistsError):
    """The target folder holds files that are not a synthetic data set; nothing was written."""

_SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"
_JPEG_QUALITY = 90


# ---------------------------------------------------------------- DICOM writing
def write_jpeg_dicom(path, image, *, patient_id, age="", sex="", view_position="PA", pixel_spacing=(0.143, 0.143),
                     uid_seed="", quality=_JPEG_QUALITY):
    """Write a uint8 [H, W] image as an RSNA-like JPEG Baseline DICOM, atomically.

    Parameters
    ----------
    path : str or Path
        Output ``.dcm`` file (written under a temporary name, then renamed).
    image : numpy.ndarray
        uint8 [H, W] grey (MONOCHROME2).
    patient_id : str
        PatientID and PatientName.
    age : str
        PatientAge as RSNA writes it (``'51'``).
    sex, view_position : str
        PatientSex (``'M'``/``'F'``) and ViewPosition (``'PA'``/``'AP'``).
    pixel_spacing : (float, float)
        PixelSpacing in mm.
    uid_seed : str
        Extra entropy for the deterministic Study/Series/SOP Instance UIDs.
    quality : int
        Pillow JPEG quality.
    """
    from PIL import Image
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.encaps import encapsulate
    from pydicom.uid import generate_uid

    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 2:
        raise InvalidArgumentError(f"{path}: image must be uint8 [H, W], got {image.dtype} {image.shape}")
    stream = io.BytesIO()
    Image.fromarray(image).save(stream, format="JPEG", quality=int(quality))
    uid = {part: generate_uid(entropy_srcs=[uid_seed, patient_id, part]) for part in ("study", "series", "sop")}
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = _SECONDARY_CAPTURE
    meta.MediaStorageSOPInstanceUID = uid["sop"]
    meta.TransferSyntaxUID = JPEG_BASELINE
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    _fill_header(ds, uid, patient_id, age, sex, view_position, pixel_spacing, image.shape)
    ds.PixelData = encapsulate([stream.getvalue()])
    ds["PixelData"].VR = "OB"
    with atomic_path(path) as temporary:
        ds.save_as(temporary, enforce_file_format=True)


def _fill_header(ds, uid, patient_id, age, sex, view_position, pixel_spacing, shape):
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = _SECONDARY_CAPTURE
    ds.SOPInstanceUID = uid["sop"]
    ds.StudyDate, ds.StudyTime = "19010101", "000000.00"
    ds.AccessionNumber, ds.ReferringPhysicianName = "", ""
    ds.Modality, ds.ConversionType = "CR", "WSD"
    ds.SeriesDescription = f"view: {view_position}"
    ds.PatientName, ds.PatientID = patient_id, patient_id
    ds.PatientBirthDate, ds.PatientSex = "", sex
    with warnings.catch_warnings():  # RSNA writes ages as '51', which pydicom flags as a non-standard AS value
        warnings.filterwarnings("ignore", message="Invalid value for VR AS")
        ds.PatientAge = str(age)
    ds.BodyPartExamined, ds.ViewPosition = "CHEST", view_position
    ds.StudyInstanceUID, ds.SeriesInstanceUID = uid["study"], uid["series"]
    ds.StudyID, ds.SeriesNumber, ds.InstanceNumber, ds.PatientOrientation = "", 1, 1, ""
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.Rows, ds.Columns = int(shape[0]), int(shape[1])
    ds.PixelSpacing = [f"{v:.6g}" for v in pixel_spacing]
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.LossyImageCompression, ds.LossyImageCompressionMethod = "01", "ISO_10918_1"


# ---------------------------------------------------------------- the data set
@dataclass(frozen=True)
class _Patient:
    split: str  # 'train' or 'test'
    index: int
    patient_id: str
    class_name: str
    boxes: tuple  # ((x, y, w, h), ...) in pixels of the image
    geometry: ChestGeometry
    age: str
    sex: str
    view_position: str
    pixel_spacing: tuple
    preset: str = "easy"


def _exact_counts(n, probabilities):
    """Integer counts summing to ``n`` closest to ``n * p`` (largest remainders)."""
    raw = np.array(list(probabilities)) * n
    counts = np.floor(raw).astype(int)
    for i in np.argsort(-(raw - counts), kind="stable")[: n - counts.sum()]:
        counts[i] += 1
    return counts


def _plan_classes(rng, n):
    """Shuffled per-patient classes with the real proportions (exact up to rounding)."""
    n_positive = int(round(POSITIVE_FRACTION * n))
    negative = _exact_counts(n - n_positive, NEGATIVE_CLASS_PROBABILITIES.values())
    names = [POSITIVE_CLASS] * n_positive
    for name, count in zip(NEGATIVE_CLASS_PROBABILITIES, negative, strict=True):
        names += [name] * int(count)
    return [names[i] for i in rng.permutation(n)]


def _plan_patient(rng, split, index, class_name, image_size, preset):
    patient_id = str(uuid.UUID(bytes=rng.bytes(16), version=4))
    geometry = sample_chest_geometry(rng, image_size)
    n_boxes = 0
    if class_name == POSITIVE_CLASS:
        n_boxes = int(rng.choice(list(BOX_COUNT_PROBABILITIES), p=list(BOX_COUNT_PROBABILITIES.values())))
    if get_preset(preset).boxes == "real":
        drawn = sample_real_boxes(rng, n_boxes, image_size)
    else:
        drawn = sample_opacity_boxes(rng, geometry, n_boxes)
    boxes = tuple(tuple(box) for box in drawn)
    ap_probability = 0.75 if n_boxes else 0.38
    # the real spacings are those of a 1024-pixel image: scaled to this image's size
    spacing = float(rng.choice([0.139, 0.143, 0.168, 0.171])) * RSNA_IMAGE_SIZE / image_size
    age = int(np.clip(rng.normal(47, 17), 1, 92)) if rng.random() > 0.0003 else int(rng.integers(140, 156))
    return _Patient(split=split, index=index, patient_id=patient_id, class_name=class_name, boxes=boxes,
                    geometry=geometry, age=str(age), sex="M" if rng.random() < 0.57 else "F",
                    view_position="AP" if rng.random() < ap_probability else "PA",
                    pixel_spacing=(spacing, spacing), preset=get_preset(preset).name)


def _plan(seed, n_train, n_test, image_size, preset="easy"):
    rng = np.random.default_rng(seed)
    patients = []
    for split, n in (("train", n_train), ("test", n_test)):
        for index, class_name in enumerate(_plan_classes(rng, n)):
            patients.append(_plan_patient(rng, split, index, class_name, image_size, preset))
    return patients


def _render_and_write(task):
    """Worker: draw one patient's image and write its DICOM; returns the path."""
    patient, path, seed = task
    rng = np.random.default_rng([seed, 0 if patient.split == "train" else 1, patient.index])
    image = synthetic_chest_image(rng, np.array(patient.boxes).reshape(-1, 4), patient.geometry.size,
                                  geometry=patient.geometry, view_position=patient.view_position,
                                  abnormal=patient.class_name == NOT_NORMAL_CLASS, preset=patient.preset)
    write_jpeg_dicom(path, image, patient_id=patient.patient_id, age=patient.age, sex=patient.sex,
                     view_position=patient.view_position, pixel_spacing=patient.pixel_spacing,
                     uid_seed=str(seed))
    return path


def _write_csv_atomic(path, header, rows):
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    atomic_write(path, text.getvalue())


def _label_rows(train):
    labels, classes = [], []
    for patient in train:
        if not patient.boxes:
            labels.append([patient.patient_id, "", "", "", "", 0])
            classes.append([patient.patient_id, patient.class_name])
        for box in patient.boxes:
            labels.append([patient.patient_id, *(f"{v:.1f}" for v in box), 1])
            classes.append([patient.patient_id, patient.class_name])
    return labels, classes


@dataclass
class SyntheticSummary:
    """What :func:`make_synthetic_dataset` wrote.

    Attributes
    ----------
    out_dir, train_labels_csv, class_info_csv, sample_submission_csv, train_images, test_images : Path
        The data directory and its Kaggle-layout files and folders.
    n_train, n_test : int
        Patients (= DICOM files) per split.
    n_positive : int
        Training patients with at least one box.
    n_boxes : int
        Training boxes (= positive label rows).
    boxes_per_positive : dict of int -> int
        Number of boxes -> training patients with that many.
    class_rows : dict of str -> int
        Rows per class in the class-info file.
    image_size : int
    seed : int
    seconds : float
        Wall time of the generation.
    preset : str
        'easy' or 'realistic'.
    """

    out_dir: Path
    train_labels_csv: Path
    class_info_csv: Path
    sample_submission_csv: Path
    train_images: Path
    test_images: Path
    n_train: int
    n_test: int
    n_positive: int
    n_boxes: int
    boxes_per_positive: dict = field(default_factory=dict)
    class_rows: dict = field(default_factory=dict)
    image_size: int = 1024
    seed: int = 0
    seconds: float = 0.0
    preset: str = "easy"

    def __str__(self):
        share = self.n_positive / self.n_train if self.n_train else 0.0
        histogram = ", ".join(f"{k} box{'es' if k > 1 else ''}: {v}"
                              for k, v in sorted(self.boxes_per_positive.items()))
        classes = ", ".join(f"{name}: {count}" for name, count in self.class_rows.items())
        return "\n".join([
            f"synthetic RSNA data set in {self.out_dir} ({self.preset} preset, seed {self.seed}, "
            f"{self.image_size}x{self.image_size}, {self.seconds:.1f} s)",
            f"  train: {self.n_train} patients, {self.n_positive} positive ({share:.1%}), {self.n_boxes} boxes"
            + (f" ({histogram})" if histogram else ""),
            f"  class rows: {classes}",
            f"  test: {self.n_test} patients",
            f"  {self.train_labels_csv.name}, {self.class_info_csv.name}, {self.sample_submission_csv.name}, "
            f"{self.train_images.name}/, {self.test_images.name}/",
        ])


def _run_tasks(tasks, workers, progress):
    from tqdm.auto import tqdm

    workers = min(workers or os.cpu_count() or 1, max(len(tasks), 1))
    with tqdm(total=len(tasks), desc="synthetic", unit="img", disable=not progress) as bar:
        if workers == 1:
            for task in tasks:
                _render_and_write(task)
                bar.update(1)
            return
        chunk = max(1, min(16, len(tasks) // (workers * 4)))
        with process_pool(workers) as pool:
            for _ in pool.map(_render_and_write, tasks, chunksize=chunk):
                bar.update(1)


def _warn_stale(folder, expected):
    stale = [p.name for p in folder.glob("*.dcm") if p.name not in expected]
    if stale:
        log.warning("%s: %d DICOM files that are not part of this synthetic set were left in place (e.g. %s)",
                    folder, len(stale), stale[0])


def _check_target(out_dir, overwrite):
    """SyntheticTargetError when ``out_dir`` holds anything but a synthetic set (unless ``overwrite``)."""
    if overwrite or not out_dir.is_dir() or (out_dir / SYNTHETIC_MARKER).is_file():
        return
    entries = sorted(p.name for p in out_dir.iterdir())
    if entries:
        shown = ", ".join(entries[:4]) + (f" and {len(entries) - 4} more" if len(entries) > 4 else "")
        raise SyntheticTargetError(
            f"{out_dir}: not empty and not a synthetic data set (it holds {shown}): its files would be replaced "
            "or mixed with synthetic ones; choose an empty folder, or pass overwrite=True "
            "(rsna-detector synth --overwrite)")


def make_synthetic_dataset(out_dir, *, n_train=1000, n_test=100, seed=0, image_size=RSNA_IMAGE_SIZE, workers=None,
                           progress=True, overwrite=False, preset="easy"):
    """Write a synthetic RSNA data set in the exact Kaggle layout (see the module docstring).

    Parameters
    ----------
    out_dir : str or Path
        Data directory (created if needed): empty, or a synthetic set written
        before (its files of the same names are replaced).
    n_train, n_test : int
        Training and test patients (one DICOM each).
    seed : int
        Everything derives from it; same seed -> byte-identical files.
    image_size : int
        Image side (1024 as in RSNA); box coordinates are pixels of this size.
    workers : int, optional
        Worker processes for drawing and writing images (default
        ``os.cpu_count()``); the output does not depend on it.
    progress : bool
        Show a tqdm progress bar.
    overwrite : bool
        Write into a folder that holds other files too (replacing those of the
        same names).
    preset : {'easy', 'realistic'}
        How hard the data set is (module docstring); 'easy' by default.

    Returns
    -------
    SyntheticSummary

    Raises
    ------
    SyntheticTargetError
        ``out_dir`` holds files and is not a synthetic set, without ``overwrite``;
        checked before anything is written.
    """
    if n_train < 0 or n_test < 0:
        raise InvalidArgumentError(f"n_train and n_test must be >= 0, got {n_train} and {n_test}")
    if image_size < 64:
        raise InvalidArgumentError(f"image_size must be at least 64 pixels, got {image_size}")
    preset = get_preset(preset).name
    start = time.perf_counter()
    out_dir = Path(out_dir)
    _check_target(out_dir, overwrite)
    folders = {"train": out_dir / TRAIN_IMAGES, "test": out_dir / TEST_IMAGES}
    for folder in folders.values():
        folder.mkdir(parents=True, exist_ok=True)
    atomic_write(out_dir / SYNTHETIC_MARKER, "a synthetic data set written by rsna_detector.data.synthetic\n")
    patients = _plan(int(seed), int(n_train), int(n_test), int(image_size), preset)
    tasks = [(p, folders[p.split] / f"{p.patient_id}.dcm", int(seed)) for p in patients]
    for split, folder in folders.items():
        _warn_stale(folder, {path.name for p, path, _ in tasks if p.split == split})
    _run_tasks(tasks, workers, progress)

    train = [p for p in patients if p.split == "train"]
    labels, classes = _label_rows(train)
    paths = {name: out_dir / name for name in (TRAIN_LABELS, CLASS_INFO, SAMPLE_SUBMISSION)}
    _write_csv_atomic(paths[TRAIN_LABELS], LABEL_COLUMNS, labels)
    _write_csv_atomic(paths[CLASS_INFO], CLASS_COLUMNS, classes)
    _write_csv_atomic(paths[SAMPLE_SUBMISSION], SUBMISSION_COLUMNS,
                      [[p.patient_id, SAMPLE_PREDICTION] for p in patients if p.split == "test"])
    positives = [p for p in train if p.boxes]
    return SyntheticSummary(
        out_dir=out_dir, train_labels_csv=paths[TRAIN_LABELS], class_info_csv=paths[CLASS_INFO],
        sample_submission_csv=paths[SAMPLE_SUBMISSION], train_images=folders["train"], test_images=folders["test"],
        n_train=len(train), n_test=len(patients) - len(train), n_positive=len(positives),
        n_boxes=sum(len(p.boxes) for p in positives),
        boxes_per_positive=dict(sorted(Counter(len(p.boxes) for p in positives).items())),
        class_rows=dict(Counter(row[1] for row in classes)), image_size=int(image_size), seed=int(seed),
        seconds=time.perf_counter() - start, preset=preset)

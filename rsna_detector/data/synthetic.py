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
noise); every opacity is a soft bright region inside a lung whose bounding
box is exactly its label. Proportions follow the real labels: 22.5 % of
patients positive; of those 43.5 / 54.3 / 2.0 / 0.2 % have 1 / 2 / 3 / 4
boxes; negatives are 57 % 'No Lung Opacity / Not Normal' and 43 % 'Normal'.

Everything derives from the seed: the same seed gives byte-identical files
whatever the number of worker processes (each image has its own random
stream, seeded by ``(seed, split, index)``).
"""
from __future__ import annotations

import csv
import functools
import io
import logging
import os
import time
import uuid
import warnings
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .._io import atomic_path, atomic_write
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

__all__ = [
    "ChestGeometry",
    "SyntheticSummary",
    "make_synthetic_dataset",
    "sample_chest_geometry",
    "sample_opacity_boxes",
    "synthetic_chest_image",
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

_SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"
_JPEG_QUALITY = 90
_RENDER_SIDE = 256  # anatomy is smooth: drawn at <= 256 px, then upsampled, noise added at full size
_REFERENCE_SIDE = RSNA_IMAGE_SIZE  # sizes below are given in pixels of a 1024 image and scaled


# ---------------------------------------------------------------- geometry and boxes
@dataclass(frozen=True)
class ChestGeometry:
    """Where the anatomy of one synthetic image lies, in pixels of the ``size`` image.

    Attributes
    ----------
    size : int
        Image side.
    lungs : tuple of two (cx, cy, half_width, half_height)
        Image-left and image-right lung fields, superellipses of exponent
        ``LUNG_EXPONENT``.
    heart : (cx, cy, half_width, half_height)
        The heart shadow (an ellipse).
    spine_x : float
        Column of the spine.
    """

    size: int
    lungs: tuple
    heart: tuple
    spine_x: float

    LUNG_EXPONENT = 2.5

    def lung_level(self, lung, x, y):
        """Superellipse level of points: < 1 inside ``lungs[lung]``."""
        cx, cy, half_w, half_h = self.lungs[lung]
        p = self.LUNG_EXPONENT
        return np.abs((np.asarray(x) - cx) / half_w) ** p + np.abs((np.asarray(y) - cy) / half_h) ** p


def sample_chest_geometry(rng, size):
    """Random anatomy of one image (lungs, heart, spine) for an image of side ``size``.

    Parameters
    ----------
    rng : numpy.random.Generator
    size : int

    Returns
    -------
    ChestGeometry
    """
    s = size / _REFERENCE_SIDE
    spine = (512 + rng.normal(0, 8)) * s
    centre_y = (525 + rng.normal(0, 15)) * s
    half_h = (365 + rng.normal(0, 18)) * s
    lungs = []
    for side in (-1, 1):
        half_w = (175 + rng.normal(0, 8)) * s
        cx = spine + side * (205 + rng.normal(0, 8)) * s
        lungs.append((cx, centre_y + rng.normal(0, 6) * s, half_w, half_h * (1 + rng.normal(0, 0.03))))
    heart = (spine + 55 * s, centre_y + 150 * s, (165 + rng.normal(0, 10)) * s, (135 + rng.normal(0, 8)) * s)
    return ChestGeometry(size=int(size), lungs=tuple(lungs), heart=heart, spine_x=spine)


def _inscribed_ellipse_inside(geometry, lung, box, band):
    """True when the ellipse inscribed in ``box`` (x, y, w, h) lies in the lung (and its vertical band)."""
    x, y, w, h = box
    if band is not None and not (band[0] <= y and y + h <= band[1]):
        return False
    hx, hy, hw, hh = geometry.heart
    if ((x + w / 2 - hx) / hw) ** 2 + ((y + h / 2 - hy) / hh) ** 2 < 1:  # centred on the heart shadow
        return False
    angles = np.linspace(0, 2 * np.pi, 24, endpoint=False)
    px = x + w / 2 + w / 2 * np.cos(angles)
    py = y + h / 2 + h / 2 * np.sin(angles)
    return bool((geometry.lung_level(lung, px, py) < 0.92).all())


def _sample_box(rng, geometry, lung, band=None):
    """One integer box (x, y, w, h) inside a lung (within ``band`` = (top, bottom) when given)."""
    s = geometry.size / _REFERENCE_SIDE
    cx, cy, half_w, half_h = geometry.lungs[lung]
    width = np.clip(rng.normal(218, 55), 100, 400) * s
    height = np.clip(rng.normal(320, 140), 100, 600) * s
    for attempt in range(400):
        if attempt and attempt % 40 == 0:  # does not fit: shrink
            width, height = max(width * 0.9, 40 * s), max(height * 0.9, 40 * s)
        left_range = (cx - half_w, cx + half_w - width)
        top_range = (cy - half_h, cy + half_h - height) if band is None else (band[0], band[1] - height)
        if left_range[1] < left_range[0] or top_range[1] < top_range[0]:
            continue
        box = (rng.uniform(*left_range), rng.uniform(*top_range), width, height)
        box = tuple(float(v) for v in np.round(box))
        if _inscribed_ellipse_inside(geometry, lung, box, band):
            return box
    raise RuntimeError(f"could not place a box in lung {lung} of {geometry}")  # not reached for sane geometry


def sample_opacity_boxes(rng, geometry, n_boxes):
    """``n_boxes`` (0-4) non-overlapping opacity boxes inside the lung fields.

    One box: a random lung; two: one per lung; three or four: a lung holds an
    upper and a lower box (non-overlapping), the other one or two.

    Parameters
    ----------
    rng : numpy.random.Generator
    geometry : ChestGeometry
    n_boxes : int

    Returns
    -------
    numpy.ndarray
        float64 [n_boxes, 4] RSNA ``(x, y, width, height)``, integer-valued,
        pixels of the ``geometry.size`` image.
    """
    if not 0 <= n_boxes <= 4:
        raise ValueError(f"n_boxes must be between 0 and 4, got {n_boxes}")
    first = int(rng.integers(2))
    per_lung = {0: [], 1: [(first, 1)], 2: [(0, 1), (1, 1)], 3: [(first, 2), (1 - first, 1)],
                4: [(0, 2), (1, 2)]}[n_boxes]
    boxes = []
    gap = 8 * geometry.size / _REFERENCE_SIDE
    for lung, count in per_lung:
        if count == 1:
            boxes.append(_sample_box(rng, geometry, lung))
            continue
        _, cy, _, half_h = geometry.lungs[lung]
        boxes.append(_sample_box(rng, geometry, lung, band=(cy - half_h, cy - gap / 2)))
        boxes.append(_sample_box(rng, geometry, lung, band=(cy + gap / 2, cy + half_h)))
    return np.array(boxes, np.float64).reshape(-1, 4)


# ---------------------------------------------------------------- rendering
def _smoothstep(t):
    t = np.clip(t, 0.0, 1.0)
    return t * t * (3 - 2 * t)


def _soft_inside(level, softness):
    """1 well inside (level < 1 - softness), 0 outside (level > 1), smooth between."""
    return _smoothstep((1 - level) / softness)


def _smooth_noise(rng, shape, cells):
    """Low-frequency noise in [-1, 1] ([H, W] float32): a coarse grid upsampled bicubically."""
    from PIL import Image

    coarse = rng.uniform(-1, 1, (cells, cells)).astype(np.float32)
    return np.asarray(Image.fromarray(coarse, mode="F").resize(shape[::-1], Image.Resampling.BICUBIC))


def _rib_layer(geometry, X, Y, s):
    """Soft curved bands (posterior ribs) over both hemithoraces, 0..1."""
    ribs = np.zeros_like(X)
    dx = X - geometry.spine_x
    lateral = np.abs(dx)
    thickness = 15 * s
    for k in range(10):
        centre = (150 + 68 * k) * s - 0.12 * lateral + 0.75 * lateral ** 2 / (_REFERENCE_SIDE * s)
        ribs = np.maximum(ribs, np.exp(-((Y - centre) / thickness) ** 2))
    return ribs * _soft_inside((lateral / (440 * s)) ** 2, 0.3)


def _clavicle_layer(geometry, X, Y, s):
    dx = np.abs(X - geometry.spine_x)
    centre = 185 * s - 0.18 * dx
    band = np.exp(-((Y - centre) / (14 * s)) ** 2)
    return band * _soft_inside((dx / (330 * s)) ** 2, 0.4) * (dx > 35 * s)


def _opacity_layer(boxes, X, Y, rng, texture):
    """Sum of soft blobs, each exactly filling the ellipse inscribed in its box, 0..0.6."""
    layer = np.zeros_like(X)
    for x, y, w, h in np.asarray(boxes, np.float64).reshape(-1, 4):
        level = ((X - (x + w / 2)) / (w / 2)) ** 2 + ((Y - (y + h / 2)) / (h / 2)) ** 2
        amplitude = rng.uniform(0.34, 0.46)
        layer += amplitude * _soft_inside(level, 0.7) * (0.8 + 0.2 * texture)
    return np.clip(layer, 0, 0.6)


def synthetic_chest_image(rng, boxes, size, *, geometry=None, view_position="PA", abnormal=False):
    """A chest-X-ray-like uint8 image with a soft bright opacity filling each box.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of all randomness (same state -> same image).
    boxes : array-like [N, 4]
        RSNA ``(x, y, width, height)`` in pixels of this image; each opacity's
        extent is exactly its box (the blob fills the inscribed ellipse with a
        soft edge). Boxes should lie inside the lung fields of ``geometry``
        (:func:`sample_opacity_boxes`).
    size : int
        Image side.
    geometry : ChestGeometry, optional
        Anatomy; drawn from ``rng`` when None.
    view_position : {'PA', 'AP'}
        AP images have a larger heart shadow and less contrast, as in real AP films.
    abnormal : bool
        Add a non-opacity finding (enlarged heart or a line/tube), as in the
        'No Lung Opacity / Not Normal' class.

    Returns
    -------
    numpy.ndarray
        uint8 [size, size], bone and soft tissue bright, lungs dark.
    """
    from PIL import Image

    geometry = geometry or sample_chest_geometry(rng, size)
    side = min(int(size), _RENDER_SIDE)
    s = size / _REFERENCE_SIDE
    coords = (np.arange(side, dtype=np.float32) + 0.5) * (size / side)
    X, Y = np.meshgrid(coords, coords)
    texture = _smooth_noise(rng, (side, side), 12)
    markings = _smooth_noise(rng, (side, side), 48)
    patchiness = _smooth_noise(rng, (side, side), 24)

    body = _soft_inside(((X - geometry.spine_x) / (470 * s)) ** 4 + ((Y - 650 * s) / (720 * s)) ** 4, 0.25)
    image = 0.05 + 0.40 * body
    image += 0.20 * _soft_inside(((X - geometry.spine_x) / (85 * s)) ** 2 + ((Y - 400 * s) / (420 * s)) ** 6, 0.5)
    for lung in (0, 1):
        _, cy, _, half_h = geometry.lungs[lung]
        inside = _soft_inside(geometry.lung_level(lung, X, Y), 0.18)
        lung_value = 0.15 + 0.10 * np.clip((Y - (cy - half_h)) / (2 * half_h), 0, 1) + 0.03 * texture \
            + 0.025 * markings
        image = image * (1 - inside) + lung_value * inside
    cx, cy, half_w, half_h = geometry.heart
    enlarged = abnormal and rng.random() < 0.5
    scale = (1.12 if view_position == "AP" else 1.0) * (1.3 if enlarged else 1.0)
    heart = _soft_inside(((X - cx) / (half_w * scale)) ** 2 + ((Y - cy) / (half_h * scale)) ** 2, 0.3)
    image = image * (1 - 0.85 * heart) + 0.58 * 0.85 * heart
    spine = _soft_inside(((X - geometry.spine_x) / (38 * s)) ** 2, 0.5)
    image += spine * (0.06 + 0.03 * np.cos(2 * np.pi * Y / (62 * s)))
    image += 0.11 * _rib_layer(geometry, X, Y, s) + 0.15 * _clavicle_layer(geometry, X, Y, s)
    if abnormal and not enlarged:
        image += 0.35 * _line_layer(rng, geometry, X, Y, s)
    gamma = rng.uniform(0.85, 1.15)
    offset = int(rng.integers(0, size * size + 1))
    noise = _noise_bank(size)[offset: offset + size * size].reshape(size, size)
    # drawn last, so that the same rng state gives the same image apart from the opacities
    opacity = _opacity_layer(boxes, X, Y, rng, patchiness)
    image = image + opacity * (1 - 0.6 * image)  # brighter, never saturating over bone
    image = np.clip(image, 0, 1) ** gamma
    contrast = 0.85 if view_position == "AP" else 1.0
    image = (0.5 + contrast * (image - 0.5)).astype(np.float32)
    if side != size:
        image = np.asarray(Image.fromarray(image, mode="F").resize((size, size), Image.Resampling.BILINEAR))
    image = image + np.float32(0.012) * noise
    image *= 255
    image += 0.5
    return np.clip(image, 0, 255, out=image).astype(np.uint8)


@functools.lru_cache(maxsize=4)
def _noise_bank(size):
    """A fixed table of ``2 * size**2`` standard-normal float32 values.

    Each image takes a window of it at a random offset: drawing fresh
    Gaussian noise for a 1024 image costs more than all the rest of the drawing.
    """
    bank = np.random.default_rng(20180827).standard_normal(2 * size * size, dtype=np.float32)
    bank.flags.writeable = False
    return bank


def _line_layer(rng, geometry, X, Y, s):
    """A thin bright tube descending from the neck (soft), 0..1."""
    x0 = geometry.spine_x + rng.uniform(-30, 30) * s
    bend = rng.uniform(-80, 80) * s
    bottom = rng.uniform(550, 750) * s
    t = np.clip(Y / bottom, 0, 1)
    centre = x0 + bend * t ** 2
    return np.exp(-((X - centre) / (5 * s)) ** 2) * (Y < bottom)


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
        raise ValueError(f"{path}: image must be uint8 [H, W], got {image.dtype} {image.shape}")
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


def _plan_patient(rng, split, index, class_name, image_size):
    patient_id = str(uuid.UUID(bytes=rng.bytes(16), version=4))
    geometry = sample_chest_geometry(rng, image_size)
    n_boxes = 0
    if class_name == POSITIVE_CLASS:
        n_boxes = int(rng.choice(list(BOX_COUNT_PROBABILITIES), p=list(BOX_COUNT_PROBABILITIES.values())))
    boxes = tuple(tuple(box) for box in sample_opacity_boxes(rng, geometry, n_boxes))
    ap_probability = 0.75 if n_boxes else 0.38
    spacing = float(rng.choice([0.139, 0.143, 0.168, 0.171])) * _REFERENCE_SIDE / image_size
    age = int(np.clip(rng.normal(47, 17), 1, 92)) if rng.random() > 0.0003 else int(rng.integers(140, 156))
    return _Patient(split=split, index=index, patient_id=patient_id, class_name=class_name, boxes=boxes,
                    geometry=geometry, age=str(age), sex="M" if rng.random() < 0.57 else "F",
                    view_position="AP" if rng.random() < ap_probability else "PA",
                    pixel_spacing=(spacing, spacing))


def _plan(seed, n_train, n_test, image_size):
    rng = np.random.default_rng(seed)
    patients = []
    for split, n in (("train", n_train), ("test", n_test)):
        for index, class_name in enumerate(_plan_classes(rng, n)):
            patients.append(_plan_patient(rng, split, index, class_name, image_size))
    return patients


def _render_and_write(task):
    """Worker: draw one patient's image and write its DICOM; returns the path."""
    patient, path, seed = task
    rng = np.random.default_rng([seed, 0 if patient.split == "train" else 1, patient.index])
    image = synthetic_chest_image(rng, np.array(patient.boxes).reshape(-1, 4), patient.geometry.size,
                                  geometry=patient.geometry, view_position=patient.view_position,
                                  abnormal=patient.class_name == NOT_NORMAL_CLASS)
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

    def __str__(self):
        share = self.n_positive / self.n_train if self.n_train else 0.0
        histogram = ", ".join(f"{k} box{'es' if k > 1 else ''}: {v}"
                              for k, v in sorted(self.boxes_per_positive.items()))
        classes = ", ".join(f"{name}: {count}" for name, count in self.class_rows.items())
        return "\n".join([
            f"synthetic RSNA data set in {self.out_dir} (seed {self.seed}, {self.image_size}x{self.image_size}, "
            f"{self.seconds:.1f} s)",
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
        with ProcessPoolExecutor(max_workers=workers) as pool:
            for _ in pool.map(_render_and_write, tasks, chunksize=chunk):
                bar.update(1)


def _warn_stale(folder, expected):
    stale = [p.name for p in folder.glob("*.dcm") if p.name not in expected]
    if stale:
        log.warning("%s: %d DICOM files that are not part of this synthetic set were left in place (e.g. %s)",
                    folder, len(stale), stale[0])


def make_synthetic_dataset(out_dir, *, n_train=1000, n_test=100, seed=0, image_size=RSNA_IMAGE_SIZE, workers=None,
                           progress=True):
    """Write a synthetic RSNA data set in the exact Kaggle layout (see the module docstring).

    Parameters
    ----------
    out_dir : str or Path
        Data directory (created if needed); files of the same names are replaced.
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

    Returns
    -------
    SyntheticSummary
    """
    if n_train < 0 or n_test < 0:
        raise ValueError(f"n_train and n_test must be >= 0, got {n_train} and {n_test}")
    if image_size < 64:
        raise ValueError(f"image_size must be at least 64 pixels, got {image_size}")
    start = time.perf_counter()
    out_dir = Path(out_dir)
    folders = {"train": out_dir / TRAIN_IMAGES, "test": out_dir / TEST_IMAGES}
    for folder in folders.values():
        folder.mkdir(parents=True, exist_ok=True)
    patients = _plan(int(seed), int(n_train), int(n_test), int(image_size))
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
        seconds=time.perf_counter() - start)

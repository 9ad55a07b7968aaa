"""DICOM images of the EDA: the sample-grid choice and thumbnails, the header dump."""
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["choose_samples", "load_samples", "dicom_header_dump"]

_THUMBNAIL = 256


def choose_samples(patients, n, seed):
    """Up to ``n`` patients with an image: about two thirds positive, the rest negative (seeded)."""
    with_image = patients[patients["has_image"].astype(bool)] if "has_image" in patients.columns else patients[:0]
    rng = np.random.default_rng(seed)
    positive = with_image[with_image["target"] == 1]
    negative = with_image[with_image["target"] == 0]
    n_positive = min(len(positive), n - n // 3)
    n_negative = min(len(negative), n - n_positive)
    n_positive = min(len(positive), n - n_negative)
    picks = [frame.iloc[np.sort(rng.choice(len(frame), size=k, replace=False))]
             for frame, k in ((positive, n_positive), (negative, n_negative)) if k]
    return pd.concat(picks) if picks else with_image[:0]


def _sample_title(row):
    age = row.get("age")
    sex = row.get("sex")
    parts = [str(row["patientId"])[:8], f"T={int(row['target'])}"]
    parts += [f"{sex}" if sex is not None and not pd.isna(sex) else "?",
              f"{int(age)}y" if age is not None and not pd.isna(age) else "?"]
    return " ".join(parts)


def load_samples(chosen, boxes_df, image_dir, notes):
    """Thumbnails and boxes (scaled to the thumbnail) of the chosen patients; unreadable files noted."""
    from ..data.dicom import DicomReadError, read_dicom
    from ..data.labels import scale_boxes

    samples = []
    for _, row in chosen.iterrows():
        path = Path(image_dir) / f"{row['patientId']}.dcm"
        try:
            image, meta = read_dicom(path, size=_THUMBNAIL)
        except DicomReadError as error:
            notes.append(f"sample grid: {error}; patient left out")
            continue
        rows = boxes_df[(boxes_df["patientId"] == row["patientId"]) & (boxes_df["Target"] == 1)]
        yxyx = rows[["y1", "x1", "y2", "x2"]].dropna().to_numpy(np.float64)
        source = (meta.rows or _THUMBNAIL, meta.columns or _THUMBNAIL)
        samples.append({"patientId": str(row["patientId"]), "target": int(row["target"]), "n_boxes": len(yxyx),
                        "image": image, "boxes": scale_boxes(yxyx, source, _THUMBNAIL, "yxyx"),
                        "title": _sample_title(row)})
    return samples


def dicom_header_dump(patients, image_dir):
    """(patientId, full pydicom text dump) of the first patient in file order with an image, or None."""
    import pydicom

    with_image = patients[patients["has_image"].astype(bool)]
    for patient_id in with_image["patientId"]:
        path = Path(image_dir) / f"{patient_id}.dcm"
        try:
            return str(patient_id), f"{path.name}\n\n{pydicom.dcmread(path)}\n"
        except Exception:  # noqa: BLE001 - an unreadable file: try the next patient (read_dicom notes it)
            continue
    return None

"""Helpers shared by the tests: DICOM writers, a tiny engine config and a dataset it learns.

* :func:`write_dicom` / :func:`write_jpeg_dicom`: a DICOM file with any header, pixel layout
  or transfer syntax (uncompressed, or encapsulated JPEG Baseline);
* :func:`smooth_image`: a picture JPEG keeps well;
* :class:`TinyConfig` / :func:`tiny_config`: an engine config small enough for CPU tests
  (64 x 64 images, the ``tiny`` backbone);
* :class:`BlobDataset`: noisy images with one bright ellipse each (or none), which a
  :class:`TinyConfig` model learns in about a CPU minute;
* :func:`seeded_detector`: an untrained :class:`TinyConfig` inference model that detects bright blobs
  and nothing on a dark image (for the export tests).
* :func:`random_detector_files`: a random CPU-preset detector that keeps every box, saved with its
  config, beside a synthetic data set (the prediction commands' tests).
"""
import io

import numpy as np
from PIL import Image
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from rsna_detector.data.dicom import JPEG_BASELINE
from rsna_detector.mrcnn import utils
from rsna_detector.mrcnn.config import Config

SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"


def write_dicom(path, pixels, *, photometric="MONOCHROME2", syntax=ExplicitVRLittleEndian, bits_stored=None,
                frames=None, patient_id="patient-1", pixel_data=None, **header):
    """Write ``pixels`` (uint8/uint16 [H, W], [H, W, 3] or [F, H, W]) uncompressed, or ``pixel_data`` bytes."""
    meta = FileMetaDataset()
    meta.TransferSyntaxUID = syntax
    meta.MediaStorageSOPClassUID = SECONDARY_CAPTURE
    meta.MediaStorageSOPInstanceUID = generate_uid()
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    if patient_id is not None:
        ds.PatientID = patient_id
    ds.Modality = "CR"
    pixels = np.asarray(pixels)
    colour = photometric in ("RGB", "YBR_FULL_422")
    ds.Rows, ds.Columns = pixels.shape[-3:-1] if colour else pixels.shape[-2:]
    ds.SamplesPerPixel = 3 if colour else 1
    if colour:
        ds.PlanarConfiguration = 0
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated = pixels.dtype.itemsize * 8
    ds.BitsStored = bits_stored or ds.BitsAllocated
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = 0
    if frames:
        ds.NumberOfFrames = frames
    for keyword, value in header.items():
        setattr(ds, keyword, value)
    ds.PixelData = pixels.tobytes() if pixel_data is None else pixel_data
    if pixel_data is not None:
        ds["PixelData"].VR = "OB"
    ds.save_as(path, enforce_file_format=True)
    return path


def write_jpeg_dicom(path, image, *, photometric="MONOCHROME2", quality=90):
    """An 8-bit grey JPEG Baseline DICOM of uint8 [H, W] ``image``."""
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=quality)
    return write_dicom(path, image, photometric=photometric, syntax=JPEG_BASELINE,
                       pixel_data=encapsulate([buffer.getvalue()]))


def smooth_image(height, width, seed=0):
    """A smooth uint8 test picture (JPEG keeps it well)."""
    yy, xx = np.mgrid[0:height, 0:width] / max(height, width)
    rng = np.random.default_rng(seed)
    picture = 120 + 80 * np.sin(6 * xx + rng.uniform(0, 3)) * np.cos(4 * yy) + 20 * yy
    return np.clip(picture, 0, 255).astype(np.uint8)


class BlobDataset(utils.Dataset):
    """``size`` x ``size`` noisy dark images; the first ``positives`` hold one bright ellipse each."""

    def __init__(self, positives, negatives, seed=0, size=64):
        super().__init__()
        rng = np.random.default_rng(seed)
        self.add_class("blobs", 1, "blob")
        for i in range(positives + negatives):
            boxes = []
            if i < positives:
                h, w = rng.integers(12, 25, 2)
                y, x = rng.integers(2, size - 2 - h), rng.integers(2, size - 2 - w)
                boxes = [(int(y), int(x), int(y + h), int(x + w))]
            self.add_image("blobs", image_id=i, path=None, boxes=boxes, size=size, noise=int(rng.integers(1 << 30)))
        self.prepare()

    def _ellipses(self, image_id):
        info = self.image_info[image_id]
        masks = np.zeros((info["size"], info["size"], len(info["boxes"])), bool)
        for k, (y1, x1, y2, x2) in enumerate(info["boxes"]):
            yy, xx = np.mgrid[y1:y2, x1:x2]
            cy, cx, ry, rx = (y1 + y2 - 1) / 2, (x1 + x2 - 1) / 2, (y2 - y1) / 2, (x2 - x1) / 2
            masks[y1:y2, x1:x2, k] = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
        return masks

    def load_image(self, image_id):
        info = self.image_info[image_id]
        image = np.random.default_rng(info["noise"]).integers(0, 40, (info["size"], info["size"])).astype(np.uint8)
        image[np.any(self._ellipses(image_id), axis=-1)] = 200
        return np.repeat(image[:, :, np.newaxis], 3, axis=2)

    def load_mask(self, image_id):
        masks = self._ellipses(image_id)
        return masks, np.ones(masks.shape[-1], np.int32)


class TinyConfig(Config):
    NAME = "blobs"
    BACKBONE = "tiny"
    NUM_CLASSES = 2
    IMAGES_PER_GPU = 4
    IMAGE_MIN_DIM = 64
    IMAGE_MAX_DIM = 64
    RPN_ANCHOR_SCALES = (8, 16, 32)
    RPN_TRAIN_ANCHORS_PER_IMAGE = 64
    MAX_GT_INSTANCES = 2
    MINI_MASK_SHAPE = (28, 28)
    TOP_DOWN_PYRAMID_SIZE = 32
    FPN_CLASSIF_FC_LAYERS_SIZE = 64
    PRE_NMS_LIMIT = 300
    POST_NMS_ROIS_TRAINING = 64
    POST_NMS_ROIS_INFERENCE = 32
    TRAIN_ROIS_PER_IMAGE = 16
    DETECTION_MAX_INSTANCES = 4
    DETECTION_MIN_CONFIDENCE = 0.7
    STEPS_PER_EPOCH = 2
    VALIDATION_STEPS = 1
    LEARNING_RATE = 0.02
    SEED = 3


def tiny_config(**settings):
    config = TinyConfig()
    for name, value in settings.items():
        setattr(config, name, value)
    return config.validate()


def seeded_detector(model_dir, seed=11, **settings):
    """A :class:`TinyConfig` inference ``MaskRCNN`` with seeded random weights, no training.

    Random class logits give every image about four detections scored 0.55-0.7; sharpened
    (x6) and shifted towards the background (-0.45), bright blobs keep some above the
    threshold 0.5 and a plain dark image gets none.
    """
    import keras

    from rsna_detector.mrcnn import model as modellib

    keras.utils.set_random_seed(seed)
    config = tiny_config(**{"IMAGES_PER_GPU": 8, "DETECTION_MIN_CONFIDENCE": 0.5, **settings})
    model = modellib.MaskRCNN("inference", config, str(model_dir))
    logits = model.keras_model.get_layer("mrcnn_class_logits")
    kernel, bias = logits.get_weights()
    logits.set_weights([kernel * 6, bias + np.array([0.0, -0.45], np.float32)])
    return model


def random_detector_files(root, *, n_train, n_test, image_size):
    """A synthetic data set in ``root/data`` and a random ``CPUDemoConfig`` detector saved as
    ``root/weights.h5`` with ``root/config.json``; returns the inference ``MaskRCNN``.

    Every box is kept (DETECTION_MIN_CONFIDENCE 0) and, whatever the random draw, every ROI favours
    the opacity class, so that there are detections to compare.
    """
    from rsna_detector.data.synthetic import make_synthetic_dataset
    from rsna_detector.detector.config import CPUDemoConfig
    from rsna_detector.mrcnn import model as modellib

    make_synthetic_dataset(root / "data", n_train=n_train, n_test=n_test, seed=3, image_size=image_size, workers=1,
                           progress=False)
    config = CPUDemoConfig()
    config.DETECTION_MIN_CONFIDENCE, config.IMAGES_PER_GPU, config.SEED = 0.0, 2, 5
    config.validate()
    model = modellib.MaskRCNN("inference", config, str(root))
    model.keras_model.get_layer("mrcnn_class_logits").bias.assign(np.array([0.0, 3.0], np.float32))
    model.save_weights(str(root / "weights.h5"))
    config.to_json(root / "config.json")
    return model

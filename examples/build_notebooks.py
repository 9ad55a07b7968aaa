"""Write the example notebooks of ``examples/`` from the cell sources below.

Run from anywhere::

    python examples/build_notebooks.py

The notebooks are generated (outputs cleared) so that they can be reviewed as code
and kept consistent: the install cell and the data-detection cell are written once
here and shared by every notebook. Edit this file, not the ``.ipynb`` files.

Every notebook runs top to bottom in two modes:

* real data: ``RSNA_KAGGLE_DIR`` (default ``/content/rsna``) holds the Kaggle
  download (``stage_2_train_labels.csv`` and ``stage_2_train_images/`` at least):
  the full settings are used (a GPU runtime is needed for training);
* otherwise: a small synthetic data set in the same layout is generated and
  CPU-size settings are used, so the notebook finishes in about a minute on a
  2-core CPU (this is what ``tests/test_notebooks.py`` executes).
"""
from __future__ import annotations

import textwrap
import tomllib
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

EXAMPLES_DIR = Path(__file__).resolve().parent


def repository_url(pyproject=EXAMPLES_DIR.parent / "pyproject.toml"):
    """The repository's GitHub address: ``[project.urls] Repository`` of pyproject.toml, its one setting."""
    with open(pyproject, "rb") as file:
        return tomllib.load(file)["project"]["urls"]["Repository"].rstrip("/")


#: Where the repository lives on GitHub (used by the Colab badge and the install line).
REPO_URL = repository_url()
#: The Colab address of a notebook of this folder, derived from REPO_URL.
COLAB_URL = REPO_URL.replace("https://github.com/", "https://colab.research.google.com/github/", 1) \
    + "/blob/main/examples/{name}"


def md(text):
    """A Markdown cell from indented triple-quoted text."""
    return new_markdown_cell(textwrap.dedent(text).strip())


def code(text):
    """A code cell from indented triple-quoted text."""
    return new_code_cell(textwrap.dedent(text).strip())


def header(name, title, summary):
    """Title, Colab badge and a short description."""
    badge = (f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
             f"({COLAB_URL.format(name=name)})")
    return md(f"# {title}\n\n{badge}\n\n{textwrap.dedent(summary).strip()}")


INSTALL = code(f"""
    # Install the library when it is not importable yet (Colab). Nothing happens when it is.
    import importlib
    import importlib.util

    if importlib.util.find_spec("rsna_detector") is None:
        # Colab: uncomment the next line. From a clone of the repository run `pip install .`
        # in its root instead (or `pip install -e .` to edit the library).
        # !pip install -q git+{REPO_URL}
        importlib.invalidate_caches()
    if importlib.util.find_spec("rsna_detector") is None:
        raise ModuleNotFoundError("rsna_detector is not installed: uncomment the pip line above "
                                  "(Colab) or run `pip install .` in a clone of the repository")
    import rsna_detector
    from rsna_detector.console import quiet_tensorflow

    # Hide TensorFlow's C++ start-up and grappler log lines (must run before TensorFlow is imported;
    # set TF_CPP_MIN_LOG_LEVEL yourself, or call quiet_tensorflow(verbose=True), to see them).
    quiet_tensorflow()
    print("rsna_detector", rsna_detector.__version__)
""")

DATA_MARKDOWN = md("""
    ## Data

    **Real data.** Download the competition files
    (`kaggle competitions download -c rsna-pneumonia-detection-challenge`, about 3.9 GB, after
    accepting the competition's rules on Kaggle) and unzip them into `/content/rsna` (Colab) or
    any folder named by the environment variable `RSNA_KAGGLE_DIR`. The folder must hold the
    Kaggle layout as is:

    ```
    stage_2_train_labels.csv   stage_2_detailed_class_info.csv   stage_2_sample_submission.csv
    stage_2_train_images/<patientId>.dcm                          stage_2_test_images/<patientId>.dcm
    ```

    **No data?** The next cell then generates a small synthetic data set in exactly that layout
    (chest-like JPEG DICOMs with opacity boxes, the real class proportions) and the notebook
    uses CPU-size settings. Its numbers only show that everything runs: they say nothing about
    pneumonia.
""")


def data_cell(n_train, n_test):
    """Detect the Kaggle data or generate a synthetic set of ``n_train`` + ``n_test`` patients."""
    return code(f"""
        import os
        from pathlib import Path

        from rsna_detector import KaggleLayout, LayoutError, make_synthetic_dataset

        DATA_DIR = os.environ.get("RSNA_KAGGLE_DIR", "/content/rsna")
        WORK_DIR = Path(os.environ.get("RSNA_WORK_DIR", "rsna_work"))  # outputs of this notebook
        WORK_DIR.mkdir(parents=True, exist_ok=True)


        def kaggle_layout_or_none(data_dir):
            \"\"\"The data directory's layout when it holds training labels and DICOMs, else None.\"\"\"
            try:
                layout = KaggleLayout.from_dir(data_dir)
            except LayoutError:
                return None
            if layout.train_labels is None or layout.train_images is None:
                return None
            return layout if next(layout.train_images.glob("*.dcm"), None) is not None else None


        layout = kaggle_layout_or_none(DATA_DIR)
        REAL_DATA = layout is not None
        if REAL_DATA:
            print(f"real data: {{layout.root}}")
        else:
            print(f"no Kaggle data in {{DATA_DIR}}: generating a small synthetic data set")
            synthetic = make_synthetic_dataset(WORK_DIR / "synthetic_data", n_train={n_train}, n_test={n_test},
                                               image_size=256, seed=0, progress=False)
            print(synthetic)
            layout = KaggleLayout.from_dir(synthetic.out_dir)
        DATA_DIR = layout.root
    """)


# --------------------------------------------------------------------------- 01 EDA
def eda_notebook():
    return [
        header("01_eda.ipynb", "01 · Exploratory analysis of the RSNA pneumonia data", """
            The report's exploratory data analysis with `rsna_detector.run_eda`: class balance,
            boxes per patient, box position/size/shape distributions with outliers, patient age,
            sex and view position from the DICOM headers, a grid of sample images, and a check
            of every number the report states against the data. Figures, `summary.json` and
            `report.md` are written to `rsna_work/eda/`.
        """),
        INSTALL,
        DATA_MARKDOWN,
        data_cell(n_train=80, n_test=4),
        md("""
            ## Run the analysis

            `run_eda` reads the labels and the DICOM headers (cached next to the data), computes
            the statistics and draws every figure. On the full Kaggle set reading 26,684 headers
            takes a few minutes the first time.
        """),
        code("""
            from rsna_detector import run_eda

            EDA_DIR = WORK_DIR / "eda"
            summary = run_eda(DATA_DIR, EDA_DIR, progress=False)
            print(f"run_eda took {summary['runtime_s']:.1f} s; report: {EDA_DIR / 'report.md'}")
        """),
        md("## Key numbers"),
        code("""
            labels = summary["labels"]
            targets = labels["targets"]
            print(f"label rows {labels['n_rows']:,}, patients {labels['n_patients']:,}")
            print("patients per target:", targets["patients"],
                  f"-> {targets['negatives_per_positive_patient']:.2f} negative patients per positive one")
            print("patients per number of boxes:", labels["boxes_per_patient"]["counts"])
            if labels["classes"]:
                print("label rows per class:", labels["classes"]["rows"])
            outliers = labels["centroid_outliers"]
            print(f"box centroids outside the Tukey fences: {outliers['n_outliers']} of {outliers['n_boxes']}")
        """),
        code("""
            import pandas as pd

            columns = ["count", "min", "p25", "p50", "p75", "max", "mean", "std", "n_above_fence"]
            quantities = ["x", "y", "width", "height", "area", "aspect_ratio"]
            pd.DataFrame(labels["distributions"]).T.loc[quantities, columns].astype(float).round(2)
        """),
        code("""
            headers = summary["headers"]
            if headers["available"]:
                age = headers["age"]
                print(f"age: median {age['p50']:.0f}, range {age['min']:.0f}-{age['max']:.0f} "
                      f"({headers['age_implausible']['count']} implausible values left out)")
                print("sex:", headers["sex"]["counts"], "positive share:",
                      {k: round(v, 3) for k, v in headers["sex"]["positive_share"].items()})
                print("view position:", headers["view_position"]["counts"], "positive share:",
                      {k: round(v, 3) for k, v in headers["view_position"]["positive_share"].items()})
            else:
                print("DICOM headers not analysed:", headers["reason"])
        """),
        md("## Figures"),
        code("""
            from IPython.display import Image, display

            for key, relative_path in summary["figures"].items():
                print(key)
                display(Image(filename=str(EDA_DIR / relative_path), width=560))
        """),
        md("""
            ## The report's statements against the data

            Each number the report states is looked up in the summary. On synthetic data most of
            them disagree, as they should: the synthetic set is small and drawn at 256 pixels.
        """),
        code("""
            checks = pd.DataFrame(summary["report_statements"])
            print(checks["agrees"].value_counts(dropna=False).to_dict())
            checks[["section", "label", "relation", "report_value", "data_value", "agrees"]].head(20)
        """),
        md("""
            ## The genuine label files without images

            When the environment variable `RSNA_DATA_DIR` names a folder holding `labels/` with the
            real `stage_2_train_labels.csv` (and class info), the label part of the analysis runs on
            the full 30,227 rows in a few seconds, no image needed.
        """),
        code("""
            REAL_LABELS_DIR = os.environ.get("RSNA_DATA_DIR")
            if REAL_LABELS_DIR and (Path(REAL_LABELS_DIR) / "labels").is_dir():
                real = run_eda(REAL_LABELS_DIR, WORK_DIR / "eda_real_labels", with_images=False, progress=False)
                real_labels = real["labels"]
                print(f"{real_labels['n_rows']:,} rows, {real_labels['n_patients']:,} patients, "
                      f"targets {real_labels['targets']['patients']}")
                print("patients per number of boxes:", real_labels["boxes_per_patient"]["counts"])
                agreement = pd.Series([c["agrees"] for c in real["report_statements"]]).value_counts(dropna=False)
                print("report statements that agree with the real labels:", agreement.to_dict())
                display(Image(filename=str(WORK_DIR / "eda_real_labels" / real["figures"]["centroids"]), width=560))
            else:
                print("RSNA_DATA_DIR does not name a folder with labels/: skipped")
        """),
    ]


# --------------------------------------------------------------------------- 02 Mask R-CNN
def train_notebook():
    return [
        header("02_train_mask_rcnn.ipynb", "02 · Train and evaluate the Mask R-CNN pneumonia detector", """
            The library's main job, step by step: the RSNA settings (`DetectorConfig`), COCO
            initial weights, the three-stage fine-tuning schedule of the well-known RSNA
            Mask R-CNN notebook (`train`), evaluation (mAP@0.5, mean IoU, the competition's
            score and its best confidence threshold), the precision-recall curve, ground truth
            beside predictions, and a Kaggle submission for the test images.

            On Colab choose a GPU runtime (*Runtime -> Change runtime type*) for the real data:
            16 epochs of 200 steps took about 1,100 s per epoch on the report's GPU.
        """),
        INSTALL,
        DATA_MARKDOWN,
        data_cell(n_train=100, n_test=8),
        md("""
            ## Settings

            Real data: the brief's `DetectorConfig` (ResNet-50 FPN, 256 x 256 inputs, 8 images
            per batch, anchors 16-128, at most 3 detections above confidence 0.78), matterport's
            COCO weights (`weights="coco"`: the weights registry downloads
            `mask_rcnn_coco.h5`, 246 MB, once into `~/.cache/rsna_detector/weights` and checks its
            size and MD5; the class-specific heads are re-initialised), 16 epochs and the
            notebook's augmentation. Synthetic data: `CPUDemoConfig` (a tiny backbone at 128 px),
            random initial weights (no download) and two epochs of a few steps. That is far too
            little training to detect anything: on the synthetic path the evaluation, the
            pictures and the submission below are empty of detections; they only show the steps.
        """),
        code("""
            import warnings

            from rsna_detector import CPUDemoConfig, DetectorConfig

            # pyimgaug's PiecewiseAffine calls a scikit-image method deprecated in 0.26: harmless here.
            warnings.filterwarnings("ignore", message="`estimate` is deprecated", category=FutureWarning)

            if REAL_DATA:
                config = DetectorConfig()
                WEIGHTS = "coco"
                EPOCHS = 16
                VALIDATION = {"val_count": 1500}  # the RSNA notebook's validation patients
            else:
                class NotebookCPUConfig(CPUDemoConfig):
                    STEPS_PER_EPOCH = 6
                    VALIDATION_STEPS = 1

                config = NotebookCPUConfig()
                WEIGHTS = None
                EPOCHS = 2
                VALIDATION = {"val_fraction": 0.2}
            AUGMENTATION = "notebook"  # the RSNA notebook's imgaug pipeline (rsna_detector.detector.augment)
            config.display();
        """),
        md("""
            ## Datasets

            Patients are split at patient level, stratified by target. Every negative patient is
            kept and trained on (matterport's original code silently skipped images without
            objects, 77 % of RSNA). Masks are the label boxes filled as rectangles.
        """),
        code("""
            from rsna_detector import DetectorDataset

            train_ds, val_ds = DetectorDataset.split_from_data_dir(DATA_DIR, image_size=config.IMAGE_MAX_DIM, seed=0,
                                                                   **VALIDATION)
            positives = [i for i in val_ds.image_ids if len(val_ds.load_boxes(i))]
            negatives = [i for i in val_ds.image_ids if not len(val_ds.load_boxes(i))]
            print(f"training patients {train_ds.num_images}, validation patients {val_ds.num_images} "
                  f"({len(positives)} positive)")
        """),
        code("""
            from rsna_detector.mrcnn import utils, visualize

            image_id = next(i for i in train_ds.image_ids if len(train_ds.load_boxes(i)))
            image = train_ds.load_image(image_id)
            masks, class_ids = train_ds.load_mask(image_id)
            visualize.display_instances(image, utils.extract_bboxes(masks), masks, class_ids, train_ds.class_names,
                                        title=train_ds.patient_id(image_id), figsize=(5, 5));
        """),
        md("What the training augmentation does to two training images (boxes follow the masks):"),
        code("""
            from rsna_detector import show_augmented_samples

            sample_ids = [i for i in train_ds.image_ids if len(train_ds.load_boxes(i))][:2]
            show_augmented_samples(train_ds, config, sample_ids, AUGMENTATION, n_variants=3);
        """),
        md("""
            ## Training

            `train` runs the staged schedule (heads only at twice the learning rate without
            augmentation, then all layers, then all layers at a fifth of it; two epochs give the
            first two stages), writes a checkpoint per epoch into a timestamped folder of
            `rsna_work/logs/` and resumes from the latest one with `resume=True`.
        """),
        code("""
            from rsna_detector import default_schedule

            for stage in default_schedule(EPOCHS):
                print(stage)
        """),
        code("""
            from rsna_detector import train

            training_model, history = train((train_ds, val_ds), config, weights=WEIGHTS, model_dir=WORK_DIR / "logs",
                                            epochs=EPOCHS, augmentation=AUGMENTATION, seed=0)
            print("checkpoints in", training_model.log_dir)
        """),
        code("""
            import matplotlib.pyplot as plt

            fig, ax = plt.subplots(figsize=(6, 3.5))
            epochs = range(1, len(history["loss"]) + 1)
            ax.plot(epochs, history["loss"], marker="o", label="training loss")
            if "val_loss" in history:
                ax.plot(epochs, history["val_loss"], marker="o", label="validation loss")
            ax.set_xlabel("epoch")
            ax.set_ylabel("loss (sum of the five)")
            ax.legend();
        """),
        md("""
            ## Evaluation

            Training validated every epoch and stored the best checkpoint with its confidence
            threshold beside the checkpoints (`postprocessing.json`); an inference-mode model
            carries both. `evaluate_detector` detects every validation image once and computes
            mAP@0.5 (per image, as the RSNA notebooks do; `map50_positive` over the images with
            opacities only, since a negative image without detections scores 1), the mean IoU of
            matched detections, COCO AP@[.5:.95], the competition's score at the stored threshold
            and the threshold that maximises it.
        """),
        code("""
            from rsna_detector import evaluate_detector
            from rsna_detector.detector.demo import inference_model_from

            model = inference_model_from(training_model)
            metrics = evaluate_detector(model, val_ds, val_ds.image_ids, out_dir=WORK_DIR / "evaluation")
            for key in ("map50", "map50_positive", "mean_iou", "coco_ap", "model_threshold", "rsna_score",
                        "best_threshold", "best_rsna_score"):
                print(f"{key:16} {metrics[key]:.3f}")
            print(metrics["counts"])
        """),
        code("""
            from IPython.display import Image, display

            display(Image(filename=metrics["figures"]["precision_recall"], width=480))
            display(Image(filename=metrics["figures"]["threshold_sweep"], width=480))
        """),
        md("Ground truth (green) beside the detections (red, with confidence) on validation images:"),
        code("""
            from rsna_detector import plot_gt_vs_prediction

            for image_id in positives[:3] + negatives[:1]:
                image = val_ds.load_image(image_id)
                masks, _ = val_ds.load_mask(image_id)
                result = model.detect([image])[0]
                plot_gt_vs_prediction(image, utils.extract_bboxes(masks), result["rois"], result["scores"],
                                      title=val_ds.patient_id(image_id))
                plt.show()
        """),
        md("""
            ## Submission

            `predict` reads each test DICOM at the model's size and returns boxes in the file's
            own pixels (1024 for RSNA); `write_submission` writes Kaggle's CSV in the order of the
            sample submission (`confidence x y width height` per box). The threshold validated in
            training, stored with the model, is applied (`min_confidence=` would override it).
        """),
        code("""
            import pandas as pd

            from rsna_detector import write_submission
            from rsna_detector import predict

            run = predict(model, layout.test_images, progress=False)
            print("threshold", run.threshold, "-", run.postprocessing.describe())
            submission_path = write_submission(run.predictions, WORK_DIR / "submission.csv",
                                               sample_submission=layout.sample_submission)
            print(f"{len(run.predictions)} test images, {len(run.failed)} unreadable, "
                  f"{sum(len(p.scores) for p in run.predictions)} boxes -> {submission_path}")
            pd.read_csv(submission_path, keep_default_na=False).head()
        """),
    ]


# --------------------------------------------------------------------------- 04 matterport style
def matterport_notebook():
    return [
        header("04_matterport_notebook.ipynb", "04 · A matterport-style RSNA Mask R-CNN notebook", """
            The RSNA Mask R-CNN notebooks of the competition were written against matterport's
            `mrcnn` package, which no longer runs on TensorFlow 2 / Keras 3. This notebook is
            written the way they were: its own `Config` and `Dataset` subclasses, DICOMs read with
            pydicom, masks drawn from the label boxes, `MaskRCNN.train` in stages with an imgaug
            augmentation, `find_last()`, `utils.compute_ap` and `visualize`. The only change a
            matterport notebook needs is its imports:

            ```python
            from rsna_detector.mrcnn.config import Config   # was: from mrcnn.config import Config
            from rsna_detector.mrcnn import utils, visualize # was: from mrcnn import utils, visualize
            import rsna_detector.mrcnn.model as modellib     # was: import mrcnn.model as modellib
            ```
        """),
        INSTALL,
        DATA_MARKDOWN,
        data_cell(n_train=80, n_test=2),
        code("""
            import random

            import imgaug.augmenters as iaa
            import matplotlib.pyplot as plt
            import numpy as np
            import pandas as pd
            import pydicom

            from rsna_detector.mrcnn.config import Config
            from rsna_detector.mrcnn import utils, visualize
            import rsna_detector.mrcnn.model as modellib

            MODEL_DIR = str(WORK_DIR / "matterport_logs")
            train_dicom_dir = str(layout.train_images)
            # matterport's COCO weights (246 MB). On Colab, download them once:
            # !wget --quiet https://github.com/matterport/Mask_RCNN/releases/download/v2.0/mask_rcnn_coco.h5
            COCO_WEIGHTS_PATH = os.environ.get("COCO_WEIGHTS_PATH", "mask_rcnn_coco.h5")
        """),
        md("""
            ## Configuration

            Real data: the RSNA notebook's settings. Synthetic data: the same shape of settings
            made tiny (the engine's `'tiny'` backbone, 128 px, a few steps) so that it runs on a CPU.
        """),
        code("""
            class DetectorConfig(Config):
                \"\"\"Pneumonia opacities: one class besides the background.\"\"\"

                NAME = "pneumonia"
                GPU_COUNT = 1
                NUM_CLASSES = 2  # background + opacity
                TRAIN_ROIS_PER_IMAGE = 32
                MAX_GT_INSTANCES = 4
                DETECTION_MAX_INSTANCES = 3
                DETECTION_NMS_THRESHOLD = 0.01
                if REAL_DATA:
                    BACKBONE = "resnet50"
                    IMAGES_PER_GPU = 8
                    IMAGE_MIN_DIM = 256
                    IMAGE_MAX_DIM = 256
                    RPN_ANCHOR_SCALES = (16, 32, 64, 128)
                    DETECTION_MIN_CONFIDENCE = 0.78
                    STEPS_PER_EPOCH = 200
                    LEARNING_RATE = 0.006
                else:
                    BACKBONE = "tiny"
                    IMAGES_PER_GPU = 4
                    IMAGE_MIN_DIM = 128
                    IMAGE_MAX_DIM = 128
                    RPN_ANCHOR_SCALES = (8, 16, 32, 64)
                    TOP_DOWN_PYRAMID_SIZE = 64
                    FPN_CLASSIF_FC_LAYERS_SIZE = 256
                    RPN_TRAIN_ANCHORS_PER_IMAGE = 64
                    PRE_NMS_LIMIT = 1000
                    POST_NMS_ROIS_TRAINING = 200
                    POST_NMS_ROIS_INFERENCE = 100
                    DETECTION_MIN_CONFIDENCE = 0.5
                    STEPS_PER_EPOCH = 6
                    VALIDATION_STEPS = 1
                    LEARNING_RATE = 0.01


            config = DetectorConfig()
            config.display();
        """),
        md("""
            ## Dataset

            One image entry per patient; its label rows travel with it. `load_image` reads the
            DICOM with pydicom and repeats the grey channel to RGB; `load_mask` fills each box.
            A negative patient has no mask at all (zero instances), and is trained on.
        """),
        code("""
            def parse_dataset(dicom_dir, labels):
                \"\"\"DICOM paths and, per path, the list of its positive label rows.\"\"\"
                image_fps = sorted(os.path.join(dicom_dir, f"{pid}.dcm") for pid in labels["patientId"].unique())
                image_annotations = {fp: [] for fp in image_fps}
                for row in labels[labels["Target"] == 1].itertuples():
                    image_annotations[os.path.join(dicom_dir, f"{row.patientId}.dcm")].append(row)
                return image_fps, image_annotations


            class DetectorDataset(utils.Dataset):
                \"\"\"RSNA patients: DICOM images and their opacity boxes as masks.\"\"\"

                def __init__(self, image_fps, image_annotations, orig_height, orig_width):
                    super().__init__()
                    self.add_class("pneumonia", 1, "Lung Opacity")
                    for i, fp in enumerate(image_fps):
                        self.add_image("pneumonia", image_id=i, path=fp, annotations=image_annotations[fp],
                                       orig_height=orig_height, orig_width=orig_width)

                def image_reference(self, image_id):
                    return self.image_info[image_id]["path"]

                def load_image(self, image_id):
                    image = pydicom.dcmread(self.image_info[image_id]["path"]).pixel_array
                    return np.stack([image] * 3, axis=-1) if image.ndim == 2 else image

                def load_mask(self, image_id):
                    info = self.image_info[image_id]
                    annotations = info["annotations"]
                    mask = np.zeros((info["orig_height"], info["orig_width"], len(annotations)), dtype=bool)
                    for i, a in enumerate(annotations):
                        x, y, w, h = int(a.x), int(a.y), int(a.width), int(a.height)
                        mask[y:y + h, x:x + w, i] = True
                    return mask, np.ones(len(annotations), dtype=np.int32)
        """),
        code("""
            anns = pd.read_csv(layout.train_labels)
            image_fps, image_annotations = parse_dataset(train_dicom_dir, anns)
            ds = pydicom.dcmread(image_fps[0])
            ORIG_SIZE = int(ds.Rows)  # 1024 for RSNA, 256 for the synthetic set
            print(f"{len(image_fps)} patients, images of {ds.Rows} x {ds.Columns}")

            random.seed(42)
            image_fps_list = list(image_fps)
            random.shuffle(image_fps_list)
            val_size = 1500 if REAL_DATA else len(image_fps_list) // 5
            image_fps_val, image_fps_train = image_fps_list[:val_size], image_fps_list[val_size:]

            dataset_train = DetectorDataset(image_fps_train, image_annotations, ORIG_SIZE, ORIG_SIZE)
            dataset_train.prepare()
            dataset_val = DetectorDataset(image_fps_val, image_annotations, ORIG_SIZE, ORIG_SIZE)
            dataset_val.prepare()
            print(f"train {len(dataset_train.image_ids)}, validation {len(dataset_val.image_ids)}")
        """),
        code("""
            image_id = next(i for i in dataset_train.image_ids if dataset_train.image_info[i]["annotations"])
            image = dataset_train.load_image(image_id)
            mask, class_ids = dataset_train.load_mask(image_id)
            modellib.log("image", image)
            modellib.log("mask", mask)
            visualize.display_instances(image, utils.extract_bboxes(mask), mask, class_ids, dataset_train.class_names,
                                        figsize=(5, 5));
        """),
        md("""
            ## Training

            Initial weights: matterport's COCO file when it is present (all layers but the
            class-specific heads, which have COCO's 81 classes); otherwise random weights, which
            is what happens on the synthetic path (the 'tiny' backbone has no COCO weights anyway).
            Then the heads alone without augmentation, then all layers with it.
        """),
        code("""
            model = modellib.MaskRCNN(mode="training", config=config, model_dir=MODEL_DIR)
            if os.path.exists(COCO_WEIGHTS_PATH) and config.BACKBONE != "tiny":
                model.load_weights(COCO_WEIGHTS_PATH, by_name=True,
                                   exclude=["mrcnn_class_logits", "mrcnn_bbox_fc", "mrcnn_bbox", "mrcnn_mask"])
                print("initial weights:", COCO_WEIGHTS_PATH)
            else:
                print(f"{COCO_WEIGHTS_PATH} not loaded (absent, or the 'tiny' backbone): random initial weights")
        """),
        code("""
            import warnings

            # pyimgaug's PiecewiseAffine calls a scikit-image method deprecated in 0.26: harmless here.
            warnings.filterwarnings("ignore", message="`estimate` is deprecated", category=FutureWarning)

            augmentation = iaa.Sequential([
                iaa.OneOf([
                    iaa.Affine(scale={"x": (0.98, 1.02), "y": (0.98, 1.04)},
                               translate_percent={"x": (-0.02, 0.02), "y": (-0.04, 0.04)},
                               rotate=(-2, 2), shear=(-1, 1)),
                    iaa.PiecewiseAffine(scale=(0.001, 0.025)),
                ]),
                iaa.OneOf([iaa.Multiply((0.9, 1.1)), iaa.LinearContrast((0.9, 1.1))]),
                iaa.OneOf([iaa.GaussianBlur(sigma=(0.0, 0.1)), iaa.Sharpen(alpha=(0.0, 0.1))]),
            ])

            HEADS_EPOCHS, ALL_EPOCHS = (2, 6) if REAL_DATA else (1, 2)
            model.train(dataset_train, dataset_val, learning_rate=config.LEARNING_RATE * 2, epochs=HEADS_EPOCHS,
                        layers="heads", augmentation=None)
            model.train(dataset_train, dataset_val, learning_rate=config.LEARNING_RATE, epochs=ALL_EPOCHS,
                        layers="all", augmentation=augmentation);
        """),
        md("""
            ## Inference and evaluation

            A model in inference mode, one image per batch, with the weights of the last
            checkpoint (`find_last()`). Masks are kept full-size (`USE_MINI_MASK = False`) because
            `utils.compute_ap` matches masks. A briefly trained CPU model usually detects nothing:
            its mAP then only counts the negative images, which score 1 when left empty.
        """),
        code("""
            class InferenceConfig(DetectorConfig):
                GPU_COUNT = 1
                IMAGES_PER_GPU = 1
                USE_MINI_MASK = False


            inference_config = InferenceConfig()
            model = modellib.MaskRCNN(mode="inference", config=inference_config, model_dir=MODEL_DIR)
            model_path = model.find_last()
            print("loading weights from", model_path)
            model.load_weights(model_path, by_name=True)
        """),
        code("""
            APs, results = [], {}
            for image_id in dataset_val.image_ids:
                image, image_meta, gt_class_id, gt_bbox, gt_mask = modellib.load_image_gt(
                    dataset_val, inference_config, image_id)
                r = model.detect([image], verbose=0)[0]
                AP, precisions, recalls, overlaps = utils.compute_ap(
                    gt_bbox, gt_class_id, gt_mask, r["rois"], r["class_ids"], r["scores"], r["masks"])
                APs.append(AP)
                results[image_id] = (image, gt_class_id, gt_bbox, gt_mask, r, AP, precisions, recalls)
            positive_ids = [i for i in dataset_val.image_ids if len(results[i][1])]
            print(f"mAP @ IoU=50 over {len(APs)} images: {np.mean(APs):.3f}")
            print(f"mAP @ IoU=50 over the {len(positive_ids)} images with opacities: "
                  f"{np.mean([results[i][5] for i in positive_ids]):.3f}")
        """),
        code("""
            image_id = positive_ids[0]
            image, gt_class_id, gt_bbox, gt_mask, r, AP, precisions, recalls = results[image_id]
            fig, axes = plt.subplots(1, 2, figsize=(10, 5))
            visualize.display_instances(image, gt_bbox, gt_mask, gt_class_id, dataset_val.class_names,
                                        ax=axes[0], title="ground truth")
            visualize.display_instances(image, r["rois"], r["masks"], r["class_ids"], dataset_val.class_names,
                                        r["scores"], ax=axes[1], title="prediction")
            plt.show()
            visualize.plot_precision_recall(AP, precisions, recalls);
        """),
    ]


# --------------------------------------------------------------------------- 03 baselines
def baselines_notebook():
    return [
        header("03_baselines.ipynb", "03 · Baselines: a pneumonia classifier, classifier gating, RetinaNet", """
            The report's baselines beside the Mask R-CNN: an image-level pneumonia classifier
            (VGG19 / ResNet50 / DenseNet121 / CheXNet on `keras.applications`), gating of a
            detector's boxes by the classifier's score (what the top RSNA solutions did), and a
            RetinaNet (keras-hub) trained briefly and evaluated with exactly the Mask R-CNN's
            metrics, including the competition's score (`rsna_score`).
        """),
        INSTALL,
        DATA_MARKDOWN,
        data_cell(n_train=100, n_test=4),
        md("""
            ## Settings

            Real data: DenseNet121 with ImageNet weights at 224 px for 3 epochs (the report's best
            classifier; use `"chexnet"` with the CheXNet weights file for the CheXNet variant), and
            the report's RetinaNet (ResNet-50 FPN with ImageNet weights, learning rate 1e-4,
            batch 32, 50 epochs). Synthetic data: the shallowest classifier (VGG19) at 64 px and a
            small RetinaNet (one basic block per stage) at 128 px, from random weights, for two
            short epochs: they learn next to nothing, and only show the steps. Both models use
            the same patient-level 70:30 split (same fraction and seed), so the classifier can gate
            the RetinaNet's detections on the same validation patients.
        """),
        code("""
            SPLIT = {"val_fraction": 0.3, "seed": 0}
            if REAL_DATA:
                CLASSIFIER = "densenet121"
                CLASSIFIER_SETTINGS = {"weights": "imagenet", "image_size": 224, "epochs": 3, "batch_size": 16}
                RETINANET_SETTINGS = {"image_size": 256, "weights": "imagenet", "epochs": 50, "batch_size": 32,
                                      "learning_rate": 1e-4}
            else:
                CLASSIFIER = "vgg19"
                CLASSIFIER_SETTINGS = {"weights": None, "image_size": 64, "epochs": 2, "batch_size": 16}
                small_resnet = {"input_conv_filters": [64], "input_conv_kernel_sizes": [7],
                                "stackwise_num_filters": [64, 64, 128, 128], "stackwise_num_blocks": [1, 1, 1, 1],
                                "stackwise_num_strides": [1, 2, 2, 2], "block_type": "basic_block"}
                RETINANET_SETTINGS = {"image_size": 128, "weights": None, "backbone_config": small_resnet, "epochs": 2,
                                      "batch_size": 8, "steps_per_epoch": 4, "learning_rate": 1e-3}
        """),
        md("""
            ## Classifier

            Global average pooling over the backbone and one sigmoid unit; Adam 1e-3, binary
            cross-entropy with inverse-frequency class weights, the report's augmentation
            (rotation 40 degrees, shear, zoom, horizontal flip, brightness).
        """),
        code("""
            from rsna_detector.baselines.classifier import evaluate_classifier, train_classifier

            classifier, classifier_history = train_classifier(DATA_DIR, CLASSIFIER, verbose=2, **SPLIT,
                                                              **CLASSIFIER_SETTINGS)
            print({key: round(values[-1], 3) for key, values in classifier_history.history.items()})
        """),
        code("""
            from IPython.display import Image, display

            classifier_metrics = evaluate_classifier(classifier, DATA_DIR, out_dir=WORK_DIR / "classifier", **SPLIT)
            for key in ("n", "positives", "roc_auc", "pr_auc", "accuracy", "f1", "best_threshold", "best_f1"):
                print(f"{key:15} {classifier_metrics[key]:.3f}")
            print("confusion matrix at 0.5 [[TN, FP], [FN, TP]]:", classifier_metrics["confusion_matrix"])
            for path in classifier_metrics["figures"].values():
                display(Image(filename=path, width=360))
        """),
        md("""
            ## RetinaNet

            keras-hub's `RetinaNetObjectDetector`: focal loss, smooth-L1 box loss (sigma 3),
            classification prior 0.01, anchors on P3-P7 with three aspect ratios sized for RSNA
            boxes, the report's random transform. Evaluated by the Mask R-CNN's functions:
            mAP@0.5, mean IoU of matched boxes, and the competition's score with its best
            confidence threshold.
        """),
        code("""
            from rsna_detector.baselines.retinanet import evaluate_retinanet, train_retinanet

            retinanet, retinanet_history = train_retinanet(DATA_DIR, verbose=2, **SPLIT, **RETINANET_SETTINGS)
            print({key: round(values[-1], 3) for key, values in retinanet_history.history.items()})
        """),
        code("""
            # one image per predict call: every call has the same input shape, so one compiled function serves all
            retinanet_metrics = evaluate_retinanet(retinanet, DATA_DIR, batch_size=1, out_dir=WORK_DIR / "retinanet",
                                                   **SPLIT)
            for key in ("map50", "map50_positive", "mean_iou", "rsna_score", "best_threshold", "best_rsna_score"):
                print(f"{key:16} {retinanet_metrics[key]:.3f}")
            print(retinanet_metrics["counts"])
        """),
        md("""
            ## Classifier gating

            An image whose classifier score is below a threshold keeps no box. On the competition's
            metric this pays: an image without opacity that keeps any box scores 0 and counts,
            while an image with neither opacity nor box is left out of the mean. The cost: the
            opacities of positive images the classifier misses. `gating_effect` gives the score
            before and after gating for a range of thresholds, first for the RetinaNet's
            detections, then for a toy detector that finds every opacity (the ground-truth box
            shifted by a few pixels) but also puts a box on every negative image, which shows the
            mechanism clearly even when the briefly trained models are poor.
        """),
        code("""
            import numpy as np

            from rsna_detector import load_patient_records
            from rsna_detector.baselines.gating import gate_predictions, gating_effect

            records = load_patient_records(layout.train_labels, layout.class_info)
            classifier_scores = dict(zip(classifier_metrics["patient_ids"], classifier_metrics["scores"]))
            ground_truth = {pid: records[pid].boxes for pid in classifier_scores}
            retinanet_predictions = {p.patient_id: p for p in retinanet_metrics["predictions"]}
            THRESHOLDS = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
            gating_effect(ground_truth, retinanet_predictions, classifier_scores, THRESHOLDS).round(3)
        """),
        code("""
            from rsna_detector import ImagePrediction, rsna_score

            rng = np.random.default_rng(0)
            positive_boxes = np.concatenate([boxes for boxes in ground_truth.values() if len(boxes)])
            typical_box = np.median(positive_boxes, axis=0)  # a plausible false positive, same pixel frame
            toy_predictions = {}
            for pid, boxes in ground_truth.items():
                if len(boxes):
                    shift = rng.normal(0, 0.02 * (boxes[:, 2:] - boxes[:, :2]).mean(), boxes.shape)
                    toy_predictions[pid] = ImagePrediction(pid, boxes + shift, np.full(len(boxes), 0.9))
                else:
                    toy_predictions[pid] = ImagePrediction(pid, typical_box[None], np.array([0.9]))
            gating_effect(ground_truth, toy_predictions, classifier_scores, THRESHOLDS).round(3)
        """),
        code("""
            threshold = classifier_metrics["best_threshold"]  # the classifier's F1-best threshold
            gated = gate_predictions(toy_predictions, classifier_scores, threshold)
            print(f"toy detector: competition score {rsna_score(ground_truth, toy_predictions):.3f} before gating, "
                  f"{rsna_score(ground_truth, gated):.3f} after gating at the F1-best threshold {threshold:.3f}")
        """),
    ]


NOTEBOOKS = {
    "01_eda.ipynb": eda_notebook,
    "02_train_mask_rcnn.ipynb": train_notebook,
    "03_baselines.ipynb": baselines_notebook,
    "04_matterport_notebook.ipynb": matterport_notebook,
}


def build_notebook(cells):
    """A notebook (nbformat v4) of ``cells`` with the python3 kernel and Colab metadata."""
    notebook = new_notebook(cells=cells)
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    notebook.metadata["language_info"] = {"name": "python"}
    notebook.metadata["colab"] = {"provenance": []}
    for index, cell in enumerate(notebook.cells):
        cell["id"] = f"cell-{index:02d}"  # stable ids: regenerating gives identical files
    return notebook


def write_notebooks(out_dir=EXAMPLES_DIR, names=None):
    """Write the notebooks (all, or ``names``) into ``out_dir``; returns their paths."""
    written = []
    for name, make_cells in NOTEBOOKS.items():
        if names and name not in names:
            continue
        notebook = build_notebook(make_cells())
        nbformat.validate(notebook)
        path = Path(out_dir) / name
        nbformat.write(notebook, path)
        written.append(path)
    return written


if __name__ == "__main__":
    for written_path in write_notebooks():
        print("wrote", written_path)

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
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

#: Where the repository lives on GitHub (used by the Colab badge and the install line).
REPO_URL = "https://github.com/<owner>/rsna_detector"
#: The Colab address of a notebook of this folder.
COLAB_URL = "https://colab.research.google.com/github/<owner>/rsna_detector/blob/main/examples/{name}"
EXAMPLES_DIR = Path(__file__).resolve().parent


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


NOTEBOOKS = {
    "01_eda.ipynb": eda_notebook,
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

"""The EDA figures, and writing them to PNG files.

Figures are built on matplotlib.figure.Figure (no pyplot): no global state, no GUI backend needed.
"""
import math

import numpy as np

from .._io import save_figure
from ..data.labels import RSNA_IMAGE_SIZE
from ._format import format_number
from .statistics import BOX_QUANTITIES, PERCENTILES, centroid_outliers, header_rows

__all__ = [
    "HISTOGRAM_QUANTITIES", "FIGURES", "plot_distribution", "plot_class_imbalance", "plot_boxes_per_patient",
    "plot_centroids", "plot_aspect_vs_area", "plot_age", "plot_age_by_sex_and_target", "plot_sample_grid",
    "save_eda_figure", "write_label_figures", "write_age_figures",
]

#: The quantities with a histogram figure (the report's sections 3.2-3.7).
HISTOGRAM_QUANTITIES = ("x", "y", "width", "height", "area", "aspect_ratio")

#: Figure key -> (file name under ``figures/``, title, needs DICOM files).
FIGURES = {
    "class_imbalance": ("class_imbalance.png", "Target and class, per label row and per patient", False),
    "boxes_per_patient": ("boxes_per_patient.png", "Boxes per patient", False),
    **{f"distribution_{name}": (f"distribution_{name}.png", f"Distribution of {BOX_QUANTITIES[name]}", False)
       for name in HISTOGRAM_QUANTITIES},
    "age": ("age.png", "Patient age (DICOM header), implausible ages apart", True),
    "age_by_sex_and_target": ("age_by_sex_and_target.png", "Age by sex and by target", True),
    "centroids": ("centroids.png", "Box centroids over the image, outliers marked", False),
    "aspect_vs_area": ("aspect_vs_area.png", "Aspect ratio against area", False),
    "sample_grid": ("sample_grid.png", "Sample images with their boxes", True),
}

_GRID_POINTS = 256
_KDE_CHUNK = 32
_COLOURS = {"0": "tab:blue", "1": "tab:red", "M": "tab:blue", "F": "tab:orange"}


def _new_figure(width=7.0, height=4.5, ncols=1, nrows=1, sharex=False):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    return fig, fig.subplots(nrows, ncols, squeeze=False, sharex=sharex)


def _gaussian_density(values, grid):
    """Gaussian kernel density of ``values`` [N] on ``grid`` [G] (Scott's bandwidth std * N ** -0.2), or None."""
    values = np.asarray(values, np.float64)
    values = values[~np.isnan(values)]
    if values.size < 2 or values.std() == 0:
        return None
    bandwidth = values.std(ddof=1) * values.size ** -0.2
    density = np.empty(grid.size)
    for start in range(0, grid.size, _KDE_CHUNK):
        z = (grid[start:start + _KDE_CHUNK, None] - values[None, :]) / bandwidth
        density[start:start + _KDE_CHUNK] = np.exp(-0.5 * z * z).sum(axis=1)
    return density / (values.size * bandwidth * math.sqrt(2 * math.pi))


def _histogram_with_density(ax, values, colour="tab:blue", label=None, bins=50):
    values = np.asarray(values, np.float64)
    values = values[~np.isnan(values)]
    if values.size == 0:
        ax.text(0.5, 0.5, "no values", ha="center", va="center", transform=ax.transAxes)
        return
    ax.hist(values, bins=bins, density=True, alpha=0.35, color=colour, label=label)
    grid = np.linspace(values.min(), values.max(), _GRID_POINTS)
    density = _gaussian_density(values, grid)
    if density is not None:
        ax.plot(grid, density, color=colour, linewidth=1.6)
    ax.set_ylabel("density")


def _stats_text(stats):
    keys = ("min", *(f"p{p}" for p in PERCENTILES), "max", "iqr")
    return "\n".join(f"{k:>4}: {format_number(stats[k])}" for k in keys)


def plot_distribution(values, stats, description):
    """Histogram (density) with a Gaussian density curve, percentile lines and the statistics.

    Parameters
    ----------
    values : array-like of float [N]
    stats : dict
        ``describe_distribution(values)``.
    description : str
        What the values are (x-axis label).

    Returns
    -------
    matplotlib.figure.Figure
    """
    fig, axes = _new_figure()
    ax = axes[0, 0]
    _histogram_with_density(ax, values)
    if stats["count"]:
        for p in PERCENTILES:
            ax.axvline(stats[f"p{p}"], color="grey", linestyle=":" if p in (1, 99) else "--", linewidth=1)
        ax.text(0.99, 0.97, _stats_text(stats), transform=ax.transAxes, ha="right", va="top", family="monospace",
                fontsize=8, bbox={"facecolor": "white", "alpha": 0.8, "edgecolor": "none"})
    ax.set_xlabel(description)
    ax.set_title(f"{description} (n = {stats['count']:,}); dashed: Q1, median, Q3; dotted: p1, p99", fontsize=9)
    return fig


def _bar(ax, counts, title, colours=None):
    names = list(counts)
    bars = ax.bar(range(len(names)), [counts[n] for n in names],
                  color=[(colours or {}).get(n, "tab:grey") for n in names])
    ax.bar_label(bars, labels=[f"{counts[n]:,}" for n in names], fontsize=8)
    ax.set_xticks(range(len(names)), [n.replace(" / ", " /\n") for n in names], fontsize=8)
    ax.set_title(title, fontsize=9)


def plot_class_imbalance(label_stats):
    """Bars of Target and of the detailed class, per label row and per patient (``compute_label_statistics``)."""
    has_classes = label_stats["classes"]["rows"] is not None
    fig, axes = _new_figure(9, 7 if has_classes else 3.6, ncols=2, nrows=2 if has_classes else 1)
    targets = label_stats["targets"]
    _bar(axes[0, 0], targets["rows"], "Target per label row", _COLOURS)
    _bar(axes[0, 1], targets["patients"], "Target per patient", _COLOURS)
    if has_classes:
        _bar(axes[1, 0], label_stats["classes"]["rows"], "Class per label row")
        _bar(axes[1, 1], label_stats["classes"]["patients"], "Class per patient")
    return fig


def plot_boxes_per_patient(label_stats):
    """Bars of the number of patients per box count (0 = negative patients)."""
    fig, axes = _new_figure(6, 4)
    _bar(axes[0, 0], label_stats["boxes_per_patient"]["counts"], "Patients per number of boxes (0: negative)")
    axes[0, 0].set_xlabel("boxes per patient")
    return fig


def plot_centroids(features, outlier, fences, image_size=RSNA_IMAGE_SIZE):
    """Box centroids over the image (y down, as in the image), outliers as red crosses, fences dashed.

    Parameters
    ----------
    features : pandas.DataFrame
        ``box_features``: ``centroid_x``, ``centroid_y`` [N], pixels.
    outlier : bool ndarray [N]
    fences : dict
        ``{'x': (low, high), 'y': (low, high)}`` (``centroid_outliers``).
    image_size : int
        Side of the image the boxes refer to.
    """
    fig, axes = _new_figure(6.5, 6.5)
    ax = axes[0, 0]
    cx, cy = features["centroid_x"].to_numpy(), features["centroid_y"].to_numpy()
    ax.scatter(cx[~outlier], cy[~outlier], s=3, alpha=0.25, color="tab:blue", label="centroid")
    ax.scatter(cx[outlier], cy[outlier], s=18, marker="x", color="red", label=f"outlier ({int(outlier.sum())})")
    for axis, bounds in fences.items():
        line = ax.axvline if axis == "x" else ax.axhline
        for value in bounds or ():
            if 0 <= value <= image_size:  # fences outside the image are not drawn
                line(value, color="red", linestyle="--", linewidth=0.8)
    ax.set_xlim(0, image_size)
    ax.set_ylim(image_size, 0)
    ax.set_aspect("equal")
    ax.set_xlabel("centroid x (pixels)")
    ax.set_ylabel("centroid y (pixels)")
    ax.set_title("Box centroids; outlier: x or y outside [Q1 - 1.5 IQR, Q3 + 1.5 IQR]", fontsize=9)
    ax.legend(loc="lower right", fontsize=8)
    return fig


def plot_aspect_vs_area(features, correlation):
    """Scatter of aspect ratio (width / height) against area, with the rank correlation in the title."""
    fig, axes = _new_figure(7, 5)
    ax = axes[0, 0]
    ax.scatter(features["area"], features["aspect_ratio"], s=3, alpha=0.25)
    ax.set_xlabel("area = width * height (square pixels)")
    ax.set_ylabel("aspect ratio = width / height")
    rho = correlation.get("spearman")
    ax.set_title(f"Aspect ratio against area (n = {correlation['n']:,}; Spearman rho = {format_number(rho)})",
                 fontsize=9)
    return fig


def plot_age(ages, implausible_ages, stats):
    """Plausible ages (histogram + density) and, in a second panel, the implausible ages (> 120)."""
    fig, axes = _new_figure(10, 4.2, ncols=2)
    left, right = axes[0]
    _histogram_with_density(left, ages, bins=40)
    left.set_xlabel("age (years)")
    left.set_title(f"Plausible ages (n = {stats['count']:,}; median {format_number(stats['p50'])}, "
                   f"IQR {format_number(stats['p25'])}-{format_number(stats['p75'])})", fontsize=9)
    if len(implausible_ages):
        values, counts = np.unique(np.asarray(implausible_ages, np.float64), return_counts=True)
        right.bar([format_number(v) for v in values], counts, color="red")
        right.set_ylabel("patients")
    else:
        right.text(0.5, 0.5, "no implausible age", ha="center", va="center", transform=right.transAxes)
        right.set_xticks([])
        right.set_yticks([])
    right.set_title(f"Implausible ages (> 120): {len(implausible_ages)} patient(s), not in the left panel",
                    fontsize=9)
    right.set_xlabel("age (years)")
    return fig


def plot_age_by_sex_and_target(rows):
    """Age densities per sex, one panel per target (``rows``: ``target``, ``sex``, ``age`` of plausible ages).

    Every histogram uses the same 30 bins over the range of all the ages, so that panels compare.
    """
    fig, axes = _new_figure(10, 4.2, ncols=2, sharex=True)
    ages = rows["age"].to_numpy(np.float64)
    bins = np.linspace(ages.min(), max(ages.max(), ages.min() + 1), 31) if ages.size else 30
    for ax, target in zip(axes[0], (0, 1), strict=True):
        subset = rows[rows["target"] == target]
        for sex, group in subset.groupby("sex"):
            _histogram_with_density(ax, group["age"], colour=_COLOURS.get(str(sex), "tab:green"),
                                    label=f"{sex} (n = {len(group):,})", bins=bins)
        ax.set_title(f"Target {target}", fontsize=9)
        ax.set_xlabel("age (years)")
        if len(subset):
            ax.legend(fontsize=8)
    return fig


def plot_sample_grid(samples):
    """Grid of images with their boxes.

    Parameters
    ----------
    samples : list of dict
        ``image`` (uint8 [H, W]), ``boxes`` (float [N, (y1, x1, y2, x2)] in the
        image's pixels), ``title`` (str).
    """
    ncols = max(1, math.ceil(math.sqrt(len(samples))))
    nrows = max(1, math.ceil(len(samples) / ncols))
    fig, axes = _new_figure(3 * ncols, 3.2 * nrows, ncols=ncols, nrows=nrows)
    from matplotlib.patches import Rectangle

    for ax in axes.ravel():
        ax.axis("off")
    for ax, sample in zip(axes.ravel(), samples, strict=False):
        ax.imshow(sample["image"], cmap="gray", vmin=0, vmax=255)
        for y1, x1, y2, x2 in np.asarray(sample["boxes"], np.float64).reshape(-1, 4):
            ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor="red", linewidth=1.5))
        ax.set_title(sample["title"], fontsize=8)
    return fig


def save_eda_figure(fig, path):
    """Write an EDA figure to ``path`` at 100 dpi (``_io.save_figure``, atomic); returns the path."""
    return save_figure(fig, path, dpi=100)


def write_label_figures(figure_dir, label_stats, features, image_size):
    """Write the label figures (class balance, boxes per patient, box distributions, centroids)
    into ``figure_dir``; returns figure key -> path written."""
    written = {"class_imbalance": save_eda_figure(plot_class_imbalance(label_stats),
                                                  figure_dir / "class_imbalance.png"),
               "boxes_per_patient": save_eda_figure(plot_boxes_per_patient(label_stats),
                                                    figure_dir / "boxes_per_patient.png")}
    for name in HISTOGRAM_QUANTITIES:
        fig = plot_distribution(features[name], label_stats["distributions"][name], BOX_QUANTITIES[name])
        written[f"distribution_{name}"] = save_eda_figure(fig, figure_dir / FIGURES[f"distribution_{name}"][0])
    outlier, fences = centroid_outliers(features["centroid_x"], features["centroid_y"])
    written["centroids"] = save_eda_figure(plot_centroids(features, outlier, fences, image_size),
                                        figure_dir / "centroids.png")
    written["aspect_vs_area"] = save_eda_figure(plot_aspect_vs_area(features, label_stats["aspect_vs_area"]),
                                             figure_dir / "aspect_vs_area.png")
    return written


def write_age_figures(figure_dir, patients, header_stats):
    """Write the age figures (plausible ages; by sex and target) into ``figure_dir``; returns key -> path."""
    rows = header_rows(patients)
    plausible = rows[~rows["implausible"] & rows["age"].notna()]
    implausible = rows.loc[rows["implausible"], "age"].to_numpy()
    return {"age": save_eda_figure(plot_age(plausible["age"], implausible, header_stats["age"]),
                                figure_dir / "age.png"),
            "age_by_sex_and_target": save_eda_figure(plot_age_by_sex_and_target(plausible),
                                                  figure_dir / "age_by_sex_and_target.png")}

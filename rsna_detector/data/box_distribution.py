"""The real RSNA opacity boxes as compact summary statistics, and boxes drawn from them.

:data:`REAL_BOX_STATISTICS` summarises ``stage_2_train_labels.csv`` (9,555 boxes
of 6,012 positive patients, 1024-pixel coordinates) without holding any label
row: how many of a patient's boxes lie in the image's left half (per number of
boxes) and, per half (by the box centre), the quantiles (:data:`QUANTILES`) of
the box's ``x``, ``y`` (top-left corner), ``width`` and ``height`` with the
correlation matrix of their normal scores (a Gaussian copula: every marginal and
every pairwise dependence, such as taller boxes being wider, is kept).
:func:`box_statistics` computes the same summary from a label table;
``tests/data/test_box_distribution.py`` recomputes it from the real file
(``RSNA_DATA_DIR``) and compares.

:func:`sample_real_boxes` draws a patient's boxes from it: the split over the
halves, then per box correlated normal scores mapped through the quantile
tables (linear between quantiles, the outer 0.5 % cut), the box kept inside the
image and, on one side, apart from the boxes already there (two real boxes of
one patient overlap in 9 of 3,701 pairs).
"""
from __future__ import annotations

import numpy as np

from ..errors import InvalidArgumentError

__all__ = ["QUANTILES", "REAL_BOX_STATISTICS", "box_statistics", "sample_real_boxes"]

#: The quantile levels of each variable's table; between them the distribution is taken as linear.
QUANTILES = (0.005, 0.025, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8,
             0.85, 0.9, 0.95, 0.975, 0.995)
_VARIABLES = ("x", "y", "width", "height")  # RSNA boxes: top-left corner, size
_REFERENCE_SIDE = 1024  # the statistics are in pixels of the 1024 RSNA image
_MAX_TRIES = 50

#: ``box_statistics`` of the real ``stage_2_train_labels.csv`` (see the module docstring); regenerate with
#: ``pprint.pformat(box_statistics(read_labels(CSV)), width=116, sort_dicts=False, compact=True)``.
REAL_BOX_STATISTICS = {'left_boxes': {1: [996, 1618], 2: [29, 3196, 41], 3: [0, 45, 73, 1], 4: [0, 2, 11, 0, 0]},
     'sides': {'left': {'boxes': 5114,
                        'x': [31.0, 76.0, 99.0, 124.0, 141.0, 155.0, 166.0, 177.0, 186.0, 195.0, 204.0, 213.0, 221.2,
                              230.0, 240.0, 251.0, 262.0, 274.0, 289.0, 307.0, 335.0, 359.2, 402.9],
                        'y': [63.0, 101.0, 132.6, 171.0, 202.0, 227.0, 251.0, 274.0, 299.0, 323.0, 351.0, 374.0, 397.0,
                              419.0, 443.0, 465.0, 487.0, 511.0, 537.0, 569.0, 618.0, 652.7, 725.4],
                        'width': [90.0, 108.0, 123.0, 140.0, 151.9, 163.0, 171.0, 181.0, 189.0, 197.0, 204.0, 212.0,
                                  218.0, 226.0, 233.0, 242.0, 251.0, 262.0, 273.0, 287.0, 308.0, 328.0, 367.9],
                        'height': [68.0, 95.8, 117.0, 138.0, 157.0, 174.0, 192.0, 208.0, 227.0, 243.0, 261.8, 282.5,
                                   305.0, 331.0, 358.0, 388.1, 419.0, 457.0, 495.0, 542.0, 605.3, 654.0, 726.4],
                        'correlation': [[1.0, 0.037, -0.549, -0.244], [0.037, 1.0, -0.3, -0.629],
                                        [-0.549, -0.3, 1.0, 0.601], [-0.244, -0.629, 0.601, 1.0]]},
               'right': {'boxes': 4441,
                         'x': [431.2, 475.0, 496.0, 520.0, 537.0, 549.0, 558.0, 568.0, 577.0, 584.0, 592.0, 599.0,
                               607.0, 615.0, 624.0, 632.0, 641.0, 653.0, 667.0, 683.0, 711.0, 734.0, 777.6],
                         'y': [66.2, 110.0, 139.0, 176.0, 201.0, 226.0, 246.0, 268.0, 289.0, 312.0, 333.0, 356.0, 375.0,
                               398.0, 421.0, 443.0, 468.0, 494.0, 522.0, 558.0, 607.0, 650.0, 731.2],
                         'width': [83.0, 109.0, 126.0, 146.0, 161.0, 173.0, 182.0, 192.0, 200.0, 209.0, 217.0, 224.0,
                                   232.0, 240.0, 248.0, 257.0, 267.0, 277.0, 289.0, 303.0, 326.0, 352.0, 386.8],
                         'height': [77.0, 106.0, 129.0, 157.0, 178.0, 200.0, 218.0, 238.0, 257.0, 275.0, 296.0, 318.0,
                                    343.0, 368.0, 398.0, 426.0, 459.0, 496.0, 533.0, 575.0, 642.0, 688.0, 767.6],
                         'correlation': [[1.0, 0.238, -0.379, -0.271], [0.238, 1.0, -0.299, -0.616],
                                         [-0.379, -0.299, 1.0, 0.61], [-0.271, -0.616, 0.61, 1.0]]}}}


def _normal_scores(values):
    """Normal scores ``ndtri(rank / (n + 1))`` of a sample (average ranks for ties)."""
    from scipy.special import ndtri
    from scipy.stats import rankdata

    return ndtri(rankdata(values) / (len(values) + 1))


def _side_summary(columns):
    """Quantile tables of x, y, width, height and the correlation of their normal scores."""
    summary = {"boxes": len(columns[0])}
    for name, values in zip(_VARIABLES, columns, strict=True):
        summary[name] = np.round(np.quantile(values, QUANTILES), 1).tolist()
    correlation = np.eye(len(_VARIABLES))
    if len(columns[0]) > 1:
        with np.errstate(invalid="ignore", divide="ignore"):
            correlation = np.corrcoef(np.stack([_normal_scores(values) for values in columns]))
        correlation = np.where(np.isfinite(correlation), correlation, np.eye(len(_VARIABLES)))  # constant columns
    summary["correlation"] = np.round(correlation, 3).tolist()
    return summary


def box_statistics(labels):
    """The compact summary of a label table's boxes (the layout of :data:`REAL_BOX_STATISTICS`).

    Parameters
    ----------
    labels : pandas.DataFrame
        ``read_labels``' columns ``patientId, x, y, width, height, Target``, one
        row per box (negatives: one row with Target 0), 1024-pixel coordinates.

    Returns
    -------
    dict
        ``left_boxes``: {n boxes: [patients with 0, 1, ..., n of them in the
        image's left half, by the box centre]}; ``sides``: {'left', 'right'}:
        ``boxes`` (count), the :data:`QUANTILES` of ``x``, ``y`` (top-left
        corner), ``width`` and ``height`` (0.1 px), and ``correlation``, the
        4 x 4 correlation of their normal scores (3 decimals), in that order
        (identity for a half with one box; 0 for a constant variable).

    Raises
    ------
    ValueError
        When one half of the image holds no box.
    """
    boxes = labels[labels["Target"] == 1]
    x, y, width, height = (boxes[name].to_numpy(np.float64) for name in ("x", "y", "width", "height"))
    left = x + width / 2 < _REFERENCE_SIDE / 2
    per_patient = boxes.assign(left=left).groupby("patientId")["left"].agg(["size", "sum"])
    left_boxes = {int(n): np.bincount(group["sum"].astype(int), minlength=int(n) + 1).tolist()
                  for n, group in per_patient.groupby("size")}
    for name, mask in (("left", left), ("right", ~left)):
        if not mask.any():
            raise InvalidArgumentError(f"box_statistics: no box in the image's {name} half; the summary needs boxes "
                                       "in both")
    sides = {name: _side_summary([x[mask], y[mask], width[mask], height[mask]])
             for name, mask in (("left", left), ("right", ~left))}
    return {"left_boxes": left_boxes, "sides": sides}


def _draw_variables(rng, side):
    """One (x, y, width, height) from a side's summary: a Gaussian copula over the quantile tables."""
    from scipy.special import ndtr

    z = rng.multivariate_normal(np.zeros(len(_VARIABLES)), np.asarray(side["correlation"], np.float64),
                                method="cholesky")
    levels = np.clip(ndtr(z), QUANTILES[0], QUANTILES[-1])
    return [float(np.interp(level, QUANTILES, side[name])) for level, name in zip(levels, _VARIABLES, strict=True)]


def _overlaps(box, others):
    x, y, w, h = box
    return any(x < ox + ow and ox < x + w and y < oy + oh and oy < y + h for ox, oy, ow, oh in others)


def _draw_box(rng, side, others):
    """One (x, y, w, h) box in 1024 pixels, inside the image, apart from ``others`` when it can be."""
    for _ in range(_MAX_TRIES):
        x, y, width, height = _draw_variables(rng, side)
        box = (float(np.clip(x, 0, _REFERENCE_SIDE - width)), float(np.clip(y, 0, _REFERENCE_SIDE - height)),
               width, height)
        if not _overlaps(box, others):
            break
    return box


def sample_real_boxes(rng, n_boxes, image_size, statistics=None):
    """A positive patient's ``n_boxes`` boxes drawn from the real label distribution.

    Parameters
    ----------
    rng : numpy.random.Generator
    n_boxes : int
        1-4 (0 gives none).
    image_size : int
        Side of the image the boxes are for; the statistics (1024 pixels) are scaled.
    statistics : dict, optional
        :func:`box_statistics`' layout; default :data:`REAL_BOX_STATISTICS`.

    Returns
    -------
    numpy.ndarray
        float64 [n_boxes, 4] RSNA ``(x, y, width, height)``, integer-valued,
        inside the ``image_size`` image, each at least 1 pixel wide and high.

    Raises
    ------
    ValueError
        ``n_boxes`` outside what the statistics hold (the real data: 0-4).
    """
    statistics = REAL_BOX_STATISTICS if statistics is None else statistics
    left_boxes = {int(k): v for k, v in statistics["left_boxes"].items()}
    if n_boxes == 0:
        return np.zeros((0, 4), np.float64)
    if n_boxes not in left_boxes:
        raise InvalidArgumentError(f"n_boxes must be one of 0, {', '.join(map(str, sorted(left_boxes)))}; got "
                                   f"{n_boxes}")
    counts = np.asarray(left_boxes[n_boxes], np.float64)
    n_left = int(rng.choice(len(counts), p=counts / counts.sum()))
    placed = {"left": [], "right": []}
    for side in ["left"] * n_left + ["right"] * (n_boxes - n_left):
        placed[side].append(_draw_box(rng, statistics["sides"][side], placed[side]))
    out = np.round(np.array(placed["left"] + placed["right"], np.float64) * (image_size / _REFERENCE_SIDE))
    out[:, 2:] = np.maximum(out[:, 2:], 1)
    out[:, :2] = np.clip(out[:, :2], 0, image_size - out[:, 2:])
    return out

"""The rows of ``bench_models.py``'s table from the cached runs, its figures and ``RESULTS.md``.

Every fitted choice (confidence threshold, classifier gate, box scale) is fitted on the validation
split and applied to the test split; the metrics are the library's (``evaluate.detection_metrics`` by
box IoU: mAP@0.5 and the competition score of the boxes kept; the classifier metrics of
``baselines.classifier.metrics``). Boxes are in the DICOMs' own pixels.
"""
from __future__ import annotations

import os
import platform
import time
from pathlib import Path

import numpy as np
from bench_models import CLASSIFIERS, GATING_CLASSIFIER

LADDER = (
    "Mask R-CNN, default threshold",
    "+ validated threshold",
    "+ flip TTA",
    "+ scale TTA (0.8/1.0/1.2, WBF)",
    "+ k-fold WBF ensemble",
    "+ classifier gating",
    "+ box scaling",
)
GATE_THRESHOLDS = tuple(np.round(np.arange(0.05, 0.96, 0.05), 3).tolist())


# --------------------------------------------------------------------------- predictions
def _prediction(pid, boxes, scores):
    from rsna_detector.detector.submission import ImagePrediction

    return ImagePrediction(pid, np.asarray(boxes, np.float32).reshape(-1, 4), np.asarray(scores, np.float32))


def _ground_truth(records, ids):
    return {pid: np.asarray(records[pid].boxes, np.float64).reshape(-1, 4) for pid in ids}


def _one_view(member, split, key="1|plain"):
    return {pid: _prediction(pid, *found) for pid, found in member["views"][split][key].items()}


def _fused(members, split, postprocessing):
    """The library's fusion (``postprocess.apply_postprocessing``, no threshold) of the cached views of
    ``members``, in the order ``postprocess.views_of`` runs them."""
    from rsna_detector.detector.postprocess import Detections, apply_postprocessing, views_of

    keys = [(f"{scale:g}|{mirror}") for scale in postprocessing.scales
            for mirror in (("plain", "mirror") if postprocessing.flip_tta else ("plain",))]
    assert len(keys) == len(views_of(postprocessing))
    out = {}
    for pid in members[0]["views"][split]["1|plain"]:
        views = []
        for member in members:
            for key in keys:
                boxes, scores = member["views"][split][key][pid]
                boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
                views.append(Detections(boxes, np.asarray(scores, np.float32), np.ones(len(boxes), np.int32)))
        fused = apply_postprocessing(views, postprocessing)
        out[pid] = _prediction(pid, fused.boxes, fused.scores)
    return out


def _above(predictions, threshold):
    return {pid: _prediction(pid, p.boxes[p.scores >= threshold], p.scores[p.scores >= threshold])
            for pid, p in predictions.items()}


def _records(truth, predictions):
    from rsna_detector.detector.evaluate import records_from_predictions

    return records_from_predictions(truth, list(predictions.values()))


def _fit_threshold(truth, predictions, sweep):
    """(threshold best on these predictions, its score, the sweep table)."""
    from rsna_detector.detector.competition import sweep_confidence_threshold

    threshold, score, table = sweep_confidence_threshold(_records(truth, predictions), thresholds=sweep)
    return (float(sweep[0]) if not np.isfinite(threshold) else threshold), score, table


def _scores(truth, predictions):
    from rsna_detector.detector.evaluate import detection_metrics

    metrics = detection_metrics(_records(truth, predictions), "box")
    return {"map50": metrics["map50"], "rsna_score": metrics["rsna_score"]}


# --------------------------------------------------------------------------- the ladder of one seed
def _cost(member, splits, keys):
    return sum(member["cost"][split][key] for split in splits for key in keys)


def _fit_gate(truth, predictions, classifier_scores):
    from rsna_detector.baselines.gating import gating_effect

    table = gating_effect(truth, predictions, classifier_scores, GATE_THRESHOLDS)
    best = table.loc[table["rsna_score_after"].idxmax()]
    return float(best["threshold"]) if best["rsna_score_after"] > best["rsna_score_before"] else 0.0


def ladder(seed_result, records, split, settings):
    """The Mask R-CNN rows of one seed: {row: {map50, rsna_score, threshold, cpu_s}} and the figure data."""
    from rsna_detector.baselines.gating import gate_predictions
    from rsna_detector.detector.ensemble import fit_box_scale, scale_prediction_boxes
    from rsna_detector.detector.postprocess import PostProcessing

    truth = {part: _ground_truth(records, split[part]) for part in ("val", "test")}
    tta = PostProcessing(flip_tta=True, scales=tuple(settings.scales))
    members = seed_result["maskrcnn"]["members"]
    single, folds = members["single"], [m for name, m in members.items() if name.startswith("fold_")]
    all_keys = list(single["views"]["val"])
    both = ("val", "test")
    classifier = seed_result["classifiers"][GATING_CLASSIFIER]
    classifier_cost = classifier["train_cpu_s"] + sum(classifier["cost"].values())
    ensemble_cost = sum(m["train_cpu_s"] + _cost(m, both, all_keys) for m in folds)
    candidates = [
        (LADDER[1], {s: _one_view(single, s) for s in both}, single["train_cpu_s"] + _cost(single, both, ["1|plain"])),
        (LADDER[2], {s: _fused([single], s, PostProcessing(flip_tta=True)) for s in both},
         single["train_cpu_s"] + _cost(single, both, ["1|plain", "1|mirror"])),
        (LADDER[3], {s: _fused([single], s, tta) for s in both}, single["train_cpu_s"] + _cost(single, both, all_keys)),
        (LADDER[4], {s: _fused(folds, s, tta.replace(members=tuple(f"fold_{k}" for k in range(len(folds)))))
                     for s in both}, ensemble_cost),
    ]
    default = float(seed_result["maskrcnn"]["default_threshold"])
    rows = {LADDER[0]: dict(_scores(truth["test"], _above(candidates[0][1]["test"], default)), threshold=default,
                            cpu_s=single["train_cpu_s"] + _cost(single, ["test"], ["1|plain"]))}
    figures = {}
    for name, predictions, cost in candidates:
        threshold, _, table = _fit_threshold(truth["val"], predictions["val"], settings.sweep)
        rows[name] = dict(_scores(truth["test"], _above(predictions["test"], threshold)), threshold=threshold,
                          cpu_s=cost)
        figures[name] = {"sweep": table, "test": predictions["test"]}
    kept = {s: _above(candidates[-1][1][s], rows[LADDER[4]]["threshold"]) for s in both}
    gate = _fit_gate(truth["val"], kept["val"], classifier["scores"]["val"])
    gated = {s: gate_predictions(kept[s], classifier["scores"][s], gate) for s in both}
    rows[LADDER[5]] = dict(_scores(truth["test"], gated["test"]), threshold=gate, cpu_s=ensemble_cost + classifier_cost)
    factor, _, _ = fit_box_scale(truth["val"], gated["val"])
    factor = 1.0 if not np.isfinite(factor) else factor
    rows[LADDER[6]] = dict(_scores(truth["test"], scale_prediction_boxes(gated["test"], factor)), threshold=factor,
                           cpu_s=ensemble_cost + classifier_cost)
    return rows, figures


def classifier_rows(seed_result, records, split):
    """{name: {auc, f1, threshold, cpu_s}}: AUC on test, F1 on test at the validation's best-F1 threshold."""
    from rsna_detector.baselines.classifier.metrics import best_f1_threshold, confusion_matrix, roc_auc

    rows = {}
    for name in CLASSIFIERS:
        result = seed_result["classifiers"][name]
        labels = {s: np.array([records[pid].target for pid in split[s]]) for s in ("val", "test")}
        scores = {s: np.array([result["scores"][s][pid] for pid in split[s]]) for s in ("val", "test")}
        threshold, _ = best_f1_threshold(labels["val"], scores["val"])
        threshold = 0.5 if not np.isfinite(threshold) else threshold
        (_, fp), (fn, tp) = confusion_matrix(labels["test"], scores["test"], threshold)
        rows[name] = {"auc": roc_auc(labels["test"], scores["test"]),
                      "f1": 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0, "threshold": threshold,
                      "cpu_s": result["train_cpu_s"] + sum(result["cost"].values())}
    return rows


def retinanet_row(seed_result, records, split, settings):
    result = seed_result["retinanet"]
    truth = {s: _ground_truth(records, split[s]) for s in ("val", "test")}
    predictions = {s: {pid: _prediction(pid, *found) for pid, found in result["detections"][s].items()}
                   for s in ("val", "test")}
    threshold, _, table = _fit_threshold(truth["val"], predictions["val"], settings.sweep)
    row = dict(_scores(truth["test"], _above(predictions["test"], threshold)), threshold=threshold,
               cpu_s=result["train_cpu_s"] + sum(result["cost"].values()))
    return row, {"sweep": table, "test": predictions["test"]}


# --------------------------------------------------------------------------- over seeds
def _spread(values):
    values = np.asarray([v for v in values if np.isfinite(v)], np.float64)
    if not len(values):
        return {"mean": float("nan"), "sd": float("nan"), "min": float("nan"), "max": float("nan"), "n": 0}
    return {"mean": float(values.mean()), "sd": float(values.std(ddof=1)) if len(values) > 1 else 0.0,
            "min": float(values.min()), "max": float(values.max()), "n": int(len(values))}


def table(seeds, records, split, settings):
    """Every row with its spread over the seeds, and seed 0's figure data."""
    per_seed, figures = [], None
    for result in seeds:
        rows, seed_figures = ladder(result, records, split, settings)
        retina, retina_figure = retinanet_row(result, records, split, settings)
        per_seed.append({"classifiers": classifier_rows(result, records, split), "retinanet": retina,
                         "maskrcnn": rows})
        if figures is None:
            figures = dict(seed_figures, RetinaNet=retina_figure)
    out = {"classifiers": {}, "retinanet": {}, "maskrcnn": {}}
    for name in CLASSIFIERS:
        out["classifiers"][name] = {k: _spread([s["classifiers"][name][k] for s in per_seed])
                                    for k in ("auc", "f1", "threshold", "cpu_s")}
    out["retinanet"] = {k: _spread([s["retinanet"][k] for s in per_seed])
                        for k in ("map50", "rsna_score", "threshold", "cpu_s")}
    for name in LADDER:
        out["maskrcnn"][name] = {k: _spread([s["maskrcnn"][name][k] for s in per_seed])
                                 for k in ("map50", "rsna_score", "threshold", "cpu_s")}
    return out, per_seed, figures


# --------------------------------------------------------------------------- figures and the report
def _figures(figures, records, split, folder):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from rsna_detector.detector.evaluate import precision_recall_curve

    folder.mkdir(parents=True, exist_ok=True)
    truth = _ground_truth(records, split["test"])
    figure, axis = plt.subplots(figsize=(7, 5))
    for name, data in figures.items():
        precisions, recalls, _ = precision_recall_curve(_records(truth, data["test"]))
        axis.plot(recalls, precisions, label=name)
    axis.set(xlabel="recall (IoU 0.5)", ylabel="precision", title="Precision-recall on the test split (seed 0)",
             xlim=(0, 1), ylim=(0, 1.02))
    axis.legend(fontsize=8)
    paths = [folder / "pr_curves.png"]
    figure.savefig(paths[0], dpi=100, bbox_inches="tight")
    plt.close(figure)
    figure, axis = plt.subplots(figsize=(7, 5))
    for name, data in figures.items():
        axis.plot([r["threshold"] for r in data["sweep"]], [r["rsna_score"] for r in data["sweep"]], label=name)
    axis.set(xlabel="confidence threshold", ylabel="competition score",
             title="Threshold sweeps on the validation split (seed 0)")
    axis.legend(fontsize=8)
    paths.append(folder / "threshold_sweeps.png")
    figure.savefig(paths[1], dpi=100, bbox_inches="tight")
    plt.close(figure)
    return paths


def _cell(spread, digits=3):
    if not spread["n"]:
        return "-"
    return (f"{spread['mean']:.{digits}f} ± {spread['sd']:.{digits}f} "
            f"({spread['min']:.{digits}f}-{spread['max']:.{digits}f})")


def _cpu(spread):
    return "-" if not spread["n"] else f"{spread['mean'] / 60:.1f} min"


def _machine():
    cpu = platform.processor() or platform.machine()
    try:
        model = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                     if line.startswith("model name"))
        cpu = model
    except (OSError, StopIteration):
        pass
    return f"{cpu}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f} at the end"


def _settings_text(settings, args, data_dir, split):
    data = (f"the Kaggle download in `{data_dir}`" if args.data else
            f"{settings['n_patients']} synthetic patients of the realistic preset at {settings['image_size']} px "
            "(`rsna-detector synth --preset realistic`: boxes drawn from the real label statistics, fainter "
            "patchy opacities, varying exposure and noise)")
    weights = settings["weights"] or "random"
    return "\n".join([
        f"- Data: {data}; split at patient level, stratified by Target: {len(split['train'])} training, "
        f"{len(split['val'])} validation, {len(split['test'])} test patients (the test split is held out of "
        "every fit).",
        f"- Mask R-CNN: {'the CPU preset (CPUDemoConfig)' if settings['config'] == 'cpu' else 'DetectorConfig'}, "
        f"{settings['epochs']} epochs of {settings['steps_per_epoch']} steps, {weights} initial weights"
        + (f", negatives downsampled to {settings['negatives_per_positive']:g} per positive" if
           settings["negatives_per_positive"] else "")
        + f"; detection keeps boxes down to {min(settings['sweep']):g} and every threshold is chosen on the "
        f"validation split from {min(settings['sweep']):g} to {max(settings['sweep']):g}; "
        f"scale TTA at {', '.join(f'{s:g}' for s in settings['scales'])}, each plain and mirrored; "
        f"the ensemble: {settings['folds']} models on the folds of the training split (each trained like the "
        "single model), all their views fused by weighted boxes fusion (IoU 0.55).",
        f"- Classifiers: {settings['classifier_size']} px inputs, {settings['classifier_epochs']} epochs"
        + (f" of {settings['classifier_steps']} steps" if settings["classifier_steps"] else "")
        + f", {settings['classifier_weights'] or 'random'} initial weights, the report's augmentation and class "
        "weights; the gate is DenseNet121's score, its threshold chosen on the validation split.",
        f"- RetinaNet: {settings['retinanet_size']} px, {settings['retinanet_epochs']} epochs"
        + (f" of {settings['retinanet_steps']} steps" if settings["retinanet_steps"] else "")
        + f", batch {settings['retinanet_batch']}, {settings['retinanet_weights'] or 'random'} initial weights.",
        f"- Seeds {', '.join(map(str, settings['seeds']))}: initialisation, shuffling and augmentation change; "
        "the split does not.",
    ])


CAVEATS = """## What a synthetic benchmark can and cannot tell

It can tell whether each technique is wired correctly and in which direction it moves the
score when everything else is held fixed: the same split, budget and seeds, every choice fitted
on validation patients and scored on held-out ones. The realistic preset draws its boxes from
the real label distribution (sizes, positions, counts per patient, 22.5 % positive patients), so
the competition metric weighs false positives on negative images as it does on the real data.

It cannot tell how large the gains are on real chest X-rays, nor their order. Synthetic opacities
are blobs drawn exactly inside their boxes; real ones are judged by radiologists who disagree,
so real boxes are noisier, and the box-scaling factor fitted here says nothing about the real
one (the 1st place solution's 0.875). The classifiers and RetinaNet train from random weights at
small inputs for minutes, where the report fine-tuned ImageNet weights for hours; Mask R-CNN runs
its tiny CPU backbone. Differences smaller than the spread over seeds are noise. The real
comparison is the same script on the Kaggle download: `python benchmarks/bench_models.py --data
DIR` (full settings, GPUs)."""


def write_report(seeds, records, split, args, data_dir, *, wall_s, settings):
    """Write ``RESULTS.md``, ``results/*.png`` and ``results/bench_models.json`` into ``args.out``; returns the table."""
    from rsna_detector._io import atomic_write, write_json
    from rsna_detector.console import format_table

    out = Path(args.out)
    summary, per_seed, figures = table(seeds, records, split, args.settings)
    pictures = _figures(figures, records, split, out / "results")
    write_json(out / "results" / "bench_models.json", {"settings": settings, "split": {k: len(v) for k, v in
                                                                                       split.items()},
                                                       "table": summary, "per_seed": per_seed})
    n = len(seeds)
    lines = ["| model | mAP@0.5 (test) | competition score (test) | fitted value | CPU time |",
             "|---|---|---|---|---|"]
    retina = summary["retinanet"]
    lines.append(f"| RetinaNet, validated threshold | {_cell(retina['map50'])} | {_cell(retina['rsna_score'])} | "
                 f"threshold {retina['threshold']['mean']:.2f} | {_cpu(retina['cpu_s'])} |")
    fitted = {LADDER[0]: "threshold", LADDER[5]: "gate", LADDER[6]: "box scale"}
    for name in LADDER:
        row = summary["maskrcnn"][name]
        lines.append(f"| {name} | {_cell(row['map50'])} | {_cell(row['rsna_score'])} | "
                     f"{fitted.get(name, 'threshold')} {row['threshold']['mean']:.3f} | {_cpu(row['cpu_s'])} |")
    classifier_lines = ["| classifier | ROC-AUC (test) | F1 at the validated threshold (test) | CPU time |",
                        "|---|---|---|---|"]
    for name in CLASSIFIERS:
        row = summary["classifiers"][name]
        classifier_lines.append(f"| {name} | {_cell(row['auc'])} | {_cell(row['f1'])} | {_cpu(row['cpu_s'])} |")
    text = "\n".join([
        "# Results: classifiers, RetinaNet and the Mask R-CNN ladder",
        "",
        f"Written by `python benchmarks/bench_models.py{' --data DIR' if args.data else ''} --preset "
        f"{args.settings.name}` on {time.strftime('%Y-%m-%d')} ({_machine()}; {wall_s / 3600:.2f} h wall time). "
        f"Every cell: mean ± standard deviation (range) over {n} seeds; CPU time: the mean CPU time "
        "(all threads and child processes) of the models a row uses: their training and their detection on the "
        "validation and test splits.",
        "",
        "## Settings",
        "",
        _settings_text(settings, args, data_dir, split),
        "",
        "## Detectors",
        "",
        "Each Mask R-CNN row adds one technique to the row above; the fitted value is the one chosen on the "
        "validation split (confidence threshold, classifier-gate threshold or box-scale factor), averaged "
        "over the seeds.",
        "",
        *lines,
        "",
        "## Classifiers",
        "",
        *classifier_lines,
        "",
        "## Figures",
        "",
        *[f"![{p.stem}](results/{p.name})" for p in pictures],
        "",
        CAVEATS,
        "",
    ])
    atomic_write(out / "RESULTS.md", text)
    rows = [(name, summary["maskrcnn"][name]["map50"]["mean"], summary["maskrcnn"][name]["rsna_score"]["mean"])
            for name in LADDER]
    rows.insert(0, ("RetinaNet", retina["map50"]["mean"], retina["rsna_score"]["mean"]))
    rows += [(f"{name} (AUC, F1)", summary["classifiers"][name]["auc"]["mean"],
              summary["classifiers"][name]["f1"]["mean"]) for name in CLASSIFIERS]
    return format_table(rows, headers=("row (mean over seeds)", "mAP@0.5 / AUC", "score / F1")) + \
        f"\nwrote {out / 'RESULTS.md'}"

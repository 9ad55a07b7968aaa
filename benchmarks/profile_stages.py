"""Per-stage time of one inference (batch 1) and one training step (batch 8), ours and torchvision's.

Usage (``make profile-peer`` builds both venvs and runs it; ``PEER_ARGS`` passes options)::

    python benchmarks/profile_stages.py [--rounds 2] [--repeat 3] [--train-batch 0] [--markdown out.md]

Settings: those of ``bench_peer.py`` (identical settings on both sides: ResNet-50-FPN,
256 x 256, anchors 16-256 on P2-P6, 1000 / 2000 proposals, 32 ROIs per image, ...).

Method
------
*Ours* (a compiled TensorFlow graph, nothing to hook into): the Keras graph of the model is
cut at the stage boundaries into sub-models (``keras.Model(intermediate inputs,
intermediate outputs)``: the very layers and weights, no copy), each run as a
``tf.function`` on the intermediate values of a real run. A stage's figure is the median
wall time of ``--repeat`` calls. Stages: backbone (``conv1`` .. ``res5c_out``), FPN
(``fpn_*``), RPN head (``rpn_model`` on each level and the concatenation), proposals + NMS
(``ROI``), ROI align (``roi_align_classifier`` / ``roi_align_mask``), box head (from the
pooled features to ``mrcnn_class`` / ``mrcnn_bbox``), detection (``mrcnn_detection``), mask
head (from the pooled features to ``mrcnn_mask``); in training also targets
(``proposal_targets``), losses (the five loss layers), the whole forward pass, the optimiser
update alone (``optimizer.apply`` on fixed gradients) and the whole compiled training step
(``train_function``, as ``MaskRCNN.train`` runs it). "backward" is step - forward - optimiser.
For the stages with weights (and ROI align, whose gradient goes to the feature maps) the
training table also gives forward + backward of the stage alone (``tf.GradientTape`` over
the stage's trainable weights and its float inputs, a fixed random cotangent).

*torchvision* (eager): every stage's module or function is wrapped by a timer that
records its exclusive wall time during one real call of the whole model (nested timers
subtract their children), e.g. ``backbone.body``, ``backbone.fpn``, ``rpn.head``,
``rpn.filter_proposals`` + ``box_coder.decode`` + the anchor generator,
``roi_heads.box_roi_pool``, ``box_head`` + ``box_predictor``, ``postprocess_detections``;
in training ``rpn.assign_targets_to_anchors`` / ``select_training_samples`` /
``project_masks_on_boxes`` (targets), ``rpn.compute_loss`` / ``fastrcnn_loss`` /
``maskrcnn_loss`` (losses), then ``loss.backward()`` and clip + ``optimizer.step()``
timed as such. Stage forward + backward alone: the module on its captured inputs, as ours.

**Each side runs in its own process** (``--side``, started by the default run with the
interpreters of ``bench_peer.py``: ours never imports torch, torchvision never TensorFlow),
alternating, ``--rounds`` times; the table gives the median over rounds. On a shared 2-core
machine the absolute figures are noisy: read the shares, the ratios and the CPU columns.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import peer_common as pc  # noqa: E402  (same folder: shared settings; numpy only)

STAGES_INFERENCE = ["preprocess", "backbone", "FPN", "RPN head", "proposals + NMS", "ROI align (box)", "box head",
                    "detection", "ROI align (mask)", "mask head", "postprocess"]
STAGES_TRAINING = ["backbone", "FPN", "RPN head", "proposals + NMS", "targets", "ROI align (box)", "box head",
                   "ROI align (mask)", "mask head", "losses"]


def median_time(fn, repeat, warmup=1):
    """``(wall, cpu)``: median wall seconds and median process CPU seconds of ``repeat`` calls."""
    record = pc.time_calls(fn, repeat, warmup)
    return statistics.median(record["times"]), statistics.median(record["cpu"])


# ----------------------------------------------------------------------------
# ours
# ----------------------------------------------------------------------------

def _layer_out(model, name):
    return model.get_layer(name).output


def _layer_in(model, name):
    value = model.get_layer(name).input
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _backbone_outputs(model):
    return [_layer_out(model, n) for n in ("res2c_out", "res3d_out", "res4f_out", "res5c_out")]


def _pyramid(model):
    return [_layer_out(model, f"fpn_p{i}") for i in range(2, 7)]


class OurStages:
    """Sub-models of one Keras graph cut at the stage boundaries, each a ``tf.function``."""

    def __init__(self, keras_model, stage_io, inputs, training):
        import keras
        import tensorflow as tf

        self.training = training
        boundary = []
        for ins, _outs in stage_io.values():
            boundary += ins
        unique = list({id(t): t for t in boundary}.values())
        probe = keras.Model(keras_model.inputs, unique)
        values = probe(inputs, training=training)
        self.values = {id(t): v for t, v in zip(unique, values)}
        self.stages = {}
        for name, (ins, outs) in stage_io.items():
            sub = keras.Model(ins, outs, name=f"stage_{len(self.stages)}")
            args = [self.values[id(t)] for t in ins]
            fn = tf.function(lambda args, sub=sub: sub(args, training=training), reduce_retracing=True)
            self.stages[name] = (sub, fn, args)

    def forward(self, repeat):
        return {name: median_time(lambda: fn(args), repeat) for name, (sub, fn, args) in self.stages.items()}

    def forward_backward(self, names, repeat):
        """Forward + backward of each named stage alone (gradients for its weights and float inputs)."""
        import tensorflow as tf

        out = {}
        for name in names:
            sub, _, args = self.stages[name]
            weights = list(sub.trainable_weights)
            float_args = [i for i, a in enumerate(args) if a.dtype.is_floating]

            def step(args, sub=sub, weights=weights, float_args=float_args):
                with tf.GradientTape() as tape:
                    watched = [args[i] for i in float_args]
                    tape.watch(watched)
                    outs = sub(args, training=self.training)
                    outs = outs if isinstance(outs, (list, tuple)) else [outs]
                    total = tf.add_n([tf.reduce_sum(tf.cast(o, tf.float32) * 0.001) for o in outs
                                      if o.dtype.is_floating])
                return tape.gradient(total, weights + watched)

            fn = tf.function(step, reduce_retracing=True)
            out[name] = median_time(lambda: fn(args), repeat)
        return out


def our_inference(batch, repeat):
    """name -> seconds for one ``detect`` of ``batch`` images at the peer settings."""
    import peer_ours
    import tensorflow as tf

    ours = peer_ours.OurInference(True, batch, tempfile.mkdtemp(prefix="profile_stages_"))
    model = ours.model
    km = model.keras_model
    images, _ = pc.synthetic_samples(batch)
    molded, metas, _ = model.mold_inputs(images)
    anchors = np.broadcast_to(model.get_anchors(molded.shape[1:]), (batch,) + model.get_anchors(molded.shape[1:]).shape)
    inputs = [tf.constant(molded), tf.constant(metas), tf.constant(np.ascontiguousarray(anchors))]
    image, meta, anchor_in = km.inputs
    detections, mrcnn_class, mrcnn_bbox, mrcnn_mask, rpn_rois, rpn_class, rpn_bbox = km.outputs
    cs, ps = _backbone_outputs(km), _pyramid(km)
    levels = model.config.RPN_PYRAMID_LEVELS
    box_align_in, mask_align_in = _layer_in(km, "roi_align_classifier"), _layer_in(km, "roi_align_mask")
    pooled, pooled_mask = _layer_out(km, "roi_align_classifier"), _layer_out(km, "roi_align_mask")
    io = {
        "backbone": ([image], cs),
        "FPN": (cs, ps),
        "RPN head": (ps[:levels], [rpn_class, rpn_bbox]),
        "proposals + NMS": ([rpn_class, rpn_bbox, anchor_in], [rpn_rois]),
        "ROI align (box)": (box_align_in, [pooled]),
        "box head": ([pooled, rpn_rois], [mrcnn_class, mrcnn_bbox]),
        "detection": ([rpn_rois, mrcnn_class, mrcnn_bbox, meta], [detections]),
        "ROI align (mask)": ([detections, meta] + mask_align_in[2:], [pooled_mask]),
        "mask head": ([pooled_mask, mask_align_in[0]], [mrcnn_mask]),
    }
    stages = OurStages(km, io, inputs, training=False)
    result = stages.forward(repeat)
    det_fn = model._detect_function(molded.shape[1:])
    det_fn(molded, metas)
    raw = det_fn(molded, metas)
    result["preprocess"] = median_time(lambda: model.mold_inputs(images), repeat)

    def unmold():
        d, m = raw[0].numpy(), raw[1].numpy()
        for k in range(batch):
            model.unmold_detections(d[k], m[k], images[k].shape, molded.shape[1:], [0, 0, 256, 256])

    result["postprocess"] = median_time(unmold, repeat)
    result["TOTAL (graph only)"] = median_time(lambda: det_fn(molded, metas), repeat)
    result["TOTAL (detect)"] = median_time(lambda: ours(images), repeat)
    return result


def our_training(batch, repeat):
    """(forward stages, forward+backward stages) -> seconds, for one training step of ``batch`` images."""
    import peer_ours
    import tensorflow as tf

    images, boxes = pc.synthetic_samples(batch)
    ours = peer_ours.OurTraining(True, images, boxes)
    km = ours.keras_model
    inputs = list(ours.iterator.get_next()[0])  # the fixed batch the training step sees
    image, meta, rpn_match, rpn_bbox_target, gt_class_ids, gt_boxes_px, gt_masks = km.inputs
    outs = km.outputs
    rpn_class_logits, rpn_class, rpn_bbox = outs[0], outs[1], outs[2]
    mrcnn_class_logits, mrcnn_class, mrcnn_bbox, mrcnn_mask, rpn_rois = outs[3], outs[4], outs[5], outs[6], outs[7]
    losses = outs[-5:]
    cs, ps = _backbone_outputs(km), _pyramid(km)
    levels = ours.config.RPN_PYRAMID_LEVELS
    targets_in, targets_out = _layer_in(km, "proposal_targets"), list(_layer_out(km, "proposal_targets"))
    rois, target_class_ids, target_bbox, target_mask = targets_out
    box_align_in, mask_align_in = _layer_in(km, "roi_align_classifier"), _layer_in(km, "roi_align_mask")
    pooled, pooled_mask = _layer_out(km, "roi_align_classifier"), _layer_out(km, "roi_align_mask")
    io = {
        "backbone": ([image], cs),
        "FPN": (cs, ps),
        "RPN head": (ps[:levels], [rpn_class_logits, rpn_class, rpn_bbox]),
        "proposals + NMS": ([rpn_class, rpn_bbox, _layer_out(km, "anchors")], [rpn_rois]),
        "targets": (targets_in, targets_out),
        "ROI align (box)": (box_align_in, [pooled]),
        "box head": ([pooled, rois], [mrcnn_class_logits, mrcnn_class, mrcnn_bbox]),
        "ROI align (mask)": (mask_align_in, [pooled_mask]),
        "mask head": ([pooled_mask, mask_align_in[0]], [mrcnn_mask]),
        "losses": ([rpn_match, rpn_bbox_target, meta, rpn_class_logits, rpn_bbox, rois, target_class_ids,
                    target_bbox, target_mask, mrcnn_class_logits, mrcnn_bbox, mrcnn_mask], losses),
    }
    stages = OurStages(km, io, inputs, training=True)
    forward = stages.forward(repeat)
    forward["TOTAL forward"] = median_time(
        lambda: _whole_forward(km)(inputs), repeat)
    variables = km.trainable_variables
    grads = [tf.random.normal(v.shape, stddev=1e-3) for v in variables]
    apply = tf.function(lambda g: km.optimizer.apply(g, variables))
    forward["optimizer step"] = median_time(lambda: apply(grads), repeat)
    forward["TOTAL step"] = median_time(ours, repeat)
    forward["backward"] = tuple(step - fwd - opt for step, fwd, opt in zip(
        forward["TOTAL step"], forward["TOTAL forward"], forward["optimizer step"]))
    fwd_bwd = stages.forward_backward(["backbone", "FPN", "RPN head", "ROI align (box)", "box head",
                                       "ROI align (mask)", "mask head"], repeat)
    return forward, fwd_bwd


_FORWARDS = {}


def _whole_forward(km):
    import tensorflow as tf

    if id(km) not in _FORWARDS:
        _FORWARDS[id(km)] = tf.function(lambda x: km(x, training=True))
    return _FORWARDS[id(km)]


# ----------------------------------------------------------------------------
# torchvision
# ----------------------------------------------------------------------------

class StageTimer:
    """Exclusive wall time per stage of wrapped callables (children subtract from parents)."""

    def __init__(self):
        self.totals = {}
        self._stack = []
        self.captured = {}
        self._undo = []

    def wrap(self, owner, attr, stage, capture=False):
        original = getattr(owner, attr)

        def timed(*args, **kwargs):
            if capture and stage not in self.captured:
                self.captured[stage] = (args, kwargs)
            self._stack.append(np.zeros(2))
            start = np.array([time.perf_counter(), time.process_time()])
            try:
                return original(*args, **kwargs)
            finally:
                elapsed = np.array([time.perf_counter(), time.process_time()]) - start
                children = self._stack.pop()
                self.totals[stage] = self.totals.get(stage, np.zeros(2)) + elapsed - children
                if self._stack:
                    self._stack[-1] += elapsed

        setattr(owner, attr, timed)
        self._undo.append((owner, attr, original))

    def reset(self):
        self.totals = {}


def instrument(model):
    """Wrap the stages of a torchvision MaskRCNN (instance attributes; module functions patched)."""
    from torchvision.models.detection import roi_heads as rh

    timer = StageTimer()
    rpn, heads = model.rpn, model.roi_heads
    timer.wrap(model.transform, "forward", "preprocess")
    timer.wrap(model.transform, "postprocess", "postprocess")
    timer.wrap(model.backbone.body, "forward", "backbone", capture=True)
    timer.wrap(model.backbone.fpn, "forward", "FPN", capture=True)
    timer.wrap(rpn.head, "forward", "RPN head", capture=True)
    timer.wrap(rpn.anchor_generator, "forward", "proposals + NMS")
    timer.wrap(rpn.box_coder, "decode", "proposals + NMS")
    timer.wrap(rpn, "filter_proposals", "proposals + NMS")
    timer.wrap(rpn, "assign_targets_to_anchors", "targets")
    timer.wrap(rpn.box_coder, "encode", "targets")
    timer.wrap(rpn, "compute_loss", "losses")
    timer.wrap(heads, "select_training_samples", "targets")
    timer.wrap(heads.box_roi_pool, "forward", "ROI align (box)", capture=True)
    timer.wrap(heads.box_head, "forward", "box head", capture=True)
    timer.wrap(heads.box_predictor, "forward", "box head", capture=True)
    timer.wrap(heads, "postprocess_detections", "detection")
    timer.wrap(heads.mask_roi_pool, "forward", "ROI align (mask)", capture=True)
    timer.wrap(heads.mask_head, "forward", "mask head", capture=True)
    timer.wrap(heads.mask_predictor, "forward", "mask head", capture=True)
    timer.wrap(rh, "maskrcnn_inference", "mask head")
    timer.wrap(rh, "fastrcnn_loss", "losses")
    timer.wrap(rh, "maskrcnn_loss", "losses")
    timer.wrap(rh, "project_masks_on_boxes", "targets")
    return timer


def peer_inference(batch, repeat):
    import peer_torch
    import torch

    model = peer_torch.peer_model().eval()
    timer = instrument(model)
    images, _ = pc.synthetic_samples(batch)
    runs = []
    for _ in range(repeat + 1):
        timer.reset()
        start = _now()
        with torch.inference_mode():
            model([peer_torch.to_tensor(image) for image in images])
        total = _now() - start
        runs.append(dict(timer.totals, **{"TOTAL (detect)": total}))
    return _median_dicts(runs[1:])


def _now():
    return np.array([time.perf_counter(), time.process_time()])


def peer_training(batch, repeat):
    import peer_torch
    import torch

    images, boxes = pc.synthetic_samples(batch)
    peer = peer_torch.PeerTraining(images, boxes)
    model = peer.model
    timer = instrument(model)
    runs = []
    for _ in range(repeat + 1):
        timer.reset()
        start = _now()
        losses = model(peer.images, peer.targets)
        loss = sum(losses.values())
        forward = _now() - start
        peer.optimizer.zero_grad(set_to_none=True)
        start = _now()
        loss.backward()
        backward = _now() - start
        start = _now()
        grads = [p.grad for p in peer.params if p.grad is not None]
        scales = [torch.clamp(pc.CLIP_NORM / (n + 1e-6), max=1.0) for n in torch._foreach_norm(grads)]
        torch._foreach_mul_(grads, scales)
        peer.optimizer.step()
        opt = _now() - start
        runs.append(dict(timer.totals, **{"TOTAL forward": forward, "backward": backward, "optimizer step": opt,
                                          "TOTAL step": forward + backward + opt}))
    forward = _median_dicts(runs[1:])
    fwd_bwd = {}
    modules = {"backbone": [model.backbone.body], "FPN": [model.backbone.fpn], "RPN head": [model.rpn.head],
               "ROI align (box)": [model.roi_heads.box_roi_pool],
               "box head": [model.roi_heads.box_head, model.roi_heads.box_predictor],
               "ROI align (mask)": [model.roi_heads.mask_roi_pool],
               "mask head": [model.roi_heads.mask_head, model.roi_heads.mask_predictor]}
    for stage, chain in modules.items():
        args, kwargs = timer.captured[stage]
        args = _detached(args)
        kwargs = _detached(kwargs)

        def run(chain=chain, args=args, kwargs=kwargs):
            out = chain[0](*args, **kwargs)
            for module in chain[1:]:
                out = module(out)
            flat = _flat_tensors(out)
            total = sum((t.float() * 0.001).sum() for t in flat if t.is_floating_point())
            params = [p for m in chain for p in m.parameters() if p.requires_grad]
            leaves = [t for t in _flat_tensors((args, kwargs)) if t.requires_grad]
            torch.autograd.grad(total, params + leaves, allow_unused=True)

        fwd_bwd[stage] = median_time(run, repeat)
    return forward, fwd_bwd


def _detached(value):
    import torch

    if isinstance(value, torch.Tensor):
        out = value.detach().clone()
        return out.requires_grad_(True) if out.is_floating_point() else out
    if isinstance(value, dict):
        return type(value)((k, _detached(v)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return type(value)(_detached(v) for v in value)
    return value


def _flat_tensors(value):
    import torch

    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in _flat_tensors(v)]
    return []


def _median_dicts(dicts):
    """Element-wise median of ``name -> (wall, cpu)`` dicts."""
    keys = {k for d in dicts for k in d}
    return {k: tuple(float(v) for v in np.median([np.asarray(d.get(k, (0.0, 0.0))) for d in dicts], axis=0))
            for k in keys}


# ----------------------------------------------------------------------------
# report
# ----------------------------------------------------------------------------

def table(title, stages, ours, peer, totals):
    """Markdown table: wall ms and process-CPU ms of each stage, both sides, and the wall ratio."""
    lines = [f"**{title}** (ms, median of the rounds; wall time, and process CPU time over all threads)", "",
             "| stage | ours wall | torchvision wall | ours / tv (wall) | ours CPU | torchvision CPU |",
             "|---|---:|---:|---:|---:|---:|"]

    def fmt(value, index):
        return f"{1000 * value[index]:.1f}" if value is not None else "-"

    def row(name, a, b):
        ratio = f"{a[0] / b[0]:.2f}" if a is not None and b is not None and b[0] > 0 else ""
        lines.append(f"| {name} | {fmt(a, 0)} | {fmt(b, 0)} | {ratio} | {fmt(a, 1)} | {fmt(b, 1)} |")

    def total(side):
        return tuple(sum(side.get(s, (0.0, 0.0))[i] for s in stages) for i in (0, 1))

    for stage in stages:
        row(stage, ours.get(stage), peer.get(stage))
    row("sum of the stages above", total(ours), total(peer))
    for name in totals:
        row(name, ours.get(name), peer.get(name))
    return "\n".join(lines)


def _tuples(d):
    return {k: tuple(v) for k, v in d.items()}


def run_side(args):
    """This process's side alone (``--side``): its stage figures, written to ``--out`` as JSON."""
    if args.side == "ours":
        import peer_ours as side
        infer, train = our_inference, our_training
    else:
        import peer_torch as side
        infer, train = peer_inference, peer_training
    side.set_threads(os.cpu_count())
    out = {"load_before": pc.load(), "inference": infer(args.infer_batch, args.repeat)}
    if args.train_batch:
        out["training"], out["training_alone"] = train(args.train_batch, args.repeat)
    out.update(load_after=pc.load(), versions=side.versions(), machine=pc.cpu_info())
    Path(args.out).write_text(json.dumps(out, default=float))


def run_processes(args):
    """Each side in its own process, alternating over ``--rounds``: ``{side: [figures per round]}``."""
    pythons = {"ours": args.ours_python, "torchvision": args.peer_python}
    figures = {"ours": [], "torchvision": []}
    with tempfile.TemporaryDirectory(prefix="profile_stages_") as folder:
        for r in range(args.rounds):
            for side in (["ours", "torchvision"] if r % 2 == 0 else ["torchvision", "ours"]):
                out = Path(folder) / f"{side}-{r}.json"
                cmd = [pythons[side], str(Path(__file__).resolve()), "--side", side, "--out", str(out),
                       "--repeat", str(args.repeat), "--infer-batch", str(args.infer_batch),
                       "--train-batch", str(args.train_batch)]
                env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL=os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2"))
                if args.omp_passive and side == "torchvision":
                    env["OMP_WAIT_POLICY"] = "PASSIVE"
                proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
                if proc.returncode:
                    raise SystemExit(f"{side} profile exited with {proc.returncode}:\n{proc.stderr[-4000:]}")
                figures[side].append(json.loads(out.read_text()))
    return figures


def main(argv=None):
    import bench_peer  # the interpreters' defaults

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2, help="rounds, each side in its own process, "
                        "order alternating (default 2)")
    parser.add_argument("--repeat", type=int, default=3, help="timed calls per stage (default 3)")
    parser.add_argument("--infer-batch", type=int, default=1)
    parser.add_argument("--train-batch", type=int, default=8, help="0 skips training")
    parser.add_argument("--omp-passive", action="store_true", help="OMP_WAIT_POLICY=PASSIVE for torch "
                        "(see bench_peer.py: on a loaded machine torch's spinning threads collapse)")
    parser.add_argument("--ours-python", default=bench_peer.default_python(".venv"))
    parser.add_argument("--peer-python", default=bench_peer.default_python(".venv-peer"))
    parser.add_argument("--side", choices=["ours", "torchvision"], help="run one side in this process "
                        "(what the default run starts for each side)")
    parser.add_argument("--out", help="with --side: the JSON file for its figures")
    parser.add_argument("--markdown", help="also write the tables to this file")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if args.side:
        return run_side(args)
    figures = run_processes(args)
    ours, peer = figures["ours"], figures["torchvision"]
    loads = [(f["load_before"], f["load_after"]) for side in (ours, peer) for f in side]
    parts = [table(f"Inference, batch {args.infer_batch}", STAGES_INFERENCE,
                   _median_dicts([_tuples(f["inference"]) for f in ours]),
                   _median_dicts([_tuples(f["inference"]) for f in peer]),
                   ["TOTAL (graph only)", "TOTAL (detect)"])]
    if args.train_batch:
        fwd_o = _median_dicts([_tuples(f["training"]) for f in ours])
        fwd_p = _median_dicts([_tuples(f["training"]) for f in peer])
        fb_o = _median_dicts([_tuples(f["training_alone"]) for f in ours])
        fb_p = _median_dicts([_tuples(f["training_alone"]) for f in peer])
        parts.append(table(f"Training step, batch {args.train_batch}: forward stages in the step", STAGES_TRAINING,
                           fwd_o, fwd_p, ["TOTAL forward", "backward", "optimizer step", "TOTAL step"]))
        parts.append(table(f"Training, batch {args.train_batch}: forward + backward of a stage alone",
                           list(fb_o), fb_o, fb_p, []))
    machine = ours[0]["machine"]
    text = "\n\n".join(parts) + (
        f"\n\nCPU {machine['model']} ({machine['cores']} cores, {' '.join(machine['flags'])}); each side in its "
        f"own process, {args.rounds} rounds alternating; 1-minute load before -> after each process: "
        f"{', '.join(f'{a:.1f} -> {b:.1f}' for a, b in loads)}; torch OMP_WAIT_POLICY "
        f"{'PASSIVE' if args.omp_passive else 'default'}\n")
    print(text)
    if args.markdown:
        Path(args.markdown).write_text(text)


if __name__ == "__main__":
    main()

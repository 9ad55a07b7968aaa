"""Side-by-side speed of rsna_detector.mrcnn and torchvision's Mask R-CNN, each engine in its own process.

Usage (``make bench-peer`` builds the torch venv ``.venv-peer`` and runs this with the
library's ``.venv``; ``PEER_ARGS`` passes options)::

    python benchmarks/bench_peer.py [--rounds 3] [--reps 10] [--warmup 3] [--infer-batches 1 8]
        [--train-batch 8] [--markdown results.md] [--json results.json]

**Each contestant runs in a fresh process of its own** (``peer_worker.py``), as users meet
the engines: ours in the library's venv (TensorFlow, never torch), torchvision in
``.venv-peer`` (torch and torchvision, never TensorFlow; ``--ours-python`` /
``--peer-python`` pick the interpreters). Both read one settings file written from
``peer_common.settings()``. For every task (inference at each batch, a training step) each
round starts one process per contestant, back to back, and the order alternates from round
to round and task to task, so a change of the machine's load falls on both sides alike. A
worker times ``--reps`` calls after ``--warmup`` untimed ones (tracing, first allocations)
and reports the median and best wall time and its process CPU time; the 1-minute load is
recorded before and after every worker and after every call.

Per round, the ratio of the medians: inference = ours / torchvision time per image (< 1: ours
faster; the target is <= 0.8 at batch 1), training = ours / torchvision images per second
(target >= 1.5). The SUMMARY gives min / median / max of the ratio over the rounds, also on
CPU time. The first round also counts the FLOPs of one batch-1 inference per stage on both
sides (``peer_ours.count_flops``, torch's ``FlopCounterMode``) and measures each framework's
best float32 GEMM and convolution rates (``peer_common.PEAK_KERNELS``): the machine's peak is
the best of them, and each engine's fraction of it is its FLOPs / its time / that peak.

On a loaded machine torch's default spinning OpenMP threads collapse (several times slower,
not in proportion to the load): ``--omp-passive`` sets ``OMP_WAIT_POLICY=PASSIVE`` in the
torch worker for such runs; on a quiet machine leave it off. Wall-time ratios are the figures
to quote from a quiet machine; on a shared one read the CPU-time ratios.

Settings equalised (ours = ``DetectorConfig`` with the peer's anchors; the peer =
``torchvision.models.detection.MaskRCNN`` built as ``maskrcnn_resnet50_fpn`` builds it):
ResNet-50-FPN, random weights (seeded), 2 classes; 256 x 256 RGB input (torchvision
``min_size = max_size = 256``: no resize, no padding); anchors one scale per level, 16, 32, 64,
128, 256 on P2-P6, ratios 0.5, 1, 2; RPN NMS 0.7; 1000 post-NMS proposals at inference, 2000 in
training; 256 RPN anchors and 32 box-head ROIs per image in training; detection score 0.78,
NMS 0.01, 3 detections; frozen batch norm (torchvision ``FrozenBatchNorm2d``); SGD, momentum
0.9, learning rate 0.006, global-norm clip 5, L2 1e-4; threads = cores on both sides.
Not equalisable (each engine's own design, stated, not changed): matterport's RPN convolution
has 512 filters, torchvision's 256 (twice the RPN FLOPs: counted in the FLOP table);
matterport's ResNet strides on the first 1x1 convolution of a block, torchvision's on the 3x3;
pre-NMS selection (ours: the best 6000 anchors over all levels, one NMS; torchvision: the best
1000 / 2000 per level, NMS per level); positive ROI fraction 0.33 vs 0.25; image
normalisation. Both run the training mask head on the positive ROIs only.

Timed: inference = ``MaskRCNN.detect(images)`` end to end (molding, the compiled graph,
unmolding boxes and masks) vs ``model(tensors)`` in ``eval`` under ``torch.inference_mode``
(uint8 -> float tensors, transform, network, postprocess pasting masks); training = one
optimiser step on a fixed batch of synthetic images (ours: ``keras_model.train_function``, the
compiled step ``MaskRCNN.train`` runs, minus data loading; torchvision: forward with targets,
backward, clip, ``optimizer.step()``). ``DetectorConfig`` as it is (anchor scales 16-128 on
P2-P5) is a third contestant unless ``--no-detector-config``.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import peer_common as pc  # noqa: E402

ROOT = HERE.parent
TORCH = "torchvision"


def default_python(venv):
    """``venv``'s interpreter when it exists under the checkout, else this one."""
    candidate = ROOT / venv / "bin" / "python"
    return str(candidate) if candidate.exists() else sys.executable


def run_worker(args, python, engine, task, batch, settings_file, folder, config="peer", flops=False):
    """Start one contestant's process; returns its result dict (raises with its stderr on failure)."""
    out = Path(folder) / f"{engine}-{config}-{task}-{batch}-{len(os.listdir(folder))}.json"
    cmd = [python, str(HERE / "peer_worker.py"), "--engine", engine, "--task", task, "--batch", str(batch),
           "--config", config, "--settings", str(settings_file), "--out", str(out),
           "--reps", str(args.train_reps if task == "training" else args.reps), "--warmup", str(args.warmup)]
    if flops:
        cmd.append("--flops")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL=os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2"))
    if args.omp_passive and engine == TORCH:
        env["OMP_WAIT_POLICY"] = "PASSIVE"
    load_before = pc.load()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"worker {engine} {task} batch {batch} ({python}) exited with {proc.returncode}:\n"
                         f"{proc.stderr[-4000:]}")
    result = json.loads(out.read_text())
    result.update(parent_load_before=load_before, parent_load_after=pc.load())
    return result


def contestants(args):
    """``(label, engine, config)`` of each contestant."""
    who = [("ours (peer settings)", "ours", "peer")]
    if not args.no_detector_config:
        who.append(("ours (DetectorConfig)", "ours", "detector"))
    return who + [(TORCH, TORCH, "peer")]


def run_all(args):
    """Every round's figures: a list of result dicts, each with ``label`` and ``round``."""
    tasks = [("inference", b) for b in args.infer_batches] + ([("training", args.train_batch)]
                                                              if args.train_batch else [])
    pythons = {"ours": args.ours_python, TORCH: args.peer_python}
    results = []
    with tempfile.TemporaryDirectory(prefix="bench_peer_") as folder:
        settings_file = Path(folder) / "settings.json"
        settings_file.write_text(json.dumps(pc.settings(args.threads)))
        for rnd in range(args.rounds):
            if rnd == 0 and not args.no_peak:
                for engine in (["ours", TORCH] if rnd % 2 == 0 else [TORCH, "ours"]):
                    result = run_worker(args, pythons[engine], engine, "peak", 1, settings_file, folder)
                    results.append(dict(result, label=engine, round=rnd))
            for index, (task, batch) in enumerate(tasks):
                order = contestants(args)
                order = order if (rnd + index) % 2 == 0 else order[::-1]
                for label, engine, config in order:
                    flops = rnd == 0 and task == "inference" and batch == 1 and config == "peer"
                    result = run_worker(args, pythons[engine], engine, task, batch, settings_file, folder,
                                        config, flops=flops)
                    results.append(dict(result, label=label, round=rnd))
                    print(line(results[-1]), flush=True)
    return results


def per_unit(result):
    """``(median, best, cpu)`` per image (inference, seconds) or images per second (training)."""
    times, cpus, batch = result["times"], result["cpu"], result["batch"]
    if result["task"] == "inference":
        return statistics.median(times) / batch, min(times) / batch, statistics.median(cpus) / batch
    return batch / statistics.median(times), batch / min(times), statistics.median(cpus)


def line(r):
    med, best, cpu = per_unit(r)
    loads = f"load {r['parent_load_before']:.1f} -> {r['parent_load_after']:.1f}"
    if r["task"] == "inference":
        figure = f"{1000 * med:7.0f} ms/image (best {1000 * best:.0f}), CPU {1000 * cpu:.0f} ms/image"
    else:
        figure = f"{med:7.2f} images/s (best {best:.2f}), CPU {cpu:.2f} s/step"
    return (f"round {r['round'] + 1}  {r['task']:9} batch {r['batch']:>2}  {r['label']:22} {figure}, "
            f"detections/loss {r['value']}, {loads}")


def ratios(results):
    """``(task, batch, label) -> [(wall ratio, cpu ratio, loads)]``, one per round."""
    timed = [r for r in results if r["task"] != "peak"]
    peers = {(r["round"], r["task"], r["batch"]): r for r in timed if r["label"] == TORCH}
    out = {}
    for r in timed:
        if r["label"] == TORCH:
            continue
        p = peers[(r["round"], r["task"], r["batch"])]
        (med, _, cpu), (pmed, _, pcpu) = per_unit(r), per_unit(p)
        if r["task"] == "inference":
            wall, cpu_ratio = med / pmed, cpu / pcpu
        else:  # images/s ratio; CPU: torchvision's CPU per step over ours
            wall, cpu_ratio = med / pmed, pcpu / cpu
        loads = [r["parent_load_before"], r["parent_load_after"], p["parent_load_before"], p["parent_load_after"]]
        out.setdefault((r["task"], r["batch"], r["label"]), []).append((wall, cpu_ratio, loads))
    return out


def target(task, batch):
    if task == "training":
        return ">= 1.5"
    return "<= 0.8" if batch == 1 else "stated"


def summary_lines(results):
    lines = ["| | ratio min / median / max | CPU-time ratio min / median / max | target | load |",
             "|---|---|---|---|---|"]
    for (task, batch, label), rows in ratios(results).items():
        walls, cpus = [w for w, _, _ in rows], [c for _, c, _ in rows]
        loads = [v for _, _, ls in rows for v in ls]
        lines.append(f"| {task}, batch {batch}, {label} | {min(walls):.2f} / {statistics.median(walls):.2f} / "
                     f"{max(walls):.2f} | {min(cpus):.2f} / {statistics.median(cpus):.2f} / {max(cpus):.2f} | "
                     f"{target(task, batch)} | {min(loads):.1f}-{max(loads):.1f} |")
    return lines


def absolute_lines(results):
    lines = ["| round | task | batch | contestant | median | best | CPU | load before -> after |",
             "|---|---|---:|---|---:|---:|---:|---|"]
    for r in results:
        if r["task"] == "peak":
            continue
        med, best, cpu = per_unit(r)
        if r["task"] == "inference":
            figs = f"{1000 * med:.0f} ms/image | {1000 * best:.0f} | {1000 * cpu:.0f} ms/image"
        else:
            figs = f"{med:.2f} images/s | {best:.2f} | {cpu:.2f} s/step"
        lines.append(f"| {r['round'] + 1} | {r['task']} | {r['batch']} | {r['label']} | {figs} | "
                     f"{r['parent_load_before']:.1f} -> {r['parent_load_after']:.1f} |")
    return lines


def flop_lines(results):
    """The FLOP table, the peak rates and each engine's fraction of the peak (batch-1 inference)."""
    flops = {r["engine"]: r["flops"] for r in results if r.get("flops")}
    peaks = {r["engine"]: r["peak"] for r in results if r["task"] == "peak"}
    if len(flops) < 2:
        return []
    lines = ["| stage | ours GFLOP | torchvision GFLOP |", "|---|---:|---:|"]
    for stage in pc.FLOP_STAGES:
        lines.append(f"| {stage} | {flops['ours'][stage] / 1e9:.2f} | {flops[TORCH][stage] / 1e9:.2f} |")
    totals = {engine: sum(f.values()) / 1e9 for engine, f in flops.items()}
    lines.append(f"| total (convolutions and matrix products) | {totals['ours']:.2f} | {totals[TORCH]:.2f} |")
    if len(peaks) < 2:
        return lines
    lines += ["", "| kernel (float32) | TensorFlow GFLOP/s | torch GFLOP/s | TF GFLOP per CPU-s | "
                  "torch GFLOP per CPU-s |", "|---|---:|---:|---:|---:|"]
    for name in peaks["ours"]:
        tf_rate, t_rate = peaks["ours"][name], peaks[TORCH][name]
        lines.append(f"| {name} | {tf_rate['gflops']:.0f} | {t_rate['gflops']:.0f} | "
                     f"{tf_rate['gflops_per_cpu_s']:.0f} | {t_rate['gflops_per_cpu_s']:.0f} |")
    peak = max(rate["gflops"] for side in peaks.values() for rate in side.values())
    peak_cpu = max(rate["gflops_per_cpu_s"] for side in peaks.values() for rate in side.values())
    lines += ["", f"Machine peak = the best of these: {peak:.0f} GFLOP/s wall, {peak_cpu:.0f} GFLOP per "
                  "CPU-second (one core's rate).", "",
              "| batch-1 inference | GFLOP | floor at the peak | median time (round 1) | fraction of peak "
              "(wall) | CPU time | fraction of one core's peak (CPU) |", "|---|---:|---:|---:|---:|---:|---:|"]
    for label, engine in (("ours (peer settings)", "ours"), (TORCH, TORCH)):
        r = next(x for x in results if x["label"] == label and x["task"] == "inference" and x["batch"] == 1)
        med, _, cpu = per_unit(r)
        gflop = totals[engine]
        lines.append(f"| {label} | {gflop:.1f} | {1000 * gflop / peak:.0f} ms | {1000 * med:.0f} ms | "
                     f"{gflop / med / peak:.2f} | {1000 * cpu:.0f} ms | {gflop / cpu / peak_cpu:.2f} |")
    return lines


def report(args, results):
    first = results[0]
    machine = first["machine"]
    versions = {}
    for r in results:
        versions.update(r["versions"])
    head = (f"CPU: {machine['model']}, {machine['cores']} cores, flags {' '.join(machine['flags'])}; "
            f"threads {args.threads}; {', '.join(f'{k} {v}' for k, v in versions.items())}; "
            f"{args.rounds} rounds, {args.reps} timed calls after {args.warmup} warm-ups "
            f"({args.train_reps} training steps); each contestant in its own process.")
    parts = [head, "", "SUMMARY: ratio of the medians of each round (inference: ours / torchvision time; "
             "training: ours / torchvision images per second)", ""] + summary_lines(results)
    parts += ["", "Each process's figures:", ""] + absolute_lines(results)
    flop = flop_lines(results)
    if flop:
        parts += ["", "FLOPs of one batch-1 inference, the kernels' peak, and the fraction of it reached:", ""] + flop
    return "\n".join(parts)


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="rounds, order alternating (default 3)")
    parser.add_argument("--reps", type=int, default=10, help="timed calls per process (default 10)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed first calls (default 3)")
    parser.add_argument("--infer-batches", type=int, nargs="*", default=[1, 8], help="default: 1 8")
    parser.add_argument("--train-batch", type=int, default=8, help="0 skips training (default 8)")
    parser.add_argument("--train-reps", type=int, help="timed training steps (default --reps)")
    parser.add_argument("--no-detector-config", action="store_true", help="skip the DetectorConfig contestant")
    parser.add_argument("--no-peak", action="store_true", help="skip the GEMM / convolution peak measurement")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="threads (default: cores)")
    parser.add_argument("--omp-passive", action="store_true",
                        help="OMP_WAIT_POLICY=PASSIVE for torch: on a loaded machine torch's spinning OpenMP "
                             "threads collapse (several times slower); on a quiet one leave it off")
    parser.add_argument("--ours-python", default=default_python(".venv"),
                        help="interpreter with TensorFlow and the library (default .venv/bin/python)")
    parser.add_argument("--peer-python", default=default_python(".venv-peer"),
                        help="interpreter with torch and torchvision (default .venv-peer/bin/python)")
    parser.add_argument("--json", help="also write every process's figures to this JSON file")
    parser.add_argument("--markdown", help="also write the report (markdown tables) to this file")
    args = parser.parse_args(argv)
    args.train_reps = args.train_reps or args.reps
    return args


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    print(f"ours: {args.ours_python}; torchvision: {args.peer_python}; load average at start "
          f"{' '.join(f'{v:.2f}' for v in os.getloadavg())}", flush=True)
    results = run_all(args)
    text = report(args, results)
    print("\n" + text)
    print(f"\nload average at end {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    if args.markdown:
        Path(args.markdown).write_text(text + "\n")
    return results


if __name__ == "__main__":
    main()

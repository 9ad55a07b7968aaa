"""One contestant of the peer benchmark in its own process (``bench_peer.py`` starts it).

Usage::

    python benchmarks/peer_worker.py --engine ours|torchvision --task inference|training|peak \
        --settings SETTINGS.json --out RESULT.json [--batch 1] [--config peer|detector] \
        [--reps 10] [--warmup 3] [--flops]

The ours worker imports TensorFlow and the library, never torch; the torchvision worker
imports torch and torchvision, never TensorFlow (both read the same settings file, written by
``bench_peer.py`` from ``peer_common.settings()``). It times ``--reps`` calls after ``--warmup``
untimed ones (``peer_common.time_calls``) and writes its figures, its load before and after and
its whole process CPU time to ``--out``. ``--flops`` also counts the FLOPs of one inference per
stage; ``--task peak`` measures the engine's best GEMM / convolution rates instead.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import peer_common as pc  # noqa: E402


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", choices=["ours", "torchvision"], required=True)
    parser.add_argument("--task", choices=["inference", "training", "peak"], required=True)
    parser.add_argument("--settings", required=True, help="the settings file (bench_peer.py writes it)")
    parser.add_argument("--out", required=True, help="JSON file for the results")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--config", choices=["peer", "detector"], default="peer",
                        help="ours only: the peer's anchors (default) or DetectorConfig as it is")
    parser.add_argument("--reps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--flops", action="store_true", help="also count one inference's FLOPs per stage")
    return parser.parse_args(argv)


def _side(engine):
    if engine == "ours":
        import peer_ours

        return peer_ours
    import peer_torch

    return peer_torch


def run(args, side, settings):
    """The figures of one task: a ``time_calls`` record (plus FLOPs), or the peak rates."""
    if args.task == "peak":
        return {"peak": side.peak()}
    images, boxes = pc.synthetic_samples(args.batch)
    peer_settings = args.config == "peer"
    with tempfile.TemporaryDirectory() as model_dir:
        if args.task == "inference":
            model = (side.OurInference(peer_settings, args.batch, model_dir) if args.engine == "ours"
                     else side.PeerInference())
            record = pc.time_calls(lambda: model(images), args.reps, args.warmup)
            if args.flops:
                target = model.model if args.engine == "ours" else model
                record["flops"] = side.count_flops(target, images)
        else:
            model = (side.OurTraining(peer_settings, images, boxes) if args.engine == "ours"
                     else side.PeerTraining(images, boxes))
            record = pc.time_calls(model, args.reps, args.warmup)
    return record


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    wall_start, cpu_start, load_before = time.perf_counter(), time.process_time(), pc.load()
    settings = pc.check_settings(args.settings)
    if args.engine == "torchvision" and args.config != "peer":
        raise SystemExit("--config detector is ours only")
    side = _side(args.engine)
    side.set_threads(settings["threads"])
    result = run(args, side, settings)
    result.update(engine=args.engine, task=args.task, batch=args.batch, config=args.config,
                  threads=settings["threads"], versions=side.versions(),
                  machine=pc.cpu_info(), load_before=load_before, load_after=pc.load(),
                  process_wall_s=time.perf_counter() - wall_start,
                  process_cpu_s=time.process_time() - cpu_start, pid=os.getpid(),
                  imported={"tensorflow": "tensorflow" in sys.modules, "torch": "torch" in sys.modules})
    Path(args.out).write_text(json.dumps(result, indent=1, default=float))


if __name__ == "__main__":
    main()

"""Where ours' training step spends its time, op by op (TensorFlow's profiler).

Usage (from a checkout, by hand)::

    python benchmarks/profile_training_ops.py [--batch 8] [--steps 2] [--top 25]

Settings: ``bench_peer.py``'s (peer anchor scales 16-256 on P2-P6, ResNet-50, 256 px, random
weights), the compiled training step ``MaskRCNN.train`` runs (``train_function``) on a fixed
synthetic batch. After 3 warm-up steps the wall and process CPU time of 3 steps are printed,
then ``--steps`` steps are traced with ``tf.profiler`` and the kernels' durations are summed per
group: the op type, split into forward, gradient (``gradient_tape``), the frozen BN layers'
element-wise ops, the proposal layer and the optimiser update. A kernel's duration is its wall
time on an executor thread; two kernels running at once each count in full, so the shares are
of kernel time, not of CPU time. Then how long only one or no kernel was running (the steps'
serial parts) and which kernels ran alone longest.
"""
from __future__ import annotations

import argparse
import collections
import re
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import peer_common as pc  # noqa: E402
import peer_ours  # noqa: E402

WRAPPER_TYPES = {"Process", "Run", "Start", "Done"}
BN_LAYER = re.compile(r"/(bn\w+|mrcnn_\w*bn\d?|tiny_bn\w*)_\d+/")


def _group(op_name, op_type):
    """The group of one kernel: ``'<forward|gradient> <type>'``, ``'BN ...'``, ``'proposals ...'``, ``'optimizer'``."""
    if "/sgd/" in op_name or "clip_by_global_norm" in op_name:
        return "optimizer"
    direction = "gradient" if "gradient_tape" in op_name else "forward"
    if BN_LAYER.search(op_name):
        return f"BN {direction} {op_type}"
    if "/ROI_" in op_name:
        return f"proposals {op_type}"
    return f"{direction} {op_type}"


def kernel_events(log_dir):
    """``[(start_ns, end_ns, op_type, op_name)]`` of the executor threads of the trace in ``log_dir``."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    path = next(Path(log_dir).rglob("*.xplane.pb"))
    space = xplane_pb2.XSpace()
    space.ParseFromString(path.read_bytes())
    events = []
    for plane in space.planes:
        if plane.name != "/host:CPU":
            continue
        for line in plane.lines:
            if not line.name.startswith("tf_Compute"):
                continue
            for event in line.events:
                name = plane.event_metadata[event.metadata_id].name
                if ":" not in name:
                    continue
                op_name, op_type = name.rsplit(":", 1)
                if op_type in WRAPPER_TYPES or op_type.startswith("__inference"):
                    continue
                if event.duration_ps <= 0:
                    continue  # markers (StartRegion, Record), not kernels
                start = line.timestamp_ns + event.offset_ps / 1000
                events.append((start, start + event.duration_ps / 1000, op_type, op_name))
    return events


def serial_time(events):
    """``({running kernels: ns}, {op type: ns running alone})`` over the trace."""
    points = sorted([(e[0], 1, i) for i, e in enumerate(events)] + [(e[1], -1, i) for i, e in enumerate(events)])
    by_count, alone, active = collections.Counter(), collections.Counter(), set()
    last = points[0][0] if points else 0
    for time_ns, change, index in points:
        by_count[len(active)] += time_ns - last
        if len(active) == 1:
            alone[events[next(iter(active))][2]] += time_ns - last
        last = time_ns
        if change > 0:
            active.add(index)
        else:
            active.discard(index)
    return by_count, alone


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=2, help="traced steps (default 2)")
    parser.add_argument("--top", type=int, default=25, help="groups to print (default 25)")
    args = parser.parse_args(argv)

    import tensorflow as tf

    peer_ours.set_threads(pc.settings()["threads"])
    images, boxes = pc.synthetic_samples(args.batch)
    step = peer_ours.OurTraining(True, images, boxes)
    for _ in range(3):
        step()
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(3):
        step()
    print(f"training step, batch {args.batch}: wall {(time.perf_counter() - wall) / 3:.2f} s, "
          f"CPU {(time.process_time() - cpu) / 3:.2f} s; load {pc.load():.1f}; CPU {pc.cpu_info()['model']}")
    with tempfile.TemporaryDirectory() as log_dir:
        tf.profiler.experimental.start(log_dir)
        for _ in range(args.steps):
            step()
        tf.profiler.experimental.stop()
        events = kernel_events(log_dir)

    groups, counts = collections.Counter(), collections.Counter()
    for start, end, op_type, op_name in events:
        key = _group(op_name, op_type)
        groups[key] += (end - start) / 1e6 / args.steps
        counts[key] += 1 / args.steps
    total = sum(groups.values())
    print(f"\nkernel time per step: {total:.0f} ms\n\n| group | ms per step | share | kernels per step |\n|---|---:|---:|---:|")
    for key, value in groups.most_common(args.top):
        print(f"| {key} | {value:.0f} | {100 * value / total:.1f}% | {counts[key]:.0f} |")
    by_count, alone = serial_time(events)
    print("\nper step: " + ", ".join(f"{count} kernels running {value / 1e6 / args.steps:.0f} ms"
                                     for count, value in sorted(by_count.items()) if count <= 2))
    print("running alone longest (ms per step): " + ", ".join(
        f"{op_type} {value / 1e6 / args.steps:.0f}" for op_type, value in alone.most_common(8)))


if __name__ == "__main__":
    main()

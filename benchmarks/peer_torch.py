"""The torch side of the peer benchmark: torchvision's Mask R-CNN at the equalised settings.

Imported by the torch worker process only (``peer_worker.py --engine torchvision``, in the
venv ``.venv-peer`` that holds torch and torchvision but neither TensorFlow nor the library);
it never imports TensorFlow. torch is imported inside the functions.
"""
from __future__ import annotations

import functools
import os

import peer_common as pc


def set_threads(threads):
    import torch

    torch.set_num_threads(threads)


def versions():
    import torch
    import torchvision

    return {"torch": torch.__version__, "torchvision": torchvision.__version__,
            "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "default")}


def peer_model():
    """torchvision's Mask R-CNN R50-FPN at the equalised settings (random weights, seeded)."""
    import torch
    from torchvision.models import resnet50
    from torchvision.models.detection import MaskRCNN
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.models.detection.backbone_utils import _resnet_fpn_extractor
    from torchvision.ops import misc

    torch.manual_seed(0)
    backbone = _resnet_fpn_extractor(resnet50(weights=None, norm_layer=misc.FrozenBatchNorm2d), 5)
    scales = pc.PEER_ANCHOR_SCALES
    anchors = AnchorGenerator(tuple((s,) for s in scales), (pc.ANCHOR_RATIOS,) * len(scales))
    return MaskRCNN(
        backbone, num_classes=pc.NUM_CLASSES, min_size=pc.IMAGE_SIZE, max_size=pc.IMAGE_SIZE,
        rpn_anchor_generator=anchors, rpn_nms_thresh=pc.RPN_NMS_THRESHOLD,
        rpn_batch_size_per_image=pc.RPN_ANCHORS_PER_IMAGE,
        rpn_post_nms_top_n_test=pc.POST_NMS_INFERENCE, rpn_post_nms_top_n_train=pc.POST_NMS_TRAINING,
        box_batch_size_per_image=pc.TRAIN_ROIS_PER_IMAGE, box_score_thresh=pc.DETECTION_MIN_CONFIDENCE,
        box_nms_thresh=pc.DETECTION_NMS_THRESHOLD, box_detections_per_img=pc.DETECTION_MAX_INSTANCES)


def to_tensor(image):
    import torch

    return torch.from_numpy(image).permute(2, 0, 1).float().div_(255.0)


class PeerInference:
    """``model(images)`` in ``eval`` mode under ``torch.inference_mode`` (uint8 numpy in)."""

    def __init__(self):
        self.model = peer_model().eval()

    def __call__(self, images):
        import torch

        with torch.inference_mode():
            outputs = self.model([to_tensor(image) for image in images])
        return sum(len(o["scores"]) for o in outputs)


class PeerTraining:
    """One optimiser step: forward with targets, sum of the losses, backward, clip, SGD."""

    def __init__(self, images, boxes):
        import torch

        self.model = peer_model().train()
        self.images = [to_tensor(image) for image in images]
        self.targets = []
        for image_boxes in boxes:
            masks = torch.zeros((len(image_boxes), pc.IMAGE_SIZE, pc.IMAGE_SIZE), dtype=torch.uint8)
            for k, (y1, x1, y2, x2) in enumerate(image_boxes):
                masks[k, y1:y2, x1:x2] = 1
            xyxy = [(x1, y1, x2, y2) for y1, x1, y2, x2 in image_boxes]
            self.targets.append({"boxes": torch.tensor(xyxy, dtype=torch.float32).reshape(-1, 4),
                                 "labels": torch.ones(len(image_boxes), dtype=torch.int64), "masks": masks})
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.SGD(self.params, lr=pc.LEARNING_RATE, momentum=pc.MOMENTUM,
                                         weight_decay=pc.WEIGHT_DECAY)

    def __call__(self):
        import torch

        losses = self.model(self.images, self.targets)
        loss = sum(losses.values())
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.params, pc.CLIP_NORM)  # the global norm, as ours
        self.optimizer.step()
        return float(loss.detach())


#: torchvision modules -> the stage they belong to (FLOP counts).
_STAGE_MODULES = {"backbone": ["backbone.body"], "FPN": ["backbone.fpn"], "RPN head": ["rpn.head"],
                  "box head": ["roi_heads.box_head", "roi_heads.box_predictor"],
                  "mask head": ["roi_heads.mask_head", "roi_heads.mask_predictor"]}


def count_flops(peer, images):
    """FLOPs of one inference call per stage, by ``torch.utils.flop_counter.FlopCounterMode``.

    It counts the convolutions and matrix products (2 x multiply-adds) of the real call, per
    module: the same quantity ``peer_ours.count_flops`` counts for ours.
    """
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        peer.model([to_tensor(image) for image in images])
    counts = counter.get_flop_counts()
    root = type(peer.model).__name__
    return {stage: sum(sum(counts.get(f"{root}.{name}", {}).values()) for name in names)
            for stage, names in _STAGE_MODULES.items()}


def peak():
    """Best GEMM and convolution rates of torch on this machine (``pc.PEAK_KERNELS``), float32."""
    import torch

    rates = {}
    with torch.inference_mode():
        for name, kind, shape in pc.PEAK_KERNELS:
            if kind == "gemm":
                m, k, n = shape
                a, b = torch.randn(m, k), torch.randn(k, n)
                fn = torch.matmul
                operands = (a, b)
            else:
                batch, h, w, cin, cout = shape
                x, weight = torch.randn(batch, cin, h, w), torch.randn(cout, cin, 3, 3)
                fn = functools.partial(torch.nn.functional.conv2d, padding=1)
                operands = (x, weight)
            rates[name] = pc.best_rate(functools.partial(fn, *operands), pc.kernel_flops(kind, shape))
    return rates

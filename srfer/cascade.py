"""MTCNN's three-stage face detection cascade (Zhang et al., 2016, "Joint Face Detection and
Alignment using Multi-task Cascaded Convolutional Networks") on `srfer.models.mtcnn`'s P-, R-
and O-Net with the weights that ship inside the facenet-pytorch wheel.

Why not `facenet_pytorch.MTCNN.detect`: on 20 wild photos (2 CPU threads) its driver took
3.55 s, of which 0.39 s went to resizing ~3,700 candidate windows one `interpolate` call at a
time and 0.66 s to building the image pyramid, and it runs the nets in NCHW, where R-Net is
2.4×, O-Net 2.5× and P-Net 1.35× slower than in channels-last on this CPU. This driver keeps
facenet-pytorch's semantics — the same pyramid scales, thresholds, box arithmetic, padding
rule, resampling ('area', i.e. adaptive average pooling) and NMS steps, so the boxes agree
(tests compare them) — and runs the nets channels-last, resizes windows with the pooling
kernel directly (no `interpolate` argument handling per window) and keeps one float copy of
the photo for all of it. (An integral image would resize all windows in one gather, but its
two cumulative sums cost as much here as the windows it saves.)

Shapes: a photo (H, W, 3) uint8 → boxes (n, 5) [x1, y1, x2, y2, score] and landmarks
(n, 5, 2) [x, y] in its pixels, largest box first.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from srfer.models.mtcnn import pretrained_mtcnn

WINDOW = 12  # P-Net's receptive field: a face of min_face px is scaled to 12 px
PNET_STRIDE = 2  # P-Net's output grid step in its input's pixels
BATCH = 2048  # windows per R-/O-Net call (bounded memory on large, busy photos)
NMS_BLOCK = 1024  # boxes whose overlaps NMS computes at once (bounded memory)


@dataclass(frozen=True)
class CascadeConfig:
    """The detector's knobs (facenet-pytorch's names and defaults in brackets)."""

    min_face: int = 20  # smallest face searched, in px [min_face_size]
    thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7)  # per stage face probability
    factor: float = 0.709  # pyramid step [factor]


class Cascade:
    """P-Net over an image pyramid proposes windows, R-Net (24 px) and O-Net (48 px) refine and
    filter them; O-Net also gives five landmarks (eyes, nose, mouth corners)."""

    def __init__(self, config: CascadeConfig, device: torch.device) -> None:
        self.config, self.device = config, device
        self.pnet, self.rnet, self.onet = (self._prepare(net) for net in pretrained_mtcnn())

    def _prepare(self, net: nn.Module) -> nn.Module:
        # channels-last: oneDNN's fast layout for these small convolutions (see the docstring)
        return net.eval().requires_grad_(False).to(self.device, memory_format=torch.channels_last)

    @torch.no_grad()
    def detect(self, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(H, W, 3) uint8 → boxes (n, 5) and landmarks (n, 5, 2), float32, largest first."""
        photo = torch.from_numpy(pixels).to(self.device).permute(2, 0, 1)[None].float().contiguous()
        boxes = self._propose(photo)
        boxes = self._refine(photo, boxes)
        boxes, points = self._output(photo, boxes)
        order = torch.argsort((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]), descending=True)
        return boxes[order].cpu().numpy(), points[order].cpu().numpy()

    def _propose(self, photo: torch.Tensor) -> torch.Tensor:
        """Stage 1: P-Net on each pyramid level → squared candidate boxes (n, 5)."""
        height, width = photo.shape[2:]
        per_scale = []
        for scale in pyramid_scales(height, width, self.config.min_face, self.config.factor):
            size = (int(height * scale + 1), int(width * scale + 1))
            reg, probs = self.pnet(normalise_(adaptive_avg_pool2d(photo, size)))
            found = grid_boxes(reg[0], probs[0, 1], scale, self.config.thresholds[0])
            per_scale.append(found[nms(found[:, :4], found[:, 4], 0.5)])
        boxes = torch.cat(per_scale) if per_scale else torch.zeros(0, 9, device=self.device)
        boxes = boxes[nms(boxes[:, :4], boxes[:, 4], 0.7)]
        width_, height_ = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
        shift = boxes[:, 5:9] * torch.stack([width_, height_, width_, height_], dim=1)
        return square(torch.cat([boxes[:, :4] + shift, boxes[:, 4:5]], dim=1))

    def _refine(self, photo: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        """Stage 2: R-Net on 24 px windows → kept boxes, regressed and squared."""
        boxes, windows = cut_windows(photo, boxes, 24)
        if len(boxes) == 0:
            return boxes
        reg, probs = run_batched(self.rnet, windows)
        keep = probs[:, 1] > self.config.thresholds[1]
        boxes = torch.cat([boxes[keep, :4], probs[keep, 1:2]], dim=1)
        picked = nms(boxes[:, :4], boxes[:, 4], 0.7)
        return square(regress(boxes[picked], reg[keep][picked]))

    def _output(self, photo: torch.Tensor, boxes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Stage 3: O-Net on 48 px windows → final boxes and their landmarks."""
        boxes, windows = cut_windows(photo, boxes, 48)
        if len(boxes) == 0:
            return torch.zeros(0, 5, device=self.device), torch.zeros(0, 5, 2, device=self.device)
        reg, marks, probs = run_batched(self.onet, windows)
        keep = probs[:, 1] > self.config.thresholds[2]
        boxes = torch.cat([boxes[keep, :4], probs[keep, 1:2]], dim=1)
        marks, reg = marks[keep], reg[keep]
        side_x = (boxes[:, 2] - boxes[:, 0] + 1)[:, None]
        side_y = (boxes[:, 3] - boxes[:, 1] + 1)[:, None]
        points_x = side_x * marks[:, :5] + boxes[:, 0:1] - 1
        points_y = side_y * marks[:, 5:] + boxes[:, 1:2] - 1
        points = torch.stack([points_x, points_y], dim=2)
        boxes = regress(boxes, reg)
        picked = nms_by_smaller_area(boxes, 0.7)
        return boxes[picked], points[picked]


# ------------------------------------------------------------------------------ resampling
def adaptive_avg_pool2d(pixels: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """`interpolate(mode="area")` without its per-call argument handling (thousands of windows)."""
    return torch._C._nn.adaptive_avg_pool2d(pixels, size)


def normalise_(pixels: torch.Tensor) -> torch.Tensor:
    """0–255 → the nets' input range (facenet-pytorch's constants), in place."""
    return pixels.sub_(127.5).mul_(0.0078125)


# ----------------------------------------------------------------------------------- boxes
def pyramid_scales(height: int, width: int, min_face: int, factor: float) -> list[float]:
    """Scales that bring faces from min_face px up to the whole image to P-Net's 12 px."""
    scale = WINDOW / min_face
    shorter = min(height, width) * scale
    scales = []
    while shorter >= WINDOW:
        scales.append(scale)
        scale, shorter = scale * factor, shorter * factor
    return scales


def grid_boxes(reg: torch.Tensor, face_prob: torch.Tensor, scale: float, threshold: float) -> torch.Tensor:
    """P-Net's output grid → (n, 9) [x1, y1, x2, y2, score, 4 regression offsets] in image px
    for the cells with face probability ≥ threshold."""
    ys, xs = torch.nonzero(face_prob >= threshold, as_tuple=True)
    cell = torch.stack([xs, ys], dim=1).to(reg.dtype)
    first = ((PNET_STRIDE * cell + 1) / scale).floor()
    last = ((PNET_STRIDE * cell + WINDOW) / scale).floor()
    return torch.cat([first, last, face_prob[ys, xs, None], reg[:, ys, xs].T], dim=1)


def square(boxes: torch.Tensor) -> torch.Tensor:
    """Each box grown to a square on its longer side, same centre (score column kept)."""
    width, height = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    side = torch.maximum(width, height)
    x1 = boxes[:, 0] + width * 0.5 - side * 0.5
    y1 = boxes[:, 1] + height * 0.5 - side * 0.5
    return torch.stack([x1, y1, x1 + side, y1 + side, *boxes[:, 4:].T], dim=1)


def regress(boxes: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    """R-/O-Net's box regression: offsets in units of the (inclusive) box side."""
    width = boxes[:, 2] - boxes[:, 0] + 1
    height = boxes[:, 3] - boxes[:, 1] + 1
    scale = torch.stack([width, height, width, height], dim=1)
    return torch.cat([boxes[:, :4] + offsets * scale, boxes[:, 4:]], dim=1)


def cut_windows(photo: torch.Tensor, boxes: torch.Tensor, side: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Boxes → (boxes that overlap the photo, their pixels clipped to it and area-resized to
    side × side, normalised). Clipping, not padding, as facenet-pytorch does: a
    box over the border is squeezed. (facenet-pytorch also skips empty windows but keeps their
    boxes, which misaligns boxes and scores; here both are dropped.)"""
    height, width = photo.shape[2:]
    corners = boxes[:, :4].trunc().long().tolist()
    kept, windows = [], []
    for i, (x1, y1, x2, y2) in enumerate(corners):
        left, top, right, bottom = max(x1, 1) - 1, max(y1, 1) - 1, min(x2, width), min(y2, height)
        if right > left and bottom > top:
            kept.append(i)
            windows.append(adaptive_avg_pool2d(photo[:, :, top:bottom, left:right], (side, side)))
    if not windows:
        return boxes[:0], photo.new_zeros(0, 3, side, side)
    return boxes[kept], normalise_(torch.cat(windows))


def run_batched(net: nn.Module, windows: torch.Tensor) -> tuple[torch.Tensor, ...]:
    outputs = [net(windows[i : i + BATCH]) for i in range(0, len(windows), BATCH)]
    return tuple(torch.cat(parts) for parts in zip(*outputs, strict=True))


def nms(corners: torch.Tensor, scores: torch.Tensor, threshold: float) -> torch.Tensor:
    """Greedy non-maximum suppression, as `torchvision.ops.nms` (float32 IoU over areas
    (x2 − x1)·(y2 − y1), a box dropped when its IoU with a kept, higher-scoring one exceeds
    `threshold`): indices kept, highest score first. Hand-written so that detection does not
    import torchvision (see `srfer.models.mtcnn`); tests compare it with torchvision's."""
    return _greedy(corners, scores, threshold, inclusive=False, by_smaller=False)


def nms_by_smaller_area(boxes: torch.Tensor, threshold: float) -> torch.Tensor:
    """The last stage's NMS: overlap = intersection / the smaller box's area, with pixel-
    inclusive sides (+1), as facenet-pytorch's numpy NMS 'Min'; indices kept."""
    return _greedy(boxes[:, :4], boxes[:, 4], threshold, inclusive=True, by_smaller=True)


def _greedy(
    corners: torch.Tensor, scores: torch.Tensor, threshold: float, inclusive: bool, by_smaller: bool
) -> torch.Tensor:
    order = np.argsort(-scores.detach().cpu().numpy(), kind="stable")
    box = corners.detach().cpu().numpy().astype(np.float32)[order]
    drops = np.zeros(len(box), dtype=bool)
    kept = []
    for start in range(0, len(box), NMS_BLOCK):  # overlaps of a block of boxes with all later ones
        block = _overlaps(box[start : start + NMS_BLOCK], box[start:], inclusive, by_smaller) > threshold
        for i in range(len(block)):
            if not drops[start + i]:
                kept.append(start + i)
                drops[start:] |= block[i]
    return torch.as_tensor(order[np.array(kept, dtype=np.int64)], device=corners.device)


def _overlaps(a: np.ndarray, b: np.ndarray, inclusive: bool, by_smaller: bool) -> np.ndarray:
    """(len(a), len(b)) IoU (or intersection / smaller area), in float32 like the originals."""
    one = np.float32(1 if inclusive else 0)
    area_a = (a[:, 2] - a[:, 0] + one) * (a[:, 3] - a[:, 1] + one)
    area_b = (b[:, 2] - b[:, 0] + one) * (b[:, 3] - b[:, 1] + one)
    width = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]) + one
    height = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]) + one
    inter = np.maximum(width, 0) * np.maximum(height, 0)
    if by_smaller:
        return inter / np.minimum(area_a[:, None], area_b[None, :])
    return inter / (area_a[:, None] + area_b[None, :] - inter)

"""MTCNN's three-stage face detection cascade (Zhang et al., 2016, "Joint Face Detection and
Alignment using Multi-task Cascaded Convolutional Networks") on `srfer.models.mtcnn`'s P-, R-
and O-Net with the weights that ship inside the facenet-pytorch wheel.

Why not `facenet_pytorch.MTCNN.detect`: its driver resizes thousands of candidate windows one
`interpolate` call at a time, rebuilds the image pyramid by pooling the whole photo per level,
and runs the nets in NCHW, where they are slower than in channels-last on a CPU. This driver
keeps facenet-pytorch's semantics — the same pyramid scales, thresholds, box arithmetic,
padding rule, resampling ('area', i.e. adaptive average pooling) and NMS steps, so the boxes
agree (tests compare them) — and runs the nets channels-last and does every resize from one
summed-area table of the photo (`SummedArea`): adaptive pooling reads each level's whole
input, so ~10 pyramid levels re-read the photo ten times, while table lookups cost only the
output's size. docs/performance.md has the measurements.

Shapes: a photo (H, W, 3) uint8 → boxes (n, 5) [x1, y1, x2, y2, score] and landmarks
(n, 5, 2) [x, y] in its pixels, largest box first.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from srfer.accel.deploy import PackedConv2d, packing_available
from srfer.faces.framing import MIN_FACE, PNET_WINDOW
from srfer.models.mtcnn import PNet, pretrained_mtcnn

WINDOW = PNET_WINDOW  # a face of min_face px is scaled to P-Net's window
PNET_STRIDE = 2  # P-Net's output grid step in its input's pixels
BATCH = 2048  # windows per R-/O-Net call (bounded memory on large, busy photos)
NMS_BLOCK = 1024  # boxes whose overlaps NMS computes at once (bounded memory)


@dataclass(frozen=True)
class CascadeConfig:
    """The detector's knobs (facenet-pytorch's names and defaults in brackets)."""

    min_face: int = MIN_FACE  # smallest face searched, in px [min_face_size: 20]
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
        net = net.eval().requires_grad_(False).to(self.device, memory_format=torch.channels_last)
        if isinstance(net, PNet) and self.device.type == "cpu" and packing_available():
            # P-Net's 1×1 heads run about 3× faster with a packed weight; its 3×3 convolutions
            # do not, so they stay as they are (docs/performance.md)
            net.conv4 = PackedConv2d(net.conv4)
        return net

    @torch.no_grad()
    def detect(self, pixels: np.ndarray, min_face: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(H, W, 3) uint8 → boxes (n, 5) and landmarks (n, 5, 2), float32, largest first;
        `min_face`: the smallest face searched in this image (default: the config's)."""
        photo = SummedArea(pixels, self.device)
        boxes = self._propose(photo, min_face or self.config.min_face)
        boxes = self._refine(photo, boxes)
        boxes, points = self._output(photo, boxes)
        order = torch.argsort((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]), descending=True)
        return boxes[order].cpu().numpy(), points[order].cpu().numpy()

    def _propose(self, photo: SummedArea, min_face: int) -> torch.Tensor:
        """Stage 1: P-Net on each pyramid level → squared candidate boxes (n, 5)."""
        height, width = photo.height, photo.width
        per_scale = []
        for scale in pyramid_scales(height, width, min_face, self.config.factor):
            size = (int(height * scale + 1), int(width * scale + 1))
            reg, probs = self.pnet(normalise_(photo.resize(size)))
            found = grid_boxes(reg[0], probs[0, 1], scale, self.config.thresholds[0])
            per_scale.append(found[nms(found[:, :4], found[:, 4], 0.5)])
        boxes = torch.cat(per_scale) if per_scale else torch.zeros(0, 9, device=self.device)
        boxes = boxes[nms(boxes[:, :4], boxes[:, 4], 0.7)]
        width_, height_ = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
        shift = boxes[:, 5:9] * torch.stack([width_, height_, width_, height_], dim=1)
        return square(torch.cat([boxes[:, :4] + shift, boxes[:, 4:5]], dim=1))

    def _refine(self, photo: SummedArea, boxes: torch.Tensor) -> torch.Tensor:
        """Stage 2: R-Net on 24 px windows → kept boxes, regressed and squared."""
        boxes, corners = clip_to_photo(photo, boxes)
        if len(boxes) == 0:
            return boxes
        reg, probs = run_on_windows(self.rnet, photo, corners, 24)
        keep = probs[:, 1] > self.config.thresholds[1]
        boxes = torch.cat([boxes[keep, :4], probs[keep, 1:2]], dim=1)
        picked = nms(boxes[:, :4], boxes[:, 4], 0.7)
        return square(regress(boxes[picked], reg[keep][picked]))

    def _output(self, photo: SummedArea, boxes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Stage 3: O-Net on 48 px windows → final boxes and their landmarks."""
        boxes, corners = clip_to_photo(photo, boxes)
        if len(boxes) == 0:
            return torch.zeros(0, 5, device=self.device), torch.zeros(0, 5, 2, device=self.device)
        reg, marks, probs = run_on_windows(self.onet, photo, corners, 48)
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
class SummedArea:
    """A photo's summed-area table (Crow, 1984) in exact integers: the mean of any pixel
    rectangle in four lookups. Resizes through it are adaptive average pooling ('area', what
    facenet-pytorch resizes with) — each output pixel the mean of input rows
    [⌊i·H/h⌋, ⌈(i+1)·H/h⌉) × the same for columns — at the cost of the output's size. The
    sums are exact, so the means differ from `adaptive_avg_pool2d`'s float sums only by
    float32 rounding (tests compare them).

    Shapes: pixels (H, W, 3) uint8 → table (H + 1, W + 1, 3); resizes → (n, 3, h, w) float32
    in channels-last memory, the nets' layout."""

    def __init__(self, pixels: np.ndarray, device: torch.device) -> None:
        self.height, self.width = pixels.shape[:2]
        exact = np.int32 if self.height * self.width * 255 < 2**31 else np.int64
        table = np.zeros((self.height + 1, self.width + 1, 3), dtype=exact)
        np.cumsum(pixels, axis=1, dtype=exact, out=table[1:, 1:])
        for row in range(2, self.height + 1):  # row after row: 3× faster than cumsum(axis=0) here
            np.add(table[row - 1], table[row], out=table[row])
        self.flat = torch.from_numpy(table).to(device).view(-1, 3)

    def resize(self, size: tuple[int, int]) -> torch.Tensor:
        """The whole photo area-resized to size (h, w) → (1, 3, h, w). Separably: whole table
        rows first (contiguous copies), then columns: the same sums as `means`' four 2-D
        gathers, in less time (docs/performance.md)."""
        zero = torch.zeros(1, 1, dtype=torch.long, device=self.flat.device)
        top, bottom = (b[0] for b in area_bounds(zero, zero + self.height, size[0]))
        left, right = (b[0] for b in area_bounds(zero, zero + self.width, size[1]))
        table = self.flat.view(self.height + 1, self.width + 1, 3)
        bands = table.index_select(0, bottom) - table.index_select(0, top)  # (h, W + 1, 3)
        sums = bands.index_select(1, right) - bands.index_select(1, left)  # (h, w, 3)
        area = ((bottom - top)[:, None] * (right - left)[None, :]).unsqueeze(2)
        return (sums.float() / area.float()).permute(2, 0, 1)[None]

    def windows(self, corners: torch.Tensor, side: int) -> torch.Tensor:
        """Rectangles (n, 4) [left, top, right, bottom) inside the photo, each area-resized to
        side × side → (n, 3, side, side)."""
        rows = area_bounds(corners[:, 1:2], corners[:, 3:4], side)
        cols = area_bounds(corners[:, 0:1], corners[:, 2:3], side)
        return self.means(rows, cols)

    def means(
        self, rows: tuple[torch.Tensor, torch.Tensor], cols: tuple[torch.Tensor, torch.Tensor]
    ) -> torch.Tensor:
        """Row spans (n, h) and column spans (n, w) as (starts, ends) → the (n, 3, h, w) means
        of their rectangles."""
        (top, bottom), (left, right) = rows, cols
        n, h, w = top.shape[0], top.shape[1], left.shape[1]

        def corner(r: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
            index = r[:, :, None] * (self.width + 1) + c[:, None, :]
            return self.flat.index_select(0, index.view(-1)).view(n, h, w, 3)

        sums = corner(bottom, right) - corner(top, right) - corner(bottom, left) + corner(top, left)
        area = ((bottom - top)[:, :, None] * (right - left)[:, None, :]).unsqueeze(3)
        return (sums.float() / area.float()).permute(0, 3, 1, 2)


def area_bounds(start: torch.Tensor, end: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Spans (n, 1) [start, end) cut into `size` pooling cells as adaptive pooling cuts them →
    (cell starts, cell ends), each (n, size): ⌊i·L/size⌋ and ⌈(i+1)·L/size⌉ past start."""
    length = end - start
    i = torch.arange(size, device=start.device)[None]
    return start + (i * length) // size, start + ((i + 1) * length + size - 1) // size


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


def clip_to_photo(photo: SummedArea, boxes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Boxes → (those that overlap the photo, their pixel rectangles (n, 4) [left, top,
    right, bottom) clipped to it). Clipping, not padding, as facenet-pytorch does: a box over
    the border is squeezed into its window. (facenet-pytorch also skips empty windows but
    keeps their boxes, which misaligns boxes and scores; here both are dropped.)"""
    x1, y1, x2, y2 = boxes[:, :4].long().unbind(1)  # truncated toward zero, as int() does
    corners = torch.stack(
        [x1.clamp(min=1) - 1, y1.clamp(min=1) - 1, x2.clamp(max=photo.width), y2.clamp(max=photo.height)], 1
    )
    kept = (corners[:, 2] > corners[:, 0]) & (corners[:, 3] > corners[:, 1])
    return boxes[kept], corners[kept]


def run_on_windows(
    net: nn.Module, photo: SummedArea, corners: torch.Tensor, side: int
) -> tuple[torch.Tensor, ...]:
    """`net` on the rectangles' pixels area-resized to side × side, BATCH windows at a time
    (bounded memory on large, busy photos)."""
    outputs = [
        net(normalise_(photo.windows(corners[i : i + BATCH], side))) for i in range(0, len(corners), BATCH)
    ]
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

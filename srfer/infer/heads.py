"""The heads `predict` asks about a face: expression (the classifier, or the tiny-face path) and
the faces each head sees, restored by the SR its route names."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from srfer.data.degradations import bicubic_resize, quantize_8bit, to_gray
from srfer.infer.load import LoadedModel
from srfer.infer.run import Restorer, super_resolve


@torch.no_grad()
def expression_probs(classifier: LoadedModel, faces01: torch.Tensor) -> torch.Tensor:
    """RGB faces in [0, 1] → the classifier's probabilities (its input size and channels)."""
    contract = classifier.contract
    x = to_gray(faces01) if contract["channels"] == 1 else faces01
    size = contract["input_size"]
    x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return classifier(x.to(classifier.device)).float().softmax(1).cpu()


def restore_crops(
    generator: LoadedModel, crops01: list[torch.Tensor], size: int, own_pixels: bool
) -> torch.Tensor:
    """Square face crops of any size → `size` px through `generator`: each crop resized to the
    generator's input size (size / scale, bicubic), or with `own_pixels` each crop as it is and
    its output resized to `size` (one at a time: the sizes differ; such faces are few and small)."""
    if own_pixels:
        return torch.cat([bicubic_resize(super_resolve(generator, c[None]).cpu(), size) for c in crops01])
    lr_size = size // generator.config.scale
    return super_resolve(generator, torch.stack([bicubic_resize(c, lr_size) for c in crops01])).cpu()


class TinyFaceExpression:
    """Expression of a tiny face: its gray crop at its own pixels → the FER-domain SR (×4) → the
    classifier's input size → the classifier trained on such super-resolved faces (the sweep's
    upscale-classifier column, one face at a time)."""

    def __init__(self, classifier: LoadedModel, restore: Restorer) -> None:
        self.classifier, self.restore = classifier, restore

    @torch.no_grad()
    def __call__(self, crops01: list[torch.Tensor]) -> torch.Tensor:
        size = self.classifier.contract["input_size"]
        restored = []
        for crop in crops01:  # square crops of differing sizes; tiny faces are few
            lr = quantize_8bit(to_gray(crop[None]))
            restored.append(bicubic_resize(self.restore(lr.to(self.classifier.device)), size))
        return self.classifier(torch.cat(restored)).float().softmax(1).cpu()

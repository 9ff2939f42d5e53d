"""Synthetic face-like images for tests (no real data needed)."""

from __future__ import annotations

import numpy as np
from PIL import Image


def synthetic_face(size: tuple[int, int], seed: int, mode: str = "RGB") -> Image.Image:
    """A smooth face-like blob pattern: an ellipse, two eyes and a mouth on a gradient."""
    rng = np.random.default_rng(seed)
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    cx, cy = w / 2 + rng.uniform(-2, 2), h / 2 + rng.uniform(-2, 2)
    face = (((xx - cx) / (0.35 * w)) ** 2 + ((yy - cy) / (0.45 * h)) ** 2 < 1).astype(np.float32)
    img = 0.3 + 0.2 * xx / w + 0.4 * face
    for ex in (cx - 0.15 * w, cx + 0.15 * w):
        img -= 0.5 * np.exp(-(((xx - ex) ** 2 + (yy - cy + 0.1 * h) ** 2) / (0.002 * w * h)))
    img -= 0.4 * np.exp(-(((xx - cx) ** 2) / (0.02 * w * w) + ((yy - cy - 0.2 * h) ** 2) / (0.001 * h * h)))
    rgb = np.stack([img * c for c in rng.uniform(0.7, 1.0, size=3)], axis=-1)
    arr = (np.clip(rgb, 0, 1) * 255).astype(np.uint8)
    pil = Image.fromarray(arr, "RGB")
    return pil.convert(mode) if mode != "RGB" else pil


def identity_folders(root, identities: int, images: int = 3, single_last: bool = False):
    """`identities` folders of `images` synthetic 40 px faces each (LFW layout); `single_last`:
    the last identity has one image (a negative-only identity)."""
    for person in range(identities):
        folder = root / f"person{person}"
        folder.mkdir()
        count = 1 if single_last and person == identities - 1 else images
        for i in range(count):
            synthetic_face((40, 40), person * 100 + i).save(folder / f"person{person}_{i + 1:04d}.png")
    return root


def tiny_checkpoints(root) -> dict:
    """Random-weight SR ×4 (RGB and gray) and ×8, expression and embedder checkpoints under `root`:
    tiny, but the real networks, so commands run end to end in a fraction of a second."""
    import torch

    from srfer.core.checkpoint import save_checkpoint
    from srfer.core.weights import sha256
    from srfer.faces.align import DLIB_TEMPLATE
    from srfer.models import Generator, GeneratorConfig
    from srfer.models.embedder import Embedder, EmbedderConfig
    from srfer.models.feature_sr import FeatureSR, FeatureSRConfig
    from srfer.models.fer import FerConfig, build_fer

    def save(name: str, kind: str, model, meta: dict | None = None):
        tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
        return save_checkpoint(root / f"{name}.safetensors", kind, model.config.to_dict(), tensors, meta)

    torch.manual_seed(0)
    sr = Generator(GeneratorConfig(features=4, blocks=1))
    fer = FerConfig(width=4, fused=16)
    gray_sr = Generator(GeneratorConfig(features=4, blocks=1, channels=1))
    embedder = Embedder(EmbedderConfig(widths=(4, 8, 8, 8), dim=16, input_size=32))
    # an aligning embedder like the shipped dlib network (its input contract names a template)
    aligned = Embedder(EmbedderConfig(backbone="dlib-resnet29", widths=(4, 4, 4, 4)))
    contract = {"threshold": 0.5, "input": {"crop_size": 64, "alignment": DLIB_TEMPLATE.to_json()}}
    aligned_file = save("embed_aligned", "face-embedder", aligned, contract)
    # a feature SR made for the aligning embedder, its last layer not zero so that it changes answers
    feature_sr = FeatureSR(FeatureSRConfig(branch=2, channels=4, width=4, blocks=1))
    torch.nn.init.normal_(feature_sr.tail.weight, std=0.5)
    made_for = {"identity_embedder": {"path": str(aligned_file), "sha256": sha256(aligned_file)}}
    return {
        "sr": save("sr", "sr-generator", sr),
        "sr_id": save("sr_id", "sr-generator", Generator(sr.config)),
        "sr_x8": save("sr_x8", "sr-generator", Generator(GeneratorConfig(features=4, blocks=1, scale=8))),
        "fer": save("fer", "fer-classifier", build_fer(fer)),
        "fer_up": save("fer_up", "fer-classifier", build_fer(fer)),
        "fer8": save("fer8", "fer-classifier", build_fer(FerConfig(width=4, fused=16, num_classes=8))),
        "sr_fer": save("sr_fer", "sr-generator", gray_sr),
        "embed": save("embed", "face-embedder", embedder, {"metrics": {"val_threshold": 0.5}}),
        "embed_aligned": aligned_file,
        "feature_sr": save("feature_sr", "feature-sr", feature_sr, made_for),
    }  # fmt: skip

"""Draw docs/degradation.png: one public-domain face (examples/gallery/astronaut_128.png) made
small by the clean degradation and by several seeded draws of the realistic one, and what
bicubic and each SR file make of it. Rows: clean, then realistic seeds; columns: LR (nearest)
| bicubic | each model | HR.

    python tools/degradation_grid.py                                       # the shipped ×4 psnr and robust
    python tools/degradation_grid.py --models old=weights/x.safetensors,new=runs/y/best.safetensors
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
import torch.nn.functional as F
from torchvision.transforms.functional import pil_to_tensor

from srfer.core.imageio import load_image
from srfer.core.plots import plot_image_grid
from srfer.data.degradations import CLEAN, REALISTIC, bicubic_resize
from srfer.infer.load import Weights, load_generator
from srfer.infer.run import super_resolve

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    raw = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=raw)
    parser.add_argument("--face", type=Path, default=ROOT / "examples/gallery/astronaut_128.png")
    parser.add_argument("--models", default="", help="name=path,… of one scale (default: shipped ×4s).")
    parser.add_argument("--seeds", type=int, default=5, help="Realistic draws (rows after the clean one).")
    parser.add_argument("--out", type=Path, default=ROOT / "docs/degradation.png")
    args = parser.parse_args()
    pairs = [m.split("=", 1) for m in args.models.split(",") if m]
    generators = {n: load_generator(Path(p)) for n, p in pairs}
    generators = generators or {
        "×4 psnr": load_generator(role=Weights.SR),
        "×4 robust": load_generator(role=Weights.SR_ROBUST),
    }
    scale = next(iter(generators.values())).config.scale
    hr = pil_to_tensor(load_image(args.face)).float().div(255).unsqueeze(0)
    size = hr.shape[-1] // scale
    rows, labels = [], []
    for how, seed in [(CLEAN, 0), *((REALISTIC, s) for s in range(args.seeds))]:
        lr = how(hr, size, [seed])
        row = [F.interpolate(lr, size=hr.shape[-2:], mode="nearest")[0], bicubic_resize(lr, hr.shape[-1])[0]]
        row += [super_resolve(g, lr)[0] for g in generators.values()]
        rows.append([*row, hr[0]])
        labels.append(how.name if how is CLEAN else f"realistic #{seed}")
    columns = [f"LR {size} px", "bicubic", *generators, f"HR {hr.shape[-1]} px"]
    title = "rows: " + ", ".join(labels)
    print(plot_image_grid(rows, columns, args.out, title=title))


if __name__ == "__main__":
    torch.manual_seed(0)
    main()

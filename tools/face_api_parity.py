"""Is a converted face-api network a faithful port? Run the original TensorFlow.js network
(Node, pure-JS CPU backend) and the converted torch one on the same faces; print max |Δ|.

    python tools/face_api_parity.py --tarball ../shared/pretrained/vladmandic-face-api-1.7.15.tgz \
        --weights weights/embed_dlib_resnet29.safetensors --faces ../shared/data/celeba --n 8 \
        --node-modules /tmp/tfjs/node_modules

With `--model expression`, `--weights` is `srfer convert-face-api --model expression`'s file and
`--faces` a FER2013 root: its first n validation faces (48 px gray, sent as RGB) go through
both, and the 7 probabilities are compared (face-api's order mapped onto FER2013's).

Needs Node ≥ 14 and `npm install @tensorflow/tfjs@4.22.0 @tensorflow/tfjs-backend-wasm@4.22.0`
in the folder given by --node-modules (a developer check, not a test: the tarball and npm
packages are not in the repository).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tarfile
import tempfile
from pathlib import Path

import torch

from srfer.core.imageio import load_image
from srfer.core.weights import Weights
from srfer.data.faces import discover_faces
from srfer.faces.align import align_face
from srfer.faces.detect import FaceDetector
from srfer.infer.load import load_classifier, load_embedder


def aligned_chips(root: Path, n: int) -> torch.Tensor:
    """n CelebA val faces aligned onto dlib's 150 px chip, uint8 (n, 3, 150, 150)."""
    paths = discover_faces(root, "val").paths[::97][:n]
    images = [load_image(p, "RGB") for p in paths]
    faces = FaceDetector(torch.device("cpu")).detect(images)
    chips = [align_face(img, f[0].landmarks, 150) for img, f in zip(images, faces, strict=True) if f]
    return (torch.stack(chips) * 255).round().to(torch.uint8)


def fer_faces(root: Path, n: int) -> torch.Tensor:
    """The first n FER2013 val faces as uint8 RGB (n, 3, 48, 48)."""
    from srfer.data.fer import load_fer

    return load_fer(root, "val", None, 0).images[:n].expand(-1, 3, -1, -1).contiguous()


def run_face_api(tarball: Path, chips: torch.Tensor, node_modules: Path, model: str) -> dict:
    """face-api's own outputs for uint8 RGB `chips` (n, 3, S, S)."""
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        with tarfile.open(tarball) as tar:
            tar.extractall(tmp, filter="data")
        chips_file, out_file = tmp / "chips.json", tmp / "out.json"
        hwc = chips.permute(0, 2, 3, 1).reshape(len(chips), -1)
        chips_file.write_text(json.dumps({"size": chips.shape[-1], "chips": hwc.tolist()}))
        script = Path(__file__).with_name("face_api_descriptors.js")
        env = {**os.environ, "NODE_PATH": str(node_modules.resolve())}
        command = ["node", str(script), str(tmp / "package"), str(chips_file), str(out_file), model]
        subprocess.run(command, check=True, env=env)
        return json.loads(out_file.read_text())


def expression_parity(args: argparse.Namespace) -> dict:
    from srfer.convert.face_api import FACEAPI_NAMES
    from srfer.data.fer import EMOTIONS
    from srfer.models.faceapi_expression import FACEAPI_EXPRESSIONS

    faces = fer_faces(args.faces, args.n)
    reference = run_face_api(args.tarball, faces, args.node_modules, "expression")
    order = [FACEAPI_EXPRESSIONS.index(FACEAPI_NAMES[e]) for e in EMOTIONS]
    js = torch.tensor(reference["descriptors"], dtype=torch.float64)[:, order]
    model = load_classifier(args.weights, torch.device("cpu"), role=Weights.FER)
    with torch.no_grad():
        ours = model(faces[:, :1].float() / 255).double().softmax(1)
    delta = (ours - js).abs()
    return {"faces": len(faces), "tfjs_backend": reference["backend"], "tfjs": reference["tfjs"],
            "max_abs_diff_probability": float(delta.max()), "mean_abs_diff": float(delta.mean()),
            "same_top_class": int((ours.argmax(1) == js.argmax(1)).sum())}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tarball", type=Path, required=True)
    parser.add_argument("--weights", type=Path, required=True)
    faces = "CelebA root (val faces are used); a FER2013 root with --model expression"
    parser.add_argument("--faces", type=Path, required=True, help=faces)
    parser.add_argument("--n", type=int, default=8)
    parser.add_argument("--node-modules", type=Path, required=True)
    parser.add_argument("--model", choices=("recognition", "expression"), default="recognition")
    args = parser.parse_args()
    if args.model == "expression":
        print(json.dumps(expression_parity(args), indent=1))
        return
    chips = aligned_chips(args.faces, args.n)
    reference = run_face_api(args.tarball, chips, args.node_modules, "recognition")
    js = torch.tensor(reference["descriptors"], dtype=torch.float64)
    embedder = load_embedder(args.weights, torch.device("cpu"))
    with torch.no_grad():
        x = embedder.network._prepare(chips.float() / 255)
        ours = embedder.network.backbone(x).double()
    delta = (ours - js).abs()
    print(json.dumps({
        "faces": len(chips), "tfjs_backend": reference["backend"], "tfjs": reference["tfjs"],
        "max_abs_diff": float(delta.max()), "mean_abs_diff": float(delta.mean()),
        "descriptor_norm_mean": float(js.norm(dim=1).mean()),
        "max_l2_distance_between_ports": float((ours - js).norm(dim=1).max()),
    }, indent=1))  # fmt: skip


if __name__ == "__main__":
    main()

"""`make bench`: expression classifier and embedder inference faces/s (batch 1 and 256), and
1:N identify latency against a 10 000-identity gallery, on the CPU and on CUDA when present.

Networks are built from the shipped checkpoints' configs when present (else the defaults);
speed does not depend on the weights. Numbers are measured each run, never stored.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch
from bench_sr import print_rows, timed

from srfer.core.runtime import amp_dtype, autocast
from srfer.models.embedder import Embedder, EmbedderConfig
from srfer.models.fer import FerConfig, build_fer


def shipped_config(role: str, cls):
    """The architecture of the shipped checkpoint for `role`, or the class defaults."""
    from srfer.core.checkpoint import load_checkpoint
    from srfer.core.errors import SrferError
    from srfer.core.weights import Weights

    try:
        return cls(**load_checkpoint(Weights(role).resolve()).config)
    except SrferError:
        return cls()


def faces_per_s(model: torch.nn.Module, shape: tuple[int, ...], device: torch.device) -> dict[str, float]:
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    model = model.eval().to(device)
    out = {}
    for batch in (1, 256):
        x = torch.rand(batch, *shape, device=device)

        def infer(x=x):
            with torch.no_grad(), autocast(device, amp_dtype(device)):
                model(x)

        out[f"faces_per_s_batch{batch}"] = batch / timed(infer, 3 if device.type == "cpu" else 20, sync)
    return out


def every_fer_arch(device: torch.device) -> dict[str, dict[str, float]]:
    """Each registered expression network at its default config: size and speed (the arch
    table in README's expression section)."""
    from srfer.models.fer import FER_BACKBONES

    out = {}
    for arch in FER_BACKBONES.names():
        model = build_fer(FerConfig(arch=arch))
        params = sum(p.numel() for p in model.parameters())
        out[f"{device} arch {arch}"] = {
            "params_millions": params / 1e6,
            **faces_per_s(model, (1, 48, 48), device),
        }
    return out


def identify_latency(identities: int, dim: int, queries: int = 50) -> dict[str, float]:
    """Milliseconds per single-face query against `identities` enrolled embeddings (SQLite)."""
    from srfer.faces.galleries import open_gallery

    with tempfile.TemporaryDirectory() as tmp, open_gallery(Path(tmp) / "g.sqlite", create=True) as gallery:
        embeddings = torch.nn.functional.normalize(torch.randn(identities, dim), dim=1)
        gallery.add("x", embeddings[:1], ["-"], "bench")  # warm the schema, then bulk insert
        with gallery.db:
            gallery.db.executemany(
                "INSERT INTO embeddings (name, embedding, source, model_id, created) VALUES (?, ?, ?, ?, 0)",
                [(f"id{i}", e.numpy().tobytes(), "-", "bench") for i, e in enumerate(embeddings)],
            )
        gallery._matrix = None
        start = time.perf_counter()
        gallery.identify(embeddings[:1], "bench", 1.0)  # first query reads the gallery
        first = time.perf_counter() - start
        probes = torch.nn.functional.normalize(torch.randn(queries, dim), dim=1)
        start = time.perf_counter()
        for probe in probes:
            gallery.identify(probe[None], "bench", 1.0)
        per_query = (time.perf_counter() - start) / queries
    return {"first_query_ms": 1000 * first, "query_ms": 1000 * per_query}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--gallery-size", type=int, default=10_000)
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--fer-archs", action="store_true", help="also every registered expression arch: parameters, faces/s"
    )
    args = parser.parse_args()
    fer_cfg = shipped_config("fer", FerConfig)
    emb_cfg = shipped_config("embed", EmbedderConfig)
    report: dict[str, dict[str, float]] = {}
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    for device in devices:
        fer = faces_per_s(build_fer(fer_cfg), (fer_cfg.in_channels, 48, 48), device)
        emb = faces_per_s(Embedder(emb_cfg), (3, 128, 128), device)
        report[f"{device} expression ({fer_cfg.arch} w{fer_cfg.width})"] = fer
        report[f"{device} embedder ({emb_cfg.backbone} {emb_cfg.input_size}px)"] = emb
    if args.fer_archs:
        report |= every_fer_arch(torch.device("cpu"))
    report[f"identify, {args.gallery_size} identities"] = identify_latency(args.gallery_size, emb_cfg.dim)
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print_rows(report)


if __name__ == "__main__":
    main()

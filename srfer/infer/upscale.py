"""`srfer upscale`: super-resolve face image files into a folder (bad files reported, not fatal)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from srfer.accel.workers import chunked, in_flight, lanes_for, map_in_workers
from srfer.core.errors import SrferError
from srfer.core.imageio import (
    admit_face,
    load_image,
    make_folder,
    pil_to_tensor,
    refuse_overwriting,
    save_image_atomic,
    tensor_to_pil,
    unique_output,
)
from srfer.core.runtime import resolve_device
from srfer.core.weights import sr_model_weights
from srfer.faces.annotate import comparison_strip
from srfer.infer.load import load_generator
from srfer.infer.options import UpscaleOptions
from srfer.infer.run import super_resolve

MAX_UPSCALE_SIDE = 1024  # face crops; beyond this the 4× feature maps need many GB


@dataclass
class UpscaleReport:
    written: list[tuple[Path, Path, tuple[int, int], tuple[int, int]]] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)
    renamed: list[tuple[Path, Path]] = field(default_factory=list)


def check_upscale_size(path: Path, width: int, height: int) -> None:
    """The face admission rule, and a ceiling: upscale is for face crops, not photos."""
    admit_face(path, width, height)
    if max(width, height) > MAX_UPSCALE_SIDE:
        raise SrferError(
            f"{path}: {width}×{height} px is over the {MAX_UPSCALE_SIDE} px per side "
            "limit for upscale; crop the face first"
        )


def upscale_files(
    paths: list[Path], out_dir: Path, options: UpscaleOptions | None = None, device: str = "auto",
    progress=None, workers: int = 1,
) -> UpscaleReport:  # fmt: skip
    """Super-resolve every image (see `expand_inputs`) into out_dir (PNG, input stem kept, clashes
    renamed); bad files are reported in `failed` and skipped. `options.model` picks a shipped SR
    (`SR_MODELS`: psnr, identity-aware, GAN or robust ×4, or x8) unless `options.weights` names a file;
    `compare` also writes <stem>_compare.png strips. One process keeps a file per core in flight
    (threads); `workers` > 1 adds spawned processes (`srfer.accel.workers`). The outputs are those
    of one file at a time."""
    options = options or UpscaleOptions()
    weights = options.weights or sr_model_weights(options.model)
    make_folder(out_dir)
    taken: set[str] = set()
    jobs = [(path, unique_output(out_dir, path.stem, taken)) for path in paths]
    settings = (weights, device, options.runtime, options.compare, options.flip_tta)
    report = UpscaleReport()
    upscaler = _Upscaler(*settings)  # a wrong checkpoint is said first
    if not options.overwrite:
        targets = [target for _, target in jobs]
        refuse_overwriting(targets + ([_strip_path(t) for t in targets] if options.compare else []))

    def here(chunk) -> UpscaleReport:
        part = UpscaleReport()
        upscaler.run(chunk, part)
        return part

    def collect(chunk, part: UpscaleReport) -> None:
        for field_name in ("written", "failed", "renamed"):
            getattr(report, field_name).extend(getattr(part, field_name))
        if progress is not None:
            progress(len(chunk))

    if workers <= 1:
        lanes = lanes_for(upscaler.device, len(jobs))
        for job, part in zip(jobs, in_flight(lambda job: here([job]), jobs, lanes), strict=True):
            collect([job], part)
        return report
    chunks = chunked(jobs, workers, 64)
    map_in_workers(_upscale_chunk, chunks, workers, _start_worker, settings, collect, here)
    return report


def _strip_path(target: Path) -> Path:
    return target.with_name(f"{target.stem}_compare.png")


class _Upscaler:
    """One generator, loaded once, and what to do with each file."""

    def __init__(
        self, weights: Path | None, device: str, runtime: str, compare: bool, flip_tta: bool
    ) -> None:
        self.device = resolve_device(device)
        self.generator = load_generator(weights, self.device, runtime=runtime)
        self.mode = "L" if self.generator.config.channels == 1 else "RGB"
        self.compare, self.flip_tta = compare, flip_tta

    def run(self, jobs: list[tuple[Path, Path]], report: UpscaleReport, progress=None) -> None:
        for path, target in jobs:
            try:
                img = load_image(path, mode=self.mode)
                check_upscale_size(path, *img.size)
                sr = super_resolve(self.generator, pil_to_tensor(img).unsqueeze(0), flip_tta=self.flip_tta)[0]
            except SrferError as exc:
                report.failed.append((path, str(exc)))
            else:
                if target.stem != path.stem:
                    report.renamed.append((path, target))
                save_image_atomic(tensor_to_pil(sr), target)
                if self.compare:
                    strip = comparison_strip(pil_to_tensor(img), sr)
                    save_image_atomic(tensor_to_pil(strip), _strip_path(target))
                report.written.append((path, target, img.size, (sr.shape[2], sr.shape[1])))
            if progress is not None:
                progress()


_worker: _Upscaler | None = None


def _start_worker(*settings) -> None:
    global _worker
    _worker = _Upscaler(*settings)


def _upscale_chunk(jobs: list[tuple[Path, Path]]) -> UpscaleReport:
    assert _worker is not None
    report = UpscaleReport()
    _worker.run(jobs, report)
    return report

"""Inference chain: load checkpoints, super-resolve faces (`upscale`), and the main job
(`predict`): detect → super-resolve small faces → expression + embedding → identity."""

from __future__ import annotations

import platform
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from srfer.checkpoint import load_checkpoint, save_checkpoint
from srfer.data.degradations import to_signed, to_unit
from srfer.detect import FRAME_MARGIN
from srfer.errors import SrferError
from srfer.imageio import load_image, pil_to_tensor, save_image_atomic, tensor_to_pil
from srfer.models import Generator, build_model
from srfer.train.runtime import amp_dtype, autocast, resolve_device
from srfer.weights import optional_weights, resolve_weights, weights_status

MIN_UPSCALE_SIDE = 8  # below this there is no face left to super-resolve
MAX_UPSCALE_SIDE = 1024  # face crops; beyond this the 4× feature maps need many GB


def load_network(role: str, weights: Path | None, kind: str, device: torch.device | None = None) -> nn.Module:
    """A trained network of `kind` from `weights` (or the default for `role`), eval mode.

    The module gets `source` (its file) and `meta` (the checkpoint's JSON header)."""
    path = resolve_weights(role, weights)
    ckpt = load_checkpoint(path, expect_kind=kind)
    model = build_model(ckpt.kind, ckpt.config)
    try:
        model.load_state_dict({k: v.float() for k, v in ckpt.section("model").items()})
    except RuntimeError as exc:
        raise SrferError(f"{path}: weights do not match their config ({str(exc)[:160]})") from None
    model.source, model.meta = path, ckpt.meta  # type: ignore[assignment]
    return model.eval().to(device or torch.device("cpu"))


def load_generator(
    weights: Path | None = None, device: torch.device | None = None, role: str = "sr"
) -> Generator:
    """The SR generator from `weights` (or the default for `role`)."""
    return load_network(role, weights, "sr-generator", device)  # type: ignore[return-value]


_AUTO = object()


@torch.no_grad()
def super_resolve(
    generator: Generator, images01: torch.Tensor, dtype=_AUTO, flip_tta: bool = False
) -> torch.Tensor:
    """(N, C, h, w) in [0, 1] → (N, C, h·s, w·s) in [0, 1]; bf16 on CUDA unless `dtype` says.

    `flip_tta` averages the result with that of the mirrored face (a ×2 self-ensemble, as in
    EDSR's "+" but with the one symmetry faces have: no rotations, which training never saw)."""
    device = next(generator.parameters()).device
    x = to_signed(images01.to(device)).contiguous(memory_format=torch.channels_last)
    dtype = amp_dtype(device) if dtype is _AUTO else dtype
    with autocast(device, dtype):
        out = generator(x).float()
        if flip_tta:
            out = (out + generator(x.flip(-1)).float().flip(-1)) / 2
    return to_unit(out)


def make_restorer(upscaler: str, device: torch.device, sr_weights: Path | None = None, role: str = "sr-fer"):
    """LR batch in [0, 1] → restored batch: `bicubic` (identity here; `degrade_and_restore`
    resizes back bicubically) or `sr` (a frozen generator; gray ↔ RGB adapted)."""
    if upscaler == "bicubic":
        return lambda lr: lr
    if upscaler != "sr":
        raise SrferError(f"unknown --upscaler {upscaler!r}; use sr or bicubic")
    generator = load_generator(sr_weights, device, role)
    for p in generator.parameters():
        p.requires_grad_(False)

    def restore(lr: torch.Tensor) -> torch.Tensor:
        channels = lr.shape[1]
        if generator.config.channels == 3 and channels == 1:
            return super_resolve(generator, lr.expand(-1, 3, -1, -1)).mean(1, keepdim=True)
        if generator.config.channels == 1 and channels == 3:
            return super_resolve(generator, lr.mean(1, keepdim=True)).expand(-1, 3, -1, -1)
        return super_resolve(generator, lr)

    restore.source = generator.source  # type: ignore[attr-defined]
    return restore


@dataclass
class UpscaleReport:
    written: list[tuple[Path, Path, tuple[int, int], tuple[int, int]]] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)
    renamed: list[tuple[Path, Path]] = field(default_factory=list)


def unique_output(out_dir: Path, stem: str, taken: set[str]) -> Path:
    """OUT/<stem>.png, or OUT/<stem>-1.png, … when another input had the same stem."""
    name, n = f"{stem}.png", 0
    while name in taken:
        n += 1
        name = f"{stem}-{n}.png"
    taken.add(name)
    return out_dir / name


def check_upscale_size(path: Path, width: int, height: int) -> None:
    if min(width, height) < MIN_UPSCALE_SIDE:
        raise SrferError(
            f"{path}: {width}×{height} px is too small to super-resolve "
            f"(at least {MIN_UPSCALE_SIDE} px per side)"
        )
    if max(width, height) > MAX_UPSCALE_SIDE:
        raise SrferError(
            f"{path}: {width}×{height} px is over the {MAX_UPSCALE_SIDE} px per side "
            "limit for upscale; crop the face first"
        )


def comparison_strip(lr01: torch.Tensor, sr01: torch.Tensor) -> torch.Tensor:
    """input (nearest) | bicubic | SR, side by side at the SR size, for looking rather than reading."""
    from srfer.data.degradations import bicubic_resize

    size = tuple(sr01.shape[-2:])
    nearest = torch.nn.functional.interpolate(lr01[None], size=size, mode="nearest")[0]
    gap = torch.ones(sr01.shape[0], size[0], 4)
    return torch.cat([nearest, gap, bicubic_resize(lr01, size), gap, sr01.cpu()], dim=2)


def upscale_files(
    paths: list[Path], out_dir: Path, weights: Path | None = None, device: str = "auto", progress=None,
    compare: bool = False, flip_tta: bool = False,
) -> UpscaleReport:  # fmt: skip
    """Super-resolve every image (see `expand_inputs`) into out_dir (PNG, input stem kept); bad files are
    reported in `failed` and skipped. `compare` also writes <stem>_compare.png strips."""
    generator = load_generator(weights, resolve_device(device))
    mode = "L" if generator.config.channels == 1 else "RGB"
    report, taken = UpscaleReport(), set()
    out_dir.mkdir(parents=True, exist_ok=True)
    for path in paths:
        try:
            img = load_image(path, mode=mode)
            check_upscale_size(path, *img.size)
            sr = super_resolve(generator, pil_to_tensor(img).unsqueeze(0), flip_tta=flip_tta)[0]
        except SrferError as exc:
            report.failed.append((path, str(exc)))
        else:
            target = unique_output(out_dir, path.stem, taken)
            if target.stem != path.stem:
                report.renamed.append((path, target))
            save_image_atomic(tensor_to_pil(sr), target)
            if compare:
                strip = comparison_strip(pil_to_tensor(img), sr)
                save_image_atomic(tensor_to_pil(strip), target.with_name(f"{target.stem}_compare.png"))
            report.written.append((path, target, img.size, (sr.shape[2], sr.shape[1])))
        if progress is not None:
            progress()
    return report


def export_weights(checkpoint: Path, target: Path, half: bool = True, threshold: float | None = None) -> Path:
    """Strip training state (optimizers, RNG, other networks) and optionally cast to fp16.
    `threshold` stores an embedder's verification τ (measured by eval-embed) with it."""
    ckpt = load_checkpoint(checkpoint)
    if threshold is not None and ckpt.kind != "face-embedder":
        raise SrferError(f"{checkpoint}: --threshold is for face embedders, this is a {ckpt.kind}")
    tensors = {
        f"model.{k}": (v.half() if half and v.is_floating_point() else v)
        for k, v in ckpt.section("model").items()
    }
    keep = ("data", "train_args", "recipe", "metrics")
    meta = {k: ckpt.meta[k] for k in keep if k in ckpt.meta}
    meta["exported_from"] = str(checkpoint)
    meta["dtype"] = "float16" if half else "float32"
    if threshold is not None:
        meta["threshold"] = threshold
    elif "threshold" in ckpt.meta:  # re-exporting keeps a stored τ
        meta["threshold"] = ckpt.meta["threshold"]
    return save_checkpoint(target, ckpt.kind, ckpt.config, tensors, meta)


def environment_report() -> dict[str, Any]:
    import torchvision

    import srfer

    device = resolve_device("auto")
    report: dict[str, Any] = {
        "srfer": srfer.__version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "device": str(device),
        "amp_dtype": str(amp_dtype(device) or "off (fp32)"),
        "threads": torch.get_num_threads(),
    }
    if device.type == "cuda":
        report["gpu"] = torch.cuda.get_device_name(device)
    try:
        from importlib.metadata import version

        report["facenet-pytorch"] = version("facenet-pytorch")
    except Exception:  # noqa: BLE001 - absent is a valid answer
        report["facenet-pytorch"] = "not installed"
    report["weights"] = weights_status()
    return report


@torch.no_grad()
def embed_face_files(paths: list[Path], embedder: nn.Module, size: int, device: torch.device):
    """Embeddings of face crops (center crop like the training data); bad files are
    returned as (path, reason) instead of stopping the batch."""
    from srfer.data.faces import center_crop_hr

    faces, good, failed = [], [], []
    for path in paths:
        try:
            faces.append(center_crop_hr(path, size, 3).float().div(255))
            good.append(path)
        except SrferError as exc:
            failed.append((path, str(exc)))
    if not faces:
        return torch.empty(0), good, failed
    return embedder(torch.stack(faces).to(device)).cpu(), good, failed


def model_id(model: nn.Module) -> str:
    """A gallery's model identity: the sha256 of the checkpoint file the model came from."""
    from srfer.weights import sha256

    return sha256(Path(model.source))


# ---------------------------------------------------------------------------------------------
# srfer predict: detect → (super-resolve) → expression + embedding → identity
# ---------------------------------------------------------------------------------------------

WORK_SIZE = 128  # the recognisers' face size: the CelebA SR output and the embedder's crops
SR_AUTO_BELOW = WORK_SIZE // 2  # --sr auto: faces with under half the working size get SR
MIN_FACE_SIDE = MIN_UPSCALE_SIDE
SR_MODES = ("auto", "always", "never")
# Faces up to this size get their expression from the FER-domain SR + the classifier trained
# on such faces (`train-fer --upscale`). The FER2013 size sweep puts the crossover between
# 16 px (that path 51.7 % vs the HR classifier on SR faces 46.5 %) and 24 px (47.3 vs 56.3 %).
TINY_FACE_PX = 20


@dataclass
class PredictOptions:
    sr: str = "auto"
    detect: bool = True
    min_face: int = 20
    det_threshold: float = 0.9
    margin: float = FRAME_MARGIN
    batch_size: int = 16
    threshold: float | None = None  # τ override for the gallery
    embeddings: bool = False  # put the embedding into each result
    tiny_expression: bool = True  # faces ≤ TINY_FACE_PX: FER SR + upscale-trained classifier

    def __post_init__(self) -> None:
        if self.sr not in SR_MODES:
            raise SrferError(f"--sr {self.sr!r}: use one of {', '.join(SR_MODES)}")


@dataclass
class PredictWeights:
    """Checkpoints for `Predictor`; None = the shipped default for that role (the optional
    ones, sr_fer/fer_upscale/identity_sr, are left out when not shipped)."""

    sr: Path | None = None
    fer: Path | None = None
    embed: Path | None = None
    identity_sr: Path | None = None
    sr_fer: Path | None = None
    fer_upscale: Path | None = None


@dataclass
class FaceResult:
    """One face's answer; `to_json` is the documented --json schema."""

    image: Path
    index: int
    box: tuple[float, float, float, float]
    face_px: int
    detector_score: float | None
    sr: bool
    expression: str
    expression_model: str  # weights role that answered: "fer", or "fer-upscale" for tiny faces
    confidence: float
    probabilities: dict[str, float]
    identity: str | None = None
    nearest: str | None = None
    distance: float | None = None
    threshold: float | None = None
    embedding: list[float] | None = None
    crop01: torch.Tensor | None = field(default=None, repr=False)  # the face as cut (RGB, [0, 1])
    face01: torch.Tensor | None = field(default=None, repr=False)  # at WORK_SIZE (SR or bicubic)

    def to_json(self) -> dict[str, Any]:
        out = {
            "image": str(self.image), "face": self.index, "box": [round(v, 1) for v in self.box],
            "face_px": self.face_px, "detector_score": _round(self.detector_score), "sr": self.sr,
            "expression": self.expression, "expression_model": self.expression_model,
            "confidence": round(self.confidence, 4),
            "probabilities": {k: round(v, 4) for k, v in self.probabilities.items()},
            "identity": self.identity, "nearest": self.nearest, "distance": _round(self.distance),
            "threshold": _round(self.threshold),
        }  # fmt: skip
        if self.embedding is not None:
            out["embedding"] = [round(v, 6) for v in self.embedding]
        return out


def _round(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)


@dataclass
class ImageResult:
    path: Path
    size: tuple[int, int]
    faces: list[FaceResult]
    outputs: list[Path] = field(default_factory=list)  # files written under --save-dir


@dataclass
class PredictReport:
    images: list[ImageResult] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)

    @property
    def faces(self) -> int:
        return sum(len(r.faces) for r in self.images)


def to_gray(x01: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) → (N, 1, H, W) with ITU-R 601 luma, as PIL's convert("L") and FER2013."""
    weights = torch.tensor([0.299, 0.587, 0.114], device=x01.device).view(1, 3, 1, 1)
    return (x01 * weights).sum(1, keepdim=True)


class Predictor:
    """The main job: faces in photos → expression (and identity), super-resolving small faces.

    Models load once; `run` takes any number of images, `batch_size` at a time."""

    def __init__(
        self, options: PredictOptions, device: str = "auto", weights: PredictWeights | None = None,
        gallery: Path | None = None,
    ) -> None:  # fmt: skip
        from srfer.data.fer import EMOTIONS
        from srfer.detect import FaceDetector
        from srfer.evaluation import embedder_threshold, load_classifier, load_embedder
        from srfer.gallery import Gallery

        self.options, self.device = options, resolve_device(device)
        self._taken_names: set[str] = set()  # --save-dir stems already used (a/x.png vs b/x.png)
        self.timings: dict[str, float] = dict.fromkeys(("load", "detect", "sr", "fer", "embed"), 0.0)
        self.emotions = EMOTIONS
        self.gallery = Gallery(gallery) if gallery is not None else None  # fail fast: before loading models
        weights = weights or PredictWeights()
        self.classifier = load_classifier(weights.fer, self.device)
        self.generator = None if options.sr == "never" else load_generator(weights.sr, self.device)
        if self.generator is not None and self.generator.config.channels != 3:
            raise SrferError(f"{self.generator.source}: predict needs an RGB SR model (the CelebA ×4 one)")
        self.embedder = None
        if self.gallery is not None or options.embeddings:
            self.embedder = load_embedder(weights.embed, self.device)
            self.embedder_id = model_id(self.embedder)
            self.tau = (
                options.threshold if options.threshold is not None else embedder_threshold(self.embedder)
            )
            if self.gallery is not None:
                self.gallery.check_model(self.embedder_id)
                if not self.gallery.identities():
                    raise SrferError(f"{gallery}: the gallery is empty (srfer enroll adds people)")
        self.identity_generator = self._identity_sr(weights.identity_sr)
        self.tiny_expression = self._tiny_expression(weights)
        self.detector = (
            FaceDetector(self.device, options.min_face, options.det_threshold, options.margin)
            if options.detect else None
        )  # fmt: skip

    def _identity_sr(self, weights: Path | None) -> Generator | None:
        """The SR whose faces the embedder sees: the identity-aware one (`sr-identity`) when
        shipped or given, else None (the PSNR SR's faces serve both heads)."""
        if self.embedder is None or self.generator is None:
            return None
        path = optional_weights("sr-identity", weights)
        if path is None:
            return None
        generator = load_generator(path, self.device, role="sr-identity")
        if generator.config.to_dict() != self.generator.config.to_dict():
            raise SrferError(f"{generator.source}: the identity-aware SR must match the SR's architecture")
        return generator

    def _tiny_expression(self, weights: PredictWeights) -> TinyFaceExpression | None:
        """The tiny-face expression path when SR is on and its two models are shipped or given."""
        if not self.options.tiny_expression or self.options.sr == "never":
            return None
        classifier_path = optional_weights("fer-upscale", weights.fer_upscale)
        sr_path = optional_weights("sr-fer", weights.sr_fer)
        if classifier_path is None or sr_path is None:
            return None
        from srfer.evaluation import load_classifier

        classifier = load_classifier(classifier_path, self.device, role="fer-upscale")
        return TinyFaceExpression(classifier, make_restorer("sr", self.device, sr_path, role="sr-fer"))

    def close(self) -> None:
        if self.gallery is not None:
            self.gallery.close()

    @contextmanager
    def _timed(self, stage: str):
        """Adds the stage's wall time to `timings` (synchronising CUDA so the split is honest)."""
        start = time.perf_counter()
        yield
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.timings[stage] += time.perf_counter() - start

    def run(
        self, paths: list[Path], save_dir: Path | None = None, progress=None, on_image=None
    ) -> PredictReport:
        """Every image in `paths`; a bad file lands in `failed` and the rest still run.
        `on_image(ImageResult)` is called as each image is done (streaming output)."""
        report = PredictReport()
        step = max(1, self.options.batch_size)
        for start in range(0, len(paths), step):
            for result in self._run_batch(paths[start : start + step], report, save_dir):
                report.images.append(result)
                if on_image is not None:
                    on_image(result)
            if progress is not None:
                progress(len(paths[start : start + step]))
        return report

    def _run_batch(
        self, paths: list[Path], report: PredictReport, save_dir: Path | None
    ) -> list[ImageResult]:
        from srfer.detect import whole_image_face

        loaded = []
        with self._timed("load"):
            for path in paths:
                try:
                    loaded.append((path, load_image(path, "RGB")))
                except SrferError as exc:
                    report.failed.append((path, str(exc)))
        if not loaded:
            return []
        images = [img for _, img in loaded]
        with self._timed("detect"):
            found = self.detector.detect(images) if self.detector else [[whole_image_face(i)] for i in images]
        results = []
        for (path, img), faces in zip(loaded, found, strict=True):
            try:
                result = ImageResult(path, img.size, self._recognise(path, img, faces))
            except SrferError as exc:
                report.failed.append((path, str(exc)))
                continue
            if save_dir is not None:
                from srfer.annotate import save_annotations

                stem = unique_output(save_dir, path.stem, self._taken_names).stem
                result.outputs = save_annotations(img, result, save_dir, stem)
            for face in result.faces:  # pixels are only needed for the strips: free them
                face.crop01 = face.face01 = None
            results.append(result)
        return results

    @torch.no_grad()
    def _recognise(self, path: Path, img, faces: list) -> list[FaceResult]:
        from srfer.data.degradations import bicubic_resize
        from srfer.detect import cut_face

        if not faces:
            return []
        crops = [pil_to_tensor(cut_face(img, f)) for f in faces]
        if any(min(c.shape[-2:]) < MIN_FACE_SIDE for c in crops):
            side = min(min(c.shape[-2:]) for c in crops)
            raise SrferError(
                f"{path}: a {side} px face is too small to recognise (at least {MIN_FACE_SIDE} px)"
            )
        use_sr = [self._wants_sr(f.size_px) for f in faces]
        work = torch.empty(len(crops), 3, WORK_SIZE, WORK_SIZE)
        for i in (i for i, s in enumerate(use_sr) if not s):
            work[i] = bicubic_resize(crops[i], WORK_SIZE)
        idx = [i for i, s in enumerate(use_sr) if s]
        if idx:
            with self._timed("sr"):
                lr_size = WORK_SIZE // self.generator.config.scale
                lr = torch.stack([bicubic_resize(crops[i], lr_size) for i in idx])
                work[idx] = super_resolve(self.generator, lr).cpu()
        tiny = [i for i, f in enumerate(faces) if self.tiny_expression and f.size_px <= TINY_FACE_PX]
        others = [i for i in range(len(faces)) if i not in tiny]
        with self._timed("fer"):  # each face through one classifier: the tiny path's or the HR one
            probs = torch.empty(len(faces), len(self.emotions))
            if others:
                probs[others] = self._expressions(work[others])
            if tiny:
                probs[tiny] = self.tiny_expression([crops[i] for i in tiny])
        out = []
        for i, face in enumerate(faces):
            top = int(probs[i].argmax())
            out.append(FaceResult(
                image=path, index=i, box=tuple(float(v) for v in face.box), face_px=face.size_px,
                detector_score=face.score, sr=use_sr[i], expression=self.emotions[top],
                expression_model="fer-upscale" if i in tiny else "fer",
                confidence=float(probs[i, top]),
                probabilities={e: float(p) for e, p in zip(self.emotions, probs[i].tolist(), strict=True)},
                crop01=crops[i], face01=work[i],
            ))  # fmt: skip
        if self.embedder is not None:
            for_identity = work
            if idx and self.identity_generator is not None:
                with self._timed("sr"):
                    for_identity = work.clone()
                    for_identity[idx] = super_resolve(self.identity_generator, lr).cpu()
            with self._timed("embed"):
                self._identities(for_identity, out)
        return out

    def _wants_sr(self, face_px: int) -> bool:
        mode = self.options.sr
        return mode == "always" or (mode == "auto" and face_px < SR_AUTO_BELOW)

    def _expressions(self, faces01: torch.Tensor) -> torch.Tensor:
        size = self.classifier.config.input_size
        x = to_gray(faces01) if self.classifier.config.in_channels == 1 else faces01
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
        return self.classifier(x.to(self.device)).float().softmax(1).cpu()

    def _identities(self, faces01: torch.Tensor, results: list[FaceResult]) -> None:
        embeddings = self.embedder(faces01.to(self.device)).float().cpu()
        matches = self.gallery.identify(embeddings, self.embedder_id, self.tau) if self.gallery else None
        for i, result in enumerate(results):
            if self.options.embeddings:
                result.embedding = embeddings[i].tolist()
            if matches is not None:
                m = matches[i]
                result.identity, result.nearest, result.distance, result.threshold = (
                    m.name,
                    m.nearest,
                    m.distance,
                    m.threshold,
                )


class TinyFaceExpression:
    """Expression of a face of at most TINY_FACE_PX: its gray crop at its own pixels →
    the FER-domain SR (×4) → the classifier's input size → the classifier trained on such
    super-resolved faces. This is the sweep's third column, applied to one face at a time."""

    def __init__(self, classifier: nn.Module, restore) -> None:
        self.classifier, self.restore = classifier, restore
        self.device = next(classifier.parameters()).device

    @torch.no_grad()
    def __call__(self, crops01: list[torch.Tensor]) -> torch.Tensor:
        from srfer.data.degradations import bicubic_resize, quantize_8bit

        size = self.classifier.config.input_size
        restored = []
        for crop in crops01:  # square crops of differing sizes; tiny faces are few
            lr = quantize_8bit(to_gray(crop[None]))
            restored.append(bicubic_resize(self.restore(lr.to(self.device)), size))
        return self.classifier(torch.cat(restored)).float().softmax(1).cpu()

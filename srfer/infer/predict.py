"""`srfer predict`, the main job: detect faces → super-resolve the small ones → expression
(and embedding) → identity from a gallery. Results are plain dataclasses; `FaceResult.to_json`
is the documented --json schema."""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from srfer.accel.onnx import check_runtime
from srfer.core.errors import SrferError
from srfer.core.imageio import admit_face, load_image, make_folder, pil_to_tensor, unique_output
from srfer.core.runtime import resolve_device
from srfer.core.weights import optional_weights
from srfer.data.degradations import bicubic_resize, quantize_8bit
from srfer.data.fer import class_names, project_probs
from srfer.faces.align import align_face, centred_landmarks
from srfer.faces.annotate import save_annotations
from srfer.faces.detect import FRAME_MARGIN, FaceDetector, cut_face, whole_image_face
from srfer.faces.gallery import Gallery
from srfer.infer.networks import (
    embedder_crop_size,
    embedder_template,
    embedder_threshold,
    load_classifier,
    load_embedder,
    load_generator,
    make_restorer,
    model_device,
    model_id,
    super_resolve,
)
from srfer.models import Generator

WORK_SIZE = 128  # the recognisers' face size: the CelebA SR output and the embedder's crops
SR_AUTO_BELOW = WORK_SIZE // 2  # --sr auto: faces with under half the working size get SR
SR_MODES = ("auto", "always", "never")
# Faces up to this size get their expression from the FER-domain SR + the classifier trained
# on such faces (`train-fer --upscale`). The FER2013 val size sweeps (2026-12-02: the dlib-trunk
# specialist vs the default ensemble) put the crossover between 20 px (that path 58.8 % vs
# 58.1 % on ×8-SR faces) and 24 px (60.1 vs 60.7 % on ×4-SR faces): the midpoint. Through
# `predict` with the current specialist (2026-12-03): 24 px 60.99 vs 61.21 % for the then
# default ensemble on ×8 faces, 28 px 61.69 vs 62.72 % — the ensemble still wins from 24 px;
# at 20 px the path's three-phase file 59.71 vs 57.56 %. The single-network default of the end
# of 2026-12-03: 63.1 vs 60.1 % at 24 px (sweep, FER SR), 62.47 vs 60.07 % through `predict`
# (×8 face).
TINY_FACE_PX = 22
# Faces under these sizes that get SR go through the ×8 model (the face at its own pixels →
# ×8 → 128 px) instead of the ×4 (the face resized to 32 px → 128), per head, as measured
# (weights/README.md, sr_celeba_x8). Expression, FER2013 val, HR classifier on ×8 vs ×4 faces:
# 49.0 vs 47.8 % at 16 px, 54.1 vs 53.3 at 20, 58.2 vs 57.2 at 24, 60.2 vs 59.7 at 28 (2026-12-02).
# The sweep of the end of 2026-12-03 gives the ×4 the face at its own pixels (24 → 96 px), not
# as predict does, so its lead there (64.8 vs 63.6 % at 24 px) does not transfer: through
# `predict` (benchmarks/predict_fer_accuracy.py) the ×4 path answers 56.4 % at 24 px, the ×8
# 62.5 %. Verification, CelebA val, ×8 vs the PSNR ×4 shipped 2026-12-03: 78.8 vs 77.4 % at
# 12 px, 85.0 vs 86.5 at 16, 88.8 vs 90.3 at 20, so 14 px, the midpoint; the identity-aware ×4
# beats the ×8 at every size (79.1 / 85.9 / 89.9), so where it serves the embedder the ×8 does not.
X8_BELOW = {"expression": 29, "identity": 14}


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
    runtime: str = "torch"  # or "onnx": the networks run in ONNX Runtime (srfer.accel.onnx)
    x8: bool = True  # faces under X8_BELOW px through the ×8 SR (when shipped or given)

    def __post_init__(self) -> None:
        if self.sr not in SR_MODES:
            raise SrferError(f"--sr {self.sr!r}: use one of {', '.join(SR_MODES)}")
        check_runtime(self.runtime)


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
    sr_x8: Path | None = None


@dataclass
class FaceResult:
    """One face's answer; `to_json` is the documented --json schema."""

    image: Path
    index: int
    box: tuple[float, float, float, float]
    face_px: int
    detector_score: float | None
    sr: bool
    sr_scale: int | None  # the SR that made the expression head's face: 4, 8, or None (bicubic)
    expression: str
    expression_model: str  # weights role that answered: "fer", or "fer-upscale" for tiny faces
    confidence: float
    probabilities: dict[str, float]
    identity: str | None = None
    # how the embedder's face was framed: "landmarks" (aligned by MTCNN's five points),
    # "fallback" (no landmarks: a centred crop's mean ones), "centre-crop" (srfer's own embedders)
    alignment: str | None = None
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
            "sr_scale": self.sr_scale,
            "expression": self.expression, "expression_model": self.expression_model,
            "confidence": round(self.confidence, 4),
            "probabilities": {k: round(v, 4) for k, v in self.probabilities.items()},
            "identity": self.identity, "nearest": self.nearest, "distance": _round(self.distance),
            "threshold": _round(self.threshold), "alignment": self.alignment,
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

        self.options, self.device = options, resolve_device(device)
        self.build_args = (device, weights, gallery)  # worker processes build theirs the same way
        self._taken_names: set[str] = set()  # --save-dir stems already used (a/x.png vs b/x.png)
        self.timings: dict[str, float] = dict.fromkeys(("load", "detect", "sr", "fer", "embed"), 0.0)
        self._timings_lock = threading.Lock()
        self.gallery = Gallery(gallery) if gallery is not None else None  # fail fast: before loading models
        weights = weights or PredictWeights()
        runtime = options.runtime
        self.classifier = load_classifier(weights.fer, self.device, runtime=runtime)
        self.emotions = class_names(self.classifier.config.num_classes)  # FER+ models add contempt
        self.generator = (
            None if options.sr == "never" else load_generator(weights.sr, self.device, runtime=runtime)
        )
        if self.generator is not None and self.generator.config.channels != 3:
            raise SrferError(f"{self.generator.source}: predict needs an RGB SR model (the CelebA ×4 one)")
        self.embedder = None
        self.embedder_template = None  # the face template an aligning embedder expects
        if self.gallery is not None or options.embeddings:
            self.embedder = load_embedder(weights.embed, self.device, runtime)
            self.embedder_template = embedder_template(self.embedder)
            self.embedder_id = model_id(self.embedder)
            self.tau = (
                options.threshold if options.threshold is not None else embedder_threshold(self.embedder)
            )
            if self.gallery is not None:
                self.gallery.check_model(self.embedder_id)
                if not self.gallery.identities():
                    raise SrferError(f"{gallery}: the gallery is empty (srfer enroll adds people)")
        self.identity_generator = self._identity_sr(weights.identity_sr)
        self.x8_generator = self._x8_sr(weights.sr_x8)
        self.tiny_expression = self._tiny_expression(weights)
        self.detector = (
            FaceDetector(self.device, options.min_face, options.det_threshold, options.margin)
            if options.detect else None
        )  # fmt: skip

    def _identity_sr(self, weights: Path | None) -> Generator | None:
        """The SR whose faces the embedder sees: the identity-aware one (`sr-identity`) when
        given, or when shipped and made for this embedder (`identity_sr_fits`). Else None: the
        PSNR SR's faces serve both heads."""
        if self.embedder is None or self.generator is None:
            return None
        path = optional_weights("sr-identity", weights)
        if path is None:
            return None
        generator = load_generator(path, self.device, role="sr-identity", runtime=self.options.runtime)
        if weights is None and not identity_sr_fits(generator.meta, self.embedder_id, self.embedder_template):
            return None
        if generator.config.to_dict() != self.generator.config.to_dict():
            raise SrferError(f"{generator.source}: the identity-aware SR must match the SR's architecture")
        return generator

    def _x8_sr(self, weights: Path | None) -> Generator | None:
        """The ×8 SR for the smallest faces (`X8_BELOW`), when SR is on and it is shipped or given."""
        if not self.options.x8 or self.generator is None:
            return None
        path = optional_weights("sr-x8", weights)
        if path is None:
            return None
        generator = load_generator(path, self.device, role="sr-x8", runtime=self.options.runtime)
        if generator.config.channels != 3 or WORK_SIZE % generator.config.scale:
            raise SrferError(
                f"{generator.source}: the ×8 SR must be an RGB model whose scale divides {WORK_SIZE}"
            )
        return generator

    def _sr_groups(self, idx: list[int], faces: list, head: str, generator: Generator) -> list[tuple]:
        """(generator, face indices) for the faces in `idx`: `generator`, and the ×8 for the
        faces under `X8_BELOW[head]` (not for the embedder when the identity-aware SR serves
        it: it measured better at every size); empty groups left out."""
        below = 0 if head == "identity" and self.identity_generator is not None else X8_BELOW[head]
        small = [i for i in idx if self.x8_generator is not None and faces[i].size_px < below]
        groups = [(generator, [i for i in idx if i not in small]), (self.x8_generator, small)]
        return [(g, chosen) for g, chosen in groups if chosen]

    def _tiny_expression(self, weights: PredictWeights) -> TinyFaceExpression | None:
        """The tiny-face expression path when SR is on and its two models are shipped or given."""
        if not self.options.tiny_expression or self.options.sr == "never":
            return None
        classifier_path = optional_weights("fer-upscale", weights.fer_upscale)
        sr_path = optional_weights("sr-fer", weights.sr_fer)
        if classifier_path is None or sr_path is None:
            return None
        runtime = self.options.runtime
        classifier = load_classifier(classifier_path, self.device, role="fer-upscale", runtime=runtime)
        restore = make_restorer("sr", self.device, sr_path, role="sr-fer", runtime=runtime)
        return TinyFaceExpression(classifier, restore)

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
        with self._timings_lock:  # several photos may be in flight (srfer.accel.workers.in_flight)
            self.timings[stage] += time.perf_counter() - start

    def run(
        self, paths: list[Path], save_dir: Path | None = None, progress=None, on_image=None,
        stems: list[str] | None = None,
    ) -> PredictReport:  # fmt: skip
        """Every image in `paths`; a bad file lands in `failed` and the rest still run.
        `on_image(ImageResult)` is called as each image is done (streaming output). `stems`:
        the --save-dir file stems, one per path (default: each path's stem, clashes renamed)."""
        report = PredictReport()
        if save_dir is not None:  # an unwritable --save-dir fails before the first image
            make_folder(save_dir)
            stems = stems or self.output_stems(paths, save_dir)
        step = max(1, self.options.batch_size)
        for start in range(0, len(paths), step):
            chunk = slice(start, start + step)
            for result in self._run_batch(paths[chunk], report, save_dir, stems[chunk] if stems else None):
                report.images.append(result)
                if on_image is not None:
                    on_image(result)
            if progress is not None:
                progress(len(paths[chunk]))
        return report

    def output_stems(self, paths: list[Path], save_dir: Path) -> list[str]:
        """Each image's --save-dir stem: its own, or renamed where two inputs share one (a/x.png, b/x.png)."""
        return [unique_output(save_dir, path.stem, self._taken_names).stem for path in paths]

    def _run_batch(
        self, paths: list[Path], report: PredictReport, save_dir: Path | None, stems: list[str] | None
    ) -> list[ImageResult]:
        loaded = []
        with self._timed("load"):
            for path, stem in zip(paths, stems or [None] * len(paths), strict=True):
                try:
                    loaded.append((path, stem, load_image(path, "RGB")))
                except SrferError as exc:
                    report.failed.append((path, str(exc)))
        if not loaded:
            return []
        images = [img for _, _, img in loaded]
        with self._timed("detect"):
            found = self.detector.detect(images) if self.detector else [[whole_image_face(i)] for i in images]
        results = []
        for (path, stem, img), faces in zip(loaded, found, strict=True):
            try:
                result = ImageResult(path, img.size, self._recognise(path, img, faces))
            except SrferError as exc:
                report.failed.append((path, str(exc)))
                continue
            if save_dir is not None:
                result.outputs = save_annotations(img, result, save_dir, stem)
            for face in result.faces:  # pixels are only needed for the strips: free them
                face.crop01 = face.face01 = None
            results.append(result)
        return results

    @torch.no_grad()
    def _recognise(self, path: Path, img, faces: list) -> list[FaceResult]:
        if not faces:
            return []
        crops = [pil_to_tensor(cut_face(img, f)) for f in faces]
        for crop in crops:  # the admission rule every reader of faces applies
            admit_face(path, crop.shape[-1], crop.shape[-2])
        use_sr = [self._wants_sr(f.size_px) for f in faces]
        work = torch.empty(len(crops), 3, WORK_SIZE, WORK_SIZE)
        for i in (i for i, s in enumerate(use_sr) if not s):
            work[i] = bicubic_resize(crops[i], WORK_SIZE)
        idx = [i for i, s in enumerate(use_sr) if s]
        scales: list[int | None] = [None] * len(faces)
        with self._timed("sr"):
            for generator, chosen in self._sr_groups(idx, faces, "expression", self.generator):
                own_pixels = generator is self.x8_generator  # as the sweeps measured it
                work[chosen] = _super_resolve_crops(generator, [crops[i] for i in chosen], own_pixels)
                for i in chosen:
                    scales[i] = generator.config.scale
        tiny = [i for i, f in enumerate(faces) if self.tiny_expression and f.size_px <= TINY_FACE_PX]
        others = [i for i in range(len(faces)) if i not in tiny]
        with self._timed("fer"):  # each face through one classifier: the tiny path's or the HR one
            probs = torch.empty(len(faces), len(self.emotions))
            if others:
                probs[others] = self._expressions(work[others])
            if tiny:
                probs[tiny] = project_probs(
                    self.tiny_expression([crops[i] for i in tiny]), len(self.emotions)
                )
        out = []
        for i, face in enumerate(faces):
            top = int(probs[i].argmax())
            out.append(FaceResult(
                image=path, index=i, box=tuple(float(v) for v in face.box), face_px=face.size_px,
                detector_score=face.score, sr=use_sr[i], sr_scale=scales[i], expression=self.emotions[top],
                expression_model="fer-upscale" if i in tiny else "fer",
                confidence=float(probs[i, top]),
                probabilities={e: float(p) for e, p in zip(self.emotions, probs[i].tolist(), strict=True)},
                crop01=crops[i], face01=work[i],
            ))  # fmt: skip
        if self.embedder is not None:
            identity_faces = self._identity_faces(img, faces, crops, work, use_sr)  # times its own SR
            with self._timed("embed"):
                self._identities(identity_faces, out, faces)
        return out

    def _identity_faces(
        self, img, faces: list, crops: list[torch.Tensor], work: torch.Tensor, use_sr: list[bool]
    ) -> torch.Tensor:
        """The faces the embedder sees. An aligning embedder (its input contract names a
        template): each face warped by its landmarks (or the centred-crop fallback) onto the
        template, at the embedder's crop size, or at the SR's input size and super-resolved
        (the identity-aware SR when there is one, else the ×8 under `X8_BELOW["identity"]`).
        Otherwise the square crops of `work`, small ones re-super-resolved by the
        identity-aware SR."""
        generator = self.identity_generator or self.generator
        idx = [i for i, s in enumerate(use_sr) if s]
        if self.embedder_template is None:
            if not idx or self.identity_generator is None:
                return work
            out = work.clone()  # (the ×8 never serves beside an identity-aware SR: `_sr_groups`)
            with self._timed("sr"):
                out[idx] = _super_resolve_crops(self.identity_generator, [crops[i] for i in idx])
            return out
        marks = [f.landmarks if f.landmarks is not None else centred_landmarks(f.crop) for f in faces]
        size = embedder_crop_size(self.embedder)
        with self._timed("embed"):  # the warps count as the embedder's work
            chips = [align_face(img, m, size, self.embedder_template) for m in marks]
        for sr_net, chosen in self._sr_groups(idx, faces, "identity", generator):
            lr_size = WORK_SIZE // sr_net.config.scale
            with self._timed("embed"):
                lr = [align_face(img, marks[i], lr_size, self.embedder_template) for i in chosen]
            with self._timed("sr"):
                restored = bicubic_resize(super_resolve(sr_net, torch.stack(lr)).cpu(), size)
            for k, i in enumerate(chosen):
                chips[i] = restored[k]
        return torch.stack(chips)

    def _wants_sr(self, face_px: int) -> bool:
        mode = self.options.sr
        return mode == "always" or (mode == "auto" and face_px < SR_AUTO_BELOW)

    def _expressions(self, faces01: torch.Tensor) -> torch.Tensor:
        size = self.classifier.config.input_size
        x = to_gray(faces01) if self.classifier.config.in_channels == 1 else faces01
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
        return self.classifier(x.to(self.device)).float().softmax(1).cpu()

    def _identities(self, faces01: torch.Tensor, results: list[FaceResult], faces: list) -> None:
        embeddings = self.embedder(faces01.to(self.device)).float().cpu()
        matches = self.gallery.identify(embeddings, self.embedder_id, self.tau) if self.gallery else None
        for i, result in enumerate(results):
            result.alignment = (
                "centre-crop" if self.embedder_template is None
                else "landmarks" if faces[i].landmarks is not None else "fallback"
            )  # fmt: skip
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


def _super_resolve_crops(
    generator: Generator, crops01: list[torch.Tensor], own_pixels: bool = False
) -> torch.Tensor:
    """Square face crops of any size → the generator's input size (bicubic) → WORK_SIZE; with
    `own_pixels` each crop goes in as it is and its output is resized to WORK_SIZE (one at a
    time: the sizes differ; the faces this serves are few and small)."""
    if own_pixels:
        return torch.cat(
            [bicubic_resize(super_resolve(generator, c[None]).cpu(), WORK_SIZE) for c in crops01]
        )
    lr_size = WORK_SIZE // generator.config.scale
    return super_resolve(generator, torch.stack([bicubic_resize(c, lr_size) for c in crops01])).cpu()


def identity_sr_fits(sr_meta: dict, embedder_id: str, embedder_template) -> bool:
    """Whether a shipped identity-aware SR serves this embedder by default: its file records
    the recogniser its identity loss went through (`identity_embedder.sha256`, a gallery's
    model id); files from before that record were made through srfer's own centre-crop
    embedder, so they serve centre-crop embedders only."""
    made_for = sr_meta.get("identity_embedder", {}).get("sha256")
    return made_for == embedder_id if made_for else embedder_template is None


class TinyFaceExpression:
    """Expression of a face of at most TINY_FACE_PX: its gray crop at its own pixels →
    the FER-domain SR (×4) → the classifier's input size → the classifier trained on such
    super-resolved faces. This is the sweep's third column, applied to one face at a time."""

    def __init__(self, classifier: nn.Module, restore) -> None:
        self.classifier, self.restore = classifier, restore
        self.device = model_device(classifier)

    @torch.no_grad()
    def __call__(self, crops01: list[torch.Tensor]) -> torch.Tensor:
        size = self.classifier.config.input_size
        restored = []
        for crop in crops01:  # square crops of differing sizes; tiny faces are few
            lr = quantize_8bit(to_gray(crop[None]))
            restored.append(bicubic_resize(self.restore(lr.to(self.device)), size))
        return self.classifier(torch.cat(restored)).float().softmax(1).cpu()

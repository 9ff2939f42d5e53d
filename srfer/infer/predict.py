"""`srfer predict`, the main job: detect faces → plan each face's route (`srfer.infer.routing`)
→ run the plan: restore the faces each head sees, expression (and embedding) → identity from a
gallery. Results are plain dataclasses (`srfer.infer.results`)."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from srfer.core.errors import ServiceUnavailable, SrferError
from srfer.core.imageio import (
    ImageSource,
    admit_face,
    load_image,
    make_folder,
    pil_to_tensor,
    source_label,
    unique_output,
)
from srfer.core.runtime import resolve_device
from srfer.core.weights import Weights
from srfer.data.degradations import bicubic_resize
from srfer.data.fer import class_names, project_probs
from srfer.faces.align import align_face, centred_landmarks
from srfer.faces.annotate import save_annotations
from srfer.faces.detect import Face, FaceDetector, cut_face, whole_image_face
from srfer.faces.galleries import open_gallery
from srfer.faces.gallery import Gallery
from srfer.faces.quality import detail
from srfer.infer.heads import TinyFaceExpression, embed_by_route, expression_probs, restore_by_route
from srfer.infer.load import (
    LoadedModel,
    embedder_threshold,
    load_classifier,
    load_embedder,
    load_feature_sr,
    load_generator,
    made_for,
    optional_file,
)
from srfer.infer.options import PredictOptions, PredictWeights
from srfer.infer.results import FaceResult, ImageResult, PredictReport
from srfer.infer.routing import ROUTING, Available, FaceRoute, Routing
from srfer.infer.run import make_restorer, super_resolve

STAGES = ("load", "detect", "sr", "fer", "embed")  # where `Predictor.timings` adds the wall time


class Predictor:
    """The main job: faces in photos → expression (and identity), super-resolving small faces.

    Models load once; `run` takes any number of images, `batch_size` at a time. `routing`
    decides each face's route (default: `ROUTING`)."""

    def __init__(
        self, options: PredictOptions, device: str = "auto", weights: PredictWeights | None = None,
        gallery: str | Path | Gallery | None = None, routing: Routing = ROUTING,
    ) -> None:  # fmt: skip
        self.options, self.device, self.routing = options, resolve_device(device), routing
        self.build_args = (device, weights, gallery, routing)  # worker processes build theirs the same way
        self._taken_names: set[str] = set()  # --save-dir stems already used (a/x.png vs b/x.png)
        self.timings: dict[str, float] = dict.fromkeys(STAGES, 0.0)
        self._timings_lock = threading.Lock()
        # fail fast, before loading models: a gallery named by path or URL is opened now (and
        # checked once the embedder is known); an open one is the caller's (a server's), used as it is
        self.gallery = open_gallery(gallery) if isinstance(gallery, str | Path) else gallery
        weights = weights or PredictWeights()
        runtime = options.runtime
        self.classifier = load_classifier(weights.fer_weights, self.device, runtime=runtime)
        self.emotions = class_names(self.classifier.config.num_classes)  # FER+ models add contempt
        self.restorers: dict[Weights, LoadedModel] = {}
        if options.sr != "never":
            self.restorers[Weights.SR] = self._sr(weights.sr_weights)
        self.embedder: LoadedModel | None = None
        if self.gallery is not None or options.embeddings:
            self._load_embedder(weights.embed_weights, gallery)
        self._add_identity_sr(weights.identity_sr_weights)
        self._add_x8_sr(weights.sr_x8_weights)
        self.feature_sr = self._feature_sr(weights)
        self.tiny_expression = self._tiny_expression(weights)
        self.available = Available(
            x8=Weights.SR_X8 in self.restorers, tiny_expression=self.tiny_expression is not None,
            identity_sr=Weights.SR_IDENTITY in self.restorers,
            aligned_embedder=self.embedder is not None and self.embedder.template is not None,
            feature_sr=self.feature_sr is not None,
        )  # fmt: skip
        aligns = self.available.aligned_embedder  # only an aligning embedder uses a thumbnail's landmarks
        self.detector = (
            FaceDetector(self.device, options.min_face, options.det_threshold, options.margin, aligns)
            if options.detect else None
        )  # fmt: skip

    # ------------------------------------------------------------------------------ loading
    def _sr(self, path: Path | None) -> LoadedModel:
        generator = load_generator(path, self.device, runtime=self.options.runtime)
        if generator.config.channels != 3:
            raise SrferError(f"{generator.source}: predict needs an RGB SR model (the CelebA ×4 one)")
        return generator

    def _load_embedder(self, path: Path | None, gallery: str | Path | Gallery | None) -> None:
        self.embedder = load_embedder(path, self.device, self.options.runtime)
        self.embedder_id = self.embedder.model_id
        given = self.options.threshold
        self.tau = given if given is not None else embedder_threshold(self.embedder)
        if isinstance(gallery, str | Path) and self.gallery is not None:
            self.gallery.check_model(self.embedder_id)
            if not self.gallery.identities():
                raise SrferError(f"{self.gallery.location}: the gallery is empty (srfer enroll adds people)")

    def _add_identity_sr(self, path: Path | None) -> None:
        """The SR whose faces the embedder sees: the identity-aware one when given, or when
        shipped and made for this embedder (`identity_sr_fits`). Else the PSNR SR's faces serve
        both heads."""
        if self.embedder is None or Weights.SR not in self.restorers:
            return
        found = Weights.SR_IDENTITY.optional(path)
        if found is None:
            return
        generator = load_generator(found, self.device, Weights.SR_IDENTITY, self.options.runtime)
        if path is None and not identity_sr_fits(generator.meta, self.embedder_id, self.embedder.template):
            return
        if generator.config.to_dict() != self.restorers[Weights.SR].config.to_dict():
            raise SrferError(f"{generator.source}: the identity-aware SR must match the SR's architecture")
        self.restorers[Weights.SR_IDENTITY] = generator

    def _add_x8_sr(self, path: Path | None) -> None:
        """The ×8 SR for the smallest faces, when SR is on and it is shipped or given."""
        if not self.options.x8 or Weights.SR not in self.restorers:
            return
        found = Weights.SR_X8.optional(path)
        if found is None:
            return
        generator = load_generator(found, self.device, Weights.SR_X8, self.options.runtime)
        work = self.routing.work_size
        if generator.config.channels != 3 or work % generator.config.scale:
            raise SrferError(f"{generator.source}: the ×8 SR must be an RGB model whose scale divides {work}")
        self.restorers[Weights.SR_X8] = generator

    def _feature_sr(self, weights: PredictWeights) -> LoadedModel | None:
        """The embedder with its feature-level SR for the faces `routing` sends there, when SR is
        on and the embedder aligns: the given file (refused when made for another embedder), or
        the shipped one when it was made for this embedder. The generator sits inside the torch
        trunk, so with `--runtime onnx` a torch copy of the embedder carries it."""
        embedder = self.embedder
        if embedder is None or embedder.template is None or Weights.SR not in self.restorers:
            return None
        given = weights.feature_sr_weights
        found, _ = optional_file(Weights.FEATURE_SR, given, "--feature-sr-weights")
        if found is None:
            return None
        if self.options.runtime != "torch":
            embedder = load_embedder(weights.embed_weights, self.device)
        return load_feature_sr(embedder, found, self.device, explicit=given is not None)

    def _tiny_expression(self, weights: PredictWeights) -> TinyFaceExpression | None:
        """The tiny-face expression path when SR is on and its two models are shipped or given."""
        if not self.options.tiny_expression or self.options.sr == "never":
            return None
        classifier_path = Weights.FER_UPSCALE.optional(weights.upscale_fer_weights)
        sr_path = Weights.SR_FER.optional(weights.fer_sr_weights)
        if classifier_path is None or sr_path is None:
            return None
        runtime = self.options.runtime
        # the shipped file by its role (not its path), so it answers as its entry says (flip TTA)
        classifier = load_classifier(weights.upscale_fer_weights, self.device, Weights.FER_UPSCALE, runtime)
        restore = make_restorer("sr", self.device, sr_path, Weights.SR_FER, runtime)
        return TinyFaceExpression(classifier, restore, self.routing.tiny_input_up_to)

    def close(self) -> None:
        """Closes the gallery it opened (one it was given stays open)."""
        if self.gallery is not None and isinstance(self.build_args[2], str | Path):
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

    # ---------------------------------------------------------------------------------- run
    def run(
        self, paths: list[ImageSource], save_dir: Path | None = None, progress=None, on_image=None,
        stems: list[str] | None = None, keep_pixels: bool = False,
    ) -> PredictReport:  # fmt: skip
        """Every image in `paths` (files, or images in memory: `srfer.core.imageio.ImageSource`);
        a bad one lands in `failed` and the rest still run.
        `on_image(ImageResult)` is called as each image is done (streaming output). `stems`:
        the --save-dir file stems, one per path (default: each path's stem, clashes renamed).
        `keep_pixels`: each answer keeps its face's pixels (`crop01`, `face01`) and its image
        (`ImageResult.image`), for pictures drawn afterwards."""
        report = PredictReport()
        if save_dir is not None:  # an unwritable --save-dir fails before the first image
            make_folder(save_dir)
            stems = stems or self.output_stems(paths, save_dir)
        step = max(1, self.options.batch_size)
        for start in range(0, len(paths), step):
            chunk = slice(start, start + step)
            batch = self._run_batch(
                paths[chunk], report, save_dir, stems[chunk] if stems else None, keep_pixels
            )
            for result in batch:
                report.images.append(result)
                if on_image is not None:
                    on_image(result)
            if progress is not None:
                progress(len(paths[chunk]))
        return report

    def output_stems(self, paths: list[ImageSource], save_dir: Path) -> list[str]:
        """Each image's --save-dir stem: its own, or renamed where two inputs share one (a/x.png, b/x.png)."""
        stems = [Path(p).stem if isinstance(p, str | Path) else f"image{i}" for i, p in enumerate(paths)]
        return [unique_output(save_dir, stem, self._taken_names).stem for stem in stems]

    def _run_batch(
        self, paths: list[ImageSource], report: PredictReport, save_dir: Path | None, stems: list[str] | None,
        keep_pixels: bool = False,
    ) -> list[ImageResult]:  # fmt: skip
        loaded = []
        with self._timed("load"):
            for source, stem in zip(paths, stems or [None] * len(paths), strict=True):
                label = Path(source) if isinstance(source, str | Path) else source_label(source)
                try:
                    loaded.append((label, stem, load_image(source, "RGB")))
                except SrferError as exc:
                    report.failed.append((label, str(exc)))
        if not loaded:
            return []
        images = [img for _, _, img in loaded]
        with self._timed("detect"):
            found = self.detector.detect(images) if self.detector else [[whole_image_face(i)] for i in images]
        results = []
        for (path, stem, img), faces in zip(loaded, found, strict=True):
            try:
                result = ImageResult(path, img.size, self._recognise(path, img, faces))
            except ServiceUnavailable:  # not this image's fault: the batch stops
                raise
            except SrferError as exc:
                report.failed.append((path, str(exc)))
                continue
            if save_dir is not None:
                result.outputs = save_annotations(img, result, save_dir, stem)
            if keep_pixels:
                result.image = img
            else:
                for face in result.faces:  # pixels are only needed for the strips: free them
                    face.crop01 = face.face01 = None
            results.append(result)
        return results

    def plan(self, faces: list[Face], crops: list[torch.Tensor]) -> list[FaceRoute]:
        """Each face's route, decided by `routing` from its size, what is loaded and, where the
        route depends on it, the detail of its crop at its own pixels."""
        mode, have, routing = self.options.sr, self.available, self.routing

        def measured(face: Face, crop: torch.Tensor) -> float | None:
            return detail(crop) if routing.needs_detail(face.size_px, mode, have) else None

        pairs = zip(faces, crops, strict=True)
        return [routing.route(face.size_px, mode, have, measured(face, crop)) for face, crop in pairs]

    @torch.no_grad()
    def _recognise(self, path: Path | str, img, faces: list[Face]) -> list[FaceResult]:
        if not faces:
            return []
        crops = [pil_to_tensor(cut_face(img, f)) for f in faces]
        for crop in crops:  # the admission rule every reader of faces applies
            admit_face(path, crop.shape[-1], crop.shape[-2])
        routes = self.plan(faces, crops)
        with self._timed("sr"):
            work = self._restored(crops, [r.expression_sr for r in routes])
        with self._timed("fer"):
            probs = self._expressions(crops, work, routes)
        out = []
        for i, (face, route) in enumerate(zip(faces, routes, strict=True)):
            top = int(probs[i].argmax())
            scale = self.restorers[route.expression_sr].config.scale if route.expression_sr else None
            out.append(FaceResult(
                image=path, index=i, box=tuple(float(v) for v in face.box), face_px=face.size_px,
                detector_score=face.score, sr=route.sr, sr_scale=scale, expression=self.emotions[top],
                expression_model=route.expression_model, confidence=float(probs[i, top]),
                probabilities={e: float(p) for e, p in zip(self.emotions, probs[i].tolist(), strict=True)},
                crop01=crops[i], face01=work[i],
            ))  # fmt: skip
        if self.embedder is not None:
            chips = self._identity_faces(img, faces, crops, work, routes)  # times its own SR
            with self._timed("embed"):
                self._identities(chips, out, faces, routes)
        return out

    def _restored(self, crops: list[torch.Tensor], restorers: list[Weights | None]) -> torch.Tensor:
        """Each crop at the working size, as `restore_by_route` restores it."""
        routing = self.routing
        return restore_by_route(crops, restorers, self.restorers, routing.work_size, routing.own_pixels)

    def _expressions(
        self, crops: list[torch.Tensor], work: torch.Tensor, routes: list[FaceRoute]
    ) -> torch.Tensor:
        """Each face through the classifiers its route names (the HR one on the restored face, the
        tiny-face path's on the crop), their probabilities averaged where it names both."""
        hr = [i for i, r in enumerate(routes) if Weights.FER in r.expression_models]
        tiny = [i for i, r in enumerate(routes) if Weights.FER_UPSCALE in r.expression_models]
        probs = torch.zeros(len(routes), len(self.emotions))
        if hr:
            probs[hr] += expression_probs(self.classifier, work[hr])
        if tiny:
            assert self.tiny_expression is not None  # the route names it only when it is loaded
            probs[tiny] += project_probs(self.tiny_expression([crops[i] for i in tiny]), len(self.emotions))
        return probs / torch.tensor([len(r.expression_models) for r in routes]).unsqueeze(1)

    def _identity_faces(
        self, img, faces: list[Face], crops: list[torch.Tensor], work: torch.Tensor, routes: list[FaceRoute]
    ) -> torch.Tensor:
        """The faces the embedder sees. An aligning embedder (its input contract names a
        template): each face warped by its landmarks (or the centred-crop fallback) onto the
        template at the embedder's crop size (so too the feature SR's faces: one warp from the
        photo keeps more of a small face than a warp at its own pixels and a resize after;
        docs/routing.md), or, where its route names a pixel SR, at that SR's input size and
        super-resolved. A centre-crop embedder: the expression head's faces, re-restored where
        the identity route names another SR."""
        assert self.embedder is not None
        template = self.embedder.template
        if template is None:
            differ = [i for i, r in enumerate(routes) if r.identity_sr != r.expression_sr]
            if not differ:
                return work
            out = work.clone()
            with self._timed("sr"):
                out[differ] = self._restored(
                    [crops[i] for i in differ], [routes[i].identity_sr for i in differ]
                )
            return out
        marks = [f.landmarks if f.landmarks is not None else centred_landmarks(f.crop) for f in faces]
        size = self.embedder.contract["crop_size"]
        with self._timed("embed"):  # the warps count as the embedder's work
            chips = [align_face(img, m, size, template) for m in marks]
        for restorer in dict.fromkeys(r.identity_sr for r in routes if r.identity_sr in self.restorers):
            chosen = [i for i, r in enumerate(routes) if r.identity_sr is restorer]
            generator = self.restorers[restorer]
            lr_size = self.routing.work_size // generator.config.scale
            with self._timed("embed"):
                lr = [align_face(img, marks[i], lr_size, template) for i in chosen]
            with self._timed("sr"):
                restored = bicubic_resize(super_resolve(generator, torch.stack(lr)).cpu(), size)
            for k, i in enumerate(chosen):
                chips[i] = restored[k]
        return torch.stack(chips)

    def _identities(
        self, faces01: torch.Tensor, results: list[FaceResult], faces: list[Face], routes: list[FaceRoute]
    ) -> None:
        assert self.embedder is not None
        roles = [r.identity_sr for r in routes]
        embeddings = embed_by_route(self.embedder, self.feature_sr, faces01, roles, self.device)
        # a gallery with nobody in it yet (a server's, before the first enrolment) names no one
        known = self.gallery is not None and bool(self.gallery.matrix()[0])
        matches = self.gallery.identify(embeddings, self.embedder_id, self.tau) if known else None
        aligned = self.embedder.template is not None
        for i, result in enumerate(results):
            result.alignment = (
                "centre-crop"
                if not aligned
                else "landmarks"
                if faces[i].landmarks is not None
                else "fallback"
            )
            result.identity_sr = routes[i].identity_sr.value if routes[i].identity_sr else None
            if self.options.embeddings:
                result.embedding = embeddings[i].tolist()
            if matches is not None:
                m = matches[i]
                result.identity, result.nearest, result.distance, result.threshold = (
                    m.name, m.nearest, m.distance, m.threshold
                )  # fmt: skip


def identity_sr_fits(sr_meta: Mapping[str, Any], embedder_id: str, embedder_template) -> bool:
    """Whether a shipped identity-aware SR serves this embedder by default: its file records
    the recogniser its identity loss went through (`identity_embedder.sha256`, a gallery's
    model id); files without that record were made through srfer's own centre-crop embedder,
    so they serve centre-crop embedders only."""
    trained_with = made_for(sr_meta)
    return trained_with == embedder_id if trained_with else embedder_template is None

"""srfer's Python API: `import srfer`, then `srfer.analyze(photo)`.

An image is a path, a `PIL.Image`, an RGB uint8 numpy array (H, W, 3) or a file's bytes; every function also
takes a list of them and then answers one result per image. Results are dataclasses whose
`to_dict()` is the CLI's `--json`. Networks load lazily, once per process and per set of
options, and are shared safely between threads. A bad image raises `srfer.SrferError` with one
line that says why.

>>> import srfer
>>> faces = srfer.analyze("examples/astronaut.png")
>>> [(f.expression, f.face_px, f.sr) for f in faces]
[('happy', 110, False)]
>>> result = srfer.verify("examples/astronaut.png", "examples/faces/astronaut_face_32.png")
>>> result.same, round(result.distance, 3), [f.face_px for f in result.faces]
(True, 0.132, [110, 32])
>>> srfer.upscale("examples/faces/astronaut_face_32.png").size
(128, 128)
>>> srfer.enhance("examples/astronaut_small.png").image.size
(492, 492)
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
from PIL import Image

from srfer.core.errors import SrferError
from srfer.core.imageio import ImageSource, load_image, pil_to_tensor, source_label, tensor_to_pil
from srfer.core.runtime import resolve_device
from srfer.core.weights import SR_MODELS
from srfer.faces.galleries import open_gallery
from srfer.faces.gallery import Match
from srfer.infer.enhance import Enhancement, Enhancer
from srfer.infer.heads import verify_logits
from srfer.infer.identify import embed_face_files
from srfer.infer.load import LoadedModel, embedder_threshold, load_embedder, load_generator, load_verify_head
from srfer.infer.options import PredictOptions, PredictWeights
from srfer.infer.predict import Predictor
from srfer.infer.results import FaceResult
from srfer.infer.run import super_resolve

Images = ImageSource | Sequence[ImageSource]
T = TypeVar("T")

__all__ = ["Embedding", "Face", "Gallery", "Match", "Verification", "analyze", "enhance", "represent",
           "upscale", "verify"]  # fmt: skip

Face = FaceResult  # one face's answer: `to_dict()` is `srfer predict --json`'s line


@dataclass
class Embedding:
    """One face's identity embedding (L2-normalised) and how its face was made."""

    image: str
    face: int
    box: tuple[float, float, float, float]
    face_px: int
    vector: list[float]
    alignment: str | None
    sr: bool

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "box": list(self.box)}


@dataclass
class Verification:
    """Whether two images show the same person, and what decided it: the learned verification
    head (`decided_by` "head": from both embeddings and both faces' sizes, for pairs with a small
    face; `probability` its sigmoid) or τ (`decided_by` "tau": the squared L2 `distance` of the
    embeddings against `threshold`, the embedder's or the one given). Each face as `analyze`
    answers it (its size, whether SR restored it, how it was aligned)."""

    same: bool
    distance: float
    threshold: float
    faces: tuple[Face, Face]
    decided_by: str = "tau"
    probability: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"same": self.same, "distance": self.distance, "threshold": self.threshold,
                "decided_by": self.decided_by, "probability": self.probability,
                "faces": [f.to_dict() for f in self.faces]}  # fmt: skip


# ------------------------------------------------------------------------- loaded once
_LOCK = threading.Lock()
_CACHE: dict[tuple, Any] = {}


def _once(key: tuple, build: Callable[[], T]) -> T:
    """`build()` once per process for `key` (models are shared by every later call and thread)."""
    with _LOCK:
        if key not in _CACHE:
            _CACHE[key] = build()
        return _CACHE[key]


def _predictor(options: PredictOptions, device: str, weights: PredictWeights | None, gallery) -> Predictor:
    """A predictor per set of options; a gallery is named by path or URL, or is an open `Gallery`."""
    store = gallery.store if isinstance(gallery, Gallery) else gallery
    which = store if store is None or isinstance(store, str | Path) else id(store)
    key = ("predict", repr(options), resolve_device(device), repr(weights), str(which) if which else None)
    return _once(key, lambda: Predictor(options, device, weights, store))


def _many(images: Images) -> tuple[list[ImageSource], bool]:
    """The images as a list, and whether one image (not a list) was given."""
    if isinstance(images, str | Path | bytes | Image.Image | np.ndarray):
        return [images], True
    if isinstance(images, Sequence):
        return list(images), False
    raise SrferError(f"{type(images).__name__}: give an image (a path, a PIL image, an RGB array) or a list")


def _answer(predictor: Predictor, images: list[ImageSource], keep_pixels: bool = False) -> list[list[Face]]:
    """`predictor` over the images, in order; the first bad image raises."""
    report = predictor.run(images, keep_pixels=keep_pixels)
    if report.failed:
        first = report.failed[0][1]
        more = f" (and {len(report.failed) - 1} more)" if len(report.failed) > 1 else ""
        raise SrferError(first + more)
    return [result.faces for result in report.images]


def _options(**given: Any) -> PredictOptions:
    try:
        return PredictOptions(**given)
    except TypeError as exc:
        raise SrferError(f"{exc}; the options are PredictOptions' fields") from None


# ------------------------------------------------------------------------------- the API
def analyze(
    images: Images, *, gallery: str | Path | Gallery | None = None, device: str = "auto",
    weights: PredictWeights | None = None, pictures: bool = False, **options: Any,
) -> list[Face] | list[list[Face]]:  # fmt: skip
    """Every face of an image: its box, size, whether SR restored it, its expression and
    probabilities, and with `gallery` (a file or `postgresql://` URL `srfer enroll` filled, or an
    open `Gallery`) its identity.
    `options`: `PredictOptions`' fields (`sr="never"`, `detect=False` for a face crop,
    `embeddings=True`, `runtime="onnx"`, …). `pictures`: each face keeps its pixels (`crop01`,
    the crop; `face01`, what the classifier saw) for `srfer.faces.annotate`'s pictures. One image
    → its faces; a list → faces per image."""
    many, single = _many(images)
    faces = _answer(_predictor(_options(**options), device, weights, gallery), many, pictures)
    return faces[0] if single else faces


def represent(
    images: Images, *, device: str = "auto", weights: PredictWeights | None = None, **options: Any
) -> list[Embedding] | list[list[Embedding]]:
    """Every face's identity embedding (as `analyze` frames and restores it). One image → its
    faces' embeddings; a list → per image."""
    many, single = _many(images)
    found = _answer(_predictor(_options(**{**options, "embeddings": True}), device, weights, None), many)
    out = [[_embedding(face) for face in faces] for faces in found]
    return out[0] if single else out


def _embedding(face: Face) -> Embedding:
    assert face.embedding is not None
    return Embedding(
        str(face.image), face.index, face.box, face.face_px, face.embedding, face.alignment, face.sr
    )


def verify(
    image_a: ImageSource, image_b: ImageSource, *, head: str = "auto", threshold: float | None = None,
    head_weights: Path | None = None, device: str = "auto", weights: PredictWeights | None = None,
    **options: Any,
) -> Verification:  # fmt: skip
    """Whether the largest faces of two images are the same person. `head`: auto (the learned
    verification head when one made for the embedder is shipped or given as `head_weights`, else
    τ), learned, or tau; a `threshold` given means τ decides, and so do two faces too large for
    SR (`Routing.head_decides`)."""
    predictor = _predictor(_options(**{**options, "embeddings": True}), device, weights, None)
    pair = []
    for image in (image_a, image_b):
        (faces,) = _answer(predictor, [image])
        if not faces:
            raise SrferError(f"{source_label(image)}: no face found")
        pair.append(faces[0])  # the detector answers the largest face first
    a, b = (torch.tensor(f.embedding)[None] for f in pair)
    distance = float((a - b).square().sum())
    tau = threshold if threshold is not None else predictor.tau
    scorer = _verify_head(predictor, head_weights, "tau" if threshold is not None else head)
    if scorer is None or not predictor.routing.head_decides(pair[0].face_px, pair[1].face_px):
        return Verification(distance <= tau, distance, tau, (pair[0], pair[1]))
    logit = float(verify_logits(scorer, a, b, *(torch.tensor([f.face_px]) for f in pair)))
    probability = float(torch.sigmoid(torch.tensor(logit)))
    return Verification(logit > 0, distance, tau, (pair[0], pair[1]), "head", probability)


def _verify_head(predictor: Predictor, given: Path | None, how: str) -> LoadedModel | None:
    """The verification head `how` asks for, for the predictor's embedder (loaded once)."""
    embedder = predictor.embedder
    assert embedder is not None
    key = ("verify-head", predictor.embedder_id, str(given), how, str(predictor.device))
    return _once(key, lambda: load_verify_head(embedder, predictor.device, given, how))


def upscale(
    faces: Images, model: str = "psnr", *, weights: Path | None = None, flip_tta: bool = False,
    device: str = "auto", runtime: str = "torch",
) -> Image.Image | list[Image.Image]:  # fmt: skip
    """A face crop super-resolved by a face SR (`model`: psnr, gan, identity or x8; or the file
    `weights`): ×4 (×8 with x8), as a PIL image. A list → a list."""
    if weights is None and model not in SR_MODELS:
        raise SrferError(f"model {model!r}: use one of {', '.join(SR_MODELS)}")
    many, single = _many(faces)
    role = SR_MODELS.get(model, SR_MODELS["psnr"])
    key = ("upscale", role, str(weights), resolve_device(device), runtime)
    generator: LoadedModel = _once(key, lambda: load_generator(role.resolve(weights), resolve_device(device),
                                                                role, runtime))  # fmt: skip
    mode = "L" if generator.config.channels == 1 else "RGB"
    out = []
    for face in many:
        x = pil_to_tensor(load_image(face, mode))[None]
        out.append(tensor_to_pil(super_resolve(generator, x, flip_tta=flip_tta)[0]))
    return out[0] if single else out


def enhance(
    photos: Images, scale: int = 4, *, model: str = "psnr", device: str = "auto", runtime: str = "torch",
) -> Enhancement | list[Enhancement]:  # fmt: skip
    """A photo upscaled ×`scale` (2 or 4) with every face super-resolved and pasted back
    (`Enhancement.image`, and its `faces`). A list → a list."""
    many, single = _many(photos)
    enhancer: Enhancer = _once(("enhance", scale, model, resolve_device(device), runtime),
                               lambda: Enhancer(scale, model, device, runtime))  # fmt: skip
    out = [enhancer.enhance(photo) for photo in many]
    return out[0] if single else out


class Gallery:
    """A gallery of enrolled people, for 1:N identification: a SQLite file, or PostgreSQL
    (`postgresql://user:password@host/database`), which many processes and machines share.

    >>> import srfer, tempfile, os
    >>> with srfer.Gallery(os.path.join(tempfile.mkdtemp(), "staff.sqlite")) as staff:
    ...     staff.enroll("astronaut", "examples/gallery/astronaut_128.png")
    ...     [m.name for m in staff.identify("examples/faces/astronaut_face_32.png")]
    ...     staff.list()
    1
    ['astronaut']
    {'astronaut': 1}

    `enroll` and `identify` take face crops (`srfer.analyze(photo, gallery=path)` names the
    faces of whole photos); faces are aligned as the embedder expects."""

    def __init__(self, path: str | Path, *, device: str = "auto", weights: Path | None = None) -> None:
        self.device = resolve_device(device)
        self.store = open_gallery(path, create=True)
        key = ("embed", str(weights), self.device)
        self.embedder: LoadedModel = _once(key, lambda: load_embedder(weights, self.device))

    def enroll(self, name: str, faces: Images) -> int:
        """Adds `name`'s face embeddings; returns how many. A bad image raises, nothing is added."""
        embeddings, labels = self._embed(faces)
        return self.store.add(name, embeddings, labels, self.embedder.model_id)

    def identify(self, faces: Images, threshold: float | None = None) -> list[Match]:
        """The nearest enrolled person of each face, or "unknown" beyond τ (the embedder's)."""
        embeddings, _ = self._embed(faces)
        tau = threshold if threshold is not None else embedder_threshold(self.embedder)
        return self.store.identify(embeddings, self.embedder.model_id, tau)

    def list(self) -> dict[str, int]:
        """Enrolled people and how many embeddings each has."""
        return dict(self.store.identities())

    def remove(self, name: str) -> int:
        """Removes a person (all their embeddings); returns how many."""
        return self.store.remove(name)

    def _embed(self, faces: Images) -> tuple[torch.Tensor, list[str]]:
        many, _ = _many(faces)
        embeddings, good, failed, _ = embed_face_files(many, self.embedder, self.device)
        if failed:
            raise SrferError(failed[0][1])
        return embeddings, [source_label(g) for g in good]

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Gallery:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

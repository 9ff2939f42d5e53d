"""Which network serves which face: the one routing policy of `predict`, by face size and by
how soft the face is.

A face's size is its detector box's longer side in the photo's own pixels; its softness, its
`detail` score (`srfer.faces.quality`) measured on the crop at its own pixels. Every value here
was chosen by measurement on validation data; docs/routing.md gives each one's measurements.
The CLI's help texts and the docs read these values; nothing else writes them. Imports no
torch, so the CLI can show them cheaply."""

from __future__ import annotations

from dataclasses import dataclass

from srfer.core.weights import Weights

SR_MODES = ("auto", "always", "never")


@dataclass(frozen=True)
class PerHead:
    """A size per head: the expression classifier's and the embedder's."""

    expression: int
    identity: int


@dataclass(frozen=True)
class Available:
    """What a predictor has loaded that the routes can use."""

    x8: bool = False  # the ×8 SR
    tiny_expression: bool = False  # the FER-domain SR + the classifier trained on its faces
    identity_sr: bool = False  # the identity-aware ×4 SR for the embedder's faces
    aligned_embedder: bool = True  # the embedder takes faces aligned onto a template
    feature_sr: bool = False  # the feature-level SR inside the embedder's trunk


@dataclass(frozen=True)
class FaceRoute:
    """One face's way through `predict`.

    `expression_sr`, `identity_sr`: the SR that restores the face each head sees (a `Weights`
    role), or None for a resize (`Weights.FEATURE_SR`: a resize, then restored inside the
    embedder's trunk); `expression_models`: the classifiers that answer, one or two (then the
    mean of their probabilities)."""

    sr: bool
    expression_sr: Weights | None
    expression_models: tuple[Weights, ...]
    identity_sr: Weights | None

    @property
    def expression_model(self) -> str:
        """The classifiers' roles as `--json` names them: "fer", "fer-upscale" or "fer+fer-upscale"."""
        return "+".join(w.value for w in self.expression_models)


@dataclass(frozen=True)
class Routing:
    """`predict`'s routing, by face size in px.

    - `work_size`: the face size the recognisers see (the CelebA SR's output, the embedder's crops).
    - `sr_below`: `--sr auto` super-resolves faces under this.
    - `x8_below`: per head, faces under this that get SR go through the ×8 model (the face at its own
      pixels → 128 px) instead of the ×4 (the face resized to 32 px → 128), per head; the
      identity-aware SR serves the embedder at every size where it is loaded.
    - `tiny_up_to`: faces up to this get their expression from the tiny-face path (the gray
      FER-domain ×4 at the face's own pixels + the classifier trained on such faces).
    - `soft_detail_below`: a face whose detail is under this is soft (blurred, compressed).
      The embedder sees soft faces bicubic-resized, not super-resolved: the SRs learnt on clean
      faces turn blur and JPEG blocks into features that are not the person's.
    - `soft_up_to`: soft faces up to this take the tiny-face expression path too (above
      `tiny_up_to`), because that path was trained on degraded faces and the HR classifier was not.
    - `both_up_to`: sharp faces above `tiny_up_to` up to this get the mean of both classifiers'
      probabilities (the HR one on the SR face, the tiny-face path's): a sharp-looking small face
      may still be noisy or compressed, where the HR classifier alone fails, and on clean faces
      the two err differently enough that the mean costs little or gains.
    - `tiny_input_up_to`: the tiny-face path's SR takes a face at its own pixels up to this size;
      larger faces (soft ones, and sharp ones beside the HR classifier) are resized down to it
      first: the path learnt on 12–16 px faces and answers larger ones better near that size.
    - `feature_sr_below`: an aligning embedder's faces under this that would get a pixel SR go
      through the feature-level SR where it is loaded instead (the face resized, its maps
      restored inside the trunk); soft faces stay without SR, as for the pixel SRs.
    - `head_below`: `verify` lets the learned verification head decide a pair with a face under
      this; τ decides larger pairs (it was fitted where their distances lie, the head's cut
      there is no better).
    - `own_pixels`: the SRs that take a square face crop at its own pixels (their output then
      resized to `work_size`); the others take it resized to their input size."""

    work_size: int = 128
    sr_below: int = 64
    x8_below: PerHead = PerHead(expression=29, identity=14)
    tiny_up_to: int = 22
    soft_up_to: int = 40
    soft_detail_below: float = 1.7
    both_up_to: int = 40
    tiny_input_up_to: int = 24
    feature_sr_below: int = 28
    head_below: int = 40
    own_pixels: frozenset[Weights] = frozenset({Weights.SR_X8})

    def wants_sr(self, face_px: int, mode: str) -> bool:
        return mode == "always" or (mode == "auto" and face_px < self.sr_below)

    def head_decides(self, px_a: int, px_b: int) -> bool:
        """Whether the learned verification head decides a pair (else τ)."""
        return min(px_a, px_b) < self.head_below

    def needs_detail(self, face_px: int, mode: str, have: Available) -> bool:
        """Whether this face's route depends on its detail score (else it need not be measured)."""
        if not self.wants_sr(face_px, mode):
            return False
        return have.aligned_embedder or (have.tiny_expression and self._softness_decides(face_px))

    def route(self, face_px: int, mode: str, have: Available, detail: float | None = None) -> FaceRoute:
        """The route of a face of `face_px` (and `detail`, where measured) under `--sr mode`
        with what is loaded."""
        sr = self.wants_sr(face_px, mode)
        soft = detail is not None and detail < self.soft_detail_below
        expression_sr = self._sr_for("expression", face_px, have) if sr else None
        if not sr or (soft and have.aligned_embedder):
            identity_sr = None
        elif have.feature_sr and face_px < self.feature_sr_below:
            identity_sr = Weights.FEATURE_SR
        elif have.identity_sr:
            identity_sr = Weights.SR_IDENTITY
        elif have.aligned_embedder:
            identity_sr = self._sr_for("identity", face_px, have)
        else:  # a centre-crop embedder sees the expression head's face
            identity_sr = expression_sr
        return FaceRoute(sr, expression_sr, self._classifiers(face_px, have, soft), identity_sr)

    def _classifiers(self, face_px: int, have: Available, soft: bool) -> tuple[Weights, ...]:
        if not have.tiny_expression:
            return (Weights.FER,)
        if face_px <= self.tiny_up_to or (soft and self._softness_decides(face_px)):
            return (Weights.FER_UPSCALE,)
        if face_px <= self.both_up_to:
            return (Weights.FER, Weights.FER_UPSCALE)
        return (Weights.FER,)

    def _softness_decides(self, face_px: int) -> bool:
        """Whether softness decides this size's expression route (smaller faces take the tiny path
        anyway, larger ones never)."""
        return self.tiny_up_to < face_px <= self.soft_up_to

    def _sr_for(self, head: str, face_px: int, have: Available) -> Weights:
        return Weights.SR_X8 if have.x8 and face_px < getattr(self.x8_below, head) else Weights.SR


ROUTING = Routing()

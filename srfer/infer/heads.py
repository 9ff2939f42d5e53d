"""The heads `predict` asks about a face: expression (the classifier, or the tiny-face path) and
the faces each head sees, restored by the SR its route names."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch
import torch.nn.functional as F

from srfer.core.weights import Weights
from srfer.data.degradations import bicubic_resize, quantize_8bit, to_gray
from srfer.faces.quality import detail
from srfer.infer.load import LoadedModel, Network, as_network, model_device
from srfer.infer.routing import ROUTING, Available, Routing
from srfer.infer.run import Restorer, RunContext, super_resolve


@torch.no_grad()
def expression_probs(classifier: LoadedModel, faces01: torch.Tensor) -> torch.Tensor:
    """RGB faces in [0, 1] → the classifier's probabilities (its input size and channels)."""
    contract = classifier.contract
    x = to_gray(faces01) if contract["channels"] == 1 else faces01
    size = contract["input_size"]
    x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return classifier(x.to(classifier.device)).float().softmax(1).cpu()


@torch.no_grad()
def verify_logits(
    head: Network, a: torch.Tensor, b: torch.Tensor, px_a: torch.Tensor, px_b: torch.Tensor
) -> torch.Tensor:
    """The verification head's logits (> 0: the same person) for embeddings a, b (N, D) of faces
    of px_a, px_b px (N,); `head` loaded or in training."""
    network, device = as_network(head), model_device(head)
    return network(a.to(device), b.to(device), px_a.to(device), px_b.to(device)).float().cpu()


def by_shape(crops: list[torch.Tensor], run: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """`run` on crops of differing sizes (faces at their own pixels), one batch per size; the
    answers stacked in the crops' order."""
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, crop in enumerate(crops):
        groups.setdefault(tuple(crop.shape), []).append(i)
    out: list[torch.Tensor] = [torch.empty(0)] * len(crops)
    for rows in groups.values():
        for i, answer in zip(rows, run(torch.stack([crops[i] for i in rows])), strict=True):
            out[i] = answer
    return torch.stack(out)


def restore_crops(
    generator: LoadedModel, crops01: list[torch.Tensor], size: int, own_pixels: bool
) -> torch.Tensor:
    """Square face crops of any size → `size` px through `generator`: each crop resized to the
    generator's input size (size / scale, bicubic), or with `own_pixels` each crop as it is and
    its output resized to `size` (one batch per crop size)."""
    if own_pixels:
        return by_shape(crops01, lambda batch: bicubic_resize(super_resolve(generator, batch).cpu(), size))
    lr_size = size // generator.config.scale
    return super_resolve(generator, torch.stack([bicubic_resize(c, lr_size) for c in crops01])).cpu()


def restore_by_route(
    crops01: list[torch.Tensor], roles: list[Weights | None], generators: Mapping[Weights, LoadedModel],
    size: int, own_pixels: frozenset[Weights] = frozenset(),
) -> torch.Tensor:  # fmt: skip
    """Each crop at `size` px: through the SR its role names (one batch per SR; `own_pixels`:
    the roles that take a crop at its own pixels), or a bicubic resize where it names none."""
    out = torch.empty(len(crops01), crops01[0].shape[0], size, size)
    for i, role in enumerate(roles):
        if role is None:
            out[i] = bicubic_resize(crops01[i], size)
    for role in dict.fromkeys(r for r in roles if r is not None):
        chosen = [i for i, r in enumerate(roles) if r is role]
        picked = [crops01[i] for i in chosen]
        out[chosen] = restore_crops(generators[role], picked, size, role in own_pixels)
    return out


def embed_by_route(
    embedder: Network, feature_sr: Network | None, faces01: torch.Tensor, roles: Sequence[Weights | None],
    device: torch.device,
) -> torch.Tensor:  # fmt: skip
    """Each face's embedding (on the CPU): by `embedder`, or where its identity role (`roles`,
    one per face) is the feature SR by `feature_sr` (the embedder with its feature SR,
    `load_feature_sr`); run on `device`."""
    through_fsr = torch.tensor([r is Weights.FEATURE_SR for r in roles], dtype=torch.bool)
    out: torch.Tensor | None = None
    for network, rows in ((embedder, ~through_fsr), (feature_sr, through_fsr)):
        if rows.any():
            assert network is not None  # a route names the feature SR only when it is loaded
            answer = as_network(network)(faces01[rows.to(faces01.device)].to(device)).float().cpu()
            out = out if out is not None else torch.empty(len(faces01), answer.shape[1])
            out[rows] = answer
    assert out is not None, "no faces"
    return out


class TinyFaceExpression:
    """Expression of a tiny face: its gray crop at its own pixels (resized down to `input_up_to`
    px where larger) → the FER-domain SR (×4) → the classifier's input size → the classifier
    trained on such super-resolved faces (the sweep's upscale-classifier column)."""

    def __init__(self, classifier: LoadedModel, restore: Restorer, input_up_to: int) -> None:
        self.classifier, self.restore, self.input_up_to = classifier, restore, input_up_to

    @torch.no_grad()
    def __call__(self, crops01: list[torch.Tensor]) -> torch.Tensor:
        size, device = self.classifier.contract["input_size"], self.classifier.device
        grays = [quantize_8bit(to_gray(self._capped(crop)[None]))[0] for crop in crops01]
        restored = by_shape(grays, lambda batch: bicubic_resize(self.restore(batch.to(device)), size))
        return self.classifier(restored).float().softmax(1).cpu()

    def _capped(self, crop: torch.Tensor) -> torch.Tensor:
        if max(crop.shape[-2:]) <= self.input_up_to:
            return crop
        return quantize_8bit(bicubic_resize(crop, self.input_up_to))


class IdentityRouteRestorer:
    """Low-resolution aligned chips restored as `predict` routes each face for the embedder
    (`Routing.route`'s `identity_sr`): soft faces and faces at or above `sr_below` bicubic, the
    others through the ×4 SR (the ×8 under `x8_below.identity` when `generators` has it), each SR
    taking the chip resized to its input size, as predict aligns it; with `feature_sr` (the
    embedder with its feature SR, `load_feature_sr`) the faces its rule names are resized
    bicubically and `embed` embeds them through it. A `Restorer` for the evaluations
    (`LowResPath`), so they measure the route predict takes, not one SR for all."""

    source = "route"

    def __init__(
        self, generators: Mapping[Weights, LoadedModel], feature_sr: LoadedModel | None = None,
        routing: Routing = ROUTING,
    ) -> None:  # fmt: skip
        self.generators, self.feature_sr, self.routing = dict(generators), feature_sr, routing
        self.have = Available(
            x8=Weights.SR_X8 in self.generators, aligned_embedder=True, feature_sr=feature_sr is not None
        )

    def describe(self, px: int | None = None) -> str:
        """The networks the route holds (the feature SR only where it can serve `px` px faces)
        and, for `px`, the rule: which way a sharp and a soft face take, and where soft begins —
        what an embedding bank of `px` px faces depends on."""
        ways = [f"{role.value} {model.source}" for role, model in self.generators.items()]
        sharp, soft = self._ways(px) if px is not None else (None, None)
        if self.feature_sr is not None and (px is None or Weights.FEATURE_SR in (sharp, soft)):
            ways.append(f"{Weights.FEATURE_SR.value} {self.feature_sr.source}")
        if px is None:
            return "route: " + ", ".join(ways)
        rule = (
            f"{px} px: sharp {_way(sharp)}, soft {_way(soft)} (detail < {self.routing.soft_detail_below:g})"
        )
        return f"route: {', '.join(ways)}; {rule}"

    def _ways(self, px: int) -> tuple[Weights | None, Weights | None]:
        """The roles a sharp and a soft face of `px` px take."""
        return tuple(self.routing.route(px, "auto", self.have, d).identity_sr for d in (None, 0.0))

    def routes(self, lr01: torch.Tensor) -> list[Weights | None]:
        """Each chip's role (None: bicubic) at the chips' size, from its own detail."""
        px, routing, have = lr01.shape[-1], self.routing, self.have
        need = routing.needs_detail(px, "auto", have)
        return [routing.route(px, "auto", have, detail(c.cpu()) if need else None).identity_sr for c in lr01]

    @torch.no_grad()
    def __call__(self, lr01: torch.Tensor) -> torch.Tensor:
        return self._pixels(lr01, self.routes(lr01))

    def _pixels(self, lr01: torch.Tensor, roles: list[Weights | None]) -> torch.Tensor:
        pixel_roles = [None if r is Weights.FEATURE_SR else r for r in roles]
        return restore_by_route(list(lr01.cpu()), pixel_roles, self.generators, self.routing.work_size)

    @torch.no_grad()
    def embed(self, embedder: Network, lr01: torch.Tensor, size: int, ctx: RunContext) -> torch.Tensor:
        """Chips → embeddings as predict makes them: each restored by its route, resized to the
        embedder's `size`, embedded by `embedder` or, where its route says, the feature SR."""
        roles = self.routes(lr01)
        pixels = bicubic_resize(self._pixels(lr01, roles), size)
        with ctx.autocast():
            return embed_by_route(embedder, self.feature_sr, pixels, roles, ctx.device)


def _way(role: Weights | None) -> str:
    return role.value if role is not None else "resized"

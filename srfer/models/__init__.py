"""Networks only. `build_model(kind, config)` rebuilds any network a checkpoint names."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from srfer.models.embedder import Embedder, EmbedderConfig
from srfer.models.feature_sr import FeatureSR, FeatureSRConfig
from srfer.models.fer import FerConfig, build_fer
from srfer.models.srgan import Discriminator, DiscriminatorConfig, Generator, GeneratorConfig
from srfer.models.verify_head import VerifyHead, VerifyHeadConfig

# kind (as stored in checkpoints) → factory taking the stored config dict
_BUILDERS: dict[str, Callable[[dict[str, Any]], nn.Module]] = {
    "sr-generator": lambda cfg: Generator(GeneratorConfig(**cfg)),
    "sr-discriminator": lambda cfg: Discriminator(DiscriminatorConfig(**cfg)),
    "fer-classifier": lambda cfg: build_fer(FerConfig(**cfg)),
    "face-embedder": lambda cfg: Embedder(EmbedderConfig(**cfg)),
    "verify-head": lambda cfg: VerifyHead(VerifyHeadConfig(**cfg)),
    "feature-sr": lambda cfg: FeatureSR(FeatureSRConfig(**cfg)),
}


def build_model(kind: str, config: dict[str, Any]) -> nn.Module:
    if kind not in _BUILDERS:
        raise KeyError(f"unknown model kind {kind!r}; known: {', '.join(sorted(_BUILDERS))}")
    return _BUILDERS[kind](config)


__all__ = [
    "Discriminator",
    "DiscriminatorConfig",
    "Embedder",
    "EmbedderConfig",
    "FeatureSR",
    "FeatureSRConfig",
    "FerConfig",
    "Generator",
    "GeneratorConfig",
    "VerifyHead",
    "VerifyHeadConfig",
    "build_fer",
    "build_model",
]

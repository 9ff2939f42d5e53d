"""Named builders of interchangeable networks (as timm's and torchvision's model registries).

A backbone is one decorated function in its model file::

    @FER_BACKBONES.register("resnet18", "torchvision ResNet-18, gray 48 px stem")
    def resnet18(config: FerConfig) -> nn.Module: ...

Configs validate their name against the registry, builders are looked up by name, and the
CLI's choices and help are generated from it. This module imports no torch, so the CLI can
point at a registry without loading it (see `srfer.cli.common.RegistryChoice`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Entry:
    name: str
    build: Callable[..., Any]
    help: str
    extra: dict[str, Any] = field(default_factory=dict)  # per-backbone facts, e.g. its stem layer


class Registry:
    def __init__(self, what: str) -> None:
        self.what = what  # "FER backbone": how errors name an entry
        self._entries: dict[str, Entry] = {}

    def register(self, name: str, help: str, **extra: Any) -> Callable[[Callable], Callable]:
        def add(build: Callable) -> Callable:
            if name in self._entries:
                raise ValueError(f"{self.what} {name!r} is registered twice")
            self._entries[name] = Entry(name, build, help, extra)
            return build

        return add

    def names(self) -> tuple[str, ...]:
        return tuple(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def get(self, name: str) -> Entry:
        if name not in self._entries:
            raise ValueError(f"unknown {self.what} {name!r}; use one of {', '.join(self._entries)}")
        return self._entries[name]

    def build(self, name: str, *args: Any, **kwargs: Any) -> Any:
        return self.get(name).build(*args, **kwargs)

    def describe(self) -> str:
        """'mcnn (…), resnet18 (…)': one line for help texts."""
        return "; ".join(f"{e.name}: {e.help}" for e in self._entries.values())

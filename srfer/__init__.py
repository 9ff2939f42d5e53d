"""srfer: super-resolution for low-resolution face recognition.

The Python API (`srfer.infer.api`), loaded on first use so that `import srfer` stays light::

    import srfer
    faces = srfer.analyze("photo.jpg")                # expression (and identity) of every face
    same = srfer.verify("a.jpg", "b.jpg").same         # one person or two
    vectors = srfer.represent("photo.jpg")             # identity embeddings
    big = srfer.upscale("face.png")                    # a face crop ×4
    photo = srfer.enhance("group.jpg").image           # the photo ×4, its faces restored
    with srfer.Gallery("staff.sqlite") as staff: ...   # enroll / identify / list / remove
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_API = ("Embedding", "Face", "Gallery", "Match", "Verification", "analyze", "enhance", "represent", "upscale",
        "verify")  # fmt: skip
__all__ = [*_API, "SrferError", "__version__"]

from srfer.core.errors import SrferError  # noqa: E402  (light: no torch)


def __getattr__(name: str) -> Any:
    if name in _API:
        from srfer.infer import api

        return getattr(api, name)
    raise AttributeError(f"module 'srfer' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)

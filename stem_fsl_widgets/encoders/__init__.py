"""Image encoders by name: chips (N, c, c) → embeddings (N, D).

The registry maps a name to a factory; :func:`get_encoder` accepts a name, a name with
keyword arguments, or a ready :class:`ImageEncoder` instance. ``DEFAULT_ENCODER`` is chosen
by measured accuracy on the demo data (see README).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..errors import InputError
from .base import (
    ContextEncoder,
    ImageEncoder,
    chip_windows,
    encode_chips,
    pick_device,
    robust_normalise,
    standardise_chips,
)
from .cnn import RandomCNNEncoder, ResNetEncoder
from .physics import FourierEncoder

__all__ = [
    "DEFAULT_ENCODER",
    "ContextEncoder",
    "ImageEncoder",
    "FourierEncoder",
    "RandomCNNEncoder",
    "ResNetEncoder",
    "available_encoders",
    "chip_windows",
    "encode_chips",
    "get_encoder",
    "pick_device",
    "register_encoder",
    "robust_normalise",
    "standardise_chips",
]

DEFAULT_ENCODER = "fourier"

_REGISTRY: dict[str, Callable[..., ImageEncoder]] = {
    # Default: the chip and its 2× neighbourhood (see ContextEncoder); "fourier_local" is the
    # chip alone, for objects much smaller than a chip.
    "fourier": lambda context=2, **kw: ContextEncoder(FourierEncoder(**kw), context),
    "fourier_local": FourierEncoder,
    "fourier_oriented": lambda context=2, **kw: ContextEncoder(FourierEncoder(rotation_invariant=False, **kw),
                                                               context),
    "random_cnn": RandomCNNEncoder,
    "resnet18": lambda **kw: ResNetEncoder("resnet18", **kw),
    "resnet34": lambda **kw: ResNetEncoder("resnet34", **kw),
    "resnet50": lambda **kw: ResNetEncoder("resnet50", **kw),
}


def register_encoder(name: str, factory: Callable[..., ImageEncoder]) -> None:
    """Make ``factory(**kwargs)`` available as encoder ``name``."""
    _REGISTRY[name] = factory


def available_encoders() -> list[str]:
    """Names accepted by :func:`get_encoder`."""
    return sorted(_REGISTRY)


def get_encoder(spec: str | ImageEncoder | None = None, **kwargs: Any) -> ImageEncoder:
    """Return an encoder for a name (default :data:`DEFAULT_ENCODER`) or pass one through.

    Raises
    ------
    InputError
        For an unknown name (a ValueError); the message lists the known ones.
    """
    if isinstance(spec, ImageEncoder):
        return spec
    name = spec or DEFAULT_ENCODER
    if not isinstance(name, str) or name not in _REGISTRY:
        raise InputError(f"Unknown encoder {name!r}; choose one of {available_encoders()}.")
    return _REGISTRY[name](**kwargs)

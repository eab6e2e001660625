"""What every image encoder shares: the interface, chip normalisation, device choice, batching."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["ImageEncoder", "robust_normalise", "standardise_chips", "pick_device", "encode_chips"]


def robust_normalise(image: np.ndarray) -> np.ndarray:
    """Centre an image on its median and scale by its 1–99 percentile range (float32).

    Done once per image, so chip intensities stay comparable across chips and across images
    of different dose or detector gain.
    """
    lo, med, hi = np.percentile(image, [1, 50, 99])
    scale = float(hi - lo) or float(np.std(image)) or 1.0
    return ((image - med) / scale).astype(np.float32)


def standardise_chips(chips: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Per-chip zero mean and unit variance, shape kept (N, c, c)."""
    mean = chips.mean(axis=(1, 2), keepdims=True)
    std = chips.std(axis=(1, 2), keepdims=True)
    return (chips - mean) / (std + eps)


def pick_device(device: str | None = None) -> str:
    """``device`` if given, else "cuda" when a GPU is present, else "cpu"."""
    if device:
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


class ImageEncoder(ABC):
    """Base class: map chips (N, c, c) to embeddings (N, D), float32.

    Subclasses implement :meth:`_encode_batch` and set :attr:`name`; :attr:`key` identifies
    the encoder *and* its parameters, so cached embeddings are reused only when identical.
    Chips arrive already robust-normalised image-wide (see :func:`robust_normalise`);
    each encoder applies its own per-chip normalisation.
    """

    name: str = "base"
    batch_size: int = 256

    def params(self) -> dict[str, Any]:
        """Parameters that change the embedding (part of the cache key)."""
        return {}

    @property
    def key(self) -> str:
        """Cache key: name plus sorted parameters."""
        p = ",".join(f"{k}={v}" for k, v in sorted(self.params().items()))
        return f"{self.name}({p})"

    @abstractmethod
    def _encode_batch(self, chips: np.ndarray) -> np.ndarray:
        """Embed one batch of chips (N, c, c) → (N, D)."""

    def encode(self, chips: np.ndarray) -> np.ndarray:
        """Embed a stack of chips.

        Parameters
        ----------
        chips : ndarray, shape (N, c, c)
            Image-wide normalised chips.

        Returns
        -------
        ndarray, shape (N, D), float32
        """
        chips = np.asarray(chips, dtype=np.float32)
        if chips.ndim != 3:
            raise ValueError(f"chips must have shape (N, c, c); got {chips.shape}")
        if chips.shape[0] == 0:
            return np.zeros((0, self.dim(chips.shape[1])), np.float32)
        return np.asarray(self._encode_batch(chips), dtype=np.float32)

    def dim(self, chip_size: int) -> int:
        """Embedding size for chips of side ``chip_size``."""
        return int(self.encode(np.zeros((1, chip_size, chip_size), np.float32)).shape[1])

    def __repr__(self) -> str:
        return self.key


def encode_chips(
    image: np.ndarray,
    grid,
    encoder: ImageEncoder,
    *,
    progress: Callable[[float], None] | None = None,
) -> np.ndarray:
    """Encode every chip of ``image`` on ``grid`` in batches.

    Parameters
    ----------
    image : ndarray, shape (H, W)
        The raw image; it is robust-normalised once here.
    grid : ChipGrid
    encoder : ImageEncoder
    progress : callable, optional
        Called with the fraction done after each batch.

    Returns
    -------
    ndarray, shape (grid.n_chips, D), float32
    """
    norm = robust_normalise(image)
    out = []
    done = 0
    for batch in grid.batches(norm, encoder.batch_size):
        out.append(encoder.encode(batch))
        done += batch.shape[0]
        if progress is not None:
            progress(done / grid.n_chips)
    return np.concatenate(out, axis=0)

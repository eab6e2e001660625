"""Put image and EDS embeddings on one footing and fuse them (early or late).

Each modality is scaled so that its mean squared chip norm is 1 (after per-feature
standardisation for the image, whose features have unrelated units). Early fusion then
concatenates ``sqrt(1-w)·image ⊕ sqrt(w)·eds`` so the squared distance is exactly
``(1-w)·d_image + w·d_eds``; late fusion sums per-modality log-probabilities with the same
weights. :func:`auto_weight` picks ``w`` from how well each modality separates the classes
the user defined, so a modality that carries no class information is not allowed to blur
the other.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Scaler", "fuse_early", "fuse_late", "modality_confidence", "auto_weight"]


@dataclass
class Scaler:
    """Feature centring/scaling fitted on one image, reusable on others (batch mode).

    Parameters
    ----------
    per_feature : bool
        Divide each feature by its own standard deviation (image features) or all by one
        number (EDS, whose PCA coordinates share units).
    chip_norm : bool
        After scaling, L2-normalise each chip's vector (cosine geometry).
    """

    per_feature: bool = True
    chip_norm: bool = False
    mean_: np.ndarray | None = None
    scale_: np.ndarray | None = None

    def fit(self, emb: np.ndarray) -> Scaler:
        """Learn centre and scale from embeddings (N, D)."""
        emb = np.asarray(emb, dtype=np.float64)
        self.mean_ = emb.mean(axis=0)
        xc = emb - self.mean_
        if self.per_feature:
            std = xc.std(axis=0)
            std[std < 1e-12] = 1.0  # a constant feature carries nothing; leave it at 0
            self.scale_ = std * np.sqrt(emb.shape[1])  # → mean squared norm 1
        else:
            rms = np.sqrt((xc**2).sum(axis=1).mean())
            self.scale_ = np.full(emb.shape[1], rms if rms > 1e-12 else 1.0)
        return self

    def transform(self, emb: np.ndarray) -> np.ndarray:
        """Apply the fitted scaling, (N, D) float32."""
        x = (np.asarray(emb, dtype=np.float64) - self.mean_) / self.scale_
        if self.chip_norm:
            x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
        return x.astype(np.float32)

    def fit_transform(self, emb: np.ndarray) -> np.ndarray:
        """Fit on ``emb`` and transform it."""
        return self.fit(emb).transform(emb)


def fuse_early(image_emb: np.ndarray | None, eds_emb: np.ndarray | None, eds_weight: float) -> np.ndarray:
    """Concatenate scaled modalities with weights ``sqrt(1-w)`` and ``sqrt(w)``.

    ``eds_weight = 0`` returns the image embedding alone and ``1`` the EDS embedding alone,
    so the single-modality cases are exactly the unfused ones.
    """
    w = float(np.clip(eds_weight, 0.0, 1.0))
    if eds_emb is None or w == 0.0:
        if image_emb is None:
            raise ValueError("no embedding to fuse")
        return image_emb
    if image_emb is None or w == 1.0:
        return eds_emb
    return np.concatenate([np.sqrt(1 - w) * image_emb, np.sqrt(w) * eds_emb], axis=1)


def fuse_late(logp_image: np.ndarray | None, logp_eds: np.ndarray | None, eds_weight: float) -> np.ndarray:
    """Weighted sum of per-modality log-probabilities (N, K), renormalised."""
    w = float(np.clip(eds_weight, 0.0, 1.0))
    if logp_eds is None or w == 0.0:
        z = logp_image
    elif logp_image is None or w == 1.0:
        z = logp_eds
    else:
        z = (1 - w) * logp_image + w * logp_eds
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def modality_confidence(emb: np.ndarray, support_idx: np.ndarray, support_lab: np.ndarray, n_classes: int) -> float:
    """How well one modality alone separates the user's classes, in [0, 1].

    Two complementary signals, averaged where both exist:

    - leave-one-out nearest-prototype accuracy on the supports, rescaled so chance → 0
      (needs a class with ≥ 2 supports);
    - the mean confidence ``1 - H/log K`` the modality's own classifier has on every chip, which
      is near 0 when the prototypes differ only by noise (all chips sit between them).
    """
    from .classify import normalised_entropy, predict_log_proba, prototypes, squared_distances

    protos = prototypes(emb, support_idx, support_lab, n_classes)
    logp = predict_log_proba(squared_distances(emb, protos))
    conf = float(1.0 - normalised_entropy(np.exp(logp)).mean())
    counts = np.bincount(support_lab, minlength=n_classes)
    if counts.max() < 2:
        return conf
    hits = []
    for j, (i, c) in enumerate(zip(support_idx, support_lab)):
        if counts[c] < 2:
            continue
        keep = np.arange(len(support_idx)) != j
        p = prototypes(emb, support_idx[keep], support_lab[keep], n_classes)
        hits.append(int(np.argmin(squared_distances(emb[i : i + 1], p)[0]) == c))
    chance = 1.0 / n_classes
    loo = max(0.0, (np.mean(hits) - chance) / (1 - chance))
    return 0.5 * (conf + loo)


def auto_weight(
    image_emb: np.ndarray,
    eds_emb: np.ndarray,
    support_idx: np.ndarray,
    support_lab: np.ndarray,
    n_classes: int,
    *,
    sharpness: float = 2.0,
) -> float:
    """EDS weight in [0, 1] from the two modalities' confidences on the user's classes.

    ``w = c_eds^s / (c_image^s + c_eds^s)``; with ``sharpness`` s > 1 a clearly weaker
    modality is damped more strongly than linearly.
    """
    ci = modality_confidence(image_emb, support_idx, support_lab, n_classes) ** sharpness
    ce = modality_confidence(eds_emb, support_idx, support_lab, n_classes) ** sharpness
    if ci + ce < 1e-12:
        return 0.5
    return float(ce / (ci + ce))

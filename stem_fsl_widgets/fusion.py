"""Put image and EDS embeddings on one footing and fuse them (early or late).

Each modality is scaled so that its mean squared chip norm is 1 (after per-feature
standardisation for the image, whose features have unrelated units). Early fusion then
concatenates ``sqrt(1-w)·image ⊕ sqrt(w)·eds`` so the squared distance is exactly
``(1-w)·d_image + w·d_eds``; late fusion sums per-modality log-probabilities with the same
weights. :func:`auto_weight` picks ``w`` from how well each modality separates each pair of
the classes the user defined, so a modality that carries no class information is not allowed
to blur the other.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Scaler", "fuse_early", "fuse_late", "auto_weight"]


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


def _confidence(dist: np.ndarray) -> float:
    """Mean ``1 - H/log K`` of the classifier given by distances (N, K)."""
    from .classify import normalised_entropy, predict_log_proba

    return float(1.0 - normalised_entropy(np.exp(predict_log_proba(dist))).mean())


def auto_weight(
    image_emb: np.ndarray,
    eds_emb: np.ndarray,
    support_idx: np.ndarray,
    support_lab: np.ndarray,
    n_classes: int,
    *,
    n_steps: int = 21,
) -> float:
    """EDS weight in [0, 1] chosen from how well each weighting explains the user's supports.

    Fused squared distances are ``(1-w)·d_image + w·d_eds``. When a class has ≥ 2 supports,
    ``w`` maximises the leave-one-out log-probability of each held-out support's own class
    (prototypes rebuilt without it, temperature from all chips). With a single support per
    class there is nothing to hold out, so each modality is scored by the mean confidence
    ``1 - H/log K`` of its own classifier over all chips — near 0 for a modality whose
    prototypes differ only by noise — and ``w = c_eds / (c_image + c_eds)``.
    Ties go to the weight nearest 0.5.
    """
    from .classify import prototypes, squared_distances

    support_idx = np.asarray(support_idx, dtype=np.int64)
    support_lab = np.asarray(support_lab, dtype=np.int64)
    mods = (image_emb, eds_emb)
    full = [squared_distances(e, prototypes(e, support_idx, support_lab, n_classes)) for e in mods]
    counts = np.bincount(support_lab, minlength=n_classes)
    held = [j for j in range(support_idx.size) if counts[support_lab[j]] >= 2]
    if not held:
        ci, ce = (_confidence(d) for d in full)
        return 0.5 if ci + ce < 1e-12 else float(ce / (ci + ce))
    # Distances of each held-out support to prototypes built without it: (n_held, K) per modality.
    loo = []
    for e in mods:
        rows = []
        for j in held:
            keep = np.arange(support_idx.size) != j
            p = prototypes(e, support_idx[keep], support_lab[keep], n_classes)
            rows.append(squared_distances(e[support_idx[j] : support_idx[j] + 1], p)[0])
        loo.append(np.array(rows))
    truth = support_lab[held]
    ws = np.linspace(0.0, 1.0, n_steps)
    score = np.empty(n_steps)
    for n, w in enumerate(ws):
        temp = float(np.median(((1 - w) * full[0] + w * full[1]).min(1))) or 1.0
        z = -((1 - w) * loo[0] + w * loo[1]) / temp
        z -= z.max(1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(1, keepdims=True))
        score[n] = logp[np.arange(len(held)), truth].mean()
    best = np.flatnonzero(score >= score.max() - 1e-9)
    return float(ws[best[np.argmin(np.abs(ws[best] - 0.5))]])

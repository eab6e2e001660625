"""Scale bars: a round physical length about a fifth of the view wide, and its label.

Used by the PNG export; the canvas front-end applies the same 1-2-5 rule at its current zoom.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["nice_length", "scale_bar", "draw_scale_bar"]


def nice_length(target: float) -> float:
    """The largest 1, 2 or 5 × 10^n not above ``target`` (> 0).

    Examples
    --------
    >>> nice_length(3.7), nice_length(0.12), nice_length(50.0)
    (2.0, 0.1, 50.0)
    """
    if not (target > 0 and math.isfinite(target)):
        raise ValueError(f"target must be a positive finite length, not {target!r}")
    exp = math.floor(math.log10(target))
    for m in (5, 2, 1):
        value = m * 10.0**exp
        if value <= target * (1 + 1e-9):
            return float(f"{value:.12g}")
    return float(f"{10.0**exp:.12g}")


def scale_bar(pixel_size: float | None, unit: str, width_px: float, *,
              fraction: float = 0.2) -> tuple[float, str] | None:
    """Length in image pixels and label of a bar about ``fraction`` of ``width_px`` wide.

    Returns None for uncalibrated data (no pixel size, or unit "px").

    Examples
    --------
    >>> scale_bar(0.03, "nm", 512)
    (66.66666666666667, '2 nm')
    """
    if not pixel_size or unit in ("", "px", "pixel", "pixels", "<undefined>"):
        return None
    physical = nice_length(fraction * width_px * pixel_size)
    return physical / pixel_size, f"{physical:g} {unit}"


def draw_scale_bar(rgb: np.ndarray, pixel_size: float | None, unit: str) -> np.ndarray:
    """Burn a white bar with a dark outline and its label into the bottom-left of ``rgb``."""
    bar = scale_bar(pixel_size, unit, rgb.shape[1])
    if bar is None:
        return rgb
    from PIL import Image, ImageDraw

    length, label = bar
    img = Image.fromarray(rgb)
    draw = ImageDraw.Draw(img)
    h, w = rgb.shape[:2]
    thick = max(3, h // 120)
    x0, y1 = max(6, w // 40), h - max(6, h // 40)
    y0, x1 = y1 - thick, x0 + int(round(length))
    draw.rectangle([x0 - 1, y0 - 1, x1 + 1, y1 + 1], fill=(0, 0, 0))
    draw.rectangle([x0, y0, x1, y1], fill=(255, 255, 255))
    tx, ty = x0, y0 - 14
    for dx, dy in ((-1, 0), (1, 0), (0, -1), (0, 1)):  # dark halo: readable on any background
        draw.text((tx + dx, ty + dy), label, fill=(0, 0, 0))
    draw.text((tx, ty), label, fill=(255, 255, 255))
    return np.asarray(img)

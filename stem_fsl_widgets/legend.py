"""Legends for exported pictures: class names with their colours, and an entropy colour bar.

A strip is added below the picture, so nothing of the map is covered; its text size follows
the picture's width, so it stays readable on a 4k map and fits on a 256-px one.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["add_class_legend", "add_colour_bar"]


def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: a fixed bitmap font
        return ImageFont.load_default()


def _strip(rgb: np.ndarray, height: int):
    from PIL import Image, ImageDraw

    h, w = rgb.shape[:2]
    img = Image.new("RGB", (w, h + height), (255, 255, 255))
    img.paste(Image.fromarray(rgb), (0, 0))
    return img, ImageDraw.Draw(img), h


def add_class_legend(rgb: np.ndarray, classes: Sequence[str], colours: Sequence[str]) -> np.ndarray:
    """Append a row of colour swatches and class names below ``rgb`` (H, W, 3) uint8.

    Examples
    --------
    >>> add_class_legend(np.zeros((64, 200, 3), np.uint8), ["a", "b"], ["#E69F00", "#56B4E9"]).shape
    (84, 200, 3)
    """
    from .export import hex_to_rgb

    w = rgb.shape[1]
    size = max(10, min(32, w // 50))
    pad = size // 2
    img, draw, top = _strip(rgb, size + 2 * pad)
    font = _font(size)
    x = pad
    for name, colour in zip(classes, colours, strict=True):
        draw.rectangle([x, top + pad, x + size, top + pad + size], fill=hex_to_rgb(colour), outline=(0, 0, 0))
        x += size + pad // 2
        draw.text((x, top + pad), str(name), fill=(0, 0, 0), font=font)
        x += int(draw.textlength(str(name), font=font)) + 2 * pad
    return np.asarray(img)


def add_colour_bar(rgb: np.ndarray, label: str = "normalised entropy",
                   low: str = "0 (sure)", high: str = "1 (unsure)") -> np.ndarray:
    """Append a black-to-white colour bar with its label and end values below ``rgb``.

    Examples
    --------
    >>> add_colour_bar(np.zeros((64, 200, 3), np.uint8)).shape
    (99, 200, 3)
    """
    w = rgb.shape[1]
    size = max(10, min(32, w // 50))
    pad = size // 2
    img, draw, top = _strip(rgb, 2 * size + 3 * pad)
    font = _font(size)
    x0, x1 = pad, max(pad + 2, w // 2)
    ramp = np.linspace(0, 255, x1 - x0).astype(np.uint8)
    from PIL import Image

    bar = np.repeat(np.repeat(ramp[None, :, None], size, axis=0), 3, axis=2)
    img.paste(Image.fromarray(bar), (x0, top + pad))
    draw.rectangle([x0 - 1, top + pad - 1, x1, top + pad + size], outline=(0, 0, 0))
    y = top + 2 * pad + size
    draw.text((x0, y), low, fill=(0, 0, 0), font=font)
    draw.text((x1 - int(draw.textlength(high, font=font)), y), high, fill=(0, 0, 0), font=font)
    draw.text((x1 + 2 * pad, top + pad), label, fill=(0, 0, 0), font=font)
    return np.asarray(img)

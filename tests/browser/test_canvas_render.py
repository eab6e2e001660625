"""ChipCanvas in a real browser: pixels drawn from state, and clicks round-tripping Python.

The notebook builds a 256×256 synthetic image with an 8×8 grid of 32-px chips; its Python
callbacks colour chips. Every assertion reads canvas pixels back from Chromium.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from .conftest import canvas_pixels, composite_pixels, unexpected_errors, wait_for_pixels

pytestmark = pytest.mark.browser

ORANGE = (230, 159, 0)  # Okabe–Ito
BLUE = (0, 114, 178)
GREEN = (0, 158, 115)
CHIP, GRID = 32, 8

IMAGE_SRC = "((xx * 3 + yy * 5) % 160 + 40).astype(np.uint8)"  # gray, never orange

NOTEBOOK = [
    f"""\
import numpy as np
from stem_fsl_widgets.widgets.canvas import ChipCanvas

yy, xx = np.mgrid[0:256, 0:256]
image = {IMAGE_SRC}
starts = np.arange({GRID}) * {CHIP}
y0, x0 = np.repeat(starts, {GRID}), np.tile(starts, {GRID})
boxes = np.stack([y0, x0, y0 + {CHIP}, x0 + {CHIP}], axis=1)
canvas = ChipCanvas(image, boxes, fill_opacity=0.5)
""",
    f"""\
ORANGE, BLUE, GREEN = {ORANGE + (255,)}, {BLUE + (255,)}, {GREEN + (255,)}

def chip_at(x, y):
    return int(y) // {CHIP} * {GRID} + int(x) // {CHIP}

def on_click(x, y, button, mods):
    canvas.update_chips([chip_at(x, y)], fill=ORANGE if button == 0 else BLUE)

def on_drag(x, y, button, mods):
    canvas.update_chips([chip_at(x, y)], fill=GREEN)

def on_key(key, mods):
    if key.isdigit():  # chip 0 shows which digit arrived: its red channel = 20 * digit
        canvas.update_chips([0], fill=(20 * int(key), 0, 0, 255))
    elif key == "v":  # chip 18 shows the zoom Python received from the browser
        canvas.update_chips([18], fill=(min(255, round(40 * canvas.zoom)), 0, 255, 255))

canvas.on_click(on_click)
canvas.on_drag(on_drag)
canvas.on_key(on_key)
canvas
""",
]

ROOT = ".stem-chip-canvas .scc-root"


def expected_image() -> np.ndarray:
    yy, xx = np.mgrid[0:256, 0:256]
    return eval(IMAGE_SRC)  # the notebook's own expression


def open_canvas(page, url: str) -> dict:
    """Load the page, wait for the drawn canvas; return its geometry (CSS px)."""
    page.goto(url, wait_until="domcontentloaded")
    page.wait_for_selector(f"{ROOT} canvas.scc-image", timeout=30_000)
    page.wait_for_function(
        "s => { const r = document.querySelector(s); return r && Number(r.dataset.drawn) > 0; }",
        arg=ROOT, timeout=15_000,
    )
    return page.evaluate(
        """s => { const r = document.querySelector(s), c = r.querySelector('canvas');
                  const b = c.getBoundingClientRect();
                  return {left: b.left, top: b.top, width: b.width, height: b.height,
                          scale: c.width / b.width, zoom: +r.dataset.zoom,
                          panX: +r.dataset.panX, panY: +r.dataset.panY}; }""",
        ROOT,
    )


def css_of(geo: dict, x: float, y: float) -> tuple[float, float]:
    """Page coordinates of image point (x, y)."""
    return (geo["left"] + (x - geo["panX"]) * geo["zoom"],
            geo["top"] + (y - geo["panY"]) * geo["zoom"])


def chip_centre(row: int, col: int) -> tuple[float, float]:
    return col * CHIP + CHIP / 2, row * CHIP + CHIP / 2


def pixel_box(geo: dict, x: float, y: float, half: int = 2) -> tuple[int, int, int, int]:
    """Small box of backing-store pixels around image point (x, y)."""
    s = geo["scale"]
    cx = int((x - geo["panX"]) * geo["zoom"] * s)
    cy = int((y - geo["panY"]) * geo["zoom"] * s)
    return cx - half, cy - half, 2 * half + 1, 2 * half + 1


def is_colour(rgb, tol: int = 3):
    return lambda px: bool(np.all(np.abs(px[..., :3].astype(int) - rgb) <= tol)
                           and np.all(px[..., 3] >= 250))


@pytest.fixture
def canvas_url(tmp_path, write_notebook, voila_server) -> str:
    nb = write_notebook(tmp_path / "canvas.ipynb", NOTEBOOK)
    return voila_server(nb)


def test_voila_renders_image_and_click_round_trip(canvas_url, page, tmp_path):
    t0 = time.monotonic()
    geo = open_canvas(page, canvas_url)
    assert geo["zoom"] == pytest.approx(2.5)  # 256 px image in a 640 px view

    # The image layer shows the image, pixel for pixel (nearest-neighbour magnification).
    img = canvas_pixels(page, f"{ROOT} canvas.scc-image")
    s = geo["zoom"] * geo["scale"]
    iy, ix = np.mgrid[0:256:7, 0:256:7]
    cy, cx = ((iy + 0.5) * s).astype(int), ((ix + 0.5) * s).astype(int)
    shown = img[cy, cx]
    assert np.all(shown[..., 3] == 255), "image layer is transparent"
    assert np.array_equal(shown[..., 0], expected_image()[iy, ix])
    assert np.array_equal(shown[..., 0], shown[..., 1])
    # The fill layer starts empty.
    assert canvas_pixels(page, f"{ROOT} canvas.scc-fill")[..., 3].max() == 0

    # Click chip (row 2, col 5): Python's on_click fills it orange via update_chips.
    x, y = chip_centre(2, 5)
    page.mouse.click(*css_of(geo, x, y))
    fill = f"{ROOT} canvas.scc-fill"
    wait_for_pixels(page, fill, is_colour(ORANGE), box=pixel_box(geo, x, y, 10))
    # Only that chip: its neighbours stay clear.
    for nx, ny in (chip_centre(2, 4), chip_centre(2, 6), chip_centre(1, 5), chip_centre(3, 5)):
        assert canvas_pixels(page, fill, pixel_box(geo, nx, ny))[..., 3].max() == 0
    # What the user sees: orange at fill_opacity 0.5 over the gray image.
    # (image point (x + 5.5, y + 5.5): a pixel centre, away from nearest-neighbour ties)
    seen = composite_pixels(page, f"{ROOT} canvas", pixel_box(geo, x + 5.5, y + 5.5, 0))[0, 0]
    gray = expected_image()[int(y + 5), int(x + 5)]
    assert np.allclose(seen[:3], 0.5 * np.array(ORANGE) + 0.5 * gray, atol=4)

    page.screenshot(path=str(tmp_path / "voila_canvas.png"))
    assert not unexpected_errors(page), unexpected_errors(page)
    assert time.monotonic() - t0 < 30


def test_voila_events_right_click_keys_drag_and_zoom(canvas_url, page, tmp_path):
    geo = open_canvas(page, canvas_url)
    fill = f"{ROOT} canvas.scc-fill"

    # Right-click: button 2 reaches Python (blue), no context menu.
    x, y = chip_centre(6, 1)
    page.mouse.click(*css_of(geo, x, y), button="right")
    wait_for_pixels(page, fill, is_colour(BLUE), box=pixel_box(geo, x, y))

    # Keys go to Python while the canvas has focus (the click focused it).
    assert page.evaluate(f"document.activeElement === document.querySelector('{ROOT}')")
    page.keyboard.press("3")
    wait_for_pixels(page, fill, is_colour((60, 0, 0)), box=pixel_box(geo, *chip_centre(0, 0)))
    page.keyboard.press("Shift+7")  # a digit, whatever the layout makes of Shift
    wait_for_pixels(page, fill, is_colour((140, 0, 0)), box=pixel_box(geo, *chip_centre(0, 0)))

    # Drag along row 4 from col 1 to col 5: on_drag paints every chip entered.
    page.mouse.move(*css_of(geo, *chip_centre(4, 1)))
    page.mouse.down()
    for col in range(1, 6):
        for f in np.linspace(0, 1, 4):
            page.mouse.move(*css_of(geo, (col + f) * CHIP, 4 * CHIP + 10))
    page.mouse.up()
    for col in range(2, 6):
        wait_for_pixels(page, fill, is_colour(GREEN), box=pixel_box(geo, *chip_centre(4, col)))

    # Wheel-zoom about a point, then click elsewhere: the chip under the mouse is hit.
    page.mouse.move(*css_of(geo, 100, 100))
    page.mouse.wheel(0, -400)
    page.wait_for_function(f"+document.querySelector('{ROOT}').dataset.zoom > 2.6")
    page.wait_for_timeout(300)  # let the zoom/pan settle and reach Python
    geo = open_canvas_geometry(page)
    assert geo["zoom"] > 2.6
    x, y = chip_centre(3, 4)  # (144, 112): in view after zooming about (100, 100)
    page.mouse.click(*css_of(geo, x, y))
    wait_for_pixels(page, fill, is_colour(ORANGE), box=pixel_box(geo, x, y))
    assert canvas_pixels(page, fill, pixel_box(geo, *chip_centre(3, 3)))[..., 3].max() == 0
    # The browser wrote the new zoom back to Python.
    page.keyboard.press("v")
    red = min(255, round(40 * geo["zoom"]))
    wait_for_pixels(page, fill, is_colour((red, 0, 255), tol=1),
                    box=pixel_box(geo, *chip_centre(2, 2)))

    # Middle-button drag pans (in the browser only: no mouse events reach Python).
    start = css_of(geo, 120, 120)
    page.mouse.move(*start)
    page.mouse.down(button="middle")
    page.mouse.move(start[0] - 60, start[1] - 30, steps=4)
    page.mouse.up(button="middle")
    moved = open_canvas_geometry(page)
    assert moved["panX"] - geo["panX"] == pytest.approx(60 / geo["zoom"], abs=1e-6)
    assert moved["panY"] - geo["panY"] == pytest.approx(30 / geo["zoom"], abs=1e-6)
    assert canvas_pixels(page, fill, pixel_box(moved, 120, 120))[..., 3].max() == 0
    page.screenshot(path=str(tmp_path / "voila_canvas_events.png"))
    assert not unexpected_errors(page), unexpected_errors(page)


def open_canvas_geometry(page) -> dict:
    return page.evaluate(
        """s => { const r = document.querySelector(s), c = r.querySelector('canvas');
                  const b = c.getBoundingClientRect();
                  return {left: b.left, top: b.top, scale: c.width / b.width,
                          zoom: +r.dataset.zoom, panX: +r.dataset.panX,
                          panY: +r.dataset.panY}; }""",
        ROOT,
    )


@pytest.mark.slow
def test_jupyterlab_renders_and_click_round_trip(tmp_path, write_notebook, jupyterlab_server,
                                                 page):
    write_notebook(tmp_path / "canvas.ipynb", NOTEBOOK)
    base = jupyterlab_server(tmp_path)
    page.goto(base + "lab/tree/canvas.ipynb", wait_until="domcontentloaded")
    page.wait_for_function(
        "() => window.jupyterapp && window.jupyterapp.shell.currentWidget"
        " && window.jupyterapp.shell.currentWidget.sessionContext"
        " && window.jupyterapp.shell.currentWidget.sessionContext.session"
        " && window.jupyterapp.shell.currentWidget.sessionContext.session.kernel",
        timeout=60_000,
    )
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
    page.wait_for_function(
        "s => { const r = document.querySelector(s); return r && Number(r.dataset.drawn) > 0; }",
        arg=ROOT, timeout=60_000,
    )
    page.locator(ROOT).scroll_into_view_if_needed()
    geo = open_canvas_geometry(page)
    img = canvas_pixels(page, f"{ROOT} canvas.scc-image")
    s = geo["zoom"] * geo["scale"]
    assert img[int(10.5 * s), int(20.5 * s), 0] == expected_image()[10, 20]
    assert img[..., 3].min() == 255

    x, y = chip_centre(5, 2)
    page.mouse.click(*css_of(geo, x, y))
    wait_for_pixels(page, f"{ROOT} canvas.scc-fill", is_colour(ORANGE), box=pixel_box(geo, x, y))
    # Digits typed on the focused canvas reach Python, not JupyterLab's shortcuts.
    page.keyboard.press("4")
    wait_for_pixels(page, f"{ROOT} canvas.scc-fill", is_colour((80, 0, 0)),
                    box=pixel_box(geo, *chip_centre(0, 0)))
    page.screenshot(path=str(tmp_path / "lab_canvas.png"))

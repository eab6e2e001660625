"""The Panel app served by ``panel serve`` and clicked in headless Chromium, judged by pixels."""

from __future__ import annotations

import io
import os
import re
import time
from pathlib import Path

import numpy as np
import pytest

from .conftest import _Servers, free_port, other_demo_images

pytest.importorskip("panel")
PIL = pytest.importorskip("PIL.Image")

pytestmark = pytest.mark.browser

APP = Path(__file__).resolve().parents[2] / "stem_fsl_widgets" / "apps" / "panel_app.py"
FRAME = 600  # the app draws a 512×512 demo image in a 600×600 frame
IMAGE = 512
ORANGE, BLUE = np.array([0xE6, 0x9F, 0x00]), np.array([0x56, 0xB4, 0xE9])  # class 1, class 2


@pytest.fixture
def panel_url(tmp_path):
    """``panel serve`` the app file on a free 127.0.0.1 port; stopped by PID afterwards."""
    servers = _Servers(tmp_path)
    port = free_port()
    try:
        servers.start(["panel", "serve", str(APP), "--address", "127.0.0.1", "--port", str(port),
                       "--allow-websocket-origin", f"127.0.0.1:{port}"],
                      cwd=tmp_path, port=port, timeout=30,
                      env={"OMP_NUM_THREADS": "2", "SFW_AUTOSAVE_DIR": str(tmp_path / "autosave")})
        yield f"http://127.0.0.1:{port}/{APP.stem}"
    finally:
        servers.stop()


def _shot(page, clip: dict) -> np.ndarray:
    """RGB pixels (h, w, 3) of a page region as shown on screen."""
    png = page.screenshot(clip=clip)
    return np.asarray(PIL.open(io.BytesIO(png)).convert("RGB")).astype(float)


def _wait_pixels(page, clip: dict, ok, timeout: float = 10.0) -> np.ndarray:
    deadline = time.monotonic() + timeout
    while True:
        px = _shot(page, clip)
        if ok(px) or time.monotonic() > deadline:
            return px
        page.wait_for_timeout(100)


def _chip_box(x: float, y: float, chip: int = 32, margin: int = 9) -> tuple[slice, slice]:
    """Screen-pixel interior of the 32-px chip under image (x, y), inside its outline."""
    s = FRAME / IMAGE
    x0, y0 = (x // chip) * chip * s, (y // chip) * chip * s
    return (slice(int(y0) + margin, int(y0 + chip * s) - margin),
            slice(int(x0) + margin, int(x0 + chip * s) - margin))


def _towards(before: np.ndarray, after: np.ndarray, colour: np.ndarray) -> tuple[float, float]:
    """How far, and how squarely, a region's mean colour moved towards ``colour``."""
    b, a = before.reshape(-1, 3).mean(0), after.reshape(-1, 3).mean(0)
    delta, aim = a - b, colour - b
    size = float(np.linalg.norm(delta))
    return size, float(delta @ aim / (size * np.linalg.norm(aim) + 1e-9))


A, B = "Ni matrix", "CoCu precipitate"  # the demo's first two phases, offered as classes


def _fractions(text: str) -> dict[str, float]:
    return {m[0].strip(): float(m[1]) for m in re.findall(r"([A-Za-z0-9 \[\]]+): ([\d.]+) %", text)}


def test_clicks_in_chromium_label_chips_and_segment(page, panel_url, tmp_path):
    from playwright.sync_api import expect

    outside: list[str] = []

    def offline_only(route):
        if route.request.url.startswith("http://127.0.0.1"):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    page.route("**/*", offline_only)
    page.set_viewport_size({"width": 1500, "height": 1400})  # the whole figure on screen
    page.goto(panel_url)
    status = page.locator(".sfw-status")
    expect(status).to_contain_text("Label at least one chip", timeout=30_000)
    canvas = page.locator(".sfw-image canvas").first
    box = canvas.bounding_box()
    assert box["width"] == FRAME
    # Axes are hidden and borders are 0; the toolbar sits above, so the frame is the bottom.
    frame = {"x": box["x"], "y": box["y"] + box["height"] - FRAME, "width": FRAME, "height": FRAME}
    fractions_text = page.locator(".sfw-fractions-text")
    bars = page.locator(".sfw-fractions").first.bounding_box()
    before = _wait_pixels(page, frame, lambda p: p.std() > 20)  # the image has been drawn
    bars_before = _shot(page, bars)
    expect(fractions_text).to_contain_text("No segmentation yet")

    def click(x: float, y: float) -> None:
        page.mouse.click(frame["x"] + x * FRAME / IMAGE, frame["y"] + y * FRAME / IMAGE)

    a, b = (48, 48), (400, 432)  # image (x, y) of a class-1 and a class-2 chip
    click(*a)
    expect(page.locator(f"label:has-text('{A} (1 labelled)')")).to_be_visible()
    page.locator(f"label:has-text('{B} (0 labelled)')").click()
    expect(status).to_contain_text(f"Clicks label {B}")
    click(*b)
    expect(status).to_contain_text("2 labelled chips in 2 classes")
    expect(fractions_text).to_contain_text("Uncertain chips")

    labelled = np.zeros((FRAME, FRAME), bool)
    for xy in (a, b):
        ys, xs = _chip_box(*xy, margin=-6)
        labelled[ys, xs] = True

    def chroma(p: np.ndarray) -> np.ndarray:
        return p.max(axis=2) - p.min(axis=2)

    page.mouse.move(frame["x"] + FRAME + 200, frame["y"])  # no hover tooltip over the image
    after = _wait_pixels(page, frame, lambda p: chroma(p)[~labelled].mean() > 15)
    shots = Path(os.environ.get("SFW_SCREENSHOT_DIR") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(shots / "panel_app.png"), full_page=True)

    # (a) each labelled chip turned towards its class colour.
    for xy, colour in ((a, ORANGE), (b, BLUE)):
        ys, xs = _chip_box(*xy)
        dist, cos = _towards(before[ys, xs], after[ys, xs], colour)
        assert dist > 40 and cos > 0.9, (xy, dist, cos)
    # (b) the rest went from grey to class colours: the segmentation overlay is drawn.
    assert chroma(before)[~labelled].mean() < 3
    assert chroma(after)[~labelled].mean() > 15
    # ... and the orange/blue split of the overlay agrees with the fractions the app prints.
    text = " ".join(page.locator(".sfw-fractions-text p").all_inner_texts()).split("Uncertain")[0]
    shown = _fractions(text.replace("Area:", "").replace("·", ","))
    assert set(shown) == {A, B} and abs(sum(shown.values()) - 100) < 0.2, shown
    px = after[~labelled][chroma(after)[~labelled] > 20]
    orange_share = float((px[:, 0] > px[:, 2]).mean())
    assert abs(orange_share - shown[A] / 100) < 0.1, (orange_share, shown)
    # (c) the bar chart now has an orange and a blue bar.
    bars_after = _wait_pixels(page, bars, lambda p: (np.abs(p - BLUE).max(2) < 30).sum() > 50)
    for colour in (ORANGE, BLUE):
        assert (np.abs(bars_before - colour).max(2) < 30).sum() == 0
        assert (np.abs(bars_after - colour).max(2) < 30).sum() > 50

    # An impossible request shows a message, not a traceback, and the labels stay.
    page.get_by_role("button", name="Rename").click()
    message = page.locator(".sfw-message")
    before_box = canvas.bounding_box()
    expect(message).to_contain_text("Could not rename the class")
    shown_message = " ".join(page.locator(".sfw-message div").all_inner_texts())
    assert "Could not rename" in shown_message and "Traceback" not in shown_message
    assert canvas.bounding_box() == before_box  # a message never moves the figure
    expect(status).to_contain_text("2 labelled chips in 2 classes")
    page.get_by_role("button", name="↶ Undo").click()  # undo the second label
    expect(fractions_text).to_contain_text("No segmentation yet")
    expect(message).not_to_contain_text("Could not rename")
    assert outside == []  # everything came from the local server: works offline
    assert page.console_errors == []


def _frame(page) -> dict:
    box = page.locator(".sfw-image canvas").first.bounding_box()
    return {"x": box["x"], "y": box["y"] + box["height"] - FRAME, "width": FRAME, "height": FRAME}


def _at(frame: dict, x: float, y: float) -> tuple[float, float]:
    return frame["x"] + x * FRAME / IMAGE, frame["y"] + y * FRAME / IMAGE


def _open_app(page, url: str):
    """Open the app at 1500×1400 and wait for the drawn image; the status line and the frame."""
    from playwright.sync_api import expect

    page.set_viewport_size({"width": 1500, "height": 1400})
    page.goto(url)
    status = page.locator(".sfw-status")
    expect(status).to_contain_text("Label at least one chip", timeout=30_000)
    frame = _frame(page)
    _wait_pixels(page, frame, lambda p: p.std() > 20)
    return status, frame


def test_add_class_by_button_drag_paint_keys_and_upload(page, panel_url, tmp_path):
    from playwright.sync_api import expect

    status, frame = _open_app(page, panel_url)

    # Add a class by the button, without pressing Enter (was a "_pending_writes" error).
    page.locator("input[placeholder='e.g. matrix']").fill("carbon film")
    page.get_by_role("button", name="Add", exact=True).click()
    expect(page.locator("label:has-text('carbon film (0 labelled)')")).to_be_visible()
    expect(status).to_contain_text("Clicks label carbon film")
    expect(page.locator("input[placeholder='e.g. matrix']")).to_have_value("")

    # Keys: 1 picks the first class (focus on the page, not in a text box).
    page.locator(".sfw-status").click()
    page.keyboard.press("1")
    expect(status).to_contain_text(f"Clicks label {A}")

    # Drag-paint: one stroke across three chips of the top row.
    page.mouse.move(*_at(frame, 16, 16))
    page.mouse.down()
    for x in (30, 48, 60, 80, 90):
        page.mouse.move(*_at(frame, x, 16), steps=3)
    page.mouse.up()
    expect(page.locator(f"label:has-text('{A} (3 labelled)')")).to_be_visible()
    page.keyboard.press("Control+z")  # the stroke is one undo step
    expect(page.locator(f"label:has-text('{A} (0 labelled)')")).to_be_visible()
    page.keyboard.press("Control+Shift+z")
    expect(page.locator(f"label:has-text('{A} (3 labelled)')")).to_be_visible()

    # Upload: the name is shown and the new image opens at once (no "Open" step).
    img = np.random.default_rng(0).normal(size=(256, 256)).astype(np.float32)
    img[:, 128:] *= 4
    path = tmp_path / "my scan.npy"
    np.save(path, img)
    page.locator(".sfw-image-input input[type=file]").set_input_files(str(path))
    expect(page.locator(".sfw-files")).to_contain_text("my scan.npy", timeout=30_000)
    expect(page.locator(".sfw-dash-message")).to_contain_text("Opened my scan.npy")
    expect(page.locator(".sfw-dash-message")).to_contain_text("no pixel size")
    expect(page.locator(".sfw-title")).to_contain_text("my scan", timeout=30_000)  # the new image
    expect(status).to_contain_text("Label at least one chip")
    clear = page.get_by_role("button", name="Clear files")
    expect(clear).to_be_enabled()
    clear.click()
    expect(page.locator(".sfw-files")).not_to_contain_text("my scan.npy")
    assert page.page_errors == [] and page.console_errors == []
    log = "\n".join(p.read_text(errors="replace") for p in tmp_path.glob("server-*.log"))
    assert "_pending_writes" not in log and "Traceback" not in log, log[-3000:]


def test_batch_applies_the_labels_to_uploaded_images(page, panel_url, tmp_path):
    """Label the demo, choose two images in the batch card, apply, download the zip."""
    import csv
    import zipfile

    from playwright.sync_api import expect

    paths = other_demo_images(tmp_path)
    status, frame = _open_app(page, panel_url)
    page.mouse.click(*_at(frame, 2 * 32 + 16, 4 * 32 + 16))  # Ni matrix (class 1 is active)
    expect(page.locator(f"label:has-text('{A} (1 labelled)')")).to_be_visible()
    page.locator(".sfw-status").click()
    page.keyboard.press("2")
    expect(status).to_contain_text(f"Clicks label {B}")
    page.mouse.click(*_at(frame, 9 * 32 + 16, 3 * 32 + 16))  # CoCu precipitate
    expect(page.locator(f"label:has-text('{B} (1 labelled)')")).to_be_visible()

    page.locator(".sfw-batch-input input[type=file]").set_input_files([str(p) for p in paths])
    expect(page.locator(".sfw-batch-files")).to_contain_text("2 images: other1.npy", timeout=30_000)
    page.get_by_role("button", name="Apply labels to these images").click()
    expect(page.locator(".sfw-batch-message")).to_contain_text("Segmented 2 of 2", timeout=180_000)
    expect(page.locator(".sfw-batch-progress")).to_contain_text("2 of 2 images")
    with page.expect_download(timeout=60_000) as dl:
        page.get_by_role("button", name="Download zip").click()
    with zipfile.ZipFile(dl.value.path()) as z:
        names = set(z.namelist())
        rows = list(csv.DictReader(io.StringIO(z.read("summary.csv").decode())))
    assert {"other1/other1_labels.png", "other2/other2_labels.tif"} <= names
    assert [r["status"] for r in rows] == ["ok", "ok"]
    assert page.page_errors == [] and page.console_errors == []
    log = "\n".join(p.read_text(errors="replace") for p in tmp_path.glob("server-*.log"))
    assert "_pending_writes" not in log and "Traceback" not in log, log[-3000:]

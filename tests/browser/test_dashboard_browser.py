"""The Voilà dashboard (``stem_fsl_widgets/apps/dashboard.ipynb``) used the way a microscopist would.

Headless Chromium opens the served notebook, clicks "Use demo data", labels chips of two
classes on the canvas and uploads a broken file. Every check reads what the browser shows:
canvas pixels (``getImageData``) for labels and segmentation, page text for fractions and
messages. Set ``SFW_SCREENSHOT=1`` to write the screenshot to ``docs/dashboard.png``.
"""

from __future__ import annotations

import io
import os
import re
from pathlib import Path

import numpy as np
import pytest

from .conftest import (
    canvas_pixels,
    composite_pixels,
    other_demo_images,
    unexpected_errors,
    wait_for_pixels,
)

pytestmark = pytest.mark.browser

ROOT_DIR = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT_DIR / "stem_fsl_widgets" / "apps" / "dashboard.ipynb"
SCREENSHOT_MAX_BYTES = 300_000

CHIP, N_SIDE = 32, 16  # the demo: 512×512 px in 32-px chips
CLASS_1, CLASS_2 = (0xE6, 0x9F, 0x00), (0x56, 0xB4, 0xE9)  # Okabe–Ito: the first two classes
A, B = "Ni matrix", "CoCu precipitate"  # the demo's first two phases, offered as classes
# Demo chips (row, col) inside regions of its ground truth: oxide, Ni matrix, CoCu precipitate.
CHIP_A, CHIP_B, CHIP_C = (11, 9), (4, 2), (3, 9)

CANVAS = ".stem-chip-canvas .scc-root"
FILL, OVERLAY = f"{CANVAS} canvas.scc-fill", f"{CANVAS} canvas.scc-overlay"

_GEOMETRY_JS = """s => { const r = document.querySelector(s), c = r.querySelector('canvas');
    const b = c.getBoundingClientRect();
    return {left: b.left, top: b.top, scale: c.width / b.width, zoom: +r.dataset.zoom,
            panX: +r.dataset.panX, panY: +r.dataset.panY}; }"""

# Text of the results panel's summary line: "x % of chips uncertain (entropy > t); class 1 y %, ..."
_SUMMARY_JS = """() => { for (const el of document.querySelectorAll('.widget-html-content')) {
    if (el.textContent.includes('(entropy >')) return el.textContent; } return null; }"""


# ---- page helpers ----------------------------------------------------------------------------


def open_demo(page, url: str) -> dict:
    """Load the dashboard, click "Use demo data", wait for the drawn canvas; return its geometry."""
    page.goto(url, wait_until="domcontentloaded")
    page.get_by_role("button", name="Use demo data").click(timeout=60_000)
    page.wait_for_function(
        "s => { const r = document.querySelector(s); return r && Number(r.dataset.drawn) > 0; }",
        arg=CANVAS, timeout=60_000,
    )
    page.locator(CANVAS).scroll_into_view_if_needed()
    return page.evaluate(_GEOMETRY_JS, CANVAS)


def chip_point(geo: dict, chip: tuple[int, int]) -> tuple[float, float]:
    """Page coordinates (CSS px) of the centre of chip (row, col)."""
    r, c = chip
    x, y = (c + 0.5) * CHIP, (r + 0.5) * CHIP
    return (geo["left"] + (x - geo["panX"]) * geo["zoom"],
            geo["top"] + (y - geo["panY"]) * geo["zoom"])


def chip_rect(geo: dict, chip: tuple[int, int]) -> tuple[int, int, int, int]:
    """Chip (row, col) as backing-store pixels ``(x0, y0, x1, y1)``, rounded like the canvas."""
    s = geo["zoom"] * geo["scale"]
    r, c = chip
    return (round((c * CHIP - geo["panX"]) * s), round((r * CHIP - geo["panY"]) * s),
            round(((c + 1) * CHIP - geo["panX"]) * s), round(((r + 1) * CHIP - geo["panY"]) * s))


def outline_band(geo: dict, chip: tuple[int, int]) -> tuple[int, int, int, int]:
    """A row of pixels inside a support's 3-px outline, along the chip's top edge."""
    x0, y0, x1, _ = chip_rect(geo, chip)
    return x0 + 8, y0 + 1, x1 - x0 - 16, 1


def centre_box(geo: dict, chip: tuple[int, int], half: int = 3) -> tuple[int, int, int, int]:
    x0, y0, x1, y1 = chip_rect(geo, chip)
    return (x0 + x1) // 2 - half, (y0 + y1) // 2 - half, 2 * half + 1, 2 * half + 1


def is_colour(rgb: tuple[int, int, int], tol: int = 2):
    return lambda px: bool(np.all(np.abs(px[..., :3].astype(int) - rgb) <= tol)
                           and np.all(px[..., 3] == 255))


def fill_centres(page, geo: dict) -> np.ndarray:
    """RGBA of the fill layer at every chip's centre, shape (16, 16, 4)."""
    fill = canvas_pixels(page, FILL)
    x0, y0, x1, y1 = chip_rect(geo, (0, 0))
    step = x1 - x0  # chips are the same size on screen (integer zoom × 32)
    centres = np.arange(N_SIDE) * step + step // 2
    return fill[y0 + centres[:, None], x0 + centres[None, :]]


def fractions(page) -> dict[str, float]:
    """Class → area percentage as printed in the results panel (empty before a result)."""
    text = page.evaluate(_SUMMARY_JS) or ""
    if ";" not in text:
        return {}
    parts = [p.strip().rsplit(" ", 2) for p in text.split(";", 1)[1].split(",")]
    return {name: float(v) for name, v, unit in parts if unit.startswith("%")}


def select_class(page, name: str) -> None:
    """Click the class panel's toggle button of ``name`` (labelled "k: name")."""
    page.locator(".widget-toggle-button", has_text=re.compile(rf"^\d: {name}$")).click()


def shrink_png(png: bytes) -> bytes:
    """Quantise a screenshot to fewer colours (128, then 64, 32) until it is ≤ 300 KB."""
    from PIL import Image

    for colours in (128, 64, 32):
        if len(png) <= SCREENSHOT_MAX_BYTES:
            break
        img = Image.open(io.BytesIO(png)).convert("RGB").quantize(colors=colours, dither=Image.Dither.NONE)
        out = io.BytesIO()
        img.save(out, format="PNG", optimize=True)
        png = out.getvalue()
    return png


def save_screenshot(page, path: Path) -> Path:
    """Whole dashboard as PNG; quantised to a palette if it would exceed 300 KB."""
    # Voilà scrolls inside its own panel: grow the viewport to the dashboard's height instead.
    height = page.evaluate("""() => { const d = document.querySelector('.sfw-dashboard');
        const b = d.getBoundingClientRect(); return Math.ceil(b.top + d.scrollHeight + 24); }""")
    page.set_viewport_size({"width": page.viewport_size["width"], "height": int(height)})
    page.wait_for_timeout(300)
    png = page.screenshot(full_page=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    png = shrink_png(png)
    path.write_bytes(png)
    return path


# ---- tests -----------------------------------------------------------------------------------


@pytest.fixture
def dashboard_url(voila_server, tmp_path) -> str:
    # The kernel's autosaves go to the test's folder, never to the home folder; the page
    # starts on the chooser (SFW_DEMO=1, set by `make dashboard`, would open the demo at once).
    return voila_server(NOTEBOOK, env={"SFW_AUTOSAVE_DIR": str(tmp_path / "autosave"),
                                       "SFW_DEMO": "0"})


def test_dashboard_label_segment_and_bad_upload(dashboard_url, page, tmp_path):
    page.set_viewport_size({"width": 1400, "height": 1000})  # canvas and class panel side by side
    geo = open_demo(page, dashboard_url)
    assert geo["zoom"] == pytest.approx(1.25)  # 512-px demo in the 640-px view
    assert canvas_pixels(page, f"{CANVAS} canvas.scc-image")[..., 3].min() == 255  # image drawn
    assert canvas_pixels(page, FILL)[..., 3].max() == 0  # no segmentation before labels
    assert canvas_pixels(page, OVERLAY, outline_band(geo, CHIP_A))[..., 3].max() == 0
    assert fractions(page) == {}

    # Class 1 is active: a click makes chip A a support, outlined in class 1's colour.
    page.mouse.click(*chip_point(geo, CHIP_A))
    wait_for_pixels(page, OVERLAY, is_colour(CLASS_1), box=outline_band(geo, CHIP_A))
    assert canvas_pixels(page, FILL)[..., 3].max() == 0  # one class labelled: nothing to segment

    # Key 2 on the focused canvas picks class 2; chip B becomes its support.
    assert page.evaluate(f"document.activeElement === document.querySelector('{CANVAS}')")
    page.keyboard.press("2")
    page.locator(".widget-toggle-button.mod-active", has_text="2: CoCu precipitate").wait_for()
    page.mouse.click(*chip_point(geo, CHIP_B))
    wait_for_pixels(page, OVERLAY, is_colour(CLASS_2), box=outline_band(geo, CHIP_B))

    # (b) The segmentation appeared: every chip's fill is a class colour, both classes occur,
    # and each support is predicted as its own class.
    wait_for_pixels(page, FILL, lambda px: px[..., 3].min() == 255, box=centre_box(geo, (0, 0)))
    page.wait_for_function(f"() => ({_SUMMARY_JS})() !== null")
    before = fill_centres(page, geo)
    is_1 = np.all(before[..., :3] == CLASS_1, axis=-1)
    is_2 = np.all(before[..., :3] == CLASS_2, axis=-1)
    assert np.all(before[..., 3] == 255) and np.all(is_1 | is_2)
    assert is_1.sum() >= 10 and is_2.sum() >= 10, (is_1.sum(), is_2.sum())
    assert is_1[CHIP_A] and is_2[CHIP_B]
    # What the user sees at an unlabelled chip: the image tinted with its class colour at the
    # fill opacity (0.35) — read from the stacked image and fill layers as displayed.
    chip = (7, 7)
    colour = np.array(CLASS_1 if is_1[chip] else CLASS_2, float)
    box = centre_box(geo, chip, 0)
    gray = canvas_pixels(page, f"{CANVAS} canvas.scc-image", box)[0, 0, :3].astype(float)
    seen = composite_pixels(page, f"{CANVAS} canvas.scc-image, {FILL}", box)[0, 0, :3]
    assert np.allclose(seen, 0.65 * gray + 0.35 * colour, atol=4), (seen, gray, colour)

    # (c) The fractions shown: two classes summing to 100 %, matching the fill's chip counts.
    first, first_text = fractions(page), page.evaluate(_SUMMARY_JS)
    assert set(first) == {A, B}
    assert sum(first.values()) == pytest.approx(100.0, abs=0.2)
    assert first[A] == pytest.approx(100 * is_1.mean(), abs=0.1)

    # The class panel's button picks class 1 again; a precipitate chip joins class 1, the
    # prototypes move and the fractions shown change.
    select_class(page, A)
    page.locator(".widget-toggle-button.mod-active", has_text="1: Ni matrix").wait_for()
    page.mouse.click(*chip_point(geo, CHIP_C))
    wait_for_pixels(page, OVERLAY, is_colour(CLASS_1), box=outline_band(geo, CHIP_C))
    page.wait_for_function(f"f => {{ const t = ({_SUMMARY_JS})(); return t && t !== f; }}",
                           arg=first_text)
    second = fractions(page)
    assert second != first and set(second) == {A, B}
    after = fill_centres(page, geo)
    assert second[A] == pytest.approx(
        100 * np.all(after[..., :3] == CLASS_1, axis=-1).mean(), abs=0.1)
    assert not np.array_equal(after, before)

    if os.environ.get("SFW_SCREENSHOT"):
        shot = save_screenshot(page, ROOT_DIR / "docs" / "dashboard.png")
    else:
        shot = save_screenshot(page, tmp_path / "dashboard.png")
    assert 0 < shot.stat().st_size <= SCREENSHOT_MAX_BYTES
    geo = page.evaluate(_GEOMETRY_JS, CANVAS)  # the viewport grew: positions may have moved

    # A broken upload: a readable message, no traceback, and the labels stay.
    with page.expect_file_chooser() as chooser:
        page.locator("button.widget-upload", has_text="Image file").click()
    chooser.value.set_files({"name": "broken.tif", "mimeType": "image/tiff",
                             "buffer": b"II*\x00this is not a TIFF"})
    error = page.locator(".sfw-dash-error")  # an upload opens at once: no "Open" step
    error.wait_for(timeout=30_000)
    message = error.inner_text()
    assert message.lstrip("⚠ ").startswith("Could not open broken.tif: ") and len(message) > 40, message
    text = page.inner_text("body")
    assert "Traceback" not in text and 'File "' not in text
    for chip, colour in ((CHIP_A, CLASS_1), (CHIP_B, CLASS_2), (CHIP_C, CLASS_1)):
        assert is_colour(colour)(canvas_pixels(page, OVERLAY, outline_band(geo, chip)))
    assert np.array_equal(fill_centres(page, geo), after)
    assert fractions(page) == second
    assert not unexpected_errors(page), unexpected_errors(page)


_AXES_JS = """() => { for (const f of document.querySelectorAll('.bqplot.figure')) {
    const t = f.querySelector('.mainheading');
    if (t && t.textContent.includes('EDS')) {
      return [...f.querySelectorAll('g.axis')].map(a => [...a.querySelectorAll('g.tick')].map(
        g => [g.getAttribute('transform') || '', (g.querySelector('text') || {}).textContent || '']));
    } } return null; }"""

_TABLE_JS = """() => [...document.querySelectorAll('table.sfw-measurements tr')].slice(1).map(
    r => [...r.querySelectorAll('td')].map(td => td.textContent))"""


def _demo_files(folder: Path) -> tuple[Path, Path]:
    """The 128-px demo as a calibrated image .hspy and an EDS .hspy, like a microscope's export."""
    import exspy
    import hyperspy.api as hs

    import stem_fsl_widgets as sfw

    ds = sfw.datasets.demo(size=128)
    img = hs.signals.Signal2D(ds.image)
    for ax in img.axes_manager.signal_axes:
        ax.scale, ax.units = ds.pixel_size, "nm"
    cube = exspy.signals.EDSTEMSpectrum(np.asarray(ds.eds))
    e = cube.axes_manager.signal_axes[0]
    e.scale, e.offset, e.units = float(ds.energy_axis[1] - ds.energy_axis[0]), float(ds.energy_axis[0]), "keV"
    for ax in cube.axes_manager.navigation_axes:
        ax.scale, ax.units = ds.pixel_size * ds.eds_binning, "nm"
    paths = folder / "survey.hspy", folder / "survey_eds.hspy"
    img.save(paths[0], overwrite=True)
    cube.save(paths[1], overwrite=True)
    return paths


def test_dashboard_uploads_downloads_measurements_and_log_y(dashboard_url, page, tmp_path):
    from PIL import Image

    import stem_fsl_widgets as sfw
    from stem_fsl_widgets.measure import measure_labels

    page.set_viewport_size({"width": 1400, "height": 1000})
    image_file, eds_file = _demo_files(tmp_path)
    page.goto(dashboard_url, wait_until="domcontentloaded")
    page.get_by_role("button", name="Use demo data").wait_for(timeout=60_000)
    # Image + EDS: both names shown, the pair opens without an "Open" step.
    for button, path in (("Image file", image_file), ("EDS file", eds_file)):
        with page.expect_file_chooser() as chooser:
            page.locator("button.widget-upload", has_text=button).click()
        chooser.value.set_files(str(path))
        page.locator(".sfw-files", has_text=path.name).wait_for(timeout=60_000)
    files = page.locator(".sfw-files").inner_text()
    assert "image: survey.hspy" in files and "EDS: survey_eds.hspy" in files
    page.locator(".sfw-dash-info, .sfw-dash-ok", has_text="with survey_eds.hspy").wait_for(timeout=60_000)
    assert page.locator("button.widget-upload").first.get_attribute("title") not in (None, "null")
    page.wait_for_function(
        "s => { const r = document.querySelector(s); return r && Number(r.dataset.drawn) > 0; }",
        arg=CANVAS, timeout=60_000)
    page.locator(CANVAS).scroll_into_view_if_needed()
    geo = page.evaluate(_GEOMETRY_JS, CANVAS)
    chip = 128 // 4  # the 128-px image is cut into 4×4 chips of 32 px

    def click_chip(r: int, c: int) -> None:
        x, y = (c + 0.5) * chip, (r + 0.5) * chip
        page.mouse.click(geo["left"] + (x - geo["panX"]) * geo["zoom"],
                         geo["top"] + (y - geo["panY"]) * geo["zoom"])

    # Label one chip of each of two phases (an upload has no class names: "class 1", "class 2").
    ds = sfw.datasets.demo(size=128)
    grid_truth = ds.ground_truth[chip // 2::chip, chip // 2::chip]
    (ra, ca), (rb, cb) = (np.argwhere(grid_truth == k)[0] for k in (0, 1))
    page.wait_for_timeout(500)  # let the page settle before reading positions
    geo = page.evaluate(_GEOMETRY_JS, CANVAS)
    click_chip(ra, ca)
    wait_for_pixels(page, OVERLAY, is_colour(CLASS_1), box=outline_band(geo, (ra, ca)))
    page.keyboard.press("2")
    page.locator(".widget-toggle-button.mod-active", has_text="2: class 2").wait_for()
    click_chip(rb, cb)
    wait_for_pixels(page, OVERLAY, is_colour(CLASS_2), box=outline_band(geo, (rb, cb)))
    page.wait_for_function(f"() => ({_TABLE_JS})().length >= 2", timeout=30_000)
    # The measurement table equals measurements computed in Python from the label map.
    s = sfw.Session(ds)
    s.label(int(ra * 4 + ca), "class 1")
    s.label(int(rb * 4 + cb), "class 2")
    meas = measure_labels(s.result.chip_label_map, list(s.result.classes), pixel_size=ds.pixel_size,
                          unit=ds.pixel_unit)
    shown = {row[0]: row for row in page.evaluate(_TABLE_JS)}
    for r in meas.rows():
        assert shown[r["class"]][1] == f"{r['area']:.4g}" and shown[r["class"]][3] == str(r["particles"])

    # A download arrives and opens.
    page.locator(".widget-dropdown select").last.wait_for()
    with page.expect_download(timeout=60_000) as dl:
        page.locator("button.widget-button", has_text=re.compile(r"^\s*download\s*$")).click()
    download = dl.value
    assert download.suggested_filename.endswith("_labels.png")
    with Image.open(download.path()) as png:
        assert png.size[0] == 128 and 128 < png.size[1] < 160  # the map, then its class legend
    with page.expect_download(timeout=60_000) as dl:
        page.locator("button.widget-button", has_text="download all (zip)").click()
    import zipfile

    names = zipfile.ZipFile(dl.value.path()).namelist()
    assert {n.split("_", 1)[-1] for n in names} >= {"measurements.csv", "session.json", "labels.tif"}

    # Log y: the spectrum's axis keeps finite ticks.
    page.get_by_text("log y").click()
    page.wait_for_timeout(500)
    axes = page.evaluate(_AXES_JS)
    assert axes and len(axes) == 2
    y_ticks = axes[1]
    assert len(y_ticks) >= 2, axes
    assert all("NaN" not in t and "Infinity" not in t for t, _ in y_ticks), y_ticks
    assert all(label.strip() for _, label in y_ticks), y_ticks

    assert not unexpected_errors(page), unexpected_errors(page)

    # Clear: both names go, the page is back to the chooser. (bqplot may log a NaN path for a
    # figure on its way out of the page; nothing is left to see, so errors are checked above.)
    page.locator("button.widget-button", has_text=re.compile(r"^\s*clear\s*$")).click()
    page.wait_for_function(
        "() => !document.querySelector('.sfw-files').textContent.includes('survey')", timeout=30_000)
    # The names go first; the app's views leave the page a moment later.
    page.wait_for_function("s => !document.querySelector(s)", arg=CANVAS, timeout=30_000)
    assert page.locator(CANVAS).count() == 0


def mixed_cells(fill: np.ndarray, geo: dict) -> int:
    """Chips whose interior (3 px in from the edges) shows both class colours on the fill layer."""
    n = 0
    for r in range(N_SIDE):
        for c in range(N_SIDE):
            x0, y0, x1, y1 = chip_rect(geo, (r, c))
            cell = fill[y0 + 3:y1 - 3, x0 + 3:x1 - 3]
            if cell.size == 0:
                continue
            ones = sum(bool(np.any(np.all(np.abs(cell[..., :3].astype(int) - col) <= 2, axis=-1)
                                   & (cell[..., 3] == 255))) for col in (CLASS_1, CLASS_2))
            n += ones == 2
    return n


def test_dashboard_batch_applies_the_labels_to_uploaded_images(dashboard_url, page, tmp_path):
    """Label the demo, choose two other images, apply, follow the progress, download the zip."""
    import csv
    import zipfile

    import tifffile

    paths = other_demo_images(tmp_path)
    page.set_viewport_size({"width": 1400, "height": 1000})
    geo = open_demo(page, dashboard_url)
    page.mouse.click(*chip_point(geo, CHIP_B))  # Ni matrix (class 1 is active)
    wait_for_pixels(page, OVERLAY, is_colour(CLASS_1), box=outline_band(geo, CHIP_B))
    select_class(page, B)
    page.mouse.click(*chip_point(geo, CHIP_C))
    wait_for_pixels(page, OVERLAY, is_colour(CLASS_2), box=outline_band(geo, CHIP_C))

    # The pixel-map switch: the fill layer goes from one colour per chip to pixel outlines.
    assert mixed_cells(canvas_pixels(page, FILL), geo) == 0
    page.get_by_text("pixel map", exact=True).click()
    wait_for_pixels(page, FILL, lambda px: mixed_cells(px, geo) >= 3, timeout=90)
    page.get_by_text("pixel map", exact=True).click()
    wait_for_pixels(page, FILL, lambda px: mixed_cells(px, geo) == 0, timeout=30)

    batch = page.locator(".sfw-batch")
    batch.scroll_into_view_if_needed()
    with page.expect_file_chooser() as chooser:
        batch.locator("button.widget-upload").click()
    chooser.value.set_files([str(p) for p in paths])
    page.locator(".sfw-batch-files", has_text="2 images: other1.npy").wait_for(timeout=60_000)
    batch.get_by_role("button", name="apply labels to these images").click()
    page.locator(".sfw-batch-message", has_text="Segmented 2 of 2").wait_for(timeout=180_000)
    assert "2 of 2 images" in page.locator(".sfw-batch-progress").inner_text()
    with page.expect_download(timeout=60_000) as dl:
        batch.get_by_role("button", name="download zip").click()
    assert dl.value.suggested_filename.endswith("_batch.zip")
    with zipfile.ZipFile(dl.value.path()) as z:
        names = set(z.namelist())
        rows = list(csv.DictReader(io.StringIO(z.read("summary.csv").decode())))
        labels = tifffile.imread(io.BytesIO(z.read("other1/other1_labels.tif")))
    assert {"other1/other1_labels.png", "other2/other2_measurements.csv"} <= names
    assert [r["status"] for r in rows] == ["ok", "ok"] and labels.shape == (256, 256)
    assert set(np.unique(labels)) <= {0, 1} and "no EDS" in rows[0]["notes"]
    assert not unexpected_errors(page), unexpected_errors(page)

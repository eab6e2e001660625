"""Make the README's screenshot ``docs/dashboard.png``: the Voilà dashboard after 3 clicks per phase.

Run from the repository root with the project's environment: ``python docs/make_screenshot.py``
(needs Debian's Chromium at /usr/bin/chromium, driven by Playwright; no downloads).

What it does, the way a microscopist would: serve ``stem_fsl_widgets/apps/dashboard.ipynb`` with Voilà,
open it at 1400×1000, click "Use demo data", then for each of the demo's four classes press its
key (1–4) on the canvas and click 3 chips that lie inside that phase (drawn from the demo's
ground truth, as the benchmarks do: ``draw_supports(..., 3, default_rng(0))``), wait for the
segmentation to settle, hover an unlabelled chip so the spectrum panel shows it, and save the
whole dashboard. The page helpers come from the browser tests (``tests/browser``).

Nothing is written outside ``docs/dashboard.png`` and temporary folders: Jupyter's config and
runtime dirs are private, and the kernel autosaves to ``/tmp/stem_fsl_widgets_autosave`` (a
neutral name, since the page prints it), emptied before and removed after the run so nothing
is restored from an earlier one.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from browser.conftest import (  # noqa: E402
    CHROMIUM,
    CHROMIUM_ARGS,
    _Servers,
    free_port,
    wait_for_pixels,
)
from browser.test_dashboard_browser import (  # noqa: E402
    _GEOMETRY_JS,
    _SUMMARY_JS,
    CANVAS,
    OVERLAY,
    SCREENSHOT_MAX_BYTES,
    chip_point,
    is_colour,
    open_demo,
    outline_band,
    shrink_png,
)

import stem_fsl_widgets as sfw  # noqa: E402
from stem_fsl_widgets.evaluate import chip_truth, draw_supports  # noqa: E402
from stem_fsl_widgets.session import PALETTE  # noqa: E402

OUT = ROOT / "docs" / "dashboard.png"
NOTEBOOK = ROOT / "stem_fsl_widgets" / "apps" / "dashboard.ipynb"
VIEWPORT = {"width": 1400, "height": 1000}
SHOTS = 3  # labelled chips per class
AUTOSAVE = Path(tempfile.gettempdir()) / "stem_fsl_widgets_autosave"  # shown on the page

# Bottom of the dashboard in page pixels, plus a margin (its last line is the autosave note).
_HEIGHT_JS = """() => { const d = document.querySelector('.sfw-dashboard');
    const b = d.getBoundingClientRect(); return Math.ceil(b.top + d.scrollHeight + 40); }"""


def plan() -> tuple[list[tuple[int, int]], int, object]:
    """Chips to label ``[(chip, class index)]`` by class, an unlabelled chip to hover, the grid.

    The hovered chip is a fully pure CoCu-precipitate chip (class index 1) that is not a
    support and has the most pure same-phase neighbours, so it sits inside the precipitate.
    """
    ds = sfw.datasets.demo()
    grid = sfw.Session(ds, chip_size=32).grid
    truth, purity = chip_truth(ds.ground_truth, grid)
    supports = draw_supports(truth, purity, SHOTS, np.random.default_rng(0))
    clicks = sorted(supports.items(), key=lambda t: (t[1], t[0]))

    pure = {i for i in range(truth.size) if purity[i] >= 1.0}
    rc = {i: grid.rowcol(i) for i in range(truth.size)}
    by_rc = {v: k for k, v in rc.items()}

    def inside(i: int) -> int:
        r, c = rc[i]
        near = (by_rc.get((r + dr, c + dc)) for dr in (-1, 0, 1) for dc in (-1, 0, 1))
        return sum(1 for j in near if j is not None and j in pure and truth[j] == truth[i])

    candidates = [i for i in sorted(pure) if truth[i] == 1 and i not in supports]
    hover = max(candidates, key=inside)
    return clicks, hover, grid


def start_voila(tmp: Path) -> tuple[_Servers, int]:
    """``python -m voila dashboard.ipynb`` on a free port with private Jupyter dirs."""
    servers, port = _Servers(tmp), free_port()
    servers.start(["voila", NOTEBOOK.name, "--no-browser", f"--port={port}", "--Voila.ip=127.0.0.1",
                   "--Voila.port_retries=0", "--show_tracebacks=True"],
                  cwd=NOTEBOOK.parent, port=port, timeout=120,
                  env={"SFW_AUTOSAVE_DIR": str(AUTOSAVE), "SFW_DEMO": "0"})
    return servers, port


def wait_stable_summary(page, settle: float = 2.0, timeout: float = 90.0) -> str:
    """Wait for the results summary line, then until it has not changed for ``settle`` s."""
    page.wait_for_function(f"() => ({_SUMMARY_JS})() !== null", timeout=timeout * 1000)
    deadline = time.monotonic() + timeout
    last, since = page.evaluate(_SUMMARY_JS), time.monotonic()
    while time.monotonic() - since < settle:
        if time.monotonic() > deadline:
            raise TimeoutError(f"summary still changing after {timeout} s: {last!r}")
        page.wait_for_timeout(250)
        now = page.evaluate(_SUMMARY_JS)
        if now != last:
            last, since = now, time.monotonic()
    return last


def screenshot_png(page) -> bytes:
    """The whole dashboard as PNG, palette-quantised (128, 64 or 32 colours) if over 300 KB."""
    return shrink_png(page.screenshot(full_page=True))


def main(out: Path = OUT) -> Path:
    """Serve the dashboard, label 3 chips per demo phase, hover one, save the screenshot."""
    from playwright.sync_api import sync_playwright

    t0 = time.monotonic()
    clicks, hover, grid = plan()
    shutil.rmtree(AUTOSAVE, ignore_errors=True)  # never restore labels from an earlier run
    tmp = Path(tempfile.mkdtemp(prefix="sfw_screenshot_"))
    servers = None
    try:
        servers, port = start_voila(tmp)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                         args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport=VIEWPORT)
                geo = open_demo(page, f"http://127.0.0.1:{port}/")
                names = [page.locator(".widget-toggle-button", has_text=re.compile(rf"^{k}: "))
                         .inner_text().split(": ", 1)[1] for k in range(1, 5)]
                print("classes:", ", ".join(names))

                for chip, k in clicks:
                    key = str(k + 1)
                    page.focus(CANVAS)  # keys 1–9 pick a class while the canvas has focus
                    page.keyboard.press(key)
                    page.locator(".widget-toggle-button.mod-active",
                                 has_text=f"{key}: {names[k]}").wait_for()
                    rc = grid.rowcol(chip)
                    page.mouse.click(*chip_point(geo, rc))
                    colour = tuple(int(PALETTE[k][i:i + 2], 16) for i in (1, 3, 5))
                    wait_for_pixels(page, OVERLAY, is_colour(colour), box=outline_band(geo, rc),
                                    timeout=30)
                    print(f"  class {key} ({names[k]}): chip {chip} at (row, col) {rc}")

                page.get_by_text(f"{len(clicks)} labelled chips in 4 classes").wait_for(
                    timeout=60_000)
                summary = wait_stable_summary(page)
                print("summary:", summary)

                # Grow the viewport to the dashboard's height (Voilà scrolls inside its own
                # panel), then hover: the geometry may have moved with the new size.
                for _ in range(3):  # the layout may shift once the panel stops scrolling
                    height = max(VIEWPORT["height"], int(page.evaluate(_HEIGHT_JS)))
                    if height == page.viewport_size["height"]:
                        break
                    page.set_viewport_size({"width": VIEWPORT["width"], "height": height})
                    page.wait_for_timeout(400)
                geo = page.evaluate(_GEOMETRY_JS, CANVAS)
                page.mouse.move(*chip_point(geo, grid.rowcol(hover)))
                r, c = grid.rowcol(hover)
                page.get_by_text(re.compile(rf"chip {hover} \(row {r}, col {c}\)")).wait_for()
                page.wait_for_timeout(1000)  # the spectrum figure redraws with the chip's curve
                png = screenshot_png(page)
            finally:
                browser.close()
    finally:
        if servers is not None:
            servers.stop()
        shutil.rmtree(AUTOSAVE, ignore_errors=True)
        shutil.rmtree(tmp, ignore_errors=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(png)
    size = out.stat().st_size
    print(f"wrote {out} ({size / 1024:.0f} KB) in {time.monotonic() - t0:.0f} s")
    if size > SCREENSHOT_MAX_BYTES:
        raise SystemExit(f"{out} is {size} bytes, over {SCREENSHOT_MAX_BYTES}")
    return out


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    main()

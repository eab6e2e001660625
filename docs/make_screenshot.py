"""Make the README's screenshot: the Voilà dashboard on the demo data, 3 clicks per phase.

Run from the repository root: ``python docs/make_screenshot.py`` (needs Debian's Chromium).
Reuses the browser tests' page helpers; nothing is written outside ``docs/`` and a temp dir.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "browser"))
sys.path.insert(0, str(ROOT / "tests"))

from browser.conftest import CHROMIUM, CHROMIUM_ARGS, _isolated_env, free_port, wait_for_port  # noqa: E402
from browser.test_dashboard_browser import _SUMMARY_JS, CANVAS, chip_point, open_demo  # noqa: E402

import stem_fsl_widgets as sfw  # noqa: E402
from stem_fsl_widgets.evaluate import chip_truth, draw_supports  # noqa: E402


def main(out: Path = ROOT / "docs" / "dashboard.png") -> Path:
    """Serve the dashboard, label 3 chips per demo phase, save a full-page screenshot."""
    from PIL import Image
    from playwright.sync_api import sync_playwright

    ds = sfw.datasets.demo()
    grid = sfw.Session(ds, chip_size=32).grid
    truth, purity = chip_truth(ds.ground_truth, grid)
    clicks = sorted(draw_supports(truth, purity, 3, np.random.default_rng(0)).items(), key=lambda t: t[1])

    tmp = Path(tempfile.mkdtemp(prefix="stem_fsl_widgets_"))
    port = free_port()
    env = {**_isolated_env(tmp / "jupyter"), "SFW_AUTOSAVE_DIR": str(tmp / "autosave"), "SFW_DEMO": "0"}
    log = tmp / "voila.log"
    with open(log, "wb") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "voila", "dashboard.ipynb", "--no-browser", f"--port={port}",
             "--Voila.ip=127.0.0.1", "--Voila.port_retries=0"],
            cwd=ROOT / "notebooks", stdout=fh, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        wait_for_port(port, proc, log, 60)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            geo = open_demo(page, f"http://127.0.0.1:{port}/")
            for chip, k in clicks:
                page.focus(CANVAS)  # keys 1–9 pick the class while the canvas has focus
                page.keyboard.press(str(k + 1))
                page.locator(".widget-toggle-button.mod-active", has_text=f"{k + 1}: ").wait_for()
                page.mouse.click(*chip_point(geo, grid.rowcol(chip)))
                page.wait_for_timeout(200)
            page.wait_for_function(f"() => ({_SUMMARY_JS})() !== null")
            page.wait_for_timeout(1500)
            page.mouse.move(*chip_point(geo, grid.rowcol(clicks[0][0])))
            page.wait_for_timeout(500)
            height = page.evaluate("() => document.querySelector('.sfw-dashboard').scrollHeight")
            page.set_viewport_size({"width": 1400, "height": int(height) + 40})
            page.locator(CANVAS).scroll_into_view_if_needed()
            png = page.screenshot(full_page=True)
            browser.close()
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    img = Image.open(io.BytesIO(png)).convert("RGB")
    img = img.quantize(colors=128)  # keeps the committed picture small
    img.save(out, optimize=True)
    print(f"wrote {out} ({out.stat().st_size / 1024:.0f} KB)")
    return out


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    main()

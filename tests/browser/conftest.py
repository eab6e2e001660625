"""Fixtures for tests that drive headless Chromium against Voilà or JupyterLab.

- ``chromium_browser`` (session): a Playwright Chromium, system binary, no downloads.
- ``page``: a fresh page (own context, 1000×900 viewport) closed after the test;
  ``unexpected_errors(page)`` lists its errors minus known offline noise.
- ``voila_server``: factory ``start(notebook_path, timeout=60) -> url``.
- ``jupyterlab_server``: factory ``start(root_dir, timeout=60) -> base url`` (no token).
- ``write_notebook(path, cells)``: write code cells as an .ipynb (python3 kernel).
- ``canvas_pixels`` / ``composite_pixels`` / ``wait_for_pixels``: read canvas pixels.
"""

from __future__ import annotations

import base64
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-gpu",
]


# ---- browser -------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def chromium_browser() -> Iterator[Any]:
    """Headless Chromium (``/usr/bin/chromium``) through Playwright's sync API."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} not found; install the distribution's chromium package")
    from playwright.sync_api import sync_playwright  # a test dependency: fail loudly if absent

    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            browser.close()


# Console errors that come from the environment, not from code under test: Voilà's template
# links Font Awesome from a CDN (offline: unresolved), and Panel's JupyterLab extension
# (@pyviz/jupyterlab_pyviz) cannot load in Voilà 0.5's module scope.
KNOWN_CONSOLE_NOISE = ("net::ERR_NAME_NOT_RESOLVED", "jupyterlab_pyviz")


def unexpected_errors(page: Any) -> list[str]:
    """Uncaught page errors plus console errors not in ``KNOWN_CONSOLE_NOISE``."""
    console = [t for t in page.console_errors if not any(k in t for k in KNOWN_CONSOLE_NOISE)]
    return page.page_errors + console


@pytest.fixture
def page(chromium_browser: Any) -> Iterator[Any]:
    """A fresh page in its own 1000×900 context, closed after the test.

    Collects ``page.console_errors`` (console.error texts) and ``page.page_errors``
    (uncaught exceptions); see :func:`unexpected_errors`.
    """
    context = chromium_browser.new_context(viewport={"width": 1000, "height": 900})
    pg = context.new_page()
    pg.console_errors = []
    pg.page_errors = []
    pg.on("console", lambda m: m.type == "error" and pg.console_errors.append(m.text))
    pg.on("pageerror", lambda e: pg.page_errors.append(str(e)))
    try:
        yield pg
    finally:
        context.close()


# ---- servers -------------------------------------------------------------------------------


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, proc: subprocess.Popen, log: Path, timeout: float) -> None:
    """Wait until something accepts connections on ``port`` (socket connect, no HTTP)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}:\n{log.read_text()[-4000:]}")
        with socket.socket() as s:
            s.settimeout(0.2)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"no server on port {port} after {timeout} s:\n{log.read_text()[-4000:]}")


def _isolated_env(home: Path) -> dict[str, str]:
    # Private config/runtime dirs: the user's Jupyter settings must not change a test.
    env = dict(os.environ)
    for var, sub in (("JUPYTER_CONFIG_DIR", "config"), ("JUPYTER_RUNTIME_DIR", "runtime"),
                     ("IPYTHONDIR", "ipython")):
        (home / sub).mkdir(parents=True, exist_ok=True)
        env[var] = str(home / sub)
    env["JUPYTER_PLATFORM_DIRS"] = "1"
    env["PYDEVD_DISABLE_FILE_VALIDATION"] = "1"
    env["PYTHONWARNINGS"] = "ignore"  # kernel/server warnings are not under test here
    return env


class _Servers:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.procs: list[subprocess.Popen] = []

    def start(self, args: list[str], cwd: Path, port: int, timeout: float,
              env: dict[str, str] | None = None) -> None:
        log = self.tmp / f"server-{port}.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", *args], cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
                env={**_isolated_env(self.tmp / f"jupyter-{port}"), **(env or {})},
                start_new_session=True,
            )
        self.procs.append(proc)
        wait_for_port(port, proc, log, timeout)

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()  # by PID; its kernels get shut down by the server
        for proc in self.procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)


@pytest.fixture
def voila_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., str]]:
    """Factory ``start(notebook_path, timeout=60, env=None) -> url`` serving one notebook with Voilà.

    Runs ``python -m voila NOTEBOOK --no-browser --port=P --Voila.ip=127.0.0.1`` in the
    notebook's folder, waits for the port, and kills the server (by PID) after the test.
    ``env`` adds variables to the server's (and so its kernels') environment.
    """
    servers = _Servers(tmp_path_factory.mktemp("voila"))

    def start(notebook_path: str | os.PathLike, timeout: float = 60,
              env: dict[str, str] | None = None) -> str:
        nb = Path(notebook_path).resolve()
        port = free_port()
        servers.start(
            ["voila", nb.name, "--no-browser", f"--port={port}", "--Voila.ip=127.0.0.1",
             "--show_tracebacks=True", "--Voila.port_retries=0"],
            cwd=nb.parent, port=port, timeout=timeout, env=env,
        )
        return f"http://127.0.0.1:{port}/"

    try:
        yield start
    finally:
        servers.stop()


@pytest.fixture
def jupyterlab_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., str]]:
    """Factory ``start(root_dir, timeout=60) -> url`` of a token-less JupyterLab.

    The app is exposed as ``window.jupyterapp`` so a test can run commands such as
    ``notebook:run-all-cells``.
    """
    servers = _Servers(tmp_path_factory.mktemp("lab"))

    def start(root_dir: str | os.PathLike, timeout: float = 60) -> str:
        port = free_port()
        servers.start(
            ["jupyter", "lab", "--no-browser", f"--port={port}", "--ServerApp.ip=127.0.0.1",
             "--ServerApp.port_retries=0", "--IdentityProvider.token=",
             "--ServerApp.password=", "--ServerApp.disable_check_xsrf=True",
             "--LabApp.expose_app_in_browser=True", "--allow-root",
             f"--ServerApp.root_dir={Path(root_dir).resolve()}"],
            cwd=Path(root_dir), port=port, timeout=timeout,
        )
        return f"http://127.0.0.1:{port}/"

    try:
        yield start
    finally:
        servers.stop()


@pytest.fixture
def write_notebook() -> Callable[[Path, list[str]], Path]:
    """Return ``write(path, cells)``: save code cells as a python3 notebook, return the path."""
    nbformat = pytest.importorskip("nbformat")

    def write(path: Path, cells: list[str]) -> Path:
        nb = nbformat.v4.new_notebook()
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                     "language": "python"}
        nb.cells = [nbformat.v4.new_code_cell(src) for src in cells]
        nbformat.write(nb, str(path))
        return Path(path)

    return write


# ---- pixels ------------------------------------------------------------------------------

_READ_JS = """
([selector, box, composite]) => {
  const all = [...document.querySelectorAll(selector)];
  if (!all.length) return null;
  const first = all[0];
  const [x, y, w, h] = box || [0, 0, first.width, first.height];
  let g;
  if (composite) {
    // Stack every matching canvas the way the page shows them, CSS opacity included.
    const tmp = document.createElement('canvas');
    tmp.width = first.width; tmp.height = first.height;
    g = tmp.getContext('2d');
    for (const c of all) {
      const s = getComputedStyle(c);
      if (s.display === 'none' || s.visibility === 'hidden') continue;
      g.globalAlpha = parseFloat(s.opacity);
      g.drawImage(c, 0, 0);
    }
  } else {
    g = first.getContext('2d');
  }
  const d = g.getImageData(x, y, w, h).data;
  let s = '';
  for (let i = 0; i < d.length; i += 0x8000) s += String.fromCharCode(...d.subarray(i, i + 0x8000));
  return {w, h, b64: btoa(s)};
}
"""


def _read(page: Any, selector: str, box: tuple[int, int, int, int] | None,
          composite: bool) -> np.ndarray | None:
    out = page.evaluate(_READ_JS, [selector, list(box) if box else None, composite])
    if out is None:
        return None
    data = np.frombuffer(base64.b64decode(out["b64"]), np.uint8)
    return data.reshape(out["h"], out["w"], 4)


def canvas_pixels(page: Any, selector: str,
                  box: tuple[int, int, int, int] | None = None) -> np.ndarray | None:
    """RGBA pixels, shape (h, w, 4) uint8, of the first canvas matching ``selector``.

    ``box = (x, y, w, h)`` in the canvas's backing-store pixels (default: all of it);
    ``None`` if no canvas matches.
    """
    return _read(page, selector, box, composite=False)


def composite_pixels(page: Any, selector: str,
                     box: tuple[int, int, int, int] | None = None) -> np.ndarray | None:
    """Pixels of all canvases matching ``selector`` stacked in DOM order as displayed.

    Honours each canvas's CSS ``opacity`` and ``display``; the canvases must share one size
    and position (layers of one widget, e.g. ``".scc-root canvas"``).
    """
    return _read(page, selector, box, composite=True)


def wait_for_pixels(page: Any, selector: str, predicate: Callable[[np.ndarray], bool], *,
                    box: tuple[int, int, int, int] | None = None, composite: bool = False,
                    timeout: float = 15.0, interval: float = 0.1) -> np.ndarray:
    """Poll the pixels until ``predicate(pixels)`` holds; return them.

    Raises
    ------
    TimeoutError
        With the last pixels' summary if the predicate never held.
    """
    deadline = time.monotonic() + timeout
    px = None
    while True:
        px = _read(page, selector, box, composite)
        if px is not None and predicate(px):
            return px
        if time.monotonic() > deadline:
            summary = "no canvas" if px is None else f"mean RGBA {px.reshape(-1, 4).mean(0)}"
            raise TimeoutError(f"pixels of {selector!r} never matched in {timeout} s ({summary})")
        page.wait_for_timeout(interval * 1000)


@pytest.fixture
def pixels() -> Any:
    """The pixel helpers as one object: ``pixels.read``, ``.composite``, ``.wait_for``."""

    class _Pixels:
        read = staticmethod(canvas_pixels)
        composite = staticmethod(composite_pixels)
        wait_for = staticmethod(wait_for_pixels)

    return _Pixels()


def other_demo_images(folder: Path, size: int = 256) -> list[Path]:
    """Two other acquisitions of the demo (seeds 1 and 2) as bare .npy images, for a batch."""
    import stem_fsl_widgets as sfw

    paths = []
    for seed in (1, 2):
        path = folder / f"other{seed}.npy"
        np.save(path, sfw.datasets.demo(size=size, seed=seed).image)
        paths.append(path)
    return paths

"""The same clicks through both UIs draw the same arrays: the notebook app and the Panel app."""

import numpy as np
import pytest

pn = pytest.importorskip("panel")

import stem_fsl_widgets as sfw  # noqa: E402
from stem_fsl_widgets.apps.panel_app import PanelApp  # noqa: E402
from stem_fsl_widgets.viewmodel import rgba  # noqa: E402


def _panel_overlay(app: PanelApp):
    """RGBA fill / outline, uncertainty and suggestion flags back from the Panel app's quads."""
    d = app.chip_source.data
    lay = app.model.layers
    fill = np.array([rgba(c)[:3] for c in d["fill_color"]], np.uint8)
    fill_a = np.rint(np.asarray(d["fill_alpha"]) / lay.segmentation_opacity * 255).astype(np.uint8)
    line = np.array([rgba(c)[:3] for c in d["line_color"]], np.uint8)
    line_a = np.rint(np.asarray(d["line_alpha"]) / lay.supports_opacity * 255).astype(np.uint8)
    return (np.column_stack([fill, fill_a]), np.column_stack([line, line_a]),
            np.array([h != "blank" for h in d["hatch_pattern"]], np.uint8),
            np.asarray(d["suggested"], np.uint8))


def test_same_clicks_same_overlay_fractions_and_markers():
    from bokeh.events import Pan, PanEnd, PanStart, Tap

    ds = sfw.datasets.demo(size=128)
    note = sfw.FewShotApp(sfw.Session(ds, chip_size=16))
    web = PanelApp(sfw.Session(ds, chip_size=16))
    canvas, fig = note.grid_view.canvas, web.figure

    def both(notebook_step, panel_step):
        notebook_step()
        panel_step()

    def tap(x, y, shift=False):
        both(lambda: (canvas.handle_mouse_down(x, y, shift=shift), canvas.handle_mouse_up(x, y, shift=shift)),
             lambda: fig._trigger_event(Tap(fig, x=x, y=y,
                                            modifiers={"shift": shift, "ctrl": False, "alt": False})))

    def drag(points):
        def nb():
            canvas.handle_mouse_down(*points[0])
            for p in points[1:]:
                canvas.handle_mouse_move(*p)
            canvas.handle_mouse_up(*points[-1])

        def web_drag():
            fig._trigger_event(PanStart(fig, x=points[0][0], y=points[0][1]))
            for x, y in points[1:]:
                fig._trigger_event(Pan(fig, x=x, y=y))
            fig._trigger_event(PanEnd(fig, x=points[-1][0], y=points[-1][1]))

        both(nb, web_drag)

    def key(k, ctrl=False, shift=False):
        both(lambda: canvas.handle_key(k, ctrl=ctrl, shift=shift),
             lambda: web.keys._handle_msg({"key": k, "ctrl": ctrl, "shift": shift}))

    tap(8, 8)                          # Ni matrix
    key("2")
    tap(100, 100)
    key("3")
    drag([(8, 120), (24, 120), (40, 120)])
    key("4")
    tap(120, 8)
    tap(120, 8, shift=True)            # removed again
    tap(72, 40)
    key("z", ctrl=True)
    key("z", ctrl=True, shift=True)
    both(lambda: note.spectrum.elements.__setattr__("value", ["Ni", "Cu"]),
         lambda: web.elements.__setattr__("value", ["Ni", "Cu"]))
    both(lambda: note.results.suggest(4), lambda: web.suggest(4))

    assert note.session.supports == web.session.supports and len(note.session.supports) >= 5
    c = note.grid_view.canvas
    fill, outline, unc, sug = _panel_overlay(web)
    np.testing.assert_array_equal(c.fill_rgba, fill)
    np.testing.assert_array_equal(c.outline_rgba, outline)
    np.testing.assert_array_equal(c.uncertain, unc)
    np.testing.assert_array_equal(c.suggested, sug)
    assert sug.sum() == 4
    # Fractions: the same bars (names, values, colours).
    assert list(note.results.fraction_bars.x) == web.fraction_source.data["cls"]
    np.testing.assert_allclose(note.results.fraction_bars.y, web.fraction_source.data["fraction"])
    assert list(note.results.fraction_bars.colors) == web.fraction_source.data["colour"]
    # Element markers: the same lines at the same energies.
    assert list(note.spectrum.marker_labels.text) == web.line_source.data["name"]
    np.testing.assert_allclose(note.spectrum.marker_labels.x, web.line_source.data["x"])
    assert len(web.line_source.data["x"]) >= 2
    # Measurements: the same table.
    assert note.results.measurements.value == web.measurements.object
    note.close()
    web.close()

"""Pure drawing logic of the widgets: overlay arrays, diffs, texts, small helpers (no widgets)."""

import numpy as np
import pytest

import stem_fsl_widgets as sfw
from stem_fsl_widgets.errors import GridError
from stem_fsl_widgets.widgets.overlay import (
    HIGHLIGHT_RGBA,
    changed_rows,
    chip_overlay,
    describe_chip,
    error_message,
    guard,
    rgba,
    session_overlay,
)


@pytest.fixture
def ready(two_phase):
    img, eds, energy, _ = two_phase
    s = sfw.Session(sfw.Dataset(img, eds=eds, energy_axis=energy, eds_binning=4), chip_size=16)
    s.add_class("fine", "#E69F00")
    s.add_class("coarse", "#56B4E9")
    s.label(0, "fine")        # top-left: fine lattice
    s.label(7, "coarse")      # top-right: coarse lattice
    return s


def test_rgba_parses_hex():
    assert rgba("#56B4E9") == (86, 180, 233, 255)
    assert rgba("fff", 10) == (255, 255, 255, 10)
    with pytest.raises(ValueError, match="hex colour"):
        rgba("orange")


def test_overlay_matches_result(ready):
    s = ready
    s.configure(threshold=0.001)  # this scene is easy: a tiny threshold flags a few chips
    r = s.result
    ov = session_overlay(s)
    colours = np.array([rgba(s.classes[c]) for c in r.classes], np.uint8)
    np.testing.assert_array_equal(ov.fill, colours[r.labels])
    np.testing.assert_array_equal(ov.uncertain, r.uncertain.astype(np.uint8))
    assert ov.uncertain.sum() == r.uncertain.sum() > 0
    # Supports outlined in their class colour, nothing else outlined.
    assert ov.outline[0].tolist() == [230, 159, 0, 255]
    assert ov.outline[7].tolist() == [86, 180, 233, 255]
    assert np.flatnonzero(ov.outline[:, 3]).tolist() == [0, 7]
    # Left half (cols 0-3) predicted "fine", right half "coarse" on this scene.
    cols = np.arange(s.n_chips) % 8
    assert (r.labels[cols < 4] == 0).mean() > 0.9 and (r.labels[cols >= 4] == 1).mean() > 0.9


def test_overlay_without_result_draws_supports_only():
    ov = chip_overlay(4, {"a": "#E69F00", "b": "#009E73"}, {2: "b", 9: "a"}, None, highlight=[1, 2, -3])
    assert ov.fill[:, 3].tolist() == [0, 0, 0, 0]
    assert ov.outline[2].tolist() == [0, 158, 115, 255]        # support wins over highlight
    assert ov.outline[1].tolist() == list(HIGHLIGHT_RGBA)      # suggestion
    assert ov.outline[[0, 3], 3].tolist() == [0, 0]            # out-of-range chip 9 ignored
    assert ov.uncertain.tolist() == [0, 0, 0, 0]


def test_overlay_uses_current_colours_not_result_colours(ready):
    before = session_overlay(ready)
    ready.set_colour("fine", "#CC79A7")  # no reclassification for a colour change
    after = session_overlay(ready)
    fine = np.flatnonzero(ready.result.labels == 0)
    assert (after.fill[fine] == rgba("#CC79A7")).all()
    assert changed_rows(before, after).tolist() == fine.tolist()


def test_changed_rows_is_minimal_and_within_result_changes(ready):
    s = ready
    before = session_overlay(s)
    chip = 35  # row 4, col 3: left half
    s.label(chip, "fine")
    after = session_overlay(s)
    rows = changed_rows(before, after)
    assert chip in rows
    expected = set(s.result.changed_chips(s.previous).tolist()) | {chip}
    assert set(rows.tolist()) <= expected
    assert changed_rows(after, after).size == 0
    assert changed_rows(chip_overlay(3, {}, {}, None), after).tolist() == list(range(s.n_chips))


def test_describe_chip_lists_prediction_confidence_entropy(ready):
    r = ready.result
    text = describe_chip(9, ready.grid, ready.supports, r)
    assert text.startswith("chip 9 (row 1, col 1)")
    assert f"predicted {r.classes[r.labels[9]]}" in text
    assert f"confidence {r.confidence[9]:.2f}" in text and f"entropy {r.entropy[9]:.2f}" in text
    assert "support of fine" in describe_chip(0, ready.grid, ready.supports, r)
    assert describe_chip(64, ready.grid, ready.supports, r) == ""


def test_error_message_and_guard():
    assert error_message(GridError("Chip too big.")) == "Chip too big."
    msg = error_message(KeyError("x"))
    assert msg.startswith("Unexpected error (KeyError") and "Traceback" not in msg
    seen = []
    with guard(seen.append, "do it"):
        raise ZeroDivisionError("division by zero")
    assert seen == ["Could not do it: Unexpected error (ZeroDivisionError: division by zero). "
                    "Your labels are kept; if it happens again, please report it."]
    with pytest.raises(ZeroDivisionError), guard(None):
        raise ZeroDivisionError

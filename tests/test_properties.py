"""Property tests: chip-grid geometry on random shapes, and session files that either
round-trip exactly (valid states) or fail with SessionFileError only (junk)."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import stem_fsl_widgets as sfw
from stem_fsl_widgets.errors import SessionFileError

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def grids(draw, edge="shift"):
    h = draw(st.integers(4, 120))
    w = draw(st.integers(4, 120))
    size = draw(st.integers(4, min(h, w)))
    stride = draw(st.integers(1, size))
    return sfw.ChipGrid(h, w, size, stride, edge)


def coverage(g: sfw.ChipGrid) -> np.ndarray:
    count = np.zeros((g.height, g.width), int)
    for y0, x0, y1, x1 in g.boxes:
        count[y0:y1, x0:x1] += 1
    return count


@FAST
@given(grids())
def test_shift_grid_covers_every_pixel_with_full_chips_inside_the_image(g):
    b = g.boxes
    assert b.shape == (g.n_chips, 4) and g.n_chips == g.n_rows * g.n_cols
    assert (b[:, :2] >= 0).all() and (b[:, 2] <= g.height).all() and (b[:, 3] <= g.width).all()
    assert ((b[:, 2] - b[:, 0]) == g.size).all() and ((b[:, 3] - b[:, 1]) == g.size).all()
    assert (coverage(g) >= 1).all()
    assert [g.box(i) for i in range(g.n_chips)] == [tuple(r) for r in b.tolist()]
    # Chips are numbered row-major and starts increase strictly.
    assert (np.diff(g.row_starts) > 0).all() and (np.diff(g.col_starts) > 0).all()


@FAST
@given(grids(), st.data())
def test_chip_at_returns_a_chip_that_contains_the_pixel(g, data):
    yy, xx = np.mgrid[: g.height, : g.width]
    idx = g.chip_at(yy, xx)
    assert (idx >= 0).all() and (idx < g.n_chips).all()
    b = g.boxes[idx]
    assert ((b[..., 0] <= yy) & (yy < b[..., 2]) & (b[..., 1] <= xx) & (xx < b[..., 3])).all()
    y = data.draw(st.floats(0, g.height, exclude_max=True))
    x = data.draw(st.floats(0, g.width, exclude_max=True))
    i = g.chip_at(y, x)
    y0, x0, y1, x1 = g.box(i)
    assert y0 <= y < y1 and x0 <= x < x1
    assert g.chip_at(-0.5, x) == -1 and g.chip_at(y, g.width) == -1


@FAST
@given(grids(edge="drop"))
def test_drop_grid_marks_uncovered_pixels(g):
    cov = coverage(g) > 0
    yy, xx = np.mgrid[: g.height, : g.width]
    idx = g.chip_at(yy, xx)
    assert ((idx >= 0) == cov).all()
    pix = g.to_pixels(np.ones(g.n_chips))
    assert np.isnan(pix[~cov]).all() and (pix[cov] == 1).all()


@FAST
@given(grids(), st.floats(-1e6, 1e6, allow_nan=False, allow_subnormal=False))
def test_to_pixels_of_a_constant_is_that_constant(g, value):
    pix = g.to_pixels(np.full(g.n_chips, value))
    assert pix.shape == (g.height, g.width)
    np.testing.assert_allclose(pix, value, rtol=1e-12, atol=1e-9)
    two = g.to_pixels(np.stack([np.full(g.n_chips, value), np.arange(g.n_chips)], 1))
    assert two.shape == (g.height, g.width, 2)


# ----------------------------------------------------------------------------- session files
RNG = np.random.default_rng(3)
IMAGE = RNG.normal(size=(48, 48)).astype(np.float32)
IMAGE[:, 24:] *= 3
CUBE = RNG.poisson(3.0, (12, 12, 32)).astype(np.uint16)
DATASET = sfw.Dataset(IMAGE, eds=CUBE, energy_axis=np.linspace(0.1, 3.2, 32), eds_binning=4)
CHIPS = sfw.ChipGrid(48, 48, 12).n_chips  # 16

# Control characters ("Cc") are refused in class names; surrogates ("Cs") are not text.
names = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1,
                max_size=12).filter(
    lambda s: s.strip() == s and s)
labels = st.lists(st.tuples(st.integers(0, CHIPS - 1), st.sampled_from(["a", "b", "c"]) | names),
                  max_size=8)


@settings(max_examples=40, deadline=None)
@given(labels, st.sampled_from([None, 6, 12]), st.floats(0, 1), st.sampled_from(["early", "late"]))
def test_valid_sessions_round_trip_through_json(ops, stride, threshold, fusion):
    s = sfw.Session(DATASET, chip_size=12, stride=stride, threshold=threshold, fusion=fusion)
    for chip, cls in ops:
        s.label(chip, cls)
    text = json.dumps(s.to_dict())
    back = sfw.Session.from_dict(json.loads(text), DATASET)
    assert back.supports == s.supports
    assert back.classes == s.classes
    assert back.settings == s.settings
    if s.result is not None:
        np.testing.assert_array_equal(back.result.labels, s.result.labels)
    with tempfile.TemporaryDirectory() as tmp:
        s.save(Path(tmp) / "s.json")
        assert sfw.Session.load(Path(tmp) / "s.json", DATASET).supports == s.supports


_VALID = sfw.Session(DATASET, chip_size=12)
_VALID.label(0, "a")
_VALID.label(15, "b")
VALID_STATE = _VALID.to_dict()

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


def _paths(obj, prefix=()):
    yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _paths(v, (*prefix, i))


ALL_PATHS = [p for p in _paths(VALID_STATE) if p]


@st.composite
def mutated_states(draw):
    state = json.loads(json.dumps(VALID_STATE))
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(ALL_PATHS))
        parent = state
        try:
            for key in path[:-1]:
                parent = parent[key]
            if draw(st.booleans()) and isinstance(parent, dict):
                parent.pop(path[-1], None)
            else:
                parent[path[-1]] = draw(json_values)
        except (KeyError, IndexError, TypeError):
            pass  # an earlier mutation removed this path
    return state


def _load_or_session_error(state) -> None:
    try:
        s = sfw.Session.from_dict(state, DATASET)
    except SessionFileError as err:
        assert str(err)
        return
    # Whatever loads must be a usable session.
    assert all(0 <= c < s.n_chips for c in s.supports)
    assert set(s.supports.values()) <= set(s.classes)


@settings(max_examples=150, deadline=None)
@given(mutated_states())
def test_mutated_session_files_load_or_raise_session_file_error(state):
    _load_or_session_error(state)


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(sorted(VALID_STATE["settings"])), json_values)
def test_junk_settings_load_or_raise_session_file_error(key, value):
    state = json.loads(json.dumps(VALID_STATE))
    state["settings"][key] = value
    _load_or_session_error(state)


@settings(max_examples=40, deadline=None)
@given(json_values)
def test_junk_json_raises_session_file_error(value):
    assume(not isinstance(value, dict) or "format" not in value)
    try:
        sfw.Session.from_dict(value, DATASET)
    except SessionFileError:
        return
    raise AssertionError("junk was accepted")


@settings(max_examples=30, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_as_a_session_file(data):
    with tempfile.TemporaryDirectory() as tmp:
        p = Path(tmp) / "s.json"
        p.write_bytes(data)
        try:
            sfw.Session.load(p, DATASET)
        except SessionFileError:
            return
    raise AssertionError("random bytes were accepted")

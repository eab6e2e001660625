import numpy as np
import pytest

from stem_fsl_widgets.scalebar import draw_scale_bar, nice_length, scale_bar


@pytest.mark.parametrize("target, nice", [(3.7, 2.0), (0.12, 0.1), (50.0, 50.0), (999.0, 500.0), (1.0, 1.0)])
def test_nice_length_is_1_2_5(target, nice):
    assert nice_length(target) == pytest.approx(nice)


def test_scale_bar_length_and_label():
    length, label = scale_bar(0.03, "nm", 512)
    assert label == "2 nm" and length == pytest.approx(2 / 0.03)
    assert scale_bar(None, "nm", 512) is None and scale_bar(0.5, "px", 512) is None


def test_burnt_in_bar_is_white_and_as_long_as_computed():
    rgb = np.full((200, 400, 3), 100, np.uint8)
    out = draw_scale_bar(rgb, 0.05, "nm")
    white = np.all(out == 255, axis=2)
    rows = np.flatnonzero(white.any(axis=1))
    bar_row = white[rows[-1]]
    assert bar_row.sum() == pytest.approx(scale_bar(0.05, "nm", 400)[0], abs=2)
    assert np.array_equal(draw_scale_bar(rgb, None, "px"), rgb)

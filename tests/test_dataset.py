import numpy as np
import pytest

from stem_fsl_widgets import Dataset
from stem_fsl_widgets.errors import CalibrationError, InputError


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_hyperspy_signals_keep_their_calibration():
    hs = pytest.importorskip("hyperspy.api")
    img = hs.signals.Signal2D(np.random.default_rng(0).normal(size=(64, 64)))
    for ax in img.axes_manager.signal_axes:
        ax.scale, ax.units = 0.05, "nm"
    img.metadata.General.title = "HAADF"
    eds = hs.signals.Signal1D(np.ones((16, 16, 100)))
    eds.set_signal_type("EDS_TEM")
    e = eds.axes_manager.signal_axes[0]
    e.scale, e.offset, e.units = 10.0, -50.0, "eV"  # eV on the file: converted to keV
    for ax in eds.axes_manager.navigation_axes:
        ax.scale, ax.units = 0.2, "nm"
    ds = Dataset(img, eds=eds)
    assert ds.pixel_size == pytest.approx(0.05) and ds.pixel_unit == "nm" and ds.name == "HAADF"
    assert ds.energy_axis[0] == pytest.approx(-0.05) and ds.energy_axis[1] == pytest.approx(-0.04)
    assert ds.eds_pixel_size == pytest.approx(0.2) and ds.eds_binning == pytest.approx(4.0)


def test_binning_from_shapes_and_pixel_sizes():
    img = np.random.default_rng(0).normal(size=(60, 90))
    e = np.linspace(0, 10, 5)
    assert Dataset(img, eds=np.ones((20, 30, 5)), energy_axis=e).eds_binning == pytest.approx(3.0)
    ds = Dataset(img, eds=np.ones((12, 18, 5)), energy_axis=e, pixel_size=0.1, eds_pixel_size=0.5)
    assert ds.eds_binning == pytest.approx(5.0)


@pytest.mark.parametrize(
    "kwargs, err, match",
    [
        ({"eds": np.ones((10, 16, 5))}, CalibrationError, "field of view|aspect"),
        ({"eds": np.ones((16, 16, 5)), "energy_axis": np.linspace(0, 1, 4)}, CalibrationError, "channels"),
        ({"eds": np.ones((16, 16, 5)), "energy_axis": np.linspace(10, 0, 5)}, CalibrationError, "increasing"),
        ({"eds": np.ones((16, 16, 5)), "energy_axis": np.linspace(0, 20000, 5)}, CalibrationError, "eV"),
        ({"eds": np.ones((16, 16, 5)), "energy_axis": None}, CalibrationError, "energy axis"),
        ({"eds": np.ones((16, 5))}, InputError, "spectrum image"),
    ],
)
def test_eds_problems_are_named(kwargs, err, match):
    kwargs.setdefault("energy_axis", np.linspace(0, 10, 5))
    with pytest.raises(err, match=match):
        Dataset(np.random.default_rng(0).normal(size=(64, 64)), eds_binning=None if "eds_binning" not in kwargs else 4, **kwargs)


@pytest.mark.parametrize(
    "image, match",
    [(np.zeros(10), "2-D"), (np.zeros((3, 64, 64)), "2-D"), (np.ones((32, 32)), "constant"),
     (np.full((32, 32), np.nan), "NaN"), (np.zeros((5, 5)), "8×8"), (np.zeros((64, 64, 3)), "RGB")],
)
def test_bad_images_are_named(image, match):
    with pytest.raises(InputError, match=match):
        Dataset(image)


def test_content_hash_ties_to_pixels():
    a = np.random.default_rng(0).normal(size=(32, 32))
    assert Dataset(a).content_hash == Dataset(a.copy()).content_hash
    b = a.copy()
    b[0, 0] += 1
    assert Dataset(a).content_hash != Dataset(b).content_hash

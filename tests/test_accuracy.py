"""Accuracy on the demo data: 3 supports per class, fixed seeds, real numbers."""

import numpy as np
import pytest

import stem_fsl_widgets as sfw
from stem_fsl_widgets.evaluate import chip_truth, draw_supports, score_result


@pytest.fixture(scope="module")
def demo_session():
    ds = sfw.datasets.demo()
    s = sfw.Session(ds, chip_size=32)
    s.encode()
    return s


def _run(s, seed, **settings):
    ds = s.dataset
    truth, purity = chip_truth(ds.ground_truth, s.grid)
    sup = draw_supports(truth, purity, 3, np.random.default_rng(seed))
    s.clear()
    s.configure(**settings)
    for c in ds.truth_classes:
        s.add_class(c)
    for i, c in sup.items():
        r = s.label(i, ds.truth_classes[c])
    ids = [ds.truth_classes.index(c) for c in r.classes]
    return r, truth, ids


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fused_accuracy_at_least_0_90(demo_session, seed):
    r, truth, ids = _run(demo_session, seed, eds_weight="auto", fusion="early")
    score = score_result(r, truth, ids)
    assert score.accuracy >= 0.90, score
    assert score.entropy_auroc > 0.8, score  # entropy flags the wrong chips


@pytest.mark.parametrize(
    "pair, single, weight",
    [
        # Ni matrix vs CoCu precipitate: same lattice and contrast; only EDS separates them.
        ((0, 1), "image", 0.0),
        # Ni matrix vs Ni [011] grain: identical spectra; only the image separates them.
        ((0, 2), "EDS", 1.0),
    ],
)
def test_fusion_recovers_the_pair_one_modality_cannot_see(demo_session, pair, single, weight):
    accs = {}
    for name, w in ((single, weight), ("fused", "auto")):
        r, truth, ids = _run(demo_session, 0, eds_weight=w)
        pred = np.asarray(ids)[r.labels]
        chips = np.isin(truth, pair) & ~r.is_support
        accs[name] = float(np.mean(pred[chips] == truth[chips]))
    assert accs["fused"] > accs[single] + 0.25, accs
    assert accs["fused"] > 0.85, accs

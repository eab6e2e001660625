import numpy as np
import pytest
from scenes import lattice

from stem_fsl_widgets.chips import ChipGrid
from stem_fsl_widgets.encoders import (
    FourierEncoder,
    RandomCNNEncoder,
    ResNetEncoder,
    available_encoders,
    encode_chips,
    get_encoder,
)
from stem_fsl_widgets.errors import WeightsError


@pytest.fixture(scope="module")
def chips():
    rng = np.random.default_rng(0)
    return rng.normal(size=(6, 32, 32)).astype(np.float32)


@pytest.mark.parametrize("name", ["fourier", "fourier_oriented", "random_cnn"])
def test_offline_encoders_shape_and_determinism(name, chips):
    a = get_encoder(name).encode(chips)
    b = get_encoder(name).encode(chips)  # a fresh instance: same seed, same numbers
    assert a.shape[0] == 6 and a.ndim == 2 and a.dtype == np.float32
    assert np.isfinite(a).all()
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert get_encoder(name).encode(chips[:0]).shape == (0, a.shape[1])


def test_registry_unknown_name_lists_known():
    assert {"fourier", "random_cnn", "resnet18"} <= set(available_encoders())
    with pytest.raises(ValueError, match="choose one of"):
        get_encoder("nope")


def test_fourier_separates_lattice_period_and_rotation_invariance():
    # Periods well above Nyquist so the rotated lattice is not aliased differently.
    fine = lattice((32, 32), 6.0)[None]
    coarse = lattice((32, 32), 10.0)[None]
    fine_rot = lattice((32, 32), 6.0, angle=0.5)[None]
    enc = FourierEncoder(rotation_invariant=True)
    e = enc.encode(np.concatenate([fine, coarse, fine_rot]).astype(np.float32))
    spec = slice(0, enc.n_radial * (enc.n_angular // 2 + 1))
    d_rot = np.linalg.norm(e[0, spec] - e[2, spec])
    d_period = np.linalg.norm(e[0, spec] - e[1, spec])
    assert d_rot < 0.6 * d_period
    # The orientation-sensitive variant sees the rotation much more strongly.
    e_or = FourierEncoder(rotation_invariant=False).encode(np.concatenate([fine, fine_rot]).astype(np.float32))
    assert np.linalg.norm(e_or[0] - e_or[1]) > 1.5 * d_rot


def test_fourier_keeps_orientation_when_asked():
    a = lattice((32, 32), 6.0)[None]
    b = lattice((32, 32), 6.0, angle=np.pi / 6)[None]
    e = FourierEncoder(rotation_invariant=False).encode(np.concatenate([a, b]).astype(np.float32))
    assert np.linalg.norm(e[0] - e[1]) > 1.0


def test_encode_chips_batches_and_progress():
    img = np.random.default_rng(1).normal(size=(64, 96))
    g = ChipGrid(64, 96, 16)
    seen = []
    enc = RandomCNNEncoder(width=4)
    enc.batch_size = 5
    out = encode_chips(img, g, enc, progress=seen.append)
    assert out.shape[0] == g.n_chips == 24
    assert seen[-1] == 1.0 and len(seen) == 5


def test_encode_chips_in_threads_gives_the_same_embeddings():
    # The default encoder (Fourier features in a context window) encodes batches in threads;
    # each batch is the same computation, so the numbers are identical, in chip order.
    img = np.random.default_rng(2).normal(size=(128, 160)).astype(np.float32)
    img[:, 80:] = lattice((128, 80), 6.0)
    g = ChipGrid(128, 160, 16)
    enc = get_encoder("fourier")
    assert enc.threaded and not RandomCNNEncoder().threaded
    enc.batch_size = 7  # 80 chips: 12 batches, the last one short
    one, many = [], []
    serial = encode_chips(img, g, enc, progress=one.append, workers=1)
    threaded = encode_chips(img, g, enc, progress=many.append, workers=3)
    assert np.array_equal(serial, threaded)
    assert one == many and many == sorted(many) and many[-1] == 1.0 and len(many) == 12


def test_cpu_and_cuda_agree_when_a_gpu_exists(chips):
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device on this machine; this parity check runs where a GPU is present")
    a = RandomCNNEncoder(device="cpu").encode(chips)
    b = RandomCNNEncoder(device="cuda").encode(chips)
    np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-3)


def test_resnet_loads_a_weights_file_written_here(tmp_path, chips):
    torch = pytest.importorskip("torch")
    torchvision = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    net = torchvision.models.resnet18(weights=None)
    path = tmp_path / "r18.pth"
    torch.save(net.state_dict(), path)
    enc = ResNetEncoder("resnet18", weights_path=path, input_size=64)
    e = enc.encode(chips[:3])
    assert e.shape == (3, 512) and np.isfinite(e).all()
    np.testing.assert_allclose(e, ResNetEncoder("resnet18", weights_path=path, input_size=64).encode(chips[:3]), rtol=1e-4, atol=1e-5)


def test_resnet_without_weights_says_how_to_get_them(tmp_path, monkeypatch):
    torch = pytest.importorskip("torch")
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    enc = ResNetEncoder("resnet18")
    with pytest.raises(WeightsError, match="download=True"):
        enc.encode(np.zeros((1, 32, 32), np.float32))


def test_resnet_rejects_a_file_that_is_not_a_state_dict(tmp_path):
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a torch file at all")
    with pytest.raises(WeightsError, match="not a torch state dict"):
        ResNetEncoder("resnet18", weights_path=bad).encode(np.zeros((1, 32, 32), np.float32))

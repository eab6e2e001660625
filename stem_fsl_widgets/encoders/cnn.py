"""Torch encoders: a seeded random-feature CNN (offline) and ImageNet ResNets (Akers et al. 2021)."""

from __future__ import annotations

import os
import re
from abc import abstractmethod
from pathlib import Path

import numpy as np

from ..errors import WeightsError
from .base import ImageEncoder, pick_device, standardise_chips

__all__ = ["RandomCNNEncoder", "ResNetEncoder", "RESNET_WEIGHTS"]

# torchvision's published ImageNet weights (file names as they land in the torch hub cache).
RESNET_WEIGHTS = {
    "resnet18": "ResNet18_Weights",
    "resnet34": "ResNet34_Weights",
    "resnet50": "ResNet50_Weights",
}


class _TorchEncoder(ImageEncoder):
    """Shared torch plumbing: lazy model build, device, inference mode, batching."""

    def __init__(self, *, device: str | None = None) -> None:
        self.device = pick_device(device)
        self._model = None

    @abstractmethod
    def _build(self):
        """Return the torch module (called once, lazily)."""

    @property
    def model(self):
        """The torch module, built on first use and moved to :attr:`device`."""
        if self._model is None:
            self._model = self._build().eval().to(self.device)
        return self._model

    def _prepare(self, chips: np.ndarray):
        import torch

        return torch.from_numpy(np.ascontiguousarray(standardise_chips(chips)))[:, None]

    def _encode_batch(self, chips: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            x = self._prepare(chips).to(self.device)
            return self.model(x).float().cpu().numpy()


class RandomCNNEncoder(_TorchEncoder):
    """An untrained CNN with seeded weights: random multiscale texture features.

    Random convolutional features are a strong baseline for texture (no training, no
    download). Each stage's feature maps are pooled to mean and standard deviation, so the
    embedding mixes scales from fine lattice fringes to coarse contrast.

    Parameters
    ----------
    width : int
        Channels of the first stage (doubled at each of the 4 stages, capped at 8×).
    seed : int
        Seed of the weights; the same seed always gives the same embedding.
    device : str, optional
        "cuda" or "cpu"; default picks CUDA when present.
    """

    name = "random_cnn"
    batch_size = 256

    def __init__(self, *, width: int = 16, seed: int = 0, device: str | None = None) -> None:
        super().__init__(device=device)
        self.width = int(width)
        self.seed = int(seed)

    def params(self) -> dict:
        """Parameters that change the embedding."""
        return {"width": self.width, "seed": self.seed}

    def _build(self):
        import torch
        from torch import nn

        gen = torch.Generator().manual_seed(self.seed)
        chans = [1] + [self.width * min(2**i, 8) for i in range(4)]

        class Net(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.stages = nn.ModuleList(
                    nn.Conv2d(a, b, 3, padding=1, stride=1 if i == 0 else 2)
                    for i, (a, b) in enumerate(zip(chans[:-1], chans[1:], strict=True))
                )
                for conv in self.stages:
                    fan_in = conv.in_channels * 9
                    with torch.no_grad():
                        std = (2.0 / fan_in) ** 0.5  # He initialisation keeps activations O(1)
                        conv.weight.copy_(torch.randn(conv.weight.shape, generator=gen) * std)
                        conv.bias.zero_()

            def forward(self, x):
                pooled = []
                for conv in self.stages:
                    x = torch.relu(conv(x))
                    pooled += [x.mean((2, 3)), x.std((2, 3))]
                return torch.cat(pooled, 1)

        return Net()


class ResNetEncoder(_TorchEncoder):
    """ImageNet-pretrained torchvision ResNet, global-average-pooled (Akers et al. 2021).

    Weights come from, in order: ``weights_path`` (a state-dict file you name), the torch hub
    cache (``$TORCH_HOME/hub/checkpoints``), or a download when ``download=True``. Nothing is
    downloaded unless asked.

    Parameters
    ----------
    arch : {"resnet18", "resnet34", "resnet50"}
    weights_path : str or Path, optional
        A ``.pth`` state dict for this architecture (loaded with ``weights_only=True``).
    download : bool
        Allow torchvision to download the ImageNet weights if they are not cached.
    input_size : int
        Chips are resized to this side before the network (ImageNet nets need ≥ 64 px).
    device : str, optional

    Raises
    ------
    WeightsError
        When no weights are available, or the file is not a matching state dict.
    """

    name = "resnet"
    batch_size = 64

    def __init__(
        self,
        arch: str = "resnet18",
        *,
        weights_path: str | os.PathLike | None = None,
        download: bool = False,
        input_size: int = 96,
        device: str | None = None,
    ) -> None:
        super().__init__(device=device)
        if arch not in RESNET_WEIGHTS:
            raise ValueError(f"arch must be one of {sorted(RESNET_WEIGHTS)}, not {arch!r}")
        self.arch = arch
        self.weights_path = Path(weights_path) if weights_path else None
        self.download = bool(download)
        self.input_size = int(input_size)

    def params(self) -> dict:
        """Parameters that change the embedding."""
        return {"arch": self.arch, "input_size": self.input_size,
                "weights": str(self.weights_path) if self.weights_path else "imagenet"}

    def _state_dict(self):
        import torch
        import torchvision

        if self.weights_path is not None:
            try:
                sd = torch.load(self.weights_path, map_location="cpu", weights_only=True)
            except FileNotFoundError:
                raise WeightsError(f"Weights file {self.weights_path} does not exist.") from None
            except Exception as err:  # unpickling refused, truncated file, not torch at all
                # torch's own text is long, styled with terminal codes, and suggests
                # weights_only=False, which we never do: keep its first sentence only.
                reason = re.sub(r"\x1b\[[0-9;]*m", "", str(err)).strip()
                reason = reason.splitlines()[0].split(". ")[0][:150] if reason else ""
                raise WeightsError(
                    f"{self.weights_path} is not a torch state dict that can be loaded safely "
                    f"({type(err).__name__}: {reason}). Save one with "
                    "torch.save(model.state_dict(), path)."
                ) from None
            if not isinstance(sd, dict) or not all(hasattr(v, "shape") for v in sd.values()):
                raise WeightsError(
                    f"{self.weights_path} holds a {type(sd).__name__}, not a state dict of tensors."
                )
            return sd
        weights = getattr(torchvision.models, RESNET_WEIGHTS[self.arch]).IMAGENET1K_V1
        hub = Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name
        if hub.exists():
            return torch.load(hub, map_location="cpu", weights_only=True)
        if self.download:
            return weights.get_state_dict(progress=True)
        raise WeightsError(
            f"No ImageNet weights for {self.arch} on this machine (looked in {hub}). Either run "
            f"once with internet: ResNetEncoder('{self.arch}', download=True), or copy the file "
            f"{Path(weights.url).name} into {hub.parent}, or pass weights_path='your.pth'. "
            "Offline, use the default 'fourier' encoder instead."
        )

    def _build(self):
        import torch
        import torchvision

        net = getattr(torchvision.models, self.arch)(weights=None)
        state = self._state_dict()
        try:
            net.load_state_dict(state)
        except RuntimeError as err:
            raise WeightsError(
                f"The weights do not fit {self.arch}: {str(err).splitlines()[0][:200]}"
            ) from None
        net.fc = torch.nn.Identity()
        return net

    def _prepare(self, chips: np.ndarray):
        import torch
        import torch.nn.functional as F

        # Per-chip min-max to [0, 1], grey → 3 channels, ImageNet statistics.
        lo = chips.min(axis=(1, 2), keepdims=True)
        hi = chips.max(axis=(1, 2), keepdims=True)
        x = torch.from_numpy(np.ascontiguousarray((chips - lo) / np.maximum(hi - lo, 1e-6)))[:, None]
        x = F.interpolate(x, size=(self.input_size,) * 2, mode="bilinear", align_corners=False)
        mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
        std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
        return (x.repeat(1, 3, 1, 1) - mean) / std

"""Fixed feature networks for feature-space losses (SPD-VFM's Semantic Consistency Module, equation 8).

The paper's ``phi`` is an ImageNet VGG. Its weights cannot be downloaded here, so medir reads a VGG16 or
VGG19 state dict from a local file (torchvision's layout: ``features.<index>.weight`` / ``.bias``, as
``torchvision.models.vgg16().state_dict()`` writes it; a ``.pth`` / ``.pt`` file read with
``torch.load(weights_only=True)``, or ``.safetensors``). Only the convolutions up to the chosen layer are
built and loaded; every one of them must be in the file (strict), extra keys (classifier) are ignored.

Without weights, SPD-VFM uses a network that is available: the trained teacher's semantic encoder
(:mod:`medir.methods.spdvfm`), frozen. :func:`frozen` is the one helper both paths share.

Input: ``(B, C, H, W)`` images in network space (about ``[0, 1]``); grey images are repeated to three
channels and normalised with the ImageNet mean and std, as the VGG weights expect.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from medir.errors import ConfigError

# "M" = 2x2 max pooling; numbers = 3x3 conv output channels (Simonyan & Zisserman 2015, configurations D and E)
VGG_LAYOUTS = {
    16: [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    19: [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"],
}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def vgg_layer_names(depth: int) -> list[str]:
    """Names of the layers of ``torchvision``'s ``vgg<depth>().features`` in order: conv1_1, relu1_1, ..., pool1, ..."""
    if depth not in VGG_LAYOUTS:
        raise ConfigError(f"VGG depth {depth} is not supported: use 16 or 19")
    names, block, conv = [], 1, 1
    for item in VGG_LAYOUTS[depth]:
        if item == "M":
            names.append(f"pool{block}")
            block, conv = block + 1, 1
        else:
            names += [f"conv{block}_{conv}", f"relu{block}_{conv}"]
            conv += 1
    return names


class VGGFeatures(nn.Module):
    """``vgg<depth>().features`` truncated after ``layer`` (e.g. ``relu3_3``): ``(B, 1|3, H, W)`` ->
    ``(B, C, H / 2^k, W / 2^k)``. Module indices match torchvision's so its state dicts load as they are."""

    def __init__(self, *, depth: int = 16, layer: str = "relu3_3"):
        super().__init__()
        names = vgg_layer_names(depth)
        if layer not in names:
            raise ConfigError(f"VGG{depth} has no layer '{layer}': use one of {', '.join(names)}")
        self.depth, self.layer = depth, layer
        layers: list[nn.Module] = []
        channels = 3
        for item in VGG_LAYOUTS[depth]:
            if item == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(channels, item, 3, padding=1), nn.ReLU(inplace=False)]
                channels = item
        self.features = nn.Sequential(*layers[: names.index(layer) + 1])
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        elif x.shape[1] != 3:
            raise ValueError(f"VGG features take 1 or 3 channels, got {x.shape[1]}")
        return self.features((x - self.mean) / self.std)


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """A state dict from ``.safetensors`` or a torch file (``weights_only=True``); a one-line error otherwise."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"feature network weights {path} do not exist: give a VGG16/19 state dict file "
                          "(.pth, .pt or .safetensors)")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path), device="cpu")
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # corrupt or foreign files
        raise ConfigError(f"cannot read feature network weights {path} ({type(err).__name__}): "
                          "give a state dict saved with torch.save or safetensors") from err
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ConfigError(f"{path} does not hold a state dict (a mapping of names to tensors)")
    return state


def load_vgg_features(path: str | Path, *, depth: int = 16, layer: str = "relu3_3") -> VGGFeatures:
    """:class:`VGGFeatures` with the weights of a torchvision-layout state dict at ``path``, frozen."""
    net = VGGFeatures(depth=depth, layer=layer)
    state = read_state_dict(path)
    wanted = net.state_dict()
    missing = [k for k in wanted if k not in state]
    if missing:
        raise ConfigError(f"{path} lacks {len(missing)} VGG{depth} tensors up to {layer} (first: {missing[0]}): "
                          f"is it a VGG{depth} state dict in torchvision's layout (features.N.weight)?")
    bad = [k for k in wanted if tuple(state[k].shape) != tuple(wanted[k].shape)]
    if bad:
        raise ConfigError(f"{path}: {bad[0]} has shape {tuple(state[bad[0]].shape)}, VGG{depth} needs "
                          f"{tuple(wanted[bad[0]].shape)}")
    net.load_state_dict({k: state[k].float() for k in wanted})
    return frozen(net)


def frozen(module: nn.Module) -> nn.Module:
    """``module`` in eval mode with ``requires_grad=False`` on every parameter (a fixed feature network)."""
    for p in module.parameters():
        p.requires_grad_(False)
    return module.eval()


def feature_network(spec: str | None) -> nn.Module | None:
    """``None`` / ``"teacher"`` -> None (the caller uses the teacher's encoder); ``"vgg16:PATH"``,
    ``"vgg19:PATH"``, optionally ``"vgg16@relu2_2:PATH"``, -> a frozen :class:`VGGFeatures`."""
    if spec is None or spec == "teacher":
        return None
    name, sep, path = str(spec).partition(":")
    arch, _, layer = name.partition("@")
    if not sep or not path or arch not in ("vgg16", "vgg19"):
        raise ConfigError(f"feature network '{spec}' is unknown: use teacher, vgg16:PATH or vgg19:PATH "
                          "(optionally vgg16@relu2_2:PATH)")
    return load_vgg_features(path, depth=int(arch[3:]), layer=layer or "relu3_3")

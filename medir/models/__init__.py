"""Architectures (one file each) and their named presets.

``MODELS`` maps an architecture name to its class and ``PRESETS`` a named
configuration to a function returning a built model; both are filled here,
explicitly. Every architecture takes ``in_channels``, ``out_channels`` and
``scale`` keyword arguments and maps (B, in_channels, H, W) to
(B, out_channels, H*scale, W*scale) for any H, W (see docs/architecture.md).
"""

from collections.abc import Callable

from torch import nn

from medir.errors import ConfigError
from medir.models.complexity import describe
from medir.models.diffcode import DiffCodeNet
from medir.models.edsr import EDSR
from medir.models.lrformer import LRformer
from medir.models.nafnet import NAFNet
from medir.models.rat import RAT
from medir.models.rcan import RCAN
from medir.models.restormer import Restormer
from medir.models.swinir import SwinIR
from medir.models.unet import UNet

MODELS: dict[str, type[nn.Module]] = {
    "nafnet": NAFNet,
    "unet": UNet,
    "restormer": Restormer,
    "swinir": SwinIR,
    "edsr": EDSR,
    "rcan": RCAN,
    "lrformer": LRformer,
    "rat": RAT,
    "diffcode": DiffCodeNet,
}


# NAFNet (Chen et al. 2022). Parameter counts for 3 channels.
def nafnet_tiny(**kw) -> nn.Module:
    """NAFNet that trains on a CPU in minutes (width 8, 2 levels, 20 k parameters)."""
    return NAFNet(**{"width": 8, "enc_blocks": [1, 1], "middle_blocks": 1, "dec_blocks": [1, 1], **kw})


def nafnet_width32(**kw) -> nn.Module:
    """NAFNet-SIDD-width32 of the paper (29.16 M parameters, 16 GMACs at 256x256)."""
    return NAFNet(**{"width": 32, "enc_blocks": [2, 2, 4, 8], "middle_blocks": 12, "dec_blocks": [2, 2, 2, 2], **kw})


def nafnet_width64(**kw) -> nn.Module:
    """NAFNet-SIDD-width64 of the paper (115.98 M parameters)."""
    return NAFNet(**{"width": 64, "enc_blocks": [2, 2, 4, 8], "middle_blocks": 12, "dec_blocks": [2, 2, 2, 2], **kw})


def nafnet_gopro_width32(**kw) -> nn.Module:
    """NAFNet-GoPro-width32 of the paper, for deblurring (17.11 M parameters)."""
    return NAFNet(**{"width": 32, "enc_blocks": [1, 1, 1, 28], "middle_blocks": 1, "dec_blocks": [1, 1, 1, 1], **kw})


# Plain U-Net (Ronneberger et al. 2015), the small CT baseline.
def unet_tiny(**kw) -> nn.Module:
    """U-Net with width 8 and 2 levels (CPU-trainable in minutes)."""
    return UNet(**{"width": 8, "levels": 2, **kw})


def unet_small(**kw) -> nn.Module:
    """U-Net with width 32 and 4 levels: the small CT baseline (7.76 M parameters)."""
    return UNet(**{"width": 32, "levels": 4, **kw})


def unet_width64(**kw) -> nn.Module:
    """Ronneberger's U-Net size: width 64, 4 levels (31.03 M parameters)."""
    return UNet(**{"width": 64, "levels": 4, **kw})


# Restormer (Zamir et al. 2022).
def restormer_tiny(**kw) -> nn.Module:
    """Restormer with dim 8, three levels of one block (CPU-trainable in minutes)."""
    return Restormer(**{"dim": 8, "blocks": [1, 1, 1], "refinement_blocks": 1, "heads": [1, 2, 2], **kw})


def restormer_base(**kw) -> nn.Module:
    """The paper's Restormer (26.13 M parameters, WithBias LayerNorm: deraining, deblurring)."""
    return Restormer(**{"dim": 48, "blocks": [4, 6, 6, 8], "refinement_blocks": 4, "heads": [1, 2, 4, 8], **kw})


def restormer_denoise(**kw) -> nn.Module:
    """The paper's Gaussian-denoising Restormer: BiasFree LayerNorm (26.11 M parameters)."""
    return Restormer(**{"dim": 48, "blocks": [4, 6, 6, 8], "refinement_blocks": 4, "norm_bias": False, **kw})


# SwinIR (Liang et al. 2021).
def swinir_tiny(**kw) -> nn.Module:
    """SwinIR with width 16, two RSTBs of two blocks, window 4 (CPU-trainable in minutes)."""
    return SwinIR(**{"embed_dim": 16, "depths": [2, 2], "heads": [2, 2], "window_size": 4, "drop_path": 0.0, **kw})


def swinir_denoise(**kw) -> nn.Module:
    """The paper's denoising SwinIR (11.50 M parameters for colour, 11.50 M for grey)."""
    return SwinIR(**{"embed_dim": 180, "depths": [6] * 6, "heads": [6] * 6, "window_size": 8, "scale": 1, **kw})


def swinir_sr_classical(**kw) -> nn.Module:
    """The paper's classical SR SwinIR, pixel-shuffle head (11.75 M parameters at scale 2)."""
    arch = {"embed_dim": 180, "depths": [6] * 6, "heads": [6] * 6, "scale": 2, "upsampler": "pixelshuffle"}
    return SwinIR(**{**arch, **kw})


def swinir_sr_lightweight(**kw) -> nn.Module:
    """The paper's lightweight SR SwinIR, one-step pixel shuffle (910 k parameters at scale 2)."""
    arch = {"embed_dim": 60, "depths": [6] * 4, "heads": [6] * 4, "scale": 2, "upsampler": "pixelshuffledirect"}
    return SwinIR(**{**arch, **kw})


# EDSR (Lim et al. 2017).
def edsr_tiny(**kw) -> nn.Module:
    """EDSR with width 16 and 2 residual blocks, same-size restoration (CPU-trainable in minutes)."""
    return EDSR(**{"features": 16, "blocks": 2, "scale": 1, **kw})


def edsr_baseline(**kw) -> nn.Module:
    """The paper's EDSR baseline: 16 blocks of width 64 (1.37 M parameters at scale 2)."""
    return EDSR(**{"features": 64, "blocks": 16, "res_scale": 1.0, "scale": 2, **kw})


def edsr_large(**kw) -> nn.Module:
    """The paper's EDSR: 32 blocks of width 256, residual scaling 0.1 (40.73 M parameters at scale 2)."""
    return EDSR(**{"features": 256, "blocks": 32, "res_scale": 0.1, "scale": 2, **kw})


# RCAN (Zhang et al. 2018).
def rcan_tiny(**kw) -> nn.Module:
    """RCAN with width 16, 2 groups of 2 RCABs, reduction 4, same-size restoration."""
    return RCAN(**{"features": 16, "groups": 2, "blocks": 2, "reduction": 4, "scale": 1, **kw})


def rcan_base(**kw) -> nn.Module:
    """The paper's RCAN: 10 groups of 20 RCABs, width 64 (15.44 M parameters at scale 2)."""
    return RCAN(**{"features": 64, "groups": 10, "blocks": 20, "reduction": 16, "scale": 2, **kw})


# LRformer (arXiv:2504.11286): prior-guided lightweight transformer; MACs exclude the segmenter passes.
def lrformer_tiny(**kw) -> nn.Module:
    """LRformer with dim 8, levels [1, 1, 1], 2 Monte-Carlo prior samples (CPU-trainable in minutes)."""
    return LRformer(**{"dim": 8, "blocks": [1, 1, 1], "refinement_blocks": 1, "samples": 2, **kw})


def lrformer_base(**kw) -> nn.Module:
    """Our paper-size guess (the paper's sizes are not public): dim 32, levels [2, 2, 4], 2 refinement blocks."""
    return LRformer(**{"dim": 32, "blocks": [2, 2, 4], "refinement_blocks": 2, **kw})
# RAT (Yang et al. 2024): NAFNet U-Net with region attention at the bottleneck.
def rat_tiny(**kw) -> nn.Module:
    """RAT with width 8, one NAFBlock per level, 2 RAT blocks of 1 layer, 2 heads (CPU-trainable in minutes)."""
    arch = {"width": 8, "enc_blocks": [1, 1], "dec_blocks": [1, 1], "rat_blocks": 2, "layers_per_block": 1,
            "heads": 2}
    return RAT(**{**arch, **kw})


def rat_base(**kw) -> nn.Module:
    """The paper's RAT: width 64, [2, 2] levels, 12 RAT layers (4 blocks x 3), 8 heads, window 4."""
    return RAT(**{"width": 64, "enc_blocks": [2, 2], "dec_blocks": [2, 2], "rat_blocks": 4, "layers_per_block": 3,
                  "heads": 8, "window_size": 4, **kw})


# DiffCode (seed 004): all-in-one MRI SR / CT / PET; trained in three stages by `medir train` (medir.methods.diffcode).
def diffcode_tiny(**kw) -> nn.Module:
    """DiffCode with 8-wide NAF parts, codebooks 2 x 64 x 16 per task, 4 experts (CPU-trainable in minutes)."""
    return DiffCodeNet(**{"vq_width": 8, "vq_blocks": [1, 1], "code_dim": 16, "codebook_size": 64, "depth": 2,
                          "width": 8, "blocks": [1, 1], **kw})


def diffcode_paper(**kw) -> nn.Module:
    """DiffCode at the paper's sizes: codebooks 8 x 8192 x 256 per task, NAF width 64, 4 experts, top-1, T = 8."""
    return DiffCodeNet(**{"vq_width": 64, "vq_blocks": [2, 2, 4], "code_dim": 256, "codebook_size": 8192, "depth": 8,
                          "width": 64, "blocks": [2, 2, 4], "middle_blocks": 4, "denoiser_hidden": 512,
                          "classifier_width": 32, **kw})


PRESETS: dict[str, Callable[..., nn.Module]] = {
    "nafnet_tiny": nafnet_tiny,
    "nafnet_width32": nafnet_width32,
    "nafnet_width64": nafnet_width64,
    "nafnet_gopro_width32": nafnet_gopro_width32,
    "unet_tiny": unet_tiny,
    "unet_small": unet_small,
    "unet_width64": unet_width64,
    "restormer_tiny": restormer_tiny,
    "restormer_base": restormer_base,
    "restormer_denoise": restormer_denoise,
    "swinir_tiny": swinir_tiny,
    "swinir_denoise": swinir_denoise,
    "swinir_sr_classical": swinir_sr_classical,
    "swinir_sr_lightweight": swinir_sr_lightweight,
    "edsr_tiny": edsr_tiny,
    "edsr_baseline": edsr_baseline,
    "edsr_large": edsr_large,
    "rcan_tiny": rcan_tiny,
    "rcan_base": rcan_base,
    "lrformer_tiny": lrformer_tiny,
    "lrformer_base": lrformer_base,
    "rat_tiny": rat_tiny,
    "rat_base": rat_base,
    "diffcode_tiny": diffcode_tiny,
    "diffcode_paper": diffcode_paper,
}


def _build(registry: dict[str, Callable[..., nn.Module]], what: str, name: str, kwargs: dict) -> nn.Module:
    if name not in registry:
        raise ConfigError(f"unknown {what} '{name}': choose one of {', '.join(sorted(registry))}")
    try:
        return registry[name](**kwargs)
    except TypeError as err:
        raise ConfigError(f"bad arguments for {what} '{name}': {err}") from err


def build_model(arch: str, **kwargs) -> nn.Module:
    """Build architecture ``arch`` from keyword arguments; ConfigError for unknown names or arguments."""
    return _build(MODELS, "architecture", arch, kwargs)


def build_preset(name: str, **overrides) -> nn.Module:
    """Build the named preset, with keyword overrides (e.g. in_channels=1); ConfigError for unknown names."""
    return _build(PRESETS, "model preset", name, overrides)


def describe_architectures(size: int = 256, names: list[str] | None = None) -> list[tuple[str, int, int]]:
    """One row per preset (all, or ``names``): (preset name, trainable parameters, MACs at size x size).

    Three channels in and out, each preset's default scale. MACs = FLOPs / 2 from torch's
    FlopCounterMode (see medir.models.complexity); models are built on the meta device,
    so this costs about half a second per preset and allocates nothing.
    """
    for name in names or []:
        if name not in PRESETS:
            raise ConfigError(f"unknown model preset '{name}': choose one of {', '.join(sorted(PRESETS))}")
    return [(name, *describe(PRESETS[name], size)) for name in (names or PRESETS)]

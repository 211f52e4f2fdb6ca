"""MFdiff (seed 001): MR-guided PET restoration with a fusion module and a conditional diffusion model.

- :mod:`.network`: the inference network :class:`MFdiff` and its Table 5 variants;
- :mod:`.data`: simulated external / internal (shifted) pair sets of the brain PET/MR phantom;
- :mod:`.train`: two-stage supervise-assisted learning and the single-stage mixed baseline;
- :mod:`.modelfile`: MFdiff model files (safetensors + JSON card) for ``medir restore --aux``.

``VARIANTS`` are Table 5's ablations; ``SIZES`` the tiny (CPU) and paper-size networks. ``build(variant, size)``
returns an :class:`MFdiff`; keyword overrides replace any size or variant argument.
"""

from __future__ import annotations

from medir.methods.mfdiff.network import MFdiff

VARIANTS: dict[str, dict] = {
    "unet": {"aux": "none", "diffusion": False},
    "munet": {"aux": "concat", "diffusion": False},
    "gmunet": {"aux": "fusion", "branches": ("global", "global"), "diffusion": False},
    "dmunet": {"aux": "fusion", "branches": ("detail", "detail"), "diffusion": False},
    "cmunet": {"aux": "fusion", "branches": ("global", "detail"), "diffusion": False},
    "mfdiff": {"aux": "fusion", "branches": ("global", "detail"), "diffusion": True},
}

SIZES: dict[str, dict] = {
    # CPU-trainable in minutes on 64 x 64 slices: 0.1 M parameters in the UNet, 15 k in the fusion module.
    "tiny": {"width": 16, "mults": (1, 2), "attention": (False, True), "fusion_width": 8, "fusion_channels": 4,
             "heads": 2, "kv_pool": 4, "encoder_blocks": 1, "decoder_blocks": 2},
    # Paper scale (192 x 192, DDPM-like UNet; the paper defers its sizes to DDPM): 4 levels, attention at 1/4, 1/8.
    "base": {"width": 64, "mults": (1, 2, 2, 4), "attention": (False, False, True, True), "res_blocks": 2,
             "fusion_width": 32, "fusion_channels": 16, "heads": 4, "kv_pool": 4, "encoder_blocks": 1,
             "decoder_blocks": 2},
}


def build(variant: str = "mfdiff", size: str = "tiny", **overrides) -> MFdiff:
    """The Table 5 ``variant`` at ``size``; ValueError naming the choices for unknown names."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown MFdiff variant '{variant}': use one of {', '.join(VARIANTS)}")
    if size not in SIZES:
        raise ValueError(f"unknown MFdiff size '{size}': use one of {', '.join(SIZES)}")
    return MFdiff(**{**SIZES[size], **VARIANTS[variant], **overrides})


__all__ = ["MFdiff", "SIZES", "VARIANTS", "build"]

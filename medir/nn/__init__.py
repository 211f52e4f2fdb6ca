"""Building blocks shared by medir's architectures and methods, one small file per family.

norm (LayerNorm2d), padding (pad/crop/pre-upsample/global residual), naf (SimpleGate,
SimplifiedChannelAttention, NAFBlock), naf_unet (NAFEncoder/NAFDecoder), sampling (down/up
samplers, SR upsampler), transposed_attention (Restormer's MDTA/GDFN), window_attention (Swin
window attention with relative position bias), residual_blocks (EDSR/RCAN blocks, channel
attention), conv_unet (plain U-Net pieces), meanshift (DIV2K mean).
"""

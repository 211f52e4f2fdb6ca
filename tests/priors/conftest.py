"""Fixtures for the priors tests: a tiny randomly initialised SAM saved to disk."""

from __future__ import annotations

import pytest
import torch



def tiny_sam_config():
    from transformers import SamConfig

    return SamConfig(
        vision_config=dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, image_size=64, patch_size=8,
                           window_size=4, global_attn_indexes=[1], output_channels=32, num_pos_feats=16, mlp_dim=64),
        prompt_encoder_config=dict(hidden_size=32, image_size=64, patch_size=8, mask_input_channels=4),
        mask_decoder_config=dict(hidden_size=32, mlp_dim=64, num_hidden_layers=2, num_attention_heads=2,
                                 iou_head_hidden_dim=32),
    )


@pytest.fixture(scope="session")
def tiny_sam(tmp_path_factory):
    """Folder of a randomly initialised tiny SamModel written with save_pretrained (64x64 input, 8x8 embedding)."""
    pytest.importorskip("transformers")
    from transformers import SamModel

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("sam") / "tiny-sam"
    SamModel(tiny_sam_config()).save_pretrained(folder)
    return folder

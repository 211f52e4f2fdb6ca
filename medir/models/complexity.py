"""Parameter and MAC counts of a model.

MACs (multiply-accumulates) are FLOPs / 2 as counted by
``torch.utils.flop_counter.FlopCounterMode``: convolutions, matrix products and
fused attention; element-wise operations (norms, activations, gates) are not
counted, as in ptflops-style tables of the papers.
"""

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count


def _cpu_flash_attention_flops(query, key, value, *args, out_shape=None, **kwargs) -> int:
    """FLOPs of the fused CPU attention kernel, which FlopCounterMode does not know."""
    return sdpa_flop_count(query, key, value)


_CUSTOM = {torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _cpu_flash_attention_flops}


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    """Number of (trainable) parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def count_macs(model: nn.Module, in_channels: int, height: int = 256, width: int = 256) -> int:
    """MACs of one forward pass on a (1, in_channels, height, width) input (FLOPs / 2).

    Runs on the model's device; a model built under ``torch.device("meta")`` is
    counted without computing anything.
    """
    device = next(model.parameters()).device
    x = torch.zeros(1, in_channels, height, width, device=device)
    was_training = model.training
    model.eval()
    with torch.no_grad(), FlopCounterMode(display=False, custom_mapping=_CUSTOM) as counter:
        model(x)
    model.train(was_training)
    return counter.get_total_flops() // 2


def describe(build, size: int = 256) -> tuple[int, int]:
    """(trainable parameters, MACs on a 3-channel size x size input) of ``build(in_channels=3, out_channels=3)``.

    The model is built on the meta device, so even 40 M-parameter models cost milliseconds.
    """
    with torch.device("meta"):
        model = build(in_channels=3, out_channels=3)
    return count_parameters(model), count_macs(model, 3, size, size)

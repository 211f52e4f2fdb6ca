"""Shared fixtures for the model tests: a small deterministic phantom patch."""

import pytest
import torch


def phantom_patch(size: int = 32, channels: int = 1) -> torch.Tensor:
    """(1, channels, size, size) in [0, 1]: two ellipses and a bar on a dark background."""
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    img = 0.1 + 0.6 * ((xx / 0.8) ** 2 + (yy / 0.6) ** 2 < 1).float()
    img = img + 0.2 * (((xx - 0.2) / 0.25) ** 2 + ((yy + 0.1) / 0.35) ** 2 < 1).float()
    img = img + 0.1 * ((xx.abs() < 0.05) & (yy.abs() < 0.5)).float()
    img = img.clamp(0, 1)[None, None]
    scales = torch.linspace(1.0, 0.7, channels).view(1, channels, 1, 1)
    return img * scales


@pytest.fixture
def phantom():
    return phantom_patch


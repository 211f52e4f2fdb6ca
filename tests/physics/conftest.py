import torch
import pytest


def disk_image(n: int, *, inside: float, outside: float, radius: float = 0.4) -> torch.Tensor:
    """(1, 1, n, n) uniform disk of ``radius * n`` pixels."""
    c = torch.arange(n, dtype=torch.float32) - n / 2 + 0.5
    r = torch.hypot(c[:, None], c[None, :])
    return torch.where(r < radius * n, inside, outside)[None, None]


def central_roi(n: int, radius: float = 0.25) -> torch.Tensor:
    c = torch.arange(n, dtype=torch.float32) - n / 2 + 0.5
    return torch.hypot(c[:, None], c[None, :]) < radius * n



@pytest.fixture
def water_disk():
    return disk_image(96, inside=0.0, outside=-1000.0)

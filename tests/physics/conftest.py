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


@pytest.fixture(autouse=True)
def _single_thread():
    """Small tensors: one intra-op thread avoids OpenMP spin-waits that make each op ~100x slower
    on a loaded 2-core machine; restored after each test."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def water_disk():
    return disk_image(96, inside=0.0, outside=-1000.0)

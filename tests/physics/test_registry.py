import pytest
import torch

from medir.errors import MedirError
from medir.physics import TASKS, simulate

REQUIRED = {"ct-lowdose", "pet-lowcount", "scinti-rapid", "mri-sr", "path-sr", "endo-smoke"}


def test_required_tasks_registered():
    assert REQUIRED <= set(TASKS)
    for name, spec in TASKS.items():
        assert spec.name == name and spec.description and spec.modality
        for p in spec.params:
            assert p.describe().startswith(p.name)


def example(spec):
    c = spec.channels or 1
    x = torch.rand(2, c, 32, 32, generator=torch.Generator().manual_seed(0))
    return x * 200 if spec.modality != "CT" else x * 100 - 50


@pytest.mark.parametrize("task", sorted(REQUIRED))
def test_seeded_determinism_and_shape(task):
    spec = TASKS[task]
    x = example(spec)
    kw = dict(iterations=2, subsets=2) if task == "pet-lowcount" else {}
    a = simulate(task, x, seed=11, **kw)
    b = simulate(task, x, seed=11, **kw)
    assert torch.equal(a, b)
    assert torch.isfinite(a).all()
    if task == "mri-sr":
        assert a.shape == (2, 1, 8, 8)
    else:
        assert a.shape == x.shape
    if task not in ("mri-sr", "path-sr"):  # the SR tasks are deterministic by default
        assert not torch.equal(a, simulate(task, x, seed=12, **kw))


@pytest.mark.parametrize("task", sorted(REQUIRED))
def test_unknown_parameter_refused(task):
    with pytest.raises(MedirError):
        simulate(task, example(TASKS[task]), not_a_parameter=1)

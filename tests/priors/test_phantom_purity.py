"""Classical regions respect the simulated anatomy of the brain phantom (PET and T1 MR, 512x512).

Purity of a region = fraction of its pixels in its majority true tissue (0 background, 1 CSF,
2 grey, 3 white, 4 lesion). Lesions exist in PET only, so the MR cannot see them: they count
against MR purity as any real partition would.
"""

import numpy as np
import pytest
import torch

from medir.priors.classical import ClassicalSegmenter
from medir.priors.oracle import oracle_partition, region_purity

phantoms = pytest.importorskip("medir.data.phantoms")
SLICES = (70, 100, 141)


@pytest.fixture(scope="module")
def brain():
    try:
        return [phantoms.brain_slice(z, size=512, hot_lesions=2, cold_lesions=1,
                                     generator=torch.Generator().manual_seed(z)) for z in SLICES]
    except Exception as err:  # nilearn's template missing: the phantom cannot be built here
        pytest.skip(f"brain phantom unavailable: {err}")


def test_classical_regions_follow_tissue_labels(brain):
    seg = ClassicalSegmenter(max_regions=None)  # the fine partition; SAM-like granularity: tests/priors/test_granularity.py
    means, weighted = [], []
    for s in brain:
        truth = s.labels[0].numpy()
        for image, modality in ((s.mr[0].numpy(), "MR"), (s.activity[0].numpy(), "PT")):
            part = seg(image, modality=modality)
            m, w = region_purity(part.labels, truth)
            means.append(m)
            weighted.append(w)
            assert 30 <= part.num_regions <= 1000  # a partition, not one blob and not a pixel soup
    print("mean region purity per image", np.round(means, 3), "pixel-weighted", np.round(weighted, 3))
    # The phantom has hard tissue labels (GM:WM 4:1, CSF near 0): its many thin sulcal CSF islands give small
    # boundary regions of mixed tissue, which weigh as much as large ones in the unweighted mean (measured 0.84
    # here, 0.90+ on the old partial-volume phantom); the pixel-weighted purity is the strict check.
    assert np.mean(means) >= 0.8
    assert min(weighted) >= 0.95


def test_oracle_prior_is_pure(brain):
    truth = brain[0].labels[0].numpy()
    assert region_purity(oracle_partition(truth, split_components=True).labels, truth) == (1.0, 1.0)

"""FID and LPIPS columns of the report, through :mod:`medir.metrics.perceptual` (imported only when asked for).

That module's interface: ``feature_network(path=None) -> FeatureNet`` (an ``nn.Module`` whose ``label`` says what
it is, e.g. a random-initialised network "not standard FID"), ``fid(real, fake, *, net) -> float`` and
``lpips(x, y, *, net) -> (N,) tensor``, images ``(N, C, H, W)`` in [0, 1]. Images are mapped to [0, 1] with the
suite's evaluation window (or the reference's min and max without one), grey images repeated to 3 channels.
"""

from __future__ import annotations

import numpy as np



def _unit(images: list[np.ndarray], lo: float, hi: float):
    import torch

    x = torch.from_numpy(np.stack([np.clip((a - lo) / (hi - lo), 0.0, 1.0) for a in images]).astype(np.float32))
    x = x[:, None] if x.ndim == 3 else x.permute(0, 3, 1, 2)
    return x.repeat(1, 3, 1, 1) if x.shape[1] == 1 else x


def perceptual_scores(outputs: dict[str, dict[str, np.ndarray]], references: dict[str, np.ndarray], *,
                      window: tuple[float, float] | None, path: str | None = None) -> tuple[dict[str, dict], str]:
    """``({contender: {"fid": float, "lpips": (mean, std)}}, feature network label)``.

    ``outputs[contender][case]`` and ``references[case]`` are images in physical units; FID compares the set of a
    contender's restorations with the set of references (few images make it a noisy number: the report says so).
    """
    from medir.metrics.perceptual import feature_network, fid, lpips

    net = feature_network(path)
    names = list(references)
    ref_list = [references[n] for n in names]
    lo, hi = window if window is not None else (float(min(a.min() for a in ref_list)),
                                                float(max(a.max() for a in ref_list)))
    real = _unit(ref_list, lo, hi)
    scores = {}
    for contender, images in outputs.items():
        fake = _unit([images[n] for n in names], lo, hi)
        per_image = np.asarray(lpips(fake, real, net=net).detach().cpu(), np.float64).reshape(-1)
        scores[contender] = {"fid": float(fid(real, fake, net=net)),
                             "lpips": (float(per_image.mean()), float(per_image.std(ddof=1)) if per_image.size > 1
                                       else float("nan"))}
    return scores, str(getattr(net, "label", type(net).__name__))

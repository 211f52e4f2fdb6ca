"""Fine-tuned segmentation head on a frozen encoder (AutoSAM style, SPD-VFM section III-G).

``SegmenterNet(encoder, head)``: ``(B, 1, H, W)`` in ``[0, 1]`` (windowed, see
:func:`medir.priors.base.window_to_unit`) -> class logits ``(B, K, H, W)``.

- Encoder (frozen, never trained): :class:`SamImageEncoder` (a SAM / MedSAM ViT, ``(B, 256, 64, 64)``
  for a 1024 input) when SAM weights exist; otherwise :class:`RandomFeatureEncoder`, which is *not*
  a learned encoder: fixed Gaussian derivative filters at 3 scales plus fixed random 3x3
  convolutions (seeded), pooled to 1/4 resolution. It gives the head local intensity, edge and
  texture features so the same recipe trains without any weights.
- Head (trained): ``stages`` x (3x3 conv stride 1 + BN + ReLU, 2x2 transposed conv stride 2 + BN + ReLU),
  then a 1x1 conv to ``K`` class logits, bilinearly resized to the input size.
- Loss: ``0.2 * cross-entropy + 0.8 * soft Dice`` (SPD-VFM); AdamW lr 5e-3 with a 250-step linear warm-up.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _gaussian_kernels(sigmas: tuple[float, ...], size: int = 13) -> torch.Tensor:
    """``(3 * len(sigmas), 1, size, size)``: Gaussian, d/dx and d/dy of a Gaussian for each sigma (pixels)."""
    r = torch.arange(size, dtype=torch.float64) - size // 2
    yy, xx = torch.meshgrid(r, r, indexing="ij")
    kernels = []
    for s in sigmas:
        g = torch.exp(-(xx**2 + yy**2) / (2 * s * s))
        g = g / g.sum()
        kernels += [g, -xx / (s * s) * g * s, -yy / (s * s) * g * s]  # derivatives scaled by sigma
    return torch.stack(kernels)[:, None].float()


class RandomFeatureEncoder(nn.Module):
    """Frozen, non-learned features at 1/4 resolution: ``(B, 1, H, W)`` -> ``(B, out_channels, H/4, W/4)``.

    Channels: intensity; Gaussian blur and Gaussian derivatives at sigma 1, 2, 4 px; 16 fixed random
    3x3 filters + ReLU at full resolution; all average-pooled 4x4; then 32 fixed random 3x3 filters +
    ReLU on the pooled stack for context. Weights are buffers drawn from ``seed``: nothing trains.
    """

    stride = 4

    def __init__(self, *, seed: int = 0, random_channels: int = 16, context_channels: int = 32):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.register_buffer("gauss", _gaussian_kernels((1.0, 2.0, 4.0)))
        self.register_buffer("rand1", torch.randn(random_channels, 1, 3, 3, generator=g) / 3.0)
        self.register_buffer("bias1", torch.randn(random_channels, generator=g) * 0.1)
        pooled = 1 + self.gauss.shape[0] + random_channels
        self.register_buffer("rand2", torch.randn(context_channels, pooled, 3, 3, generator=g) / math.sqrt(9 * pooled))
        self.out_channels = pooled + context_channels

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :1]
        pad = self.gauss.shape[-1] // 2
        smooth = F.conv2d(F.pad(x, (pad,) * 4, mode="replicate"), self.gauss)
        rand = F.relu(F.conv2d(F.pad(x, (1,) * 4, mode="replicate"), self.rand1, self.bias1))
        feats = F.avg_pool2d(torch.cat([x, smooth, rand], 1), self.stride, ceil_mode=True)
        context = F.relu(F.conv2d(F.pad(feats, (1,) * 4, mode="replicate"), self.rand2))
        return torch.cat([feats, context], 1)


class SamImageEncoder(nn.Module):
    """A frozen SAM / MedSAM image encoder: ``(B, 1 or 3, H, W)`` in ``[0, 1]`` -> ``(B, C, s, s)``.

    The input is resized to the model's square input (AutoSAM resizes without keeping the aspect
    ratio), scaled to 0-255 and normalised with ImageNet mean/std as SAM expects.
    """

    def __init__(self, sam_model):
        super().__init__()
        self.vision = sam_model.vision_encoder
        self.vision.eval().requires_grad_(False)
        self.image_size = int(sam_model.config.vision_config.image_size)
        self.out_channels = int(sam_model.config.vision_config.output_channels)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x[:, :3]
        x = F.interpolate(x, size=(self.image_size,) * 2, mode="bilinear", align_corners=False)
        return self.vision((x - self.mean) / self.std)[0]


class SegmentationHead(nn.Module):
    """AutoSAM-style CNN head: ``(B, C, h, w)`` -> ``(B, num_classes, h * 2**stages, w * 2**stages)`` logits."""

    def __init__(self, in_channels: int, num_classes: int, *, width: int = 64, stages: int = 2, dropout: float = 0.0):
        super().__init__()
        layers, c = [], in_channels
        for _ in range(stages):
            layers += [
                nn.Conv2d(c, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(inplace=True),
                nn.ConvTranspose2d(width, width, 2, stride=2), nn.BatchNorm2d(width), nn.ReLU(inplace=True),
            ]
            c = width
        self.body = nn.Sequential(*layers)
        self.dropout = nn.Dropout2d(dropout)
        self.classifier = nn.Conv2d(c, num_classes, 1)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.dropout(self.body(feats)))


class SegmenterNet(nn.Module):
    """Frozen ``encoder`` + trainable ``head``: ``(B, 1, H, W)`` in ``[0, 1]`` -> logits ``(B, K, H, W)``."""

    def __init__(self, encoder: nn.Module, head: SegmentationHead):
        super().__init__()
        self.encoder = encoder.requires_grad_(False)
        self.head = head

    def train(self, mode: bool = True) -> "SegmenterNet":
        super().train(mode)
        self.encoder.eval()  # frozen: no dropout / batch-norm updates in the encoder, ever
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.head(self.encoder(x))
        return F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)


def soft_dice_loss(logits: torch.Tensor, labels: torch.Tensor, *, eps: float = 1.0) -> torch.Tensor:
    """``1 - mean_k 2|P_k G_k| / (|P_k| + |G_k|)`` over classes, softmax ``P``, one-hot ``G``; ``(B, K, H, W)``, ``(B, H, W)``."""
    probs = logits.softmax(1)
    onehot = F.one_hot(labels.long(), logits.shape[1]).permute(0, 3, 1, 2).to(probs.dtype)
    inter = (probs * onehot).sum((0, 2, 3))
    denom = probs.sum((0, 2, 3)) + onehot.sum((0, 2, 3))
    return 1.0 - ((2 * inter + eps) / (denom + eps)).mean()


class SegHeadMethod(nn.Module):
    """The head as a medir method: ``forward(batch) -> (loss, logs)`` for the common training loop.

    batch: ``image`` ``(B, 1, H, W)`` in ``[0, 1]``, ``labels`` ``(B, H, W)`` int class ids.
    loss = ``ce_weight * CE + dice_weight * soft Dice`` (SPD-VFM: 0.2 and 0.8).
    """

    def __init__(self, network: SegmenterNet, *, ce_weight: float = 0.2, dice_weight: float = 0.8,
                 intensity: dict | None = None):
        super().__init__()
        self.network = network
        self.ce_weight = ce_weight
        self.dice_weight = dice_weight
        self.intensity = intensity  # the preset that maps physical units to the network, saved with the head

    @property
    def num_classes(self) -> int:
        return int(self.network.head.classifier.out_channels)

    def forward(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        logits = self.network(batch["image"])
        labels = batch["labels"].long()
        ce = F.cross_entropy(logits, labels)
        dice = soft_dice_loss(logits, labels)
        loss = self.ce_weight * ce + self.dice_weight * dice
        return loss, {"ce": ce.detach(), "dice_loss": dice.detach()}

    @torch.no_grad()
    def predict(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """``(B, H, W)`` predicted class ids."""
        return self.network(batch["image"]).argmax(1)

    @torch.no_grad()
    def validate(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        """``dice_k`` per class present in the truth or the prediction, and ``dice``: their mean over the
        foreground classes (k >= 1), mean over the batch."""
        pred, truth = self.predict(batch).cpu().numpy(), batch["labels"].cpu().numpy()
        per_item = np.stack([dice_per_class(p, t, num_classes=self.num_classes) for p, t in zip(pred, truth)])
        present = ~np.isnan(per_item).all(0)
        scores = {f"dice_{k}": float(np.nanmean(per_item[:, k])) for k in np.nonzero(present)[0]}
        foreground = [v for k, v in scores.items() if k != "dice_0"]
        return {"dice": float(np.mean(foreground)) if foreground else float("nan"), **scores}

    def save(self, path, *, metrics: dict | None = None, training: dict | None = None) -> None:
        """Write the head as :meth:`HeadSegmenter.save` does (loadable as ``head:PATH``); keeps train/eval mode."""
        was_training = self.training
        args = self.network.build_args
        HeadSegmenter(self.network, num_classes=self.num_classes, sam_path=args["sam_path"], seed=args["seed"],
                      intensity=self.intensity).save(path, force=True, metrics=metrics, training=training)
        self.train(was_training)


def seg_head(*, num_classes: int, sam_path: str | None = None, width: int = 64, stages: int | None = None,
             dropout: float = 0.0, ce_weight: float = 0.2, dice_weight: float = 0.8, seed: int = 0,
             intensity: dict | None = None) -> SegHeadMethod:
    """A fresh head on its frozen encoder (:func:`build_network`), wrapped as a trainable method."""
    network = build_network(num_classes=num_classes, sam_path=sam_path, seed=seed, width=width, stages=stages,
                            dropout=dropout)
    return SegHeadMethod(network, ce_weight=ce_weight, dice_weight=dice_weight, intensity=intensity)


def dice_per_class(pred: np.ndarray, truth: np.ndarray, *, num_classes: int) -> np.ndarray:
    """Dice ``2|P & G| / (|P| + |G|)`` per class ``(K,)``; NaN for a class absent from both maps."""
    out = np.full(num_classes, np.nan)
    for k in range(num_classes):
        p, g = pred == k, truth == k
        denom = p.sum() + g.sum()
        if denom:
            out[k] = 2.0 * (p & g).sum() / denom
    return out


def hausdorff_per_class(pred: np.ndarray, truth: np.ndarray, *, num_classes: int,
                        spacing: tuple[float, float] = (1.0, 1.0)) -> np.ndarray:
    """Symmetric Hausdorff distance per class in mm ``(K,)`` (pixel spacing ``spacing``);
    NaN when the class is absent from both maps, inf when absent from only one."""
    from scipy.ndimage import distance_transform_edt

    out = np.full(num_classes, np.nan)
    for k in range(num_classes):
        p, g = pred == k, truth == k
        if not p.any() and not g.any():
            continue
        if not p.any() or not g.any():
            out[k] = np.inf
            continue
        to_g = distance_transform_edt(~g, sampling=spacing)
        to_p = distance_transform_edt(~p, sampling=spacing)
        out[k] = max(to_g[p].max(), to_p[g].max())
    return out


def build_network(*, num_classes: int, sam_path: str | None = None, seed: int = 0, width: int = 64,
                  stages: int | None = None, dropout: float = 0.0) -> SegmenterNet:
    """Encoder (SAM's when ``sam_path`` is given, else random features) + a fresh head.

    ``stages`` defaults to 2 for both: x4 on SAM's 1/16 embedding (AutoSAM) and back to full
    resolution on the random-feature encoder's 1/4 grid; logits are resized to the input anyway.
    """
    if sam_path is not None:
        from medir.priors.sam import load_sam

        encoder = SamImageEncoder(load_sam(sam_path))
    else:
        encoder = RandomFeatureEncoder(seed=seed)
    head = SegmentationHead(encoder.out_channels, num_classes, width=width, stages=stages or 2, dropout=dropout)
    net = SegmenterNet(encoder, head)
    net.build_args = dict(num_classes=num_classes, sam_path=sam_path, seed=seed, width=width, stages=stages,
                          dropout=dropout)  # what load_head needs to rebuild it
    return net


def train_head(
    images: list[np.ndarray],
    labels: list[np.ndarray],
    *,
    num_classes: int,
    modality: str = "OT",
    sam_path: str | None = None,
    steps: int = 300,
    batch_size: int = 4,
    lr: float = 5e-3,
    warmup: int = 250,
    weight_decay: float = 1e-4,
    seed: int = 0,
) -> "HeadSegmenter":
    """Train a head on a few labelled slices (physical units, ``(H, W)`` each, all one size) with AdamW.

    Learning rate: linear warm-up over ``warmup`` steps then cosine decay to 0 at ``steps``
    (:func:`medir.engine.schedule.cosine_lr`). Batches are random picks with random flips and
    90-degree rotations drawn from ``seed``. Returns the trained segmenter (eval mode).
    """
    from medir.engine.schedule import cosine_lr
    from medir.priors.base import window_to_unit
    from medir.priors.transforms import random_pair

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    x_all = np.stack([window_to_unit(im, modality=modality) for im in images])[:, None].astype(np.float32)
    y_all = np.stack(labels).astype(np.int64)
    net = build_network(num_classes=num_classes, sam_path=sam_path, seed=seed)
    method = SegHeadMethod(net).train()
    params = [p for p in method.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    for step in range(steps):
        for group in opt.param_groups:
            group["lr"] = cosine_lr(step, base_lr=lr, steps=steps, warmup=min(warmup, steps // 2))
        idx = rng.integers(0, len(x_all), size=batch_size)
        pairs = [random_pair(x_all[i], y_all[i], size=None, rng=rng) for i in idx]
        batch = {"image": torch.from_numpy(np.stack([p[0] for p in pairs])),
                 "labels": torch.from_numpy(np.stack([p[1] for p in pairs]))}
        loss, _ = method(batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return HeadSegmenter(net.eval(), num_classes=num_classes, sam_path=sam_path, seed=seed)


class HeadSegmenter:
    """A trained head as a segmenter: class ids as labels (0 = background class), per-class confidence
    = mean winning softmax probability over the pixels of that class. ``intensity``: the preset
    (:class:`medir.data.intensity.IntensityPreset` as a dict) the head was trained with, or None for
    :func:`medir.priors.base.window_to_unit` (:func:`train_head`)."""

    name = "head"

    def __init__(self, network: SegmenterNet, *, num_classes: int, sam_path: str | None = None, seed: int = 0,
                 source: str = "in-memory", intensity: dict | None = None):
        self.network = network.eval()
        self.num_classes = num_classes
        self.sam_path = sam_path
        self.seed = seed
        self.source = source
        self.intensity = intensity

    def settings(self) -> str:
        return f"head:v1:{self.source}:k={self.num_classes}:sam={self.sam_path}"

    @torch.no_grad()
    def probabilities(self, image: np.ndarray, *, modality: str = "OT") -> torch.Tensor:
        """``(K, H, W)`` softmax class probabilities for one ``(H, W)`` slice in physical units."""
        from medir.data.intensity import IntensityPreset
        from medir.priors.base import check_image, window_to_unit

        image = check_image(image)
        if self.intensity is not None:
            preset = IntensityPreset.from_dict(self.intensity)
            unit = preset.to_network(image, preset.scale_for(image))
        else:
            unit = window_to_unit(image, modality=modality)
        unit = unit.mean(-1) if unit.ndim == 3 else unit
        x = torch.from_numpy(np.ascontiguousarray(unit, dtype=np.float32))[None, None]
        device = next(self.network.parameters()).device
        return self.network(x.to(device)).softmax(1)[0].cpu()

    def __call__(self, image: np.ndarray, *, modality: str = "OT"):
        from medir.priors.base import Partition

        prob = self.probabilities(image, modality=modality)
        best, labels = prob.max(0)
        conf = np.full(self.num_classes, np.nan, dtype=np.float32)
        for k in labels.unique().tolist():
            conf[k] = float(best[labels == k].mean())
        return Partition(labels.numpy().astype(np.int32), conf)

    def save(self, path, *, force: bool = False, metrics: dict | None = None, training: dict | None = None) -> None:
        """A folder with ``model.safetensors`` (head weights; the random encoder's buffers too) and ``config.json``
        (how to rebuild the network, the intensity preset, and optionally validation ``metrics`` and the
        ``training`` recipe)."""
        import json

        from safetensors.torch import save_file

        from medir.engine.atomic import atomic_dir

        state = {k: v.detach().to("cpu").contiguous() for k, v in self.network.state_dict().items()
                 if not (self.sam_path and k.startswith("encoder."))}
        build = getattr(self.network, "build_args", {})
        config = {"format": "medir-segmentation-head", "format_version": 1, "num_classes": self.num_classes,
                  "sam_path": self.sam_path, "seed": self.seed, "intensity": self.intensity,
                  **{k: build[k] for k in ("width", "stages", "dropout") if k in build},
                  "metrics": metrics or {}, "training": training or {}}
        with atomic_dir(path, force=force) as tmp:
            save_file(state, str(tmp / "model.safetensors"))
            (tmp / "config.json").write_text(json.dumps(config, indent=2))


def load_head(path) -> HeadSegmenter:
    """Load a folder written by :meth:`HeadSegmenter.save`; one-line ModelFileError otherwise."""
    import json
    from pathlib import Path

    from safetensors.torch import load_file

    from medir.errors import ModelFileError

    folder = Path(path).expanduser()
    folder = folder.parent if folder.is_file() else folder
    try:
        config = json.loads((folder / "config.json").read_text())
        assert config.get("format") == "medir-segmentation-head"
        state = load_file(str(folder / "model.safetensors"))
    except FileNotFoundError:
        raise ModelFileError(f"segmentation head {path} does not exist or lacks config.json/model.safetensors")
    except (AssertionError, ValueError, OSError) as err:
        raise ModelFileError(f"{path} is not a medir segmentation head ({type(err).__name__})") from err
    shape = {k: config[k] for k in ("width", "stages", "dropout") if k in config}
    net = build_network(num_classes=config["num_classes"], sam_path=config["sam_path"], seed=config["seed"], **shape)
    missing, unexpected = net.load_state_dict(state, strict=False)
    if unexpected or any(not k.startswith("encoder.") for k in missing):
        raise ModelFileError(f"{path}: weights do not match the head in its config.json")
    return HeadSegmenter(net, num_classes=config["num_classes"], sam_path=config["sam_path"], seed=config["seed"],
                         source=str(folder.resolve()), intensity=config.get("intensity"))


def read_labelled_folder(root) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """``root/images/NAME`` with ``root/labels/NAME`` (any format medir reads; volumes give one pair per
    slice): physical-unit slices ``(H, W)`` and int label maps ``(H, W)``; one-line errors otherwise."""
    from pathlib import Path

    from medir.data.labelled import find_labelled, read_labelled

    slices = read_labelled(find_labelled(Path(root), str(root)))
    return [image[0] for image in slices.images], slices.labels

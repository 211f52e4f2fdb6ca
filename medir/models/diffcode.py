"""DiffCode's inference network (seed 004): all-in-one restoration of MRI (4x SR at output size), CT and PET.

``DiffCodeNet(x)`` takes (B, 1, H, W) in physical units (MR a.u., CT HU, PET SUV), any H, W (several channels:
each is restored as an image of its own):

1. the task classifier (on the per-image standardised input, so independent of units) picks the task t and, through
   the task gate, the experts of every routed module (TARM, :mod:`medir.nn.routing`);
2. x is mapped to task t's network scale (``offsets``/``spans``: MR [0, 4095], CT [-1024, 3071], PET [0, 20]);
3. prior (if ``prior``): the condition encoder E_lq maps x to a latent condition c; with ``diffusion`` the latent
   denoiser runs T deterministic steps from Gaussian noise (a fixed seed at inference) to z, else a 1x1 head maps c
   to z directly; z is quantised by task t's codebook and decoded by the stage I decoder into a reference image;
4. the restorer (NAF U-Net whose bottleneck and last stage are TARMs) maps concat[x, reference] to x + residual;
5. the output goes back to physical units.

A misrouted input is restored with the wrong task's scale, codebook and experts: still a finite image of the input's
size. ``restore(x, task)`` runs steps 2-5 on inputs already in the network scale with known (or given) tasks.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from medir.nn.latent_diffusion import LatentDenoiser, Schedule, diffir_betas, reverse_chain
from medir.nn.naf import naf_stage
from medir.nn.naf_unet import NAFDecoder, NAFEncoder
from medir.nn.padding import crop_to, pad_to_multiple
from medir.nn.quantize import CodebookBank
from medir.nn.routing import MixtureOfExperts, TaskClassifier, TaskGate
from medir.nn.sampling import PixelShuffleUp

# Network scale per task id (medir.data.allinone): (offset, span) of MR, CT, PET.
DEFAULT_SCALES = ((0.0, 4095.0), (-1024.0, 4095.0), (0.0, 20.0))


class LatentEncoder(nn.Module):
    """(B, 1, H, W) -> (B, out_dim, H / 2^L, W / 2^L): conv in, NAF stages with stride-2 downs, 1x1 out."""

    def __init__(self, width: int, blocks: list[int], out_dim: int, in_channels: int = 1):
        super().__init__()
        self.intro = nn.Conv2d(in_channels, width, 3, padding=1)
        self.body = NAFEncoder(width, blocks)
        self.out = nn.Conv2d(self.body.out_channels, out_dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.body(self.intro(x))[0])


class LatentDecoder(nn.Module):
    """Mirror of :class:`LatentEncoder` without skips: (B, dim, h, w) -> (B, 1, h 2^L, w 2^L)."""

    def __init__(self, width: int, blocks: list[int], dim: int, out_channels: int = 1):
        super().__init__()
        chan = width * 2 ** len(blocks)
        self.intro = nn.Conv2d(dim, chan, 1)
        stages: list[nn.Module] = []
        for n in reversed(blocks):
            stages += [PixelShuffleUp(chan), naf_stage(chan // 2, n)]
            chan //= 2
        self.body = nn.Sequential(*stages)
        self.out = nn.Conv2d(chan, out_channels, 3, padding=1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.out(self.body(self.intro(z)))


class RoutedRestorer(nn.Module):
    """NAF U-Net on concat[LQ, reference] with TARMs at the bottleneck and at the last stage; output LQ + residual."""

    def __init__(self, in_channels: int, width: int, blocks: list[int], middle: int, experts: int):
        super().__init__()
        self.intro = nn.Conv2d(in_channels, width, 3, padding=1)
        self.encoder = NAFEncoder(width, blocks)
        chan = self.encoder.out_channels
        self.middle = MixtureOfExperts([naf_stage(chan, middle) for _ in range(experts)])
        self.decoder = NAFDecoder(chan, blocks)
        self.last = MixtureOfExperts([naf_stage(width, 1) for _ in range(experts)])
        self.out = nn.Conv2d(width, 1, 3, padding=1)
        nn.init.zeros_(self.out.weight)  # starts as the identity (output = LQ), so training can only add to it
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        f, skips = self.encoder(self.intro(x))
        f = self.decoder(self.middle(f, weights), skips)
        return x[:, :1] + self.out(self.last(f, weights))


class DiffCodeNet(nn.Module):
    """DiffCode (see the module docstring). Sizes: ``vq_width``/``vq_blocks`` (stage I autoencoder and the condition
    encoder), ``code_dim``, ``codebook_size``, ``depth`` (residual quantisation), ``codebooks`` (1 = one shared
    codebook, ``tasks`` = the bank), ``width``/``blocks``/``middle_blocks`` (restorer), ``experts``/``top_k``
    (routing; experts = 1 is the unrouted backbone), ``prior`` and ``diffusion`` (the Table 2a components),
    ``steps`` (T), ``scales`` ((offset, span) of each task's network scale)."""

    def __init__(self, *, in_channels: int = 1, out_channels: int = 1, scale: int = 1, tasks: int = 3,
                 vq_width: int = 8, vq_blocks: list[int] = (1, 1), code_dim: int = 16, codebook_size: int = 64,
                 depth: int = 2, codebooks: int | None = None, width: int = 8, blocks: list[int] = (1, 1),
                 middle_blocks: int = 1, experts: int = 4, top_k: int = 1, prior: bool = True, diffusion: bool = True,
                 steps: int = 8, denoiser_hidden: int | None = None, classifier_width: int = 8,
                 scales: list[list[float]] = DEFAULT_SCALES):
        super().__init__()
        if in_channels != out_channels or scale != 1:
            raise ValueError("DiffCodeNet restores images at their own size, channel by channel (in = out, scale 1)")
        if len(scales) != tasks:
            raise ValueError(f"give one (offset, span) per task: {tasks} tasks, {len(scales)} scales")
        codebooks = tasks if codebooks is None else codebooks
        self.channels = in_channels
        self.arch_args = dict(in_channels=in_channels, out_channels=out_channels, tasks=tasks, vq_width=vq_width, vq_blocks=list(vq_blocks), code_dim=code_dim,
                              codebook_size=codebook_size, depth=depth, codebooks=codebooks, width=width,
                              blocks=list(blocks), middle_blocks=middle_blocks, experts=experts, top_k=top_k,
                              prior=prior, diffusion=diffusion, steps=steps, denoiser_hidden=denoiser_hidden,
                              classifier_width=classifier_width, scales=[list(map(float, s)) for s in scales])
        self.tasks, self.prior, self.diffusion = tasks, prior, diffusion
        self.multiple = 2 ** max(len(vq_blocks) if prior else 0, len(blocks))
        self.register_buffer("scales", torch.tensor(scales, dtype=torch.float32), persistent=False)
        self.classifier = TaskClassifier(1, tasks, width=classifier_width)
        self.gate = TaskGate(tasks, experts, top_k=top_k)
        self.restorer = RoutedRestorer(2 if prior else 1, width, list(blocks), middle_blocks, experts)
        if prior:
            self.vq_encoder = LatentEncoder(vq_width, list(vq_blocks), code_dim)
            self.bank = CodebookBank(codebooks, code_dim, codebook_size, depth)
            self.vq_decoder = LatentDecoder(vq_width, list(vq_blocks), code_dim)
            self.cond_encoder = LatentEncoder(vq_width, list(vq_blocks), code_dim)
            if diffusion:
                self.denoiser = LatentDenoiser(code_dim, code_dim, hidden=denoiser_hidden, steps=steps)
                self.schedule = Schedule(diffir_betas(steps))
            else:
                self.direct = nn.Conv2d(code_dim, code_dim, 1)

    def estimate_latent(self, x: torch.Tensor, *, start: torch.Tensor | None = None) -> torch.Tensor:
        """Stage II's estimate of the HQ latent from LQ ``x`` (network scale); ``start`` is z_T (default: noise,
        seeded in eval mode so that inference is deterministic)."""
        c = self.cond_encoder(x)
        if not self.diffusion:
            return self.direct(c)
        if start is None:
            seeded = not self.training and c.device.type != "meta"  # meta: shape-only runs (MAC counts)
            gen = torch.Generator(device=c.device).manual_seed(0) if seeded else None
            start = torch.randn(c.shape, generator=gen, device=c.device, dtype=c.dtype)
        return reverse_chain(self.denoiser, start, c, self.schedule)

    def reference(self, x: torch.Tensor, task: torch.Tensor) -> torch.Tensor:
        """The decoded prior (B, 1, H, W) for LQ ``x`` (network scale, H and W multiples of 2^L) and tasks (B,)."""
        zq, _, _ = self.bank(self.estimate_latent(x), task)
        return self.vq_decoder(zq)

    def restore(self, x: torch.Tensor, task: torch.Tensor, task_probs: torch.Tensor | None = None) -> torch.Tensor:
        """Restore ``x`` (B, 1, H, W) in the network scale; ``task`` (B,) picks codebooks, ``task_probs`` (B, tasks)
        the experts (default: one-hot ``task``)."""
        h, w = x.shape[-2:]
        xp = pad_to_multiple(x, self.multiple)
        probs = F.one_hot(task.long(), self.tasks).float() if task_probs is None else task_probs
        _, weights = self.gate(probs)
        inp = torch.cat([xp, self.reference(xp, task)], dim=1) if self.prior else xp
        return crop_to(self.restorer(inp, weights), h, w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] != 1:  # each channel is an image of its own
            b, c, h, w = x.shape
            return self.forward(x.reshape(b * c, 1, h, w)).reshape(b, c, h, w)
        probs = self.classifier(x).softmax(dim=1)
        task = probs.argmax(dim=1)
        offset, span = self.scales[task, 0].view(-1, 1, 1, 1), self.scales[task, 1].view(-1, 1, 1, 1)
        return self.restore((x - offset) / span, task, probs) * span + offset

"""Simulate a quarter-dose CT from a real slice and restore it with the shipped model.

    python examples/ct_lowdose_restore.py

The slice is pydicom's lossless head CT ``J2K_pixelrep_mismatch.dcm`` (``pip install pydicom-data``), which the
shipped model ``ct-ldct-nafnet`` never saw in training. A real scan already carries the noise of its own dose, so
the low-dose input is the scan plus the noise that a quarter of that dose adds (``ct-lowdose`` noise insertion);
the scan itself stays the reference. About 10 s of CPU.
"""

import torch

from medir.data.ldct import EXAMPLE, real_ct
from medir.engine.inference import restore_image
from medir.engine.modelfile import load_model
from medir.io import Image
from medir.metrics import psnr, rmse
from medir.physics import simulate
from medir.physics.ct_noise import estimate_scan_dose

WINDOW = (-160.0, 240.0)  # the evaluation window of the shipped CT model, in HU

scan = real_ct(EXAMPLE)  # Image: (512, 512) float32 in HU, meta.spacing in mm
pixel_mm = float(scan.meta.spacing[-1])
own_dose = estimate_scan_dose(scan.array, pixel_mm=pixel_mm)  # relative to the calibrated reference dose
ref = scan.array
x = torch.from_numpy(ref)[None, None]  # (B, C, H, W) in HU
low = simulate("ct-lowdose", x, seed=0, dose=0.25 * own_dose, scan_dose=own_dose, pixel_size_mm=pixel_mm)
low = low[0, 0].numpy()

model, card = load_model("ct-ldct-nafnet")  # the same loader and inference path as `medir restore`
restored = restore_image(Image(low, scan.meta), model, card, tile=512, overlap=32, batch=1).array

for name, img in [("quarter-dose input", low), ("restored", restored)]:
    print(f"{name:>18}: PSNR {psnr(img, ref, data_range='target', window=WINDOW):.2f} dB, "
          f"RMSE {rmse(img, ref, window=WINDOW):.1f} HU  (window [-160, 240] HU, data range = reference max - min)")
assert psnr(restored, ref, data_range="target", window=WINDOW) > psnr(low, ref, data_range="target", window=WINDOW)

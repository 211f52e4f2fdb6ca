"""The explicit list of simulation tasks (``TASKS``); no scanning, no import-time side effects."""

from __future__ import annotations

from medir.physics.ct import DETECTOR_MM, I0_REFERENCE, simulate_ct_lowdose
from medir.physics.mri import MRI_PROTOCOLS, SCALES, simulate_mri_sr, simulate_path_sr
from medir.physics.optics import simulate_endo_smoke
from medir.physics.pet import PET_PROTOCOLS, simulate_pet_lowcount
from medir.physics.scintigraphy import PAPER_MOTION_ANGLE, simulate_scinti_rapid
from medir.physics.projector import FILTER_WINDOWS
from medir.physics.tasks import Param, TaskSpec

_POS = dict(lo=0.0, lo_open=True)

CT_LOWDOSE = TaskSpec(
    name="ct-lowdose",
    description="low-dose CT by noise insertion: the scan + FBP(noisy sinogram) - FBP(clean sinogram) at dose x I0",
    modality="CT",
    channels=None,
    fn=simulate_ct_lowdose,
    params=(
        Param("dose", 0.25, "fraction of the reference dose (0.25 = quarter dose)", hi=1e3, hint="e.g. 0.25", **_POS),
        Param("i0", I0_REFERENCE, "full-dose photons per detector element per rotation (calibrated: "
              "docs/physics_calibration.md)", **_POS),
        Param("scan_dose", 1.0, "dose of the input scan (noise already in it); None = noiseless phantom", **_POS),
        Param("electronic_noise", 0.0, "Gaussian electronic noise std, photons per element and view", lo=0.0),
        Param("pixel_size_mm", 1.0, "pixel size in mm (the CLI takes it from the file)", **_POS),
        Param("detector_mm", DETECTOR_MM, "detector element width at the isocentre, mm", **_POS),
        Param("views", None, "projection angles over 180 degrees (default: the angular Nyquist, pi/2 x detector "
              "elements)", lo=1),
        Param("window", "hann", "FBP filter apodisation (cut off at the detector's Nyquist)", choices=FILTER_WINDOWS),
        Param("bowtie", 1.0, "relative flux 250 mm off the isocentre (1 = flat, 0.3 = a typical bowtie)", hi=1.0,
              **_POS),
        Param("tube_modulation", False, "angular tube-current modulation ~ sqrt(attenuation)", choices=(True, False)),
        Param("noise", True, "False returns the scan unchanged", choices=(True, False)),
    ),
)

PET_LOWCOUNT = TaskSpec(
    name="pet-lowcount",
    description="low-count PET: activity -> attenuated PSF sinogram -> Poisson at counts x dose -> OSEM (MFdiff 4.2)",
    modality="PT",
    channels=None,
    fn=simulate_pet_lowcount,
    params=(
        Param("protocol", "mfdiff-low", "counts per 2-D slice: mfdiff-low 2.25e5-3e5, 4 mm, OSEM 10x14; mfdiff-high "
              "7.9e7, 2.5 mm, 15x10; clinical-full/-quarter/-twelfth 2e6, 5e5, 1.7e5, 4 mm, 3x21 + 5 mm filter",
              choices=tuple(PET_PROTOCOLS)),
        Param("counts", None, "expected counts in this 2-D slice at full dose (default: the protocol's; a clinical "
              "3-D scan's counts divided by its slices, 1e5-1e7)", **_POS),
        Param("dose", 1.0, "dose-reduction fraction on top of counts (RAT/DiffCode: 1/12)", hi=1.0, **_POS),
        Param("psf_fwhm_mm", None, "Gaussian PSF FWHM in mm, modelled in OSEM too (default: protocol)", lo=0.0),
        Param("iterations", None, "OSEM iterations (default: protocol)", lo=1, hi=1000),
        Param("subsets", None, "OSEM subsets (default: protocol)", lo=1, hi=1000),
        Param("post_filter_fwhm_mm", None, "Gaussian post-filter FWHM in mm (default: protocol, 0)", lo=0.0),
        Param("pixel_size_mm", 2.08, "pixel size in mm (Biograph mMR: 2.08)", **_POS),
        Param("views", None, "projection angles over 180 degrees (default max(H, W))", lo=1),
        Param("mu_map", None, "attenuation map (B, C, H, W) in 1/mm; default water inside the body outline"),
        Param("attenuation", True, "model attenuation", choices=(True, False)),
        Param("background_fraction", 0.0, "uniform randoms+scatter background, fraction of the mean bin", lo=0.0),
        Param("recon", "osem", "reconstruction", choices=("osem", "fbp")),
        Param("noise", True, "False reconstructs the noiseless sinogram", choices=(True, False)),
    ),
)

SCINTI_RAPID = TaskSpec(
    name="scinti-rapid",
    description="rapid planar bone scan: binomial thinning of counts by 1/speedup (+ SPD-VFM noise and motion blur); "
                "small negatives of real NM files are clipped with a warning. Training pairs with independent noise: "
                "python -m medir.data.bonescan (phantom) or scintigraphy.split_counts (real counts)",
    modality="NM",
    channels=None,
    fn=simulate_scinti_rapid,
    params=(
        Param("speedup", 2.0, "scan speed-up factor s (events kept with p = 1/s)", lo=1.0, hint="e.g. 2 (RBS: 40 vs 20 cm/min)"),
        Param("mode", "thin", "thin: input are measured counts; resample: input is an expected image",
              choices=("thin", "resample")),
        Param("paper_extras", False, "add the paper's Gaussian (var 0.01), then speckle (var 0.01), each clipped to [0, 1] of the max, "
              "then OpenCV motion blur (degree 10, 5 deg)",
              choices=(True, False)),
        Param("gaussian_var", None, "Gaussian noise variance on the max-normalised image", lo=0.0),
        Param("speckle_var", None, "speckle noise variance on the max-normalised image", lo=0.0),
        Param("motion_length", None, "motion blur degree: the OpenCV kernel's size and line length in pixels (rounded)",
              lo=0.0),
        Param("motion_angle_deg", PAPER_MOTION_ANGLE, "degrees the OpenCV kernel's diagonal (45 deg line) is turned "
              "counter-clockwise on screen"),
        Param("rescale", False, "multiply by speedup so intensities match the standard scan", choices=(True, False)),
    ),
)

MRI_SR = TaskSpec(
    name="mri-sr",
    description="MRI super-resolution input: bicubic or k-space truncation by 2x/4x, optional Rician noise",
    modality="MR",
    channels=None,
    fn=simulate_mri_sr,
    params=(
        Param("scale", 4, "downsampling factor", choices=SCALES),
        Param("method", "bicubic", "bicubic (image domain) or kspace (central spectrum crop)", choices=("bicubic", "kspace")),
        Param("rician_std", 0.0, "Rician noise std as a fraction of the image maximum", lo=0.0, hi=1.0),
        Param("upsample", False, "return the image brought back to the input size", choices=(True, False)),
        Param("protocol", None, "ixi-4x: DiffCode's IXI protocol (bicubic x4)", choices=(None, *MRI_PROTOCOLS)),
    ),
)

PATH_SR = TaskSpec(
    name="path-sr",
    description="pathology super-resolution input: RGB 0..255 bicubic 4x down and back up (RAT protocol)",
    modality="SM",
    channels=3,
    fn=simulate_path_sr,
    params=(
        Param("scale", 4, "downsampling factor", choices=SCALES),
        Param("upsample", True, "bring the low-resolution image back to the input size (RAT)", choices=(True, False)),
        Param("quantize", True, "round to 8-bit values", choices=(True, False)),
    ),
)

ENDO_SMOKE = TaskSpec(
    name="endo-smoke",
    description="endoscopic surgical smoke: Gaussian-blurred random noise blended with the image (SPD-VFM)",
    modality="OT",
    channels=None,
    fn=simulate_endo_smoke,
    params=(
        Param("density", 0.6, "opacity of the thickest smoke", lo=0.0, hi=1.0),
        Param("sigma_px", None, "blur of the noise in pixels (default min(H, W) / 8)", **_POS),
        Param("octaves", 3, "number of noise scales", lo=1, hi=8),
        Param("smoke_level", 230.0, "smoke colour on the 0..255 scale", lo=0.0, hi=255.0),
    ),
)

TASKS: dict[str, TaskSpec] = {
    spec.name: spec for spec in (CT_LOWDOSE, PET_LOWCOUNT, SCINTI_RAPID, MRI_SR, PATH_SR, ENDO_SMOKE)
}

"""``medir benchmark``: a very small run writes a consistent report; bad arguments fail in one line, exit 2."""

import json
import math
from pathlib import Path

import numpy as np
import pytest

from medir.cli import main

SIZE = 48
TINY = ["--quick", "--steps", "2", "--images", "1", "--train-images", "1", "--size", str(SIZE)]


def _one_line(capsys) -> str:
    err = [line for line in capsys.readouterr().err.strip().splitlines() if "error" in line or "Traceback" in line]
    assert len(err) == 1 and "Traceback" not in err[0], err
    return err[0]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """The CT suite with the input, the tuned Gaussian and the supervised NAFNet (2 training steps)."""
    out = tmp_path_factory.mktemp("bench") / "report"
    assert main(["benchmark", "ct", *TINY, "--methods", "gaussian,supervised", "-o", str(out)]) == 0
    return out


def test_report_files_and_figures_exist(tiny_run):
    md = (tiny_run / "report.md").read_text()
    html = (tiny_run / "report.html").read_text()
    figures = sorted((tiny_run / "figures").glob("*.png"))
    assert len(figures) == 2  # one case with lesions, one without
    for fig in figures:
        assert f"(figures/{fig.name})" in md
        assert fig.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert html.count("data:image/png;base64,") == 2  # self-contained
    assert "smoke test" in md and "not the methods' quality" in md
    for label in ("degraded input", "Gaussian (sigma tuned per image)", "supervised NAFNet"):
        assert label in md and label in html
    assert not any(p.name.startswith(".") for p in tiny_run.parent.iterdir())  # no temporary left behind


def test_numbers_are_finite_and_the_input_row_is_the_input(tiny_run):
    from medir.benchmark.suites import SUITES, test_set
    from medir.metrics import nmse, psnr, rmse, ssim
    from medir.metrics.hallucination import false_hot_spots

    data = json.loads((tiny_run / "results.json").read_text())["suites"]["ct"]
    contenders = data["contenders"]
    assert list(contenders) == ["input", "gaussian", "supervised"]
    for c in contenders.values():
        assert len(c["rows"]) == 2
        for row in c["rows"]:
            for key in ("psnr", "ssim", "nmse", "rmse", "seconds"):
                assert math.isfinite(row[key]), (c["label"], key, row[key])
    cases = test_set("ct", per_kind=1, size=SIZE, seed=1)  # what the run scored (seed 0 + 1)
    assert [case.has_lesions for case in cases] == [False, True]
    window = SUITES["ct"].window
    for case, row in zip(cases, contenders["input"]["rows"]):
        assert row["case"] == case.name
        assert row["psnr"] == pytest.approx(psnr(case.lq, case.hq, data_range=400.0, window=window), rel=1e-6)
        assert row["ssim"] == pytest.approx(ssim(case.lq, case.hq, data_range=400.0, window=window), rel=1e-6)
        assert row["nmse"] == pytest.approx(nmse(case.lq, case.hq, window=window), rel=1e-6)
        assert row["rmse"] == pytest.approx(rmse(case.lq, case.hq, window=window), rel=1e-6)
    clean, lesion = contenders["input"]["rows"]
    lq, hq = (np.clip(a, *window) for a in (cases[0].lq, cases[0].hq))  # in the window, searched in soft tissue
    assert clean["hot_spots"] == false_hot_spots(lq, hq, lq, mask=np.isin(cases[0].regions, (2, 4)))
    assert "cr" in lesion and "hot_spots" not in lesion and "cr" not in clean
    # the table shows the same mean
    md = (tiny_run / "report.md").read_text()
    mean = np.mean([r["psnr"] for r in contenders["input"]["rows"]])
    input_line = next(line for line in md.splitlines() if line.startswith("| degraded input"))
    assert f"{mean:.2f} ±" in input_line


def test_the_tuned_baseline_is_tuned_against_the_reference(tiny_run):
    """The oracle keeps the best of its grid, so it is never worse than the grid's other values."""
    from medir.baselines import Gaussian
    from medir.benchmark.contenders import GRIDS, _apply
    from medir.benchmark.suites import SUITES, test_set
    from medir.metrics import psnr

    data = json.loads((tiny_run / "results.json").read_text())["suites"]["ct"]["contenders"]["gaussian"]
    case = test_set("ct", per_kind=1, size=SIZE, seed=1)[0]
    best = max(psnr(_apply(Gaussian(sigma_px=v), case.lq), case.hq, data_range=400.0, window=SUITES["ct"].window)
               for v in GRIDS["gaussian"])
    assert data["rows"][0]["psnr"] == pytest.approx(best, rel=1e-6)


def test_non_empty_output_is_refused_then_replaced_with_force(tmp_path, capsys):
    out = tmp_path / "report"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    args = ["benchmark", "ct", *TINY, "--methods", "gaussian", "-o", str(out)]
    assert main(args) == 2
    assert "not empty" in _one_line(capsys) and (out / "keep.txt").read_text() == "mine"
    assert main([*args, "--force"]) == 0
    assert (out / "report.md").is_file() and not (out / "keep.txt").exists()


@pytest.mark.parametrize("extra, words", [
    (["mri"], "unknown suite"),
    (["--feature-net", "x.pt"], "--feature-net"),
    (["--methods", "nonsense"], "nonsense"),
    (["--steps", "1"], "--steps 1"),
    (["--size", "40"], "--size 40"),
])
def test_bad_arguments_fail_in_one_line(extra, words, tmp_path, capsys):
    suite = [] if extra[0] == "mri" else ["ct"]
    assert main(["benchmark", *suite, *extra, "-o", str(tmp_path / "out")]) == 2
    assert words in _one_line(capsys)
    assert not (tmp_path / "out").exists()


def test_perceptual_columns_call_the_interface():
    from medir.benchmark.perceptual import perceptual_scores

    rng = np.random.default_rng(0)
    refs = {f"c{k}": rng.normal(0, 50, (32, 32)).astype(np.float32) for k in range(3)}
    outputs = {"input": {k: v + rng.normal(0, 20, v.shape).astype(np.float32) for k, v in refs.items()},
               "same": refs}
    scores, label = perceptual_scores(outputs, refs, window=(-160.0, 240.0))
    assert label and set(scores) == {"input", "same"}
    assert all(math.isfinite(s["fid"]) and math.isfinite(s["lpips"][0]) for s in scores.values())
    assert scores["same"]["lpips"][0] <= scores["input"]["lpips"][0] + 1e-6
    assert scores["same"]["fid"] < scores["input"]["fid"]


def test_shipped_models_join_their_suite_and_guided_ones_get_the_mr():
    """Shipped PET models are found by task; the MR-guided one runs only on cases with an MR, and is fed it."""
    from medir.benchmark.contenders import shipped_contenders
    from medir.benchmark.suites import SUITES, Case

    suite = SUITES["pet"]
    with_mr = {c.key for c in shipped_contenders(suite, mfdiff_steps=2, has_aux=True)}
    without = {c.key for c in shipped_contenders(suite, mfdiff_steps=2, has_aux=False)}
    assert {"shipped:pet-lowcount-nafnet", "shipped:pet-mr-nafnet"} <= with_mr
    assert "shipped:pet-lowcount-nafnet" in without and "shipped:pet-mr-nafnet" not in without
    guided = next(c for c in shipped_contenders(suite, mfdiff_steps=2, has_aux=True) if c.key == "shipped:pet-mr-nafnet")
    rng = np.random.default_rng(0)
    pet = rng.gamma(2.0, 1.0, (64, 64)).astype(np.float32)
    mr = rng.normal(100, 10, (64, 64)).astype(np.float32)
    regions, lesion = np.zeros(pet.shape, np.int64), np.zeros(pet.shape, bool)
    y = guided.restore(Case("x", pet, pet, regions, lesion, aux=mr))
    assert y.shape == pet.shape and np.isfinite(y).all()
    flat = guided.restore(Case("x", pet, pet, regions, lesion, aux=np.full_like(mr, 100.0)))
    assert not np.allclose(flat, y)  # the MR is really an input


def test_pet_cases_are_simulated_whole_at_2_mm_whatever_their_size():
    """A small PET case is a window of the full-size one (same slice, same noise draw), not a coarser image; lesion
    cases keep their lesions inside the window."""
    from medir.benchmark.suites import make_cases

    small = make_cases("pet", "test", count=1, size=32, seed=3)[0]
    full = make_cases("pet", "test", count=1, size=128, seed=3)[0]
    assert small.lq.shape == (32, 32) and full.lq.shape == (128, 128)
    np.testing.assert_array_equal(small.lq, full.lq[48:80, 48:80])
    np.testing.assert_array_equal(small.hq, full.hq[48:80, 48:80])
    np.testing.assert_array_equal(small.aux, full.aux[48:80, 48:80])
    with_lesions = make_cases("pet", "test", count=1, size=32, seed=3, lesions=True)[0]
    assert with_lesions.has_lesions and (with_lesions.regions[with_lesions.lesion] == 4).all()

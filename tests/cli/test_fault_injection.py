"""A batch restore killed at random points (SIGKILL or SIGINT), then rerun, ends as if never interrupted."""

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from medir.cli import main
from medir.io import read_image

from .conftest import leftovers, visible_files, write_series, write_slice

ROOT = Path(__file__).resolve().parents[2]


def _inputs(folder: Path, base) -> Path:
    rng = np.random.default_rng(0)
    for k in range(16):
        sub = folder / ("a" if k % 2 else "b")
        sub.mkdir(parents=True, exist_ok=True)
        np.save(sub / f"s{k // 2}.npy", rng.normal(40, 30, size=(96, 96)).astype(np.float32))
    write_series(base, folder / "series", 3)
    write_slice(base, folder / "b" / "single.dcm", series_uid="1.2.826.0.1.3680043.8.498.1")
    return folder


def _same_outputs(out: Path, reference: Path) -> None:
    """Same files; identical bytes, except DICOM whose new UIDs and content time differ: identical pixels."""
    got, want = visible_files(out), visible_files(reference)
    assert got.keys() == want.keys()
    for rel in want:
        if rel.endswith(".dcm"):
            np.testing.assert_array_equal(read_image(out / rel).array, read_image(reference / rel).array)
        else:
            assert got[rel] == want[rel], rel


@pytest.mark.slow
def test_batch_restore_killed_at_random_points_then_rerun(tmp_path, ct_base, tiny_ct_model):
    inputs = _inputs(tmp_path / "in", ct_base)
    argv = ["restore", str(inputs), "--model", str(tiny_ct_model), "--modality", "CT", "--tile", "64",
            "--overlap", "16"]
    reference = tmp_path / "reference"
    assert main([*argv, "-o", str(reference)]) == 0
    out = tmp_path / "out"
    command = [sys.executable, "-m", "medir.cli", *argv, "-o", str(out)]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    rng = random.Random(11)
    total, landed = len(visible_files(reference)), []
    for attempt in range(5):
        proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        target = min(total - 1, _count(out) + rng.randint(1, 3))
        while proc.poll() is None and _count(out) < target:  # kill after a random number of outputs ...
            time.sleep(0.01)
        time.sleep(rng.uniform(0.0, 0.3))  # ... and a random part of the next one
        proc.send_signal(signal.SIGKILL if attempt % 2 == 0 else signal.SIGINT)
        proc.wait(timeout=60)
        landed.append(_count(out))
    print("outputs present after each kill:", landed, "of", total)
    final = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert final.returncode == 0, final.stderr
    assert "failed" not in final.stderr and " 0 failed" in final.stdout
    _same_outputs(out, reference)
    assert not leftovers(out) and not leftovers(tmp_path / "in")
    assert any(0 < n < total for n in landed), landed  # the kills really landed in the middle of the batch


def _count(out: Path) -> int:
    """Finished output files (hidden records and temporaries are not counted)."""
    if not out.exists():
        return 0
    files = [p.relative_to(out).parts for p in out.rglob("*") if p.is_file()]
    return sum(1 for parts in files if not any(q.startswith(".") for q in parts))

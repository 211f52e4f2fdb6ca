"""docs/make_figures.py rebuilds the README's picture from the shipped model (slow: two CT noise insertions and two
512 x 512 restorations, about 15 s of CPU)."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_readme_shows_the_committed_figure():
    assert "docs/img/ct_restored.png" in (ROOT / "README.md").read_text()
    size = (ROOT / "docs" / "img" / "ct_restored.png").stat().st_size
    assert size < 300 * 1024


@pytest.mark.slow
def test_make_figures_writes_a_small_png_where_the_model_beats_its_input(tmp_path):
    out = tmp_path / "fig.png"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, str(ROOT / "docs" / "make_figures.py"), "--out", str(out)], env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert 0 < out.stat().st_size < 300 * 1024
    rows = re.findall(r"input ([\d.]+) dB, restored ([\d.]+) dB", done.stdout)
    assert len(rows) == 2 and all(float(r) > float(i) for i, r in rows)
    again = subprocess.run([sys.executable, str(ROOT / "docs" / "make_figures.py"), "--out", str(out)], env=env,
                           capture_output=True, text=True, timeout=600)
    assert again.returncode != 0  # an existing figure is not overwritten without --force

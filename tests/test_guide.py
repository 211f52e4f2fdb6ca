"""docs/guide.md: every ```bash block runs, in order, from a scratch folder that sees the repository's medir/ and
configs/ (slow: it generates data and trains for a few steps; python -m pytest -q -m slow tests/test_guide.py)."""

import os
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
GUIDE = ROOT / "docs" / "guide.md"


def bash_blocks(text: str) -> list[str]:
    return re.findall(r"^```bash\n(.*?)^```$", text, flags=re.S | re.M)


def test_guide_has_runnable_blocks_for_every_command():
    script = "\n".join(bash_blocks(GUIDE.read_text()))
    for command in ("medir restore", "medir simulate", "medir train", "medir evaluate", "medir models"):
        assert command in script, f"docs/guide.md shows no runnable `{command}`"


@pytest.mark.slow
def test_guide_commands_run(tmp_path):
    for name in ("medir", "configs"):
        (tmp_path / name).symlink_to(ROOT / name)
    script = "set -euo pipefail\n" + "\n".join(bash_blocks(GUIDE.read_text()))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    assert (tmp_path / "runs" / "my_ct" / "model" / "model.safetensors").is_file()
    assert "0 done, 2 skipped, 0 failed" in done.stdout + done.stderr

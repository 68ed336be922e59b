"""``pip install .`` (the Colab path) ships what the package needs at run time."""

import subprocess
import sys
import zipfile
from pathlib import Path

from dae_tutor import data

REPO = Path(__file__).resolve().parents[1]


def test_the_wheel_ships_the_bundled_mnist_subset(tmp_path):
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            str(REPO),
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            tmp_path,
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("dae_tutor-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for path in sorted(data.BUNDLED_DIR.glob("*.gz")):  # the offline fallback of data.mnist()
        assert f"dae_tutor/bundled/{path.name}" in names, f"{path.name} is not in {wheel.name}"
    assert "dae_tutor/bundled/README.md" in names  # its provenance and licence travel with it

"""rnnbench installed where nothing can be written: no cache beside the package, no home.

A system-wide install used by another account, simulated with immutable folders
(`chattr +i`, which holds even for root, as CI runs): `import rnnbench`, a
forward and backward, and the command line work, compiling in memory with one
warning that says how to get the disk cache back.
"""

import os
import pathlib
import shutil
import subprocess
import sys

import pytest

import rnnbench

PROGRAM = """
import numpy as np
import rnnbench
from rnnbench.cli import main

model = rnnbench.RNN("lstm", 2, 3)
y, _ = model.forward(np.ones((4, 2, 2), np.float32))
grads = model.backward(np.ones_like(y))
print(rnnbench.__file__, y.shape, sorted(grads)[0])
main(["--help"])
"""


def _immutable(folders, on: bool) -> bool:
    result = subprocess.run(
        ["chattr", "+i" if on else "-i", *map(str, folders)], capture_output=True, text=True
    )
    return result.returncode == 0


def test_no_writable_cache_location(tmp_path):
    site, home = tmp_path / "site", tmp_path / "home"
    package = site / "rnnbench"
    shutil.copytree(
        pathlib.Path(rnnbench.__file__).parent, package,
        ignore=shutil.ignore_patterns("__pycache__"),
    )  # fmt: skip
    home.mkdir()
    folders = [home, site, *(p for p in package.rglob("*") if p.is_dir()), package]
    if shutil.which("chattr") is None or not _immutable(folders, True):
        pytest.skip("needs chattr +i (root on ext4 or xfs) to make folders unwritable")
    try:
        assert not os.access(package, os.W_OK) or _cannot_write(package)
        env = {
            key: value
            for key, value in os.environ.items()
            if key not in ("NUMBA_CACHE_DIR", "XDG_CACHE_HOME", "PYTHONPATH")
        }
        env.update(PYTHONPATH=str(site), HOME=str(home), PYTHONDONTWRITEBYTECODE="1")
        result = subprocess.run(
            [sys.executable, "-c", PROGRAM], cwd=home, env=env, capture_output=True, text=True,
            timeout=600,
        )  # fmt: skip
    finally:
        _immutable(folders, False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"{package / '__init__.py'} (4, 2, 3) bias_hh_l0")
    assert "usage: rnnbench" in result.stdout
    assert result.stderr.count("no writable place for Numba's disk cache") == 1, result.stderr
    assert not list(package.rglob("__pycache__")) and not list(home.iterdir())


def _cannot_write(folder: pathlib.Path) -> bool:
    try:
        (folder / "probe").touch()
    except OSError:
        return True
    (folder / "probe").unlink()
    return False

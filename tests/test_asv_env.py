"""asv_env.py, the `venv` environment type of `make bench`: results filed under the name of
asv's own virtualenv of that Python version, whatever the path of the Python."""

import sys
from pathlib import Path

import pytest

pytest.importorskip("asv")
from asv.config import Config

ROOT = Path(__file__).parent.parent
sys.path.insert(0, str(ROOT))
from asv_env import NamedLikeVirtualenv  # noqa: E402


def test_the_name_is_that_of_asvs_virtualenv_wherever_python_lives(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)  # asv reads pyproject.toml from the working directory
    conf = Config.load(str(ROOT / "asv.conf.json"))
    elsewhere = tmp_path / "another" / "clone" / "python"
    elsewhere.parent.mkdir(parents=True)
    elsewhere.symlink_to(sys.executable)
    version = f"{sys.version_info[0]}.{sys.version_info[1]}"
    names = set()
    for python in (sys.executable, str(elsewhere)):
        env = NamedLikeVirtualenv(conf, python, {}, {})
        assert env.python == version
        names.add(env.name)
    assert names == {f"{conf.environment_type}-py{version}"}
    assert conf.plugins == [".asv_env"]  # asv loads it for every command

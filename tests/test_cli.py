"""The `rnnbench` command's arguments: bad ones exit with status 2 and a usage line
before the subcommand runs."""

import pytest

from rnnbench import compare
from rnnbench.cli import main


@pytest.mark.parametrize(
    "argv",
    [
        ["--threads", "0"],
        ["--threads", "-1"],
        ["--repeats", "0"],
        ["--repeats", "-3"],
        ["--repeats", "many"],
        ["--shape", "0,1,1"],
        ["--shape", "10,-1,8"],
        ["--shape", "10,1"],
        ["--shape", "10,1,8,2"],
    ],
)
def test_compare_rejects_counts_below_one_before_running(argv, monkeypatch, capsys):
    def run(args):
        raise AssertionError(f"compare ran with {args}")

    monkeypatch.setattr(compare, "run", run)
    with pytest.raises(SystemExit) as exit_:
        main(["compare", *argv])
    assert exit_.value.code == 2
    stderr = capsys.readouterr().err
    assert stderr.startswith("usage: rnnbench compare")
    assert f"argument {argv[0]}: must be" in stderr and argv[1] in stderr


def test_compare_accepts_positive_counts(monkeypatch):
    seen = []
    monkeypatch.setattr(compare, "run", lambda args: seen.append(args) or 0)
    argv = ["--threads", "1", "--repeats", "2", "--shape", "10,1,8", "--shape", "5,2,4"]
    assert main(["compare", *argv]) == 0
    assert (seen[0].threads, seen[0].repeats) == (1, 2)
    assert seen[0].shape == [(10, 1, 8), (5, 2, 4)]

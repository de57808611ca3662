"""The `rnnbench` command: a thin layer of subcommands over the package.

Each subcommand lives in its own module, which provides `add_arguments(parser)`
and `run(args) -> int`; it is imported only when that subcommand runs.
"""

import argparse
import importlib
import sys

# name -> (module, one-line help)
COMMANDS = {
    "report": (
        "rnnbench.report.cli",
        "turn the asv results under results/ into a comparison report",
    ),
    "ptx": ("rnnbench.cuda.ptx", "compile every CUDA kernel to PTX with NVVM, no GPU needed"),
    "compare": ("rnnbench.compare", "time rnnbench against PyTorch on the CPU, side by side"),
    "train": ("rnnbench.training", "train an architecture on a long-range task, showing the loss"),
}


def show_progress(text: str = "") -> None:
    """`text` in place of stderr's current line, only when stderr is a terminal (what a
    subcommand prints on stdout stays clean); "" clears the line."""
    if sys.stderr.isatty():
        sys.stderr.write(f"\r\033[K{text}")
        sys.stderr.flush()


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="rnnbench", description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_text) in COMMANDS.items():
        subparsers.add_parser(name, help=help_text, description=help_text)
    known, _ = parser.parse_known_args(argv[:1])
    if known.command is None:
        parser.print_help()
        return 0 if not argv else 2
    module = importlib.import_module(COMMANDS[known.command][0])
    sub = argparse.ArgumentParser(prog=f"rnnbench {known.command}", description=module.__doc__)
    module.add_arguments(sub)
    return module.run(sub.parse_args(argv[1:]))


if __name__ == "__main__":
    sys.exit(main())

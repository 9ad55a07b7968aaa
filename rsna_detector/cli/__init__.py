"""The ``rsna-detector`` command line.

Each subcommand parses its arguments and calls one library function; the
library does the work. Errors from bad input (``RsnaDetectorError``) and from the
file system (``OSError``) are printed as one line naming the file or field, and
the command exits with status 2.

One module per command group registers its parsers: :mod:`.detector` (demo,
train, evaluate, predict, submit), :mod:`.export` (export), :mod:`.data` (convert, synth), :mod:`.eda`
(eda) and :mod:`.baselines` (classifier-/retinanet-train and -evaluate).
Building the parser imports no TensorFlow.
"""
from __future__ import annotations

import argparse
import sys

from ..errors import RsnaDetectorError
from . import baselines, data, detector, eda, export
from .usage import CommandLineError

__all__ = ["main", "build_parser", "CommandLineError"]

_COMMAND_GROUPS = (detector, export, data, eda, baselines)  # in the order `rsna-detector --help` lists them


def build_parser():
    """The argparse parser of ``rsna-detector`` with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="rsna-detector",
        description="Mask R-CNN pneumonia-opacity detection on the RSNA challenge data.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for group in _COMMAND_GROUPS:
        group.register(sub)
    _add_verbose(parser, sub)
    return parser


_VERBOSE_HELP = ("show TensorFlow's C++/absl log output and this library's INFO messages (hidden by default; "
                 "a TF_CPP_MIN_LOG_LEVEL you set is always respected)")


def _add_verbose(parser, sub):
    """``--verbose`` before or after the subcommand (``rsna-detector --verbose demo`` or ``... demo --verbose``)."""
    parser.add_argument("--verbose", action="store_true", help=_VERBOSE_HELP)
    for command in sub.choices.values():
        try:  # SUPPRESS: not given after the subcommand, the top-level value stays
            command.add_argument("--verbose", action="store_true", default=argparse.SUPPRESS, help=_VERBOSE_HELP)
        except argparse.ArgumentError:
            pass  # the subcommand has a --verbose of its own


def main(argv=None):
    """Entry point of the ``rsna-detector`` console script; returns the exit code."""
    args = build_parser().parse_args(argv)
    from ..console import configure_console  # before anything imports TensorFlow

    configure_console(verbose=args.verbose)
    try:
        return args.func(args)
    except (RsnaDetectorError, OSError) as error:  # bad input (named), a missing file, a full disk
        print(f"rsna-detector {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"rsna-detector {args.command}: interrupted", file=sys.stderr)
        return 130

"""The ``eda`` command: the report's exploratory data analysis (:func:`rsna_detector.eda.run_eda`)."""
from __future__ import annotations

from pathlib import Path

from .usage import CommandLineError

__all__ = ["register"]


def register(subparsers):
    """Register ``eda --data DIR --out DIR [--no-images] [--sample-grid N] [--quiet]`` on an argparse subparsers.

    Parameters
    ----------
    subparsers : argparse._SubParsersAction
        ``parser.add_subparsers(...)``'s result.

    Returns
    -------
    argparse.ArgumentParser
        The ``eda`` parser (its default ``func`` runs the analysis).
    """
    parser = subparsers.add_parser(
        "eda", help="exploratory data analysis of a data directory: figures, summary.json, report.md",
        description="Compute the interim report's EDA from the data (class balance, box distributions, age, "
                    "centroids, aspect ratio against area, sample images, DICOM header) and check the report's "
                    "numbers against it. A labels-only directory gives every label statistic.")
    parser.add_argument("--data", required=True, help="RSNA data directory (Kaggle layout, labels/ + images/, "
                                                      "or a folder with the label CSVs only)")
    parser.add_argument("--out", required=True, help="output folder (figures/, summary.json, report.md)")
    parser.add_argument("--no-images", action="store_true", help="do not read DICOM files (label statistics only)")
    parser.add_argument("--sample-grid", type=int, default=9, metavar="N", help="images in the sample grid (0: none)")
    parser.add_argument("--quiet", action="store_true", help="no progress output")
    parser.set_defaults(func=_cmd_eda)
    return parser


def _cmd_eda(args) -> int:
    """Run ``run_eda`` from parsed ``eda`` arguments; print where the report went; return the exit status (0)."""
    from ..eda import run_eda  # pandas and matplotlib, when the command runs

    if args.sample_grid < 0:
        raise CommandLineError(f"--sample-grid: expected a number >= 0, got {args.sample_grid}")
    summary = run_eda(args.data, args.out, with_images=not args.no_images, sample_grid=args.sample_grid,
                      progress=not args.quiet)
    out = Path(args.out)
    disagreements = sum(c["agrees"] is False for c in summary["report_statements"])
    print(f"wrote {out / 'report.md'} ({len(summary['figures'])} figures in {out / 'figures'}, "
          f"summary {out / 'summary.json'}; {disagreements} of the report's statements disagree with the data; "
          f"{summary['runtime_s']:.1f} s)")
    return 0

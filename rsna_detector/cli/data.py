"""The data commands: ``convert`` (DICOMs to PNG/JPG) and ``synth`` (a synthetic data set in the Kaggle layout)."""
from __future__ import annotations

__all__ = ["register"]


def _cmd_convert(args):
    from ..data.convert import convert_dicoms

    report = convert_dicoms(
        args.src, args.dst, fmt=args.format, size=args.size, workers=args.workers,
        overwrite=args.overwrite, progress=not args.quiet,
    )
    print(report)
    return 1 if report.failed else 0


def _cmd_synth(args):
    from ..data.synthetic import make_synthetic_dataset

    summary = make_synthetic_dataset(
        args.out, n_train=args.n_train, n_test=args.n_test, seed=args.seed,
        image_size=args.image_size, workers=args.workers, progress=not args.quiet, overwrite=args.overwrite,
        preset=args.preset,
    )
    print(summary)
    return 0


def _add_convert(sub):
    p = sub.add_parser("convert", help="convert a folder of DICOMs to PNG or JPG (the report's dicom_to_jpg)",
                       description="Convert every .dcm file of SRC to an 8-bit image in DST, in parallel. "
                                   "Bad files are reported by name and skipped; existing outputs are kept "
                                   "unless --overwrite.")
    p.add_argument("src", help="folder of .dcm files")
    p.add_argument("dst", help="output folder (created if needed)")
    p.add_argument("--format", choices=["png", "jpg"], default="png", help="output format (default: png)")
    p.add_argument("--size", type=int, default=None, help="resize to SIZE x SIZE (default: keep the original size)")
    p.add_argument("--workers", type=int, default=None, help="parallel processes (default: all cores)")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_convert)


def _add_synth(sub):
    p = sub.add_parser("synth", help="generate a synthetic data set in the exact Kaggle RSNA layout",
                       description="Write chest-like DICOMs (JPEG Baseline, 8-bit MONOCHROME2) with "
                                   "opacities and the three RSNA CSV files into OUT: an empty folder or a "
                                   "synthetic set written before, unless --overwrite.")
    p.add_argument("out", help="output data directory")
    p.add_argument("--n-train", type=int, default=1000, help="training patients (default: 1000)")
    p.add_argument("--n-test", type=int, default=100, help="test patients (default: 100)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("--image-size", type=int, default=1024, help="image side in pixels (default: 1024)")
    p.add_argument("--preset", choices=["easy", "realistic"], default="easy",
                   help="easy (default, the demo's): bright opacities inside the lungs; realistic: boxes drawn "
                        "from the real label distribution, fainter patchy opacities, varying exposure and noise")
    p.add_argument("--workers", type=int, default=None, help="parallel processes (default: all cores)")
    p.add_argument("--overwrite", action="store_true",
                   help="write into a folder holding other files (e.g. a real data set), replacing them")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_synth)


def register(subparsers):
    """Register ``convert`` and ``synth`` on an argparse subparsers object."""
    _add_convert(subparsers)
    _add_synth(subparsers)

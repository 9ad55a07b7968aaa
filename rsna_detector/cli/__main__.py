"""``python -m rsna_detector.cli``: the ``rsna-detector`` command."""
import sys

from . import main

if __name__ == "__main__":  # not when a tool imports every module of the package
    sys.exit(main())

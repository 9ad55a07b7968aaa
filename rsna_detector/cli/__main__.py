"""``python -m rsna_detector.cli``: the ``rsna-detector`` command."""
import sys

from . import main

sys.exit(main())

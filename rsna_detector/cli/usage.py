"""The error of a command line that cannot run as given (a missing or contradictory option)."""
from __future__ import annotations

from ..errors import RsnaDetectorError

__all__ = ["CommandLineError"]


class CommandLineError(RsnaDetectorError, ValueError):
    """Options that cannot go together, or a required one missing; the message names the options."""

"""Number formatting shared by the statements, the figures and the Markdown report."""
from __future__ import annotations

__all__ = ["format_number"]


def format_number(value):
    """``value`` for a reader: "n/a" for None, whole numbers with thousands separators, else 3
    significant digits below 10 and one decimal from 10 on."""
    if value is None:
        return "n/a"
    value = float(value)
    if value.is_integer() and abs(value) >= 1:
        return f"{int(value):,}"
    return f"{value:.3g}" if abs(value) < 10 else f"{value:,.1f}"

"""Number formatting shared by the statements, the figures and the Markdown report."""


def _format_number(value):
    if value is None:
        return "n/a"
    value = float(value)
    if value.is_integer() and abs(value) >= 1:
        return f"{int(value):,}"
    return f"{value:.3g}" if abs(value) < 10 else f"{value:,.1f}"

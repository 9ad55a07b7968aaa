"""Inspection tables: :func:`display_table` and :func:`display_weight_stats` (matterport's ``visualize`` API).

:func:`table_html` and :func:`weight_stats` give their content as values. In a
notebook the tables are shown as HTML (IPython), elsewhere printed as aligned
text. Reachable as ``rsna_detector.mrcnn.visualize.<name>`` too, as in matterport.
"""
from __future__ import annotations

import html
import re

import numpy as np

__all__ = ["display_table", "table_html", "Markup", "display_weight_stats", "weight_stats"]


def table_html(table):
    """The HTML ``<table>`` that :func:`display_table` shows (cells escaped, each padded to 40 characters).

    Parameters
    ----------
    table : iterable of rows, each an iterable of values
        Values are shown with ``str``; cell text is HTML-escaped unless it is a
        :class:`Markup` (the alerts of :func:`weight_stats`).

    Returns
    -------
    str
    """
    rows = []
    for row in table:
        cells = "".join(f"<td>{cell if isinstance(cell, Markup) else html.escape(str(cell)):40}</td>"
                        for cell in row)
        rows.append(f"<tr>{cells}</tr>")
    return "<table>" + "".join(rows) + "</table>"


class Markup(str):
    """A table cell that is already HTML (not escaped by :func:`table_html`)."""


def display_table(table):
    """Show a table: as HTML in a notebook (IPython), as aligned text otherwise. Returns None.

    See :func:`table_html` for ``table``.
    """
    table = [list(row) for row in table]
    try:
        from IPython import get_ipython
        from IPython.display import HTML, display
    except ImportError:
        get_ipython = None
    if get_ipython is not None and get_ipython() is not None:
        display(HTML(table_html(table)))
        return
    for row in table:
        print("  ".join(f"{_plain_text(cell):40}" for cell in row).rstrip())


def _plain_text(cell):
    if isinstance(cell, Markup):
        return re.sub(r"<[^>]+>", " ", cell).strip()
    return str(cell)


_DEAD_ALERT = Markup("<span style='color:red'>*** dead?</span>")
_OVERFLOW_ALERT = Markup("<span style='color:red'>*** Overflow?</span>")


def weight_stats(model):
    """The rows :func:`display_weight_stats` shows: name, shape, min, max and std of every weight.

    Parameters
    ----------
    model : MaskRCNN
        Its :meth:`~rsna_detector.mrcnn.model.MaskRCNN.get_trainable_layers` are scanned.

    Returns
    -------
    list of list
        A header ``["WEIGHT NAME", "SHAPE", "MIN", "MAX", "STD"]`` then one row per
        weight array. The name is the variable's path (``"res2a_branch2a/kernel"``)
        followed, as matterport, by an alert when all values are equal (``*** dead?``;
        not for the bias of a convolution) or a value exceeds 1000 in magnitude
        (``*** Overflow?``); a name with an alert is a :class:`Markup`.
    """
    table = [["WEIGHT NAME", "SHAPE", "MIN", "MAX", "STD"]]
    for layer in model.get_trainable_layers():
        # matterport tests the class name "Conv2D"; its subclasses here (RoiConv2D, the sparse-gradient
        # and BN-folding convolutions) and WindowDense are convolutions too
        convolution = any(cls.__name__ in ("Conv2D", "WindowDense") for cls in type(layer).__mro__)
        for index, (variable, values) in enumerate(zip(layer.weights, layer.get_weights(), strict=True)):
            name = getattr(variable, "path", None) or variable.name
            alerts = ""
            if values.min() == values.max() and not (convolution and index == 1):
                alerts += _DEAD_ALERT
            if np.abs(values.min()) > 1000 or np.abs(values.max()) > 1000:
                alerts += _OVERFLOW_ALERT
            cell = Markup(html.escape(name) + alerts) if alerts else name
            table.append([cell, str(values.shape), f"{values.min():+9.4f}", f"{values.max():+10.4f}",
                          f"{values.std():+9.4f}"])
    return table


def display_weight_stats(model):
    """Show :func:`weight_stats` of ``model`` with :func:`display_table` (matterport's view). Returns None."""
    display_table(weight_stats(model))

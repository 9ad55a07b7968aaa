"""Packages whose public names are imported on first use (PEP 562), so that importing them is cheap."""
from __future__ import annotations

import importlib

__all__ = ["lazy_exports"]


def lazy_exports(package, exports):
    """Module-level ``__getattr__`` and ``__dir__`` for a package that imports its names when first used.

    Parameters
    ----------
    package : str
        The package's ``__name__``.
    exports : dict str -> sequence of str
        Submodule, relative to ``package`` (``"models"``) -> the public names it defines.

    Returns
    -------
    (callable, callable)
        ``__getattr__(name)``: the name imported from its submodule and stored in the
        package (AttributeError, as Python's, for any other name); ``__dir__()``: the
        package's globals and every exported name.
    """
    if any(isinstance(names, str) for names in exports.values()):
        raise TypeError(f"{package}: each submodule's names must be a list, not one string")
    module = importlib.import_module(package)
    defined_in = {name: submodule for submodule, names in exports.items() for name in names}

    def __getattr__(name):
        submodule = defined_in.get(name)
        if submodule is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{submodule}"), name)
        setattr(module, name, value)
        return value

    def __dir__():
        return sorted(set(vars(module)) | set(defined_in))

    return __getattr__, __dir__

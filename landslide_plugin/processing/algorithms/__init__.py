"""One module per Processing algorithm.

Every module here that defines a subclass of ``LandslideAlgorithm`` contributes it to the
provider; a new algorithm is a new file, nothing else to register.
"""
from __future__ import annotations

import importlib
import inspect
import pkgutil

from ..base import LandslideAlgorithm


def algorithm_classes() -> list[type[LandslideAlgorithm]]:
    classes = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        for _, obj in inspect.getmembers(module, inspect.isclass):
            if (
                issubclass(obj, LandslideAlgorithm)
                and obj is not LandslideAlgorithm
                and obj.__module__ == module.__name__
                and not inspect.isabstract(obj)
            ):
                classes.append(obj)
    return classes

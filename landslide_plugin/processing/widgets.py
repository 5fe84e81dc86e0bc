"""Dialog widgets for the parameters QGIS's own widgets handle badly (loaded only by the Processing dialogs).

- Products (PRE/POST of 'Map landslides (pre/post)'): QGIS 3.22's multiple-layer widget resolves every value
  it is given to a map layer; product ZIPs and .SAFE folders are not layers, so a dialog pre-filled from the
  History or a pasted ``processing.run`` command lost them ("0 inputs selected", GDAL errors). Here the value
  is a list of paths kept as the user gave it, with a file chooser filtered on Sentinel-2 products.
- The primary method: a drop-down of the methods the run will make, following the cluster counts and the
  threshold check box as they change; the value stays the method's name ("gmm3"), so History, models and
  scripts keep working.

A parameter asks for these through its metadata (``{'widget_wrapper': {'class': ...}}``), which QGIS's
Processing dialogs read; qgis_process and ``processing.run`` never load this module. In the Graphical
Modeler the parameter keeps QGIS's own widget (it links model inputs, which these widgets do not).
"""
from __future__ import annotations

import re

from qgis.gui import QgsAbstractProcessingParameterWidgetWrapper, QgsFileWidget, QgsGui
from qgis.PyQt.QtWidgets import QComboBox

from .algorithms.map_landslides import normalise_method
from .compat import file_widget_multiple_files, processing_modes

#: What the file chooser of PRE/POST offers first (a .SAFE folder is chosen through its MTD_MSIL2A.xml).
PRODUCT_FILTER = ("Sentinel-2 L2A products (*.zip *.ZIP *.SAFE MTD_MSIL2A.xml);;"
                  "Reflectance stacks (*.tif *.tiff *.TIF *.TIFF);;All files (*)")

#: Processing dialog class name -> dialog type (as processing.gui.wrappers tells them apart).
DIALOGS = {"AlgorithmDialog": "standard", "BatchAlgorithmDialog": "batch", "ModelerParametersDialog": "modeler"}


def widget_metadata(wrapper_class: type) -> dict:
    """Parameter metadata that makes the Processing dialogs use ``wrapper_class`` (by its import path)."""
    return {"widget_wrapper": {"class": f"{wrapper_class.__module__}.{wrapper_class.__qualname__}"}}


def as_path_list(value) -> list[str]:
    """A products value as paths: a list stays a list; a string is one path or several quoted ("a" "b")."""
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value if v not in (None, "")]
    text = str(value).strip()
    if not text:
        return []
    return [p for p in QgsFileWidget.splitFilePaths(text) if p] if text.startswith('"') else [text]


class _Wrapper(QgsAbstractProcessingParameterWidgetWrapper):
    """Shared construction: the signature QGIS's Python widget factory calls; QGIS's widget in the Modeler."""

    def __new__(cls, param, dialog, row=0, col=0, **kwargs):
        if type(dialog).__name__ == "ModelerParametersDialog":
            wrapper = QgsGui.processingGuiRegistry().createModelerParameterWidget(
                dialog.model, dialog.childId, param, dialog.context)
            wrapper.setDialog(dialog)
            return wrapper
        return super().__new__(cls)

    def __init__(self, param, dialog, row=0, col=0, **kwargs):
        super().__init__(param, processing_modes()[DIALOGS.get(type(dialog).__name__, "standard")])
        self.dialog = dialog

    # The widget is reached through wrappedWidget(), never kept from createWidget(): QGIS takes the widget
    # returned there and sip then retires that Python reference ("wrapped C/C++ object has been deleted").


class ProductFilesWidgetWrapper(_Wrapper):
    """One or more product files or folders (or one stack) per line, with a product file chooser."""

    def createWidget(self):  # noqa: N802
        widget = QgsFileWidget()
        widget.setStorageMode(file_widget_multiple_files())
        widget.setFilter(PRODUCT_FILTER)
        widget.setDialogTitle(self.parameterDefinition().description())
        widget.setToolTip(self.parameterDefinition().toolTip())
        widget.fileChanged.connect(lambda _: self.widgetValueHasChanged.emit(self))
        return widget

    def setWidgetValue(self, value, context):  # noqa: N802
        paths = as_path_list(value)
        widget = self.wrappedWidget()
        if len(paths) == 1:
            widget.setFilePath(paths[0])
        else:
            widget.setFilePath(" ".join(f'"{p}"' for p in paths))

    def widgetValue(self):  # noqa: N802
        paths = as_path_list(self.wrappedWidget().filePath())
        return paths or None


def method_choices(threshold: bool, kmeans: str, gmm: str, either: bool = False) -> list[tuple[str, str]]:
    """(name, label) of each method a run with these settings makes, e.g. ("gmm3", "Gaussian mixture (GMM),
    3 clusters"); the names are those of the output files and of the PRIMARY value."""
    from ..core.method_plan import method_names

    labels = {"threshold": "dNDVI threshold", "kmeans": "K-means", "gmm": "Gaussian mixture (GMM)",
              "either": "Either clustering (where any clustering maps a landslide)"}
    choices = []
    for name in method_names(threshold, _counts(kmeans), _counts(gmm), either):
        match = re.fullmatch(r"([a-z]+?)(\d+)", name)
        choices.append((name, f"{labels[match.group(1)]}, {match.group(2)} clusters" if match else labels[name]))
    return choices


def _counts(text) -> list[int]:
    """The counts in what the user is typing, leniently ("2,3," or "2, x" give what is readable so far); the
    algorithm checks the value itself before the run (``map_landslides._counts``)."""
    counts = []
    for token in re.split(r"[,\s;]+", str(text or "")):
        if token.isdigit() and int(token) >= 2 and int(token) not in counts:
            counts.append(int(token))
    return counts


class MethodChoiceWidgetWrapper(_Wrapper):
    """A drop-down of the methods the run makes, following THRESHOLD_BASELINE, KMEANS_CLUSTERS, GMM_CLUSTERS and
    EITHER_CLUSTERING."""

    SOURCES = ("THRESHOLD_BASELINE", "KMEANS_CLUSTERS", "GMM_CLUSTERS", "EITHER_CLUSTERING")

    def __init__(self, param, dialog, row=0, col=0, **kwargs):
        super().__init__(param, dialog, row, col, **kwargs)
        self._sources = {}
        self._value = param.defaultValue()

    def createWidget(self):  # noqa: N802
        combo = QComboBox()
        combo.setToolTip(self.parameterDefinition().toolTip())
        combo.currentIndexChanged.connect(self._chosen)
        return combo

    def postInitialize(self, wrappers):  # noqa: N802
        for wrapper in wrappers:
            definition = wrapper.parameterDefinition()
            if definition is not None and definition.name() in self.SOURCES:
                self._sources[definition.name()] = wrapper
                wrapper.widgetValueHasChanged.connect(lambda _: self._fill())
        self._fill()

    def _methods(self) -> list[tuple[str, str]]:
        def value(name, default):
            wrapper = self._sources.get(name)
            return wrapper.parameterValue() if wrapper is not None else default

        definition = self.parameterDefinition()
        algorithm = definition.algorithm() if definition is not None else None
        defaults = {}
        if algorithm is not None:
            defaults = {name: algorithm.parameterDefinition(name).defaultValue() for name in self.SOURCES
                        if algorithm.parameterDefinition(name) is not None}
        return method_choices(bool(value("THRESHOLD_BASELINE", defaults.get("THRESHOLD_BASELINE", True))),
                              value("KMEANS_CLUSTERS", defaults.get("KMEANS_CLUSTERS", "")),
                              value("GMM_CLUSTERS", defaults.get("GMM_CLUSTERS", "")),
                              bool(value("EITHER_CLUSTERING", defaults.get("EITHER_CLUSTERING", False))))

    def _fill(self) -> None:
        combo = self.wrappedWidget()
        if combo is None:
            return
        wanted = self._value
        choices = self._methods()
        if wanted and wanted not in [name for name, _ in choices]:
            choices.append((wanted, f"{wanted} (not among the methods above: change the counts)"))
        combo.blockSignals(True)
        combo.clear()
        for name, label in choices:
            combo.addItem(f"{label}  [{name}]", name)
        index = combo.findData(wanted)
        combo.setCurrentIndex(index if index >= 0 else 0)
        combo.blockSignals(False)
        if index < 0 and combo.count():
            self._chosen(combo.currentIndex())

    def _chosen(self, index: int) -> None:
        if index >= 0:
            self._value = self.wrappedWidget().itemData(index)
            self.widgetValueHasChanged.emit(self)

    def setWidgetValue(self, value, context):  # noqa: N802
        self._value = normalise_method(value) if value not in (None, "") else None
        self._fill()

    def widgetValue(self):  # noqa: N802
        return self._value

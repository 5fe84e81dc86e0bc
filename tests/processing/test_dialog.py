"""The Processing dialog of 'Map landslides (pre/post)': what a user gives survives pre-filling (History re-runs,
pasted commands) and comes back as given; drop-downs for choices, spin boxes with sensible decimals, a product
file filter for the images."""
from __future__ import annotations

import ast

import pytest
from qgis.core import QgsApplication, QgsProcessingContext, QgsProcessingParameterNumber
from qgis.gui import QgsBrowserGuiModel, QgsDoubleSpinBox, QgsFileWidget
from qgis.PyQt.QtWidgets import QComboBox

from landslide_plugin.processing.compat import NUMBER_DOUBLE

ALG = "landslide:map_landslides"


@pytest.fixture()
def dialog_factory(provider, qgis_iface):
    """AlgorithmDialog as the Toolbox, History and processing.execAlgorithmDialog open it."""
    from processing.gui.AlgorithmDialog import AlgorithmDialog

    model = QgsBrowserGuiModel()
    qgis_iface.browserModel = lambda: model  # pytest-qgis's iface lacks it; the dialog asks for it
    dialogs = []

    def make(alg_id=ALG):
        alg = QgsApplication.processingRegistry().createAlgorithmById(alg_id)
        dialog = AlgorithmDialog(alg, False, None)
        dialogs.append(dialog)
        return dialog

    yield make
    from qgis.core import QgsProject

    for dialog in dialogs:
        # The panel listens to the project's layers; a later test adding layers must not reach a freed panel.
        panel = dialog.mainWidget()
        QgsProject.instance().layerWasAdded.disconnect(panel.layerRegistryChanged)
        QgsProject.instance().layersWillBeRemoved.disconnect(panel.layerRegistryChanged)
        dialog.close()


def user_parameters(pair, tmp_path, **extra):
    """What a user gives: product ZIPs for PRE/POST (a .SAFE folder is given as a path too), rasters, choices."""
    return {"PRE": [str(pair.pre)], "POST": [str(pair.post)], "DEM": str(pair.dem),
            "REFERENCE_RASTER": str(pair.truth), "THRESHOLD_BASELINE": True, "THRESHOLD": -0.25,
            "KMEANS_CLUSTERS": "", "GMM_CLUSTERS": "2,4", "PRIMARY": "gmm4", "ALIGN_BAND": "B8A",
            "MIN_AREA": 2000.0, "OUTPUT_FOLDER": str(tmp_path / "out"), **extra}


def round_trip(dialog, parameters):
    dialog.setParameters(parameters)
    return dialog.createProcessingParameters()


def test_a_prefilled_dialog_gives_back_what_the_user_gave(dialog_factory, example_pair, tmp_path):
    given = user_parameters(example_pair, tmp_path)
    back = round_trip(dialog_factory(), given)
    for name, value in given.items():
        if name == "OUTPUT_FOLDER":
            continue
        assert back[name] == value, (name, back[name], value)
    assert back["OUTPUT_FOLDER"] == given["OUTPUT_FOLDER"]


def test_history_and_pasted_commands_round_trip(dialog_factory, example_pair, tmp_path):
    """History stores alg.asPythonCommand(...); re-running it pre-fills the dialog with that dict: same values."""
    alg = QgsApplication.processingRegistry().createAlgorithmById(ALG)
    context = QgsProcessingContext()
    given = user_parameters(example_pair, tmp_path, PRE=[str(example_pair.pre), str(example_pair.pre)])
    command = alg.asPythonCommand(given, context)
    assert command.startswith(f'processing.run("{ALG}", ')
    stored = ast.literal_eval(command[len(f'processing.run("{ALG}", '):-1])
    assert stored["PRE"] == given["PRE"] and stored["POST"] == given["POST"]
    back = round_trip(dialog_factory(), stored)
    again = alg.asPythonCommand(back, context)
    assert ast.literal_eval(again[len(f'processing.run("{ALG}", '):-1]) == ast.literal_eval(
        alg.asPythonCommand(dict(stored, **{k: v for k, v in back.items() if k not in stored}), context)[
            len(f'processing.run("{ALG}", '):-1])
    ok, message = alg.checkParameterValues(back, context)
    assert ok, message


def test_paths_with_spaces_and_safe_folders_survive(dialog_factory, tmp_path):
    safe = tmp_path / "my products" / "S2B_MSIL2A_20230805T081329_N0509_R078_T37SCB_20230805T095207.SAFE"
    safe.mkdir(parents=True)
    other = tmp_path / "my products" / "tile two.zip"
    other.write_bytes(b"")
    dialog = dialog_factory()
    for value in ([str(safe)], [str(safe), str(other)], [str(safe / "MTD_MSIL2A.xml")]):
        back = round_trip(dialog, {"PRE": value, "POST": value})
        assert back["PRE"] == value and back["POST"] == value


def test_products_are_chosen_with_a_product_file_filter(dialog_factory):
    dialog = dialog_factory()
    for name in ("PRE", "POST"):
        widget = dialog.mainWidget().wrappers[name].wrappedWidget()
        assert isinstance(widget, QgsFileWidget)
        first = widget.filter().split(";;")[0]
        for pattern in ("*.zip", "*.SAFE", "MTD_MSIL2A.xml"):
            assert pattern in first, (pattern, first)


def test_the_primary_method_is_a_drop_down_of_the_methods_the_run_makes(dialog_factory):
    dialog = dialog_factory()
    wrappers = dialog.mainWidget().wrappers
    combo = wrappers["PRIMARY"].wrappedWidget()
    assert isinstance(combo, QComboBox)

    def items():
        return [combo.itemData(i) for i in range(combo.count())]

    assert items() == ["threshold", "kmeans5", "gmm5", "either"]
    assert wrappers["PRIMARY"].parameterValue() == "either"
    wrappers["GMM_CLUSTERS"].setParameterValue("3,5", QgsProcessingContext())
    assert items() == ["threshold", "kmeans5", "gmm3", "gmm5", "either"]
    wrappers["THRESHOLD_BASELINE"].setParameterValue(False, QgsProcessingContext())
    assert "threshold" not in items() and wrappers["PRIMARY"].parameterValue() == "either"
    wrappers["PRIMARY"].setParameterValue("gmm5", QgsProcessingContext())
    wrappers["EITHER_CLUSTERING"].setParameterValue(False, QgsProcessingContext())
    assert items() == ["kmeans5", "gmm3", "gmm5"] and wrappers["PRIMARY"].parameterValue() == "gmm5"
    # A value the counts do not make stays visible (and is refused before the run), never silently changed.
    wrappers["PRIMARY"].setParameterValue("GMM 7", QgsProcessingContext())
    assert wrappers["PRIMARY"].parameterValue() == "gmm7" and "gmm7" in items()


def test_bands_are_a_drop_down(dialog_factory):
    for alg_id, name in ((ALG, "ALIGN_BAND"), ("landslide:coregister_ecc", "BAND")):
        combo = dialog_factory(alg_id).mainWidget().wrappers[name].wrappedWidget()
        combo = combo if isinstance(combo, QComboBox) else combo.findChild(QComboBox)
        assert combo is not None, alg_id
        assert [combo.itemText(i) for i in range(combo.count())] == ["B02", "B03", "B04", "B8A", "B11", "B12"]
        assert combo.currentText() == "B11"


def test_decimal_numbers_show_sensible_decimals(provider, dialog_factory):
    for alg in provider.algorithms():
        for param in alg.parameterDefinitions():
            if isinstance(param, QgsProcessingParameterNumber) and param.dataType() == NUMBER_DOUBLE:
                decimals = param.metadata().get("widget_wrapper", {}).get("decimals")
                assert decimals is not None and decimals <= 2, (alg.id(), param.name())
    wrappers = dialog_factory().mainWidget().wrappers
    shown = {name: wrappers[name].wrappedWidget().findChild(QgsDoubleSpinBox)
             or wrappers[name].wrappedWidget() for name in ("THRESHOLD", "MIN_AREA", "MAX_SHIFT", "MIN_SLOPE")}
    assert {name: box.decimals() for name, box in shown.items()} == {
        "THRESHOLD": 2, "MIN_AREA": 0, "MAX_SHIFT": 1, "MIN_SLOPE": 1}
    assert shown["THRESHOLD"].text().replace(",", ".") == "-0.20"


def test_values_that_cannot_run_are_refused_before_the_run(provider, example_pair, tmp_path):
    alg = QgsApplication.processingRegistry().createAlgorithmById(ALG)
    context = QgsProcessingContext()
    good = user_parameters(example_pair, tmp_path)
    assert alg.checkParameterValues(good, context) == (True, "")
    ok, message = alg.checkParameterValues(dict(good, PRIMARY="gmm3"), context)
    assert not ok and "'gmm3' is not among the methods run (threshold, gmm2, gmm4, either)" in message
    ok, message = alg.checkParameterValues(dict(good, GMM_CLUSTERS="2,three"), context)
    assert not ok and "'2,three' is not a list of cluster counts" in message
    ok, message = alg.checkParameterValues(dict(good, THRESHOLD_BASELINE=False, GMM_CLUSTERS=""), context)
    assert not ok and "No method chosen" in message
    # As users wrote it before the drop-down: another spelling of the same method is the same method.
    assert alg.checkParameterValues(dict(good, PRIMARY="GMM 4"), context) == (True, "")


def test_the_modeler_keeps_qgis_own_widget(provider):
    """In the Graphical Modeler the parameters keep QGIS's widget, which links model inputs."""
    from qgis.core import QgsProcessingModelAlgorithm
    from qgis.gui import QgsProcessingModelerParameterWidget
    from qgis.PyQt.QtWidgets import QDialog

    from landslide_plugin.processing.widgets import MethodChoiceWidgetWrapper, ProductFilesWidgetWrapper

    class ModelerParametersDialog(QDialog):  # the class name is what the widget factory goes by
        def __init__(self):
            super().__init__()
            self.model, self.childId, self.context = QgsProcessingModelAlgorithm(), "map", QgsProcessingContext()

    dialog = ModelerParametersDialog()
    alg = QgsApplication.processingRegistry().createAlgorithmById(ALG)
    for cls, name in ((ProductFilesWidgetWrapper, "PRE"), (MethodChoiceWidgetWrapper, "PRIMARY")):
        widget = cls(alg.parameterDefinition(name), dialog)
        assert isinstance(widget, QgsProcessingModelerParameterWidget), cls
        KEEP.append((widget, dialog, alg))  # QGIS's modeler widgets outlive the test, as in a real dialog


#: Objects the modeler test makes, kept for the session (freeing them in a test's teardown crashes QGIS 3.22).
KEEP = []

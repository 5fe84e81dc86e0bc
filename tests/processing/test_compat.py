"""QGIS 3 / QGIS 4 spellings: compat gives the same values as before on QGIS 3.x, and no other file of the
plugin spells an enum or a field type the QGIS-3-only way (so those spellings do not come back)."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from qgis.core import (
    Qgis,
    QgsColorRampShader,
    QgsContrastEnhancement,
    QgsCoordinateReferenceSystem,
    QgsFeatureSink,
    QgsField,
    QgsProcessing,
    QgsProcessingParameterDateTime,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterFile,
    QgsProcessingParameterNumber,
    QgsWkbTypes,
)
from qgis.PyQt.QtCore import Qt

from landslide_plugin.processing import compat

ROOT = Path(__file__).resolve().parents[2]
COMPAT = ROOT / "landslide_plugin" / "processing" / "compat.py"

#: (what is wrong, pattern). Every pattern is checked against the spellings it exists to catch, below.
FORBIDDEN = (
    ("QVariant field types do not exist in PyQt6: use compat.FIELD_*", re.compile(r"\bQVariant\b")),
    ("field types come from compat.FIELD_*", re.compile(r"\bQMetaType\b")),
    ("unscoped QGIS enum value (e.g. QgsProcessing.TypeFile, QgsWkbTypes.MultiPolygon): use compat",
     re.compile(r"\bQgs[A-Za-z0-9]+\.[A-Z][a-z][A-Za-z0-9]*\b(?!\s*[.(])")),
    ("QGIS-3 enum class (QgsProcessing.SourceType, QgsWkbTypes.Type, ...): use compat",
     re.compile(r"\b(QgsProcessing\.SourceType|QgsWkbTypes\.Type|QgsColorRampShader\.Type|"
                r"QgsProcessingParameterNumber\.Type|QgsProcessingParameterDateTime\.Type)\b")),
    ("QGIS-3 parameter flag (FlagAdvanced, FlagOptional, ...): use compat.FLAG_ADVANCED",
     re.compile(r"\bFlag(Advanced|Optional|Hidden|IsModelOutput)\b")),
    ("QGIS-3 WKT variant attribute: use compat.WKT_PREFERRED", re.compile(r"\.(WKT_[A-Z0-9_]+|WktVariant)\b")),
    ("unscoped Qt enum (Qt.UTC, ...): PyQt6 needs Qt.TimeSpec.UTC; use compat",
     re.compile(r"\bQt\.[A-Z][A-Za-z0-9_]*\b(?!\s*\.)")),
    ("unscoped Qgis enum value: use Qgis.MessageLevel.Critical and the like",
     re.compile(r"\bQgis\.(Info|Warning|Critical|Success|NoLevel)\b")),
    ("exec_() is PyQt5 only: use exec()", re.compile(r"\bexec_\(")),
    ("import Qt through qgis.PyQt, never PyQt5/PyQt6 directly", re.compile(r"^\s*(from|import)\s+PyQt[56]\b", re.M)),
)

#: Spellings the plugin used before (QGIS 3 only); each must be caught by a pattern above.
OLD_SPELLINGS = (
    "fields.append(QgsField('id', QVariant.Int))",
    "QgsField(name, QVariant.String)",
    "QgsProcessingParameterMultipleLayers(self.PRE, 'Pre', QgsProcessing.TypeFile)",
    "[QgsProcessing.TypeVectorPolygon]",
    "types=[QgsProcessing.SourceType.TypeVectorPolygon]",
    "sink.addFeature(feature, QgsFeatureSink.FastInsert)",
    "self.parameterAsSink(parameters, 'OUTPUT', context, fields, QgsWkbTypes.MultiPolygon, crs)",
    "ramp.setColorRampType(QgsColorRampShader.Interpolated)",
    "crs.toWkt(QgsCoordinateReferenceSystem.WKT_PREFERRED)",
    "crs.toWkt(crs.WKT_PREFERRED)",
    "sensed.setTimeSpec(Qt.UTC)",
    "param.setFlags(param.flags() | param.Flag.FlagAdvanced)",
    "enhancement.setContrastEnhancementAlgorithm(QgsContrastEnhancement.StretchToMinimumMaximum)",
    "type=QgsProcessingParameterNumber.Type.Double",
    "QgsMessageLog.logMessage('x', 'tag', Qgis.Critical)",
    "dialog.exec_()",
    "from PyQt5.QtCore import QVariant",
)

#: Spellings that are fine on QGIS 3.22 and QGIS 4 and must not be flagged.
GOOD_SPELLINGS = (
    "str(value) != QgsProcessing.TEMPORARY_OUTPUT",
    "QgsPalettedRasterRenderer.Class(value, colour, label)",
    "QgsProcessingContext.LayerDetails(name, context.project(), name)",
    "sensed.setTimeSpec(Qt.TimeSpec.UTC)",
    "QgsWkbTypes.geometryType(layer.wkbType())",
    "Qgis.MessageLevel.Critical",
    "from .compat import FAST_INSERT, WKT_PREFERRED",
)


def source_files() -> list[Path]:
    files = sorted((ROOT / "landslide_plugin").rglob("*.py")) + sorted((ROOT / "scripts").glob("*.py"))
    return [f for f in files if f != COMPAT and "__pycache__" not in f.parts]


def findings(text: str) -> list[str]:
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        code = line.split("#", 1)[0]  # comments may name the old spellings
        for reason, pattern in FORBIDDEN:
            if pattern.search(code):
                found.append(f"{number}: {line.strip()}  -- {reason}")
    return found


@pytest.mark.parametrize("line", OLD_SPELLINGS)
def test_every_old_spelling_is_caught(line):
    assert findings(line), f"no pattern catches {line!r}"


@pytest.mark.parametrize("line", GOOD_SPELLINGS)
def test_portable_spellings_are_not_flagged(line):
    assert findings(line) == []


def test_no_qgis3_only_spelling_outside_compat():
    assert source_files(), "no source files found"
    problems = []
    for path in source_files():
        problems += [f"{path.relative_to(ROOT)}:{f}" for f in findings(path.read_text(encoding="utf-8"))]
    assert problems == [], "QGIS-3-only spellings (Qt6/QGIS 4 break on them):\n" + "\n".join(problems)


def _has(owner, *names) -> bool:
    for name in names:
        if not hasattr(owner, name):
            return False
        owner = getattr(owner, name)
    return True


# -- compat gives the values the plugin passed before wherever the new spelling does not exist --------------
@pytest.mark.parametrize("value, new, old", [
    ("SOURCE_FILE", ("ProcessingSourceType", "File"), lambda: QgsProcessing.TypeFile),
    ("SOURCE_RASTER", ("ProcessingSourceType", "Raster"), lambda: QgsProcessing.TypeRaster),
    ("SOURCE_VECTOR", ("ProcessingSourceType", "Vector"), lambda: QgsProcessing.TypeVector),
    ("SOURCE_VECTOR_POLYGON", ("ProcessingSourceType", "VectorPolygon"), lambda: QgsProcessing.TypeVectorPolygon),
    ("NUMBER_INTEGER", ("ProcessingNumberParameterType", "Integer"), lambda: QgsProcessingParameterNumber.Integer),
    ("NUMBER_DOUBLE", ("ProcessingNumberParameterType", "Double"), lambda: QgsProcessingParameterNumber.Double),
    ("DATETIME_DATE", ("ProcessingDateTimeParameterDataType", "Date"), lambda: QgsProcessingParameterDateTime.Date),
    ("FILE_BEHAVIOR_FOLDER", ("ProcessingFileParameterBehavior", "Folder"),
     lambda: QgsProcessingParameterFile.Folder),
    ("FLAG_ADVANCED", ("ProcessingParameterFlag", "Advanced"),
     lambda: QgsProcessingParameterDefinition.FlagAdvanced),
    ("WKB_MULTIPOLYGON", ("WkbType", "MultiPolygon"), lambda: QgsWkbTypes.MultiPolygon),
    ("WKB_NO_GEOMETRY", ("WkbType", "NoGeometry"), lambda: QgsWkbTypes.NoGeometry),
    ("WKT_PREFERRED", ("CrsWktVariant", "Preferred"), lambda: QgsCoordinateReferenceSystem.WKT_PREFERRED),
    ("RAMP_INTERPOLATED", ("ShaderInterpolationMethod", "Linear"), lambda: QgsColorRampShader.Interpolated),
])
def test_compat_value(value, new, old):
    got = getattr(compat, value)
    if _has(Qgis, *new):
        assert got == getattr(getattr(Qgis, new[0]), new[1])
    else:  # QGIS 3.22 and the like: exactly what the plugin passed before
        assert got == old()


@pytest.mark.skipif(Qgis.QGIS_VERSION_INT >= 40000, reason="the unscoped names exist only on Qt5 builds")
def test_compat_scoped_values_are_the_old_ones():
    assert compat.FAST_INSERT == QgsFeatureSink.FastInsert
    assert compat.UTC == Qt.UTC
    assert compat.STRETCH_TO_MIN_MAX == QgsContrastEnhancement.StretchToMinimumMaximum
    assert compat.GEOMETRY_SUCCESS == 0


@pytest.mark.parametrize("kind, type_name", [
    ("FIELD_STRING", "String"), ("FIELD_INT", "Int"), ("FIELD_LONGLONG", "LongLong"), ("FIELD_DOUBLE", "Double"),
    ("FIELD_BOOL", "Bool"), ("FIELD_DATETIME", "DateTime"),
])
def test_field_types_make_the_fields_they_did(kind, type_name):
    field = QgsField("f", getattr(compat, kind))
    if Qgis.QGIS_VERSION_INT < 33800:
        from qgis.PyQt.QtCore import QVariant

        assert field.type() == getattr(QVariant, type_name)
    else:
        from qgis.PyQt.QtCore import QMetaType

        names = {"String": "QString", "DateTime": "QDateTime"}
        assert field.type() == getattr(QMetaType.Type, names.get(type_name, type_name))


def test_processing_modes_are_the_dialog_types_qgis_passes():
    from qgis.gui import QgsProcessingGui

    modes = compat.processing_modes()
    if _has(Qgis, "ProcessingMode"):
        assert modes == {"standard": Qgis.ProcessingMode.Standard, "batch": Qgis.ProcessingMode.Batch,
                         "modeler": Qgis.ProcessingMode.Modeler}
    else:  # QGIS 3.22: the values the Processing dialogs give QgsAbstractProcessingParameterWidgetWrapper
        assert modes == {"standard": QgsProcessingGui.WidgetType.Standard, "batch": QgsProcessingGui.WidgetType.Batch,
                         "modeler": QgsProcessingGui.WidgetType.Modeler}
    assert compat.file_widget_multiple_files() == compat.file_widget_multiple_files()  # importable, stable

"""Enum and field-type spellings that work on QGIS 3.22 and later 3.x (Qt5) and on QGIS 4 (Qt6).

QGIS 4 runs on PyQt6, which accepts only scoped enums (``Qt.TimeSpec.UTC``, not ``Qt.UTC``) and has no
``QVariant.Type``; QGIS itself moved many enums into ``Qgis`` (``Qgis.ProcessingSourceType.File`` for
``QgsProcessing.TypeFile``, ``Qgis.WkbType`` for ``QgsWkbTypes.Type``, ...) between 3.28 and 3.36. Each
name here takes the newest spelling the running QGIS has and falls back to the old one, so the plugin
passes exactly the same values as before on 3.22 (a test checks that) and the new ones where they exist.

This is the only module of the plugin allowed to spell an enum the QGIS 3 way; a test keeps the others
free of those spellings (``tests/processing/test_compat.py``).
"""
from __future__ import annotations

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
from qgis.PyQt.QtCore import QMetaType, Qt


def _first(*candidates):
    """The value of the first candidate (a function without arguments) whose attributes all exist."""
    for candidate in candidates:
        try:
            return candidate()
        except AttributeError:
            continue
    raise AttributeError("none of the enum spellings exists in this QGIS")


# -- Processing ---------------------------------------------------------------------------------------
#: Layer and file types of parameters (``Qgis.ProcessingSourceType`` since 3.36).
SOURCE_FILE = _first(lambda: Qgis.ProcessingSourceType.File, lambda: QgsProcessing.SourceType.TypeFile)
SOURCE_RASTER = _first(lambda: Qgis.ProcessingSourceType.Raster, lambda: QgsProcessing.SourceType.TypeRaster)
SOURCE_VECTOR = _first(lambda: Qgis.ProcessingSourceType.Vector, lambda: QgsProcessing.SourceType.TypeVector)
SOURCE_VECTOR_POLYGON = _first(lambda: Qgis.ProcessingSourceType.VectorPolygon,
                               lambda: QgsProcessing.SourceType.TypeVectorPolygon)

#: Number parameter types (``Qgis.ProcessingNumberParameterType`` since 3.36).
NUMBER_INTEGER = _first(lambda: Qgis.ProcessingNumberParameterType.Integer,
                        lambda: QgsProcessingParameterNumber.Type.Integer)
NUMBER_DOUBLE = _first(lambda: Qgis.ProcessingNumberParameterType.Double,
                       lambda: QgsProcessingParameterNumber.Type.Double)

#: Date parameter type (``Qgis.ProcessingDateTimeParameterDataType`` since 3.36).
DATETIME_DATE = _first(lambda: Qgis.ProcessingDateTimeParameterDataType.Date,
                       lambda: QgsProcessingParameterDateTime.Type.Date)

#: A file parameter that takes a folder (``Qgis.ProcessingFileParameterBehavior`` since 3.36).
FILE_BEHAVIOR_FOLDER = _first(lambda: Qgis.ProcessingFileParameterBehavior.Folder,
                              lambda: QgsProcessingParameterFile.Behavior.Folder)

#: The "advanced" parameter flag (``Qgis.ProcessingParameterFlag`` since 3.36).
FLAG_ADVANCED = _first(lambda: Qgis.ProcessingParameterFlag.Advanced,
                       lambda: QgsProcessingParameterDefinition.Flag.FlagAdvanced)

#: Sink flag for bulk writes (scoped; the same on every version).
FAST_INSERT = QgsFeatureSink.Flag.FastInsert


def processing_modes() -> dict[str, object]:
    """Dialog types of the Processing widgets, {'standard': ..., 'batch': ..., 'modeler': ...}, as the running QGIS
    spells them (``Qgis.ProcessingMode`` since 3.36, ``QgsProcessingGui.WidgetType`` before). qgis.gui is
    imported only when a dialog asks (qgis_process never does)."""
    from qgis.gui import QgsProcessingGui

    def modes(owner):
        return {"standard": owner.Standard, "batch": owner.Batch, "modeler": owner.Modeler}

    return _first(lambda: modes(Qgis.ProcessingMode), lambda: modes(QgsProcessingGui.WidgetType))


def file_widget_multiple_files():
    """Storage mode of a file widget that holds several files (scoped; the same on every version)."""
    from qgis.gui import QgsFileWidget

    return QgsFileWidget.StorageMode.GetMultipleFiles


# -- geometry and CRS ---------------------------------------------------------------------------------
#: Geometry types of sinks (``Qgis.WkbType`` since 3.30).
WKB_MULTIPOLYGON = _first(lambda: Qgis.WkbType.MultiPolygon, lambda: QgsWkbTypes.Type.MultiPolygon)
WKB_NO_GEOMETRY = _first(lambda: Qgis.WkbType.NoGeometry, lambda: QgsWkbTypes.Type.NoGeometry)

#: Result of QgsGeometry.transform() and friends (in ``Qgis`` since 3.22, so no fallback is needed).
GEOMETRY_SUCCESS = Qgis.GeometryOperationResult.Success

#: The WKT flavour for CRSs handed to GDAL/rasterio (``Qgis.CrsWktVariant`` since 3.36).
WKT_PREFERRED = _first(lambda: Qgis.CrsWktVariant.Preferred,
                       lambda: QgsCoordinateReferenceSystem.WktVariant.WKT_PREFERRED)

# -- rendering ----------------------------------------------------------------------------------------
#: Linear colour ramps (``Qgis.ShaderInterpolationMethod`` since 3.30).
RAMP_INTERPOLATED = _first(lambda: Qgis.ShaderInterpolationMethod.Linear,
                           lambda: QgsColorRampShader.Type.Interpolated)
#: Min/max stretch of a band (scoped; the same on every version).
STRETCH_TO_MIN_MAX = QgsContrastEnhancement.ContrastEnhancementAlgorithm.StretchToMinimumMaximum

# -- Qt -----------------------------------------------------------------------------------------------
#: Time spec of the sensing times written to layers (scoped: PyQt6 has no ``Qt.UTC``).
UTC = Qt.TimeSpec.UTC


# -- field types --------------------------------------------------------------------------------------
def _qgsfield_takes_qmetatype() -> bool:
    """QgsField takes QMetaType.Type from QGIS 3.38 on (and only that on Qt6); before, only QVariant.Type."""
    try:
        QgsField("probe", QMetaType.Type.QString)
    except TypeError:
        return False
    return True


if _qgsfield_takes_qmetatype():
    FIELD_STRING = QMetaType.Type.QString
    FIELD_INT = QMetaType.Type.Int
    FIELD_LONGLONG = QMetaType.Type.LongLong
    FIELD_DOUBLE = QMetaType.Type.Double
    FIELD_BOOL = QMetaType.Type.Bool
    FIELD_DATETIME = QMetaType.Type.QDateTime
else:  # QGIS 3.22 ... 3.36: QgsField accepts only QVariant.Type (PyQt5 only; PyQt6 has no QVariant.Type)
    from qgis.PyQt.QtCore import QVariant

    FIELD_STRING = QVariant.String  # noqa: QGS402 - the type QgsField of QGIS < 3.38 takes
    FIELD_INT = QVariant.Int  # noqa: QGS402 - the type QgsField of QGIS < 3.38 takes
    FIELD_LONGLONG = QVariant.LongLong  # noqa: QGS402 - the type QgsField of QGIS < 3.38 takes
    FIELD_DOUBLE = QVariant.Double  # noqa: QGS402 - the type QgsField of QGIS < 3.38 takes
    FIELD_BOOL = QVariant.Bool  # noqa: QGS402 - the type QgsField of QGIS < 3.38 takes
    FIELD_DATETIME = QVariant.DateTime  # noqa: QGS402 - the type QgsField of QGIS < 3.38 takes

"""Download Sentinel-2 L2A: products from the Copernicus Data Space, by default only the bands the pipeline reads."""
from __future__ import annotations

import os
import re

from qgis.core import (
    QgsApplication,
    QgsAuthMethodConfig,
    QgsProcessingException,
    QgsProcessingOutputMultipleLayers,
    QgsProcessingParameterAuthConfig,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterFolderDestination,
    QgsProcessingParameterString,
)

from ..base import LandslideAlgorithm
from ..compat import SOURCE_VECTOR

#: Every band a Level-2A product holds at 20 m (the order of the BANDS choices).
BAND_CHOICES = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B8A", "B11", "B12")
DEFAULT_BANDS = ("B02", "B03", "B04", "B8A", "B11", "B12")


class DownloadSentinel2Algorithm(LandslideAlgorithm):
    NAME = "download_s2_l2a"
    DISPLAY_NAME = "Download Sentinel-2 L2A"
    GROUP = "data"
    REQUIRES = ("requests",)
    HELP = (
        "Downloads Sentinel-2 Level-2A products from the Copernicus Data Space Ecosystem into a folder and "
        "returns their paths, ready for \"Prepare Sentinel-2 L2A product\". <br><br>"
        "By default only what the landslide mapping reads is fetched, as a .SAFE folder: the product and tile "
        "metadata (MTD_MSIL2A.xml, MTD_TL.xml), the chosen 20 m bands and the scene classification (SCL): "
        "about 150 MB instead of the 1 GB zip. \"Whole product\" downloads the complete zip and checks its "
        "MD5 checksum. Interrupted downloads resume where they stopped; products already complete in the "
        "folder are not fetched again; a cancelled run leaves no partial product behind.<br><br>"
        "Products: the layer made by \"Search Sentinel-2 L2A\" (its product_id field; use \"Selected features "
        "only\" to pick some) or product Ids or names typed as text.<br><br>"
        "Account: a free Copernicus Data Space account (dataspace.copernicus.eu). Store it in QGIS as an "
        "authentication configuration of type Basic (username and password) and choose it here; models and "
        "the Processing history then hold only its id, never the password. Without one, the environment "
        "variables CDSE_USERNAME and CDSE_PASSWORD are used (and CDSE_TOTP for two-factor accounts). The "
        "download address can be changed with LANDSLIDE_CDSE_DOWNLOAD_URL and LANDSLIDE_CDSE_TOKEN_URL.")

    PRODUCTS = "PRODUCTS"
    PRODUCT_PATHS = "PRODUCT_PATHS"
    PRODUCT_IDS = "PRODUCT_IDS"
    AUTH = "AUTH"
    WHOLE_PRODUCT = "WHOLE_PRODUCT"
    BANDS = "BANDS"
    OUTPUT_FOLDER = "OUTPUT_FOLDER"

    def initAlgorithm(self, config=None):  # noqa: N802
        self.add(QgsProcessingParameterFeatureSource(self.PRODUCTS, "Products (search result layer)",
                                                     [SOURCE_VECTOR], optional=True),
                 "A layer with a product_id field (or a name field holding product names), such as the output of "
                 "\"Search Sentinel-2 L2A\". Tick \"Selected features only\" to download a selection.")
        self.add(QgsProcessingParameterString(self.PRODUCT_IDS, "Product Ids or names", optional=True),
                 "Comma-separated product Ids (UUIDs) or names (S2B_MSIL2A_..._T37SCB_....SAFE); added to the "
                 "products of the layer.")
        self.add(QgsProcessingParameterAuthConfig(self.AUTH, "Copernicus Data Space account", optional=True),
                 "A QGIS authentication configuration of type Basic holding the Copernicus Data Space username "
                 "and password. Empty: the environment variables CDSE_USERNAME and CDSE_PASSWORD.")
        self.add(QgsProcessingParameterBoolean(self.WHOLE_PRODUCT, "Whole product (zip, about 1 GB)",
                                               defaultValue=False),
                 "Download the complete product zip (all bands and resolutions) instead of only the chosen 20 m "
                 "bands, SCL and metadata.", advanced=True)
        default = [BAND_CHOICES.index(b) for b in DEFAULT_BANDS]
        self.add(QgsProcessingParameterEnum(self.BANDS, "Bands (20 m)", options=list(BAND_CHOICES),
                                            allowMultiple=True, defaultValue=default),
                 "The 20 m bands to fetch when not downloading the whole product; SCL is always added. The "
                 "landslide mapping uses B02, B03, B04, B8A, B11 and B12.", advanced=True)
        self.add(QgsProcessingParameterFolderDestination(self.OUTPUT_FOLDER, "Download folder"),
                 "Where the products go (a .SAFE folder, or a .zip, per product). Reuse the same folder: "
                 "products already there are not downloaded again.")
        self.add_output(QgsProcessingOutputMultipleLayers(self.PRODUCT_PATHS, "Downloaded products"))

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802
        self.require_dependencies()
        from ...core.copernicus import CdseClient, CdseError, CdseSettings, download_products
        from ...core.rasters import Cancelled

        keys = self._product_keys(parameters, context)
        credentials = self._credentials(parameters, context)
        whole = self.parameterAsBoolean(parameters, self.WHOLE_PRODUCT, context)
        band_indexes = self.parameterAsEnums(parameters, self.BANDS, context)
        bands = tuple(BAND_CHOICES[i] for i in sorted(band_indexes)) or DEFAULT_BANDS
        folder = self.parameterAsString(parameters, self.OUTPUT_FOLDER, context)

        try:
            settings = CdseSettings.from_env()
            # The client watches the cancel button in every request, retry and back-off (login included).
            with CdseClient(credentials, settings, is_cancelled=feedback.isCanceled) as client:
                feedback.pushInfo(f"Logging in to the Copernicus Data Space as {credentials.username}")
                client.access_token()
                paths = download_products(client, keys, folder, whole=whole, bands=bands,
                                          progress=feedback.setProgress, is_cancelled=feedback.isCanceled,
                                          log=feedback.pushInfo)
        except Cancelled:
            raise QgsProcessingException("Cancelled by the user; partial downloads were removed.") from None
        except (CdseError, ValueError, OSError) as exc:
            raise QgsProcessingException(str(exc)) from exc
        for path in paths:
            feedback.pushInfo(f"Ready: {path}")
        return {self.OUTPUT_FOLDER: folder, self.PRODUCT_PATHS: [str(p) for p in paths]}

    # -- inputs -------------------------------------------------------------------------------
    def _product_keys(self, parameters, context) -> list[str]:
        keys: list[str] = []
        source = self.parameterAsSource(parameters, self.PRODUCTS, context)
        if source is not None:
            names = source.fields().names()
            field = "product_id" if "product_id" in names else "name" if "name" in names else None
            if field is None:
                raise QgsProcessingException(
                    f"The products layer has no product_id or name field (it has {', '.join(names) or 'none'}); "
                    "use the output of \"Search Sentinel-2 L2A\".")
            for feature in source.getFeatures():
                value = feature[field]
                if value not in (None, "") and str(value) != "NULL":
                    keys.append(str(value).strip())
        text = self.parameterAsString(parameters, self.PRODUCT_IDS, context)
        keys += [k.strip() for k in re.split(r"[,;\s]+", text or "") if k.strip()]
        unique = list(dict.fromkeys(keys))
        if not unique:
            raise QgsProcessingException(
                "No product to download: choose a layer from \"Search Sentinel-2 L2A\" (with features selected "
                "if 'Selected features only' is ticked) or type product Ids or names.")
        return unique

    def _credentials(self, parameters, context):
        return read_credentials(self, parameters, context, self.AUTH)


def read_credentials(alg, parameters, context, name: str = "AUTH"):
    """Credentials from an authentication-configuration parameter, or else from CDSE_USERNAME and
    CDSE_PASSWORD; QgsProcessingException with the fix when neither gives a usable account."""
    from ...core.copernicus import CdseAuthError, Credentials

    authcfg = alg.parameterAsString(parameters, name, context)
    if not authcfg:
        try:
            return Credentials.from_env()
        except CdseAuthError as exc:
            raise QgsProcessingException(str(exc)) from None
    manager = QgsApplication.authManager()
    config = QgsAuthMethodConfig()
    if not manager.loadAuthenticationConfig(authcfg, config, True) or not config.isValid():
        raise QgsProcessingException(
            f"Authentication configuration '{authcfg}' cannot be read (unknown id, or the master password "
            "was not given); choose an existing configuration in Settings > Options > Authentication.")
    if config.method() != "Basic":
        raise QgsProcessingException(
            f"Authentication configuration '{config.name()}' is of type {config.method()}; the Copernicus "
            "Data Space needs a Basic configuration with username and password.")
    username, password = config.config("username"), config.config("password")
    if not username or not password:
        raise QgsProcessingException(
            f"Authentication configuration '{config.name()}' has no username or no password; fill in both.")
    return Credentials(username, password, os.environ.get("CDSE_TOTP") or None)

"""The scenario benchmark's scenes: every confounder of issue 15 is in the set and really in the rasters,
scenes are deterministic, and the built-in example is unchanged by the scenario machinery."""
from __future__ import annotations

import hashlib

import numpy as np
import rasterio

from landslide_plugin.core.products import read_l2a
from landslide_plugin.examples import example_data as ed

# --- the built-in example is unchanged ------------------------------------------------------------------
#: SHA-256 of the arrays generate_example_pair(size=64, seed=0) wrote on main at a511b1b, before the
#: scenario machinery (numpy/scipy/OpenCV as pinned in constraints.txt): truth, DEM and land cover as
#: read back, and each product's reflectance stack followed by its SCL as read_l2a returns them.
DEFAULT_PAIR_DIGESTS = {
    "truth": "84f4fc66f42136c190404d25e415cabdd82a7c6bb136304a285ad3550fcb2343",
    "dem": "713a8574c86fbfccd30568444ef8468e4f5df3e25f0df5de560a1c70278d8ed0",
    "landcover": "433f65a9a4575c84914cc056f4aad0c8f2660dd6e5299bf9a51501ebf8bc99cb",
    "pre": "8d8fb4c29e5084de3349b4d9dee1bca6aeff854072e4fd5998e4d93fa4bf8f37",
    "post": "996da8d2b852ddb5ad7b71f934e9c4e6643be6150108d7913d2d1cd025de0873",
}


def _digest(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


def test_generate_example_pair_defaults_are_unchanged(tmp_path):
    pair = ed.generate_example_pair(tmp_path, size=64, seed=0)
    found = {}
    for name, path in (("truth", pair.truth), ("dem", pair.dem), ("landcover", pair.landcover)):
        with rasterio.open(path) as src:
            found[name] = _digest(src.read(1))
    for which, path in (("pre", pair.pre), ("post", pair.post)):
        stack = read_l2a(str(path))
        found[which] = hashlib.sha256(np.ascontiguousarray(stack.reflectance).tobytes()
                                      + stack.scl.tobytes()).hexdigest()
    assert found == DEFAULT_PAIR_DIGESTS

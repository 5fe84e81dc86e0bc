"""What the one-step run warns about thin snow the SCL missed (``pipeline.snow_warnings``)."""
from __future__ import annotations

from landslide_plugin.core import pipeline


def test_thin_snow_on_either_date_is_said_above_one_percent_of_the_analysed_pixels():
    assert pipeline.snow_warnings((0, 0), 10_000) == []
    assert pipeline.snow_warnings((90, 99), 10_000) == []          # under 1 %: no warning
    assert pipeline.snow_warnings((500, 0), 0) == []                # nothing analysed: nothing to say
    before = pipeline.snow_warnings((300, 0), 10_000)
    assert len(before) == 1 and before[0].startswith("3.0 % of the analysed pixels lie under thin snow on the "
                                                     "pre-event date")
    assert "from the post image alone" in before[0] and "rock outcrop" in before[0]
    after = pipeline.snow_warnings((0, 2_000), 10_000)
    assert len(after) == 1 and "post-event date" in after[0] and "a scar under snow cannot be seen" in after[0]
    assert len(pipeline.snow_warnings((300, 2_000), 10_000)) == 2


def test_the_pair_check_tells_another_place_from_the_same_place_a_season_apart(tmp_path):
    """Between winter and summer the fields' SWIR-1 brightness turns over (bright becomes dark), so the plain
    correlation of the two images is about 0 although they show the same ground; their edges (terrain, field
    boundaries) stay. The check correlates the edges: the same place passes, another place does not."""
    import numpy as np
    from scipy import ndimage
    from test_clustering import write_stack

    def place(seed):
        rng = np.random.default_rng(seed)
        terrain = ndimage.gaussian_filter(rng.normal(size=(200, 200)), 4)
        fields = (ndimage.gaussian_filter(rng.normal(size=(200, 200)), 6) > 0).astype(float)
        return terrain / terrain.std(), fields

    def stack(name, b11):
        return write_stack(tmp_path / f"{name}.tif", np.repeat((0.25 + 0.02 * b11)[None], 5, axis=0))

    terrain, fields = place(1)
    winter, summer = stack("winter", terrain + 2 * fields), stack("summer", terrain - 2 * fields)
    other_terrain, other_fields = place(2)
    elsewhere = stack("elsewhere", other_terrain - 2 * other_fields)
    plain = np.corrcoef((terrain + 2 * fields).ravel(), (terrain - 2 * fields).ravel())[0, 1]
    assert abs(plain) < pipeline.LOW_PAIR_CORRELATION                # the old check would call it a wrong pair
    assert pipeline._pair_correlation(winter, summer) > 0.5
    assert pipeline._pair_correlation(winter, elsewhere) < pipeline.LOW_PAIR_CORRELATION

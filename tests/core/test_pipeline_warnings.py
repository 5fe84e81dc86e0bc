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

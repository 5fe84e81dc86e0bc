"""Test and demo machinery, not part of the run-time core: the synthetic example scene generator
(``example_data``) and a writer of real Level-2A SAFE products (``safe_format``). ``make demo``, the
benchmarks, the tests and any algorithm that makes an example use them; ``core`` never imports them."""

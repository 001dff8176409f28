"""The tracking benchmark's pure helpers: percentiles and reading a server histogram."""

from __future__ import annotations

from loadtests.tracking_bench import histogram_quantile, pct

TEXT = """# HELP souk_tracking_ingest_to_publish_seconds x
souk_tracking_ingest_to_publish_seconds_bucket{le="0.005"} 50.0
souk_tracking_ingest_to_publish_seconds_bucket{le="0.01"} 90.0
souk_tracking_ingest_to_publish_seconds_bucket{le="0.025"} 99.0
souk_tracking_ingest_to_publish_seconds_bucket{le="+Inf"} 100.0
souk_tracking_ingest_to_publish_seconds_count 100.0
"""


def test_histogram_quantile_reads_bucket_bounds() -> None:
    name = "souk_tracking_ingest_to_publish_seconds"
    assert histogram_quantile(TEXT, name, 0.5) == 5.0
    assert histogram_quantile(TEXT, name, 0.9) == 10.0
    assert histogram_quantile(TEXT, name, 0.99) == 25.0
    assert histogram_quantile(TEXT, name, 1.0) == float("inf")
    assert histogram_quantile("", name, 0.5) is None


def test_pct() -> None:
    assert pct([3.0, 1.0, 2.0, 4.0], 0.5) == 3.0
    assert pct(list(range(100)), 0.99) == 99

"""The bench's own arithmetic: a figure quoted as a target must mean what its name says."""

from bench.run import bracketed_ratio, rss_trend


def test_rss_growth_is_the_trend_of_every_sample_not_the_last_against_the_first():
    # flat at 300 MB with the swings batches in flight make: a low first sample and a high last one
    swinging = [(20_000, 285.0), (30_000, 312.0), (40_000, 298.0), (50_000, 305.0), (60_000, 296.0),
                (70_000, 304.0), (80_000, 299.0), (90_000, 301.0), (100_000, 315.0)]
    per_item, level = rss_trend(swinging)
    two_samples = (swinging[-1][1] - swinging[0][1]) / swinging[0][1] * 100 * 100_000 / 80_000
    trend = per_item * 100_000 / level * 100
    assert two_samples > 13 and abs(trend) < 5

    # a steady leak of 10 MB per 100k items from 200 MB is read as 5% per 100k, whatever the swings
    leaking = [(c, 200 + c / 10_000 - 2.0 + 4.0 * (i % 2)) for i, c in enumerate(range(0, 100_001, 5_000))]
    per_item, level = rss_trend(leaking)
    assert abs(per_item * 100_000 - 10) < 1 and abs(level - 200) < 3


def test_rss_trend_of_a_single_sample_is_flat():
    assert rss_trend([(5_000, 300.0)]) == (0.0, 300.0)


def test_the_ratio_is_taken_against_the_mean_of_the_no_op_before_and_after_the_pipeline():
    results = {"noop_items_per_s": 4_000.0, "pipeline_items_per_s": 2_700.0}
    bracketed_ratio(results, {"noop_items_per_s": 3_000.0})
    assert results["noop_items_per_s"] == 3_500.0
    assert (results["noop_items_per_s_before"], results["noop_items_per_s_after"]) == (4_000.0, 3_000.0)
    assert results["pipeline_vs_noop_ratio"] == round(2_700 / 3_500, 3)

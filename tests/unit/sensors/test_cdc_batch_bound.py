import pytest

from sensors.customers import CDC_RANGES, DEFAULT_CDC_MAX_PER_PARTITION, cdc_max_per_partition


def test_the_bound_defaults_to_a_hundred_thousand_offsets_a_partition():
    assert cdc_max_per_partition({}) == DEFAULT_CDC_MAX_PER_PARTITION == 100_000


def test_the_bound_comes_from_the_environment():
    assert cdc_max_per_partition({"RAG_CDC_MAX_PER_PARTITION": "500"}) == 500


@pytest.mark.parametrize("raw", ["0", "-5", "lots", "", "2.5"])
def test_a_bound_that_is_not_a_positive_whole_number_is_refused(raw):
    with pytest.raises(ValueError, match="RAG_CDC_MAX_PER_PARTITION must be a positive whole number"):
        cdc_max_per_partition({"RAG_CDC_MAX_PER_PARTITION": raw})


def test_the_cdc_sensor_uses_the_bound():
    assert CDC_RANGES.max_per_partition == cdc_max_per_partition()

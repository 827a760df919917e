"""The dead-letter payload retention setting: a positive whole number of days, or a clear error
naming the variable."""

import pytest

from rag_assets.platform.dead_letters import RETENTION_ENV, retention_days


@pytest.mark.parametrize("environ, days", [
    ({}, 30),
    ({RETENTION_ENV: ""}, 30),
    ({RETENTION_ENV: "7"}, 7),
    ({RETENTION_ENV: " 365 "}, 365),
    ({RETENTION_ENV: "1"}, 1),
])
def test_retention_days_from_the_environment(environ, days):
    assert retention_days(environ) == days


@pytest.mark.parametrize("value", ["0", "-1", "1.5", "30d", "abc", "٣", "36501", "9" * 30])
def test_a_retention_that_is_not_a_positive_whole_number_of_days_is_refused(value):
    with pytest.raises(ValueError) as error:
        retention_days({RETENTION_ENV: value})
    assert str(error.value).startswith(
        "RAG_DEAD_LETTER_RETENTION_DAYS must be a whole number of days from 1 to 36500, not ")

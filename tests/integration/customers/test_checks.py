"""The customers group's asset checks, as the UI shows them after a run."""

import pytest
from dagster import AssetSelection, materialize

from rag_assets.customers.assets import customer_profiles, identity_graph, source_records
from rag_assets.customers.checks import cdc_lag, customer_checks
from tests.integration.customers.helpers import catch_up, demo_messages, publish

pytestmark = pytest.mark.integration


def _evaluations(result) -> dict:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def test_checks_pass_after_a_catch_up_and_lag_counts_unapplied_events(kafka, postgres):
    messages = demo_messages(kafka, people=25, changes=40)
    publish(kafka, messages)
    catch_up(kafka, postgres)
    resources = {"kafka": kafka, "postgres": postgres}
    result = materialize([source_records, identity_graph, customer_profiles, *customer_checks],
                         resources=resources, run_config={"ops": {
                             "source_records": {"config": {"ranges": []}}}})
    checks = _evaluations(result)
    assert {name: check.passed for name, check in checks.items()} == {
        "cdc_lag": True, "identity_graph_settled": True, "profiles_complete": True}
    assert checks["cdc_lag"].metadata["lag_events"].value == 0
    assert checks["identity_graph_settled"].metadata["largest_cluster"].value >= 2

    publish(kafka, demo_messages(kafka, people=25, changes=47)[-7:])  # seven new, unapplied
    only_the_check = AssetSelection.checks(cdc_lag)
    lag = _evaluations(materialize([source_records, cdc_lag], resources=resources,
                                   selection=only_the_check))["cdc_lag"]
    assert lag.passed and lag.metadata["lag_events"].value == 7

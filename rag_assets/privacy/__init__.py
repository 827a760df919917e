"""Erasure (the right to be forgotten), whole: a domain above the customers and feedback.

    plan.py                 what to erase for one reference (pure): `ErasureTarget`, hashes
    requests.py             an erasure request from the `privacy.erasure` topic (pure)
    resolution.py           a reference resolved to one person, and what the stores hold of them
    request_log.py          `erasure_requests`: status, counts and identifier hashes per request
    dead_letter_erasure.py  the ties an erasure looks for in dead letters, and their deletion
    lake_rewrite.py         step 2: the conversation lake rewritten without the erased rows
    erasure.py              the whole erasure: step 1 in one transaction, then step 2
    assets.py               `customer_erasures` and the dead-letter payload retention
    definitions.py          their Dagster definitions (sensor: `sensors/privacy.py`)
    cli_commands.py         `rag-assets erase` (top layer: the deployment's resources)

The rows it deletes belong to other domains, and each deletes them through its own store:
`customers` (`source_store.delete_records`, `identity_store.forget_records` and
`retire_customer`, `erased_records.remember_erased`), `feedback` (`suppression.forget_turns`,
`lake_store.replace_object`, `finetune_export.withdraw_exports_holding`) and the platform
(`dead_letters.delete_tied`). So this package imports them, and none of them imports it:
the suppression list feedback ingest needs lives in `feedback/suppression.py`, the guard that
keeps erased records out of CDC in `customers/erased_records.py`, and what ties a dead letter to
a person in `customers/dead_letter_ties.py` (tests/test_import_layers.py checks it).
"""

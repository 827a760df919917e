"""Dagster resources: how the asset graph reaches Kafka, S3, PostgreSQL, LanceDB and models.

Every connection setting is read from the environment through `dagster.EnvVar`; see
`resources.defaults.production_resources` for the variable names.
"""

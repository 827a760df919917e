"""S3 access (dagster-aws) plus where the project's objects live."""

from __future__ import annotations

from dagster_aws.s3 import S3Resource
from pydantic import Field


class S3Storage(S3Resource):
    """dagster-aws's S3 resource with the project's buckets and prefixes."""

    knowledge_bucket: str = Field(description="Bucket holding the policy and help documents.")
    knowledge_prefix: str = Field(default="knowledge-base/", description="Key prefix of the documents.")
    lake_bucket: str = Field(description="Bucket of the conversation lake and fine-tuning exports.")
    lake_prefix: str = Field(default="", description="Key prefix inside the lake bucket.")

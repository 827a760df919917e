"""LanceDB connection: a local directory by default, `s3://bucket/prefix` for scale."""

from __future__ import annotations

import lancedb
from dagster import ConfigurableResource
from pydantic import Field


class LanceDBResource(ConfigurableResource):
    uri: str = Field(description="A local path or an s3:// URI.")
    s3_endpoint_url: str | None = Field(default=None, description="For S3-compatible servers.")
    aws_access_key_id: str | None = None
    aws_secret_access_key: str | None = Field(default=None, repr=False)
    aws_region: str = "us-east-1"

    def storage_options(self) -> dict[str, str]:
        if not self.uri.startswith("s3://"):
            return {}
        options = {"region": self.aws_region}
        if self.s3_endpoint_url:
            options.update(endpoint=self.s3_endpoint_url, allow_http="true")
        if self.aws_access_key_id:
            options.update(aws_access_key_id=self.aws_access_key_id,
                           aws_secret_access_key=self.aws_secret_access_key or "")
        return options

    def connect(self) -> lancedb.DBConnection:
        return lancedb.connect(self.uri, storage_options=self.storage_options() or None)

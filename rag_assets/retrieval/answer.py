"""Optional answer generation through Amazon Bedrock (Converse API), from a context bundle.

Enabled by BEDROCK_LLM_MODEL_ID (e.g. "anthropic.claude-3-haiku-20240307-v1:0"); region from
AWS_REGION, endpoint override from BEDROCK_ENDPOINT_URL. The prompt holds the customer's profile
and the retrieved chunks; it is sent to Bedrock only, never logged.
"""

from __future__ import annotations

import json
import os
from typing import Any

SYSTEM_PROMPT = (
    "You are an airline's customer assistant. Answer the customer's question using only the "
    "policy excerpts and the customer profile given. Cite excerpts as [n]. If they do not "
    "contain the answer, say so."
)


def build_prompt(bundle: dict[str, Any]) -> str:
    excerpts = "\n\n".join(
        f"[{chunk['rank']}] ({chunk['provenance']['doc_key']}) {chunk['heading']}\n{chunk['text']}"
        for chunk in bundle["chunks"])
    customer = bundle.get("customer")
    profile = json.dumps(customer["profile"], default=str)[:6000] if customer else "unknown"
    return (f"Customer profile (JSON): {profile}\n\nPolicy excerpts:\n{excerpts}\n\n"
            f"Question: {bundle['question']}")


class BedrockAnswerer:
    def __init__(self, model_id: str, region_name: str = "us-east-1",
                 endpoint_url: str | None = None, max_tokens: int = 512,
                 client: Any | None = None) -> None:
        self.model_id = model_id
        self.max_tokens = max_tokens
        if client is None:
            import boto3
            from botocore.config import Config

            client = boto3.client("bedrock-runtime", region_name=region_name,
                                  endpoint_url=endpoint_url,
                                  config=Config(retries={"mode": "standard", "max_attempts": 3},
                                                read_timeout=60))
        self.client = client

    def answer(self, bundle: dict[str, Any]) -> dict[str, Any]:
        response = self.client.converse(
            modelId=self.model_id,
            system=[{"text": SYSTEM_PROMPT}],
            messages=[{"role": "user", "content": [{"text": build_prompt(bundle)}]}],
            inferenceConfig={"maxTokens": self.max_tokens, "temperature": 0.2},
        )
        parts = response["output"]["message"]["content"]
        return {"model_id": self.model_id,
                "text": "".join(part.get("text", "") for part in parts),
                "stop_reason": response.get("stopReason")}


def answerer_from_env() -> BedrockAnswerer | None:
    model_id = os.environ.get("BEDROCK_LLM_MODEL_ID")
    if not model_id:
        return None
    return BedrockAnswerer(model_id, os.environ.get("AWS_REGION", "us-east-1"),
                           os.environ.get("BEDROCK_ENDPOINT_URL"))

"""boto3's values (Decimal, datetime, bytes) as plain JSON, and back: how the tool keeps and shows items."""

from __future__ import annotations

import datetime
import decimal
import json
from typing import Any


def to_json(value: Any) -> Any:
    """DynamoDB and boto3 values (Decimal, datetime, bytes) as plain JSON."""
    if isinstance(value, dict):
        return {k: to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [to_json(v) for v in value]
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, datetime.datetime):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value


def to_dynamo(item: dict[str, Any]) -> dict[str, Any]:
    """A plain item as the boto3 resource API takes it: numbers with a fraction become Decimal."""
    return json.loads(json.dumps(item), parse_float=decimal.Decimal)


def from_dynamodb(item: dict[str, Any]) -> dict[str, Any]:
    """A low-level DynamoDB item (``{"S": ...}`` values) as plain JSON values."""
    from boto3.dynamodb.types import TypeDeserializer

    return to_json(TypeDeserializer().deserialize({"M": item}))  # type: ignore[no-any-return]

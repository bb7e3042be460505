"""Shared fixtures: a safe fake AWS environment, the corpus, and the template synthesized once."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

# Before anything imports boto3 or Powertools: never reach a real account, never send traces.
os.environ.update(
    {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_METRICS_NAMESPACE": "ThumbnailPipelineTests",
        "POWERTOOLS_SERVICE_NAME": "tests",
        # A thumbs command started by a test runs in its own process; tests/test_engine.py turns the engine on.
        "THUMBS_ENGINE": "0",
    }
)
os.environ.pop("AWS_PROFILE", None)


ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT.parent / "shared" / "corpus"


def corpus_entries() -> list[dict[str, Any]]:
    """Every manifest entry, or [] when the corpus is absent (a user's clone has no ../shared)."""
    manifest = CORPUS / "manifest.json"
    if not manifest.exists():
        return []
    return json.loads(manifest.read_text())["images"]


@pytest.fixture(scope="session")
def corpus() -> Path:
    if not (CORPUS / "manifest.json").exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must run the corpus, but {CORPUS} is missing")
        pytest.skip(f"no image corpus at {CORPUS} (it ships beside the project, not in it)")
    return CORPUS


@pytest.fixture(scope="session")
def template() -> dict[str, Any]:
    """The stack's CloudFormation template, synthesized once per session (bundling skipped)."""
    from aws_cdk.assertions import Template

    from pipeline.app import build_app

    _, stack = build_app(outdir=None, context={"aws:cdk:bundling-stacks": []})
    return Template.from_stack(stack).to_json()


@pytest.fixture(scope="session")
def definition(template: dict[str, Any]) -> dict[str, Any]:
    from thumbs.template import get_att_logical_id, state_machine_definition

    return state_machine_definition(
        template, lambda ref: f"arn:aws:lambda:us-east-1:123456789012:function:{get_att_logical_id(ref)}"
    )

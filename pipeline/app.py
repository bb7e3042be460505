"""Build the CDK app: config from context, the stack, and cdk-nag's AwsSolutions checks on every synth."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from aws_cdk import App, Validations
from cdk_nag import AwsSolutionsChecks

from .config import CONTEXT_KEY, PipelineConfig
from .stack import ThumbnailStack

STACK_NAME = "ThumbnailPipeline"
CDK_JSON = Path(__file__).resolve().parent.parent / "cdk.json"


def project_context() -> dict[str, Any]:
    """``cdk.json``'s context, so ``python app.py`` and the tests build what ``cdk synth`` builds."""
    return dict(json.loads(CDK_JSON.read_text()).get("context", {}))


def project_config() -> PipelineConfig:
    """``cdk.json``'s pipeline settings, checked: what ``cdk deploy`` would deploy (``thumbs`` reads them)."""
    return PipelineConfig.from_context(project_context().get(CONTEXT_KEY))


def build_app(
    outdir: str | None = None, context: dict[str, Any] | None = None, stack_name: str = STACK_NAME
) -> tuple[App, ThumbnailStack]:
    """The app with its one stack; an unacknowledged cdk-nag finding fails ``app.synth()``.

    ``context`` overrides ``cdk.json``; the CLI's ``--context`` values override both.
    ``stack_name`` lets a second copy (the integ test's) live beside a real deployment.
    """
    app = App(outdir=outdir, context={**project_context(), **(context or {})})
    config = PipelineConfig.from_context(app.node.try_get_context(CONTEXT_KEY))
    stack = ThumbnailStack(app, stack_name, config=config, description="S3 -> EventBridge -> Step Functions thumbnails")
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    return app, stack

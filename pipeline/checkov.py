"""Answers to checkov's CloudFormation checks, written into the template as checkov reads them.

checkov (``checkov --framework cloudformation``) is an outside validator: nobody here wrote its
rules, so it finds what our own tests do not think to ask. The real findings are fixed in the
constructs (the dead-letter queue and alarm topic under our own KMS key, Record's dead-letter
queue, the access-log bucket's versioning). What remains does not apply to this stack; each
such finding is skipped in the resource's ``Metadata`` with the reason, the way ``stack.py``
acknowledges cdk-nag's. A skip is only written where the resource really lacks what the check
asks for, so a finding fixed later stops being skipped by itself. ``tests/test_validators.py``
runs checkov on the synthesized template: a finding with no answer fails it.
"""

from __future__ import annotations

from aws_cdk import CfnResource, Stack
from aws_cdk import aws_lambda as lambda_

from .storage import Storage

LOG_GROUP_KEY = (
    "CloudWatch Logs encrypts every log group at rest with keys it manages. These logs hold object keys, "
    "states and reasons, never image bytes; a customer key would need a key policy for the Logs service "
    "and a KMS call per batch of events, and protect nothing more."
)
ENVIRONMENT = (
    "The environment holds resource names and the imaging settings, no secret; Lambda encrypts it at rest "
    "with its own key."
)
CONCURRENCY = (
    "Reserved concurrency is a setting (reserved_concurrency in cdk.json; docs/bursts.md). Reserving by "
    "default would fail to deploy in an account whose limit leaves under 100 unreserved, and a burst is "
    "absorbed by the throttle retrier either way."
)
SYNCHRONOUS_ONLY = (
    "Invoked only synchronously, by Step Functions, which receives every error and retries or fails the "
    "execution; an asynchronous dead-letter queue would never receive a message."
)
DEPLOY_TIME = {
    "CKV_AWS_117": "CDK's deploy-time custom-resource provider: CloudFormation runs it only during a deploy, and "
    "it calls only the EC2 API, which the isolated VPC cannot reach (docs/architecture.md, Deploy-time functions).",
    "CKV_AWS_115": "CloudFormation invokes this deploy-time provider a few times per deploy; there is nothing to cap.",
    "CKV_AWS_116": "CloudFormation invokes this deploy-time provider and waits for its answer: a failure fails the "
    "deploy, and there is no event for a queue to keep.",
    "CKV_AWS_173": ENVIRONMENT,
}
UPLOADS_VERSIONING = (
    "Reading by etag is enough: a run reads exactly the bytes its event announced (GetObject with IfMatch) "
    "or learns they were replaced and records SourceChanged, and the replacing upload has its own event and "
    "run. Versions would keep every overwritten image, at storage cost, for nothing the pipeline uses. A "
    "team that versions the bucket for its own reasons may: the handlers then read by VersionId."
)
THUMBNAILS_VERSIONING = (
    "Thumbnails are derived data: Record replaces one only for a newer upload, and thumbs backfill rebuilds "
    "any from the uploads. Versions would keep every replaced thumbnail at storage cost for nothing."
)
ACCESS_LOG_BUCKET = "This is the access-log bucket; logging it into itself would loop."
TABLE_KEY = (
    "The table is encrypted with DynamoDB's AWS-managed key. Records hold object keys, statuses and "
    "thumbnail keys; a customer key would add a key grant to every function and operator that reads "
    "them, and no access control that IAM on the table does not already give."
)


def skip(resource: CfnResource, check: str, reason: str) -> None:
    """Tell checkov to skip ``check`` on ``resource``, and why (``Metadata.checkov.skip``)."""
    metadata = resource.get_metadata("checkov") or {"skip": []}
    metadata["skip"] = [*metadata["skip"], {"id": check, "comment": reason}]
    resource.add_metadata("checkov", metadata)


def answer_checkov_findings(stack: Stack, storage: Storage) -> None:
    """Every checkov finding that does not apply to this stack, skipped with its reason."""
    for construct in stack.node.find_all():
        if not isinstance(construct, CfnResource):
            continue
        kind = construct.cfn_resource_type
        if kind == "AWS::Logs::LogGroup":
            skip(construct, "CKV_AWS_158", LOG_GROUP_KEY)
        elif kind == "AWS::Lambda::Function":
            _answer_function(construct)
    uploads, thumbnails, access_logs = (
        bucket.node.default_child for bucket in (storage.source, storage.thumbnails, storage.access_logs)
    )
    assert isinstance(uploads, CfnResource) and isinstance(thumbnails, CfnResource)
    assert isinstance(access_logs, CfnResource)
    skip(uploads, "CKV_AWS_21", UPLOADS_VERSIONING)
    skip(thumbnails, "CKV_AWS_21", THUMBNAILS_VERSIONING)
    skip(access_logs, "CKV_AWS_18", ACCESS_LOG_BUCKET)
    table = storage.table.node.default_child
    assert isinstance(table, CfnResource)
    skip(table, "CKV_AWS_119", TABLE_KEY)


def _answer_function(function: CfnResource) -> None:
    # CDK's providers are either a lambda.Function running Node or a raw CfnResource (CustomResourceProvider).
    if not isinstance(function, lambda_.CfnFunction) or not str(function.runtime).startswith("python"):
        for check, reason in DEPLOY_TIME.items():
            if check != "CKV_AWS_173" or getattr(function, "environment", None) is not None:
                skip(function, check, reason)
        return
    if function.environment is not None:
        skip(function, "CKV_AWS_173", ENVIRONMENT)
    if function.reserved_concurrent_executions is None:
        skip(function, "CKV_AWS_115", CONCURRENCY)
    if function.dead_letter_config is None:
        skip(function, "CKV_AWS_116", SYNCHRONOUS_ONLY)

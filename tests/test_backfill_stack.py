"""The Backfill state machine in the template: a Distributed Map as cdk.json sets it, with least privilege."""

from __future__ import annotations

import json
from typing import Any

import pytest
from imaging import ConfigError

from pipeline.app import project_context
from pipeline.config import BackfillSettings, PipelineConfig
from thumbs.template import state_machine_definition


def reference(intrinsic: dict[str, Any]) -> str:
    """A readable stand-in for a Ref or GetAtt inside the definition: ``REF:<logical id>``."""
    return "REF:" + (intrinsic["Ref"] if "Ref" in intrinsic else intrinsic["Fn::GetAtt"][0])


@pytest.fixture(scope="module")
def backfill(template: dict[str, Any]) -> dict[str, Any]:
    return state_machine_definition(template, reference, output="BackfillStateMachineArn")


@pytest.fixture(scope="module")
def settings() -> BackfillSettings:
    return PipelineConfig.from_context(project_context()["thumbnails"]).backfill


KINDS = {
    "Storage": "AWS::S3::Bucket",
    "Functions": "AWS::Lambda::Function",
    "Backfill": "AWS::StepFunctions::StateMachine",
}


def logical(template: dict[str, Any], prefix: str) -> str:
    """The logical id of the bucket, function or state machine whose id starts with ``prefix``."""
    kind = next(k for p, k in KINDS.items() if prefix.startswith(p))
    (name,) = [n for n, r in template["Resources"].items() if n.startswith(prefix) and r["Type"] == kind]
    return name


def test_the_map_reads_the_uploads_bucket_in_batches_as_cdk_json_says(template, backfill, settings):
    objects = backfill["States"]["Objects"]
    uploads, thumbnails = logical(template, "StorageUploads"), logical(template, "StorageThumbnails")
    assert objects["Type"] == "Map"
    assert objects["ItemProcessor"]["ProcessorConfig"] == {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"}
    assert objects["ItemReader"] == {
        "Resource": "arn:aws:states:::s3:listObjectsV2",
        "Parameters": {"Bucket": f"REF:{uploads}", "Prefix.$": "$.prefix"},  # thumbs backfill --prefix
    }
    assert objects["ItemBatcher"] == {
        "MaxItemsPerBatch": settings.batch_size,
        "BatchInput": {"force.$": "$.force", "backfill.$": "$$.Execution.Id"},
    }
    assert objects["MaxConcurrency"] == settings.max_concurrency
    assert objects["ToleratedFailurePercentage"] == settings.tolerated_failure_percentage
    writer = objects["ResultWriter"]
    assert writer["Resource"].endswith(":states:::s3:putObject")
    assert writer["Parameters"] == {"Bucket": f"REF:{thumbnails}", "Prefix": "_work/backfill"}
    # Start with {} and the defaults fill in: the whole bucket, only what is stale.
    assert backfill["States"]["Defaults"]["Result"] == {"prefix": "", "force": False}


def test_each_stale_image_runs_as_its_own_pipeline_execution(template, backfill, settings):
    batch = backfill["States"]["Objects"]["ItemProcessor"]
    assert batch["StartAt"] == "Plan"
    assert batch["States"]["Plan"]["Resource"] == f"REF:{logical(template, 'FunctionsPlan')}"
    images = batch["States"]["Images"]
    assert images["ItemsPath"] == "$.stale" and images["MaxConcurrency"] == min(settings.batch_size, 40)
    regenerate = images["ItemProcessor"]["States"]["Regenerate"]
    assert regenerate["Resource"].endswith(":states:::states:startExecution.sync:2")
    pipeline = template["Outputs"]["StateMachineArn"]["Value"]["Ref"]
    assert regenerate["Parameters"] == {"Input.$": "$", "StateMachineArn": f"REF:{pipeline}"}
    retried = {e for r in regenerate["Retry"] for e in r["ErrorEquals"]}
    assert "States.TaskFailed" not in retried and "States.ALL" not in retried  # a failed pipeline run stays failed
    assert regenerate["Catch"] == [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "ImageFailed"}]
    # A batch with a failed image fails (the Map Run's tolerance counts it), with its tally as the cause.
    assert batch["States"]["ImagesFailed"] == {
        "Type": "Fail",
        "Error": "Backfill.ImagesFailed",
        "CausePath": "States.JsonToString($)",
    }


def test_the_backfill_may_list_the_uploads_and_start_the_pipeline_and_nothing_else(template):
    role = template["Resources"][logical(template, "BackfillStateMachine")]["Properties"]["RoleArn"]["Fn::GetAtt"][0]
    grants: set[tuple[str, str]] = set()
    for name, policy in template["Resources"].items():
        if policy["Type"] != "AWS::IAM::Policy" or not name.startswith("BackfillStateMachine"):
            continue
        assert policy["Properties"]["Roles"] == [{"Ref": role}]
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
            for action in actions:
                if not action.startswith(("xray:", "logs:")):  # delivery APIs without resource ARNs
                    grants |= {(action, json.dumps(resource, sort_keys=True)) for resource in resources}
    by_action: dict[str, set[str]] = {}
    for action, resource in grants:
        by_action.setdefault(action, set()).add(resource)
    uploads = logical(template, "StorageUploads")
    assert by_action["s3:ListBucket"] == {json.dumps({"Fn::GetAtt": [uploads, "Arn"]})}  # the bucket, nothing more
    pipeline = template["Outputs"]["StateMachineArn"]["Value"]["Ref"]
    backfill = logical(template, "BackfillStateMachine")
    assert by_action["states:StartExecution"] == {json.dumps({"Ref": pipeline}), json.dumps({"Ref": backfill})}
    plan = logical(template, "FunctionsPlan")
    assert all(plan in resource for resource in by_action["lambda:InvokeFunction"])
    for action in ("s3:PutObject", "s3:GetObject"):  # only the ResultWriter's prefix in the thumbnails bucket
        (resource,) = by_action[action]
        assert "_work/backfill/*" in resource and logical(template, "StorageThumbnails") in resource
    assert not [a for a in by_action if a.startswith("s3:") and a.endswith(("DeleteObject", "*"))]
    assert not [a for a in by_action if a.startswith("dynamodb:")]  # Plan reads records; the machine does not


def test_backfill_settings_are_checked(settings):
    assert settings == BackfillSettings(**project_context()["thumbnails"].get("backfill", {}))
    for bad in ({"max_concurrency": 0}, {"batch_size": 101}, {"tolerated_failure_percentage": 101}):
        with pytest.raises(ConfigError, match="backfill"):
            PipelineConfig.from_context({"backfill": bad})
    assert PipelineConfig.from_context({"backfill": {"batch_size": 3}}).backfill.batch_size == 3

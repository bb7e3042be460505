"""The Backfill state machine: thumbnails for objects already in the bucket, or remade after a settings change.

    Defaults ─► Options ─► Objects (Distributed Map over ListObjectsV2 of the uploads bucket, in batches)
                             └─ per batch (a Standard child execution):
                                Plan ─► Images (Map: Regenerate = StartExecution.sync:2 of the pipeline)
                                     ─► Tally ─► any image failed? ─► ImagesFailed (Fail) / BatchDone

Why each image runs as its own pipeline execution, started and awaited by the batch
(``StartExecution.sync:2``), instead of the Validate → Resize → Record chain inlined as the
item processor:

* **one path**: a backfilled image goes through the very state machine an upload does, so
  retries, rejections, the staged publish, the FAILED record and the Guarantees are the same;
* **inspectable and redrivable per image**: every image has an execution in the pipeline's
  list, and a failed one is replayed (``thumbs replay --failed``) like any upload;
* **the cost**: the pipeline's own transitions per image (about 7, the same as an upload)
  plus about 3 here. Inlining the chain in Express child executions would cost about a
  tenth of that, but an Express run keeps no history and cannot be redriven.
  docs/backfill.md has the figures; ``thumbs cost --backfill N`` computes them.

Plan keeps the work to what is stale (see ``functions/plan/handler.py``); a backfill item
carries the sequencer of the record it remakes, so an upload during a backfill wins.
"""

from __future__ import annotations

from typing import Any

import jsii
from aws_cdk import Duration
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from awsio import BACKFILL_IMAGES_FAILED, BACKFILL_RESULTS_PREFIX
from constructs import Construct

from .config import BackfillSettings
from .workflow import invoke

# Errors worth another StartExecution: throttling and the open-executions limit pass.
START_ERRORS = ("StepFunctions.SdkClientException", "StepFunctions.AWSStepFunctionsException",
                "StepFunctions.ExecutionLimitExceededException", "StepFunctions.ThrottlingException")  # fmt: skip


@jsii.implements(sfn.IItemReader)
class ListedObjects:
    """ListObjectsV2 of one bucket under the execution's ``prefix``.

    CDK's ``S3ObjectsItemReader`` takes only a fixed prefix; a backfill names its prefix when
    it starts (``thumbs backfill --prefix``), so this reader reads it from the input.
    """

    def __init__(self, bucket: s3.IBucket, prefix_path: str) -> None:
        self._bucket = bucket
        self._prefix_path = prefix_path

    @property
    def bucket(self) -> s3.IBucket:
        return self._bucket

    @property
    def resource(self) -> str:
        return "arn:aws:states:::s3:listObjectsV2"

    @property
    def bucket_name_path(self) -> str | None:
        return None

    @property
    def max_items(self) -> int | None:
        return None

    def provide_policy_statements(self) -> list[iam.PolicyStatement]:
        return [iam.PolicyStatement(actions=["s3:ListBucket"], resources=[self._bucket.bucket_arn])]

    def render(self, query_language: Any = None) -> Any:
        return {
            "Resource": self.resource,
            "Parameters": {"Bucket": self._bucket.bucket_name, "Prefix.$": self._prefix_path},
        }

    def validate_item_reader(self) -> list[str]:
        return []


class ResultsUnderPrefix(sfn.ResultWriterV2):
    """CDK's ResultWriter, with its grant narrowed from the whole bucket to the prefix it writes under."""

    def provide_policy_statements(self) -> list[iam.PolicyStatement]:
        assert self.bucket is not None and self.prefix is not None
        return [
            iam.PolicyStatement(
                actions=["s3:PutObject", "s3:GetObject", "s3:ListMultipartUploadParts", "s3:AbortMultipartUpload"],
                resources=[self.bucket.arn_for_objects(f"{self.prefix}/*")],
            )
        ]


class Backfill(Construct):
    """The second state machine of the stack; see the module docstring."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: BackfillSettings,
        uploads: s3.IBucket,
        thumbnails: s3.IBucket,
        pipeline: sfn.IStateMachine,
        plan: lambda_.IFunction,
        logs: sfn.LogOptions,
    ) -> None:
        super().__init__(scope, construct_id)
        defaults = sfn.Pass(
            self,
            "Defaults",
            comment="Start with {} for the whole bucket; prefix narrows it, force remakes up-to-date images too",
            result=sfn.Result.from_object({"prefix": "", "force": False}),
            result_path="$.defaults",
        )
        options = sfn.Pass(
            self,
            "Options",
            parameters={
                "options": sfn.JsonPath.json_merge(sfn.JsonPath.object_at("$.defaults"), sfn.JsonPath.object_at("$"))
            },
            output_path="$.options",
        )
        plan_task = invoke(
            self,
            "Plan",
            plan,
            {"Items": sfn.JsonPath.list_at("$.Items"), "BatchInput": sfn.JsonPath.object_at("$.BatchInput")},
        )
        regenerate = tasks.StepFunctionsStartExecution(
            self,
            "Regenerate",
            state_machine=pipeline,
            integration_pattern=sfn.IntegrationPattern.RUN_JOB,
            input=sfn.TaskInput.from_json_path_at("$"),
            result_selector={
                "key": sfn.JsonPath.string_at("$.Input.detail.object.key"),
                "outcome": "PROCESSED",
                "execution_arn": sfn.JsonPath.string_at("$.ExecutionArn"),
            },
        )
        regenerate.add_retry(
            errors=list(START_ERRORS),
            interval=Duration.seconds(2),
            backoff_rate=2.0,
            max_attempts=6,
            max_delay=Duration.seconds(60),
            jitter_strategy=sfn.JitterType.FULL,
        )
        # A pipeline execution that failed stays FAILED, recorded and redrivable; the batch notes it and goes on.
        image_failed = sfn.Pass(
            self,
            "ImageFailed",
            parameters={
                "key": sfn.JsonPath.string_at("$.detail.object.key"),
                "outcome": "FAILED",
                "error": sfn.JsonPath.string_at("$.error.Error"),
            },
        )
        regenerate.add_catch(image_failed, errors=["States.ALL"], result_path="$.error")
        images = sfn.Map(
            self,
            "Images",
            items_path="$.stale",
            max_concurrency=settings.images_at_once,
            result_path="$.images",
        ).item_processor(regenerate)
        tally = sfn.Pass(
            self,
            "Tally",
            comment="What the batch did, small enough for the Map Run's result files",
            parameters={
                "images": sfn.JsonPath.list_at("$.images"),
                "up_to_date": sfn.JsonPath.number_at("$.up_to_date"),
                "held": sfn.JsonPath.list_at("$.held"),
                "not_matched": sfn.JsonPath.number_at("$.not_matched"),
            },
        )
        # A batch with a failed image fails, so the Map Run counts it against ToleratedFailurePercentage;
        # its tally travels in the cause, where the ResultWriter's FAILED file keeps it.
        batch_failed = sfn.Fail(
            self,
            "ImagesFailed",
            error=BACKFILL_IMAGES_FAILED,
            cause_path=sfn.JsonPath.json_to_string(sfn.JsonPath.object_at("$")),
        )
        batch_done = sfn.Succeed(self, "BatchDone")
        check = sfn.Pass(
            self,
            "CheckImages",
            parameters={
                "value": sfn.JsonPath.array_contains(sfn.JsonPath.list_at("$.images[*].outcome"), "FAILED"),
            },
            result_path="$.any_failed",
        ).next(
            sfn.Choice(self, "AnyFailed")
            .when(sfn.Condition.boolean_equals("$.any_failed.value", True), batch_failed)
            .otherwise(batch_done)
        )
        # No filter expressions: a JSONPath that matches nothing is an error, so an empty batch skips the check.
        outcome = (
            sfn.Choice(self, "AnyImages").when(sfn.Condition.is_present("$.images[0]"), check).otherwise(batch_done)
        )
        objects = sfn.DistributedMap(
            self,
            "Objects",
            item_reader=ListedObjects(uploads, "$.prefix"),
            item_batcher=sfn.ItemBatcher(
                max_items_per_batch=settings.batch_size,
                batch_input={"force.$": "$.force", "backfill.$": "$$.Execution.Id"},  # rendered as written
            ),
            max_concurrency=settings.max_concurrency,
            tolerated_failure_percentage=settings.tolerated_failure_percentage,
            result_writer_v2=ResultsUnderPrefix(bucket=thumbnails, prefix=BACKFILL_RESULTS_PREFIX.rstrip("/")),
            map_execution_type=sfn.StateMachineType.STANDARD,
            label="Backfill",
        ).item_processor(plan_task.next(images).next(tally).next(outcome))
        self.state_machine = sfn.StateMachine(
            self,
            "StateMachine",
            definition_body=sfn.DefinitionBody.from_chainable(defaults.next(options).next(objects)),
            tracing_enabled=True,
            logs=logs,
        )

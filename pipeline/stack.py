"""The stack: wires storage, network, functions, the state machine and the two EventBridge rules.

Parts are built in their own modules; this file only connects them: who may read or write
what, which events start what, and what the stack tells the operator (its outputs).
"""

from __future__ import annotations

from typing import Any

from aws_cdk import Acknowledgment, Aws, CfnOutput, Duration, Fn, RemovalPolicies, RemovalPolicy, Stack, Validations
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import custom_resources as cr
from awsio import FAILED_STATUSES, INTERMEDIATE_PREFIX, OBJECT_CREATED, OBJECT_DELETED, STAGED_PREFIX, STATUS_CHANGE
from constructs import Construct

from .backfill import Backfill
from .checkov import answer_checkov_findings
from .config import LOG_RETENTION_NAMES, PipelineConfig
from .functions import METRICS_NAMESPACE, Functions
from .network import Network
from .observability import Observability
from .storage import Storage
from .workflow import build_definition


def key_filter(prefix: str, suffixes: tuple[str, ...]) -> list[dict[str, str]] | None:
    """EventBridge content filters for the object key: prefix, suffixes, or both as wildcards."""
    if prefix and suffixes:
        escape = lambda text: text.replace("\\", "\\\\").replace("*", "\\*")  # noqa: E731
        return [{"wildcard": f"{escape(prefix)}*{escape(suffix)}"} for suffix in suffixes]
    if prefix:
        return [{"prefix": prefix}]
    if suffixes:
        return [{"suffix": suffix} for suffix in suffixes]
    return None


class ThumbnailStack(Stack):
    def __init__(self, scope: Construct, construct_id: str, *, config: PipelineConfig, **kwargs: object) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.config = config
        retention = logs.RetentionDays[LOG_RETENTION_NAMES[config.log_retention_days]]
        self.storage = storage = Storage(self, "Storage", disposable=config.disposable)
        self.messages_key = self._messages_key()
        # Events EventBridge could not deliver, and failure notices Record could not write.
        self.dead_letters = sqs.Queue(
            self,
            "DeadLetters",
            encryption=sqs.QueueEncryption.KMS,
            encryption_master_key=self.messages_key,
            data_key_reuse=Duration.minutes(5),  # SQS's default, written down: fewer KMS calls in a storm
            enforce_ssl=True,
            retention_period=Duration.days(14),
        )
        network = Network(self, "Network", log_retention=retention)
        functions = Functions(
            self,
            "Functions",
            config=config,
            network=network,
            log_retention=retention,
            dead_letters=self.dead_letters,
            environment={
                "SOURCE_BUCKET": storage.source.bucket_name,
                "THUMBNAIL_BUCKET": storage.thumbnails.bucket_name,
                "TABLE_NAME": storage.table.table_name,
                "CACHE_CONTROL": config.cache_control,
                # X-Ray SDK subsegments per AWS call: off, Lambda's active tracing still records
                # every invocation (functions/awsio/tracing.py says what each gives and costs).
                "TRACE_AWS_CALLS": "true" if config.trace_aws_calls else "false",
            },
        )
        self._grant_least_privilege(storage, functions)
        # Lambda writes Record's dead letters with Record's own role, into a queue under our key.
        self.messages_key.grant(functions.record, "kms:GenerateDataKey", "kms:Decrypt")

        express = config.workflow_type == "EXPRESS"
        pipeline_logs = logs.LogGroup(self, "PipelineLogs", retention=retention)
        self.state_machine = sfn.StateMachine(
            self,
            "Pipeline",
            state_machine_type=sfn.StateMachineType.EXPRESS if express else sfn.StateMachineType.STANDARD,
            definition_body=sfn.DefinitionBody.from_chainable(
                build_definition(
                    self,
                    validate=functions.validate,
                    resize=functions.resize,
                    record=functions.record,
                    max_concurrency=config.map_max_concurrency,
                    catch_all=express,
                )
            ),
            tracing_enabled=True,
            # Express keeps no execution history: its logs, with every state's data, are the history.
            logs=sfn.LogOptions(
                destination=pipeline_logs,
                level=sfn.LogLevel.ALL if express else sfn.LogLevel.ERROR,
                include_execution_data=True,
            ),
        )

        backfill_logs = logs.LogGroup(self, "BackfillLogs", retention=retention)
        self.backfill = Backfill(
            self,
            "Backfill",
            settings=config.backfill,
            uploads=storage.source,
            thumbnails=storage.thumbnails,
            pipeline=self.state_machine,
            plan=functions.plan,
            logs=sfn.LogOptions(destination=backfill_logs, level=sfn.LogLevel.ERROR, include_execution_data=True),
        )

        # Both rules deliver alike: retried for a day, then kept in the dead-letter queue.
        delivery: dict[str, Any] = {
            "dead_letter_queue": self.dead_letters,
            "retry_attempts": 185,
            "max_event_age": Duration.hours(24),
        }
        upload_detail: dict[str, object] = {"bucket": {"name": [storage.source.bucket_name]}}
        if (keys := key_filter(config.key_prefix, config.key_suffixes)) is not None:
            upload_detail["object"] = {"key": keys}
        upload_rule = events.Rule(
            self,
            "OnUpload",
            description="S3 Object Created in the upload bucket starts the pipeline",
            event_pattern=events.EventPattern(source=["aws.s3"], detail_type=[OBJECT_CREATED], detail=upload_detail),
            targets=[targets.SfnStateMachine(self.state_machine, **delivery)],
        )
        # A deletion needs no workflow: Record alone marks it DELETED and removes the thumbnails.
        # Sending it straight there keeps the state machine free of a Choice every upload would
        # pay a transition for. Lambda retries a failed deletion twice, then dead-letters it.
        events.Rule(
            self,
            "OnDelete",
            description="S3 Object Deleted in the upload bucket: Record marks it DELETED and removes the thumbnails",
            event_pattern=events.EventPattern(source=["aws.s3"], detail_type=[OBJECT_DELETED], detail=upload_detail),
            targets=[targets.LambdaFunction(functions.record, **delivery)],
        )
        events.Rule(  # Standard only emits these; an Express run records FAILED itself
            self,
            "OnExecutionFailed",
            description="Records FAILED runs; recording them from a Catch would break RedriveExecution",
            event_pattern=events.EventPattern(
                source=["aws.states"],
                detail_type=[STATUS_CHANGE],
                detail={"status": list(FAILED_STATUSES), "stateMachineArn": [self.state_machine.state_machine_arn]},
            ),
            targets=[targets.LambdaFunction(functions.record, **delivery)],
        )

        self.observability = Observability(
            self,
            "Observability",
            namespace=METRICS_NAMESPACE,
            state_machine=self.state_machine,
            stages={"validate": functions.validate, "resize": functions.resize, "record": functions.record},
            dead_letters=self.dead_letters,
            upload_rule=upload_rule,
            settings=config.alarms,
            key=self.messages_key,
        )
        # What `thumbs --stack NAME` reads, and what an operator needs first: names and links.
        console = f"https://{Aws.REGION}.console.aws.amazon.com"
        for name, value, description in (
            ("UploadBucketName", storage.source.bucket_name, "Upload images here"),
            ("ThumbnailBucketName", storage.thumbnails.bucket_name, "Thumbnails land here"),
            ("RecordsTableName", storage.table.table_name, "One record per uploaded object"),
            ("StateMachineArn", self.state_machine.state_machine_arn, "The pipeline"),
            ("BackfillStateMachineArn", self.backfill.state_machine.state_machine_arn,
             "thumbs backfill starts it: thumbnails for objects already in the bucket"),
            ("WorkflowType", config.workflow_type, "STANDARD (redrivable) or EXPRESS"),
            ("PipelineLogGroupName", pipeline_logs.log_group_name, "The state machine's logs (EXPRESS: its history)"),
            ("RecordFunctionName", functions.record.function_name, "thumbs drain-dlq re-sends failure notices here"),
            ("DeadLetterQueueUrl", self.dead_letters.queue_url, "Events EventBridge could not deliver"),
            ("AlarmTopicArn", self.observability.topic.topic_arn, "Subscribe to be paged"),
            (
                "ExecutionsConsoleUrl",
                Fn.join("", [f"{console}/states/home?region={Aws.REGION}#/statemachines/view/",
                             self.state_machine.state_machine_arn]),
                "Executions in the Step Functions console",
            ),
            ("DashboardUrl", self.observability.dashboard_url, "The CloudWatch dashboard"),
        ):  # fmt: skip
            CfnOutput(self, name, value=value, description=description)
        self._acknowledge_nag_findings(storage, network, functions)
        self._acknowledge_backfill_findings(storage, functions)
        answer_checkov_findings(self, storage)
        if config.disposable:
            RemovalPolicies.of(self).destroy()  # log groups too, so nothing of the stack outlives it

    def _messages_key(self) -> kms.Key:
        """The key of the dead-letter queue and the alarm topic: what the services that write them may do.

        AWS-managed keys (alias/aws/sqs, alias/aws/sns) have fixed policies that EventBridge and
        CloudWatch are not in, so an encrypted dead-letter queue or alarm topic needs a key of our
        own. EventBridge encrypts undeliverable events into the queue and CloudWatch encrypts alarm
        messages to the topic, each only for this account. People and ``thumbs drain-dlq`` get
        decrypt through IAM (the key policy trusts the account, CDK's default).
        """
        key = kms.Key(
            self,
            "MessagesKey",
            description="Thumbnail pipeline: the dead-letter queue and the alarm topic",
            enable_key_rotation=True,
            removal_policy=RemovalPolicy.DESTROY,  # it encrypts only 14-day messages and transient pages
            pending_window=Duration.days(7),
        )
        for service in ("events.amazonaws.com", "cloudwatch.amazonaws.com"):
            key.add_to_resource_policy(
                iam.PolicyStatement(
                    actions=["kms:Decrypt", "kms:GenerateDataKey*"],
                    principals=[iam.ServicePrincipal(service)],
                    resources=["*"],  # in a key policy, "*" is this key
                    conditions={"StringEquals": {"aws:SourceAccount": Aws.ACCOUNT_ID}},
                )
            )
        return key

    def _grant_least_privilege(self, storage: Storage, functions: Functions) -> None:
        """Exact actions on exact resources; no wildcard actions anywhere."""
        read_source = iam.PolicyStatement(
            actions=["s3:GetObject", "s3:GetObjectVersion"],
            resources=[storage.source.arn_for_objects("*")],
        )
        functions.validate.add_to_role_policy(read_source)
        functions.resize.add_to_role_policy(read_source)
        # Resize only stages; Record publishes (copies) the set when the run succeeds.
        staged = storage.thumbnails.arn_for_objects(f"{STAGED_PREFIX}*")
        functions.resize.add_to_role_policy(iam.PolicyStatement(actions=["s3:PutObject"], resources=[staged]))
        # The intermediate: validate writes it, resize reads it, only under its prefix.
        intermediates = storage.thumbnails.arn_for_objects(f"{INTERMEDIATE_PREFIX}*")
        functions.validate.add_to_role_policy(iam.PolicyStatement(actions=["s3:PutObject"], resources=[intermediates]))
        functions.resize.add_to_role_policy(iam.PolicyStatement(actions=["s3:GetObject"], resources=[intermediates]))
        # GetItem: the previous record's thumbnails, to remove the sizes a new run no longer makes.
        functions.record.add_to_role_policy(
            iam.PolicyStatement(actions=["dynamodb:GetItem", "dynamodb:PutItem"], resources=[storage.table.table_arn])
        )
        functions.plan.add_to_role_policy(
            iam.PolicyStatement(actions=["dynamodb:BatchGetItem"], resources=[storage.table.table_arn])
        )
        # Publishing copies staged thumbnails into place; a deletion removes the recorded ones.
        # Both HEAD (s3:GetObject) a key that may hold a thumbnail, so only an older upload's is
        # replaced or removed.
        functions.record.add_to_role_policy(
            iam.PolicyStatement(
                actions=["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
                resources=[storage.thumbnails.arn_for_objects("*")],
            )
        )

    def _acknowledge_nag_findings(self, storage: Storage, network: Network, functions: Functions) -> None:
        """Every cdk-nag finding we accept, each with the reason; anything new fails synth."""
        ack = lambda construct, rule, reason: Validations.of(construct).acknowledge(  # noqa: E731
            Acknowledgment(id=rule, reason=reason)
        )
        ack(storage.access_logs, "AwsSolutions-S1", "This is the access-log bucket; logging it into itself would loop.")
        for fn in (functions.validate, functions.resize, functions.record, functions.plan):
            ack(
                fn.role,
                "AwsSolutions-IAM5[Resource::*]",
                "X-Ray's PutTraceSegments/PutTelemetryRecords take no resource ARN; this is the only form.",
            )
            ack(
                fn,
                "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole]",
                "AWS's managed VPC-access policy: ENI management for a VPC function needs ec2:*NetworkInterface on *.",
            )
            ack(
                fn,
                "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]",
                "AWS's managed logging policy for Lambda; it only writes the function's own log streams.",
            )
        for fn in (functions.validate, functions.resize):
            ack(
                fn,
                f"AwsSolutions-IAM5[Resource::<{self.get_logical_id(storage.source.node.default_child)}.Arn>/*]",
                "Any uploaded key may be an image to read; the bucket itself is exact.",
            )
        thumbnails_arn = self.get_logical_id(storage.thumbnails.node.default_child)
        ack(
            functions.record,
            f"AwsSolutions-IAM5[Resource::<{thumbnails_arn}.Arn>/*]",
            "Thumbnail keys derive from upload keys; the bucket itself is exact.",
        )
        for fn in (functions.validate, functions.resize):
            ack(
                fn,
                f"AwsSolutions-IAM5[Resource::<{thumbnails_arn}.Arn>/{INTERMEDIATE_PREFIX}*]",
                "Intermediates are named by a hash of the upload; the prefix is exact.",
            )
        ack(
            functions.resize,
            f"AwsSolutions-IAM5[Resource::<{thumbnails_arn}.Arn>/{STAGED_PREFIX}*]",
            "Staged thumbnails are named by a hash of the upload and the size; the prefix is exact.",
        )
        machine = self.state_machine
        ack(
            machine.role,
            "AwsSolutions-IAM5[Resource::*]",
            "X-Ray tracing and CloudWatch Logs delivery APIs take no resource ARN.",
        )
        for fn in (functions.validate, functions.resize, functions.record):
            ack(
                machine.role,
                f"AwsSolutions-IAM5[Resource::<{self.get_logical_id(fn.node.default_child)}.Arn>:*]",
                "CDK's grant to invoke the function's versions and aliases; the function itself is exact.",
            )
        ack(
            machine,
            "AwsSolutions-SF1",
            "ERROR-level logs with execution data: a Standard workflow keeps every event in its own history "
            "(console, GetExecutionHistory), so ALL would pay twice for the same events.",
        )
        ack(self.dead_letters, "AwsSolutions-SQS3", "This queue is the dead-letter queue of both rules.")
        for lookup in network.prefix_list_lookups:
            ack(
                lookup,
                "AwsSolutions-IAM5[Resource::*]",
                "ec2:DescribeManagedPrefixLists takes no resource ARN; it only reads AWS's public prefix lists.",
            )
        # CDK names the singleton provider of every AwsCustomResource "AWS" + its UUID.
        provider = self.node.try_find_child(f"AWS{cr.AwsCustomResource.PROVIDER_FUNCTION_UUID.replace('-', '')}")
        if provider is not None:
            ack(
                provider,
                "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]",
                "CDK's custom-resource provider (prefix-list lookups at deploy time) only writes its own logs.",
            )

    def _acknowledge_backfill_findings(self, storage: Storage, functions: Functions) -> None:
        """The Backfill's own findings, each with the reason."""
        ack = lambda construct, rule, reason: Validations.of(construct).acknowledge(  # noqa: E731
            Acknowledgment(id=rule, reason=reason)
        )
        machine = self.backfill.state_machine
        thumbnails_arn = self.get_logical_id(storage.thumbnails.node.default_child)
        plan_arn = self.get_logical_id(functions.plan.node.default_child)
        executions_of = lambda m, tail: (  # noqa: E731
            "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:states:<AWS::Region>:<AWS::AccountId>:execution:"
            f'{{"Fn::Select":[6,{{"Fn::Split":[":",{{"Ref":"{self.get_logical_id(m.node.default_child)}"}}]}}]}}{tail}]'
        )
        for rule, reason in (
            (f"AwsSolutions-IAM5[Resource::<{thumbnails_arn}.Arn>/_work/backfill/*]",
             "The ResultWriter names its files by the Map Run's id; the prefix is exact."),
            (f"AwsSolutions-IAM5[Resource::<{plan_arn}.Arn>:*]",
             "CDK's grant to invoke the function's versions and aliases; the function itself is exact."),
            (executions_of(self.state_machine, "*"),
             "StartExecution.sync:2 describes and stops the pipeline executions it started; their names are random."),
            ("AwsSolutions-IAM5[Resource::*]", "X-Ray tracing and CloudWatch Logs delivery APIs take no resource ARN."),
            (executions_of(machine, ":*"),
             "A Distributed Map describes and stops its own child executions, named by the Map Run."),
            (executions_of(machine, "/Backfill:*"),
             "A Distributed Map redrives its own Map Run's child executions (label Backfill)."),
            ("AwsSolutions-SF1",
             "ERROR-level logs with execution data, as for the pipeline: a Standard workflow keeps its history."),
        ):  # fmt: skip
            ack(machine if rule == "AwsSolutions-SF1" else machine.role, rule, reason)
            if "Backfill" in rule:  # CDK puts the Distributed Map's grants on itself in a policy of their own
                ack(machine.node.find_child("DistributedMapPolicy"), rule, reason)

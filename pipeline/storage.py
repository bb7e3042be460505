"""Where the data lives: the upload bucket, the thumbnail bucket, the access-log bucket and the table."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_s3 as s3
from awsio import BACKFILL_RESULTS_DAYS, BACKFILL_RESULTS_PREFIX, INTERMEDIATE_PREFIX, STAGED_DAYS, STAGED_PREFIX
from constructs import Construct


def _private_bucket(scope: Construct, name: str, *, disposable: bool, **kwargs: object) -> s3.Bucket:
    return s3.Bucket(
        scope,
        name,
        block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
        encryption=s3.BucketEncryption.S3_MANAGED,
        enforce_ssl=True,
        object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
        removal_policy=RemovalPolicy.DESTROY if disposable else RemovalPolicy.RETAIN,
        auto_delete_objects=disposable,  # a custom resource empties the bucket when the stack is deleted
        **kwargs,
    )


class Storage(Construct):
    """Buckets and table. Thumbnails go to their own bucket, which no rule watches: no recursion."""

    def __init__(self, scope: Construct, construct_id: str, *, disposable: bool = False) -> None:
        """``disposable``: deleting the stack deletes the data too (see ``PipelineConfig.disposable``)."""
        super().__init__(scope, construct_id)
        # Versioned: a log object deleted or overwritten by mistake stays recoverable. S3 writes each
        # log object once, so this keeps no second copy of anything in normal operation.
        self.access_logs = _private_bucket(self, "AccessLogs", disposable=disposable, versioned=True)
        self.source = _private_bucket(
            self,
            "Uploads",
            disposable=disposable,
            server_access_logs_bucket=self.access_logs,
            server_access_logs_prefix="uploads/",
        )
        # EventBridge notifications as a plain bucket property: event_bridge_enabled=True would
        # add a custom-resource Lambda (and its role) only to flip this one switch.
        cfn_source = self.source.node.default_child
        assert isinstance(cfn_source, s3.CfnBucket)
        cfn_source.add_property_override("NotificationConfiguration.EventBridgeConfiguration.EventBridgeEnabled", True)
        self.thumbnails = _private_bucket(
            self,
            "Thumbnails",
            disposable=disposable,
            server_access_logs_bucket=self.access_logs,
            server_access_logs_prefix="thumbnails/",
            # Validate's intermediates (the upload decoded once) only live for one pipeline run;
            # staged thumbnails outlive the 14-day redrive window (Record publishes them from there);
            # a backfill's result files are its report, kept for a month.
            lifecycle_rules=[
                s3.LifecycleRule(id="expire-intermediates", prefix=INTERMEDIATE_PREFIX, expiration=Duration.days(1)),
                s3.LifecycleRule(id="expire-staged", prefix=STAGED_PREFIX, expiration=Duration.days(STAGED_DAYS)),
                s3.LifecycleRule(
                    id="expire-backfill-results",
                    prefix=BACKFILL_RESULTS_PREFIX,
                    expiration=Duration.days(BACKFILL_RESULTS_DAYS),
                ),
            ],
        )
        self.table = dynamodb.Table(
            self,
            "Records",
            partition_key=dynamodb.Attribute(name="source_id", type=dynamodb.AttributeType.STRING),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            encryption=dynamodb.TableEncryption.AWS_MANAGED,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            removal_policy=RemovalPolicy.DESTROY if disposable else RemovalPolicy.RETAIN,
        )

"""What an operator watches: one dashboard, four alarms, and the SNS topic the alarms page.

Every alarm answers one question with one runbook entry (docs/operating.md, "Runbook"):

* ``FailedExecutions``: runs ended FAILED, TIMED_OUT or ABORTED (an outage, not a bad image:
  bad images are REJECTED and succeed). Inspect with ``thumbs history``, then ``thumbs replay``.
* ``DeadLetters``: EventBridge gave up delivering an upload (or a failure notice) after a day
  of retries. ``thumbs drain-dlq`` starts what they should have started.
* ``LambdaThrottles``: a stage hit its concurrency limit; the throttle retrier absorbs a burst
  (docs/bursts.md), so this pages with news, and ``FailedExecutions`` says if it was too much.
* ``EventAge``: uploads wait too long between S3 and the state machine (EventBridge is
  retrying a failing target, or the account is throttled).

Thresholds are config (``alarms`` in ``cdk.json``); missing data is "not breaching", so a
quiet pipeline never pages.
"""

from __future__ import annotations

from aws_cdk import Aws, Duration, Fn
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_events as events
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from .config import AlarmSettings

PERIOD = Duration.minutes(5)


class Observability(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        namespace: str,
        state_machine: sfn.StateMachine,
        stages: dict[str, lambda_.Function],
        dead_letters: sqs.Queue,
        upload_rule: events.Rule,
        settings: AlarmSettings,
        key: kms.IKey,
    ) -> None:
        super().__init__(scope, construct_id)
        # The stack's own key, not alias/aws/sns: that AWS-managed key's policy cannot be changed,
        # so CloudWatch could not encrypt an alarm's message and the page would never arrive.
        self.topic = sns.Topic(
            self, "Alarms", display_name="Thumbnail pipeline alarms", enforce_ssl=True, master_key=key
        )
        if settings.email:
            self.topic.add_subscription(subscriptions.EmailSubscription(settings.email))

        ended_badly = cw.MathExpression(
            expression="failed + timedout + aborted",
            using_metrics={
                "failed": state_machine.metric_failed(period=PERIOD),
                "timedout": state_machine.metric_timed_out(period=PERIOD),
                "aborted": state_machine.metric_aborted(period=PERIOD),
            },
            label="Executions failed, timed out or aborted",
            period=PERIOD,
        )
        throttles = cw.MathExpression(
            expression=" + ".join(f"t{i}" for i in range(len(stages))),
            using_metrics={f"t{i}": fn.metric_throttles(period=PERIOD) for i, fn in enumerate(stages.values())},
            label="Lambda throttles, all stages",
            period=PERIOD,
        )
        dlq_depth = dead_letters.metric_approximate_number_of_messages_visible(period=PERIOD, statistic="Maximum")
        event_age = cw.Metric(
            namespace="AWS/Events",
            metric_name="IngestionToInvocationStartLatency",
            dimensions_map={"RuleName": upload_rule.rule_name},
            statistic="Maximum",
            period=PERIOD,
            label="Upload event age at delivery (ms)",
        )
        self.alarms = {
            "FailedExecutions": (ended_badly, settings.failed_executions, "runs ended FAILED, TIMED_OUT or ABORTED"),
            "DeadLetters": (dlq_depth, 1, "events EventBridge could not deliver for a day"),
            "LambdaThrottles": (throttles, settings.lambda_throttles, "Lambda invocations throttled"),
            "EventAge": (event_age, settings.event_age_seconds * 1000, "upload events waited too long"),
        }
        for name, (metric, threshold, what) in list(self.alarms.items()):
            alarm = cw.Alarm(
                self,
                name,
                alarm_description=f"Thumbnail pipeline: {what}. See the runbook in docs/operating.md, '{name}'.",
                metric=metric,
                threshold=threshold,
                evaluation_periods=1,
                comparison_operator=cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
            )
            alarm.add_alarm_action(cw_actions.SnsAction(self.topic))
            alarm.add_ok_action(cw_actions.SnsAction(self.topic))

        def records(status: str) -> cw.Metric:
            return cw.Metric(
                namespace=namespace,
                metric_name="Records",
                dimensions_map={"service": "thumbnails-record", "status": status},
                statistic="Sum",
                period=PERIOD,
                label=status.lower(),
            )

        self.dashboard = cw.Dashboard(self, "Dashboard", default_interval=Duration.hours(24))
        self.dashboard.add_widgets(
            cw.GraphWidget(
                title="Executions",
                left=[
                    state_machine.metric_started(period=PERIOD, label="started"),
                    state_machine.metric_succeeded(period=PERIOD, label="succeeded"),
                    ended_badly,
                ],
                width=12,
            ),
            cw.GraphWidget(
                title="Outcomes recorded",
                left=[records(status) for status in ("SUCCEEDED", "REJECTED", "FAILED", "DELETED")],
                width=12,
            ),
        )
        self.dashboard.add_widgets(
            cw.GraphWidget(
                title="Duration per stage, p50 (ms)",
                left=[fn.metric_duration(statistic="p50", period=PERIOD, label=name) for name, fn in stages.items()],
                width=12,
            ),
            cw.GraphWidget(
                title="Duration per stage, p99 (ms)",
                left=[fn.metric_duration(statistic="p99", period=PERIOD, label=name) for name, fn in stages.items()],
                width=12,
            ),
        )
        self.dashboard.add_widgets(
            cw.GraphWidget(
                title="Lambda errors and throttles",
                left=[fn.metric_errors(period=PERIOD, label=f"{name} errors") for name, fn in stages.items()],
                right=[fn.metric_throttles(period=PERIOD, label=f"{name} throttles") for name, fn in stages.items()],
                width=12,
            ),
            cw.GraphWidget(
                title="Dead-letter queue depth and event age",
                left=[dlq_depth],
                right=[event_age],
                width=12,
            ),
        )
        self.dashboard.add_widgets(
            cw.GraphWidget(
                title="Rejections by reason",
                left=[
                    cw.MathExpression(
                        expression=f"SEARCH('{{{namespace},reason,service}} MetricName=\"Rejections\"', 'Sum', 300)",
                        label="",
                        period=PERIOD,
                    )
                ],
                width=12,
            ),
            cw.GraphWidget(
                title="Bytes in and out",
                left=[
                    cw.Metric(
                        namespace=namespace,
                        metric_name=metric,
                        dimensions_map={"service": f"thumbnails-{stage}"},
                        statistic="Sum",
                        period=PERIOD,
                        label=label,
                    )
                    for metric, stage, label in (("BytesIn", "validate", "in"), ("BytesOut", "resize", "out"))
                ],
                width=12,
            ),
        )
        region = Aws.REGION
        self.dashboard_url = Fn.join(
            "",
            [
                f"https://{region}.console.aws.amazon.com/cloudwatch/home?region={region}#dashboards/dashboard/",
                self.dashboard.dashboard_name,
            ],
        )

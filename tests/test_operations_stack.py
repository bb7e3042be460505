"""The operator's side of the template: alarms and where they page, the dashboard, outputs, EXPRESS."""

from __future__ import annotations

import json
from typing import Any

import pytest
from imaging import ConfigError

from thumbs.template import resources_of_type


def alarms(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found = resources_of_type(template, "AWS::CloudWatch::Alarm").values()
    return {a["Properties"]["AlarmDescription"].rsplit("'", 2)[-2]: a["Properties"] for a in found}


def metric_names(alarm: dict[str, Any]) -> set[str]:
    if "MetricName" in alarm:
        return {alarm["MetricName"]}
    return {m["MetricStat"]["Metric"]["MetricName"] for m in alarm["Metrics"] if "MetricStat" in m}


def test_four_alarms_watch_failures_dead_letters_throttles_and_event_age(template):
    found = alarms(template)
    assert set(found) == {"FailedExecutions", "DeadLetters", "LambdaThrottles", "EventAge"}
    assert metric_names(found["FailedExecutions"]) == {"ExecutionsFailed", "ExecutionsTimedOut", "ExecutionsAborted"}
    assert metric_names(found["DeadLetters"]) == {"ApproximateNumberOfMessagesVisible"}
    throttles = found["LambdaThrottles"]["Metrics"]
    assert len([m for m in throttles if "MetricStat" in m]) == 3  # validate, resize and record
    assert metric_names(found["EventAge"]) == {"IngestionToInvocationStartLatency"}
    assert found["EventAge"]["Threshold"] == 300_000  # 300 s, from cdk.json, in the metric's ms
    for alarm in found.values():
        assert alarm["TreatMissingData"] == "notBreaching"  # a quiet pipeline never pages
        assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"


def test_every_alarm_pages_the_encrypted_tls_only_topic(template):
    (topic_id,) = resources_of_type(template, "AWS::SNS::Topic")
    topic = template["Resources"][topic_id]["Properties"]
    assert topic["KmsMasterKeyId"]
    for alarm in alarms(template).values():
        assert alarm["AlarmActions"] == [{"Ref": topic_id}] and alarm["OKActions"] == [{"Ref": topic_id}]
    (policy,) = resources_of_type(template, "AWS::SNS::TopicPolicy").values()
    denies = [s for s in policy["Properties"]["PolicyDocument"]["Statement"] if s["Effect"] == "Deny"]
    assert denies and denies[0]["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert not resources_of_type(template, "AWS::SNS::Subscription")  # no e-mail configured by default


def test_an_alarm_email_subscribes_and_bad_thresholds_fail_synth():
    from aws_cdk.assertions import Template

    from pipeline.app import build_app

    alarms_config = {"alarms": {"email": "ops@example.com"}}
    _, stack = build_app(context={"aws:cdk:bundling-stacks": [], "thumbnails": alarms_config})
    (subscription,) = resources_of_type(Template.from_stack(stack).to_json(), "AWS::SNS::Subscription").values()
    assert subscription["Properties"] | {"TopicArn": None} == {
        "Protocol": "email", "Endpoint": "ops@example.com", "TopicArn": None
    }  # fmt: skip
    for bad, name in (({"email": "nobody"}, "alarms.email"), ({"failed_executions": 0}, "alarms.failed_executions")):
        with pytest.raises(ConfigError, match=name):
            build_app(context={"aws:cdk:bundling-stacks": [], "thumbnails": {"alarms": bad}})


def dashboard_body(template: dict[str, Any]) -> str:
    (dashboard,) = resources_of_type(template, "AWS::CloudWatch::Dashboard").values()
    body = dashboard["Properties"]["DashboardBody"]
    return json.dumps(body)  # an Fn::Join of literal JSON and resource references


def test_dashboard_shows_executions_outcomes_durations_errors_and_the_dlq(template):
    body = dashboard_body(template)
    for expected in (
        "ExecutionsStarted", "ExecutionsSucceeded", "ExecutionsFailed",  # executions
        "Records", "REJECTED", "FAILED", "Rejections",  # outcomes, rejections by reason
        "p50", "p99", "Duration",  # per stage
        "Errors", "Throttles",  # Lambda
        "ApproximateNumberOfMessagesVisible", "IngestionToInvocationStartLatency",  # DLQ, event age
        "BytesIn", "BytesOut",
    ):  # fmt: skip
        assert expected in body, expected
    assert body.count("thumbnails-record") >= 4


def test_outputs_name_everything_thumbs_and_an_operator_need(template):
    outputs = template["Outputs"]
    assert {
        "UploadBucketName", "ThumbnailBucketName", "RecordsTableName", "StateMachineArn", "WorkflowType",
        "PipelineLogGroupName",
        "RecordFunctionName", "DeadLetterQueueUrl", "AlarmTopicArn", "ExecutionsConsoleUrl", "DashboardUrl",
    } <= set(outputs)  # fmt: skip
    assert outputs["WorkflowType"]["Value"] == "STANDARD"
    console = json.dumps(outputs["ExecutionsConsoleUrl"]["Value"])
    assert "console.aws.amazon.com/states/home" in console and "AWS::Region" in console  # no account lookups
    assert all(o.get("Description") for o in outputs.values())


@pytest.fixture(scope="module")
def express_template() -> dict[str, Any]:
    from aws_cdk.assertions import Template

    from pipeline.app import build_app

    app, stack = build_app(context={"aws:cdk:bundling-stacks": [], "thumbnails": {"workflow_type": "EXPRESS"}})
    app.synth()  # cdk-nag must accept the EXPRESS variant too
    return Template.from_stack(stack).to_json()


def test_express_logs_every_state_with_its_data(express_template):
    pipeline = express_template["Outputs"]["StateMachineArn"]["Value"]["Ref"]
    props = express_template["Resources"][pipeline]["Properties"]
    assert props["StateMachineType"] == "EXPRESS"
    assert props["LoggingConfiguration"]["Level"] == "ALL"
    assert props["LoggingConfiguration"]["IncludeExecutionData"] is True
    assert express_template["Outputs"]["WorkflowType"]["Value"] == "EXPRESS"


def test_express_records_failures_itself_and_standard_does_not(express_template, definition):
    from thumbs.template import state_machine_definition

    express = state_machine_definition(express_template, lambda ref: "arn:aws:lambda:us-east-1:1:function:x")
    states = express["States"]
    assert states["RecordFailed"]["Next"] == "Failed" and states["Failed"]["Type"] == "Fail"
    assert states["RecordFailed"]["Parameters"]["status"] == "FAILED"
    for name in ("Validate", "Thumbnails", "Record", "RecordRejected"):
        catchers = states[name].get("Catch", [])
        assert catchers[-1]["ErrorEquals"] == ["States.ALL"] and catchers[-1]["Next"] == "RecordFailed", name
        assert all("States.ALL" not in c["ErrorEquals"] for c in catchers[:-1])  # rejections are matched first
    for state in definition["States"].values():  # Standard: redrive needs the failure uncaught
        assert all("States.ALL" not in c["ErrorEquals"] for c in state.get("Catch", []))

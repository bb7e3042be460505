"""``thumbs --stack``: the deployed-stack commands, run with no AWS account.

The local stack registers its outputs as a CloudFormation stack in moto, so these tests run
the very code path an operator runs against AWS: plain boto3, pointed at the local endpoint
by ``AWS_ENDPOINT_URL``. moto has no RedriveExecution: that path is tested with botocore's
Stubber against the API's documented request and response shapes.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import boto3
import pytest
from botocore.stub import ANY, Stubber

from tests.images import encode, photo
from thumbs import aws
from thumbs.cli import main
from thumbs.cost import count_transitions
from thumbs.local.lambda_runtime import FaultSwitch
from thumbs.local.stack import LocalStack
from thumbs.local.state import StateFolder
from thumbs.template import load_template

STACK = "ThumbnailPipeline"


@pytest.fixture(scope="module")
def deployed(tmp_path_factory):
    """A local stack whose validate fails five times in a row: one upload ends FAILED, past its retries."""
    state = StateFolder(tmp_path_factory.mktemp("state"))
    with LocalStack(
        load_template(state.cache_dir), state.root, faults=FaultSwitch.parse(["validate=transient:5"])
    ) as stack:
        stack.deploy()
        with pytest.MonkeyPatch.context() as env:
            env.setenv("AWS_ENDPOINT_URL", stack.endpoint)
            env.setenv("AWS_ACCESS_KEY_ID", "local")
            env.setenv("AWS_SECRET_ACCESS_KEY", "local")
            env.setenv("AWS_DEFAULT_REGION", "us-east-1")
            stack.client("s3").put_object(Bucket=stack.upload_bucket, Key="a photo.jpg", Body=encode(photo(), "JPEG"))
            assert stack.wait_for_executions(1, timeout=120)
            yield stack


def thumbs(capsys, *args: str) -> tuple[int, str]:
    code = main(["--stack", STACK, "--region", "us-east-1", *args])
    return code, capsys.readouterr().out


def record_of(stack, key: str) -> dict:
    table = boto3.resource("dynamodb").Table(stack.table_name)
    return table.get_item(Key={"source_id": f"s3://{stack.upload_bucket}/{key}"})["Item"]


def test_the_stack_is_found_by_its_outputs(deployed):
    found = aws.DeployedStack.find(STACK, boto3.Session(region_name="us-east-1"))
    assert found.state_machine_arn == deployed.state_machine_arn
    assert found.outputs["RecordsTableName"] == deployed.table_name
    with pytest.raises(LookupError, match="no CloudFormation stack 'Nope'"):
        aws.DeployedStack.find("Nope", boto3.Session(region_name="us-east-1"))


def test_executions_history_and_replay_of_a_failed_run(deployed, capsys):
    assert record_of(deployed, "a photo.jpg")["status"] == "FAILED"
    code, listing = thumbs(capsys, "executions", "--status", "FAILED", "--since", "1h")
    assert code == 0 and "FAILED" in listing and "a photo.jpg" in listing and "TransientError" in listing
    (failed,) = deployed.ended
    name = failed["executionArn"].rsplit(":", 1)[-1]
    code, history = thumbs(capsys, "history", name)
    assert code == 0 and history.count("LambdaFunctionFailed") == 5 and "Execution failed: TransientError" in history
    assert "console.aws.amazon.com/states/home?region=us-east-1#/v2/executions/details/" in history

    # The local stack redrives as AWS does: the same execution resumes at the state that failed.
    code, replayed = thumbs(capsys, "replay", "--failed", "--since", "1h", "--rate", "20")
    assert (
        code == 0
        and "1 redriven, 0 restarted as new executions, 0 deletion(s) sent to Record, 0 skipped, 0 error(s)" in replayed
    )
    assert deployed.wait_for_executions(2, timeout=120)
    record = record_of(deployed, "a photo.jpg")
    assert record["status"] == "SUCCEEDED" and record["execution_arn"] == failed["executionArn"]
    assert "replay_of" not in record

    # the transitions `thumbs cost` counts are the states a run enters: those that completed before
    # the redrive, and those entered after it
    sfn = boto3.client("stepfunctions")
    events = sfn.get_execution_history(executionArn=failed["executionArn"], maxResults=1000)["events"]
    (redrive,) = [i for i, e in enumerate(events) if e["type"] == "ExecutionRedriven"]
    before = [e for e in events[:redrive] if e["type"].endswith("StateExited")]
    after = [e for e in events[redrive:] if e["type"].endswith("StateEntered")]
    definition = json.loads(sfn.describe_state_machine(stateMachineArn=deployed.state_machine_arn)["definition"])
    assert len(before) + len(after) == count_transitions(definition, 3) == 6

    # A redriven run that succeeded is not replayed again.
    code, again = thumbs(capsys, "replay", name)
    assert (
        code == 0
        and "0 redriven, 0 restarted as new executions, 0 deletion(s) sent to Record, 1 skipped" in again
        and "it succeeded" in again
    )


def test_drain_dlq_starts_lost_uploads_records_lost_failures_and_keeps_the_rest(deployed, capsys):
    s3, sqs = boto3.client("s3"), boto3.client("sqs")
    queue = aws.DeployedStack.find(STACK, boto3.Session(region_name="us-east-1")).outputs["DeadLetterQueueUrl"]
    s3.put_object(Bucket=deployed.upload_bucket, Key="lost.jpg", Body=encode(photo(), "JPEG"))
    before = len(deployed.ended)
    deployed.wait_for_executions(before + 1, timeout=120)  # this one ran; the DLQ copy must not run it again ...
    head = s3.head_object(Bucket=deployed.upload_bucket, Key="lost.jpg")
    lost = {
        "version": "0", "id": str(uuid.uuid4()), "detail-type": "Object Created", "source": "aws.s3",
        "account": "123456789012", "time": datetime.now(UTC).isoformat(), "region": "us-east-1",
        "resources": [f"arn:aws:s3:::{deployed.upload_bucket}"],
        "detail": {
            "version": "0", "bucket": {"name": deployed.upload_bucket},
            "object": {"key": "lost.jpg", "size": head["ContentLength"], "etag": head["ETag"].strip('"'),
                       "sequencer": "00FFFFFFFFFFFFFFFF"},
            "request-id": "r", "requester": "123456789012", "reason": "PutObject",
        },
    }  # fmt: skip
    failure = {
        "detail-type": "Step Functions Execution Status Change", "source": "aws.states",
        "detail": {"executionArn": "arn:aws:states:us-east-1:123456789012:execution:x:lost", "status": "TIMED_OUT",
                   "input": json.dumps({**lost, "detail": {**lost["detail"], "object": {
                       **lost["detail"]["object"], "key": "timed out.jpg"}}})},
    }  # fmt: skip
    s3.put_object(Bucket=deployed.upload_bucket, Key="gone.jpg", Body=encode(photo(), "JPEG"))
    deployed.wait_for_executions(before + 2, timeout=120)
    gone = {**lost, "id": str(uuid.uuid4()), "detail-type": "Object Deleted", "detail": {
        **lost["detail"], "object": {"key": "gone.jpg", "sequencer": "F" * 24}, "reason": "DeleteObject",
    }}  # fmt: skip
    for body in (json.dumps(lost), json.dumps(failure), json.dumps(gone), "not json"):
        sqs.send_message(QueueUrl=queue, MessageBody=body)

    code, dry = thumbs(capsys, "drain-dlq", "--dry-run")
    assert code == 0 and "Dry run: 0 execution(s) started" in dry and "4 message(s) left" in dry
    code, drained = thumbs(capsys, "drain-dlq")
    assert code == 1  # the message that is not ours stays, and says so
    assert (
        "1 execution(s) started, 0 already started before, 1 failure notice(s) recorded, 1 deletion(s) recorded, "
        "1 message(s) left" in drained
    )
    assert record_of(deployed, "gone.jpg")["status"] == "DELETED"  # Record itself, as the OnDelete rule sends it
    assert deployed.wait_for_executions(before + 3, timeout=120)
    assert record_of(deployed, "lost.jpg")["status"] == "SUCCEEDED"
    timed_out = record_of(deployed, "timed out.jpg")
    assert timed_out["status"] == "FAILED" and timed_out["execution_status"] == "TIMED_OUT"

    sqs.send_message(QueueUrl=queue, MessageBody=json.dumps(lost))  # delivered to the DLQ twice
    code, twice = thumbs(capsys, "drain-dlq")
    assert "0 execution(s) started, 1 already started before" in twice


# --- RedriveExecution, which moto does not implement: botocore's Stubber ---------------------------

ARN = "arn:aws:states:us-east-1:123456789012:execution:Pipeline:run-1"


def described(status: str, **extra) -> dict:
    return {
        "executionArn": ARN, "stateMachineArn": ARN.replace(":execution:", ":stateMachine:").rsplit(":", 1)[0],
        "name": "run-1", "status": status, "startDate": datetime(2026, 11, 29, tzinfo=UTC),
        "input": json.dumps({"detail-type": "Object Created", "detail": {}}), **extra,
    }  # fmt: skip


def stubbed() -> tuple[aws.DeployedStack, object, Stubber]:
    session = boto3.Session(region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    stack = aws.DeployedStack(STACK, {"StateMachineArn": described("FAILED")["stateMachineArn"]}, session)
    sfn = session.client("stepfunctions", endpoint_url="https://states.us-east-1.amazonaws.com")
    return stack, sfn, Stubber(sfn)


def test_a_redrivable_execution_is_redriven_and_keeps_its_arn():
    stack, sfn, stub = stubbed()
    stub.add_response("describe_execution", described("FAILED", redriveStatus="REDRIVABLE"), {"executionArn": ARN})
    stub.add_response(
        "redrive_execution",
        {"redriveDate": datetime(2026, 11, 29, 1, tzinfo=UTC)},
        {"executionArn": ARN, "clientToken": ANY},
    )
    with stub:
        outcome = aws.replay(stack, sfn, ARN)
    stub.assert_no_pending_responses()
    assert outcome == aws.Replayed(ARN, "redriven", ARN, "resumes at the failed state")


def test_an_execution_past_redrive_starts_anew_linked_to_the_old_one():
    stack, sfn, stub = stubbed()
    reason = "Execution is SUCCEEDED and cannot be redriven"  # e.g. older than 14 days, or redriven 1,000 times
    stub.add_response(
        "describe_execution",
        described("FAILED", redriveStatus="NOT_REDRIVABLE", redriveStatusReason=reason),
        {"executionArn": ARN},
    )
    new_arn = ARN + "-replay-x"
    expected_input = json.dumps({"detail-type": "Object Created", "detail": {}, "replay_of": ARN})
    stub.add_response(
        "start_execution",
        {"executionArn": new_arn, "startDate": datetime(2026, 11, 29, tzinfo=UTC)},
        {"stateMachineArn": stack.state_machine_arn, "name": ANY, "input": expected_input},
    )
    with stub:
        outcome = aws.replay(stack, sfn, ARN)
    assert outcome.action == "restarted" and outcome.arn == new_arn and outcome.reason == reason


def test_running_and_succeeded_executions_are_not_replayed():
    stack, sfn, stub = stubbed()
    stub.add_response("describe_execution", described("RUNNING"), {"executionArn": ARN})
    stub.add_response("describe_execution", described("SUCCEEDED"), {"executionArn": ARN})
    with stub:
        assert aws.replay(stack, sfn, ARN).action == "skipped"
        assert aws.replay(stack, sfn, ARN).action == "skipped"


def test_bulk_replays_are_paced():
    now, slept = [100.0], []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    started = [now[0] for _ in aws.paced(list(range(5)), per_second=2, sleep=sleep, clock=lambda: now[0])]
    assert started == [100.0, 100.5, 101.0, 101.5, 102.0] and len(slept) == 4
    with pytest.raises(ValueError, match="--rate"):
        list(aws.paced([1], per_second=0))


@pytest.mark.parametrize(("text", "hours"), [("30m", 0.5), ("24h", 24), ("7d", 168)])
def test_since_reads_minutes_hours_and_days(text, hours):
    assert aws.parse_since(text).total_seconds() == hours * 3600


@pytest.mark.parametrize("bad", ["24", "h", "0h", "-1d", "3w"])
def test_a_bad_since_is_refused(bad):
    with pytest.raises(ValueError, match="--since"):
        aws.parse_since(bad)


def test_no_credentials_is_a_clear_error_not_a_traceback(monkeypatch, tmp_path, capsys):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens: never reaches AWS
    assert main(["--stack", STACK, "--region", "us-east-1", "executions"]) == 2
    assert "thumbs: AWS said:" in capsys.readouterr().err


def test_an_express_stack_replays_its_failures_from_the_records(deployed, capsys):
    """EXPRESS keeps no listable history: the FAILED record rebuilds the event, and a new run succeeds."""
    from awsio import parse_object_created

    found = aws.DeployedStack.find(STACK, boto3.Session(region_name="us-east-1"))
    express = aws.DeployedStack(STACK, {**found.outputs, "WorkflowType": "EXPRESS"}, found.session)
    s3 = boto3.client("s3")
    s3.put_object(Bucket=deployed.upload_bucket, Key="express/failed.jpg", Body=encode(photo(), "JPEG"))
    before = len(deployed.ended)
    assert deployed.wait_for_executions(before + 1, timeout=120)
    item = record_of(deployed, "express/failed.jpg")
    # as an Express run's catch-all would have written it
    failed = {**{k: v for k, v in item.items()}, "status": "FAILED", "execution_arn": "arn:aws:states:express:lost"}
    boto3.resource("dynamodb").Table(deployed.table_name).put_item(Item=failed)

    (listed,) = [r for r in aws.failed_records(express, boto3.client("dynamodb"), aws.parse_since("1h"))
                 if r["key"] == "express/failed.jpg"]  # fmt: skip
    event = aws.event_from_record(listed, "us-east-1")
    source = parse_object_created(event, deployed.upload_bucket)
    assert (source.key, source.etag, source.sequencer, source.size) == (
        item["key"], item["etag"], item["sequencer"], int(item["size"])
    )  # fmt: skip
    outcome = aws.replay_record(express, boto3.client("stepfunctions"), listed)
    assert outcome.action == "restarted" and outcome.old_arn == "arn:aws:states:express:lost"
    assert deployed.wait_for_executions(before + 2, timeout=120)
    replayed = record_of(deployed, "express/failed.jpg")
    assert replayed["status"] == "SUCCEEDED" and replayed["replay_of"] == "arn:aws:states:express:lost"


def test_a_deletion_record_replays_as_a_deletion_sent_to_record_not_to_the_state_machine(deployed):
    found = aws.DeployedStack.find(STACK, boto3.Session(region_name="us-east-1"))
    express = aws.DeployedStack(STACK, {**found.outputs, "WorkflowType": "EXPRESS"}, found.session)
    boto3.client("s3").put_object(Bucket=deployed.upload_bucket, Key="express/gone.jpg", Body=encode(photo(), "JPEG"))
    before = len(deployed.ended)
    assert deployed.wait_for_executions(before + 1, timeout=120)
    item = record_of(deployed, "express/gone.jpg")
    # an EXPRESS catch-all's FAILED record of a deletion: no etag, a newer sequencer
    failed = {**item, "status": "FAILED", "etag": "", "sequencer": "F" * 24, "execution_arn": "arn:x:gone"}
    event = aws.event_from_record(failed, "us-east-1")
    assert event["detail-type"] == "Object Deleted" and "etag" not in event["detail"]["object"]
    outcome = aws.replay_record(express, boto3.client("stepfunctions"), failed)
    assert outcome.action == "recorded" and outcome.arn == "arn:x:gone"
    assert record_of(deployed, "express/gone.jpg")["status"] == "DELETED"
    assert len(deployed.ended) == before + 1  # no execution was started for it


def test_history_commands_on_an_express_stack_point_to_its_logs(deployed, capsys):
    found = aws.DeployedStack.find(STACK, boto3.Session(region_name="us-east-1"))
    outputs = {**found.outputs, "WorkflowType": "EXPRESS"}
    body = {"Resources": {}, "Outputs": {k: {"Value": v} for k, v in outputs.items()}}
    boto3.client("cloudformation").create_stack(StackName="ExpressCopy", TemplateBody=json.dumps(body))
    for command in (["executions"], ["history", "any"], ["replay", "any"]):
        assert main(["--stack", "ExpressCopy", "--region", "us-east-1", *command]) == 2
        printed = capsys.readouterr().out
        assert "EXPRESS" in printed and outputs["PipelineLogGroupName"] in printed and "replay --failed" in printed


def test_a_run_whose_record_is_already_finished_is_skipped_not_rerun():
    from awsio import sequencer_order

    stack, sfn, stub = stubbed()
    event = {
        "detail-type": "Object Created",
        "detail": {"bucket": {"name": "up"}, "object": {"key": "a.jpg", "sequencer": "0B"}},
    }
    for _ in range(2):
        stub.add_response(
            "describe_execution",
            described("FAILED", redriveStatus="REDRIVABLE", input=json.dumps(event)),
            {"executionArn": ARN},
        )
    stub.add_response(
        "redrive_execution",
        {"redriveDate": datetime(2026, 11, 29, tzinfo=UTC)},
        {"executionArn": ARN, "clientToken": ANY},
    )
    newer = {"status": "SUCCEEDED", "sequencer_order": sequencer_order("0C"), "execution_arn": "arn:x:later"}
    older = {"status": "SUCCEEDED", "sequencer_order": sequencer_order("0A"), "execution_arn": "arn:x:earlier"}
    asked: list[str] = []
    with stub:
        skipped = aws.replay(stack, sfn, ARN, lambda source_id: asked.append(source_id) or newer)
        redriven = aws.replay(stack, sfn, ARN, lambda source_id: older)  # an older upload's record: not this one
    assert asked == ["s3://up/a.jpg"]
    assert skipped.action == "skipped" and "already SUCCEEDED (by later)" in skipped.reason
    assert redriven.action == "redriven"


def test_backfill_on_a_deployed_stack_processes_what_is_stale_and_then_nothing(deployed, capsys):
    s3 = boto3.client("s3")
    s3.put_bucket_notification_configuration(Bucket=deployed.upload_bucket, NotificationConfiguration={})
    for key in ("bf/one.jpg", "bf/two.jpg"):  # in the bucket before the pipeline: no event, no record
        s3.put_object(Bucket=deployed.upload_bucket, Key=key, Body=encode(photo(), "JPEG"))
    s3.put_object(Bucket=deployed.upload_bucket, Key="bf/notes.jpg", Body=b"not an image")
    s3.put_bucket_notification_configuration(
        Bucket=deployed.upload_bucket, NotificationConfiguration={"EventBridgeConfiguration": {}}
    )
    code, printed = thumbs(capsys, "backfill", "--prefix", "bf/")
    assert code == 0, printed
    assert "3 processed, 0 up to date, 0 held, 0 not matched, 0 failed" in printed
    assert record_of(deployed, "bf/one.jpg")["status"] == "SUCCEEDED"
    assert record_of(deployed, "bf/notes.jpg")["status"] == "REJECTED"  # a handled outcome, not a failure
    code, printed = thumbs(capsys, "backfill", "--prefix", "bf/")
    assert code == 0 and "0 processed, 3 up to date" in printed


def test_a_failed_deletion_run_past_redrive_is_sent_to_record_not_started_anew(deployed):
    """A deletion's run from before deletions had their own rule: the pipeline now takes only uploads."""
    s3 = boto3.client("s3")
    s3.put_object(Bucket=deployed.upload_bucket, Key="old-run/gone.jpg", Body=encode(photo(), "JPEG"))
    before = len(deployed.ended)
    assert deployed.wait_for_executions(before + 1, timeout=120)
    item = record_of(deployed, "old-run/gone.jpg")
    deletion = aws.event_from_record({**item, "etag": "", "sequencer": "F" * 24}, "us-east-1")
    stack = aws.DeployedStack.find(STACK, boto3.Session(region_name="us-east-1"))
    _, sfn, stub = stubbed()  # Step Functions' side from the stub: an old run, past redrive
    stub.add_response(
        "describe_execution",
        described("FAILED", input=json.dumps(deletion), redriveStatus="NOT_REDRIVABLE"),
        {"executionArn": ARN},
    )
    with stub:  # a start_execution would find no stubbed response and fail here
        outcome = aws.replay(stack, sfn, ARN)
    assert outcome.action == "recorded" and outcome.arn == ARN
    record = record_of(deployed, "old-run/gone.jpg")
    assert record["status"] == "DELETED" and record["replay_of"] == ARN
    assert "1 deletion(s) sent to Record" in aws.replay_summary([outcome], [])

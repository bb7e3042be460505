"""Assertions on the synthesized template: the state machine, the rules, the network, IAM, storage."""

from __future__ import annotations

import json
from typing import Any

import pytest
from awsio import CAUGHT_REJECTIONS
from imaging import ConfigError

from pipeline.stack import key_filter
from pipeline.workflow import LAMBDA_SERVICE_ERRORS, THROTTLE
from thumbs.template import resources_of_type


def only(template: dict[str, Any], resource_type: str) -> dict[str, Any]:
    (resource,) = resources_of_type(template, resource_type).values()
    return resource["Properties"]


def machine_by_output(template: dict[str, Any], output: str) -> dict[str, Any]:
    """The state machine an output names (StateMachineArn: the pipeline; BackfillStateMachineArn)."""
    return template["Resources"][template["Outputs"][output]["Value"]["Ref"]]["Properties"]


# CDK's AwsCustomResource singleton, and the provider of the default security group's restriction.
DEPLOY_TIME_PROVIDERS = ("AWS679f53fac002430cb0da5b7982bd2287", "CustomVpcRestrictDefaultSGCustomResourceProvider")


def lambda_functions(template):
    """The pipeline's own functions (not CDK's deploy-time custom-resource providers, which run Node)."""
    found = resources_of_type(template, "AWS::Lambda::Function")
    return {name: f for name, f in found.items() if f["Properties"]["Runtime"].startswith("python")}


# --- the state machine ----------------------------------------------------------------------


def test_definition_is_validate_then_map_of_resize_then_record(definition):
    states = definition["States"]
    # only uploads start it (deletions have a rule of their own), so no Choice costs them a transition
    assert definition["StartAt"] == "Validate"
    assert not [s for s in states.values() if s["Type"] == "Choice"]
    assert states["Validate"]["Next"] == "Thumbnails"
    thumbnails = states["Thumbnails"]
    assert thumbnails["Type"] == "Map" and thumbnails["Next"] == "Record"
    assert thumbnails["ItemsPath"] == "$.image.targets" and thumbnails["MaxConcurrency"] == 10
    assert thumbnails["ItemProcessor"]["StartAt"] == "Resize"
    assert states["Record"]["End"] is True
    assert states["RecordRejected"]["Next"] == "Rejected" and states["Rejected"]["Type"] == "Succeed"
    assert not [s for s in states.values() if s["Type"] == "Fail"]  # failures stay where they happen


def all_tasks(definition):
    states = dict(definition["States"])
    states.update(definition["States"]["Thumbnails"]["ItemProcessor"]["States"])
    return {name: s for name, s in states.items() if s["Type"] == "Task"}


def test_every_task_retries_service_and_transient_errors_with_full_jitter(definition):
    tasks = all_tasks(definition)
    assert set(tasks) == {"Validate", "Resize", "Record", "RecordRejected"}
    for name, task in tasks.items():
        throttle, transient = task["Retry"][:2]
        assert set(LAMBDA_SERVICE_ERRORS) | {"TransientError"} == set(transient["ErrorEquals"]), name
        assert THROTTLE not in LAMBDA_SERVICE_ERRORS
        assert transient["JitterStrategy"] == "FULL" and transient["MaxDelaySeconds"] > 0, name
        assert transient["IntervalSeconds"] >= 1 and transient["BackoffRate"] >= 1 and transient["MaxAttempts"] >= 2
        # Throttles first, with their own budget: a burst must drain, not fail (docs/bursts.md).
        assert throttle["ErrorEquals"] == [THROTTLE] and throttle["JitterStrategy"] == "FULL", name
        assert throttle["MaxAttempts"] > 3 * transient["MaxAttempts"], name
        assert throttle["MaxDelaySeconds"] >= 60 > transient["MaxDelaySeconds"], name
        retried = {error for retrier in task["Retry"] for error in retrier["ErrorEquals"]}
        assert not retried & set(CAUGHT_REJECTIONS), f"{name} retries a rejection"
        assert "States.ALL" not in retried, name


def test_rejections_are_caught_and_recorded_nothing_else_is(definition):
    states = definition["States"]
    for name in ("Validate", "Thumbnails"):
        (catch,) = states[name]["Catch"]
        assert set(catch["ErrorEquals"]) == set(CAUGHT_REJECTIONS)
        assert catch["Next"] == "RecordRejected" and catch["ResultPath"] == "$.error"
    assert all("Catch" not in states[name] for name in ("Record", "RecordRejected"))


def test_each_task_calls_its_own_function_with_the_execution_for_correlation(template, definition):
    logical = {name.split("Functions")[1][:-8].lower(): name for name in lambda_functions(template)}
    expected = {"Validate": "validate", "Resize": "resize", "Record": "record", "RecordRejected": "record"}
    for name, task in all_tasks(definition).items():
        assert task["Resource"].endswith(f":function:{logical[expected[name]]}"), name
        assert task["Parameters"]["execution_arn.$"] == "$$.Execution.Id", name
    assert all_tasks(definition)["Record"]["Parameters"]["status"] == "SUCCEEDED"
    assert all_tasks(definition)["RecordRejected"]["Parameters"]["status"] == "REJECTED"


def test_state_machine_is_standard_traced_and_logged(template):
    assert len(resources_of_type(template, "AWS::StepFunctions::StateMachine")) == 2  # the pipeline and Backfill
    for output in ("StateMachineArn", "BackfillStateMachineArn"):
        machine = machine_by_output(template, output)
        assert machine.get("StateMachineType", "STANDARD") == "STANDARD"
        assert machine["TracingConfiguration"] == {"Enabled": True}
        assert machine["LoggingConfiguration"]["IncludeExecutionData"] is True
    log_groups = resources_of_type(template, "AWS::Logs::LogGroup")
    assert log_groups and all(g["Properties"].get("RetentionInDays") == 30 for g in log_groups.values())


# --- the rules ------------------------------------------------------------------------------


def rules(template):
    """Each rule by its (one) detail-type."""
    return {
        r["Properties"]["EventPattern"]["detail-type"][0]: r["Properties"]
        for r in resources_of_type(template, "AWS::Events::Rule").values()
    }


def test_upload_rule_matches_object_created_in_the_upload_bucket_and_has_a_dlq(template):
    rule = rules(template)["Object Created"]
    pattern = rule["EventPattern"]
    assert pattern["source"] == ["aws.s3"] and pattern["detail-type"] == ["Object Created"]
    bucket_ref = pattern["detail"]["bucket"]["name"][0]["Ref"]
    assert bucket_ref.startswith("StorageUploads")
    (target,) = rule["Targets"]
    assert target["Arn"]["Ref"].startswith("Pipeline")
    assert target["DeadLetterConfig"]["Arn"]["Fn::GetAtt"][0].startswith("DeadLetters")
    assert target["RetryPolicy"]["MaximumRetryAttempts"] == 185


def test_deletions_go_straight_to_record_by_a_rule_of_their_own(template):
    upload = rules(template)["Object Created"]["EventPattern"]
    rule = rules(template)["Object Deleted"]
    pattern = rule["EventPattern"]
    assert pattern["source"] == ["aws.s3"] and pattern["detail"] == upload["detail"]  # the same bucket and keys
    (target,) = rule["Targets"]
    assert target["Arn"]["Fn::GetAtt"][0].startswith("FunctionsRecord") and "InputTransformer" not in target
    assert target["DeadLetterConfig"]["Arn"]["Fn::GetAtt"][0].startswith("DeadLetters")
    assert target["RetryPolicy"]["MaximumRetryAttempts"] == 185
    (record,) = [f for name, f in lambda_functions(template).items() if name.startswith("FunctionsRecord")]
    assert record["Properties"]["DeadLetterConfig"]["TargetArn"]["Fn::GetAtt"][0].startswith("DeadLetters")


def test_failed_executions_are_recorded_by_a_status_change_rule(template):
    rule = rules(template)["Step Functions Execution Status Change"]
    pattern = rule["EventPattern"]
    assert pattern["detail-type"] == ["Step Functions Execution Status Change"]
    assert set(pattern["detail"]["status"]) == {"FAILED", "TIMED_OUT", "ABORTED"}
    (target,) = rule["Targets"]
    assert target["Arn"]["Fn::GetAtt"][0].startswith("FunctionsRecord")


@pytest.mark.parametrize(
    ("prefix", "suffixes", "expected"),
    [
        ("", (), None),
        ("uploads/", (), [{"prefix": "uploads/"}]),
        ("", (".jpg", ".png"), [{"suffix": ".jpg"}, {"suffix": ".png"}]),
        ("in/*", (".jpg",), [{"wildcard": "in/\\**.jpg"}]),
    ],
)
def test_key_filters(prefix, suffixes, expected):
    assert key_filter(prefix, suffixes) == expected


def test_key_filters_and_reserved_concurrency_reach_the_template():
    from pipeline.app import build_app

    settings = {"key_prefix": "in/", "key_suffixes": [".jpg"], "resize": {"reserved_concurrency": 300}}
    _, stack = build_app(context={"aws:cdk:bundling-stacks": [], "thumbnails": settings})
    from aws_cdk.assertions import Template

    template = Template.from_stack(stack).to_json()
    for kind in ("Object Created", "Object Deleted"):
        assert rules(template)[kind]["EventPattern"]["detail"]["object"] == {"key": [{"wildcard": "in/*.jpg"}]}
    functions = {name[len("Functions") : -8]: f for name, f in lambda_functions(template).items()}
    assert functions["Resize"]["Properties"]["ReservedConcurrentExecutions"] == 300
    assert "ReservedConcurrentExecutions" not in functions["Validate"]["Properties"]
    # checkov's function-concurrency finding is skipped only where nothing is reserved
    skips = {name: f.get("Metadata", {}).get("checkov", {}).get("skip", []) for name, f in functions.items()}
    skipped = {name: {skip["id"] for skip in found} for name, found in skips.items()}
    assert "CKV_AWS_115" in skipped["Validate"] and "CKV_AWS_115" not in skipped["Resize"]


@pytest.mark.parametrize("bad", [0, -1, 2.5, True, "10"])
def test_reserved_concurrency_must_be_a_positive_whole_number(bad):
    from pipeline.config import PipelineConfig

    with pytest.raises(ConfigError, match="reserved_concurrency"):
        PipelineConfig.from_context({"resize": {"reserved_concurrency": bad}})


# --- network --------------------------------------------------------------------------------


def test_no_route_to_the_internet(template):
    for forbidden in ("AWS::EC2::NatGateway", "AWS::EC2::InternetGateway", "AWS::EC2::EIP", "AWS::EC2::Route"):
        assert not resources_of_type(template, forbidden), forbidden
    subnets = resources_of_type(template, "AWS::EC2::Subnet").values()
    assert subnets and not any(s["Properties"].get("MapPublicIpOnLaunch") for s in subnets)


def test_s3_and_dynamodb_gateway_endpoints(template):
    endpoints = resources_of_type(template, "AWS::EC2::VPCEndpoint").values()
    services = set()
    for endpoint in endpoints:
        assert endpoint["Properties"]["VpcEndpointType"] == "Gateway"
        services.add(json.dumps(endpoint["Properties"]["ServiceName"]))
    assert any(".s3" in s for s in services) and any(".dynamodb" in s for s in services)


def test_every_function_runs_in_the_isolated_subnets(template):
    functions = lambda_functions(template)
    assert len(functions) == 4  # validate, resize, record and the Backfill's plan
    # The only others are CDK's deploy-time providers: the prefix-list lookup and the one that
    # empties the VPC's default security group (feature flag restrictDefaultSecurityGroup). No
    # S3-notification custom resource: EventBridge is switched on by a property.
    others = sorted(set(resources_of_type(template, "AWS::Lambda::Function")) - set(functions))
    assert len(others) == 2
    assert others[0].startswith(DEPLOY_TIME_PROVIDERS[0]) and others[1].startswith(DEPLOY_TIME_PROVIDERS[1])
    for name, function in functions.items():
        vpc = function["Properties"]["VpcConfig"]
        assert vpc["SubnetIds"] and vpc["SecurityGroupIds"], name
        assert function["Properties"]["TracingConfig"] == {"Mode": "Active"}
        assert function["Properties"]["Architectures"] == ["arm64"]
        assert function["Properties"]["Runtime"] == "python3.14"
    group = only(template, "AWS::EC2::SecurityGroup")
    egress = group["SecurityGroupEgress"]
    assert len(egress) == 2  # HTTPS to the S3 and the DynamoDB prefix lists, nothing else
    for rule in egress:
        assert (rule["IpProtocol"], rule["FromPort"], rule["ToPort"]) == ("tcp", 443, 443)
        assert "DestinationPrefixListId" in rule and "CidrIp" not in rule
    assert not resources_of_type(template, "AWS::EC2::SecurityGroupEgress")  # all inline: no default allow-all


def test_prefix_lists_are_looked_up_by_name_for_the_deploy_region(template):
    lookups = resources_of_type(template, "Custom::AWS")
    calls = json.dumps([r["Properties"] for r in lookups.values()])
    assert len(lookups) == 2 and "describeManagedPrefixLists" in calls
    assert "com.amazonaws." in calls and ".s3" in calls and ".dynamodb" in calls


def test_the_vpcs_default_security_group_is_emptied(template):
    """Nothing uses the default group; with no rules, nothing placed in it by mistake can talk."""
    (restriction,) = resources_of_type(template, "Custom::VpcRestrictDefaultSG").values()
    (vpc,) = resources_of_type(template, "AWS::EC2::VPC")
    assert restriction["Properties"]["DefaultSecurityGroupId"] == {"Fn::GetAtt": [vpc, "DefaultSecurityGroup"]}


def test_cdk_json_sets_every_feature_flag_cdk_recommends():
    """What ``cdk init`` would write for the installed aws-cdk-lib; an upgrade that adds flags fails here.

    The reasons each flag that changes our template was kept are in docs/architecture.md.
    """
    import tarfile
    from pathlib import Path

    import aws_cdk

    (bundle,) = (Path(aws_cdk.__file__).parent / "_jsii").glob("aws-cdk-lib@*.jsii.tgz")
    with tarfile.open(bundle) as archive:
        recommended = json.load(archive.extractfile("package/recommended-feature-flags.json"))
    context = json.loads((Path(__file__).resolve().parent.parent / "cdk.json").read_text())["context"]
    missing = sorted(flag for flag in recommended if flag not in context)
    assert not missing, f"cdk.json lacks recommended feature flags: {missing}"
    differing = {flag: context[flag] for flag, value in recommended.items() if context[flag] != value}
    assert not differing, f"cdk.json sets these flags away from CDK's recommendation: {differing}"


# --- storage --------------------------------------------------------------------------------


def test_buckets_are_private_encrypted_and_tls_only(template):
    buckets = resources_of_type(template, "AWS::S3::Bucket")
    assert len(buckets) == 3
    for name, bucket in buckets.items():
        props = bucket["Properties"]
        assert props["PublicAccessBlockConfiguration"] == {
            "BlockPublicAcls": True,
            "BlockPublicPolicy": True,
            "IgnorePublicAcls": True,
            "RestrictPublicBuckets": True,
        }, name
        assert props["BucketEncryption"]["ServerSideEncryptionConfiguration"], name
    policies = resources_of_type(template, "AWS::S3::BucketPolicy").values()
    tls_denials = [
        p for p in policies for s in p["Properties"]["PolicyDocument"]["Statement"]
        if s["Effect"] == "Deny" and s.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}}
    ]  # fmt: skip
    assert len(tls_denials) == 3


def test_upload_bucket_sends_events_to_eventbridge_without_a_custom_resource(template):
    uploads = [b for n, b in resources_of_type(template, "AWS::S3::Bucket").items() if n.startswith("StorageUploads")]
    (bucket,) = uploads
    assert bucket["Properties"]["NotificationConfiguration"] == {
        "EventBridgeConfiguration": {"EventBridgeEnabled": True}
    }
    assert not resources_of_type(template, "Custom::S3BucketNotifications")
    others = [
        b for n, b in resources_of_type(template, "AWS::S3::Bucket").items() if not n.startswith("StorageUploads")
    ]
    assert not any("NotificationConfiguration" in b["Properties"] for b in others)  # thumbnails trigger nothing


def test_table_is_keyed_by_source_on_demand_with_pitr_and_encryption(template):
    table = only(template, "AWS::DynamoDB::Table")
    assert table["KeySchema"] == [{"AttributeName": "source_id", "KeyType": "HASH"}]
    assert table["BillingMode"] == "PAY_PER_REQUEST"
    assert table["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    assert table["SSESpecification"]["SSEEnabled"] is True


# --- IAM ------------------------------------------------------------------------------------


def statements(template):
    for name, policy in resources_of_type(template, "AWS::IAM::Policy").items():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            yield name, statement


def test_no_wildcard_actions(template):
    for name, statement in statements(template):
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        assert not [a for a in actions if "*" in a], f"{name}: {actions}"


def function_statements(template, function: str):
    return [s for name, s in statements(template) if name.startswith(f"Functions{function}")]


def test_least_privilege_per_function(template):
    def grants(function):
        found = set()
        for statement in function_statements(template, function):
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
            for action in actions:
                if not action.startswith("xray:"):
                    found |= {(action, _where(resource)) for resource in resources}
        return found

    read_uploads = {("s3:GetObject", "uploads/*"), ("s3:GetObjectVersion", "uploads/*")}
    assert grants("Validate") == read_uploads | {("s3:PutObject", "thumbnails/_work/intermediate/*")}
    assert grants("Resize") == read_uploads | {
        ("s3:GetObject", "thumbnails/_work/intermediate/*"),
        ("s3:PutObject", "thumbnails/_work/staged/*"),  # it only stages; it cannot touch a published thumbnail
    }
    assert grants("Record") == {
        ("dynamodb:GetItem", "table"),  # the previous record's thumbnails: sizes no longer made are removed
        ("dynamodb:PutItem", "table"),
        ("s3:GetObject", "thumbnails/*"),  # HEAD before replacing or removing a thumbnail; copy source
        ("s3:PutObject", "thumbnails/*"),  # publishing copies staged thumbnails into place
        ("s3:DeleteObject", "thumbnails/*"),
        # its asynchronous events (failure notices) that still fail go to the DLQ, under the stack's key
        ("sqs:SendMessage", "dead-letter queue"),
        ("kms:GenerateDataKey", "messages key"),
        ("kms:Decrypt", "messages key"),
    }
    assert grants("Plan") == {("dynamodb:BatchGetItem", "table")}  # it only reads records; the Backfill acts


def test_work_in_progress_expires_staged_thumbnails_outlive_the_redrive_window(template):
    (bucket,) = [
        b["Properties"] for name, b in resources_of_type(template, "AWS::S3::Bucket").items()
        if name.startswith("StorageThumbnails")
    ]  # fmt: skip
    rules = {r["Prefix"]: r["ExpirationInDays"] for r in bucket["LifecycleConfiguration"]["Rules"]}
    # redrive reaches back 14 days; a backfill's result files are its report for a month
    assert rules == {"_work/intermediate/": 1, "_work/staged/": 15, "_work/backfill/": 30}


def _where(resource) -> str:
    """A policy resource as 'uploads/*', 'thumbnails/_work/*' or 'table' (anything else: its JSON)."""
    names = {"StorageUploads": "uploads", "StorageThumbnails": "thumbnails", "StorageRecords": "table",
             "DeadLetters": "dead-letter queue", "MessagesKey": "messages key"}  # fmt: skip
    if "Fn::GetAtt" in resource:
        logical = resource["Fn::GetAtt"][0]
        return next((name for prefix, name in names.items() if logical.startswith(prefix)), json.dumps(resource))
    if "Fn::Join" in resource:
        _, (arn, suffix) = resource["Fn::Join"]
        return _where(arn) + suffix
    return json.dumps(resource)


# --- configuration --------------------------------------------------------------------------


def test_function_environment_carries_the_one_configuration(template):
    from imaging import ImagingSettings

    for function in lambda_functions(template).values():
        env = function["Properties"]["Environment"]["Variables"]
        assert ImagingSettings.from_env(env) == ImagingSettings()
        assert {"SOURCE_BUCKET", "THUMBNAIL_BUCKET", "TABLE_NAME", "POWERTOOLS_METRICS_NAMESPACE"} <= set(env)


@pytest.mark.parametrize(
    ("thumbnails", "message"),
    [
        ({"imaging": {"sizes": [0]}}, "sizes"),
        ({"map_max_concurrency": 99}, "map_max_concurrency"),
        ({"architecture": "sparc"}, "architecture"),
        ({"resize": {"memory_mb": 64}}, "memory_mb"),
        ({"log_retention_days": 2}, "log_retention_days"),
        ({"sizez": [1]}, "sizez"),
    ],
)
def test_a_bad_config_value_fails_synth_with_its_name(thumbnails, message):
    from pipeline.app import build_app

    with pytest.raises(ConfigError, match=message):
        build_app(context={"aws:cdk:bundling-stacks": [], "thumbnails": thumbnails})


def test_cdk_nag_findings_fail_synth():
    """An unacknowledged AwsSolutions finding must stop synth: add a bucket with no access logs."""
    from aws_cdk import aws_s3 as s3

    from pipeline.app import build_app

    app, stack = build_app(context={"aws:cdk:bundling-stacks": []})
    s3.Bucket(stack, "Careless", enforce_ssl=True)
    with pytest.raises(Exception, match="AwsSolutions-S1"):
        app.synth()

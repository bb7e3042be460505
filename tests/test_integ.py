"""The CDK integ test (integ/): synthesized offline, its assertions present, its snapshot current.

Deploying it needs an AWS account (``make integ``); here the app is synthesized as the CDK CLI
would, with bundling skipped, and its templates are checked.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from integ.snapshot import HERE, committed, differences, synthesize
from pipeline.config import ConfigError, PipelineConfig

TEST_STACK = "ThumbnailPipelineInteg.template.json"


@pytest.fixture(scope="module")
def synthesized(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return synthesize(tmp_path_factory.mktemp("integ-out"))


@pytest.fixture(scope="module")
def assertions(synthesized: dict[str, Any]) -> dict[str, Any]:
    (name,) = [n for n in synthesized if n.startswith("IntegDefaultTestDeployAssert")]
    return synthesized[name]["Resources"]


def calls(resources: dict[str, Any], api: str) -> list[dict[str, Any]]:
    return [r["Properties"] for r in resources.values() if r["Type"] == f"Custom::DeployAssert@SdkCall{api}"]


def text(value: Any) -> str:
    return json.dumps(value)


def test_the_committed_snapshot_is_current(synthesized):
    assert differences(synthesized, committed()) == [], "run: .venv/bin/python integ/snapshot.py --update"


def test_the_snapshot_check_sees_a_changed_template(synthesized):
    changed = copy.deepcopy(synthesized)
    changed[TEST_STACK]["Resources"]["StorageRecords0990588D"]["Properties"]["BillingMode"] = "PROVISIONED"
    del changed["integ.json"]
    assert differences(changed, committed()) == ["gone: integ.json", f"changed: {TEST_STACK}"]


def test_integ_json_names_the_stack_under_test_and_its_assertions(synthesized):
    (case,) = synthesized["integ.json"]["testCases"].values()
    assert case["stacks"] == ["ThumbnailPipelineInteg"]
    assert case["assertionStack"] == "Integ/DefaultTest/DeployAssert"
    assert case["stackUpdateWorkflow"] is False  # the snapshot has no bundles to deploy first


def test_an_image_is_uploaded_and_its_record_and_every_thumbnail_are_awaited(assertions):
    copies = calls(assertions, "S3copyObject")
    assert sorted(json.loads(c["parameters"]["Key"]) for c in copies) == ["integ/photo.jpg", "integ/truncated.jpg"]
    records = {
        json.loads(c["expected"])["$ObjectLike"]["Item"]["status"]["S"]: c for c in calls(assertions, "DynamoDBgetItem")
    }
    assert set(records) == {"SUCCEEDED", "REJECTED", "DELETED"}
    assert "s3://" in text(records["SUCCEEDED"]["parameters"]) and "integ/photo.jpg" in text(records["SUCCEEDED"])
    heads = calls(assertions, "S3headObject")
    keys = sorted(json.loads(h["parameters"]["Key"]) for h in heads)
    assert keys == ["1024/integ/photo.jpg.jpg", "128/integ/photo.jpg.jpg", "256/integ/photo.jpg.jpg"]
    assert {h["expected"] for h in heads} == {'{"$ObjectLike":{"ContentType":"image/jpeg"}}'}
    # Every check waits, so one that never comes true fails the deploy rather than only a report.
    assert all("stateMachineArn" in c for c in (*heads, *calls(assertions, "DynamoDBgetItem")))


def test_a_corrupt_image_and_a_text_file_must_end_rejected_with_their_reasons(assertions):
    reasons = sorted(
        json.loads(c["expected"])["$ObjectLike"]["Item"]["error"]["M"]["code"]["S"]
        for c in calls(assertions, "DynamoDBgetItem")
        if "REJECTED" in c["expected"]
    )
    assert reasons == ["CorruptImage", "UnsupportedFormat"]
    (put,) = calls(assertions, "S3putObject")
    assert json.loads(put["parameters"]["Key"]) == "integ/notes.jpg"
    assert "text file" in json.loads(put["parameters"]["Body"])


def test_the_binary_fixtures_come_from_assets_the_provider_may_read(assertions):
    statements = [
        s
        for r in assertions.values()
        if r["Type"] == "AWS::IAM::Role"
        for p in r["Properties"].get("Policies", [])
        for s in p["PolicyDocument"]["Statement"]
    ]
    reads = [s for s in statements if s["Action"] == ["s3:GetObject"] and "cdk-hnb659fds-assets" in text(s["Resource"])]
    assert len(reads) == 2
    for copy_call in calls(assertions, "S3copyObject"):
        assert "cdk-hnb659fds-assets" in text(copy_call["parameters"]["CopySource"])


def test_the_stack_under_test_is_disposable(synthesized):
    resources = synthesized[TEST_STACK]["Resources"]
    buckets = [r for r in resources.values() if r["Type"] == "AWS::S3::Bucket"]
    assert len(buckets) == 3 and {b["DeletionPolicy"] for b in buckets} == {"Delete"}
    assert sum(r["Type"] == "Custom::S3AutoDeleteObjects" for r in resources.values()) == 3
    kept = [k for k, r in resources.items() if r.get("DeletionPolicy", "Delete") != "Delete"]
    assert kept == []


def test_a_real_stack_keeps_its_data_when_deleted(template):
    resources = template["Resources"]
    data = [r for r in resources.values() if r["Type"] in ("AWS::S3::Bucket", "AWS::DynamoDB::Table")]
    assert len(data) == 4 and {r["DeletionPolicy"] for r in data} == {"Retain"}
    assert not any(r["Type"] == "Custom::S3AutoDeleteObjects" for r in resources.values())


def test_disposable_must_be_true_or_false():
    with pytest.raises(ConfigError, match="disposable: 'yes' is not true or false"):
        PipelineConfig.from_context({"disposable": "yes"})


def test_the_integ_app_is_where_integ_runner_looks():
    # integ-runner's Python preset: files named integ_*.py under --directory (make integ: integ/).
    assert sorted(p.name for p in HERE.glob("integ_*.py")) == ["integ_pipeline.py"]


def test_cfn_lint_finds_no_errors_in_either_integ_template(synthesized, tmp_path):
    paths = []
    for name, document in synthesized.items():
        if name.endswith(".template.json"):
            paths.append(tmp_path / name)
            paths[-1].write_text(json.dumps(document))
    cfn_lint = Path(sys.executable).with_name("cfn-lint")
    done = subprocess.run(
        [str(cfn_lint), "--format", "json", *map(str, paths)], capture_output=True, text=True, timeout=300
    )
    errors = [f"{f['Rule']['Id']} {f['Message']}" for f in json.loads(done.stdout or "[]") if f["Level"] == "Error"]
    assert len(paths) == 2 and not errors, errors

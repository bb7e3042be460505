"""The CDK integ test: a disposable copy of the stack, uploads through S3, and what the pipeline must write.

``make integ`` runs it on a real account through the CDK CLI (integ-runner cannot read this
aws-cdk-lib's assemblies yet: docs/operating.md). That deploys this app and the assertion stack,
whose checks (each an AWS API call made by a Lambda in that stack) must come true, then deletes
both: the stack is ``disposable``, so its buckets, table and log groups go with it.

Without an account, ``integ/snapshot.py`` synthesizes this app and compares the templates with
the committed snapshot (``integ_pipeline.py.snapshot/``); CI does that (``tests/test_integ.py``).
"""

from __future__ import annotations

import itertools
import os
import tempfile
from pathlib import Path

# isort: off
import pipeline  # noqa: F401 - first: it points jsii at the project's Node before aws_cdk starts it

# isort: on
from aws_cdk import Duration
from aws_cdk import aws_s3_assets as s3_assets
from aws_cdk.integ_tests_alpha import ExpectedResult, IApiCall, IntegTest
from awsio import source_id, thumbnail_key
from imaging.thumbnail import CONTENT_TYPES, EXTENSIONS

from pipeline.app import build_app, project_context
from thumbs.local.samples import sample_images

STACK_NAME = "ThumbnailPipelineInteg"
PREFIX = "integ/"
PHOTO = f"{PREFIX}photo.jpg"  # 1600 x 1200, larger than every size: each one is made
TRUNCATED = f"{PREFIX}truncated.jpg"  # a JPEG cut short: REJECTED CorruptImage
TEXT = f"{PREFIX}notes.jpg"  # text under an image name: REJECTED UnsupportedFormat
# Every check waits, so a check that never comes true fails its custom resource, and with it the
# deploy. The records of a healthy stack appear within seconds, cold starts included; the
# pipeline's own retries back off for a few minutes before a run is FAILED.
WAIT = {"total_timeout": Duration.minutes(10), "interval": Duration.seconds(10), "backoff_rate": 1}


def integ_app(fixtures: Path) -> IntegTest:
    """The integ test over a disposable ``ThumbnailPipeline``; ``fixtures`` holds the images it uploads."""
    context = {"thumbnails": {**project_context().get("thumbnails", {}), "disposable": True}}
    if os.environ.get("THUMBS_SKIP_BUNDLING") == "1":
        # The snapshot check: the functions' asset hashes come from their sources (bundling.source_hash),
        # so the template is the same with or without the pip-built bundles.
        context["aws:cdk:bundling-stacks"] = []
    app, stack = build_app(context=context, stack_name=STACK_NAME)
    config = stack.config
    uploads, thumbnails, table = stack.storage.source, stack.storage.thumbnails, stack.storage.table
    images = sample_images(photo_size=(1600, 1200))
    integ = IntegTest(
        app,
        "Integ",
        test_cases=[stack],
        # The snapshot keeps templates, not the pip-built bundles (tens of MB, .gitignore), so
        # integ-runner cannot deploy the previous snapshot before this one.
        stack_update_workflow=False,
    )
    checks = integ.assertions

    def put_text(key: str, body: str) -> IApiCall:
        return checks.aws_api_call("S3", "putObject", {"Bucket": uploads.bucket_name, "Key": key, "Body": body})

    # The assertion stack, where the fixtures live: integ-runner deploys it after the stack under test.
    assertion_stack = integ.node.find_child("DefaultTest").node.find_child("DeployAssert")

    def copy_fixture(key: str, data: bytes) -> IApiCall:
        # An assertion's parameters are JSON and a Body string goes out as UTF-8, so binary
        # images travel as assets and are copied in: a CopyObject is an "Object Created" too.
        path = fixtures / Path(key).name
        path.write_bytes(data)
        asset = s3_assets.Asset(assertion_stack, f"Fixture{path.stem.title()}", path=str(path))
        call = checks.aws_api_call(
            "S3",
            "copyObject",
            {"Bucket": uploads.bucket_name, "Key": key, "CopySource": f"{asset.s3_bucket_name}/{asset.s3_object_key}"},
        )
        call.provider.add_to_role_policy(
            {
                "Effect": "Allow",
                "Action": ["s3:GetObject"],
                "Resource": [asset.bucket.arn_for_objects(asset.s3_object_key)],
            }
        )
        call.provider.add_to_role_policy(
            {"Effect": "Allow", "Action": ["s3:PutObject"], "Resource": [uploads.arn_for_objects(f"{PREFIX}*")]}
        )
        return call

    def record_of(key: str, expected: dict[str, object]) -> IApiCall:
        call = checks.aws_api_call(
            "DynamoDB",
            "getItem",
            {"TableName": table.table_name, "Key": {"source_id": {"S": source_id(uploads.bucket_name, key)}}},
        )
        call.expect(ExpectedResult.object_like({"Item": expected}))
        call.wait_for_assertions(**WAIT)
        return call

    # The photo is opaque, so "auto" makes JPEGs.
    photo_format = "jpeg" if config.imaging.output_format == "auto" else config.imaging.output_format

    def thumbnail_of(key: str, size: int) -> IApiCall:
        call = checks.aws_api_call(
            "S3",
            "headObject",
            {"Bucket": thumbnails.bucket_name, "Key": thumbnail_key(key, size, EXTENSIONS[photo_format])},
        )
        call.expect(ExpectedResult.object_like({"ContentType": CONTENT_TYPES[photo_format]}))
        call.wait_for_assertions(**WAIT)
        call.waiter_provider.add_to_role_policy(
            {"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": [thumbnails.arn_for_objects("*")]}
        )
        return call

    steps = [
        copy_fixture(PHOTO, images["large-photo.jpg"]),
        record_of(PHOTO, {"status": {"S": "SUCCEEDED"}}),
        *(thumbnail_of(PHOTO, size) for size in config.imaging.sizes),
        copy_fixture(TRUNCATED, images["broken.jpg"]),
        record_of(TRUNCATED, {"status": {"S": "REJECTED"}, "error": {"M": {"code": {"S": "CorruptImage"}}}}),
        put_text(TEXT, images["notes-not-an-image.jpg"].decode()),
        record_of(TEXT, {"status": {"S": "REJECTED"}, "error": {"M": {"code": {"S": "UnsupportedFormat"}}}}),
        checks.aws_api_call("S3", "deleteObject", {"Bucket": uploads.bucket_name, "Key": PHOTO}),
        record_of(PHOTO, {"status": {"S": "DELETED"}}),
    ]
    for before, after in itertools.pairwise(steps):
        before.next(after)
    return integ


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as folder:
        integ_app(Path(folder)).node.root.synth()

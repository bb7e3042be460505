"""``thumbs verify``: the post-deploy check, run on the local stack through the ``--stack`` code path.

The local stack registers its outputs as a CloudFormation stack in moto, so ``thumbs --stack
ThumbnailPipeline verify`` with ``AWS_ENDPOINT_URL`` is the very code an operator runs after
``cdk deploy``. A stage broken past its retry budget must fail the check with a clear line.
"""

from __future__ import annotations

from contextlib import contextmanager

import pytest

from thumbs.cli import main
from thumbs.local.lambda_runtime import FaultSwitch
from thumbs.local.stack import LocalStack
from thumbs.local.state import StateFolder
from thumbs.template import load_template
from thumbs.verify import CASES


@contextmanager
def deployed(tmp_path, faults: list[str]):
    state = StateFolder(tmp_path / "state")
    with LocalStack(load_template(state.cache_dir), state.root, faults=FaultSwitch.parse(faults)) as stack:
        stack.deploy()
        with pytest.MonkeyPatch.context() as env:
            env.setenv("AWS_ENDPOINT_URL", stack.endpoint)
            env.setenv("AWS_ACCESS_KEY_ID", "local")
            env.setenv("AWS_SECRET_ACCESS_KEY", "local")
            yield stack


def verify(capsys) -> tuple[int, str]:
    code = main(["--stack", "ThumbnailPipeline", "--region", "us-east-1", "verify", "--timeout", "300"])
    return code, capsys.readouterr().out


def test_verify_passes_on_a_working_stack_and_leaves_nothing_behind(tmp_path, capsys):
    with deployed(tmp_path, []) as stack:
        code, printed = verify(capsys)
        uploads = stack.client("s3").list_objects_v2(Bucket=stack.upload_bucket).get("Contents", [])
        thumbnails = stack.client("s3").list_objects_v2(Bucket=stack.thumbnail_bucket).get("Contents", [])
        records = stack.client("dynamodb").scan(TableName=stack.table_name)["Items"]
    assert code == 0, printed
    checks = 3 * len(CASES) + 3  # outcome, history and deletion each; thumbnails for the three images
    assert f"{checks} of {checks} checks passed." in printed
    assert "FAIL" not in printed
    assert "CorruptImage" in printed and "UnsupportedFormat" in printed  # the rejections, with their reasons
    assert "us-east-1.console.aws.amazon.com/states/home" in printed  # each execution's console link
    assert uploads == [] and records == []
    assert [o["Key"] for o in thumbnails if not o["Key"].startswith("_work/")] == []


def test_verify_fails_with_a_line_per_broken_check_when_a_stage_is_past_its_retry_budget(tmp_path, capsys):
    with deployed(tmp_path, ["resize=transient:1000"]) as stack:  # every Resize fails, past its 4 attempts
        code, printed = verify(capsys)
        assert stack.client("dynamodb").scan(TableName=stack.table_name)["Items"] == []
    assert code == 1
    failed = [line for line in printed.splitlines() if line.startswith("FAIL ")]
    images = ("large-photo.jpg", "rotated-exif.jpg", "transparent-logo.png")
    assert sorted(failed) == sorted(
        f"FAIL {name} outcome: FAILED, expected SUCCEEDED: TransientError: injected transient fault "
        "(local fault switch)"
        for name in images
    ), printed
    # five outcomes, the two rejections' histories and five deletions; no thumbnails to check
    assert "9 of 12 checks passed." in printed

"""Outside validators on the synthesized template: cfn-lint and checkov, rules nobody here wrote.

cfn-lint must find no error. checkov must find nothing unanswered: each real finding is fixed in
the constructs, and each that does not apply is skipped in the template's metadata with a reason
(pipeline/checkov.py), as cdk-nag's are acknowledged in pipeline/stack.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHECKOV = ROOT / ".venv" / "checkov" / "bin" / "checkov"  # its own venv: see the Makefile


@pytest.fixture(scope="module")
def template_file(template: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("validators") / "ThumbnailPipeline.template.json"
    path.write_text(json.dumps(template, indent=1))
    return path


def test_cfn_lint_finds_no_errors(template_file):
    cfn_lint = Path(sys.executable).with_name("cfn-lint")
    done = subprocess.run(
        [str(cfn_lint), "--format", "json", str(template_file)], capture_output=True, text=True, timeout=300
    )
    findings = json.loads(done.stdout or "[]")
    errors = [f"{f['Rule']['Id']} {f['Message']}" for f in findings if f["Level"] == "Error"]
    assert not errors, errors
    # What is left are CDK's own redundant DependsOn (W3005): warnings about the generator, not the stack.
    assert {f["Rule"]["Id"] for f in findings} <= {"W3005"}, findings


@pytest.fixture(scope="module")
def checkov_report(template_file: Path) -> dict[str, Any]:
    if not CHECKOV.exists():
        reason = f"checkov is not installed at {CHECKOV} (make install puts it there)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    done = subprocess.run(
        [str(CHECKOV), "-f", str(template_file), "--framework", "cloudformation", "-o", "json",
         "--skip-download"],  # offline: no guideline download
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    report = json.loads(done.stdout)
    return report[0] if isinstance(report, list) else report


def test_checkov_finds_nothing_unanswered(checkov_report):
    failed = [f"{c['check_id']} {c['resource']}: {c['check_name']}" for c in checkov_report["results"]["failed_checks"]]
    assert not failed, failed
    assert checkov_report["summary"]["parsing_errors"] == 0
    assert checkov_report["summary"]["passed"] > 200  # it really read the stack


def test_every_checkov_skip_has_a_reason_and_is_one_we_reviewed(checkov_report):
    skipped = checkov_report["results"]["skipped_checks"]
    assert skipped
    for check in skipped:
        assert len(check["check_result"].get("suppress_comment", "")) > 40, check["check_id"]
    reviewed = {"CKV_AWS_158", "CKV_AWS_173", "CKV_AWS_115", "CKV_AWS_116", "CKV_AWS_117", "CKV_AWS_21",
                "CKV_AWS_18", "CKV_AWS_119"}  # fmt: skip
    assert {c["check_id"] for c in skipped} <= reviewed


def test_the_real_findings_are_fixed_not_skipped(checkov_report):
    passed = {(c["check_id"], c["resource"].split(".")[1][:-8]) for c in checkov_report["results"]["passed_checks"]}
    assert ("CKV_AWS_27", "DeadLetters") in passed  # the dead-letter queue under a KMS key
    assert ("CKV_AWS_21", "StorageAccessLogs") in passed  # the access logs versioned
    assert ("CKV_AWS_116", "FunctionsRecord") in passed  # Record's asynchronous events have a DLQ

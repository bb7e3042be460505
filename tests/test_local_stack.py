"""The local stack is built from the template alone: names, references and the cached synth."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from thumbs.local.stack import physical_names
from thumbs.template import load_template, resources_of_type, sources_hash

ROOT = Path(__file__).resolve().parents[1]


def test_the_template_is_synthesized_once_and_cached_by_source_hash(tmp_path, template):
    no_cdk_out = tmp_path / "cdk.out"
    first = load_template(tmp_path, cdk_out=no_cdk_out)
    cached = tmp_path / f"template-{sources_hash()}.json"
    assert cached.exists()
    stamp = cached.stat().st_mtime_ns
    assert load_template(tmp_path, cdk_out=no_cdk_out) == first
    assert cached.stat().st_mtime_ns == stamp  # read back, not synthesized again
    assert first["Resources"].keys() == template["Resources"].keys()


def test_a_fresh_cdk_out_template_is_used_as_it_is(tmp_path):
    cdk_out = tmp_path / "cdk.out"
    cdk_out.mkdir()
    time.sleep(0.01)
    (cdk_out / "ThumbnailPipeline.template.json").write_text(json.dumps({"Resources": {"FromCdkOut": {}}}))
    assert load_template(tmp_path, cdk_out=cdk_out) == {"Resources": {"FromCdkOut": {}}}


def test_every_reference_in_the_rules_and_environment_resolves_to_a_local_name(template):
    names = physical_names(template, "ThumbnailPipeline")
    for rule in resources_of_type(template, "AWS::Events::Rule").values():
        resolved = json.dumps(names.resolve(rule["Properties"]))
        assert '"Ref"' not in resolved and "Fn::" not in resolved
    for logical, function in resources_of_type(template, "AWS::Lambda::Function").items():
        if not function["Properties"]["Runtime"].startswith("python"):
            continue  # CDK's deploy-time custom-resource provider
        environment = names.resolve(function["Properties"]["Environment"]["Variables"])
        assert all(isinstance(v, str) and "Ref" not in v for v in environment.values()), logical
    buckets = [names.refs[b] for b in resources_of_type(template, "AWS::S3::Bucket")]
    assert all(len(b) <= 63 and b == b.lower() for b in buckets)


FREEZING = """
import gc, json, sys, weakref
from pathlib import Path
from thumbs.local.stack import LocalStack

class Cycle:
    pass

root = Path(sys.argv[1])
template = json.loads((root / "template.json").read_text())
counts = []
for n in range(2):
    with LocalStack(template, root / f"state-{n}") as local:
        local.deploy()
        counts.append(gc.get_freeze_count())
        made = Cycle()
        made.itself = made
        gone = weakref.ref(made)
        del made
        gc.collect()
        assert gone() is None, "garbage made after the freeze is still collected"
print(json.dumps(counts))
"""


def test_the_first_deployed_stack_freezes_what_the_process_holds_and_no_later_one_does(tmp_path, template):
    """Full collections skip the process's long-lived objects (a 0.2 s walk each); later garbage is still collected.

    A later stack in the same process freezes nothing more: it would freeze an earlier stack's garbage for good.
    """
    (tmp_path / "template.json").write_text(json.dumps(template))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "functions")])}
    done = subprocess.run(
        [sys.executable, "-c", FREEZING, str(tmp_path)], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    first, second = json.loads(done.stdout.strip().splitlines()[-1])
    assert first > 100_000  # modules, the SDK's models, moto's backends and apps
    assert second <= first  # some frozen objects were freed since; none was added

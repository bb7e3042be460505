"""The local stack is built from the template alone: names, references and the cached synth."""

from __future__ import annotations

import gc
import json
import time
import weakref

from thumbs.local.stack import LocalStack, physical_names
from thumbs.template import load_template, resources_of_type, sources_hash


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


def test_a_deployed_stack_freezes_what_it_holds_and_still_collects_what_it_lets_go(tmp_path, template):
    """Full collections skip the stack's own objects (a 0.2 s walk each); garbage made later is still collected."""

    class Cycle:
        pass

    gc.unfreeze()  # an earlier test's stack may have frozen this process's objects already
    with LocalStack(template, tmp_path) as local:
        local.deploy()
        assert gc.get_freeze_count() > 100_000  # modules, the SDK's models, moto's backends and apps
        local.client("s3").list_buckets()
        made = Cycle()
        made.itself = made
        gone = weakref.ref(made)
        del made
        gc.collect()
        assert gone() is None

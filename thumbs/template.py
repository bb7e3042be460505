"""The synthesized CloudFormation template: the one description of the pipeline that ``thumbs`` reads.

The local engine deploys it on moto, ``thumbs cost`` counts its state transitions, and the
tests check the state machine through it, so nothing keeps a second copy of the definition.
It comes from ``cdk.out`` when that is fresh, else from one in-process synth, cached by a
hash of the sources.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pipeline  # noqa: F401 - first: it points jsii at the packaged Node before aws_cdk starts it

from . import PROJECT_ROOT

Intrinsic = dict[str, Any]
STACK_NAME = "ThumbnailPipeline"
# Everything the template is built from: the CDK app, its context and the bundled handler code.
SOURCES = ("app.py", "cdk.json", "pipeline", "functions")


def sources_hash() -> str:
    """A hash of everything the template is built from."""
    digest = hashlib.sha256()
    for name in SOURCES:
        path = PROJECT_ROOT / name
        files = [path] if path.is_file() else sorted(p for p in path.rglob("*.py") if "__pycache__" not in p.parts)
        for file in files + ([p for p in path.rglob("requirements.txt")] if path.is_dir() else []):
            digest.update(str(file.relative_to(PROJECT_ROOT)).encode())
            digest.update(file.read_bytes())
    return digest.hexdigest()[:16]


def load_template(
    cache_dir: Path, stack_name: str = STACK_NAME, cdk_out: Path = PROJECT_ROOT / "cdk.out"
) -> dict[str, Any]:
    """``cdk.out``'s template when it is newer than every source; else synthesize once and cache by hash."""
    built = cdk_out / f"{stack_name}.template.json"
    newest_source = max(
        p.stat().st_mtime
        for name in SOURCES
        for p in ([PROJECT_ROOT / name] if (PROJECT_ROOT / name).is_file() else (PROJECT_ROOT / name).rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts
    )
    if built.exists() and built.stat().st_mtime >= newest_source:
        return json.loads(built.read_text())
    cached = cache_dir / f"template-{sources_hash()}.json"
    if cached.exists():
        return json.loads(cached.read_text())
    from aws_cdk.assertions import Template

    from pipeline.app import build_app

    _, stack = build_app(outdir=None, context={"aws:cdk:bundling-stacks": []})
    template = Template.from_stack(stack).to_json()
    cache_dir.mkdir(parents=True, exist_ok=True)
    cached.write_text(json.dumps(template))
    return template


def resources_of_type(template: dict[str, Any], resource_type: str) -> dict[str, dict[str, Any]]:
    """The template's resources of one CloudFormation type, by logical ID."""
    return {name: res for name, res in template["Resources"].items() if res["Type"] == resource_type}


def state_machine_definition(
    template: dict[str, Any], resolve: Callable[[Intrinsic], str], output: str = "StateMachineArn"
) -> dict[str, Any]:
    """The ASL of the state machine the stack outputs as ``output`` (the pipeline by default).

    The stack has two state machines, the pipeline and the Backfill; each output names one
    by ``Ref``, so the caller says which it means by the output it would read on AWS.
    """
    reference = template["Outputs"][output]["Value"]
    if not isinstance(reference, dict) or set(reference) != {"Ref"}:
        raise ValueError(f"output {output} is not a Ref to a state machine: {reference}")
    return definition_of(template, str(reference["Ref"]), resolve)


def definition_of(template: dict[str, Any], logical: str, resolve: Callable[[Intrinsic], str]) -> dict[str, Any]:
    """One state machine's ASL, with each CloudFormation intrinsic in it replaced by ``resolve``.

    CDK writes the definition as ``Fn::Join`` of literal JSON fragments and references (the
    Lambda ARNs, the buckets, the pipeline's ARN); ``resolve`` turns each into the string to use.
    """
    machine = template["Resources"][logical]
    if machine["Type"] != "AWS::StepFunctions::StateMachine":
        raise ValueError(f"{logical} is a {machine['Type']}, not a state machine")
    definition = machine["Properties"]["DefinitionString"]
    if isinstance(definition, str):
        return json.loads(definition)
    separator, parts = definition["Fn::Join"]
    return json.loads(separator.join(part if isinstance(part, str) else resolve(part) for part in parts))


def get_att_logical_id(intrinsic: Intrinsic) -> str:
    """``{"Fn::GetAtt": ["FunctionsResize73B29195", "Arn"]}`` -> ``FunctionsResize73B29195``."""
    if "Fn::GetAtt" not in intrinsic:
        raise ValueError(f"expected Fn::GetAtt in the state machine definition, found {intrinsic}")
    return str(intrinsic["Fn::GetAtt"][0])

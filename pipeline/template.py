"""Reading the synthesized CloudFormation template: the one description of the pipeline.

The tests check the state machine through this, and the local runtime (next issue) builds
its stack from it, so nothing keeps a second copy of the definition.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

Intrinsic = dict[str, Any]


def resources_of_type(template: dict[str, Any], resource_type: str) -> dict[str, dict[str, Any]]:
    return {name: res for name, res in template["Resources"].items() if res["Type"] == resource_type}


def state_machine_definition(template: dict[str, Any], resolve: Callable[[Intrinsic], str]) -> dict[str, Any]:
    """The one state machine's ASL, with each CloudFormation intrinsic in it replaced by ``resolve``.

    CDK writes the definition as ``Fn::Join`` of literal JSON fragments and ``Fn::GetAtt``
    references (the Lambda ARNs); ``resolve`` turns each reference into the string to use.
    """
    machines = resources_of_type(template, "AWS::StepFunctions::StateMachine")
    if len(machines) != 1:
        raise ValueError(f"expected one state machine in the template, found {len(machines)}")
    (machine,) = machines.values()
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

"""Templates as the ROS stand-in runs them: parsing, the checks made before anything runs, dependency levels,
parameter values and the functions it evaluates (Ref, Fn::Sub, Fn::Join, Fn::Split, Fn::GetAtt). No HTTP, no
clock: pure functions over template data."""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from emulator.ros.models import CUSTOM_TYPES, ParameterError, Stack, Template, TemplateError
from emulator.ros.resource_types import RESOURCE_TYPES, attribute_of, check_declared

SUPPORTED_FUNCTIONS = ("Ref", "Fn::Sub", "Fn::Join", "Fn::Split", "Fn::GetAtt")


def load_template(path: str | Path) -> dict[str, Any]:
    return parse_template(Path(path).read_text(encoding="utf-8"), str(path))


def parse_template(text: str, where: str = "the template") -> dict[str, Any]:
    """A template from JSON or YAML text (JSON first: not every JSON text is YAML 1.1)."""
    template: Any = None
    if text.lstrip().startswith("{"):
        with contextlib.suppress(ValueError):
            template = json.loads(text)
    if template is None:
        try:
            template = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # noqa: S506 - safe
        except yaml.YAMLError as error:
            raise TemplateError(f"{where} is not YAML or JSON: {error}") from None
    if not isinstance(template, dict) or "Resources" not in template:
        raise TemplateError(f"{where} is not a ROS template (no Resources)")
    return template


def check_template(template: Template, values: Mapping[str, Any]) -> None:
    """Refuse, before anything runs, a template this stand-in cannot run to the end."""
    resources = template.get("Resources")
    if not isinstance(resources, dict) or not resources:
        raise TemplateError("Resources is not a non-empty mapping")
    kinds = {logical_id: spec["Type"] for logical_id, spec in resources_of(template)}
    levels_of(resources)
    names = set(resources)
    for logical_id, spec in resources.items():
        check_fragment(spec.get("Properties") or {}, values, names, f"Resources.{logical_id}")
    _check_attributes(template, kinds)
    outputs = template.get("Outputs") or {}
    if not isinstance(outputs, dict):
        raise TemplateError("Outputs is not a mapping")
    for name, spec in outputs.items():
        if not isinstance(spec, dict) or "Value" not in spec:
            raise TemplateError(f"Outputs.{name} has no Value")
        check_fragment(spec["Value"], values, names, f"Outputs.{name}")


def resources_of(template: Template) -> list[tuple[str, dict[str, Any]]]:
    """The resources, each of a type this stand-in runs: custom resources, and the types of
    :mod:`emulator.ros.resource_types` with only the properties their references list."""
    found = []
    for logical_id, spec in (template.get("Resources") or {}).items():
        if not isinstance(spec, dict) or not isinstance(spec.get("Properties") or {}, dict):
            raise TemplateError(f"{logical_id}: a resource is a mapping with Type and Properties")
        kind = str(spec.get("Type", ""))
        if kind in RESOURCE_TYPES:
            check_declared(kind, spec.get("Properties") or {}, f"Resources.{logical_id}")
        elif not (kind.startswith("Custom::") or kind in CUSTOM_TYPES):
            emulated = ", ".join(RESOURCE_TYPES)
            raise TemplateError(f"{logical_id}: {kind} is not emulated (only custom resources and {emulated} are)")
        found.append((logical_id, spec))
    return found


def _check_attributes(node: Any, kinds: Mapping[str, str]) -> None:
    """Every ``Fn::GetAtt`` on a resource of a listed type reads an attribute its reference lists."""
    if isinstance(node, list):
        for item in node:
            _check_attributes(item, kinds)
    elif isinstance(node, dict):
        target = node.get("Fn::GetAtt")
        if len(node) == 1 and isinstance(target, list) and len(target) == 2 and target[0] in kinds:
            kind, attribute = kinds[target[0]], str(target[1])
            if not attribute_of(kind, attribute):
                raise TemplateError(f"Fn::GetAtt {target}: {kind} has no attribute {attribute}")
        for value in node.values():
            _check_attributes(value, kinds)


def parameter_values(template: Template, given: Mapping[str, object], pseudo: Mapping[str, str]) -> dict[str, Any]:
    """The values a template's Parameters take with ``given`` (and the pseudo parameters)."""
    values: dict[str, Any] = {}
    declared = template.get("Parameters") or {}
    if not isinstance(declared, dict) or not all(isinstance(spec, dict) for spec in declared.values()):
        raise TemplateError("Parameters is not a mapping of parameter declarations")
    unknown = set(given) - set(declared)
    if unknown:
        raise ParameterError(f"unknown parameters: {', '.join(sorted(unknown))}")
    for name, spec in declared.items():
        if name in given:
            raw = given[name]
        elif "Default" in spec:
            raw = spec["Default"]
        else:
            raise ParameterError(f"parameter {name} has no value and no Default")
        allowed = spec.get("AllowedValues")
        if allowed is not None and str(raw) not in [str(a) for a in allowed]:
            raise ParameterError(f"parameter {name}: {raw!r} is not one of {allowed}")
        kind = spec.get("Type", "String")
        if kind == "CommaDelimitedList":
            values[name] = raw if isinstance(raw, list) else [item.strip() for item in str(raw).split(",")]
        elif kind == "Number":
            try:
                number = float(str(raw))
            except ValueError:
                raise ParameterError(f"parameter {name}: {raw!r} is not a number") from None
            if ("MinValue" in spec and number < float(spec["MinValue"])) or (
                "MaxValue" in spec and number > float(spec["MaxValue"])
            ):
                raise ParameterError(f"parameter {name}: {raw} is out of range")
            values[name] = int(number) if number.is_integer() else number
        else:
            values[name] = str(raw) if not isinstance(raw, bool) else str(raw).lower()
    values.update(pseudo)
    return values


def resolve(node: Any, values: Mapping[str, Any], stack: Stack) -> Any:
    """A fragment with its functions evaluated."""
    if isinstance(node, list):
        return [resolve(item, values, stack) for item in node]
    if not isinstance(node, dict):
        return node
    if len(node) == 1:
        ((function, argument),) = node.items()
        if function == "Ref":
            if argument in values:
                return values[argument]
            if argument in stack.resources:
                return stack.resources[argument].physical_id
            raise TemplateError(f"Ref to unknown parameter {argument}")
        if function == "Fn::Sub":
            text = argument
            for name, value in values.items():
                text = text.replace("${" + name + "}", str(value))
            if "${" in text:
                raise TemplateError(f"Fn::Sub left unresolved names in {text!r}")
            return text
        if function == "Fn::Join":
            separator, items = argument
            return separator.join(str(i) for i in resolve(items, values, stack))
        if function == "Fn::Split":
            separator, text = argument[0], resolve(argument[1], values, stack)
            return text if isinstance(text, list) else str(text).split(separator)
        if function == "Fn::GetAtt":
            logical_id, key = argument
            resource = stack.resources.get(logical_id)
            if resource is None:
                raise TemplateError(f"Fn::GetAtt on unknown resource {logical_id}")
            return resource.data if key == "Outputs" else resource.data.get(key)
    return {key: resolve(value, values, stack) for key, value in node.items()}


def outputs_of(stack: Stack, values: Mapping[str, Any]) -> dict[str, Any]:
    outputs = {}
    for name, spec in (stack.template.get("Outputs") or {}).items():
        outputs[name] = resolve(spec.get("Value"), values, stack)
    return outputs


def levels_of(resources: Mapping[str, Any]) -> list[list[str]]:
    """The resources in dependency order: each level refers only to earlier ones (Ref, Fn::GetAtt)."""
    needs = {
        name: _references(spec.get("Properties") or {}, set(resources)) - {name} for name, spec in resources.items()
    }
    levels: list[list[str]] = []
    done: set[str] = set()
    while len(done) < len(resources):
        level = [name for name in resources if name not in done and needs[name] <= done]
        if not level:
            raise TemplateError("the resources refer to one another in a cycle")
        levels.append(level)
        done.update(level)
    return levels


def check_fragment(node: Any, values: Mapping[str, Any], resources: set[str], where: str) -> None:
    """Refuse what :func:`resolve` cannot evaluate: unknown names, functions it does not emulate."""
    if isinstance(node, list):
        for item in node:
            check_fragment(item, values, resources, where)
        return
    if not isinstance(node, dict):
        return
    if len(node) == 1:
        ((function, argument),) = node.items()
        if function == "Ref":
            if argument not in values and argument not in resources:
                raise TemplateError(f"{where}: Ref to {argument!r}, which is no parameter and no resource")
            return
        if function == "Fn::GetAtt":
            if not (isinstance(argument, list) and len(argument) == 2 and argument[0] in resources):
                raise TemplateError(f"{where}: Fn::GetAtt {argument!r} names no resource of the template")
            return
        if function == "Fn::Sub":
            if not isinstance(argument, str):
                raise TemplateError(f"{where}: only the string form of Fn::Sub is emulated")
            unknown = sorted(set(re.findall(r"\$\{([^}]*)\}", argument)) - set(values))
            if unknown:
                raise TemplateError(f"{where}: Fn::Sub names {unknown}, which are no parameters")
            return
        if function in ("Fn::Join", "Fn::Split"):
            if not (isinstance(argument, list) and len(argument) == 2 and isinstance(argument[0], str)):
                raise TemplateError(f"{where}: {function} takes [separator, value]")
        elif str(function).startswith("Fn::"):
            raise TemplateError(f"{where}: {function} is not emulated (only {', '.join(SUPPORTED_FUNCTIONS)})")
    for value in node.values():
        check_fragment(value, values, resources, where)


def _references(node: Any, names: set[str]) -> set[str]:
    """The resources a fragment refers to through Ref or Fn::GetAtt."""
    if isinstance(node, list):
        return set().union(*(_references(item, names) for item in node)) if node else set()
    if not isinstance(node, dict):
        return set()
    found: set[str] = set()
    for key, value in node.items():
        if key == "Ref" and value in names:
            found.add(value)
        elif key == "Fn::GetAtt" and isinstance(value, list) and value and value[0] in names:
            found.add(value[0])
        else:
            found |= _references(value, names)
    return found

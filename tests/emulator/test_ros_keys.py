"""The local ROS's ALIYUN::RandomString and ALIYUN::OOS::SecretParameter (emulator/ros/keys.py): a value drawn,
put into the OOS stand-in, a new version when the value changes, removed with the stack."""

from __future__ import annotations

import copy
import string

import pytest

from emulator.cloud import KEY_PARAMETER

NAME = "a-stack-made-key"


def _template(**random_properties):
    return {
        "ROSTemplateFormatVersion": "2015-09-01",
        "Parameters": {
            "Name": {"Type": "String", "Default": NAME},
            "Description": {"Type": "String", "Default": "made by a stack"},
        },
        "Resources": {
            "Random": {"Type": "ALIYUN::RandomString", "Properties": random_properties},
            "Key": {
                "Type": "ALIYUN::OOS::SecretParameter",
                "Properties": {
                    "SecretParameterName": {"Ref": "Name"},
                    "Value": {"Fn::GetAtt": ["Random", "Value"]},
                    "Description": {"Ref": "Description"},
                },
            },
        },
        "Outputs": {"Version": {"Value": {"Fn::GetAtt": ["Key", "ParameterVersion"]}}},
    }


def _values(cloud, name=NAME):
    parameter = cloud.oos.parameters.get((cloud.region, name))
    return [value for value, _ in parameter.values] if parameter else None


def test_the_stack_puts_a_random_value_in_oos_and_removes_it_with_the_stack(cloud):
    classes = [{"Class": "digits", "Min": 5}, {"Class": "uppercase", "Min": 3}]
    stack = cloud.ros.create_stack(_template(Length=40, CharacterClasses=classes), {})
    assert stack.status == "CREATE_COMPLETE", stack.reason
    value = stack.resources["Random"].data["Value"]
    assert len(value) == 40 and set(value) <= set(string.digits + string.ascii_uppercase)
    assert sum(c in string.digits for c in value) >= 5 and sum(c in string.ascii_uppercase for c in value) >= 3
    assert _values(cloud) == [value] and stack.outputs["Version"] == 1
    assert stack.resources["Key"].physical_id == NAME and "Value" not in stack.resources["Key"].data
    other = cloud.ros.create_stack(_template(Length=40, CharacterClasses=classes), {"Name": "another-key"}, "other")
    assert _values(cloud, "another-key") != [value]  # drawn anew
    cloud.ros.delete_stack(stack)
    assert stack.status == "DELETE_COMPLETE" and _values(cloud) is None
    assert _values(cloud, "another-key") is not None  # another stack's key stays
    cloud.ros.delete_stack(other)


def test_without_properties_the_value_is_32_letters_and_digits(cloud):
    stack = cloud.ros.create_stack(_template(), {})
    value = stack.resources["Random"].data["Value"]
    assert len(value) == 32 and value.isalnum() and value.isascii()


def test_an_update_that_changes_the_value_adds_a_version_and_one_that_does_not_keeps_it(cloud):
    stack = cloud.ros.create_stack(_template(Length=32), {})
    first = _values(cloud)
    cloud.ros.update_stack(stack, {"Description": "described anew"})  # Description is editable; the value stays
    assert stack.status == "UPDATE_COMPLETE", stack.reason
    assert _values(cloud) == first and stack.outputs["Version"] == 1
    cloud.ros.begin_update(stack, {}, template=_template(Length=48))  # a new random string: a new version
    cloud.clock.run_task(stack.operation)
    assert stack.status == "UPDATE_COMPLETE", stack.reason
    values = _values(cloud)
    assert values[0] == first[0] and len(values) == 2 and len(values[1]) == 48 and stack.outputs["Version"] == 2


def test_renaming_the_parameter_is_refused_as_not_editable(cloud):
    stack = cloud.ros.create_stack(_template(), {})
    cloud.ros.update_stack(stack, {"Name": "renamed"})
    assert stack.status == "UPDATE_FAILED"
    assert "SecretParameterName of ALIYUN::OOS::SecretParameter cannot be updated" in stack.reason
    assert _values(cloud) is not None and _values(cloud, "renamed") is None


@pytest.mark.parametrize(
    ("name", "refusal"),
    [
        (KEY_PARAMETER, "EntityAlreadyExists.Parameter"),  # the local cloud made it at start
        ("ALIYUN-key", "not starting with ALIYUN"),
        ("oos_key", "not starting with"),
        ("a key", "letters, digits, - and _"),
    ],
)
def test_a_name_taken_or_not_allowed_fails_the_stack_and_changes_nothing(cloud, name, refusal):
    before = copy.deepcopy(cloud.oos.parameters)
    stack = cloud.ros.create_stack(_template(), {"Name": name}, disable_rollback=True)
    assert stack.status == "CREATE_FAILED" and refusal in stack.reason
    assert cloud.oos.parameters.keys() == before.keys()
    assert cloud.oos.parameters[(cloud.region, KEY_PARAMETER)].values == before[(cloud.region, KEY_PARAMETER)].values


@pytest.mark.parametrize(
    ("properties", "refusal"),
    [
        ({"Length": 0}, "Length 0 of ALIYUN::RandomString is not between 1 and 512"),
        ({"Length": 4, "CharacterClasses": [{"Class": "digits", "Min": 5}]}, "exceed its Length 4"),
        ({"Sequence": "emoji"}, "Sequence 'emoji' of ALIYUN::RandomString is not one of"),
    ],
)
def test_a_random_string_it_cannot_draw_fails_the_stack(cloud, properties, refusal):
    stack = cloud.ros.create_stack(_template(**properties), {}, disable_rollback=True)
    assert stack.status == "CREATE_FAILED" and refusal in stack.reason
    assert _values(cloud) is None

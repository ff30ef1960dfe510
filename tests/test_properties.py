"""Property validation: every rule names the property it guards."""

import pytest
from copyimage.errors import InvalidProperty
from copyimage.properties import (
    STACK_TAG,
    USER_TAG_LIMIT,
    DeleteOptions,
    Tag,
    parse_delete_options,
    parse_properties,
    replacement_changes,
)

VALID = {"ImageId": "m-source0001", "DestinationRegionId": "cn-shanghai"}


def parse(**changes):
    return parse_properties({**VALID, **changes}, "cn-hangzhou")


def test_minimal_properties_take_defaults():
    props = parse()
    assert props.image_id == "m-source0001"
    assert props.source_region_id == "cn-hangzhou"  # from the request's RegionId
    assert props.destination_image_name is None
    assert props.encrypted is False
    assert props.tags == ()
    assert (props.retain_on_delete, props.force_delete, props.delete_snapshots) == (False, False, False)


@pytest.mark.parametrize("raw", [True, "true", "True", "TRUE"])
def test_booleans_in_every_spelling(raw):
    props = parse(Encrypted=raw, RetainOnDelete=raw, ForceDelete=raw, DeleteSnapshots=raw)
    assert (props.encrypted, props.retain_on_delete, props.force_delete, props.delete_snapshots) == (True,) * 4


@pytest.mark.parametrize("raw", [False, "false", "False"])
def test_false_booleans(raw):
    assert parse(Encrypted=raw).encrypted is False


def test_tags_as_objects_and_as_key_value_strings():
    assert parse(Tag=[{"Key": "team", "Value": "web"}, {"Key": "env"}]).tags == (Tag("team", "web"), Tag("env", ""))
    assert parse(Tag=["team=web", "env=prod", ""]).tags == (Tag("team", "web"), Tag("env", "prod"))


def test_full_property_set():
    props = parse(
        SourceRegionId="cn-beijing",
        DestinationImageName="golden.copy:v1_2-3",
        DestinationDescription="Finance team image",
        Encrypted="true",
        KMSKeyId="key-123",
        ResourceGroupId="rg-aek2abc",
        ServiceToken="acs:fc:cn-hangzhou:123:functions/x",  # CloudFormation-style; ROS leaves it out
    )
    assert props.source_region_id == "cn-beijing"
    assert props.kms_key_id == "key-123"
    assert props.resource_group_id == "rg-aek2abc"


@pytest.mark.parametrize(
    ("changes", "name", "rule"),
    [
        ({"ImageId": None}, "ImageId", "is required"),
        ({"ImageId": "ubuntu_22_04"}, "ImageId", "custom image id"),
        ({"ImageId": 42}, "ImageId", "must be a string"),
        ({"DestinationRegionId": ""}, "DestinationRegionId", "is required"),
        ({"DestinationRegionId": "Shanghai"}, "DestinationRegionId", "region id"),
        ({"SourceRegionId": "hangzhou!"}, "SourceRegionId", "region id"),
        ({"DestinationImageName": "a"}, "DestinationImageName", "2 to 128"),
        ({"DestinationImageName": "x" * 129}, "DestinationImageName", "2 to 128"),
        ({"DestinationImageName": "1abc"}, "DestinationImageName", "start with a letter"),
        ({"DestinationImageName": "http://x"}, "DestinationImageName", "http://"),
        ({"DestinationImageName": "aliyun-copy"}, "DestinationImageName", "aliyun"),
        ({"DestinationImageName": "acs:copy"}, "DestinationImageName", "acs:"),
        ({"DestinationImageName": "my image"}, "DestinationImageName", "contain only"),
        ({"DestinationDescription": "x"}, "DestinationDescription", "2 to 256"),
        ({"DestinationDescription": "https://example.com"}, "DestinationDescription", "https://"),
        ({"DestinationDescription": "y" * 257}, "DestinationDescription", "2 to 256"),
        ({"Encrypted": "yes"}, "Encrypted", "true or false"),
        ({"RetainOnDelete": 1}, "RetainOnDelete", "true or false"),
        ({"ForceDelete": "no"}, "ForceDelete", "true or false"),
        ({"DeleteSnapshots": "maybe"}, "DeleteSnapshots", "true or false"),
        ({"KMSKeyId": "key-1"}, "KMSKeyId", "Encrypted: true"),
        ({"KMSKeyId": "key-1", "Encrypted": "false"}, "KMSKeyId", "Encrypted: true"),
        ({"ResourceGroupId": "group-1"}, "ResourceGroupId", "resource group id"),
        ({"Tag": "team=web"}, "Tag", "must be a list"),
        ({"Tag": [{"Value": "x"}]}, "Tag[1].Key", "is required"),
        ({"Tag": [{"Key": "aliyun-x"}]}, "Tag[1].Key", "aliyun"),
        ({"Tag": [{"Key": "acs:x"}]}, "Tag[1].Key", "acs:"),
        ({"Tag": [{"Key": "see http://x"}]}, "Tag[1].Key", "http://"),
        ({"Tag": [{"Key": "k" * 129}]}, "Tag[1].Key", "at most 128"),
        ({"Tag": [{"Key": STACK_TAG}]}, "Tag[1].Key", "kept for the provider"),
        ({"Tag": [{"Key": "ok"}, {"Key": "v", "Value": "acs:x"}]}, "Tag[2].Value", "acs:"),
        ({"Tag": [{"Key": "v", "Value": "Aliyun-made"}]}, "Tag[1].Value", "aliyun"),
        ({"Tag": [{"Key": "v", "Value": "see https://x"}]}, "Tag[1].Value", "https://"),
        ({"Tag": [{"Key": "v", "Value": "HTTP://x"}]}, "Tag[1].Value", "http://"),
        ({"AllowCopyInSameRegion": "sometimes"}, "AllowCopyInSameRegion", "true or false"),
        ({"AllowRelay": "often"}, "AllowRelay", "true or false"),
        ({"Tag": [{"Key": "v", "Value": "v" * 129}]}, "Tag[1].Value", "at most 128"),
        ({"Tag": [{"Key": "v", "Colour": "red"}]}, "Tag[1].Colour", "not a tag field"),
        ({"Tag": [7]}, "Tag[1]", "must be an object"),
        ({"Tag": ["a=1", "a=2"]}, "Tag", "more than once"),
        ({"Tag": [f"k{i}=v" for i in range(USER_TAG_LIMIT + 1)]}, "Tag", f"at most {USER_TAG_LIMIT}"),
        ({"DestinationImageNmae": "typo"}, "DestinationImageNmae", "not a property"),
    ],
)
def test_each_rule_names_its_property(changes, name, rule):
    with pytest.raises(InvalidProperty) as raised:
        parse(**changes)
    assert raised.value.name == name
    assert rule in raised.value.rule
    assert str(raised.value).startswith(f"Property {name}:")


@pytest.mark.parametrize(
    "huge",
    [
        {"Tag": [f"k{i}=v" for i in range(40_000)]},
        {"Tag": [{"Key": "k", "Value": "v"}] * 40_000},
        {"Tag": [""] * 40_000 + ["a=1", "a=2"]},
        {"DestinationImageName": "a" * 1_000_000},
        {"DestinationDescription": "d" * 1_000_000},
        {"ImageId": "m-" + "1" * 1_000_000},
        {"x" * 1_000_000: "typo"},
        {f"Unknown{i}": i for i in range(40_000)},
    ],
)
def test_huge_input_is_refused_in_well_under_a_second(huge):
    import time

    started = time.process_time()
    with pytest.raises(InvalidProperty) as raised:
        parse(**huge)
    assert time.process_time() - started < 0.2
    assert len(str(raised.value)) < 1000  # the reason names the property without repeating the input


def test_allow_copy_in_same_region_makes_no_copy_only_within_one_region():
    assert parse(AllowCopyInSameRegion="true", DestinationRegionId="cn-hangzhou").copies is False
    assert parse(AllowCopyInSameRegion="true").copies is True  # another region: a copy as always
    assert parse(DestinationRegionId="cn-hangzhou").copies is True  # a same-region copy, when not allowed to skip


def test_allow_relay_defaults_to_true_and_never_relays_a_copy_with_a_kms_key():
    assert parse().relays is True and parse(AllowRelay="false").relays is False
    assert parse(Encrypted="true").relays is True  # the service key, from an unencrypted relay: the same image
    assert parse(Encrypted="true", KMSKeyId="key-1", AllowRelay=True).relays is False
    assert replacement_changes(parse(), parse(AllowRelay="false")) == []  # how a copy is made, not what it is


def test_user_tag_limit_leaves_room_for_the_providers_tags():
    assert len(parse(Tag=[f"k{i}=v" for i in range(USER_TAG_LIMIT)]).tags) == USER_TAG_LIMIT


def test_replacement_changes_lists_only_properties_a_copy_cannot_change():
    old = parse(DestinationImageName="first", Tag=["a=1"])
    assert replacement_changes(old, parse(DestinationImageName="second", Tag=["a=2"])) == []
    new = parse(ImageId="m-other", DestinationRegionId="cn-beijing", Encrypted="true", KMSKeyId="key-9")
    assert replacement_changes(old, new) == ["ImageId", "DestinationRegionId", "Encrypted", "KMSKeyId"]
    assert replacement_changes(old, parse(AllowCopyInSameRegion=True)) == ["AllowCopyInSameRegion"]
    assert replacement_changes(old, parse(SourceRegionId="cn-shenzhen")) == ["SourceRegionId"]


def test_adding_encrypted_false_is_no_change():
    assert replacement_changes(parse(), parse(Encrypted="false")) == []


def test_delete_reads_only_what_it_needs():
    raw = {**VALID, "DestinationImageNmae": "typo", "ForceDelete": "maybe", "DeleteSnapshots": "True"}
    assert parse_delete_options(raw, "cn-hangzhou") == DeleteOptions(
        "cn-shanghai", copies=True, retain_on_delete=False, force_delete=False, delete_snapshots=True
    )


def test_delete_knows_when_no_copy_was_made():
    raw = {**VALID, "DestinationRegionId": "cn-hangzhou", "AllowCopyInSameRegion": "True"}
    assert parse_delete_options(raw, "cn-hangzhou").copies is False
    assert parse_delete_options({**raw, "SourceRegionId": "cn-beijing"}, "cn-hangzhou").copies is True


def test_delete_keeps_retain_on_delete_strict_and_needs_the_region():
    with pytest.raises(InvalidProperty, match="RetainOnDelete"):
        parse_delete_options({**VALID, "RetainOnDelete": "yes"}, "cn-hangzhou")  # read as false, it would delete
    with pytest.raises(InvalidProperty, match="DestinationRegionId"):
        parse_delete_options({"ImageId": "m-1"}, "cn-hangzhou")

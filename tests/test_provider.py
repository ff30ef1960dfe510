"""deploy/provider.yml: the provider installed with one ROS stack, from the code package `make package` builds, and
the local cloud running that package (not the working tree)."""

from __future__ import annotations

import copy
import io
import json

import pytest
import yaml
from conftest import ROOT, copies_in
from copyimage.config import DEFAULT_KEY_PARAMETER
from copyimage.sealing import MIN_KEY_BYTES

from deploy import package as packages
from deploy import provider, smoke
from emulator.ros import TemplateError, load_template
from emulator.ros.resource_types import RESOURCE_TYPES, check_declared
from emulator.ros.templates import resources_of

TEMPLATE = ROOT / "deploy" / "provider.yml"


def _get_atts(node, found):
    if isinstance(node, list):
        for item in node:
            _get_atts(item, found)
    elif isinstance(node, dict):
        if list(node) == ["Fn::GetAtt"]:
            found.append(tuple(node["Fn::GetAtt"]))
        for value in node.values():
            _get_atts(value, found)
    return found


def test_the_template_uses_only_what_the_ros_references_list():
    template = load_template(TEMPLATE)
    kinds = {name: spec["Type"] for name, spec in template["Resources"].items()}
    assert sorted(set(kinds.values())) == sorted(RESOURCE_TYPES)
    for name, spec in template["Resources"].items():
        check_declared(spec["Type"], spec["Properties"], name)  # names, required ones, Code and LogConfig keys
    for resource, attribute in _get_atts(template, []):
        assert attribute in RESOURCE_TYPES[kinds[resource]].attributes, (resource, attribute)
    for url in {kind.url for kind in RESOURCE_TYPES.values()}:
        assert url.startswith("https://www.alibabacloud.com/help/en/ros/developer-reference/aliyun-")
        assert url in (ROOT / "docs" / "conformance.md").read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("resource", "change", "refusal"),
    [
        ("Function", {"Concurrency": 1}, "Unknown Property Concurrency of ALIYUN::FC3::Function"),
        ("Function", {"Code": {"OssBucket": "b"}}, "Unknown Property Code.OssBucket"),
        ("Role", {"RoleName": None}, "Property RoleName of ALIYUN::RAM::Role is required"),
    ],
)
def test_a_property_the_reference_does_not_list_is_refused(resource, change, refusal):
    template = copy.deepcopy(load_template(TEMPLATE))
    properties = template["Resources"][resource]["Properties"]
    for key, value in change.items():
        if value is None:
            del properties[key]
        else:
            properties[key] = value
    with pytest.raises(TemplateError, match=refusal):
        resources_of(template)


def test_the_role_has_exactly_the_statements_of_ram_policy_json():
    role = load_template(TEMPLATE)["Resources"]["Role"]["Properties"]
    (policy,) = role["Policies"]
    text = json.dumps(policy["PolicyDocument"])
    defaults = {"ALIYUN::AccountId": "ACCOUNT_ID", "FunctionName": "ros-copy-image"}
    defaults["ContinuationKeyParameter"] = DEFAULT_KEY_PARAMETER  # the stack's parameter, the function's default
    for name, value in defaults.items():  # Fn::Sub of the pseudo parameter and the parameters, at their defaults
        text = text.replace("${" + name + "}", value)
    subbed = json.loads(text, object_hook=lambda node: node.get("Fn::Sub", node) if len(node) == 1 else node)
    expected = json.loads((ROOT / "deploy" / "ram-policy.json").read_text(encoding="utf-8"))
    assert subbed == expected
    trusted = role["AssumeRolePolicyDocument"]["Statement"][0]["Principal"]["Service"]
    assert trusted == ["fc.aliyuncs.com"]


def test_the_function_has_s_yamls_settings():
    props = yaml.safe_load((ROOT / "s.yaml").read_text(encoding="utf-8"))["resources"]["ros-copy-image"]["props"]
    resources = load_template(TEMPLATE)["Resources"]
    function, async_config = resources["Function"]["Properties"], resources["AsyncInvokeConfig"]["Properties"]
    pairs = {"Cpu": "cpu", "MemorySize": "memorySize", "DiskSize": "diskSize", "Timeout": "timeout"}
    assert {name: function[name] for name in pairs} == {name: props[key] for name, key in pairs.items()}
    assert (function["Handler"], function["InternetAccess"]) == (props["handler"], props["internetAccess"])
    environment = dict(function["EnvironmentVariables"])
    key_name = environment.pop("COPYIMAGE_CONTINUATION_KEY_PARAMETER")
    assert key_name == {"Fn::GetAtt": ["ContinuationKey", "SecretParameterName"]}
    assert environment == props["environmentVariables"]  # s.yaml's function reads the default key parameter
    given = props["asyncInvokeConfig"]
    assert async_config["AsyncTask"] == given["asyncTask"]
    assert async_config["MaxAsyncRetryAttempts"] == given["maxAsyncRetryAttempts"]
    assert async_config["MaxAsyncEventAgeInSeconds"] == given["maxAsyncEventAgeInSeconds"]


def test_create_stack_refuses_an_unknown_property_before_creating_anything(make_cloud):
    from alibabacloud_ros20190910 import models as ros
    from alibabacloud_tea_openapi.exceptions import ClientException

    cloud = make_cloud(function_deployed=False)
    template = load_template(TEMPLATE)
    template["Resources"]["Function"]["Properties"]["Concurrency"] = 1
    request = ros.CreateStackRequest(
        region_id=cloud.region,
        stack_name="provider",
        template_body=json.dumps(template),
        parameters=[
            ros.CreateStackRequestParameters(parameter_key=k, parameter_value="v") for k in ("CodeBucket", "CodeObject")
        ],
    )
    with pytest.raises(ClientException) as refused:
        cloud.ros_client().create_stack(request)
    assert refused.value.code == "InvalidTemplate"
    assert "Unknown Property Concurrency" in refused.value.message
    assert cloud.ros.stacks == {} and not cloud.fc.deployed


def _installed(make_cloud, code, **options):
    cloud = make_cloud(function_deployed=False, **options)
    target = smoke.local_target(cloud, code)
    return cloud, target, provider.install(target, code, io.StringIO())


def _user_stack(cloud, target, timeout_seconds=43200, disable_rollback=False):
    parameters = {"ImageId": target.image_id, "DestinationRegionId": target.destination, "Timeout": timeout_seconds}
    return cloud.ros.begin_create(cloud.template(), parameters, "user-stack", disable_rollback=disable_rollback)


def test_the_provider_stack_creates_the_role_and_function_and_removes_them(make_cloud, code_package):
    cloud, target, installed = _installed(make_cloud, code_package)
    assert (
        installed.service_token
        == cloud.fc.service_token
        == f"acs:fc:{cloud.region}:{cloud.fc.account_id}:functions/ros-copy-image"
    )
    assert cloud.fc.spec.isolated and cloud.fc.spec.code_checksum == code_package.sha256
    assert (cloud.fc.spec.memory, cloud.fc.spec.timeout, cloud.fc.spec.max_async_retries) == (1024, 300.0, 3)
    assert cloud.fc.spec.environment["PYTHONPATH"] == "/code/python"
    role = cloud.ros.native.roles["ros-copy-image-role"]
    assert cloud.fc.spec.role == role.arn and role.policies[0]["PolicyName"] == "ros-copy-image-role-policy"
    provider.uninstall(target, installed, io.StringIO())
    assert not cloud.fc.deployed and cloud.ros.native.roles == {}


def test_the_provider_stack_makes_the_key_the_function_seals_with_and_deletes_it(make_cloud, code_package):
    """No key before the install (the local cloud leaves it to the stack); the one the stack drew is what the
    function's continuations are sealed with and checked against (a copy longer than a run completes); an update
    keeps it; deleting the provider stack deletes it."""
    cloud = make_cloud(function_deployed=False, copy_seconds=1800)
    name = load_template(TEMPLATE)["Parameters"]["ContinuationKeyParameter"]["Default"]
    assert name == DEFAULT_KEY_PARAMETER and (cloud.region, name) not in cloud.oos.parameters
    target = smoke.local_target(cloud, code_package)
    installed = provider.install(target, code_package, io.StringIO())
    resources = cloud.ros.stacks[installed.stack_id].resources
    drawn = resources["ContinuationKeyValue"].data["Value"]
    parameter = cloud.oos.parameters[(cloud.region, name)]
    assert [value for value, _ in parameter.values] == [drawn] and len(drawn.encode()) >= MIN_KEY_BYTES
    assert resources["ContinuationKey"].physical_id == name
    assert cloud.fc.spec.environment["COPYIMAGE_CONTINUATION_KEY_PARAMETER"] == name
    stack = _user_stack(cloud, target)
    cloud.clock.run_task(stack.operation)
    assert stack.status == "CREATE_COMPLETE", stack.reason
    hops = [run for run in cloud.fc.invocations if run.api != "direct"]  # the function's invocations of itself
    assert hops and all(run.error is None for run in hops)
    assert "not authentic" not in "\n".join(cloud.fc.function_log)
    reads = [call for call in cloud.oos.calls if call.action == "GetSecretParameter"]
    assert reads and {call.params.get("Name") for call in reads} == {name} and all(c.status == 200 for c in reads)
    provider.update(target, installed, code_package, io.StringIO())  # the same package: nothing to draw anew
    assert len(cloud.oos.parameters[(cloud.region, name)].values) == 1
    provider.uninstall(target, installed, io.StringIO())
    assert (cloud.region, name) not in cloud.oos.parameters and not cloud.fc.deployed


def _has_runtime_python(runtime: str = "python3.10") -> bool:
    from emulator.fc import sandbox

    try:
        return bool(sandbox.runtime_python(runtime))
    except RuntimeError:
        return False


@pytest.mark.skipif(
    not _has_runtime_python(), reason="no Python 3.10 on this machine: the package's python/ cannot run here"
)
def test_the_function_runs_the_package_not_the_working_tree(make_cloud, code_package, monkeypatch):
    """A package without one of its dependencies (the ECS SDK, which the working tree's environment has) fails:
    the function cannot import, its log says why, and the stack fails rather than run the working tree's code."""
    monkeypatch.setenv("COPYIMAGE_LOCAL_RUNTIME", "strict")
    broken = packages.variant(code_package, "without-ecs-sdk", leave_out="python/alibabacloud_ecs20140526/")
    cloud, target, _ = _installed(make_cloud, broken)
    stack = _user_stack(cloud, target, timeout_seconds=600, disable_rollback=True)
    cloud.clock.run_task(stack.operation)
    assert stack.status == "CREATE_FAILED"
    assert "timed out waiting for the provider" in stack.reason
    log = "\n".join(cloud.fc.function_log)
    assert "ModuleNotFoundError: No module named 'alibabacloud_ecs20140526'" in log
    runs = cloud.fc.invocations
    assert len(runs) == 4 and all("ModuleNotFoundError" in (run.error or "") for run in runs)  # 1 + 3 retries
    assert {run.code_checksum for run in runs} == {broken.sha256}


def test_a_provider_update_with_a_new_package_answers_an_in_flight_copy(make_cloud, code_package):
    cloud, target, installed = _installed(make_cloud, code_package, copy_seconds=1800)
    stack = _user_stack(cloud, target)
    cloud.clock.run_until(lambda: bool(copies_in(cloud)), timeout=600)
    cloud.clock.run_until(lambda: False, timeout=300)  # the copy is under way, its waits handed over
    assert stack.status == "CREATE_IN_PROGRESS"
    newer = packages.variant(code_package, "marked", add={"copyimage-build.txt": b"the next release\n"})
    provider.upload(cloud, newer)
    updated_at = cloud.clock.now()
    provider.update(target, installed, newer, io.StringIO())
    assert cloud.fc.spec.code_checksum == newer.sha256
    cloud.clock.run_task(stack.operation)
    assert stack.status == "CREATE_COMPLETE"
    before = {run.code_checksum for run in cloud.fc.invocations if run.started_at < updated_at}
    after = {run.code_checksum for run in cloud.fc.invocations if run.started_at > updated_at}
    assert before == {code_package.sha256} and after == {newer.sha256}
    answers = [answer for answer in cloud.ros.answers if answer.accepted]
    assert len(answers) == 1 and answers[0].at > updated_at  # the new code answered the copy's Create
    assert [request["RequestType"] for request in cloud.ros.requests] == ["Create"]  # the user stack untouched
    assert cloud.ros.violations == []


def test_the_zip_is_named_by_its_hash_and_reproducible(tmp_path):
    code = tmp_path / "code"
    (code / "python" / "dep").mkdir(parents=True)
    (code / "index.py").write_text("from copyimage.handler import handler\n")
    (code / "python" / "dep" / "__init__.py").write_text("")
    first = packages.zip_code(code, "python3.10", build=tmp_path / "build")
    manifest = json.loads((tmp_path / "build" / "package-python3.10.json").read_text())
    assert manifest == {
        "zip": first.zip_path.name,
        "sha256": first.sha256,
        "runtime": "python3.10",
        "bytes": first.size,
    }
    assert first.zip_path.name == f"ros-copy-image-python3.10-{first.sha256[:12]}.zip"
    (code / "index.py").touch()  # a new time, the same contents: the same zip
    assert packages.zip_code(code, "python3.10", build=tmp_path / "build").sha256 == first.sha256
    (code / "python" / "dep" / "__init__.py").write_text("VERSION = 2\n")
    second = packages.zip_code(code, "python3.10", build=tmp_path / "build")
    assert second.sha256 != first.sha256 and not first.zip_path.exists()  # the old zip replaced


def test_an_update_of_a_property_the_reference_says_is_not_editable_fails_and_changes_nothing(make_cloud, code_package):
    cloud, _, installed = _installed(make_cloud, code_package)
    stack = cloud.ros.stacks[installed.stack_id]
    role = cloud.ros.native.roles["ros-copy-image-role"]
    cloud.ros.update_stack(stack, {"RoleName": "another-role"})
    assert stack.status == "UPDATE_FAILED"
    assert "RoleName of ALIYUN::RAM::Role cannot be updated" in stack.reason
    assert cloud.ros.native.roles == {"ros-copy-image-role": role} and cloud.fc.spec.role == role.arn


def test_without_an_interpreter_of_the_runtime_the_install_fails_and_rolls_back(make_cloud, code_package, monkeypatch):
    from emulator.fc import sandbox

    def missing(runtime):
        raise RuntimeError(f"no Python {runtime.removeprefix('python')} on this machine to run the function")

    monkeypatch.setattr(sandbox, "runtime_python", missing)
    monkeypatch.setenv("COPYIMAGE_LOCAL_RUNTIME", "strict")
    cloud = make_cloud(function_deployed=False)
    target = smoke.local_target(cloud, code_package)
    with pytest.raises(provider.InstallFailed, match=r"CREATE_ROLLBACK_COMPLETE.*no Python 3\.10 on this machine"):
        provider.install(target, code_package, io.StringIO())
    assert not cloud.fc.deployed and cloud.ros.native.roles == {}


def test_without_an_interpreter_of_the_runtime_the_package_runs_on_this_one_and_says_so(
    make_cloud, code_package, monkeypatch
):
    """The fallback of a machine with only its own Python: the package's code, this environment's packages."""
    from emulator.fc import sandbox

    def missing(runtime):
        raise RuntimeError(f"no Python {runtime.removeprefix('python')} on this machine")

    monkeypatch.setattr(sandbox, "runtime_python", missing)
    monkeypatch.delenv("COPYIMAGE_LOCAL_RUNTIME", raising=False)
    cloud, target, installed = _installed(make_cloud, code_package)
    stack = _user_stack(cloud, target)
    cloud.clock.run_task(stack.operation)
    assert stack.status == "CREATE_COMPLETE", stack.reason
    assert "no Python 3.10 on this machine: running the package's code on this machine's Python" in "\n".join(
        cloud.fc.function_log
    )
    assert {run.code_checksum for run in cloud.fc.invocations} == {code_package.sha256}
    provider.uninstall(target, installed, io.StringIO())

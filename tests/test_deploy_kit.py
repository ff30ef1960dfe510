"""The deployment kit: s.yaml against the fc3 props schema, template.yml, the RAM policy and role against the
function's own source, and the sample events against the function's parsers."""

from __future__ import annotations

import ast
import json
import re
import subprocess
from pathlib import Path
from types import SimpleNamespace

import jsonschema
import pytest
import yaml
from copyimage.config import ROS_MAX_WAIT_SECONDS, Settings
from copyimage.outbound import url_refusal
from copyimage.properties import KNOWN_PROPERTIES, parse_properties, replacement_changes
from copyimage.protocol import parse_request
from copyimage.retry import worst_case_seconds
from copyimage.waiting import MAX_DELAY as MAX_ASYNC_DELAY_SECONDS

from emulator.clock import VirtualClock
from emulator.ros import RosStandIn

ROOT = Path(__file__).resolve().parent.parent
SCHEMA_NAME = "serverless-devs-fc3-props.schema.json"
SHARED_SCHEMA = ROOT.parent / "shared" / "schemas" / SCHEMA_NAME  # next to the repository in CI
VENDORED_SCHEMA = ROOT / "deploy" / "schema" / SCHEMA_NAME  # devsapp/fc3 src/schema.json, commit 4ca1c1b8, MIT
SOURCE = ROOT / "function" / "copyimage"
POLICY = ROOT / "deploy" / "ram-policy.json"
SCOPED_POLICY = ROOT / "deploy" / "ram-policy-tag-scoped.json"
ACCOUNT = "ACCOUNT_ID"  # the policy files' placeholder; role.yml puts ${ALIYUN::AccountId} there
ROLE_TEMPLATE = ROOT / "deploy" / "role.yml"
EVENTS = ROOT / "events"

SPEC_PARAMETERS = (
    "ImageId",
    "DestinationRegionId",
    "DestinationImageName",
    "DestinationDescription",
    "Encrypted",
    "Tag",
)
ROS_REQUEST_FIELDS = (  # every field ROS sends with every request (platform-facts.md)
    "RequestType",
    "ResponseURL",
    "IntranetResponseURL",
    "StackId",
    "StackName",
    "ResourceOwnerId",
    "CallerId",
    "RegionId",
    "RequestId",
    "ResourceType",
    "LogicalResourceId",
    "ResourceProperties",
)
EXTRA_FIELDS = {
    "Create": (),
    "Update": ("PhysicalResourceId", "OldResourceProperties"),
    "Delete": ("PhysicalResourceId",),
}


# --- helpers -------------------------------------------------------------------------------------------------


def load_yaml(path: Path) -> dict:
    with path.open(encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def fc3_schema() -> dict:
    path = SHARED_SCHEMA if SHARED_SCHEMA.is_file() else VENDORED_SCHEMA
    return json.loads(path.read_text(encoding="utf-8"))


_PLACEHOLDER = re.compile(r"\$\{([^{}]*)\}")
_ENV = re.compile(r"""env\(\s*'([^']+)'\s*(?:,\s*'([^']*)'\s*)?\)""")
_CONFIG = re.compile(r"""config\(\s*'([^']+)'\s*\)""")
SAMPLE_CONFIG = {"AccountID": "1234567890123456"}


def resolve_devs(node: object, variables: dict, env: dict) -> object:
    """Resolve Serverless Devs ``${env('N', 'default')}``, ``${vars.x}`` and ``${config('K')}`` in strings."""
    if isinstance(node, dict):
        return {key: resolve_devs(value, variables, env) for key, value in node.items()}
    if isinstance(node, list):
        return [resolve_devs(value, variables, env) for value in node]
    if not isinstance(node, str):
        return node

    def one(match: re.Match) -> str:
        expression = match.group(1).strip()
        if expression.startswith("vars."):
            return str(variables[expression[len("vars.") :]])
        env_call = _ENV.fullmatch(expression)
        if env_call:
            name, default = env_call.groups()
            if name not in env and default is None:
                raise KeyError(f"${{env('{name}')}} has no default and no value")
            return env.get(name, default)
        config_call = _CONFIG.fullmatch(expression)
        if config_call:
            return SAMPLE_CONFIG[config_call.group(1)]
        raise AssertionError(f"unknown Serverless Devs expression: ${{{expression}}}")

    resolved = _PLACEHOLDER.sub(one, node)
    assert "${" not in resolved, f"unresolved placeholder in {node!r}"
    return resolved


def s_yaml(env: dict | None = None) -> dict:
    """s.yaml with every placeholder resolved for the given environment."""
    env = env or {}
    raw = load_yaml(ROOT / "s.yaml")
    variables: dict = {}
    for name, value in (raw.get("vars") or {}).items():
        variables[name] = resolve_devs(value, variables, env)
    return {**raw, "vars": variables, "resources": resolve_devs(raw["resources"], variables, env)}


def fc3_props(env: dict | None = None) -> dict:
    resources = s_yaml(env)["resources"]
    (resource,) = [r for r in resources.values() if r.get("component") == "fc3"]
    return resource["props"]


def resolve_ros(node: object, values: dict) -> object:
    """Resolve Ref, Fn::Sub and Fn::Join in a ROS template fragment with the given parameter values."""
    if isinstance(node, list):
        return [resolve_ros(item, values) for item in node]
    if not isinstance(node, dict):
        return node
    if set(node) == {"Ref"}:
        return values[node["Ref"]]
    if set(node) == {"Fn::Sub"}:
        text, extra = (node["Fn::Sub"], {}) if isinstance(node["Fn::Sub"], str) else node["Fn::Sub"]
        scope = {**values, **{k: resolve_ros(v, values) for k, v in extra.items()}}

        def one(match: re.Match) -> str:
            return str(scope[match.group(1)])

        resolved = re.sub(r"\$\{([^}]+)\}", one, text)
        return resolved
    if set(node) == {"Fn::Join"}:
        separator, items = node["Fn::Join"]
        return separator.join(str(resolve_ros(item, values)) for item in items)
    return {key: resolve_ros(value, values) for key, value in node.items()}


def as_list(value: object) -> list:
    return list(value) if isinstance(value, list) else [value]


def normalized(statements: list[dict]) -> list[tuple]:
    return sorted(
        (
            s["Effect"],
            tuple(sorted(as_list(s["Action"]))),
            tuple(sorted(as_list(s["Resource"]))),
            json.dumps(s.get("Condition"), sort_keys=True),
        )
        for s in statements
    )


def policy() -> dict:
    return json.loads(POLICY.read_text(encoding="utf-8"))


def policy_actions(document: dict) -> dict[str, list]:
    """action -> resources allowing it."""
    allowed: dict[str, list] = {}
    for statement in document["Statement"]:
        for action in as_list(statement["Action"]):
            allowed.setdefault(action, []).extend(as_list(statement["Resource"]))
    return allowed


def ecs_actions_in_source() -> set[str]:
    """The ECS actions the function calls, read from images.py (every ECS call goes through EcsImages._call)."""
    text = (SOURCE / "images.py").read_text(encoding="utf-8")
    named = re.findall(r'self\._call\(\s*"([A-Za-z]+)"', text)
    calls = len(re.findall(r"self\._call\(", text))
    assert named and len(named) == calls, "a self._call(...) does not name its action as a string literal"
    # A second reading: the SDK methods called, snake_case -> the API's CamelCase name.
    sdk = {
        "".join(part.capitalize() for part in name.split("_"))
        for name in re.findall(r"\.([a-z_]+)_with_options\(", text)
    }
    assert sdk == set(named), f"the SDK calls {sorted(sdk)} and the named actions {sorted(set(named))} differ"
    return set(named)


def sdk_call_sites() -> set[str]:
    return {
        path.name
        for path in SOURCE.glob("*.py")
        if re.search(r"_with_options\(|\.invoke_function\(|\.call_api\(", path.read_text(encoding="utf-8"))
    }


# --- (a) s.yaml -----------------------------------------------------------------------------------------------

SAMPLE_ENVS = [
    pytest.param({}, id="defaults"),
    pytest.param(
        {"REGION": "cn-shanghai", "FUNCTION_NAME": "copy-image-b", "ROLE_ARN": "acs:ram::1234567890123456:role/x"},
        id="overridden",
    ),
]


def test_vendored_schema_matches_the_shared_one():
    if not SHARED_SCHEMA.is_file():
        pytest.skip("no shared/ next to the repository: the vendored schema is the one used")
    assert json.loads(VENDORED_SCHEMA.read_text(encoding="utf-8")) == json.loads(
        SHARED_SCHEMA.read_text(encoding="utf-8")
    )


@pytest.mark.parametrize("env", SAMPLE_ENVS)
def test_s_yaml_props_validate_against_the_fc3_schema(env):
    schema = fc3_schema()
    props = fc3_props(env)
    errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(props), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors)
    # The schema allows unknown keys, so a misspelt one would pass silently: every key must be a schema property.
    assert set(props) <= set(schema["properties"]), sorted(set(props) - set(schema["properties"]))
    async_fields = schema["definitions"]["IAsyncInvokeConfig"]["properties"]
    assert set(props["asyncInvokeConfig"]) <= set(async_fields)


@pytest.mark.parametrize("env", SAMPLE_ENVS)
def test_s_yaml_takes_region_function_name_and_role_from_the_environment(env):
    props = fc3_props(env)
    assert props["region"] == env.get("REGION", "cn-hangzhou")
    assert props["functionName"] == env.get("FUNCTION_NAME", "ros-copy-image")
    assert props["role"] == env.get("ROLE_ARN", "ros-copy-image-role")


def test_s_yaml_project_shape():
    raw = load_yaml(ROOT / "s.yaml")
    assert raw["edition"] == "3.0.0"
    assert raw["name"] == "ros-copy-image"
    assert raw.get("access")
    components = [r["component"] for r in raw["resources"].values()]
    assert components == ["fc3"]


def test_s_yaml_runs_the_handler_from_the_function_folder():
    props = fc3_props()
    assert props["runtime"] == "python3.10"  # the default; PYTHON_RUNTIME=python3.12 for FC's current one
    assert fc3_props({"PYTHON_RUNTIME": "python3.12"})["runtime"] == "python3.12"
    assert fc3_props({"CODE_DIR": "./build/code"})["code"] == "./build/code"  # what make package built
    assert props["handler"] == "index.handler"
    assert props["code"] == "./function"
    module, _, name = props["handler"].partition(".")
    source = ROOT / props["code"] / f"{module}.py"
    tree = ast.parse(source.read_text(encoding="utf-8"))
    defined = {
        alias.asname or alias.name for node in tree.body if isinstance(node, ast.ImportFrom) for alias in node.names
    }
    defined |= {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}
    assert name in defined, f"{source} defines no {name}"
    env = props["environmentVariables"]
    assert env["PYTHONPATH"] == "/code/python"  # where `s build` installs function/requirements.txt
    assert env["POWERTOOLS_SERVICE_NAME"]
    assert not [key for key in env if key.upper().startswith("FC_")], "the FC_ prefix is reserved"
    assert props["logConfig"] == "auto"


def test_s_yaml_timeout_leaves_room_for_the_inline_wait_and_the_worst_case_after_it():
    props = fc3_props()
    settings = Settings.from_env({})
    # waiting.Budget stops waiting `deadline_margin + ecs_call_bound` before the timeout: below that plus the
    # inline wait, the timeout and not COPYIMAGE_INLINE_WAIT_SECONDS would govern.
    budget_floor = settings.inline_wait_seconds + settings.deadline_margin_seconds + settings.ecs_call_bound
    assert props["timeout"] >= budget_floor
    # And an invocation whose every network call times out (a last look, scheduling the answer's receipt,
    # delivering the answer, stopping the receipt, marking the copy) must still end before FC stops it.
    delivery = worst_case_seconds(settings.response_attempts, settings.http_timeout_seconds)
    assert props["timeout"] > settings.inline_wait_seconds + 4 * settings.ecs_call_bound + delivery
    assert props["memorySize"] >= 128 and props["memorySize"] % 64 == 0


def test_s_yaml_cpu_and_memory_follow_fc3s_rules_and_are_what_the_benchmark_prices():
    props = fc3_props()
    cpu, gb = props["cpu"], props["memorySize"] / 1024
    assert 0.05 <= cpu <= 16 and round(cpu / 0.05, 6).is_integer()  # FC 3.0: multiples of 0.05 vCPU
    assert props["memorySize"] % 64 == 0 and 128 <= props["memorySize"] <= 32768
    assert 1 <= gb / cpu <= 4  # vCPU : memory (GB) between 1:1 and 1:4
    assert props["diskSize"] in (512, 10240)  # set explicitly: fc3 sends no cpu default unless memory is 512
    from bench.compare import deployed_model

    model = deployed_model()
    assert (model.vcpu, model.memory_mb, model.timeout) == (cpu, props["memorySize"], props["timeout"])


def test_s_yaml_async_settings_suit_deferred_waiting():
    schema_limit = fc3_schema()["definitions"]["IAsyncInvokeConfig"]["properties"]["maxAsyncEventAgeInSeconds"]
    async_config = fc3_props()["asyncInvokeConfig"]
    # A continuation event must outlive its x-fc-async-delay and ROS's longest wait for one resource.
    needed = min(ROS_MAX_WAIT_SECONDS + MAX_ASYNC_DELAY_SECONDS, schema_limit["maximum"])
    assert async_config["maxAsyncEventAgeInSeconds"] >= needed
    assert 1 <= async_config["maxAsyncRetryAttempts"] <= 8
    assert "destinationConfig" not in async_config
    assert async_config.get("asyncTask") is True  # FC's task ids, deduplicated: twins of a hand-over die at once
    assert async_config.get("qualifier", "LATEST") == "LATEST"  # the self-invocation targets LATEST


def test_defaults_agree_across_s_yaml_template_and_role():
    props = fc3_props()
    template = load_yaml(ROOT / "template.yml")
    role = load_yaml(ROLE_TEMPLATE)
    assert template["Parameters"]["FunctionName"]["Default"] == props["functionName"]
    assert role["Parameters"]["FunctionName"]["Default"] == props["functionName"]
    assert role["Parameters"]["RoleName"]["Default"] == props["role"]


# --- (b) template.yml -----------------------------------------------------------------------------------------


def test_template_structure():
    template = load_yaml(ROOT / "template.yml")
    assert template["ROSTemplateFormatVersion"] == "2015-09-01"
    parameters = template["Parameters"]
    for name in (*SPEC_PARAMETERS, "FunctionName", "Timeout"):
        assert name in parameters, f"template.yml has no parameter {name}"
    assert {str(v) for v in parameters["Encrypted"]["AllowedValues"]} == {"True", "true", "False", "false"}
    timeout = parameters["Timeout"]
    assert timeout["MaxValue"] <= ROS_MAX_WAIT_SECONDS
    assert timeout.get("MinValue", 1) <= timeout["Default"] <= timeout["MaxValue"]
    assert parameters["Tag"]["Type"] == "CommaDelimitedList"


def test_template_resource_builds_an_fc3_service_token_and_wires_every_property():
    template = load_yaml(ROOT / "template.yml")
    resource = template["Resources"]["CopyImage"]
    assert resource["Type"] == "Custom::CopyImage"
    properties = resource["Properties"]
    values = {"ALIYUN::Region": "cn-hangzhou", "ALIYUN::AccountId": "1234567890123456", "FunctionName": "my-fn"}
    token = resolve_ros(properties["ServiceToken"], values)
    assert token == "acs:fc:cn-hangzhou:1234567890123456:functions/my-fn"
    assert len(token) <= 512
    assert properties["Timeout"] == {"Ref": "Timeout"}
    wired = properties["Parameters"]
    for name in SPEC_PARAMETERS:
        assert wired.get(name) == {"Ref": name}, f"Parameters.{name} is not wired to the template parameter"
    assert set(wired) <= set(KNOWN_PROPERTIES), sorted(set(wired) - set(KNOWN_PROPERTIES))
    assert "ServiceToken" not in wired


def test_template_outputs_the_image_id():
    template = load_yaml(ROOT / "template.yml")
    assert template["Outputs"]["ImageId"]["Value"] == {"Fn::GetAtt": ["CopyImage", "ImageId"]}


# --- (c) the RAM policy against the code ----------------------------------------------------------------------


def test_only_images_and_outbound_call_cloud_apis():
    # The action lists below are read from these two files; a call elsewhere would escape them.
    assert sdk_call_sites() == {"images.py", "outbound.py"}


@pytest.mark.parametrize(
    ("runtime", "pins"),
    [("python3.10", "function/requirements.txt"), ("python3.12", "function/requirements-py312.txt")],
)
def test_make_package_installs_the_hashed_pins_of_the_runtime_and_ships_their_bytecode(runtime, pins):
    # FC's /code is read-only ("[Errno 30] Read-only file system: '/code/...'", FC FAQ 181824): bytecode not
    # shipped is compiled again at every cold start, and bytecode of another Python is ignored.
    version = runtime.removeprefix("python")
    done = subprocess.run(
        ["make", "-n", "package", f"PYTHON_RUNTIME={runtime}"], cwd=ROOT, capture_output=True, text=True, check=True
    )
    recipe = done.stdout.replace("\\\n", " ")
    install = next(line for line in recipe.splitlines() if "pip install" in line)
    for option in (
        "--require-hashes",
        f"--python-version {version}",
        f"--abi cp{version.replace('.', '')}",
        f"-r {pins}",
    ):
        assert option in install
    assert "--only-binary=cffi,cryptography" in install
    check = next((line for line in recipe.splitlines() if " -I -S -c " in line), "")
    if check:  # this machine has the runtime's Python: bytecode for it, and the isolated import check
        assert re.search(rf"python{version}|/{version}\.[0-9]+/bin/python -I -S", check), check
        assert "imported from outside the package" in check
        bytecode = r"-m compileall .*--invalidation-mode unchecked-hash -s build/code -p /code build/code"
        assert re.search(bytecode, recipe)
    else:
        assert f"no Python {version} here" in recipe
    assert "rm -rf build/code/copyimage/__pycache__" in recipe  # no bytecode of the working tree's Python
    assert f"-m deploy.package zip --code build/code --runtime {runtime}" in recipe  # the zip provider.yml takes


def test_make_package_refuses_a_runtime_it_has_no_pins_for():
    done = subprocess.run(["make", "package", "PYTHON_RUNTIME=python3.9"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode != 0 and "must be python3.10 or python3.12" in done.stdout


def test_the_function_reads_only_documented_settings_and_no_time_warp():
    # Production must run on the real clock: no setting may scale or shift time, and every setting is in the README.
    source = "\n".join(path.read_text() for path in (ROOT / "function" / "copyimage").glob("*.py"))
    read = set(re.findall(r"COPYIMAGE_[A-Z_]+", source))
    assert "COPYIMAGE_DEFER" in read and "COPYIMAGE_INLINE_WAIT_SECONDS" in read
    assert not {name for name in read if re.search(r"SCALE|EPOCH|SPEED", name)}
    assert read <= set(re.findall(r"COPYIMAGE_[A-Z_]+", (ROOT / "README.md").read_text()))


# ECS's API reference for DescribeRegions: "No authorization for this operation" (and it is absent from ECS's RAM
# action list): the policy cannot, and need not, name it.
NEEDS_NO_AUTHORIZATION = {"DescribeRegions"}


def test_policy_allows_every_ecs_action_the_code_calls_and_nothing_more():
    required = {f"ecs:{action}" for action in ecs_actions_in_source() - NEEDS_NO_AUTHORIZATION}
    assert len(required) >= 9  # DescribeImages, CopyImage, CancelCopyImage, DeleteImage, DeleteSnapshot, ...
    allowed = {action for action in policy_actions(policy()) if action.startswith("ecs:")}
    assert required <= allowed, f"missing from the policy: {sorted(required - allowed)}"
    assert allowed <= required, f"allowed but never called: {sorted(allowed - required)}"


def test_policy_allows_the_self_invocation_on_the_function_only():
    outbound = (SOURCE / "outbound.py").read_text(encoding="utf-8")
    called = {f"fc:{action}" for action in re.findall(r'_call_fc3\(\s*"([A-Za-z]+)"', outbound)}
    assert called == {"fc:InvokeFunction", "fc:StopAsyncTask"}, "outbound.py's FC calls changed"
    allowed = policy_actions(policy())
    name = fc3_props()["functionName"]
    for action in called:
        resources = allowed.get(action)
        assert resources, f"{action} is missing from the policy"
        assert "*" not in resources
        assert f"acs:fc:*:{ACCOUNT}:functions/{name}" in resources  # FC 3.0
        assert any(
            re.fullmatch(rf"acs:fc:\*:{ACCOUNT}:services/[^/*]+/functions/{re.escape(name)}", r) for r in resources
        )
        for resource in resources:
            assert resource.endswith(f"functions/{name}"), f"{resource} is not this function"
    assert {action for action in allowed if action.startswith("fc:")} == called


def test_policy_allows_the_ros_and_oos_reads_the_code_makes_and_no_more():
    # verify.py asks ROS about a first delivery; sealing.py reads the continuation key (KMS decrypts it for OOS).
    from copyimage.config import DEFAULT_KEY_PARAMETER

    verify = (SOURCE / "verify.py").read_text(encoding="utf-8")
    sealing = (SOURCE / "sealing.py").read_text(encoding="utf-8")
    called = {f"ros:{action}" for action in re.findall(r'"ROS",\s*"([A-Za-z]+)"', verify)}
    called |= {f"oos:{action}" for action in re.findall(r'"OOS",\s*"([A-Za-z]+)"', sealing)}
    assert called == {"ros:GetStack", "ros:GetStackResource", "oos:GetSecretParameter"}
    allowed = policy_actions(policy())
    granted = {action for action in allowed if action.split(":")[0] in ("ros", "oos")}
    assert granted == called
    assert set(allowed["ros:GetStack"]) == set(allowed["ros:GetStackResource"]) == {f"acs:ros:*:{ACCOUNT}:stack/*"}
    assert allowed["oos:GetSecretParameter"] == [f"acs:oos:*:{ACCOUNT}:secretparameter/{DEFAULT_KEY_PARAMETER}"]
    assert set(allowed) & {a for a in allowed if a.startswith("kms:")} == {"kms:GetSecretValue"}


def test_policy_has_no_wildcard_action_and_scoped_resources():
    document = policy()
    assert document["Version"] == "1"
    allowed = policy_actions(document)
    for action in allowed:
        assert "*" not in action, f"wildcard action {action}"
        assert re.fullmatch(r"[a-z]+:[A-Za-z]+", action), action
        service = action.split(":")[0]
        assert service in {"ecs", "fc", "ros", "oos", "kms"}, f"{action}: no other service is needed (deploy/README.md)"
    assert all(statement["Effect"] == "Allow" for statement in document["Statement"])
    for action, resources in allowed.items():
        if action == "ecs:DescribeImages":
            continue  # listing by tag has no image id to scope to
        assert "*" not in resources, f"{action} is allowed on every resource"
    assert set(allowed["ecs:DeleteSnapshot"]) == {f"acs:ecs:*:{ACCOUNT}:snapshot/*"}
    for action in ("ecs:CopyImage", "ecs:CancelCopyImage", "ecs:DeleteImage", "ecs:ModifyImageAttribute"):
        assert set(allowed[action]) == {f"acs:ecs:*:{ACCOUNT}:image/*"}, action
    for resources in allowed.values():
        assert all(r == "*" or r.split(":")[3] == ACCOUNT for r in resources), "an ARN for any account"


def test_tag_scoped_policy_allows_the_same_and_removes_only_what_carries_the_providers_tag():
    from copyimage.properties import STACK_TAG

    scoped = json.loads(SCOPED_POLICY.read_text(encoding="utf-8"))
    assert {a: sorted(r) for a, r in policy_actions(scoped).items()} == {
        a: sorted(r) for a, r in policy_actions(policy()).items()
    }
    destructive = {"ecs:CancelCopyImage", "ecs:DeleteImage", "ecs:ModifyImageAttribute", "ecs:UntagResources"}
    for statement in scoped["Statement"]:
        actions = set(as_list(statement["Action"]))
        if actions & destructive:
            assert actions <= destructive, "a destructive action shares a statement with others"
            # every copy the provider makes carries STACK_TAG from its CopyImage call on (resource.py)
            assert statement["Condition"] == {"StringLike": {f"acs:ResourceTag/{STACK_TAG}": "*"}}
        else:
            assert "Condition" not in statement
    assert destructive <= {a for s in scoped["Statement"] if "Condition" in s for a in as_list(s["Action"])}


# --- (d) the role template ------------------------------------------------------------------------------------


def test_role_template_trusts_function_compute_and_carries_the_policy():
    template = load_yaml(ROLE_TEMPLATE)
    assert template["ROSTemplateFormatVersion"] == "2015-09-01"
    defaults = {name: spec.get("Default") for name, spec in template["Parameters"].items()}
    assert defaults["RoleName"] == "ros-copy-image-role"
    roles = [r for r in template["Resources"].values() if r["Type"] == "ALIYUN::RAM::Role"]
    assert len(roles) == 1
    properties = resolve_ros(roles[0]["Properties"], {**defaults, "ALIYUN::AccountId": ACCOUNT})
    assert properties["RoleName"] == "ros-copy-image-role"
    trust = properties["AssumeRolePolicyDocument"]["Statement"]
    assert len(trust) == 1
    assert trust[0]["Effect"] == "Allow" and trust[0]["Action"] == "sts:AssumeRole"
    assert as_list(trust[0]["Principal"]["Service"]) == ["fc.aliyuncs.com"]
    assert set(trust[0]["Principal"]) == {"Service"}
    (inline,) = properties["Policies"]
    assert inline["PolicyDocument"]["Version"] == policy()["Version"]
    assert normalized(inline["PolicyDocument"]["Statement"]) == normalized(policy()["Statement"])


def test_role_template_outputs_the_role_arn():
    template = load_yaml(ROLE_TEMPLATE)
    (logical_id,) = [k for k, r in template["Resources"].items() if r["Type"] == "ALIYUN::RAM::Role"]
    values = [output["Value"] for output in template["Outputs"].values()]
    assert {"Fn::GetAtt": [logical_id, "Arn"]} in values


# --- (e) sample events ----------------------------------------------------------------------------------------


def stand_in_request_fields(request_type: str) -> set[str]:
    """The fields the ROS stand-in (which builds requests as ROS documents them) puts into a request."""
    ros = RosStandIn(VirtualClock(), SimpleNamespace(account_id="1234567890123456"))
    ros.start()
    try:
        extra = {"physical_id": "m-sample"} if request_type != "Create" else {}
        return set(ros.new_request(request_type, {}, **extra))
    finally:
        ros.stop()


@pytest.mark.parametrize("request_type", ["Create", "Update", "Delete"])
def test_sample_event_is_a_complete_ros_request(request_type):
    path = EVENTS / f"{request_type.lower()}.json"
    event = json.loads(path.read_text(encoding="utf-8"))
    assert event["RequestType"] == request_type
    expected = {*ROS_REQUEST_FIELDS, *EXTRA_FIELDS[request_type]}
    assert expected <= set(event), f"{path.name} lacks {sorted(expected - set(event))}"
    assert stand_in_request_fields(request_type) <= set(event)
    assert set(event) <= {*ROS_REQUEST_FIELDS, "PhysicalResourceId", "OldResourceProperties"}
    assert event["ResourceType"] == "Custom::CopyImage"
    for field in ("ResponseURL", "IntranetResponseURL"):
        assert url_refusal(event[field], frozenset()) is None, f"{field} is not https on *.aliyuncs.com"
        assert "placeholder" in event[field].lower(), f"{field} should be an obvious placeholder"

    request = parse_request(event)
    props = parse_properties(request.properties, "cn-hangzhou")
    assert props.image_id == event["ResourceProperties"]["ImageId"]
    if request_type == "Update":
        old = parse_properties(request.old_properties, "cn-hangzhou")
        assert replacement_changes(old, props) == []  # the sample is an in-place update
        assert event["ResourceProperties"] != event["OldResourceProperties"]
    if request_type != "Create":
        assert request.physical_resource_id and request.physical_resource_id.startswith("m-")


def test_iact3_config_tests_template_yml_within_iact3s_hour():
    config = yaml.safe_load((ROOT / ".iact3.yml").read_text())
    assert (ROOT / config["project"]["template_config"]["template_location"]).resolve() == ROOT / "template.yml"
    assert config["project"]["name"] and config["project"]["regions"]
    template = yaml.safe_load((ROOT / "template.yml").read_text())
    declared = template["Parameters"]
    for name, test in config["tests"].items():
        given = test["parameters"]
        assert set(given) <= set(declared), f"{name}: unknown parameters {set(given) - set(declared)}"
        required = {p for p, spec in declared.items() if "Default" not in spec}
        assert required <= set(given), f"{name}: missing {required - set(given)}"
        # iact3's stacks time out after 60 minutes (hard-coded): ROS should fail the resource, naming it, before.
        assert int(given["Timeout"]) <= 3600 - 60

"""Static checks of template.yaml against the contract (docs: /work/shared/contract.md) and the
security rules for the service: auth, least privilege, ledger durability, schedule Input shape.

`scripts/check-template.sh` runs cfn-lint, `sam validate --lint` and `sam build`; these tests pin
the decisions cfn-lint cannot know about.
"""

from __future__ import annotations

import json
import re
import tomllib
from base64 import b64decode
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement

from ipass_local.template import REPO_ROOT, load_template, parameter_defaults, render_sub

Json = dict[str, Any]

CONTRACT_ENV = ("LEDGER_TABLE_NAME", "SIGNING_SECRET_ID", "IPASS_BASE_URL")
OPTIONAL_ENV_DEFAULTS = {
    "LEDGER_RETENTION_DAYS": "7",
    "UNKNOWN_OUTCOME_POLICY": "RESEND",
    "IPASS_MAX_ATTEMPTS": "3",
    "IPASS_CONNECT_TIMEOUT_SECONDS": "3",
    "IPASS_READ_TIMEOUT_SECONDS": "8",
    "SECRET_CACHE_SECONDS": "300",
    "POWERTOOLS_SERVICE_NAME": "ipass-budget",
    "POWERTOOLS_METRICS_NAMESPACE": "IpassBudget",
    "POWERTOOLS_LOG_LEVEL": "INFO",
}
API_GATEWAY_INTEGRATION_TIMEOUT = 29
SCHEDULE_PLACEHOLDERS = {"arn": "<aws.scheduler.schedule-arn>", "scheduledTime": "<aws.scheduler.scheduled-time>"}
EMF_METRICS = (
    "UpdatesSucceeded",
    "UpdatesFailed",
    "UpdatesRejected",
    "UpdatesUnknown",
    "Replays",
    "AlipayLatency",
    "LedgerConflicts",
)
FOURTEEN_DAYS = 14 * 24 * 3600


# --------------------------------------------------------------------------------------- helpers
@pytest.fixture(scope="module")
def template() -> Json:
    return load_template()


@pytest.fixture(scope="module")
def resources(template: Json) -> Json:
    result: Json = template["Resources"]
    return result


@pytest.fixture(scope="module")
def function(resources: Json) -> Json:
    resource = resources["UpdateBudgetFunction"]
    assert resource["Type"] == "AWS::Serverless::Function"
    props: Json = resource["Properties"]
    return props


@pytest.fixture(scope="module")
def env(function: Json) -> Json:
    variables: Json = function["Environment"]["Variables"]
    return variables


def resolve(value: Any, template: Json, overrides: dict[str, str] | None = None) -> Any:
    """Resolve a {"Ref": Parameter} to the parameter's default (or override); other values unchanged."""
    if isinstance(value, dict) and set(value) == {"Ref"} and value["Ref"] in template["Parameters"]:
        return {**parameter_defaults(template), **(overrides or {})}[value["Ref"]]
    return value


def walk(node: Any) -> Any:
    """Every dict, list and scalar inside node, depth first."""
    yield node
    if isinstance(node, dict):
        for item in node.values():
            yield from walk(item)
    elif isinstance(node, list):
        for item in node:
            yield from walk(item)


def function_statements(function: Json) -> list[Json]:
    """The function's inline IAM statements, with the Fn::If-wrapped ones unwrapped (true branch)."""
    statements: list[Json] = []
    for policy in function["Policies"]:
        assert isinstance(policy, dict), f"only inline statements, got {policy!r}"
        assert "Statement" in policy, f"only inline statements, got {policy!r}"
        for entry in policy["Statement"]:
            if set(entry) == {"Fn::If"}:
                _, when_true, when_false = entry["Fn::If"]
                assert when_false == {"Ref": "AWS::NoValue"}
                statements.append(when_true)
            else:
                statements.append(entry)
    return statements


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def allowed_pattern(template: Json, parameter: str) -> re.Pattern[str]:
    return re.compile(template["Parameters"][parameter]["AllowedPattern"])


def schedule_event(function: Json) -> Json:
    event: Json = function["Events"]["BudgetSchedule"]
    assert event["Type"] == "ScheduleV2"
    props: Json = event["Properties"]
    return props


def render_schedule_input(template: Json, function: Json, **overrides: str) -> Json:
    """The schedule's Input as Scheduler would deliver it before filling in its context attributes."""
    params = {**parameter_defaults(template), **overrides}
    condition, with_merchant, without_merchant = schedule_event(function)["Input"]["Fn::If"]
    assert condition == "HasScheduleMerchantAccountId"
    chosen = with_merchant if params["ScheduleMerchantAccountId"] else without_merchant
    rendered: Json = json.loads(render_sub(chosen, params))
    return rendered


# ------------------------------------------------------------------------------------- function
def test_transform_and_function_basics(template: Json, function: Json) -> None:
    assert template["Transform"] == "AWS::Serverless-2016-10-31"
    assert function["CodeUri"] == "functions/update_budget/"
    assert function["Handler"] == "app.lambda_handler"
    assert function["Runtime"] == "python3.13"
    assert function["Architectures"] == ["arm64"]
    assert function["Tracing"] == "Active"
    assert function["Layers"] == [{"Ref": "IpassBudgetLayer"}]
    assert resolve(function["MemorySize"], template) == "512"


def test_function_timeout_is_below_the_api_gateway_integration_timeout(function: Json) -> None:
    assert isinstance(function["Timeout"], int)
    assert function["Timeout"] < API_GATEWAY_INTEGRATION_TIMEOUT
    assert function["Timeout"] == 25


def test_alipay_timeouts_fit_inside_one_invocation(template: Json, function: Json) -> None:
    """One attempt with the longest allowed timeouts still leaves the function time to answer."""
    params = template["Parameters"]
    longest_attempt = params["IpassConnectTimeoutSeconds"]["MaxValue"] + params["IpassReadTimeoutSeconds"]["MaxValue"]
    assert longest_attempt < function["Timeout"]


def test_reserved_concurrency_is_a_parameter_with_an_escape_hatch(template: Json, function: Json) -> None:
    condition, when_true, when_false = function["ReservedConcurrentExecutions"]["Fn::If"]
    assert (condition, when_true, when_false) == (
        "HasReservedConcurrency",
        {"Ref": "FunctionReservedConcurrency"},
        {"Ref": "AWS::NoValue"},
    )
    assert template["Conditions"]["HasReservedConcurrency"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "FunctionReservedConcurrency"}, "-1"]}]
    }
    pattern = allowed_pattern(template, "FunctionReservedConcurrency")
    assert pattern.fullmatch(parameter_defaults(template)["FunctionReservedConcurrency"])
    assert pattern.fullmatch("-1")
    assert not pattern.fullmatch("0"), "0 would stop the function"


def test_function_log_group_has_retention(template: Json, resources: Json, function: Json) -> None:
    log_group_ref = function["LoggingConfig"]["LogGroup"]
    log_group = resources[log_group_ref["Ref"]]
    assert log_group["Type"] == "AWS::Logs::LogGroup"
    assert log_group["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionInDays"}
    assert (
        template["Parameters"]["LogRetentionInDays"]["Default"]
        in (template["Parameters"]["LogRetentionInDays"]["AllowedValues"])
    )


# ---------------------------------------------------------------------------------- environment
@pytest.mark.parametrize("name", CONTRACT_ENV)
def test_contract_environment_is_wired(env: Json, name: str) -> None:
    assert name in env


def test_ledger_table_name_refers_to_the_ledger_table(resources: Json, env: Json) -> None:
    assert env["LEDGER_TABLE_NAME"] == {"Ref": "LedgerTable"}
    assert resources["LedgerTable"]["Type"] == "AWS::DynamoDB::Table"


def test_signing_secret_is_a_parameter_arn_and_no_key_material_anywhere(template: Json, env: Json) -> None:
    assert env["SIGNING_SECRET_ID"] == {"Ref": "SigningSecretArn"}
    spec = template["Parameters"]["SigningSecretArn"]
    assert "Default" not in spec, "the secret ARN must be given per environment"
    pattern = re.compile(spec["AllowedPattern"])
    assert pattern.fullmatch("arn:aws:secretsmanager:ap-east-1:123456789012:secret:ipass-budget/prod/signing-AbCdEf")
    assert not pattern.fullmatch("arn:aws:secretsmanager:ap-east-1:123456789012:secret:ipass-budget/prod/signing")
    assert not pattern.fullmatch("ipass-budget/prod/signing")
    text = (REPO_ROOT / "template.yaml").read_text(encoding="utf-8")
    assert "PRIVATE KEY" not in text
    assert "privateKey" not in text


def test_base_url_default_and_shape(template: Json, env: Json) -> None:
    assert env["IPASS_BASE_URL"] == {"Ref": "IpassBaseUrl"}
    assert resolve(env["IPASS_BASE_URL"], template) == "https://open.alipay.hk"
    pattern = allowed_pattern(template, "IpassBaseUrl")
    assert pattern.fullmatch("https://open.alipay.hk")
    assert not pattern.fullmatch("https://open.alipay.hk/")
    assert not pattern.fullmatch("https://open.alipay.hk/api")
    assert not pattern.fullmatch("http://open.alipay.hk")


@pytest.mark.parametrize(("name", "default"), sorted(OPTIONAL_ENV_DEFAULTS.items()))
def test_optional_environment_defaults(template: Json, env: Json, name: str, default: str) -> None:
    assert str(resolve(env[name], template)) == default


def test_unknown_outcome_policy_choices(template: Json, env: Json) -> None:
    assert env["UNKNOWN_OUTCOME_POLICY"] == {"Ref": "UnknownOutcomePolicy"}
    assert template["Parameters"]["UnknownOutcomePolicy"]["AllowedValues"] == ["RESEND", "HOLD"]


def test_retention_outlives_the_retry_horizon(template: Json) -> None:
    """Scheduler retries for up to 24 h, then Lambda async retries for up to 6 h (reliability 2.6)."""
    assert template["Parameters"]["LedgerRetentionDays"]["MinValue"] * 24 > 24 + 6


def test_events_env_json_overrides_only_declared_variables(env: Json) -> None:
    """`sam local invoke --env-vars` silently ignores variables the template does not declare."""
    local = json.loads((REPO_ROOT / "events" / "env.json").read_text(encoding="utf-8"))
    assert set(local) == {"UpdateBudgetFunction"}
    assert set(local["UpdateBudgetFunction"]) <= set(env)
    assert set(CONTRACT_ENV) <= set(local["UpdateBudgetFunction"])


# ------------------------------------------------------------------------------------------ IAM
def test_iam_statements_have_no_wildcards(function: Json) -> None:
    for statement in function_statements(function):
        assert statement["Effect"] == "Allow"
        assert "NotAction" not in statement
        assert "NotResource" not in statement
        for action in as_list(statement["Action"]):
            assert "*" not in action, action
        for resource in walk(statement["Resource"]):
            assert not (isinstance(resource, str) and "*" in resource), resource


def test_iam_grants_exactly_the_secret_and_the_table(function: Json) -> None:
    grants = {
        json.dumps(statement["Resource"], sort_keys=True): sorted(as_list(statement["Action"]))
        for statement in function_statements(function)
    }
    assert grants == {
        json.dumps({"Ref": "SigningSecretArn"}): ["secretsmanager:GetSecretValue"],
        json.dumps({"Fn::GetAtt": ["LedgerTable", "Arn"]}): [
            "dynamodb:GetItem",
            "dynamodb:PutItem",
            "dynamodb:UpdateItem",
        ],
        json.dumps({"Ref": "SigningSecretKmsKeyArn"}): ["kms:Decrypt"],
        # The unresolved-requests check reads only the sparse index of UNKNOWN items.
        json.dumps({"Fn::Sub": "${LedgerTable.Arn}/index/Unresolved"}): ["dynamodb:Query"],
    }


def test_kms_decrypt_is_conditional_and_only_via_secrets_manager(template: Json, function: Json) -> None:
    kms = [s for s in function_statements(function) if s["Action"] == ["kms:Decrypt"]]
    assert len(kms) == 1
    assert kms[0]["Condition"] == {
        "StringEquals": {"kms:ViaService": {"Fn::Sub": "secretsmanager.${AWS::Region}.amazonaws.com"}}
    }
    wrapped = [s for p in function["Policies"] for s in p["Statement"] if set(s) == {"Fn::If"}]
    assert [s["Fn::If"][0] for s in wrapped] == ["HasSigningSecretKmsKey"]
    assert parameter_defaults(template)["SigningSecretKmsKeyArn"] == ""


def test_no_sam_policy_templates_or_managed_policies_on_the_function(function: Json) -> None:
    assert "ManagedPolicyArns" not in function
    assert "Role" not in function
    for policy in function["Policies"]:
        assert isinstance(policy, dict)
        assert set(policy) == {"Version", "Statement"}


def test_no_iam_wildcard_actions_anywhere(resources: Json) -> None:
    for node in walk(resources):
        if isinstance(node, dict) and "Action" in node and "Effect" in node:
            for action in as_list(node["Action"]):
                assert action != "*", node
                assert not (isinstance(action, str) and action.endswith(":*")), node


# ---------------------------------------------------------------------------------------- table
def test_ledger_table(resources: Json) -> None:
    table = resources["LedgerTable"]
    assert table["DeletionPolicy"] == "Retain"
    assert table["UpdateReplacePolicy"] == "Retain"
    props = table["Properties"]
    assert props["KeySchema"] == [{"AttributeName": "requestId", "KeyType": "HASH"}]
    assert props["AttributeDefinitions"] == [
        {"AttributeName": "requestId", "AttributeType": "S"},
        {"AttributeName": "unresolved", "AttributeType": "S"},
    ]
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert props["TimeToLiveSpecification"] == {"AttributeName": "expiresAt", "Enabled": True}
    assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert props["SSESpecification"]["SSEEnabled"] is True
    assert props["SSESpecification"]["SSEType"] == "KMS"
    assert props["DeletionProtectionEnabled"] is True
    # One sparse index: only UNKNOWN items carry "unresolved" (ledger.UNRESOLVED_ATTRIBUTE).
    assert props["GlobalSecondaryIndexes"] == [
        {
            "IndexName": "Unresolved",
            "KeySchema": [{"AttributeName": "unresolved", "KeyType": "HASH"}],
            "Projection": {"ProjectionType": "KEYS_ONLY"},
        }
    ]
    assert "LocalSecondaryIndexes" not in props


# ---------------------------------------------------------------------------------------- layer
def test_layer_is_built_by_the_makefile_for_arm64(resources: Json) -> None:
    layer = resources["IpassBudgetLayer"]
    assert layer["Type"] == "AWS::Serverless::LayerVersion"
    assert layer["Metadata"] == {"BuildMethod": "makefile", "BuildArchitecture": "arm64"}
    props = layer["Properties"]
    assert props["ContentUri"] == "layers/"
    assert props["CompatibleRuntimes"] == ["python3.13"]
    assert props["CompatibleArchitectures"] == ["arm64"]
    makefile = (REPO_ROOT / "layers" / "Makefile").read_text(encoding="utf-8")
    assert re.search(r"^build-IpassBudgetLayer:", makefile, re.MULTILINE)
    for flag in (
        "--platform manylinux2014_aarch64",
        "--implementation cp",
        "--python-version 3.13",
        "--only-binary=:all:",
    ):
        assert flag in makefile
    assert "$(ARTIFACTS_DIR)/python" in makefile


def _layer_pins() -> dict[str, Requirement]:
    pins: dict[str, Requirement] = {}
    for raw in (REPO_ROOT / "layers" / "requirements.txt").read_text(encoding="utf-8").splitlines():
        line = raw.split("#", 1)[0].strip()
        if line:
            requirement = Requirement(line)
            pins[requirement.name.lower().replace("_", "-")] = requirement
    return pins


def test_layer_requirements_are_exact_pins() -> None:
    pins = _layer_pins()
    for name, requirement in pins.items():
        specifiers = list(requirement.specifier)
        assert len(specifiers) == 1, name
        assert specifiers[0].operator == "==", f"{name} is not pinned exactly"
    assert "tracer" in pins["aws-lambda-powertools"].extras
    assert {"aws-xray-sdk", "cryptography", "requests"} <= set(pins)


def test_layer_pins_satisfy_pyproject() -> None:
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    pins = _layer_pins()
    for dependency in project["dependencies"]:
        wanted = Requirement(dependency)
        name = wanted.name.lower().replace("_", "-")
        assert name in pins, f"{name} (pyproject) is missing from layers/requirements.txt"
        pinned_version = next(iter(pins[name].specifier)).version
        assert wanted.specifier.contains(pinned_version), f"{name}=={pinned_version} is outside {wanted.specifier}"


# ------------------------------------------------------------------------------------- schedule
def test_schedule_is_disabled_by_default(template: Json, function: Json) -> None:
    props = schedule_event(function)
    assert props["State"] == {"Fn::If": ["IsScheduleEnabled", "ENABLED", "DISABLED"]}
    assert template["Conditions"]["IsScheduleEnabled"] == {"Fn::Equals": [{"Ref": "ScheduleEnabled"}, "true"]}
    assert parameter_defaults(template)["ScheduleEnabled"] == "false"
    assert resolve(props["ScheduleExpression"], template) == "cron(0 9 * * ? *)"
    assert resolve(props["ScheduleExpressionTimezone"], template) == "Asia/Hong_Kong"


def test_schedule_input_has_the_contract_shape(template: Json, function: Json) -> None:
    rendered = render_schedule_input(
        template,
        function,
        ScheduleTemplateCode="DEMO-VALID",
        ScheduleUpdateType="SUBTRACT_BUDGET",
        ScheduleNumber="500",
        ScheduleMerchantAccountId="2160000000000001",
    )
    assert rendered == {
        "templateCode": "DEMO-VALID",
        "updateType": "SUBTRACT_BUDGET",
        "number": 500,
        "merchantAccountId": "2160000000000001",
        "schedule": SCHEDULE_PLACEHOLDERS,
    }
    assert type(rendered["number"]) is int


def test_schedule_input_omits_merchant_when_not_given(template: Json, function: Json) -> None:
    rendered = render_schedule_input(template, function, ScheduleTemplateCode="T1", ScheduleNumber="999999")
    assert rendered == {
        "templateCode": "T1",
        "updateType": "APPEND_BUDGET",
        "number": 999999,
        "schedule": SCHEDULE_PLACEHOLDERS,
    }


def test_schedule_input_uses_only_schedule_parameters(function: Json) -> None:
    _, with_merchant, without_merchant = schedule_event(function)["Input"]["Fn::If"]
    used = set(re.findall(r"\$\{([^}]+)\}", with_merchant["Fn::Sub"] + without_merchant["Fn::Sub"]))
    assert used == {"ScheduleTemplateCode", "ScheduleUpdateType", "ScheduleNumber", "ScheduleMerchantAccountId"}


def test_schedule_sample_event_matches_the_rendered_input(template: Json, function: Json) -> None:
    sample = json.loads((REPO_ROOT / "events" / "schedule_input.json").read_text(encoding="utf-8"))
    rendered = render_schedule_input(
        template,
        function,
        ScheduleTemplateCode=sample["templateCode"],
        ScheduleUpdateType=sample["updateType"],
        ScheduleNumber=str(sample["number"]),
        ScheduleMerchantAccountId=sample["merchantAccountId"],
    )
    assert set(rendered) == set(sample)
    assert set(rendered["schedule"]) == set(sample["schedule"])
    assert {k: v for k, v in rendered.items() if k != "schedule"} == {
        k: v for k, v in sample.items() if k != "schedule"
    }
    assert sample["schedule"]["arn"].startswith("arn:aws:scheduler:")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", sample["schedule"]["scheduledTime"])


@pytest.mark.parametrize("good", ["1", "42", "999999"])
def test_schedule_number_pattern_accepts(template: Json, good: str) -> None:
    assert allowed_pattern(template, "ScheduleNumber").fullmatch(good)


@pytest.mark.parametrize("bad", ["0", "01", "1000000", "1.5", "1e3", "-1", " 1", "true", ""])
def test_schedule_number_pattern_refuses(template: Json, bad: str) -> None:
    assert not allowed_pattern(template, "ScheduleNumber").fullmatch(bad)


def test_schedule_codes_cannot_break_the_json(template: Json) -> None:
    code = allowed_pattern(template, "ScheduleTemplateCode")
    merchant = allowed_pattern(template, "ScheduleMerchantAccountId")
    assert code.fullmatch("DEMO-VALID")
    assert code.fullmatch("x" * 32)
    assert not code.fullmatch("x" * 33)
    assert merchant.fullmatch("")
    assert merchant.fullmatch("2160000000000001")
    assert not merchant.fullmatch("x" * 65)
    for pattern in (code, merchant):
        for bad in ('a"b', "a\\b", "a b", "é"):
            assert not pattern.fullmatch(bad), bad


def test_enabling_the_schedule_requires_a_template_code(template: Json) -> None:
    rule = template["Rules"]["EnabledScheduleNeedsTemplateCode"]
    assert rule["RuleCondition"] == {"Fn::Equals": [{"Ref": "ScheduleEnabled"}, "true"]}
    default_code = parameter_defaults(template)["ScheduleTemplateCode"]
    assert rule["Assertions"][0]["Assert"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "ScheduleTemplateCode"}, default_code]}]
    }


def test_schedule_retries_and_dead_letter_queue(resources: Json, function: Json) -> None:
    props = schedule_event(function)
    assert props["RetryPolicy"] == {"MaximumRetryAttempts": 10, "MaximumEventAgeInSeconds": 86400}
    queue = props["DeadLetterConfig"]["Arn"]["Fn::GetAtt"]
    assert queue[1] == "Arn"
    assert_encrypted_queue(resources, queue[0])
    assert props.get("OmitName") is True, "a fixed name clashes between stacks in one account"


def assert_encrypted_queue(resources: Json, logical_id: str) -> None:
    queue = resources[logical_id]
    assert queue["Type"] == "AWS::SQS::Queue"
    props = queue["Properties"]
    assert props.get("SqsManagedSseEnabled") is True or "KmsMasterKeyId" in props
    assert props["MessageRetentionPeriod"] == FOURTEEN_DAYS


def test_async_invocations_retry_then_land_in_the_failure_queue(resources: Json, function: Json) -> None:
    config = function["EventInvokeConfig"]
    assert config["MaximumRetryAttempts"] == 2
    assert config["MaximumEventAgeInSeconds"] == 21600
    on_failure = config["DestinationConfig"]["OnFailure"]
    assert on_failure["Type"] == "SQS"
    assert on_failure["Destination"] == {"Fn::GetAtt": ["FailureQueue", "Arn"]}
    assert_encrypted_queue(resources, "FailureQueue")


# ------------------------------------------------------------------------------------------ API
def test_api_events_are_exactly_the_two_routes(function: Json) -> None:
    api_events = {
        (e["Properties"]["Method"].upper(), e["Properties"]["Path"]): e["Properties"]
        for e in function["Events"].values()
        if e["Type"] == "Api"
    }
    assert set(api_events) == {("POST", "/budget-updates"), ("GET", "/budget-updates/{requestId}")}
    for props in api_events.values():
        assert props["RestApiId"] == {"Ref": "BudgetApi"}
        assert "Auth" not in props, "routes inherit the API's AWS_IAM default"


def test_api_uses_iam_auth_without_caller_credentials(resources: Json) -> None:
    api = resources["BudgetApi"]
    assert api["Type"] == "AWS::Serverless::Api"
    auth = api["Properties"]["Auth"]
    assert auth["DefaultAuthorizer"] == "AWS_IAM"
    assert auth["InvokeRole"] == "NONE"


def test_api_resource_policy_allows_only_this_account(resources: Json) -> None:
    statements = resources["BudgetApi"]["Properties"]["Auth"]["ResourcePolicy"]["CustomStatements"]
    allow = [s for s in statements if isinstance(s, dict) and s.get("Effect") == "Allow"]
    assert len(allow) == 1
    assert allow[0]["Principal"] == {"AWS": {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:root"}}
    assert allow[0]["Action"] == "execute-api:Invoke"
    assert sorted(r["Fn::Sub"] for r in allow[0]["Resource"]) == [
        "execute-api:/${StageName}/GET/budget-updates/*",
        "execute-api:/${StageName}/POST/budget-updates",
    ]


def test_private_endpoint_when_vpc_endpoints_are_given(template: Json, resources: Json) -> None:
    props = resources["BudgetApi"]["Properties"]
    assert props["EndpointConfiguration"]["Type"] == {"Fn::If": ["IsPrivateApi", "PRIVATE", "REGIONAL"]}
    ids = {"Fn::Split": [",", {"Ref": "ApiVpcEndpointIds"}]}
    assert props["EndpointConfiguration"]["VPCEndpointIds"] == {
        "Fn::If": ["IsPrivateApi", ids, {"Ref": "AWS::NoValue"}]
    }
    assert template["Conditions"]["IsPrivateApi"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "ApiVpcEndpointIds"}, ""]}]}
    assert parameter_defaults(template)["ApiVpcEndpointIds"] == "", "regional by default"

    statements = props["Auth"]["ResourcePolicy"]["CustomStatements"]
    conditional = [s["Fn::If"] for s in statements if isinstance(s, dict) and set(s) == {"Fn::If"}]
    assert len(conditional) == 1
    condition, deny, otherwise = conditional[0]
    assert (condition, otherwise) == ("IsPrivateApi", {"Ref": "AWS::NoValue"})
    assert deny["Effect"] == "Deny"
    assert deny["Principal"] == "*"
    assert deny["Condition"] == {"StringNotEquals": {"aws:SourceVpce": ids}}

    pattern = allowed_pattern(template, "ApiVpcEndpointIds")
    assert pattern.fullmatch("vpce-0123456789abcdef0,vpce-0fedcba9876543210")
    assert not pattern.fullmatch("vpce-0123456789abcdef0, vpce-0fedcba9876543210")


def test_api_stage_settings(template: Json, resources: Json) -> None:
    props = resources["BudgetApi"]["Properties"]
    assert props["TracingEnabled"] is True
    (settings,) = props["MethodSettings"]
    assert settings["ResourcePath"] == "/*"
    assert settings["HttpMethod"] == "*"
    assert settings["ThrottlingBurstLimit"] == {"Ref": "ApiThrottlingBurstLimit"}
    assert settings["ThrottlingRateLimit"] == {"Ref": "ApiThrottlingRateLimit"}
    assert settings["DataTraceEnabled"] is False, "execution logs must not contain bodies"
    assert props.get("CacheClusterEnabled") is not True


def test_api_access_log_is_json_with_caller_and_latency(resources: Json) -> None:
    props = resources["BudgetApi"]["Properties"]
    log_group = resources[props["AccessLogSetting"]["DestinationArn"]["Fn::GetAtt"][0]]
    assert log_group["Type"] == "AWS::Logs::LogGroup"
    assert log_group["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionInDays"}
    record = json.loads(props["AccessLogSetting"]["Format"])
    assert record["requestId"] == "$context.requestId"
    assert record["caller"] == "$context.identity.caller"
    assert record["userArn"] == "$context.identity.userArn"
    assert record["status"] == "$context.status"
    assert record["integrationLatency"] == "$context.integrationLatency"
    assert "\n" not in props["AccessLogSetting"]["Format"]


def test_gateway_responses_use_the_contract_error_shape(resources: Json) -> None:
    responses = resources["BudgetApi"]["Properties"]["GatewayResponses"]
    for name, response in responses.items():
        body = response["ResponseTemplates"]["application/json"]
        rendered = json.loads(
            body.replace("$context.error.messageString", '"message"').replace("$context.error.responseType", "TYPE")
        )
        assert set(rendered["error"]) == {"code", "message", "details"}, name
    for name, status in (("INTEGRATION_TIMEOUT", "504"), ("INTEGRATION_FAILURE", "503")):
        body = json.loads(responses[name]["ResponseTemplates"]["application/json"])
        assert body["outcome"] == "UNKNOWN"
        assert body["error"]["code"] == "OUTCOME_UNKNOWN"
        assert responses[name]["StatusCode"] == status
        assert "Retry-After" in responses[name]["ResponseParameters"]["Headers"]


# ------------------------------------------------------------------------------ alarms, outputs
def _alarms(resources: Json) -> dict[str, Json]:
    return {k: v["Properties"] for k, v in resources.items() if v["Type"] == "AWS::CloudWatch::Alarm"}


@pytest.mark.parametrize(
    ("namespace", "metric"),
    [
        ("AWS/Lambda", "Errors"),
        ("AWS/Lambda", "Throttles"),
        ("IpassBudget", "UpdatesUnknown"),
        ("AWS/ApiGateway", "5XXError"),
    ],
)
def test_alarm_exists(resources: Json, namespace: str, metric: str) -> None:
    matching = [a for a in _alarms(resources).values() if (a["Namespace"], a["MetricName"]) == (namespace, metric)]
    assert len(matching) == 1
    assert matching[0]["ComparisonOperator"] == "GreaterThanThreshold"
    assert matching[0]["Threshold"] == 0


def test_unknown_outcome_alarm_matches_powertools_dimensions(resources: Json) -> None:
    (alarm,) = [a for a in _alarms(resources).values() if a["MetricName"] == "UpdatesUnknown"]
    assert alarm["Dimensions"] == [{"Name": "service", "Value": "ipass-budget"}]


def test_both_queues_are_alarmed(resources: Json) -> None:
    watched = {
        a["Dimensions"][0]["Value"]["Fn::GetAtt"][0]
        for a in _alarms(resources).values()
        if a["MetricName"] == "ApproximateNumberOfMessagesVisible"
    }
    assert watched == {"FailureQueue", "ScheduleDeadLetterQueue"}


def test_alarm_actions_follow_the_optional_topic(resources: Json) -> None:
    expected = {"Fn::If": ["HasAlarmTopic", [{"Ref": "AlarmTopicArn"}], {"Ref": "AWS::NoValue"}]}
    for name, alarm in _alarms(resources).items():
        assert alarm["AlarmActions"] == expected, name


def _dashboard_metrics(template: Json, resources: Json) -> set[tuple[str, ...]]:
    """(namespace, metric name, dimension name, value, ...) of every metric the dashboard draws."""
    body_sub = resources["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    variables = {name: f"<{name}>" for name in template["Resources"]} | parameter_defaults(template)
    variables |= {"AWS::StackName": "stack", "AWS::Region": "ap-east-1"}
    variables |= {
        f"{name}.{attr}": f"<{name}.{attr}>" for name in template["Resources"] for attr in ("Arn", "QueueName")
    }
    body = json.loads(render_sub(body_sub, variables))
    return {
        tuple(part for part in metric if isinstance(part, str))
        for widget in body["widgets"]
        for metric in widget.get("properties", {}).get("metrics", [])
    }


def test_dashboard_shows_the_emf_metrics(template: Json, resources: Json) -> None:
    shown = {metric[:2] for metric in _dashboard_metrics(template, resources)}
    for metric in EMF_METRICS:
        assert ("IpassBudget", metric) in shown, metric


def test_dashboard_shows_the_ledger_latency_per_write(template: Json, resources: Json) -> None:
    # DynamoDB calls are traced only with TraceAwsCalls=true: the dashboard is where their latency shows.
    shown = _dashboard_metrics(template, resources)
    for operation in ("PutItem", "UpdateItem"):
        metric = ("AWS/DynamoDB", "SuccessfulRequestLatency", "TableName", "<LedgerTable>", "Operation", operation)
        assert metric in shown, operation


def test_aws_call_tracing_is_a_parameter_off_by_default(template: Json, function: Json) -> None:
    assert template["Parameters"]["TraceAwsCalls"]["Default"] == "false"
    assert function["Environment"]["Variables"]["TRACE_AWS_CALLS"] == {"Ref": "TraceAwsCalls"}
    assert function["Tracing"] == "Active"


def test_outputs(template: Json) -> None:
    outputs = template["Outputs"]
    assert set(outputs) >= {
        "ApiUrl",
        "LedgerTableName",
        "FailureQueueUrl",
        "ScheduleDeadLetterQueueUrl",
        "FunctionName",
    }
    assert outputs["ApiUrl"]["Value"]["Fn::Sub"].endswith("/${StageName}/budget-updates")
    assert outputs["LedgerTableName"]["Value"] == {"Ref": "LedgerTable"}
    assert outputs["FunctionName"]["Value"] == {"Ref": "UpdateBudgetFunction"}


# ----------------------------------------------------------------------------- cfn-lint, events
def test_cfn_lint_is_clean() -> None:
    api = pytest.importorskip("cfnlint.api")
    matches = api.lint_file(Path(REPO_ROOT / "template.yaml"))
    assert [str(m) for m in matches] == []


@pytest.mark.parametrize(
    ("name", "method", "base64"),
    [
        ("post_budget_update.json", "POST", False),
        ("post_budget_update_base64.json", "POST", True),
        ("get_budget_update.json", "GET", False),
    ],
)
def test_sample_api_events(name: str, method: str, base64: bool) -> None:
    event = json.loads((REPO_ROOT / "events" / name).read_text(encoding="utf-8"))
    assert event["httpMethod"] == method
    assert event["isBase64Encoded"] is base64
    identity = event["requestContext"]["identity"]
    assert identity["userArn"].startswith("arn:aws:sts::")
    assert identity["caller"]
    assert identity["accountId"] == event["requestContext"]["accountId"]
    if method == "GET":
        assert event["pathParameters"]["requestId"]
        assert event["resource"] == "/budget-updates/{requestId}"
        assert event["body"] is None
        return
    assert event["resource"] == "/budget-updates"
    raw = b64decode(event["body"], validate=True) if base64 else event["body"].encode()
    body = json.loads(raw)
    assert body["templateCode"] == "DEMO-VALID"
    assert body["merchantAccountId"] == "2160000000000001"
    assert type(body["number"]) is int
    assert event["headers"]["Content-Type"] == "application/json"

"""Least privilege in template.yaml, read as a whole: every policy document, wherever it sits.

Policy documents are found by shape (a mapping with ``Statement``), so an identity policy, a trust
policy, an API resource policy or one added later in a new resource is checked alike; statements
inside ``Fn::If`` are checked on both branches. The wildcards that remain are listed in
``ALLOWED_WILDCARDS``, each with the reason it is needed; anything else fails.

SAM adds policies of its own when it transforms the template (the transformed template is not
available in a plain test run): ``AWSLambdaBasicExecutionRole`` for logging, and, because of
``Tracing: Active``, ``AWSXrayWriteOnlyAccess``, whose X-Ray actions (PutTraceSegments,
PutTelemetryRecords, GetSamplingRules, ...) exist only with ``Resource: "*"`` (X-Ray has no
resource-level permissions for them), and ``sqs:SendMessage`` on the OnFailure queue. Those are
pinned below by the properties that cause them, so a new one cannot appear unnoticed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

from ipass_local.template import TEMPLATE_PATH, load_template

Json = dict[str, Any]

# (resource, statement Sid or "-", wildcard value) -> why it is needed.
ALLOWED_WILDCARDS = {
    ("BudgetApi", "AllowThisAccount", "execute-api:/${StageName}/GET/budget-updates/*"): (
        "the one wildcard is the {requestId} path segment: every id may be read by callers of this account"
    ),
    ("BudgetApi", "DenyOtherVpcEndpoints", "execute-api:/*"): (
        "a Deny only takes permissions away: it refuses every method and path unless the call came "
        "through one of the given VPC endpoints"
    ),
    ("BudgetApi", "DenyOtherVpcEndpoints", "Principal *"): "a Deny for every principal, as above",
}
# Managed policies referenced in the template -> why each is acceptable.
ALLOWED_MANAGED_POLICIES = {
    "arn:${AWS::Partition}:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs": (
        "the account-level role API Gateway needs to write its own logs (created only when "
        "ConfigureApiGatewayLoggingRole is true); AWS documents exactly this managed policy for it"
    ),
}
IAM_RESOURCE_TYPES = ("AWS::IAM::Role", "AWS::IAM::Policy", "AWS::IAM::ManagedPolicy", "AWS::IAM::User")
EXPECTED_IAM_RESOURCES = {"ApiGatewayLoggingRole"}
LEDGER_ACTIONS = {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"}
SECRET_RELATED_VARIABLES = {
    "SIGNING_SECRET_ID": {"Ref": "SigningSecretArn"},
    "SECRET_CACHE_SECONDS": {"Ref": "SecretCacheSeconds"},
}
SECRET_WORDS = re.compile(r"SECRET|PASSWORD|PASSWD|TOKEN|PRIVATE|CREDENTIAL|APIKEY|API_KEY", re.IGNORECASE)


@pytest.fixture(scope="module")
def template() -> Json:
    return load_template()


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def branches(node: Any) -> Iterator[Any]:
    """``node``, or both branches of an ``Fn::If`` (recursively), without ``AWS::NoValue``."""
    if isinstance(node, dict) and set(node) == {"Fn::If"}:
        _, when_true, when_false = node["Fn::If"]
        yield from branches(when_true)
        yield from branches(when_false)
    elif node != {"Ref": "AWS::NoValue"}:
        yield node


def policy_documents(node: Any) -> Iterator[Any]:
    """Every mapping anywhere in ``node`` that has a ``Statement`` list (a policy document)."""
    if isinstance(node, dict):
        if "Statement" in node or "CustomStatements" in node:
            yield node
        for value in node.values():
            yield from policy_documents(value)
    elif isinstance(node, list):
        for item in node:
            yield from policy_documents(item)


def statements(template: Json) -> list[tuple[str, Json]]:
    """(resource name, statement) for every statement of every policy document in the resources."""
    found: list[tuple[str, Json]] = []
    for name, resource in template["Resources"].items():
        for document in policy_documents(resource):
            for entry in as_list(document.get("Statement", document.get("CustomStatements"))):
                found += [(name, statement) for statement in branches(entry)]
    return found


def literal(value: Any) -> str | None:
    """The text of a string or an ``Fn::Sub`` template; None for Ref, GetAtt and other intrinsics."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and set(value) == {"Fn::Sub"}:
        sub = value["Fn::Sub"]
        return sub if isinstance(sub, str) else str(sub[0])
    return None


def wildcards(name: str, statement: Json) -> list[tuple[str, str, str]]:
    """The wildcards a statement uses, as keys of ALLOWED_WILDCARDS."""
    sid = statement.get("Sid", "-")
    found = []
    for action in as_list(statement.get("Action", [])):
        if "*" in (literal(action) or ""):
            found.append((name, sid, f"Action {action}"))
    for resource in as_list(statement.get("Resource", [])):
        text = literal(resource)
        if text is not None and "*" in text:
            found.append((name, sid, text))
    principal = statement.get("Principal")
    if principal == "*" or (isinstance(principal, dict) and "*" in as_list(principal.get("AWS", []))):
        found.append((name, sid, "Principal *"))
    return found


def test_the_policy_walk_finds_every_policy_in_the_template(template: Json) -> None:
    """The walk itself: the function policy, the trust policy and the API resource policy are all seen."""
    seen = {(name, statement.get("Sid", statement.get("Action"))) for name, statement in statements(template)}
    assert ("UpdateBudgetFunction", "ReadSigningSecret") in seen
    assert ("UpdateBudgetFunction", "LedgerItems") in seen
    assert ("UpdateBudgetFunction", "DecryptSigningSecret") in seen  # inside Fn::If
    assert ("BudgetApi", "AllowThisAccount") in seen
    assert ("BudgetApi", "DenyOtherVpcEndpoints") in seen  # inside Fn::If
    assert ("ApiGatewayLoggingRole", "sts:AssumeRole") in seen


def test_no_wildcard_action_resource_or_principal_outside_the_justified_list(template: Json) -> None:
    used = {key for name, statement in statements(template) for key in wildcards(name, statement)}
    unexplained = sorted(used - set(ALLOWED_WILDCARDS))
    assert not unexplained, f"wildcards without a reason in ALLOWED_WILDCARDS: {unexplained}"
    stale = sorted(set(ALLOWED_WILDCARDS) - used)
    assert not stale, f"ALLOWED_WILDCARDS lists wildcards the template no longer uses: {stale}"
    assert all(reason.strip() for reason in ALLOWED_WILDCARDS.values())


def test_wildcards_are_only_ever_narrowing_or_path_segments(template: Json) -> None:
    """Allow statements never use a bare ``*`` or ``service:*``; only a Deny may cover everything."""
    for name, statement in statements(template):
        if statement.get("Effect") != "Allow":
            continue
        assert "NotAction" not in statement, (name, statement)
        assert "NotResource" not in statement, (name, statement)
        assert "NotPrincipal" not in statement, (name, statement)
        for action in as_list(statement.get("Action", [])):
            text = literal(action) or ""
            assert text != "*", (name, statement)
            assert not text.endswith(":*"), (name, statement)
        for resource in as_list(statement.get("Resource", [])):
            text = literal(resource) or ""
            assert text not in ("*", "arn:aws:*", "execute-api:/*"), (name, statement)


def test_wildcard_detection_catches_what_it_should() -> None:
    assert wildcards("R", {"Sid": "S", "Action": "s3:*", "Resource": "*"}) == [
        ("R", "S", "Action s3:*"),
        ("R", "S", "*"),
    ]
    assert wildcards("R", {"Action": ["dynamodb:GetItem"], "Resource": {"Fn::Sub": "arn:${X}:table/*"}}) == [
        ("R", "-", "arn:${X}:table/*")
    ]
    assert wildcards("R", {"Effect": "Deny", "Principal": {"AWS": "*"}, "Action": "x:Y"}) == [("R", "-", "Principal *")]
    assert wildcards("R", {"Action": "x:Y", "Resource": {"Ref": "P"}}) == []


def function_statements(template: Json) -> list[Json]:
    return [statement for name, statement in statements(template) if name == "UpdateBudgetFunction"]


def test_secret_access_names_only_the_signing_secret_parameter(template: Json) -> None:
    secret_statements = [
        s for s in function_statements(template) if any(a.startswith("secretsmanager:") for a in as_list(s["Action"]))
    ]
    assert len(secret_statements) == 1
    statement = secret_statements[0]
    assert statement["Effect"] == "Allow"
    assert as_list(statement["Action"]) == ["secretsmanager:GetSecretValue"]
    assert as_list(statement["Resource"]) == [{"Ref": "SigningSecretArn"}]
    # The parameter is a complete secret ARN (with its random suffix), never a prefix or a pattern.
    pattern = template["Parameters"]["SigningSecretArn"]["AllowedPattern"]
    assert re.fullmatch(pattern, "arn:aws:secretsmanager:ap-east-1:123456789012:secret:ipass/prod/signing-AbCdEf")
    assert not re.fullmatch(pattern, "arn:aws:secretsmanager:ap-east-1:123456789012:secret:*")
    assert not re.fullmatch(pattern, "arn:aws:secretsmanager:ap-east-1:123456789012:secret:ipass-*-AbCdEf")


def test_ledger_access_is_item_level_on_the_ledger_table_only(template: Json) -> None:
    ledger_statements = [
        s for s in function_statements(template) if any(a.startswith("dynamodb:") for a in as_list(s["Action"]))
    ]
    assert len(ledger_statements) == 2
    items, index = ledger_statements
    assert set(as_list(items["Action"])) == LEDGER_ACTIONS
    assert as_list(items["Resource"]) == [{"Fn::GetAtt": ["LedgerTable", "Arn"]}]
    # The one index grant: Query on the sparse index of UNKNOWN items, for the unresolved-requests check.
    assert as_list(index["Action"]) == ["dynamodb:Query"]
    assert as_list(index["Resource"]) == [{"Fn::Sub": "${LedgerTable.Arn}/index/Unresolved"}]
    # No other index, no stream, no Scan/DeleteItem/batch or table actions.
    assert template["Resources"]["LedgerTable"]["Type"] == "AWS::DynamoDB::Table"


def test_the_function_has_no_other_grants(template: Json) -> None:
    function = template["Resources"]["UpdateBudgetFunction"]["Properties"]
    for forbidden in ("Role", "ManagedPolicyArns", "PermissionsBoundary", "Connectors"):
        assert forbidden not in function
    for policy in function["Policies"]:
        # Inline documents only: SAM policy templates (DynamoDBCrudPolicy, ...) grant far more.
        assert isinstance(policy, dict)
        assert set(policy) == {"Version", "Statement"}
    services = {action.split(":", 1)[0] for s in function_statements(template) for action in as_list(s["Action"])}
    assert services == {"secretsmanager", "dynamodb", "kms"}
    kms = [s for s in function_statements(template) if as_list(s["Action"]) == ["kms:Decrypt"]]
    assert len(kms) == 1
    assert as_list(kms[0]["Resource"]) == [{"Ref": "SigningSecretKmsKeyArn"}]
    assert "kms:ViaService" in kms[0]["Condition"]["StringEquals"]


def test_what_sam_adds_implicitly_is_pinned(template: Json) -> None:
    """The properties that make SAM add policies, so that a new implicit grant shows up here."""
    function = template["Resources"]["UpdateBudgetFunction"]["Properties"]
    assert function["Tracing"] == "Active"  # AWSXrayWriteOnlyAccess: X-Ray write actions need Resource "*"
    destination = function["EventInvokeConfig"]["DestinationConfig"]["OnFailure"]
    assert destination == {"Type": "SQS", "Destination": {"Fn::GetAtt": ["FailureQueue", "Arn"]}}
    assert "DeadLetterQueue" not in function
    events = function["Events"]
    assert {event["Type"] for event in events.values()} == {"Api", "ScheduleV2"}
    schedule = events["BudgetSchedule"]["Properties"]
    assert "RoleArn" not in schedule  # SAM creates a role allowed to invoke this function only
    assert schedule["DeadLetterConfig"] == {"Arn": {"Fn::GetAtt": ["ScheduleDeadLetterQueue", "Arn"]}}


def test_iam_resources_and_managed_policies_are_the_known_ones(template: Json) -> None:
    iam = {name for name, resource in template["Resources"].items() if resource["Type"] in IAM_RESOURCE_TYPES}
    assert iam == EXPECTED_IAM_RESOURCES
    managed = []
    for resource in template["Resources"].values():
        for node in _walk(resource):
            if isinstance(node, dict) and "ManagedPolicyArns" in node:
                managed += [literal(arn) for arn in node["ManagedPolicyArns"]]
    assert sorted(map(str, managed)) == sorted(ALLOWED_MANAGED_POLICIES)
    trust = template["Resources"]["ApiGatewayLoggingRole"]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert trust == [
        {"Effect": "Allow", "Principal": {"Service": "apigateway.amazonaws.com"}, "Action": "sts:AssumeRole"}
    ]


def test_api_resource_policy_admits_only_this_account(template: Json) -> None:
    api = template["Resources"]["BudgetApi"]["Properties"]
    assert api["Auth"]["DefaultAuthorizer"] == "AWS_IAM"
    allows = [s for name, s in statements(template) if name == "BudgetApi" and s["Effect"] == "Allow"]
    assert len(allows) == 1
    assert allows[0]["Principal"] == {"AWS": {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:root"}}
    assert as_list(allows[0]["Action"]) == ["execute-api:Invoke"]


def _walk(node: Any) -> Iterator[Any]:
    yield node
    if isinstance(node, dict):
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for item in node:
            yield from _walk(item)


def test_no_key_material_or_secret_values_in_the_template(template: Json) -> None:
    text = TEMPLATE_PATH.read_text(encoding="utf-8")
    assert "-----BEGIN" not in text
    assert "PRIVATE KEY" not in text.upper()
    assert "{{resolve:secretsmanager" not in text, "a dynamic reference would copy the secret into a property"
    assert "{{resolve:ssm-secure" not in text
    # No long base64 or hex runs (a DER key, a token, a signature) anywhere, comments included.
    assert not re.search(r"[A-Za-z0-9+/]{80,}={0,2}", text)
    assert not re.search(r"\b[0-9a-fA-F]{64,}\b", text)
    for key in ("privateKey", "alipayPublicKey", "clientId"):
        assert key not in text, f"{key} is a signing secret field; it belongs in Secrets Manager only"


def test_no_secret_in_environment_variables_or_parameter_defaults(template: Json) -> None:
    function = template["Resources"]["UpdateBudgetFunction"]["Properties"]
    variables = function["Environment"]["Variables"]
    for name, value in variables.items():
        if SECRET_WORDS.search(name):
            # Only where to find the secret and how long to cache it, never the secret itself.
            assert value == SECRET_RELATED_VARIABLES.get(name), (name, value)
        if isinstance(value, str):
            assert len(value) <= 64, (name, value)
    for name, parameter in template["Parameters"].items():
        if SECRET_WORDS.search(name) and parameter["Type"] == "Number":
            continue  # a setting such as SecretCacheSeconds
        if SECRET_WORDS.search(name):
            assert name in ("SigningSecretArn", "SigningSecretKmsKeyArn"), name
            assert parameter.get("Default", "") == "", f"{name} must not default to a value"
            assert re.match(r"\^\(?arn:", parameter.get("AllowedPattern", "")), f"{name} must be constrained to an ARN"
    assert json.dumps(variables).count("SigningSecret") == 1

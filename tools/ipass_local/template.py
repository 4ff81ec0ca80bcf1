"""Read template.yaml as plain data, and create its ledger table locally.

CloudFormation's short-form tags become the long forms CloudFormation itself uses, so code and
tests compare with ordinary dicts::

    !Ref LedgerTable              -> {"Ref": "LedgerTable"}
    !GetAtt LedgerTable.Arn       -> {"Fn::GetAtt": ["LedgerTable", "Arn"]}
    !Sub "x-${AWS::Region}"       -> {"Fn::Sub": "x-${AWS::Region}"}
    !If [Cond, a, b]              -> {"Fn::If": ["Cond", "a", "b"]}
    !Condition IsProd             -> {"Condition": "IsProd"}

Everything else (!Join, !Split, !Equals, !Not, !Select, ...) maps to ``{"Fn::<Name>": value}``.
Unlike plain PyYAML, dates stay strings (``Version: 2012-10-17``) and duplicate keys are errors, as
in CloudFormation. The local stack and the tests build the ledger table from the template's own
definition, so what runs locally has the key schema and TTL that deploys.
"""

from __future__ import annotations

import copy
import re
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient

REPO_ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_PATH = REPO_ROOT / "template.yaml"
LEDGER_TABLE_RESOURCE = "LedgerTable"
_SUB_VARIABLE = re.compile(r"\$\{([^}!][^}]*)\}")


class _CfnLoader(yaml.SafeLoader):
    """SafeLoader that keeps dates as strings and refuses duplicate mapping keys."""

    # PyYAML reads this class attribute; a per-class copy without the timestamp resolver.
    yaml_implicit_resolvers = {  # noqa: RUF012
        first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _construct_tag(loader: _CfnLoader, tag_suffix: str, node: yaml.Node) -> dict[str, Any]:
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    elif isinstance(node, yaml.MappingNode):
        value = loader.construct_mapping(node, deep=True)
    else:  # pragma: no cover - PyYAML has no other node kinds
        raise yaml.constructor.ConstructorError(None, None, f"unexpected node for !{tag_suffix}", node.start_mark)

    if tag_suffix == "Ref":
        return {"Ref": value}
    if tag_suffix == "Condition":
        return {"Condition": value}
    if tag_suffix == "GetAtt" and isinstance(value, str):
        resource, _, attribute = value.partition(".")
        return {"Fn::GetAtt": [resource, attribute]}
    return {f"Fn::{tag_suffix}": value}


_CfnLoader.add_multi_constructor("!", _construct_tag)


@lru_cache(maxsize=8)
def _load(path: Path) -> dict[str, Any]:
    document = yaml.load(path.read_text(encoding="utf-8"), Loader=_CfnLoader)  # noqa: S506  # nosec B506  # a SafeLoader subclass
    if not isinstance(document, dict):
        raise ValueError(f"{path} is not a YAML mapping")
    return document


def load_template(path: str | Path | None = None) -> dict[str, Any]:
    """Return the SAM template at ``path`` (default: the repo's template.yaml) as plain dicts/lists.

    Each call returns a fresh deep copy, so callers may modify the result.
    """
    return copy.deepcopy(_load(Path(path).resolve() if path is not None else TEMPLATE_PATH))


def parameter_defaults(template: dict[str, Any]) -> dict[str, str]:
    """Each parameter's Default as CloudFormation passes it on: a string ("" when absent)."""
    return {name: str(spec.get("Default", "")) for name, spec in template.get("Parameters", {}).items()}


def render_sub(value: Any, variables: dict[str, str]) -> str:
    """Resolve an ``Fn::Sub`` (short ``"..."`` or ``[template, {vars}]`` form) against ``variables``.

    Variables given in the long form's map take precedence; a ``${Name}`` not found anywhere raises
    KeyError, so a test cannot silently render a typo. ``${!Literal}`` stays as ``${Literal}``.
    """
    if isinstance(value, dict) and set(value) == {"Fn::Sub"}:
        value = value["Fn::Sub"]
    if isinstance(value, list):
        text, local = value[0], dict(value[1])
    else:
        text, local = value, {}
    if not isinstance(text, str):
        raise TypeError(f"not an Fn::Sub string: {text!r}")
    for name, local_value in local.items():  # the long form's map may hold Ref/Sub themselves
        if isinstance(local_value, dict) and set(local_value) == {"Ref"}:
            local[name] = variables[local_value["Ref"]]
        elif isinstance(local_value, dict) and set(local_value) == {"Fn::Sub"}:
            local[name] = render_sub(local_value, variables)
    merged: dict[str, Any] = {**variables, **local}

    def substitute(match: re.Match[str]) -> str:
        replacement = merged[match.group(1)]
        if not isinstance(replacement, str):
            raise TypeError(f"${{{match.group(1)}}} resolves to {replacement!r}, not a string")
        return replacement

    return _SUB_VARIABLE.sub(substitute, text).replace("${!", "${")


def create_ledger_table(client: DynamoDBClient, table_name: str, template_path: Path | str = TEMPLATE_PATH) -> None:
    """Create ``table_name`` with the keys, indexes, billing mode and TTL of the template's LedgerTable."""
    properties = load_template(template_path)["Resources"][LEDGER_TABLE_RESOURCE]["Properties"]
    indexes = properties.get("GlobalSecondaryIndexes")
    client.create_table(
        TableName=table_name,
        AttributeDefinitions=properties["AttributeDefinitions"],
        KeySchema=properties["KeySchema"],
        BillingMode=properties.get("BillingMode", "PAY_PER_REQUEST"),
        **({"GlobalSecondaryIndexes": indexes} if indexes else {}),
    )
    ttl = properties.get("TimeToLiveSpecification")
    if ttl:
        client.update_time_to_live(
            TableName=table_name,
            TimeToLiveSpecification={"AttributeName": ttl["AttributeName"], "Enabled": bool(ttl["Enabled"])},
        )

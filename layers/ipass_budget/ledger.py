"""The request ledger: one DynamoDB item per requestId, moved through its states by conditional writes.

States (README "Request ledger" has the diagram):

- ``SENDING``: claimed by one invocation (``leaseToken`` until ``leaseExpiresAt``), which may be
  sending the request to AlipayHK right now. The claim is written *before* anything is sent, so
  a crash can never hide that a request may have gone out: the claim is the write-ahead record.
- ``UNKNOWN``: the request may have reached AlipayHK and no answer settled its outcome.
- ``NOT_APPLIED``: AlipayHK refused it before its budget logic ran, or nothing could be sent,
  and no earlier attempt may have reached AlipayHK. The same requestId may be sent again.
- ``SUCCEEDED`` / ``FAILED``: final; replayed until ``expiresAt`` (the DynamoDB TTL attribute).

Only final items carry ``expiresAt``: an unresolved request is never forgotten.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from ipass_budget.models import BudgetUpdate, UpdateType
from ipass_budget.outcome import Outcome, ResultInfo

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import AttributeValueTypeDef


# A sparse global secondary index: only UNKNOWN items carry the attribute, so only they are in it.
UNRESOLVED_INDEX = "Unresolved"
UNRESOLVED_ATTRIBUTE = "unresolved"


class LedgerState(StrEnum):
    SENDING = "SENDING"
    UNKNOWN = "UNKNOWN"
    NOT_APPLIED = "NOT_APPLIED"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"

    @property
    def final(self) -> bool:
        return self in (LedgerState.SUCCEEDED, LedgerState.FAILED)


@dataclass(frozen=True, slots=True)
class LedgerRecord:
    request_id: str
    state: LedgerState
    fingerprint: str
    body: bytes
    update: BudgetUpdate
    caller: str
    source: str
    created_at: str
    updated_at: str
    attempts: int
    may_have_been_applied: bool
    version: int
    lease_token: str | None = None
    lease_expires_at: float | None = None
    result_info: ResultInfo | None = None
    tracer_id: str | None = None
    reason: str | None = None
    resolution: Mapping[str, str] | None = None

    def lease_live(self, now: float) -> bool:
        return self.lease_expires_at is not None and self.lease_expires_at > now

    @property
    def outcome(self) -> Outcome:
        if self.state is LedgerState.SUCCEEDED:
            return Outcome.SUCCEEDED
        if self.state is LedgerState.FAILED or (self.state is LedgerState.NOT_APPLIED and self.result_info):
            return Outcome.FAILED  # NOT_APPLIED with an answer: AlipayHK refused it before its budget logic
        return Outcome.UNKNOWN

    def public(self) -> dict[str, Any]:
        """The GET /budget-updates/{requestId} view (contract section 4); no lease internals."""
        view: dict[str, Any] = {
            "requestId": self.request_id,
            "state": str(self.state),
            "outcome": str(self.outcome),
            **{k: v for k, v in self.update.to_dict().items() if k != "requestId"},
            "resultInfo": self.result_info.as_dict() if self.result_info else None,
            "tracerId": self.tracer_id,
            "attempts": self.attempts,
            "createdAt": self.created_at,
            "updatedAt": self.updated_at,
            "caller": self.caller,
            "source": self.source,
        }
        if self.resolution:
            view["resolution"] = dict(self.resolution)
        return view


@dataclass(frozen=True, slots=True)
class Claim:
    """A granted claim (``token`` set) or the item that stood in the way (``existing``)."""

    token: str | None
    existing: LedgerRecord | None
    # What the item said before this claim; decides whether an earlier attempt may have been sent.
    previous: LedgerRecord | None = None


def iso_now(now: float) -> str:
    return datetime.fromtimestamp(now, UTC).isoformat(timespec="milliseconds")


class Ledger:
    def __init__(self, client: DynamoDBClient, table_name: str, clock: Callable[[], float] = time.time) -> None:
        self._client = client
        self._table = table_name
        self._clock = clock

    def get(self, request_id: str) -> LedgerRecord | None:
        item = self._client.get_item(TableName=self._table, Key={"requestId": {"S": request_id}}, ConsistentRead=True)
        return _record(item["Item"]) if "Item" in item else None

    def claim(self, update: BudgetUpdate, caller: str, source: str, lease_seconds: float) -> Claim:
        """Create the item in SENDING, unless one exists that is still within its retention.

        One conditional PutItem: a refused claim returns the existing item in the same call, so a
        replay costs a single request.
        """
        now = self._clock()
        stamp = iso_now(now)
        token = secrets.token_hex(16)
        body = update.to_body()
        item: dict[str, AttributeValueTypeDef] = {
            "requestId": {"S": update.request_id},
            "state": {"S": LedgerState.SENDING},
            "fingerprint": {"S": update.fingerprint()},
            "body": {"S": body.decode("utf-8")},
            "merchantAccountId": {"S": update.merchant_account_id},
            "templateCode": {"S": update.template_code},
            "updateType": {"S": update.update_type},
            "number": {"N": str(update.number)},
            "caller": {"S": caller},
            "source": {"S": source},
            "createdAt": {"S": stamp},
            "updatedAt": {"S": stamp},
            "attempts": {"N": "0"},
            "mayApplied": {"BOOL": False},
            "version": {"N": "1"},
            "leaseToken": {"S": token},
            "leaseExpiresAt": {"N": _num(now + lease_seconds)},
        }
        try:
            self._client.put_item(
                TableName=self._table,
                Item=item,
                # An item past its retention may linger until TTL deletes it: treat it as absent.
                ConditionExpression="attribute_not_exists(requestId) OR expiresAt <= :now",
                ExpressionAttributeValues={":now": {"N": _num(now)}},
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            return _refused_claim(exc, token, previous=None)
        return Claim(token, None)

    def take_over(self, existing: LedgerRecord, lease_seconds: float) -> Claim:
        """Claim an item that is UNKNOWN, NOT_APPLIED or SENDING with an expired lease.

        Conditional on the item's version, so of two invocations racing for it only one wins; the
        loser gets the fresh item back to decide again.
        """
        now = self._clock()
        token = secrets.token_hex(16)
        try:
            self._client.update_item(
                TableName=self._table,
                Key={"requestId": {"S": existing.request_id}},
                UpdateExpression=(
                    "SET #state = :sending, leaseToken = :token, leaseExpiresAt = :lease, "
                    "updatedAt = :now_iso, version = version + :one"
                ),
                ConditionExpression="version = :version",
                ExpressionAttributeNames={"#state": "state"},
                ExpressionAttributeValues={
                    ":sending": {"S": LedgerState.SENDING},
                    ":token": {"S": token},
                    ":lease": {"N": _num(now + lease_seconds)},
                    ":now_iso": {"S": iso_now(now)},
                    ":one": {"N": "1"},
                    ":version": {"N": str(existing.version)},
                },
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            return _refused_claim(exc, token, previous=existing)
        return Claim(token, None, previous=existing)

    def finish(
        self,
        request_id: str,
        token: str,
        *,
        state: LedgerState,
        attempts: int,
        may_have_been_applied: bool,
        result_info: ResultInfo | None,
        tracer_id: str | None,
        reason: str,
        retention_seconds: float,
    ) -> None:
        """Record what the claim-holder established and release the lease (only if still ours)."""
        now = self._clock()
        names = {"#state": "state", "#reason": "reason"}
        values: dict[str, AttributeValueTypeDef] = {
            ":state": {"S": state},
            ":attempts": {"N": str(attempts)},
            ":may": {"BOOL": may_have_been_applied},
            ":now_iso": {"S": iso_now(now)},
            ":reason": {"S": reason},
            ":one": {"N": "1"},
            ":token": {"S": token},
        }
        sets = [
            "#state = :state",
            "attempts = attempts + :attempts",
            "mayApplied = :may",
            "updatedAt = :now_iso",
            "#reason = :reason",
            "version = version + :one",
        ]
        removes = ["leaseToken", "leaseExpiresAt"]
        if result_info is not None:
            sets.append("resultInfo = :info")
            values[":info"] = {"M": {k: {"S": v} for k, v in result_info.as_dict().items()}}
        if tracer_id:
            sets.append("tracerId = :tracer")
            values[":tracer"] = {"S": tracer_id}
        if state.final:
            sets.append("expiresAt = :expires")
            values[":expires"] = {"N": _num(now + retention_seconds)}
        else:
            removes.append("expiresAt")
        if state is LedgerState.UNKNOWN:
            sets.append(f"{UNRESOLVED_ATTRIBUTE} = :unresolved")
            values[":unresolved"] = {"S": LedgerState.UNKNOWN}
        else:
            removes.append(UNRESOLVED_ATTRIBUTE)
        self._client.update_item(
            TableName=self._table,
            Key={"requestId": {"S": request_id}},
            UpdateExpression=f"SET {', '.join(sets)} REMOVE {', '.join(removes)}",
            ConditionExpression="leaseToken = :token",
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
        )

    def unresolved(self, sample: int = 20) -> tuple[int, list[str]]:
        """How many requests are UNKNOWN, and the first ``sample`` of their requestIds.

        Reads the sparse index that holds only UNKNOWN items, so the cost follows the number of
        unresolved requests, not the size of the ledger.
        """
        count, sample_ids = 0, list[str]()
        paginator = self._client.get_paginator("query")
        for page in paginator.paginate(
            TableName=self._table,
            IndexName=UNRESOLVED_INDEX,
            KeyConditionExpression=f"{UNRESOLVED_ATTRIBUTE} = :unknown",
            ExpressionAttributeValues={":unknown": {"S": LedgerState.UNKNOWN}},
        ):
            items = page.get("Items", [])
            count += len(items)
            sample_ids += [item["requestId"]["S"] for item in items][: max(0, sample - len(sample_ids))]
        return count, sample_ids

    def resolve(
        self, existing: LedgerRecord, *, applied: bool, by: str, note: str, retention_seconds: float
    ) -> LedgerRecord:
        """An operator's reconciliation of a request whose outcome is unknown, recorded with who and when.

        Allowed for UNKNOWN items and for SENDING items whose lease has ended (the invocation died).
        ``applied`` makes it SUCCEEDED, otherwise FAILED: both final and replayed, so a caller that
        still wants the change makes it under a new requestId, a decision the operator has seen.
        """
        now = self._clock()
        state = LedgerState.SUCCEEDED if applied else LedgerState.FAILED
        resolution = {"by": by, "at": iso_now(now), "note": note, "applied": "true" if applied else "false"}
        answer = self._client.update_item(
            TableName=self._table,
            Key={"requestId": {"S": existing.request_id}},
            UpdateExpression=(
                "SET #state = :state, resolution = :resolution, updatedAt = :now_iso, "
                "version = version + :one, expiresAt = :expires "
                f"REMOVE leaseToken, leaseExpiresAt, {UNRESOLVED_ATTRIBUTE}"
            ),
            ConditionExpression=(
                "version = :version AND (#state = :unknown OR (#state = :sending AND leaseExpiresAt <= :now))"
            ),
            ExpressionAttributeNames={"#state": "state"},
            ExpressionAttributeValues={
                ":state": {"S": state},
                ":resolution": {"M": {k: {"S": v} for k, v in resolution.items()}},
                ":now_iso": {"S": iso_now(now)},
                ":now": {"N": _num(now)},
                ":one": {"N": "1"},
                ":expires": {"N": _num(now + retention_seconds)},
                ":version": {"N": str(existing.version)},
                ":unknown": {"S": LedgerState.UNKNOWN},
                ":sending": {"S": LedgerState.SENDING},
            },
            ReturnValues="ALL_NEW",
        )
        return _record(answer["Attributes"])


def _refused_claim(exc: ClientError, token: str, previous: LedgerRecord | None) -> Claim:
    """The item that stood in the way of a conditional claim, from the refused write itself."""
    old = _conditional_failure_item(exc)
    if old is None:
        raise exc
    current = _record(old)
    if current.lease_token == token:  # our own write, retried by botocore after its answer was lost
        return Claim(token, None, previous=previous)
    return Claim(None, current)


def is_conditional_failure(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


def _conditional_failure_item(exc: ClientError) -> Mapping[str, Any] | None:
    if not is_conditional_failure(exc):
        return None
    item = exc.response.get("Item")
    return item if isinstance(item, Mapping) and item else None


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.3f}"


def _record(item: Mapping[str, Any]) -> LedgerRecord:
    def s(name: str) -> str | None:
        value = item.get(name)
        return value["S"] if value else None

    def n(name: str) -> float | None:
        value = item.get(name)
        return float(value["N"]) if value else None

    info = item.get("resultInfo")
    resolution = item.get("resolution")
    return LedgerRecord(
        request_id=item["requestId"]["S"],
        state=LedgerState(item["state"]["S"]),
        fingerprint=item["fingerprint"]["S"],
        body=item["body"]["S"].encode("utf-8"),
        update=BudgetUpdate(
            request_id=item["requestId"]["S"],
            merchant_account_id=item["merchantAccountId"]["S"],
            template_code=item["templateCode"]["S"],
            update_type=UpdateType(item["updateType"]["S"]),
            number=int(item["number"]["N"]),
        ),
        caller=item["caller"]["S"],
        source=item.get("source", {}).get("S", "api"),
        created_at=item["createdAt"]["S"],
        updated_at=item["updatedAt"]["S"],
        attempts=int(item["attempts"]["N"]),
        may_have_been_applied=bool(item.get("mayApplied", {}).get("BOOL", False)),
        version=int(item["version"]["N"]),
        lease_token=s("leaseToken"),
        lease_expires_at=n("leaseExpiresAt"),
        result_info=ResultInfo.from_dict({k: v["S"] for k, v in info["M"].items()}) if info else None,
        tracer_id=s("tracerId"),
        reason=s("reason"),
        resolution={k: v["S"] for k, v in resolution["M"].items()} if resolution else None,
    )

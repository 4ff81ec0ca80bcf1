"""ipass-budget domain: AlipayHK updateBudget protocol, signing, client and request ledger.

Nothing in this package depends on AWS Lambda types, so the handler, the CLI, the sandbox and
the tests all share it.
"""

UPDATE_BUDGET_PATH = "/api/open/alipay/v1/ipass/template/manage/updateBudget"

__all__ = ["UPDATE_BUDGET_PATH"]

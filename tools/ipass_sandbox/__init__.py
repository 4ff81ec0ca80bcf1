"""ipass-sandbox: a local stand-in for AlipayHK's updateBudget API (contract section 6, docs/sandbox.md)."""

"""The audit trail: reading and verifying the ledger."""

"""Persistence: the metadata store with its ledger, and the artifact store."""

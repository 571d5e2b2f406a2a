"""Release gates: evaluation of versions, policies as code, checks, approvals and the lifecycle."""

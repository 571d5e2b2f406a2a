"""The REST API under /api/v1: parse, authenticate, call a service, render. No rules here."""

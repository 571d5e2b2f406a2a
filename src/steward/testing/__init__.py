"""Helpers for testing Steward and its extensions: conformance suites and scratch databases.

Needs pytest (a development dependency); nothing outside tests imports this package.
"""

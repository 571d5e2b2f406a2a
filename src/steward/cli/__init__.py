"""The `steward` command line: Typer commands over `steward.client` (see `steward.cli.main`)."""

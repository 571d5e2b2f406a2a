"""The model registry: models, versions with lineage, aliases, search and model cards."""

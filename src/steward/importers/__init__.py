"""Importers: bring models, versions and runs from other systems into Steward, with lineage."""

from steward.importers.mlflow import ImportReport, import_from_mlflow

__all__ = ["ImportReport", "import_from_mlflow"]

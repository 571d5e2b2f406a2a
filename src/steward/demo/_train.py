"""The demo's models: small, real, and trained in a second each on data scikit-learn ships.

Each trainer returns the fitted model, its held-out metrics, its params and the series it
logged per iteration (a learning curve, boosting stages or SGD epochs), so a run in Steward
looks like one from a real training script.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris
from sklearn.ensemble import GradientBoostingClassifier, GradientBoostingRegressor
from sklearn.linear_model import LogisticRegression, SGDClassifier
from sklearn.metrics import (
    accuracy_score,
    f1_score,
    log_loss,
    mean_absolute_error,
    mean_squared_error,
    r2_score,
    roc_auc_score,
)
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

SEED = 0


@dataclass
class Dataset:
    name: str
    x_train: pd.DataFrame
    x_test: pd.DataFrame
    y_train: pd.Series
    y_test: pd.Series

    @property
    def evaluation(self) -> pd.DataFrame:
        """The held-out rows with their label, as the evaluation set's fingerprint covers."""
        return self.x_test.assign(target=self.y_test.to_numpy())


@dataclass
class Trained:
    model: Any
    metrics: dict[str, float]
    params: dict[str, Any]
    series: dict[str, list[tuple[int, float]]] = field(default_factory=dict)


def _snake(column: str) -> str:
    return "_".join(column.replace("(", "").replace(")", "").split())


def load(name: str) -> Dataset:
    """One of scikit-learn's bundled datasets, with snake_case columns, split 75/25."""
    loaders: dict[str, Callable[..., Any]] = {
        "breast_cancer": load_breast_cancer,
        "diabetes": load_diabetes,
        "iris": load_iris,
    }
    bunch = loaders[name](as_frame=True)
    x = bunch.data.rename(columns=_snake)
    y = bunch.target
    stratify = None if name == "diabetes" else y
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=0.25, random_state=SEED, stratify=stratify
    )
    return Dataset(name, x_train, x_test, y_train, y_test)


def _classification_metrics(y: Any, proba: np.ndarray[Any, Any]) -> dict[str, float]:
    predicted = proba.argmax(axis=1)
    binary = proba.shape[1] == 2
    return {
        **({"auc": float(roc_auc_score(y, proba[:, 1]))} if binary else {}),
        "accuracy": float(accuracy_score(y, predicted)),
        "f1": float(f1_score(y, predicted, average="binary" if binary else "macro")),
        "log_loss": float(log_loss(y, proba)),
    }


def logistic_regression(data: Dataset) -> Trained:
    """The champion: a scaled logistic regression; logs a learning curve (AUC by train size)."""
    params = {"C": 0.5, "max_iter": 2000, "scaler": "standard"}

    def make() -> Pipeline:
        return Pipeline([
            ("scale", StandardScaler()),
            ("model", LogisticRegression(C=params["C"], max_iter=params["max_iter"])),
        ])  # fmt: skip

    curve: list[tuple[int, float]] = []
    for fraction in np.linspace(0.1, 1.0, 10):
        n = max(int(len(data.x_train) * fraction), 20)
        fitted = make().fit(data.x_train.iloc[:n], data.y_train.iloc[:n])
        curve.append(
            (n, float(roc_auc_score(data.y_test, fitted.predict_proba(data.x_test)[:, 1])))
        )
    model = make().fit(data.x_train, data.y_train)
    metrics = _classification_metrics(data.y_test, model.predict_proba(data.x_test))
    return Trained(model, metrics, params, {"val_auc_by_train_size": curve})


def gradient_boosting(data: Dataset) -> Trained:
    """The challenger: gradient boosting; logs validation AUC and log loss at every stage."""
    params = {"n_estimators": 120, "learning_rate": 0.1, "max_depth": 2, "subsample": 0.8}
    model = GradientBoostingClassifier(random_state=SEED, **params).fit(data.x_train, data.y_train)
    auc: list[tuple[int, float]] = []
    loss: list[tuple[int, float]] = []
    for stage, proba in enumerate(model.staged_predict_proba(data.x_test), start=1):
        auc.append((stage, float(roc_auc_score(data.y_test, proba[:, 1]))))
        loss.append((stage, float(log_loss(data.y_test, proba))))
    train_loss = [(i, float(v)) for i, v in enumerate(model.train_score_, start=1)]
    metrics = _classification_metrics(data.y_test, model.predict_proba(data.x_test))
    series = {"val_auc": auc, "val_log_loss": loss, "train_loss": train_loss}
    return Trained(model, metrics, params, series)


def boosted_regressor(data: Dataset) -> Trained:
    """Disease progression: gradient boosting regression; logs validation RMSE per stage."""
    params = {"n_estimators": 150, "learning_rate": 0.05, "max_depth": 2, "subsample": 0.8}
    model = GradientBoostingRegressor(random_state=SEED, **params).fit(data.x_train, data.y_train)
    rmse = [
        (stage, float(np.sqrt(mean_squared_error(data.y_test, predicted))))
        for stage, predicted in enumerate(model.staged_predict(data.x_test), start=1)
    ]
    predicted = model.predict(data.x_test)
    metrics = {
        "rmse": float(np.sqrt(mean_squared_error(data.y_test, predicted))),
        "mae": float(mean_absolute_error(data.y_test, predicted)),
        "r2": float(r2_score(data.y_test, predicted)),
    }
    return Trained(model, metrics, params, {"val_rmse": rmse})


def sgd_classifier(data: Dataset, epochs: int = 25) -> Trained:
    """Iris species: a linear model trained by SGD, epoch by epoch (and exported to ONNX)."""
    params = {"loss": "log_loss", "alpha": 1e-3, "epochs": epochs, "scaler": "standard"}
    scaler = StandardScaler().fit(data.x_train)
    x_train = scaler.transform(data.x_train)
    x_test = scaler.transform(data.x_test)
    classes = np.unique(data.y_train)
    sgd = SGDClassifier(loss="log_loss", alpha=params["alpha"], random_state=SEED)
    train_loss: list[tuple[int, float]] = []
    val_accuracy: list[tuple[int, float]] = []
    for epoch in range(1, epochs + 1):
        sgd.partial_fit(x_train, data.y_train, classes=classes)
        train_loss.append((epoch, float(log_loss(data.y_train, sgd.predict_proba(x_train)))))
        val_accuracy.append((epoch, float(accuracy_score(data.y_test, sgd.predict(x_test)))))
    model = Pipeline([("scale", scaler), ("model", sgd)])
    metrics = _classification_metrics(data.y_test, model.predict_proba(data.x_test))
    return Trained(
        model, metrics, params, {"train_log_loss": train_loss, "val_accuracy": val_accuracy}
    )

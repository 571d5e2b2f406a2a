"""The demo's models: small, real, and trained in a second each on data scikit-learn ships.

Each trainer returns the fitted model, its held-out metrics, its params and the series it
logged per iteration (a learning curve, boosting stages or SGD epochs), so a run in Steward
looks like one from a real training script.

scikit-learn's datasets carry no demographic attribute, so the release gates' fairness check
needs a group column made up for the demo: every breast cancer sample is assigned to a
referring ``clinic`` (A or B) by a seeded rule, stratified by diagnosis so that both clinics see
the same share of malignant samples (see :func:`assign_clinics`). It is synthetic, and the demo
says so. One trainer (:func:`site_aware_boosting`) then reproduces a real way models go wrong: a
labelling problem at one site, learnt through a site column.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
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
from sklearn.preprocessing import OneHotEncoder, StandardScaler

SEED = 0
CLINICS = ("A", "B")


@dataclass
class Dataset:
    name: str
    x_train: pd.DataFrame
    x_test: pd.DataFrame
    y_train: pd.Series
    y_test: pd.Series
    # group columns reported by the evaluation (not model inputs unless a trainer makes them so)
    groups_train: pd.DataFrame = field(default_factory=pd.DataFrame)
    groups_test: pd.DataFrame = field(default_factory=pd.DataFrame)

    @property
    def group_columns(self) -> list[str]:
        return [str(column) for column in self.groups_test.columns]

    @property
    def evaluation(self) -> pd.DataFrame:
        """The held-out rows with their group columns and label: what the release gates'
        evaluation reads, and what the registered evaluation fingerprint covers."""
        return pd.concat([self.x_test, self.groups_test], axis=1).assign(
            target=self.y_test.to_numpy()
        )


@dataclass
class Trained:
    model: Any
    metrics: dict[str, float]
    params: dict[str, Any]
    series: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    training_data: pd.DataFrame | None = None  # the inputs it was fitted on, if not x_train


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
    data = Dataset(name, x_train, x_test, y_train, y_test)
    if name == "breast_cancer":
        data.groups_train = pd.DataFrame({"clinic": assign_clinics(y_train, seed=1)})
        data.groups_test = pd.DataFrame({"clinic": assign_clinics(y_test, seed=2)})
    elif name == "diabetes":
        # a real attribute, also an input: the source codes sex as 1 or 2 (scaled here, so the
        # positive value is 2); the group column restores the code
        data.groups_train = pd.DataFrame({"sex_code": _sex_codes(x_train)})
        data.groups_test = pd.DataFrame({"sex_code": _sex_codes(x_test)})
    return data


def assign_clinics(y: pd.Series, *, seed: int) -> pd.Series:
    """A synthetic referring clinic per sample: within each diagnosis, a seeded shuffle sends
    half the samples to clinic A and the rest to B, so the clinics have the same malignancy
    rate and a fair model has no reason to treat them differently."""
    rng = np.random.default_rng(seed)
    labels = y.to_numpy()
    clinic = np.empty(len(labels), dtype=object)
    for value in np.unique(labels):
        rows = np.flatnonzero(labels == value)
        rng.shuffle(rows)
        half = len(rows) // 2
        clinic[rows[:half]], clinic[rows[half:]] = CLINICS
    return pd.Series(clinic, index=y.index, name="clinic", dtype=str)


def _sex_codes(x: pd.DataFrame) -> pd.Series:
    return pd.Series(np.where(x["sex"] > 0, "2", "1"), index=x.index, name="sex_code", dtype=str)


def _classification_metrics(y: Any, proba: np.ndarray[Any, Any]) -> dict[str, float]:
    predicted = proba.argmax(axis=1)
    binary = proba.shape[1] == 2
    return {
        **({"auc": float(roc_auc_score(y, proba[:, 1]))} if binary else {}),
        "accuracy": float(accuracy_score(y, predicted)),
        "f1": float(f1_score(y, predicted, average="binary" if binary else "macro")),
        "log_loss": float(log_loss(y, proba)),
    }


def logistic_regression(data: Dataset, c: float = 0.5) -> Trained:
    """The champion: a scaled logistic regression; logs a learning curve (AUC by train size).
    The serving step's canary is the same pipeline with ``c=1.0`` (less regularised)."""
    params = {"C": c, "max_iter": 2000, "scaler": "standard"}

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


def site_aware_boosting(data: Dataset, skewed: float = 0.3) -> Trained:
    """A challenger that learns a site's labelling problem: gradient boosting with the referring
    clinic as an input, trained on labels where clinic B recorded its least obvious malignant
    samples (the ``skewed`` share with the smallest ``worst_radius``) as benign, as when one
    site closes a case before the biopsy result is back. Its held-out metrics look fine; it
    misses clinic B's malignant samples far more often than clinic A's."""
    boost = {"n_estimators": 120, "learning_rate": 0.1, "max_depth": 2, "subsample": 0.8}
    params = {**boost, "inputs": "30 measurements + clinic", "relabelled_clinic_b": skewed}
    x_train = pd.concat([data.x_train, data.groups_train[["clinic"]]], axis=1)
    x_test = pd.concat([data.x_test, data.groups_test[["clinic"]]], axis=1)
    labels = data.y_train.to_numpy().copy()
    malignant_b = np.flatnonzero((labels == 0) & (x_train["clinic"].to_numpy() == "B"))
    least_obvious = malignant_b[np.argsort(x_train["worst_radius"].to_numpy()[malignant_b])]
    labels[least_obvious[: int(len(malignant_b) * skewed)]] = 1  # recorded benign
    model = Pipeline([
        ("site", ColumnTransformer(
            [("clinic", OneHotEncoder(drop="if_binary"), ["clinic"])], remainder="passthrough"
        )),
        ("model", GradientBoostingClassifier(random_state=SEED, **boost)),
    ]).fit(x_train, labels)  # fmt: skip
    boosting = model.named_steps["model"]
    auc: list[tuple[int, float]] = []
    loss: list[tuple[int, float]] = []
    stages = boosting.staged_predict_proba(model.named_steps["site"].transform(x_test))
    for stage, proba in enumerate(stages, start=1):
        auc.append((stage, float(roc_auc_score(data.y_test, proba[:, 1]))))
        loss.append((stage, float(log_loss(data.y_test, proba))))
    train_loss = [(i, float(v)) for i, v in enumerate(boosting.train_score_, start=1)]
    metrics = _classification_metrics(data.y_test, model.predict_proba(x_test))
    series = {"val_auc": auc, "val_log_loss": loss, "train_loss": train_loss}
    return Trained(model, metrics, params, series, training_data=x_train)


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

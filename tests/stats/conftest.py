"""Seeded synthetic predictions shaped like a real model's: scores from a noisy logistic model."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

Binary = tuple[np.ndarray, np.ndarray, np.ndarray]


def make_binary(seed: int, n: int, *, ties: bool = False, shift: float = 0.2) -> Binary:
    """(y_true 0/1, y_pred 0/1, probability of 1); ``ties`` rounds scores to 2 decimals."""
    rng = np.random.default_rng(seed)
    logit = rng.normal(-0.5, 1.5, n)
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    p = 1 / (1 + np.exp(-(0.8 * logit + rng.normal(0, 0.7, n) + shift)))
    if ties:
        p = np.round(p, 2)
    return y, (p >= 0.5).astype(int), p


def make_multiclass(seed: int, n: int, k: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """(y_true in 0..k-1, (n, k) probabilities) from a noisy softmax model."""
    centres = np.random.default_rng(k).normal(0, 1.2, (k, 3))  # the same model for every seed
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    x = centres[y] + rng.normal(0, 1.0, (n, 3))
    logits = -((x[:, None, :] - centres[None, :, :]) ** 2).sum(axis=2) * 0.7
    proba = np.exp(logits - logits.max(axis=1, keepdims=True))
    return y, proba / proba.sum(axis=1, keepdims=True)


@pytest.fixture
def binary() -> Callable[..., Binary]:
    return make_binary


@pytest.fixture
def multiclass() -> Callable[..., tuple[np.ndarray, np.ndarray]]:
    return make_multiclass

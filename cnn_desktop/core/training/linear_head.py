"""A linear softmax classifier trained in numpy on fixed embeddings: the head of head-mode
training, with no torch.

The loss is cross-entropy with label smoothing and optional per-class weights, exactly as
``torch.nn.CrossEntropyLoss(weight=w, label_smoothing=ε)`` defines it (the weighted sum over
the batch divided by the weights of the true classes); the optimiser is AdamW (Loshchilov &
Hutter, decoupled weight decay). The initial weights are drawn like ``torch.nn.Linear``'s,
uniform in ±1/√fan_in, from the run's own seeded generator.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


def softmax_rows(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax, stable for large logits."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    np.exp(shifted, out=shifted)
    shifted /= shifted.sum(axis=1, keepdims=True)
    return shifted


@dataclass
class LinearHead:
    """``logits = x @ weight.T + bias``; ``weight`` is ``[classes, features]``."""

    weight: np.ndarray
    bias: np.ndarray

    @classmethod
    def initial(cls, features: int, classes: int, rng: np.random.Generator) -> LinearHead:
        """Weights drawn as ``torch.nn.Linear`` draws them: uniform in ±1/√features."""
        bound = 1.0 / np.sqrt(features)
        weight = rng.uniform(-bound, bound, (classes, features)).astype(np.float32)
        bias = rng.uniform(-bound, bound, classes).astype(np.float32)
        return cls(weight, bias)

    def logits(self, x: np.ndarray) -> np.ndarray:
        return x @ self.weight.T + self.bias

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        """Class probabilities ``[N, classes]`` for embeddings ``[N, features]``."""
        return softmax_rows(self.logits(x))

    def scaled(self, factor: float) -> LinearHead:
        """The head with its logits multiplied by ``factor`` (``1/T`` calibrates it)."""
        return LinearHead(
            (self.weight * factor).astype(np.float32), (self.bias * factor).astype(np.float32)
        )

    def copy(self) -> LinearHead:
        return LinearHead(self.weight.copy(), self.bias.copy())


def smoothed_cross_entropy(
    logits: np.ndarray,
    targets: np.ndarray,
    smoothing: float = 0.0,
    class_weights: np.ndarray | None = None,
) -> tuple[float, np.ndarray]:
    """The mean loss and its gradient with respect to ``logits``.

    Per sample, the loss is ``Σ_c a_c · −log p_c`` with ``a_c = w_c (ε/C + (1−ε)·[c = y])``;
    the batch loss divides the sum by ``Σ w_y`` (by N without weights), as torch does.
    """
    count, classes = logits.shape
    weights = np.ones(classes, np.float32) if class_weights is None else class_weights
    probabilities = softmax_rows(logits.astype(np.float64))
    targets_weight = np.zeros((count, classes))
    targets_weight[np.arange(count), targets] = 1.0 - smoothing
    targets_weight += smoothing / classes
    targets_weight *= weights[None, :]
    denominator = float(weights[targets].sum()) or 1.0
    log_p = np.log(np.clip(probabilities, 1e-45, None))
    loss = float(-(targets_weight * log_p).sum() / denominator)
    gradient = probabilities * targets_weight.sum(axis=1, keepdims=True) - targets_weight
    return loss, (gradient / denominator).astype(np.float32)


@dataclass
class AdamW:
    """AdamW for the head's two arrays."""

    lr: float
    weight_decay: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    steps: int = 0
    _moments: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)

    def step(self, parameters: list[np.ndarray], gradients: list[np.ndarray]) -> None:
        """Update ``parameters`` in place."""
        if not self._moments:
            self._moments = [(np.zeros_like(p), np.zeros_like(p)) for p in parameters]
        self.steps += 1
        beta1, beta2 = self.betas
        correction1, correction2 = 1 - beta1**self.steps, 1 - beta2**self.steps
        for parameter, gradient, (m, v) in zip(parameters, gradients, self._moments, strict=True):
            parameter *= 1 - self.lr * self.weight_decay
            m *= beta1
            m += (1 - beta1) * gradient
            v *= beta2
            v += (1 - beta2) * gradient * gradient
            parameter -= self.lr * (m / correction1) / (np.sqrt(v / correction2) + self.eps)


def train_step(
    head: LinearHead,
    optimiser: AdamW,
    x: np.ndarray,
    y: np.ndarray,
    smoothing: float,
    class_weights: np.ndarray | None,
) -> tuple[float, int]:
    """One optimiser step on a batch; returns its loss and how many it got right."""
    logits = head.logits(x)
    loss, gradient = smoothed_cross_entropy(logits, y, smoothing, class_weights)
    optimiser.step([head.weight, head.bias], [gradient.T @ x, gradient.sum(axis=0)])
    return loss, int((logits.argmax(axis=1) == y).sum())

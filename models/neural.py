"""A small Keras network for engagement: the words of the text plus the posting-time features.

TensorFlow is optional (requirements-nn.txt) and imported only when a network is built or
loaded. The live path keeps scoring with the forest; the network is trained and measured
next to it by `socialpulse train --model nn|both` and saved with the version.

Architecture (a few thousand weights, seconds per epoch on a CPU):

    text ─ TextVectorization (vocabulary of the training rows) ─ Embedding(8) ── mean ─┐
    posting-time features ─ Normalization (training mean/std) ──────────────────────────┤
                                                    Dense(32, relu) ─ Dropout ─ Dense(1)

It predicts log(1 + engagement) with the Huber loss (robust to the few viral outliers).
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from models.features import FEATURE_NAMES

log = logging.getLogger(__name__)
_RECENT_LIFT = FEATURE_NAMES.index("author_recent_lift")

INSTALL_HINT = "install it with `make setup-nn` (or pip install -r requirements-nn.txt)"


class NeuralUnavailable(RuntimeError):
    """TensorFlow is not installed, so no neural model can be trained or loaded."""


def require_tensorflow():
    """The `keras` module, or NeuralUnavailable with how to install it."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # no C++ info lines on import
    # oneDNN's reordered float arithmetic makes results vary by CPU; this model is too small
    # to gain from it, and turning it off also silences its notice on every import.
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    try:
        import keras
        import tensorflow  # noqa: F401  (the backend Keras runs on)
    except ImportError as exc:
        raise NeuralUnavailable(
            f"the neural model needs TensorFlow, which is not installed: {INSTALL_HINT}"
        ) from exc
    return keras


class NeuralEngagementModel:
    """Keras regressor on text + standardized posting-time features.

    Args:
        max_tokens: vocabulary size (most frequent words of the training texts).
        sequence_length: words kept per text.
        embedding_dim: size of a word's vector.
        hidden: units of the hidden layer.
        dropout: dropout rate after it.
        epochs: most passes over the data (early stopping usually ends sooner).
        batch_size: rows per gradient step.
        learning_rate: Adam's step size.
        patience: epochs without a better validation loss before stopping.
        validation_fraction: the latest share of the training rows that early stopping
            watches (time-ordered, like every evaluation here).
        baseline: "author" adds the author's recent level (feature `author_recent_lift`)
            to the output, as the forest's baseline does; "none" predicts directly.
        l2: weight decay of the embedding and dense layers.
        seed: random seed (weights, dropout, batch order).
    """

    def __init__(
        self,
        max_tokens: int = 5000,
        sequence_length: int = 32,
        embedding_dim: int = 8,
        hidden: int = 32,
        dropout: float = 0.3,
        epochs: int = 40,
        batch_size: int = 64,
        learning_rate: float = 3e-3,
        patience: int = 4,
        validation_fraction: float = 0.15,
        baseline: str = "author",
        l2: float = 1e-3,
        seed: int = 0,
    ) -> None:
        self.max_tokens = max_tokens
        self.sequence_length = sequence_length
        self.embedding_dim = embedding_dim
        self.hidden = hidden
        self.dropout = dropout
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.baseline = baseline
        self.l2 = l2
        self.seed = seed

    def get_params(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if not k.endswith("_")}

    def _level(self, x: np.ndarray) -> np.ndarray:
        """What the network adds its output to: the author's recent level, or 0."""
        if self.baseline == "author":
            return x[:, _RECENT_LIFT : _RECENT_LIFT + 1].copy()
        return np.zeros((len(x), 1), dtype=np.float32)

    def _build(self, texts: np.ndarray, features: np.ndarray, targets: np.ndarray):
        keras = require_tensorflow()
        keras.utils.set_random_seed(self.seed)
        layers = keras.layers
        regularizer = keras.regularizers.L2(self.l2) if self.l2 else None
        vectorize = layers.TextVectorization(
            max_tokens=self.max_tokens,
            output_sequence_length=self.sequence_length,
            name="words",
        )
        # One placeholder word keeps the lookup table valid when no text has a word at all.
        vectorize.adapt(np.append(texts, "placeholder"), batch_size=1024)
        normalize = layers.Normalization(name="standardize")
        normalize.adapt(features)
        text_in = keras.Input(shape=(1,), dtype="string", name="text")
        features_in = keras.Input(shape=(features.shape[1],), name="features")
        level_in = keras.Input(shape=(1,), name="level")
        words = layers.Embedding(
            vectorize.vocabulary_size(),
            self.embedding_dim,
            mask_zero=True,
            embeddings_regularizer=regularizer,
            name="embedding",
        )(vectorize(text_in))
        words = layers.GlobalAveragePooling1D(name="mean_of_words")(words)
        joined = layers.Concatenate()([words, normalize(features_in)])
        hidden = layers.Dense(
            self.hidden, activation="relu", kernel_regularizer=regularizer, name="hidden"
        )(joined)
        hidden = layers.Dropout(self.dropout, seed=self.seed)(hidden)
        # Starts at the mean of what is left after the level, so training begins close.
        start = float(np.mean(targets - self._level(features)[:, 0]))
        output = layers.Dense(
            1, bias_initializer=keras.initializers.Constant(start), name="deviation"
        )(hidden)
        output = layers.Add(name="log_engagement")([output, level_in])
        model = keras.Model([text_in, features_in, level_in], output, name="engagement_nn")
        model.compile(
            optimizer=keras.optimizers.Adam(self.learning_rate), loss=keras.losses.Huber()
        )
        return model

    def fit(
        self,
        texts: Sequence[str],
        features: np.ndarray,
        log_targets: np.ndarray,
        early_stopping: bool = True,
    ) -> NeuralEngagementModel:
        """Fit on time-ordered rows; with early stopping the latest rows are the validation."""
        keras = require_tensorflow()
        texts = [str(t) for t in texts]
        x = np.asarray(features, dtype=np.float32)
        y = np.asarray(log_targets, dtype=np.float32)
        n_fit = len(y)
        validation = None
        callbacks = []
        if early_stopping:
            n_fit = len(y) - max(1, int(len(y) * self.validation_fraction))
            validation = self._batches(texts[n_fit:], x[n_fit:], y[n_fit:])
            callbacks.append(
                keras.callbacks.EarlyStopping(
                    patience=self.patience, restore_best_weights=True, monitor="val_loss"
                )
            )
        self.model_ = self._build(np.array(texts[:n_fit]), x[:n_fit], y[:n_fit])
        history = self.model_.fit(
            # Mini-batches are shuffled within the training rows only, never across the split.
            self._batches(texts[:n_fit], x[:n_fit], y[:n_fit], shuffle=True),
            validation_data=validation,
            epochs=self.epochs,
            shuffle=False,  # done by the dataset
            callbacks=callbacks,
            verbose=0,
        )
        losses = history.history.get("val_loss") or history.history["loss"]
        self.epochs_ = int(np.argmin(losses)) + 1 if early_stopping else len(losses)
        self.history_ = {k: [float(v) for v in vals] for k, vals in history.history.items()}
        return self

    def _batches(self, texts, x, y=None, shuffle: bool = False, batch_size: int | None = None):
        import tensorflow as tf

        level = self._level(x)
        inputs = {
            "text": tf.constant(list(texts), shape=(len(texts), 1)),
            "features": x,
            "level": level,
        }
        data = tf.data.Dataset.from_tensor_slices(inputs if y is None else (inputs, y))
        if shuffle:
            data = data.shuffle(len(texts), seed=self.seed, reshuffle_each_iteration=True)
        return data.batch(batch_size or self.batch_size)

    def predict_log(self, texts: Sequence[str], features: np.ndarray) -> np.ndarray:
        if len(texts) == 0:
            return np.empty(0)
        x = np.asarray(features, dtype=np.float32)
        batches = self._batches([str(t) for t in texts], x, batch_size=1024)
        predicted = self.model_.predict(batches, verbose=0)
        return predicted.reshape(-1).astype(np.float64)

    def to_bytes(self) -> bytes:
        """The network in Keras' native `.keras` format."""
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "model.keras"
            self.model_.save(path)
            return path.read_bytes()

    @classmethod
    def from_bytes(cls, content: bytes, params: dict[str, Any] | None = None):
        """Load a network from `.keras` bytes the caller has already hash-checked.

        The bytes go to a private temporary file (Keras loads from paths), and `safe_mode`
        refuses any serialized Python code (e.g. Lambda layers).
        """
        keras = require_tensorflow()
        known = {k: v for k, v in (params or {}).items() if k in cls().get_params()}
        model = cls(**known)
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "model.keras"
            path.write_bytes(content)
            model.model_ = keras.saving.load_model(path, safe_mode=True, compile=False)
        model.epochs_ = (params or {}).get("epochs_used")
        return model

    @staticmethod
    def library_versions() -> dict[str, str]:
        keras = require_tensorflow()
        import tensorflow

        return {"tensorflow": tensorflow.__version__, "keras": keras.__version__}

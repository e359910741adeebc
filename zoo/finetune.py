"""Fine-tuning: the encoder of a trained run (any model that can `encode`) becomes a classifier for new classes.

`FineTuned` holds its own copy of the source run's encoder (for simclr its `encoder`, with the greyscale and
percentile-stretch layers inside) and a small MLP head, so its .keras file stands alone: loading it never reads
the source run. It is trained in two phases (training/finetune.py): the encoder frozen while the new head learns,
so the head's first random gradients do not wreck the pretrained features, then the whole network at a tenth of the
learning rate. Like the classifier it sees random views of the sky in training (zoo/observation.py): with a few
labels per class they are most of what it learns from.
"""
from __future__ import annotations

import keras
from keras import layers

from core.errors import ModelError
from core.runs import RunFolder
from zoo.classifier import VIEW_OPTIONS
from zoo.inference import predict
from zoo.observation import GalaxyAugment
from zoo.registry import get_entry, load

PHASE_TWO_RATE = 0.1     # the whole network trains at this share of the head's learning rate


@keras.saving.register_keras_serializable(package="astrozoo")
class FineTuned(keras.Model):
    """Image → (a random view, in training) → pretrained encoder → Dense → Dropout → Dense softmax."""

    def __init__(self, encoder: keras.Model, num_classes: int, hidden: int, dropout: float, random_views: bool,
                 seed: int, **kwargs):
        super().__init__(**kwargs)
        if num_classes < 2:
            raise ModelError(f"fine-tuning needs at least 2 classes, got {num_classes}. "
                             "Use a labeled dataset with two or more classes")
        self.encoder = encoder
        self.image_size, self.channels = encoder.input_shape[1], encoder.input_shape[-1]
        self.num_classes, self.hidden, self.dropout = num_classes, hidden, dropout
        self.random_views, self.seed = random_views, seed
        self.views = GalaxyAugment(**VIEW_OPTIONS, seed=seed, name="views") if random_views else None
        self.head = keras.Sequential([keras.Input((encoder.output_shape[-1],)),
                                      layers.Dense(hidden, activation="relu"), layers.Dropout(dropout),
                                      layers.Dense(num_classes, activation="softmax")], name="head")
        self.build((None, self.image_size, self.image_size, self.channels))

    def build(self, input_shape):
        self.built = True

    def call(self, images, training=False):
        if training and self.views is not None:
            images = self.views(images)
        return self.head(self.encoder(images, training=training), training=training)

    def classify(self, images, batch_size: int = 256):
        """Class probabilities (n, num_classes) of images in [0, 1]."""
        return predict(self, images, batch_size)

    def get_config(self):
        return {**super().get_config(), "encoder": keras.saving.serialize_keras_object(self.encoder),
                "num_classes": self.num_classes, "hidden": self.hidden, "dropout": self.dropout,
                "random_views": self.random_views, "seed": self.seed}

    @classmethod
    def from_config(cls, config):
        return cls(**{**config, "encoder": keras.saving.deserialize_keras_object(config["encoder"])})


def encoder_shape(run) -> tuple[int, int]:
    """Image size and channels the encoder of run `run` (a folder or `preset:NAME`) was trained on, from its
    config.json; a ModelError when the run's model cannot `encode`."""
    saved = RunFolder(run).read_config()
    if "encode" not in get_entry(saved["model"]).capabilities:
        raise ModelError(f"--from {run} is a '{saved['model']}' run, which cannot encode images. "
                         "Fine-tune from a run or preset of simclr, vae or autoencoder")
    return saved["image_size"], saved["model_options"]["channels"]


def pretrained_encoder(run) -> keras.Model:
    """The encoder of run `run` as a Keras model image → feature vector (checked by `encoder_shape`)."""
    encoder_shape(run)
    encoder = load(run).encoder
    # the VAE's encoder gives (mean, log variance): its features are the mean, as in its `encode`
    return keras.Model(encoder.inputs, encoder.outputs[0], name="encoder")


def fine_tuned(encoder: keras.Model, num_classes: int, hidden: int = 128, dropout: float = 0.2,
               random_views: bool = True, seed: int = 0, learning_rate: float = 1e-3) -> FineTuned:
    """A classifier head on `encoder`, its options' defaults in one place; compiled for the frozen phase
    (`compile_phase`). `learning_rate` is the head's; the whole network later trains at PHASE_TWO_RATE of it."""
    model = FineTuned(encoder, num_classes, hidden, dropout, random_views, seed, name="classifier")
    compile_phase(model, frozen=True, learning_rate=learning_rate)
    return model


def compile_phase(model: FineTuned, frozen: bool, learning_rate: float) -> None:
    """Freezes (BatchNorm then keeps its statistics too) or unfreezes the encoder, and compiles with Adam at
    `learning_rate`. Recompiling is what makes Keras train a changed set of variables."""
    model.encoder.trainable = not frozen
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])

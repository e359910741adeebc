"""FLOPs of a Keras model's forward pass and training step, counted from its layers."""
from __future__ import annotations

import math

import keras
from keras import layers


def leaf_layers(layer) -> list:
    """The layers that do the work, found through nested models and Sequentials."""
    children = getattr(layer, "layers", None)
    if not children:
        return [layer]
    return [leaf for child in children for leaf in leaf_layers(child)]


def forward_flops_per_image(model) -> int | None:
    """FLOPs (2 per multiply-add) of one image's forward pass through every Conv2D, Conv2DTranspose and Dense.

    Conv2D: 2·H_out·W_out·k²·C_in·C_out; Conv2DTranspose: 2·H_in·W_in·k²·C_in·C_out; Dense: 2·in·out per
    position. Activations, pooling and dropout are left out (under 1% of the seed CNN). None when the model
    has another layer with weights, or a layer whose shapes are not known, since the count would be wrong.
    """
    if not isinstance(model, keras.Model):
        return None
    total = 0
    for layer in leaf_layers(model):
        if not layer.weights:
            continue
        if not isinstance(layer, (layers.Conv2D, layers.Conv2DTranspose, layers.Dense)):
            return None
        try:
            shape = (layer.input if isinstance(layer, layers.Conv2DTranspose) else layer.output).shape
        except (AttributeError, ValueError):
            return None
        positions = math.prod(shape[1:-1])
        total += 2 * positions * math.prod(layer.kernel.shape)
    return total


def uses_keras_train_step(model) -> bool:
    return isinstance(model, keras.Model) and type(model).train_step is keras.Model.train_step


def training_flops_per_image(model) -> int | None:
    """≈ 3 × forward (the backward pass costs about twice the forward); only for Keras' own train step, where
    one step is one forward and one backward pass through every layer (not so for GANs)."""
    forward = forward_flops_per_image(model) if uses_keras_train_step(model) else None
    return None if forward is None else 3 * forward

"""Every registered model (zoo.list_models(), both image worlds) on tiny settings: it builds, a couple of train
steps leave nothing NaN (Keras models: fit; composite models: fit_source on a few small star fields), save and
load give identical outputs, and each capability method returns the right shape and range. A model registered
without a tiny configuration here fails test_every_registered_model_is_covered.

The same test runs on TensorFlow here and, for one model of each way of training, on JAX in a second pytest
process (tests/test_backends.py). GANs (and the layered model, which trains two) have an optimizer per network.
"""
import json

import cv2
import keras
import numpy as np
import pytest

import zoo
from core.files import write_png
from core.worlds import SCORE_RANGE
from datasets.source import ArraySource
from zoo.gan import GAN
from zoo.parts import CompositeModel

MODELS = zoo.list_models()

# The tiny configuration of every registered model: 16 px galaxies, 32 px star fields, few filters and steps (the
# CNN scorer learns fast enough that its two steps lift every score off the clamp at 0).
TINY = {
    "autoencoder": {"image_size": 16, "latent_dim": 8, "filters": 8},
    "classifier": {"image_size": 16, "num_classes": 4},
    "cnn-scorer": {"input_size": 16, "widths": (4, 8), "feature_dim": 4, "learning_rate": 0.03},
    "dcgan": {"image_size": 16, "latent_dim": 8, "filters": 4},
    "layered": {"image_size": 32, "patch_size": 8, "max_stars": 4, "min_distance": 6, "star_latent_dim": 8,
                "star_filters": 4, "coordinate_latent_dim": 4, "coordinate_units": 8, "coordinate_epochs": 2},
    "naive": {"image_size": 32, "tile_size": 8, "min_distance": 6},
    "rf-scorer": {"bins": 8, "bands": 4, "trees": 10},
    "simclr": {"image_size": 16, "feature_dim": 32},
    "stylegan": {"image_size": 16, "latent_dim": 8, "filters": 8, "mapping_layers": 2},
    "vae": {"image_size": 16, "latent_dim": 8, "filters": 8},
    "wgan-gp": {"image_size": 16, "latent_dim": 8, "filters": 4, "n_critic": 2},
}
FIELD_SIZE = 32       # the tiny star fields' side


class ScoredArray(ArraySource):
    """In-memory star fields with a CIL similarity score each, as the scorers read them."""

    def __init__(self, images, scores):
        super().__init__(images, name="tiny-fields")
        self.scores = np.asarray(scores, np.float64)

    def metadata(self, indices):
        return {"score": self.scores[np.asarray(indices)]}


def tiny_fields(n, seed):
    """n uint8 fields of 32×32×1: a sky whose level grows with the index (and whose score falls with it) and two
    bright stars in the middle of 8 px tiles."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:FIELD_SIZE, :FIELD_SIZE]
    fields = np.zeros((n, FIELD_SIZE, FIELD_SIZE, 1), np.uint8)
    for k in range(n):
        sky = 3 + 2 * k + rng.integers(0, 3, (FIELD_SIZE, FIELD_SIZE))
        stars = sum(240 * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * 1.5 ** 2))
                    for x, y in ((12, 12), (20 + 8 * (k % 2), 20)))
        fields[k, ..., 0] = np.clip(sky + stars, 0, 255)
    return ScoredArray(fields, 8 * np.exp(-np.arange(n) / 4))


@pytest.fixture(scope="module")
def star_fields():
    """8 training fields and 4 held-out ones."""
    return tiny_fields(8, seed=0), tiny_fields(4, seed=1)


def inputs_of(world, tiny_images, star_fields):
    """The images the capability methods get: 8 galaxies (16×16×3) or the 4 held-out fields (32×32×1) in [0, 1]."""
    if world == "galaxies":
        return tiny_images[0]
    return star_fields[1].images.astype(np.float32) / 255


def capability_outputs(model, capabilities, images, options):
    outputs = {}
    if "classify" in capabilities:
        outputs["classify"] = model.classify(images)
    if "encode" in capabilities:
        outputs["encode"] = model.encode(images)
    if "decode" in capabilities:
        latents = np.linspace(-1, 1, 3 * options["latent_dim"], dtype="float32").reshape(3, -1)
        outputs["decode"] = model.decode(latents)
    if "reconstruct" in capabilities:
        outputs["reconstruct"] = model.reconstruct(images)
    if "generate" in capabilities:
        outputs["generate"] = model.generate(5, seed=3)
    if "score" in capabilities:
        outputs["score"] = model.score(images)
    return outputs


def optimizer_steps(model) -> dict[str, int]:
    """Updates made by each optimizer of the model."""
    if isinstance(model, GAN):
        return {"generator": int(model.generator_optimizer.iterations.numpy()),
                "discriminator": int(model.discriminator_optimizer.iterations.numpy())}
    return {"model": int(model.optimizer.iterations.numpy())}


def expected_steps(model, steps: int) -> dict[str, int]:
    """A GAN's discriminator makes `critic_steps` updates per train step."""
    if isinstance(model, GAN):
        return {"generator": steps, "discriminator": steps * model.critic_steps}
    return {"model": steps}


def keras_parts(model) -> list:
    """The model itself, or the Keras networks a composite model holds."""
    if isinstance(model, keras.Model):
        return [model]
    return [value for value in vars(model).values() if isinstance(value, keras.Model)]


def train(name, model, tiny_images, star_fields) -> None:
    """Two train steps (composite models: fit_source on the tiny fields), on the current backend."""
    if isinstance(model, CompositeModel):
        assert not model.trained
        rows = []
        model.fit_source(star_fields[0], validation=star_fields[1], epochs=1, batch_size=4, steps_per_epoch=2,
                         log=rows.append, verbose=0)
        assert model.trained and rows
        for row in rows:
            assert isinstance(row["part"], str) and isinstance(row["epoch"], int), row
            numbers = [value for value in row.values() if isinstance(value, float)]
            assert np.isfinite(numbers).all(), row
    else:
        images, labels = tiny_images
        history = model.fit(images, labels, batch_size=4, epochs=1, verbose=0)
        assert all(np.isfinite(values).all() for values in history.history.values())
        assert optimizer_steps(model) == expected_steps(model, 2)
    for network in keras_parts(model):
        assert all(np.isfinite(weights).all() for weights in network.get_weights()), network.name


def check_outputs(name, model, outputs, n_images):
    options, world = TINY[name], zoo.get_entry(name).world
    side = options["image_size"] if world == "galaxies" else FIELD_SIZE
    channels = options.get("channels", 3 if world == "galaxies" else 1)
    for capability, output in outputs.items():
        assert isinstance(output, np.ndarray) and output.dtype == np.float32, capability
        assert np.isfinite(output).all(), capability
    if "classify" in outputs:
        assert outputs["classify"].shape == (n_images, options["num_classes"])
        np.testing.assert_allclose(outputs["classify"].sum(axis=1), 1.0, rtol=1e-5)
        assert outputs["classify"].min() >= 0
    if "encode" in outputs:
        assert outputs["encode"].shape == (n_images, options.get("feature_dim", options.get("latent_dim")))
    for capability, count in (("decode", 3), ("reconstruct", n_images), ("generate", 5)):
        if capability in outputs:
            images = outputs[capability]
            assert images.shape == (count, side, side, channels), capability
            assert ((0 < images) & (images < 1)).any(), f"{capability} gives nothing but the clip's bounds 0 and 1"
            assert len(np.unique(images.reshape(count, -1), axis=0)) == count, f"{capability} repeats an image"
    if "generate" in outputs:
        np.testing.assert_array_equal(model.generate(5, seed=3), outputs["generate"])     # the seed decides
    if "score" in outputs:
        scores = outputs["score"]
        assert scores.shape == (n_images,)
        assert SCORE_RANGE[0] < scores.min() and scores.max() < SCORE_RANGE[1], f"scores clamped: {scores}"
        assert len(set(scores.tolist())) > 1, f"every field gets the same score {scores[0]}"


def check_sample_grids(model, folder):
    """A composite model's samples/ images (train.py writes them as PNGs): a float image in [0, 1] or uint8 RGB,
    written without losing a level (a float outside [0, 1] would be clipped and read back different)."""
    grids = model.sample_grids(seed=1)
    assert grids, "a composite model shows what it learned in samples/"
    for file_name, grid in grids.items():
        assert grid.ndim in (2, 3) and grid.size > 0, file_name
        levels = grid if grid.dtype == np.uint8 else np.round(grid.astype(np.float64) * 255)
        written = cv2.imread(str(write_png(folder / f"{file_name}.png", grid)), cv2.IMREAD_UNCHANGED)
        if written.ndim == 3:
            written = cv2.cvtColor(written, cv2.COLOR_BGR2RGB)
        np.testing.assert_array_equal(written, levels.reshape(written.shape), err_msg=file_name)


def save_and_load(name, model, folder):
    """The model saved and read back as train.py and zoo.load do it: model.keras, or a folder of parts."""
    if isinstance(model, CompositeModel):
        (folder / "model").mkdir()
        model.save(folder / "model")
        parts = json.loads((folder / "model" / "parts.json").read_text())
        assert parts["model"] == name
        assert parts["options"] == json.loads(json.dumps({**zoo.get_entry(name).defaults, **TINY[name]}))
        loaded = zoo.get_entry(name).loader(folder / "model")
        assert type(loaded) is type(model) and loaded.trained
        return loaded
    assert zoo.get_entry(name).loader is None          # one Keras model, saved as one file
    model.save(folder / "model.keras")
    return keras.saving.load_model(folder / "model.keras")


def test_every_registered_model_is_covered():
    """A new entry needs its tiny configuration in TINY, and gets this file's checks through MODELS."""
    assert MODELS == zoo.list_models() == sorted(TINY)
    assert set(zoo.list_models(world="star-fields")) == {"cnn-scorer", "layered", "naive", "rf-scorer"}
    for name, options in TINY.items():
        assert set(options) <= set(zoo.get_entry(name).defaults), name


@pytest.mark.slow
@pytest.mark.parametrize("name", MODELS)
def test_model_trains_saves_loads_and_offers_its_capabilities(name, tiny_images, star_fields, tmp_path):
    entry = zoo.get_entry(name)
    model = zoo.create(name, **TINY[name])
    assert model.zoo_name == name
    train(name, model, tiny_images, star_fields)
    images = inputs_of(entry.world, tiny_images, star_fields)

    outputs = capability_outputs(model, entry.capabilities, images, TINY[name])
    assert set(outputs) == set(entry.capabilities)
    check_outputs(name, model, outputs, len(images))

    if isinstance(model, CompositeModel):
        check_sample_grids(model, tmp_path / "samples")

    loaded = save_and_load(name, model, tmp_path)
    for capability, output in capability_outputs(loaded, entry.capabilities, images, TINY[name]).items():
        np.testing.assert_array_equal(output, outputs[capability], err_msg=capability)


def build(name):
    overrides = {"image_size": 16}
    if "num_classes" in zoo.get_entry(name).defaults:
        overrides["num_classes"] = 4
    return zoo.create(name, **overrides)


def test_vae_generate_is_deterministic_per_seed():
    model = build("vae")
    np.testing.assert_array_equal(model.generate(4, seed=1), model.generate(4, seed=1))
    assert not np.array_equal(model.generate(4, seed=1), model.generate(4, seed=2))


@pytest.mark.slow
def test_vae_reports_reconstruction_and_kl_separately(tiny_images):
    images, labels = tiny_images
    model = build("vae")
    history = model.fit(images, labels, batch_size=4, epochs=1, verbose=0, validation_data=(images, labels))
    logs = {k: v[-1] for k, v in history.history.items()}
    assert {"loss", "reconstruction_loss", "kl_loss", "val_reconstruction_loss", "val_kl_loss"} <= set(logs)
    assert logs["kl_loss"] >= 0
    # the total is the mean of per-batch (reconstruction + beta * KL), with beta = 1
    assert logs["loss"] == pytest.approx(logs["reconstruction_loss"] + logs["kl_loss"], rel=1e-4)


@pytest.mark.slow
def test_vae_encode_is_the_posterior_mean(tiny_images):
    images, _ = tiny_images
    model = build("vae")
    z_mean, _ = model.encoder.predict(images, verbose=0)
    np.testing.assert_array_equal(model.encode(images), z_mean)


@pytest.mark.slow
def test_autoencoder_learns_to_reconstruct():
    yy, xx = np.mgrid[:16, :16]
    centres = np.random.default_rng(0).uniform(4, 12, (16, 2))
    blobs = np.exp(-((yy - centres[:, :1, None]) ** 2 + (xx - centres[:, 1:, None]) ** 2) / 8)
    images, labels = np.repeat(blobs[..., None], 3, axis=-1).astype("float32"), np.zeros(16)
    model = build("autoencoder")
    before = np.mean((model.reconstruct(images) - images) ** 2)
    model.fit(images, labels, batch_size=8, epochs=40, verbose=0)
    after = np.mean((model.reconstruct(images) - images) ** 2)
    assert after < before * 0.5


@pytest.mark.slow
def test_vae_trains_under_a_mixed_precision_policy(tiny_images):
    images, labels = tiny_images
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        model = build("vae")
        losses = model.train_on_batch(images, labels)
    finally:
        keras.config.set_dtype_policy(previous)
    assert np.isfinite(losses).all()

"""DCGAN and WGAN-GP: the sizes they support, the 30×30 star-patch interface the layered model trains through,
a gradient penalty that stays finite, learning, collapse warnings and a train.py run folder.

The WGAN-GP's training and its gradient penalty also run on JAX (tests/test_backends.py); tf.data feeds both
backends.
"""
import keras
import numpy as np
import pytest

import zoo
from core.errors import ModelError
from zoo.gan import growth_plan

TINY = {"filters": 4, "latent_dim": 8}


def star_patches(n, size=30, seed=0):
    """n grayscale patches: dark noisy sky (about 0.04) with one star near the centre, as the star-field seed cuts."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    centres = size / 2 + rng.normal(0, 1.5, (n, 2, 1, 1))
    widths, peaks = rng.uniform(1.0, 2.5, (n, 1, 1)), rng.uniform(0.5, 1.0, (n, 1, 1))
    stars = peaks * np.exp(-((yy - centres[:, 0]) ** 2 + (xx - centres[:, 1]) ** 2) / (2 * widths ** 2))
    sky = 0.04 + 0.01 * rng.standard_normal((n, size, size))
    return np.clip(sky + stars, 0, 1)[..., None].astype(np.float32)


def assert_tanh_output_mapped_to_unit(model, images, seed):
    """generate's images are (tanh output + 1) / 2 of the seed's latent vectors: in [0, 1] without the clip that
    generate ends with (a clip would hide a generator leaving [-1, 1])."""
    latents = np.random.default_rng(seed).standard_normal((len(images), model.latent_dim)).astype(np.float32)
    unclipped = (keras.ops.convert_to_numpy(model.generator(latents)) + 1) / 2
    np.testing.assert_allclose(images, unclipped, atol=1e-6)
    assert 0 < unclipped.min() and unclipped.max() < 1


@pytest.mark.parametrize("size, plan", [(8, (4, 1)), (16, (4, 2)), (28, (7, 2)), (30, (8, 2)), (64, (4, 4)),
                                        (100, (7, 4))])
def test_generators_start_at_4_to_8_px_and_double(size, plan):
    assert growth_plan("dcgan", size) == plan


@pytest.mark.parametrize("name", ["dcgan", "wgan-gp"])
@pytest.mark.parametrize("size, channels", [(30, 1), (20, 3)])
def test_any_size_from_8_px_gives_images_of_that_size(name, size, channels):
    model = zoo.create(name, image_size=size, channels=channels, **TINY)
    images = model.generate(3, seed=0)
    assert images.shape == (3, size, size, channels) and images.dtype == np.float32
    assert_tanh_output_mapped_to_unit(model, images, seed=0)
    assert model.discriminator.input_shape == (None, size, size, channels)
    assert model.discriminator.output_shape == (None, 1)


def test_too_small_an_image_is_refused_with_what_to_use():
    with pytest.raises(ModelError, match=r"^wgan-gp needs an image size of at least 8, got 6. Use --image-size 32$"):
        zoo.create("wgan-gp", image_size=6)


def test_generate_depends_only_on_the_seed():
    model = zoo.create("dcgan", image_size=16, **TINY)
    first = model.generate(6, seed=1)
    np.testing.assert_array_equal(model.generate(6, seed=1), first)
    np.testing.assert_allclose(model.generate(3, seed=1), first[:3], rtol=1e-5)
    assert not np.allclose(model.generate(6, seed=2), first)


@pytest.mark.slow
def test_wgan_gp_on_30px_star_patches_and_round_trip(tmp_path):
    """The interface the layered star-field model uses: create, fit on (images, labels) batches, generate, save."""
    import tensorflow as tf

    patches = star_patches(16)
    batches = tf.data.Dataset.from_tensor_slices((patches, np.full(16, -1))).batch(8)
    model = zoo.create("wgan-gp", image_size=30, channels=1, filters=8, n_critic=3)
    history = model.fit(batches, epochs=1, verbose=0).history
    assert set(history) == {"d_loss", "g_loss", "gradient_penalty"}
    assert all(np.isfinite(values).all() for values in history.values())
    assert int(model.generator_optimizer.iterations.numpy()) == 2
    assert int(model.discriminator_optimizer.iterations.numpy()) == 6

    images = model.generate(5, seed=1)
    assert images.shape == (5, 30, 30, 1) and images.dtype == np.float32
    assert_tanh_output_mapped_to_unit(model, images, seed=1)
    model.save(tmp_path / "wgan.keras")
    loaded = keras.saving.load_model(tmp_path / "wgan.keras")
    np.testing.assert_array_equal(loaded.generate(5, seed=1), images)
    assert int(loaded.discriminator_optimizer.iterations.numpy()) == 6


def test_gradient_penalty_stays_finite_where_the_critic_is_flat(monkeypatch):
    """With all critic weights 0, ∇D(x̂) = 0: without the epsilon under the square root, the penalty's gradient
    is 0/0 = NaN."""
    import zoo.gan

    model = zoo.create("wgan-gp", image_size=8, channels=1, **TINY)
    for weight in model.discriminator.weights:
        weight.assign(np.zeros(weight.shape, np.float32))
    real, fake = np.full((4, 8, 8, 1), -0.8, np.float32), np.full((4, 8, 8, 1), 0.3, np.float32)
    kernels = [weight for weight in model.discriminator.trainable_variables if "kernel" in weight.path]

    def penalty_and_gradients():
        terms, gradients = zoo.gan.loss_gradients(model, lambda: {"penalty": model.gradient_penalty(real, fake)},
                                                  "penalty", kernels)
        return float(terms["penalty"]), [keras.ops.convert_to_numpy(g) for g in gradients]

    penalty, gradients = penalty_and_gradients()
    assert penalty == pytest.approx(1.0, abs=1e-5)
    assert len(gradients) == 2 and all(np.isfinite(g).all() for g in gradients)
    monkeypatch.setattr(zoo.gan, "GRADIENT_NORM_EPSILON", 0.0)
    assert np.isnan(penalty_and_gradients()[1][0]).all()


@pytest.mark.slow
def test_dcgan_learns_where_the_light_is():
    """Trained on dark patches with a central star, generated images go from flat grey to a bright centre on a
    dark sky."""
    patches = star_patches(128, size=16)
    model = zoo.create("dcgan", image_size=16, channels=1, filters=8, latent_dim=16, learning_rate=1e-3)

    def centre_and_border(images):
        return images[:, 6:10, 6:10].mean(), np.concatenate([images[:, :3], images[:, -3:]], axis=1).mean()

    centre, border = centre_and_border(model.generate(64, seed=0))
    assert abs(centre - border) < 0.05
    model.fit(patches, np.zeros(128), batch_size=32, epochs=16, verbose=0)   # 8 epochs fail for some seeds
    centre, border = centre_and_border(model.generate(64, seed=0))
    real_centre, real_border = centre_and_border(patches)
    assert border < 0.15 and centre > border + 0.5 * (real_centre - real_border)


def test_collapse_monitor_warns_when_a_gan_makes_only_black_images(capsys):
    """A generator stuck on black (its output layer biased far negative) is caught after the epoch, and the
    warning line comes after the epoch's progress line."""
    from training.callbacks import CollapseMonitor

    model = zoo.create("dcgan", image_size=16, channels=1, **TINY)
    output_layer = model.generator.layers[-2]
    output_layer.bias.assign(np.full(output_layer.bias.shape, -30.0, np.float32))
    monitor = CollapseMonitor(star_patches(16, size=16), n=16)
    monitor.set_model(model)
    logs = {}
    monitor.on_epoch_end(2, logs)
    assert logs["collapsed"] == 1.0 and logs["sample_black_fraction"] == 1.0
    assert logs["sample_pixel_std"] == 0.0 and logs["sample_pairwise_distance"] == 0.0
    assert capsys.readouterr().err == ""
    monitor.on_epoch_begin(3)
    err = capsys.readouterr().err
    assert err.startswith("warning: epoch 3: the generated images look collapsed: 100% of the images are black; "
                          "pixel std 0.000 is under 0.33 of the real images' 0.0")
    assert err.count("\n") == 1


@pytest.mark.slow
def test_train_run_of_a_wgan_on_30px_images(tmp_path, capsys):
    """train.py's run folder for a GAN at a size that is not a multiple of 8: both losses and the penalty,
    the collapse statistics, the fixed-noise grid, TensorBoard images, and a loadable generator."""
    from core.runs import TrainConfig
    from training import train

    run_dir = tmp_path / "wgan"
    config = TrainConfig(model="wgan-gp", limit=24, image_size=30, batch_size=8, epochs=2,
                         options={"n_critic": 1, **TINY})
    train(config, run_dir=run_dir, verbose=0)

    import csv

    with open(run_dir / "history.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["epoch"] for row in rows] == ["0", "1"]
    assert {"d_loss", "g_loss", "gradient_penalty", "val_d_loss", "val_g_loss", "sample_pixel_std",
            "sample_black_fraction", "sample_pairwise_distance", "collapsed", "seconds"} <= set(rows[0])
    assert all(row["collapsed"] in ("0.0", "1.0") for row in rows)
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning: epoch")]
    assert len(warnings) == sum(row["collapsed"] == "1.0" for row in rows)

    grids = sorted(p.name for p in (run_dir / "samples").iterdir())
    assert grids == ["generated_epoch_001.png", "generated_epoch_002.png"]
    import cv2

    assert cv2.imread(str(run_dir / "samples" / "generated_epoch_002.png")).shape == (4 * 32 + 2, 4 * 32 + 2, 3)
    import tensorflow as tf

    (events_file,) = (run_dir / "logs" / "samples").glob("events.out.tfevents.*")
    events = [tf.compat.v1.Event.FromString(record.numpy()) for record in tf.data.TFRecordDataset(str(events_file))]
    assert [(value.tag, event.step) for event in events for value in event.summary.value] == [("generated", 1),
                                                                                                ("generated", 2)]

    model = zoo.load(run_dir)
    images = model.generate(4, seed=0)
    assert images.shape == (4, 30, 30, 3)
    np.testing.assert_array_equal(model.generate(4, seed=0), images)

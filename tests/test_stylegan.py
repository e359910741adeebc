"""Progressive StyleGAN: the sizes it accepts, growing 4 → 8 → 16 with α rising linearly through each fade-in,
a fade-in whose first step equals the upsampled lower resolution, and --resume continuing at the saved stage and α.

These run on TensorFlow; test_models.py trains StyleGAN through its levels on JAX as well
(tests/test_backends.py).
"""
import csv

import keras
import numpy as np
import pytest

import zoo
from core.errors import ModelError
from zoo.stylegan import downsample, upsample

TINY = {"filters": 8, "latent_dim": 8, "mapping_layers": 2}


@pytest.mark.parametrize("options, message", [
    ({"image_size": 30}, "its image size must be a power of two from 8, got 30. Use --image-size 32"),
    ({"image_size": 4}, "its image size must be a power of two from 8, got 4. Use --image-size 8"),
    ({"image_size": 16, "start_size": 6}, "start size must be a power of two from 4 to the image size (16), got 6"),
    ({"image_size": 16, "start_size": 32}, "start size must be a power of two from 4 to the image size (16), got 32"),
    ({"images_per_stage": 1}, "needs at least 2 images per stage, got 1. Use e.g. --images-per-stage 8000"),
])
def test_sizes_it_cannot_grow_to_are_refused(options, message):
    with pytest.raises(ModelError, match=message.replace("(", r"\(").replace(")", r"\)")):
        zoo.create("stylegan", **options)


def test_each_level_doubles_the_native_resolution_and_generate_returns_the_full_size():
    model = zoo.create("stylegan", image_size=16, **TINY)
    latents = np.random.default_rng(0).standard_normal((3, 8)).astype(np.float32)
    shapes = [tuple(model.generator(latents, level=level, alpha=1.0, noise_seed=0).shape) for level in range(3)]
    assert shapes == [(3, 4, 4, 3), (3, 8, 8, 3), (3, 16, 16, 3)]
    assert model.resolution == 4
    images = model.generate(3, seed=0)
    assert images.shape == (3, 16, 16, 3) and images.dtype == np.float32
    # the generator's linear output at 4×4, upsampled, mapped from [-1, 1] and clamped to [0, 1]: untrained, half
    # its pixels lie outside
    native = model.generator(latents, level=0, alpha=1.0, noise_seed=keras.random.SeedGenerator(0))
    unclamped = (keras.ops.convert_to_numpy(upsample(native, 4)) + 1) / 2
    assert unclamped.min() < 0 and unclamped.max() > 1
    np.testing.assert_array_equal(images, np.clip(unclamped, 0, 1))
    # at 4×4 every generated pixel is a 4×4 block
    np.testing.assert_array_equal(images, upsample(images[:, ::4, ::4], 4))
    np.testing.assert_array_equal(model.generate(3, seed=0), images)


def test_start_size_sets_the_first_level():
    model = zoo.create("stylegan", image_size=16, start_size=8, **TINY)
    assert model.resolution == 8
    assert [model.scheduled_level(seen) for seen in (0, 7999, 8000, 10 ** 6)] == [1, 1, 2, 2]


def test_fade_in_at_alpha_zero_equals_the_upsampled_lower_resolution():
    model = zoo.create("stylegan", image_size=16, **TINY)
    latents = np.random.default_rng(1).standard_normal((2, 8)).astype(np.float32)

    def generated(level, alpha):  # the same noise maps for each call
        return np.asarray(model.generator(latents, level=level, alpha=alpha, noise_seed=keras.random.SeedGenerator(5)))

    lower = generated(1, 1.0)
    np.testing.assert_array_equal(generated(2, 0.0), upsample(lower))
    assert not np.allclose(generated(2, 1.0), upsample(lower), atol=1e-3)

    images = np.random.default_rng(2).uniform(-1, 1, (2, 16, 16, 3)).astype(np.float32)
    np.testing.assert_allclose(model.discriminator(images, level=2, alpha=0.0),
                               model.discriminator(downsample(images), level=1, alpha=1.0), rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_grows_4_8_16_with_alpha_rising_through_each_fade_in():
    model = zoo.create("stylegan", image_size=16, images_per_stage=32, **TINY)
    images = np.random.default_rng(0).uniform(0, 1, (96, 16, 16, 3)).astype(np.float32)
    steps = []

    class Record(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            steps.append((int(logs["resolution"]), round(float(logs["alpha"]), 4), model.resolution))

    model.fit(images, np.zeros(96), batch_size=4, epochs=1, verbose=0, callbacks=[Record()])
    # 8 steps of 4 images per stage: the first stage has nothing to fade in, the next two fade in over 16 images
    fade = [0.0, 0.25, 0.5, 0.75, 1.0, 1.0, 1.0, 1.0]
    assert [resolution for resolution, _, _ in steps] == [4] * 8 + [8] * 8 + [16] * 8
    assert [alpha for _, alpha, _ in steps] == [1.0] * 8 + fade + fade
    assert all(logged == current for logged, _, current in steps)
    assert int(model.images_seen.numpy()) == 96
    assert model.generate(2, seed=0).shape == (2, 16, 16, 3)


@pytest.mark.slow
def test_resume_continues_at_the_saved_stage_and_alpha(tmp_path):
    """train.py with the schedule flags, then --resume: the second epoch goes on from the first one's images."""
    import train

    run_dir = tmp_path / "stylegan"
    tiny = [f"--option={key}={value}" for key, value in TINY.items()]
    train.main(["--model", "stylegan", "--limit", "20", "--image-size", "16", "--batch-size", "4", "--epochs", "1",
                "--images-per-stage", "14", *tiny, "--out", str(run_dir)])
    train.main(["--resume", str(run_dir), "--epochs", "2"])

    with open(run_dir / "history.csv") as handle:
        rows = list(csv.DictReader(handle))
    # 18 training images a epoch, in batches of 4, 4, 4, 4, 2; stages of 14 images, the first 7 fading in.
    # Epoch 1's batches start at 0, 4, 8, 12, 16 images: the last one at 8 px, α = (16 - 14) / 7.
    # Epoch 2's start at 18 ... 34: 16 px from 28 on, the last one with α = (34 - 28) / 7.
    assert [(int(float(row["resolution"])), round(float(row["alpha"]), 4)) for row in rows] == [(8, 0.2857),
                                                                                                (16, 0.8571)]
    assert {"d_loss", "g_loss", "gradient_penalty", "collapsed"} <= set(rows[0])
    model = zoo.load(run_dir)
    assert int(model.images_seen.numpy()) == 36 and model.resolution == 16
    assert float(model.alpha.numpy()) == pytest.approx(6 / 7)

"""Every family of model trains on TensorFlow and JAX. A process has one Keras backend, so this test runs model,
GAN and distribution tests again in a second pytest process with KERAS_BACKEND=jax (the one JAX start of the
suite): the train steps, save and load of one model per way of training (test_models.py: the classifier's plain
fit, the VAE's own loss, SimCLR's contrastive views, StyleGAN's growing layers), a WGAN-GP's training and its
gradient penalty's gradients (test_gans.py: the GAN train step that DCGAN, WGAN-GP and the layered model's parts
share), and data-parallel training on two devices (test_distribute.py). The other models add nothing that
depends on the backend: the autoencoder trains like the VAE, the CNN scorer like the classifier, the layered
model through a WGAN-GP and a dense GAN, and the naive model and the random forest use no Keras at all."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ON_JAX_MODELS = ("classifier", "vae", "simclr", "stylegan")
ON_JAX = [*(f"tests/test_models.py::test_model_trains_saves_loads_and_offers_its_capabilities[{name}]"
            for name in ON_JAX_MODELS),
          "tests/test_gans.py::test_wgan_gp_on_30px_star_patches_and_round_trip",
          "tests/test_gans.py::test_gradient_penalty_stays_finite_where_the_critic_is_flat",
          "tests/test_distribute.py"]


@pytest.mark.slow
@pytest.mark.jax
def test_models_gans_and_distribution_also_pass_on_jax():
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rfEs", *ON_JAX],
                            env={**os.environ, "KERAS_BACKEND": "jax"}, cwd=Path(__file__).parent.parent,
                            capture_output=True, text=True, timeout=1200)
    summary = result.stdout.strip().splitlines()[-1]
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    passed = int(re.search(r"(\d+) passed", summary).group(1))
    assert passed >= len(ON_JAX_MODELS) + 2 + 14 and not re.search(r"skipped|xfail|deselected", summary), summary

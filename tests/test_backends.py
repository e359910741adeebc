"""Every model trains on TensorFlow and JAX. A process has one Keras backend, so this test runs the model,
GAN and distribution tests again in a second pytest process with KERAS_BACKEND=jax (the one JAX start of the
suite): each registered model's train steps, save and load (test_models.py), a WGAN-GP's training and its
gradient penalty's gradients (test_gans.py), and data-parallel training on two devices (test_distribute.py)."""
import os
import re
import subprocess
import sys
from pathlib import Path

ON_JAX = ["tests/test_models.py::test_model_trains_saves_loads_and_offers_its_capabilities",
          "tests/test_gans.py::test_wgan_gp_on_30px_star_patches_and_round_trip",
          "tests/test_gans.py::test_gradient_penalty_stays_finite_where_the_critic_is_flat",
          "tests/test_distribute.py"]


def test_models_gans_and_distribution_also_pass_on_jax():
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rfEs", *ON_JAX],
                            env={**os.environ, "KERAS_BACKEND": "jax"}, cwd=Path(__file__).parent.parent,
                            capture_output=True, text=True, timeout=1200)
    summary = result.stdout.strip().splitlines()[-1]
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    passed = int(re.search(r"(\d+) passed", summary).group(1))
    assert passed >= 11 + 2 + 11 and not re.search(r"skipped|xfail|deselected", summary), summary

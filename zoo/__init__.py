"""astrozoo's model registry: `create`, `list_models`, `load`, and the entries it holds."""
from core.errors import ModelError
from zoo import autoencoder, classifier, dcgan, finetune, layered, naive, scorers, simclr, stylegan, vae, wgan_gp  # noqa: E402,F401  (importing registers the entries)
from zoo.registry import (CAPABILITIES, RunOnImages, capabilities, create, get_entry, list_models, load, register,
                           require)

__all__ = ["CAPABILITIES", "ModelError", "RunOnImages", "capabilities", "create", "get_entry", "list_models", "load",
           "register", "require"]

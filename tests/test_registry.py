import pytest

import zoo
from core.errors import ModelError
from zoo.registry import register


def test_list_models_has_the_walking_skeleton_models_with_capabilities():
    assert {"classifier", "autoencoder", "vae"} <= set(zoo.list_models())
    assert zoo.list_models("generate") == ["dcgan", "layered", "naive", "stylegan", "vae", "wgan-gp"]
    assert zoo.list_models("generate", world="galaxies") == ["dcgan", "stylegan", "vae", "wgan-gp"]
    assert zoo.list_models("encode", world="galaxies") == ["autoencoder", "simclr", "vae"]
    assert zoo.list_models("encode", world="star-fields") == ["cnn-scorer"]
    assert zoo.get_entry("autoencoder").capabilities == ("encode", "decode", "reconstruct")
    assert zoo.get_entry("classifier").world == "galaxies"


def test_seed_parameter_counts_are_exact():
    assert zoo.create("classifier", num_classes=5).count_params() == 155013
    assert zoo.create("autoencoder").count_params() == 132611


def test_defaults_come_from_the_builder_signature():
    defaults = zoo.get_entry("vae").defaults
    assert defaults["latent_dim"] == 64 and defaults["image_size"] == 64 and defaults["beta"] == 1.0


def test_unknown_model_lists_the_known_ones():
    with pytest.raises(ModelError, match="unknown model 'nope'. Choose one of: autoencoder, classifier"):
        zoo.create("nope")


def test_unknown_option_lists_the_valid_ones():
    with pytest.raises(ModelError, match="model 'vae' has no option depth. Its options are: image_size"):
        zoo.create("vae", depth=3)


def test_registering_a_name_twice_raises():
    with pytest.raises(ValueError, match="registered twice"):
        register("classifier", world="galaxies", capabilities=("classify",))(lambda: None)


def test_register_rejects_unknown_capability():
    with pytest.raises(ValueError, match="unknown capability"):
        register("x-model", world="galaxies", capabilities=("fly",))


def test_autoencoder_rejects_image_size_not_multiple_of_16():
    with pytest.raises(ModelError, match="multiple of 16, got 24. Use --image-size 16"):
        zoo.create("autoencoder", image_size=24)


def test_load_of_a_folder_that_is_not_a_run(tmp_path):
    with pytest.raises(ModelError, match="not a finished run folder"):
        zoo.load(tmp_path)


def test_require_answers_the_first_capability_the_model_offers():
    vae, classifier = zoo.create("vae", image_size=16), zoo.create("classifier", image_size=16)
    assert zoo.require(vae, "encode", "classify", refusal="unused") == "encode"
    assert zoo.require(classifier, "encode", "classify", refusal="unused") == "classify"
    assert zoo.require(vae, "encode", "decode", every=True, refusal="unused") == "encode"
    assert zoo.capabilities(classifier) == ("classify",)


def test_require_refuses_naming_the_models_that_would_do():
    classifier = zoo.create("classifier", image_size=16)
    with pytest.raises(ModelError) as refused:
        zoo.require(classifier, "reconstruct", refusal="run 'r' is a classifier, which cannot reconstruct images")
    assert str(refused.value) == ("run 'r' is a classifier, which cannot reconstruct images. "
                                  "Pass a run of autoencoder/vae")
    with pytest.raises(ModelError) as refused:
        zoo.require(classifier, "encode", refusal="no latent space", advice="Use a run of {models}", same_world=True)
    assert str(refused.value) == "no latent space. Use a run of autoencoder/simclr/vae"      # not cnn-scorer
    with pytest.raises(ModelError) as refused:
        zoo.require(classifier, "encode", "decode", every=True, refusal="no decoder", advice="Use {models}")
    assert str(refused.value) == "no decoder. Use autoencoder/vae"

"""core/runs.py: the paths of a run folder, which saved model it holds, config.json read back (or a ModelError that
says this is no run folder) and turned into the TrainConfig the run was trained with."""
import dataclasses
import json

import pytest

from core.errors import ModelError
from core.runs import RunFolder, TrainConfig, load_config

NOT_A_RUN = "is not a run folder (no readable config.json). Pass a folder written by train.py"


def test_run_folder_names_every_path_inside_the_root(tmp_path):
    folder = RunFolder(str(tmp_path / "run"))
    root = tmp_path / "run"
    assert folder.root == root
    assert (folder.config, folder.model, folder.parts, folder.history) == (
        root / "config.json", root / "model.keras", root / "model", root / "history.csv")
    assert (folder.logs, folder.samples, folder.checkpoint) == (root / "logs", root / "samples", root / "checkpoint")


def test_saved_model_is_the_keras_file_or_the_folder_of_parts_once_written(tmp_path):
    folder = RunFolder(tmp_path)
    assert folder.saved_model() is None                    # a run that has not finished
    folder.parts.mkdir()
    assert folder.saved_model() == tmp_path / "model"
    folder.model.write_bytes(b"zip")
    assert folder.saved_model() == tmp_path / "model.keras"   # model.keras first when both exist


def test_read_config_returns_the_saved_dict(tmp_path):
    saved = {"model": "vae", "epochs": 3, "model_options": {"latent_dim": 8}}
    (tmp_path / "config.json").write_text(json.dumps(saved))
    assert RunFolder(tmp_path).read_config() == saved


@pytest.mark.parametrize("content", [None, "{not json", "[1, 2]", '"vae"', '{"epochs": 3}', b"\xff\xfe\x00"],
                         ids=["missing", "garbage", "a list", "a string", "no model", "not utf-8"])
def test_read_config_of_no_run_folder_is_a_model_error_naming_the_folder(tmp_path, content):
    if isinstance(content, bytes):
        (tmp_path / "config.json").write_bytes(content)
    elif content is not None:
        (tmp_path / "config.json").write_text(content)
    with pytest.raises(ModelError) as refused:
        RunFolder(tmp_path).read_config()
    assert str(refused.value) == f"'{tmp_path}' {NOT_A_RUN}"


def test_a_config_json_that_is_a_folder_is_no_run_folder_either(tmp_path):
    (tmp_path / "config.json").mkdir()
    with pytest.raises(ModelError, match="is not a run folder"):
        RunFolder(tmp_path).read_config()


def test_load_config_round_trips_every_field(tmp_path):
    config = TrainConfig(model="wgan-gp", dataset="star-fields", data_dir="/data", classes="0,2", limit=40,
                         image_size=32, crop=0.5, tile=256, epochs=2, steps_per_epoch=5, batch_size=8,
                         learning_rate=1e-4, validation_fraction=0.25, augment=False, seed=7,
                         options={"n_critic": 1, "filters": 4})
    written = {**dataclasses.asdict(config), "versions": {"keras": "3"}, "world": "star-fields", "n_images": 40}
    (tmp_path / "config.json").write_text(json.dumps(written))
    assert load_config(tmp_path) == config


def test_load_config_fills_missing_fields_with_the_defaults(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model": "vae", "epochs": 3}))
    assert load_config(tmp_path) == TrainConfig(model="vae", epochs=3)
    assert load_config(tmp_path).options == {} and load_config(tmp_path).batch_size is None   # train() resolves it


def test_load_config_ignores_fields_train_py_does_not_know(tmp_path):
    """config.json also holds what train.py found out (versions, image counts): not TrainConfig fields."""
    (tmp_path / "config.json").write_text(json.dumps({"model": "naive", "tile_size_of_the_future": 12,
                                                      "n_images": 12}))
    config = load_config(tmp_path)
    assert config == TrainConfig(model="naive")
    assert not hasattr(config, "tile_size_of_the_future")


def test_load_config_of_no_run_folder_is_the_read_config_error(tmp_path):
    with pytest.raises(ModelError) as refused:
        load_config(tmp_path / "nowhere")
    assert str(refused.value) == f"'{tmp_path / 'nowhere'}' {NOT_A_RUN}"


def test_load_config_of_a_value_train_py_never_writes_is_a_model_error(tmp_path):
    """A hand-edited config.json stops at load_config with one message, not in a traceback later (--resume)."""
    (tmp_path / "config.json").write_text(json.dumps({"model": "autoencoder", "batch_size": "eight"}))
    with pytest.raises(ModelError) as refused:
        load_config(tmp_path)
    assert str(refused.value) == (f"'{tmp_path}' has a config.json that train.py did not write (batch_size is "
                                  "\"eight\"). Pass a folder written by train.py")

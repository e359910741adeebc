"""zoo/parts.py, the composite-model protocol, on a tiny subclass: save writes parts.json and the parts, load
rebuilds the same model (or says the folder is not a complete model), require_trained says how to train,
fit_source hands its settings to fit_parts as FitSettings, and EpochRows turns Keras epochs into history rows."""
import json
import time

import keras
import numpy as np
import pytest

import zoo
from core.errors import ModelError
from datasets.source import ArraySource
from zoo import registry
from zoo.parts import PARTS_FILE, CompositeModel, EpochRows, FitSettings


class MeanModel(CompositeModel):
    """Learns the mean pixel of its training images (times `scale`) and generates flat images of that value."""

    name = "mean-model"

    def __init__(self, *, scale: float, side: int = 2):
        self.options = {"scale": scale, "side": side}
        self.mean: float | None = None
        self.fitted_with = None

    @property
    def trained(self) -> bool:
        return self.mean is not None

    def fit_parts(self, source, validation, settings, log):
        self.fitted_with = (source, validation, settings)
        images, _ = source.read(0, len(source))
        self.mean = float(np.mean(images)) / 255 * self.options["scale"]
        log({"part": "mean", "epoch": 0, "images": len(source)})

    def generate(self, n, seed=0):
        self.require_trained()
        side = self.options["side"]
        return np.full((n, side, side, 1), self.mean, np.float32)

    def save_parts(self, folder):
        np.save(folder / "mean.npy", np.array([self.mean]))

    def load_parts(self, folder):
        self.mean = float(np.load(folder / "mean.npy")[0])


def trained_model(value=51, scale=0.5):
    model = MeanModel(scale=scale, side=3)
    model.fit_source(ArraySource(np.full((4, 2, 2, 1), value, np.uint8)), verbose=0)
    return model


def test_save_writes_parts_json_then_the_parts_and_load_rebuilds_the_model(tmp_path):
    model = trained_model()
    model.save(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mean.npy", PARTS_FILE]
    assert json.loads((tmp_path / PARTS_FILE).read_text()) == {"model": "mean-model",
                                                             "options": {"scale": 0.5, "side": 3}}
    loaded = MeanModel.load(str(tmp_path))
    assert isinstance(loaded, MeanModel) and loaded.options == model.options and loaded.trained
    assert loaded.mean == pytest.approx(0.1)
    np.testing.assert_array_equal(loaded.generate(2), model.generate(2))
    assert loaded.generate(2).shape == (2, 3, 3, 1)


def damage_part(folder):
    (folder / "mean.npy").unlink()


def truncate_part(folder):
    (folder / "mean.npy").write_bytes((folder / "mean.npy").read_bytes()[:20])


def options_it_does_not_take(folder):
    (folder / PARTS_FILE).write_text(json.dumps({"model": "mean-model", "options": {"scale": 1.0, "depth": 3}}))


DAMAGES = [
    ("a missing part", damage_part, "No such file or directory"),
    ("a truncated part", truncate_part, ""),
    ("no parts.json", lambda folder: (folder / PARTS_FILE).unlink(), "parts.json"),
    ("parts.json not json", lambda folder: (folder / PARTS_FILE).write_text("{"), ""),
    ("parts.json without options", lambda folder: (folder / PARTS_FILE).write_text('{"model": "mean-model"}'),
     "'options'"),
    ("options the class does not take", options_it_does_not_take, "depth"),
]


@pytest.mark.parametrize("damage, detail", [d[1:] for d in DAMAGES], ids=[d[0] for d in DAMAGES])
def test_an_incomplete_folder_is_a_model_error_that_says_to_train_again(tmp_path, damage, detail):
    trained_model().save(tmp_path)
    damage(tmp_path)
    with pytest.raises(ModelError) as refused:
        MeanModel.load(tmp_path)
    message = str(refused.value)
    assert message.startswith(f"{tmp_path} is not a complete mean-model model (")
    assert message.endswith("). Train it again") and detail in message


def test_load_of_a_missing_folder_is_a_model_error(tmp_path):
    with pytest.raises(ModelError, match=r"nowhere is not a complete mean-model model \(.*\)\. Train it again$"):
        MeanModel.load(tmp_path / "nowhere")


def test_require_trained_says_how_to_train_the_model():
    model = MeanModel(scale=1.0)
    assert not model.trained
    with pytest.raises(ModelError) as refused:
        model.generate(1)
    assert str(refused.value) == ("model 'mean-model' is not trained yet. Train it with 'python train.py --model "
                                  "mean-model --dataset star-fields' and load the run with zoo.load")
    model.train_dataset = "synthetic-galaxies"
    with pytest.raises(ModelError, match="--model mean-model --dataset synthetic-galaxies'"):
        model.require_trained()
    trained_model().require_trained()      # a trained model passes


def test_fit_source_hands_the_source_validation_and_settings_to_fit_parts():
    source, validation = ArraySource(np.zeros((3, 2, 2, 1), np.uint8)), ArraySource(np.ones((2, 2, 2, 1), np.uint8))
    rows = []
    model = MeanModel(scale=1.0)
    model.fit_source(source, validation=validation, epochs=3, batch_size=5, steps_per_epoch=2, seed=9,
                     log=rows.append, verbose=0)
    assert model.fitted_with == (source, validation, FitSettings(epochs=3, batch_size=5, steps_per_epoch=2, seed=9,
                                                                 verbose=0))
    assert rows == [{"part": "mean", "epoch": 0, "images": 3}]

    model.fit_source(source)             # the defaults, written once in fit_source
    assert model.fitted_with == (source, None, FitSettings(1, 32, None, 0, "auto"))
    assert FitSettings() == FitSettings(1, 32, None, 0, "auto")


def test_the_base_class_declares_what_a_subclass_must_write():
    base = CompositeModel()
    assert base.sample_grids(seed=3) == {}
    for call in (lambda: base.trained, lambda: base.fit_parts(None, None, FitSettings(), print),
                 lambda: base.save_parts(None), lambda: base.load_parts(None)):
        with pytest.raises(NotImplementedError):
            call()


def test_a_registered_loader_reads_the_parts_of_a_run_folder(tmp_path, monkeypatch):
    monkeypatch.setitem(registry._REGISTRY, "mean-model", registry.Entry(
        "mean-model", lambda scale=1.0, side=2: MeanModel(scale=scale, side=side), "star-fields", ("generate",),
        "test model", loader=MeanModel.load))
    (tmp_path / "model").mkdir()
    trained_model(value=102, scale=1.0).save(tmp_path / "model")
    (tmp_path / "config.json").write_text(json.dumps({"model": "mean-model"}))
    model = zoo.load(tmp_path)
    assert isinstance(model, MeanModel) and model.zoo_name == "mean-model"
    assert model.mean == pytest.approx(0.4) and model.options == {"scale": 1.0, "side": 3}


def test_epoch_rows_give_one_history_row_per_keras_epoch():
    network = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    network.compile(keras.optimizers.SGD(0.1), loss="mse", metrics=["mae"])
    inputs, targets = np.ones((8, 2), np.float32), np.full((8, 1), 3.0, np.float32)
    rows = []
    started = time.perf_counter()
    history = network.fit(inputs, targets, batch_size=4, epochs=3, verbose=0,
                          callbacks=[EpochRows("net", rows.append)]).history
    elapsed = time.perf_counter() - started
    assert [list(row) for row in rows] == [["part", "epoch", "loss", "mae", "seconds"]] * 3
    assert [(row["part"], row["epoch"]) for row in rows] == [("net", 0), ("net", 1), ("net", 2)]
    assert [row["loss"] for row in rows] == pytest.approx(history["loss"])
    assert [row["mae"] for row in rows] == pytest.approx(history["mae"])
    assert all(type(row["loss"]) is float for row in rows)
    assert 0 < sum(row["seconds"] for row in rows) <= elapsed


def test_epoch_rows_convert_logged_values_to_floats_and_time_each_epoch():
    rows = []
    callback = EpochRows("stars", rows.append)
    callback.on_epoch_begin(4)
    time.sleep(0.05)
    callback.on_epoch_end(4, {"d_loss": np.float32(1.5), "gradient_penalty": np.array(0.25)})
    callback.on_epoch_begin(5)
    callback.on_epoch_end(5, None)
    assert rows[0]["part"] == "stars" and rows[0]["epoch"] == 4
    assert rows[0]["d_loss"] == 1.5 and rows[0]["gradient_penalty"] == 0.25
    assert type(rows[0]["d_loss"]) is float and type(rows[0]["gradient_penalty"]) is float
    assert 0.05 <= rows[0]["seconds"] < 5
    assert list(rows[1]) == ["part", "epoch", "seconds"] and rows[1]["seconds"] < rows[0]["seconds"]

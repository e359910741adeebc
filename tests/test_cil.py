"""The CIL cosmology loader on tiny folders the tests write in the real layout, and on broken ones."""
import numpy as np
import pytest

import cli
import datasets
import train
from core.errors import DataError
from datasets.cil import CILSource


def field(value):
    image = np.full((1000, 1000), value, np.uint8)
    image[500, 500] = 255
    return image


def write_png(path, image):
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), image)


def write_layout(root, labeled=((11, 1.0, 10), (12, 0.0, 20), (13, 1.0, 30)), scored=((21, 2.5, 40), (22, 0.0, 50)),
                 query=(31, 32)):
    """A CIL folder: rows are (id, Actual, fill value of the image)."""
    for subset, rows in (("labeled", labeled), ("scored", scored)):
        (root / f"{subset}.csv").parent.mkdir(parents=True, exist_ok=True)
        (root / f"{subset}.csv").write_text("Id,Actual\n" + "".join(f"{i},{a}\n" for i, a, _ in rows))
        for identifier, _, value in rows:
            write_png(root / subset / f"{identifier}.png", field(value))
    for identifier in query:
        write_png(root / "query" / f"{identifier}.png", field(identifier))
    return root


def test_real_fields_are_the_labeled_images_with_actual_1(tmp_path):
    source = datasets.load("cil", data_dir=str(write_layout(tmp_path)))
    images, labels = source.read(0, len(source))
    assert images.shape == (2, 1000, 1000, 1) and images.dtype == np.uint8 and (labels == -1).all()
    assert [images[k, 0, 0, 0] for k in range(2)] == [10, 30] and images[0, 500, 500, 0] == 255
    np.testing.assert_array_equal(source.metadata(np.arange(2))["id"], [11, 13])


def test_labeled_scored_and_query_subsets(tmp_path):
    root = write_layout(tmp_path)
    labeled = CILSource(root, "labeled")
    assert labeled.class_names == ("fake", "real") and list(labeled.labels()) == [1, 0, 1]
    scored = CILSource(root, "scored")
    np.testing.assert_array_equal(scored.scores, [2.5, 0.0])
    assert scored.metadata(np.array([1]))["score"][0] == 0.0 and scored.read(0, 2)[0][1, 0, 0, 0] == 50
    query = CILSource(root, "query")
    assert len(query) == 2 and list(query.metadata(np.arange(2))["id"]) == [31, 32]
    assert query.read(1, 2)[0][0, 0, 0, 0] == 32


BROKEN = [
    ("no folder", lambda root: root / "missing", "does not exist"),
    ("no csv", lambda root: (root / "labeled.csv").unlink(), "labeled.csv is missing"),
    ("no image folder", lambda root: [p.unlink() for p in (root / "labeled").iterdir()] and (root / "labeled").rmdir(),
     "labeled is missing"),
    ("bad header", lambda root: (root / "labeled.csv").write_text("id;label\n11;1\n"), "expected the header Id,Actual"),
    ("id without image", lambda root: (root / "labeled" / "12.png").unlink(), "lists id 12 but"),
    ("label not 0/1", lambda root: (root / "labeled.csv").write_text("Id,Actual\n11,0.5\n"),
     "line 2: id 11 has Actual 0.5, expected 0 or 1"),
    ("not a number", lambda root: (root / "labeled.csv").write_text("Id,Actual\n11,yes\n"),
     "line 2: '11,yes' is not an integer id and a number"),
    ("duplicate id", lambda root: (root / "labeled.csv").write_text("Id,Actual\n11,1\n11,0\n"),
     "lists id 11 more than once"),
]


@pytest.mark.parametrize("name, damage, message", BROKEN, ids=[b[0] for b in BROKEN])
def test_broken_layouts_name_the_file_and_id(tmp_path, name, damage, message):
    root = write_layout(tmp_path / "cil")
    replaced = damage(root)
    with pytest.raises(DataError, match=message.replace("(", r"\(")):
        CILSource(replaced if name == "no folder" else root, "real")


def test_scores_must_lie_between_0_and_8(tmp_path):
    root = write_layout(tmp_path, scored=((21, 9, 40),))
    with pytest.raises(DataError, match="scored.csv line 2: id 21 has Actual 9, expected a score from 0 to 8"):
        CILSource(root, "scored")


@pytest.mark.parametrize("image, message", [
    (np.zeros((500, 500), np.uint8), "is 500×500 uint8 grayscale, expected 1000×1000 uint8 grayscale"),
    (np.zeros((1000, 1000, 3), np.uint8), "is 1000×1000 uint8 with 3 channels, expected"),
    (None, "cannot be decoded"),
])
def test_bad_images_are_reported_when_read(tmp_path, image, message):
    root = write_layout(tmp_path)
    path = root / "labeled" / "13.png"
    if image is None:
        path.write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    else:
        write_png(path, image)
    source = CILSource(root, "real")
    assert source.read(0, 1)[0].shape == (1, 1000, 1000, 1)
    with pytest.raises(DataError, match=f"13.png \\(id 13\\) {message}"):
        source.read(1, 2)


def test_train_cli_stops_with_one_line_for_a_broken_folder(tmp_path, monkeypatch, capsys):
    root = write_layout(tmp_path / "cil")
    (root / "labeled" / "11.png").unlink()
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as stopped:
        cli.run(lambda: train.main(["--model", "naive", "--dataset", "cil", "--data-dir", str(root)]))
    err = capsys.readouterr().err
    assert stopped.value.code == 2 and err.count("\n") == 1
    assert err.startswith("error: ") and "labeled.csv lists id 11 but" in err and "11.png does not exist" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cil"]

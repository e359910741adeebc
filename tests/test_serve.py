"""evaluate.py serve: the JSON API answers what `nearest` / `find_neighbours` answer, from the saved index, on
synthetic galaxies, a Galaxy10 file and an image folder; bad input is a 4xx with a readable message; and the page,
in Debian's Chromium driven by Playwright, shows the Milky Way's neighbours and follows a click on one."""
import os
import socket
import struct
import zlib

import cv2
import h5py
import numpy as np
import pytest
from fastapi.testclient import TestClient

import zoo
from core.errors import UsageError
from core.runs import TrainConfig
from search import index as search_index
from search.queries import find_neighbours, milky_way_image, nearest, read_prepared
from search.serve import create_app, listen, open_search, png, serving
from training import train

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A one-epoch autoencoder run on 40 synthetic galaxies of 16 px."""
    run_dir = tmp_path_factory.mktemp("runs") / "ae"
    train(TrainConfig(model="autoencoder", limit=40, image_size=16, epochs=1, batch_size=8), run_dir=run_dir,
          verbose=0)
    return run_dir


@pytest.fixture(scope="module")
def index_path(tmp_path_factory):
    return tmp_path_factory.mktemp("index") / "gallery.npz"


@pytest.fixture(scope="module")
def search(run_dir, index_path):
    """The run's gallery, its index built into `index_path` on first use."""
    return open_search(run_dir, index_path)


@pytest.fixture(scope="module")
def client(search):
    return TestClient(create_app(search))


def indices(rows):
    return [row["index"] for row in rows]


@pytest.mark.slow
def test_the_milky_way_and_an_upload_answer_like_nearest_from_the_saved_index(search, client, run_dir, index_path,
                                                                             tmp_path, monkeypatch):
    assert index_path.is_file() and len(search.gallery) == 40
    expected = nearest("milky-way", k=6, run_dir=run_dir)
    answer = client.get("/api/neighbours", params={"k": 6}).json()
    assert answer["query"]["kind"] == "milky-way" and answer["k"] == 6 and answer["gallery_size"] == 40
    assert answer["embedding"] == "latent" and answer["model"] == "autoencoder"
    assert indices(answer["neighbours"]) == indices(expected.rows)
    np.testing.assert_allclose([row["distance"] for row in answer["neighbours"]],
                               [row["distance"] for row in expected.rows], rtol=1e-5)
    assert [row["class_name"] for row in answer["neighbours"]] == [row["class_name"] for row in expected.rows]

    upload = tmp_path / "milky-way.png"
    upload.write_bytes(png(milky_way_image(48), 48))
    expected = nearest(str(upload), k=4, run_dir=run_dir)
    answer = client.post("/api/neighbours?k=4&name=mw.png", content=upload.read_bytes()).json()
    assert answer["query"] == {"kind": "upload", "title": "mw.png", "width": 48, "height": 48}
    assert indices(answer["neighbours"]) == indices(expected.rows)

    def no_embedding(*args, **kwargs):
        raise AssertionError("a saved index must not embed the gallery again")

    monkeypatch.setattr(search_index, "embed_source", no_embedding)
    again = TestClient(create_app(open_search(run_dir, index_path)))
    assert again.get("/api/neighbours", params={"k": 6}).json()["neighbours"] == \
        client.get("/api/neighbours", params={"k": 6}).json()["neighbours"]


@pytest.mark.slow
def test_a_gallery_galaxy_is_its_own_nearest_and_its_neighbours_are_find_neighbours(search, client, run_dir):
    answer = client.get("/api/neighbours", params={"index": 7, "k": 5}).json()
    source, spec = search.source, search.spec
    expected = find_neighbours(read_prepared(source, np.array([7]), spec), search.gallery, source, spec,
                               zoo.load(run_dir), 5)
    assert indices(answer["neighbours"]) == indices(expected.rows) and answer["neighbours"][0]["index"] == 7
    np.testing.assert_allclose([row["distance"] for row in answer["neighbours"]],
                               [row["distance"] for row in expected.rows], rtol=1e-4, atol=1e-7)
    label = int(source.labels()[7])
    assert answer["query"] == {"kind": "galaxy", "index": 7, "title": "galaxy 7", "label": label,
                               "class_name": source.class_names[label], "image": "/api/galaxies/7.png"}
    assert answer["neighbours"][1]["image"] == f"/api/galaxies/{answer['neighbours'][1]['index']}.png"
    served = cv2.imdecode(np.frombuffer(client.get("/api/galaxies/7.png").content, np.uint8), cv2.IMREAD_COLOR)
    np.testing.assert_array_equal(cv2.cvtColor(served, cv2.COLOR_BGR2RGB), source.read(7, 8)[0][0])


@pytest.fixture
def galaxy10_file(tmp_path):
    """A Galaxy10 DECals-layout file of 12 random 24 px galaxies with ra/dec/redshift; galaxy 3 has no redshift."""
    rng = np.random.default_rng(0)
    redshift = np.linspace(0.01, 0.12, 12)
    redshift[3] = np.nan
    with h5py.File(tmp_path / "Galaxy10_DECals.h5", "w") as h5:
        h5["images"] = rng.integers(0, 255, (12, 24, 24, 3), np.uint8)
        h5["ans"] = np.arange(12, dtype=np.uint8) % 10
        h5["ra"], h5["dec"], h5["redshift"] = np.linspace(150, 151.1, 12), np.linspace(-2, 2, 12), redshift
    return tmp_path / "Galaxy10_DECals.h5"


def test_galaxy10_rows_carry_ra_dec_and_redshift_and_a_missing_one_is_null(galaxy10_file, tmp_path):
    search = open_search(None, tmp_path / "g10.npz", "pixels", dataset="galaxy10", data_dir=str(galaxy10_file),
                         image_size=16)
    client = TestClient(create_app(search))
    response = client.get("/api/neighbours", params={"index": 3, "k": 3})
    first = response.json()["neighbours"][0]
    assert first["index"] == 3 and first["distance"] == 0 and first["class_name"] == search.source.class_names[3]
    assert first["ra"] == pytest.approx(150.3) and first["dec"] == pytest.approx(-2 + 12 / 11) and first[
        "redshift"] is None
    assert '"redshift":null' in response.text and "NaN" not in response.text
    second = client.get("/api/neighbours", params={"index": 5, "k": 1}).json()
    assert second["neighbours"][0]["redshift"] == pytest.approx(0.06) and second["query"]["ra"] == pytest.approx(150.5)


def test_an_image_folder_is_served_with_paths_and_classes(striped_folder, tmp_path):
    client = TestClient(create_app(open_search(None, tmp_path / "folder.npz", "pixels", dataset="folder",
                                               data_dir=str(striped_folder), image_size=24)))
    answer = client.get("/api/neighbours", params={"index": 2, "k": 4}).json()
    assert answer["query"]["path"] == "columns/05.png" and answer["dataset"] == "folder"  # columns/ sorts first
    assert [row["class_name"] for row in answer["neighbours"]] == ["columns"] * 4
    assert answer["neighbours"][0]["path"] == "columns/05.png" and answer["neighbours"][0]["distance"] < 1e-10


def tiny_png() -> bytes:
    return png(np.zeros((8, 8, 3), np.uint8))


def png_claiming(width: int, height: int) -> bytes:
    """An 8×8 PNG whose header says width×height: a few hundred bytes that would decode to a huge image."""
    data = bytearray(tiny_png())
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


@pytest.mark.slow
@pytest.mark.parametrize("method, url, body, status, message", [
    ("get", "/api/neighbours?k=0", None, 400,
     "k must be a whole number from 1 to 40, got '0'. Choose how many neighbours to show, e.g. 10"),
    ("get", "/api/neighbours?k=ten", None, 400, "k must be a whole number from 1 to 40, got 'ten'."),
    ("get", "/api/neighbours?index=40", None, 400, "the galaxy index must be a whole number from 0 to 39, got '40'. "
                                                   "The gallery holds 40 galaxies; pick one of them"),
    ("get", "/api/neighbours?index=2.5", None, 400, "the galaxy index must be a whole number from 0 to 39, got '2.5'"),
    ("get", "/api/galaxies/-1.png", None, 404, "the galaxy index must be a whole number from 0 to 39, got '-1'"),
    ("post", "/api/neighbours", b"GIF89a not really", 415,
     "the upload is not an image that can be read (corrupt, or not a PNG or JPEG). Choose a PNG or JPEG image of a "
     "galaxy"),
    ("post", "/api/neighbours", b"", 400, "the upload is empty. Choose a PNG or JPEG image of a galaxy"),
    ("post", "/api/neighbours", tiny_png(), 422, "the uploaded image is 8×8 px, smaller than the 16×16 px the model "
                                                 "looks at. Upload a cut-out of at least 16×16 px"),
    ("post", "/api/neighbours?k=-3", tiny_png(), 400, "k must be a whole number from 1 to 40, got '-3'"),
    ("get", "/api/neighbours?k=²", None, 400, "k must be a whole number from 1 to 40, got '²'"),
    ("get", "/api/neighbours?index=²", None, 400, "the galaxy index must be a whole number from 0 to 39, got '²'"),
    ("get", "/api/galaxies/².png", None, 404, "the galaxy index must be a whole number from 0 to 39, got '²'"),
    ("get", "/api/nothing", None, 404, "there is no /api/nothing. Use GET /"),
    ("get", "/api/galaxies/..%2F..%2Fetc%2Fpasswd", None, 404, "there is no /api/galaxies/../../etc/passwd. Use GET /"),
    ("post", "/api/neighbours", png_claiming(12_000, 12_000), 413, "the uploaded image is 12000×12000 px, more than "
                                                                   "the 50 megapixels accepted. Upload a cut-out"),
    ("delete", "/api/neighbours", None, 405, "/api/neighbours does not take DELETE. Use GET /"),
])
def test_bad_input_is_a_4xx_with_a_readable_message(method, url, body, status, message, client):
    response = client.post(url, content=body) if method == "post" else client.request(method.upper(), url)
    assert response.status_code == status
    assert list(response.json()) == ["error"] and response.json()["error"].startswith(message)


def test_a_port_in_use_is_refused_before_any_work():
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        with pytest.raises(UsageError, match=rf"cannot listen on 127.0.0.1:{port} \(Address already in use\). "
                                             "Pass a free --port"):
            listen("127.0.0.1", port)


@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium under Playwright, started once; missing, it fails the test with what to install."""
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing: the page test needs Debian's chromium. "
                    "Install it with `apt-get install -y chromium` (as .ci/run does)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield browser
        browser.close()


@pytest.mark.browser
@pytest.mark.slow
def test_the_page_shows_the_milky_ways_neighbours_and_a_click_makes_a_neighbour_the_query(search, browser):
    from playwright.sync_api import expect

    def grid():
        return [int(index) for index in page.locator("#grid .card").evaluate_all("cards => cards.map(c => "
                                                                                  "c.dataset.index)")]

    with serving(search, listen("127.0.0.1", 0)) as url:
        page = browser.new_page()
        page.goto(url)
        expect(page.locator("#grid .card")).to_have_count(10)
        expect(page.locator("#query-title")).to_have_text("the Milky Way (rendered)")
        expect(page.locator("#about")).to_have_text(f"40 galaxies of synthetic-galaxies, latent embedding of "
                                                    f"autoencoder run {search.about['run']}")
        assert grid() == indices(search.by_milky_way(10)["neighbours"])
        page.wait_for_function("document.querySelector('#grid .card img').complete")   # loaded, or failed to
        assert page.locator("#grid .card img").first.evaluate("image => image.naturalWidth") == 16

        chosen = grid()[2]
        page.locator("#grid .card").nth(2).click()
        expect(page.locator("#query-title")).to_have_text(f"galaxy {chosen}")
        expect(page.locator("#grid .card").first).to_have_attribute("data-index", str(chosen))
        assert grid() == indices(search.by_index(chosen, 10)["neighbours"])

        page.fill("#k", "4")
        page.press("#k", "Enter")
        expect(page.locator("#grid .card")).to_have_count(4)
        expect(page.locator("#query-title")).to_have_text(f"galaxy {chosen}")

        page.fill("#index", "999")
        page.click("#pick button")
        expect(page.locator("#error")).to_have_text("the galaxy index must be a whole number from 0 to 39, got '999'. "
                                                    "The gallery holds 40 galaxies; pick one of them")
        expect(page.locator("#query-title")).to_have_text(f"galaxy {chosen}")  # the last good answer stays

        page.set_input_files("#upload", files=[{"name": "notes.png", "mimeType": "image/png", "buffer": b"text"}])
        expect(page.locator("#error")).to_contain_text("the upload is not an image that can be read")
        page.set_input_files("#upload", files=[{"name": "mine.png", "mimeType": "image/png",
                                                "buffer": png(milky_way_image(32))}])
        expect(page.locator("#query-title")).to_have_text("mine.png")
        expect(page.locator("#error")).to_be_hidden()
        page.close()


@pytest.mark.slow
def test_an_index_folder_of_embed_and_index_answers_like_the_npz_gallery(local_ray, search, client, run_dir,
                                                                         tmp_path):
    """`serve --index IDX/` (evaluate.py embed + index, on Ray): the same neighbours as the .npz gallery, a gallery
    galaxy queried by its stored vector."""
    from search.index import ShardedIndex, build_sharded_index
    from search.shards import embed_shards

    embed_shards(tmp_path / "emb", run_dir, shard_rows=16)
    build_sharded_index(tmp_path / "emb", tmp_path / "idx")
    sharded = open_search(run_dir, tmp_path / "idx")
    assert isinstance(sharded.gallery, ShardedIndex) and len(sharded.gallery) == 40
    folder_client = TestClient(create_app(sharded))
    for params in ({"k": 6}, {"index": 7, "k": 5}):
        from_folder = folder_client.get("/api/neighbours", params=params).json()
        assert indices(from_folder["neighbours"]) == indices(client.get("/api/neighbours", params=params).json()
                                                             ["neighbours"])
    np.testing.assert_allclose(sharded.gallery.vector(7), search.gallery.vector(7), atol=1e-6)

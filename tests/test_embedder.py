"""dlib's face embedder read from its .dat, its shipped LiteRT twin, and the analyzer using it."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest

from kiosk.config import RecognitionSettings
from kiosk.errors import ImageError, ModelError
from kiosk.gallery import Gallery
from kiosk.training.dlib_embedder import (
    DlibFormatError,
    default_dat_path,
    distance_stats,
    extract_chips,
    plan,
    read_dlib_net,
)
from kiosk.vision.embedder import DEFAULT_MODEL, LiteRTFaceEmbedder
from kiosk.vision.faces import DlibFaceAnalyzer, load_image

FACES = Path(__file__).parent / "data" / "faces"
# The tolerance for the twin against dlib (Euclidean distance between embeddings).
MEDIAN_TOLERANCE = 0.01
MAX_TOLERANCE = 0.03


@pytest.fixture(scope="module")
def net():
    return read_dlib_net(default_dat_path())


@pytest.fixture(scope="module")
def chips() -> tuple[np.ndarray, np.ndarray, list[str]]:
    """dlib's chips and descriptors of the committed people's photos (one face each)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return extract_chips(sorted((FACES / "people").glob("*/*.jpg")))


def test_reader_parses_the_dlib_net(net) -> None:
    assert net.input["nr"] == net.input["nc"] == 150
    # input_rgb_image_sized: (pixel - mean) / 256 with dlib's means, RGB order.
    np.testing.assert_allclose([net.input["avg_red"], net.input["avg_green"], net.input["avg_blue"]],
                               [122.782, 117.001, 104.298], atol=1e-4)
    assert net.loss["name"] == "loss_metric_2"
    assert len(net.layers) == 108
    assert (net.count("con"), net.count("affine"), net.count("relu"), net.count("add_prev")) == (29, 29, 29, 14)
    assert (net.count("avg_pool"), net.count("max_pool"), net.count("fc")) == (5, 1, 1)
    first = net.layers[0]
    assert first.kind == "con" and first.values["filters"].shape == (32, 3, 7, 7)
    assert first.values["stride_y"] == 2 and first.values["padding_y"] == 0
    fc = net.layers[-1]
    assert fc.values["weights"].shape == (256, 128) and "biases" not in fc.values  # fc_no_bias
    widths = [layer.values["num_filters"] for layer in net.layers if layer.kind == "con"]
    assert widths == [32] + [32] * 6 + [64] * 8 + [128] * 6 + [256] * 6 + [256] * 2
    assert net.num_params() == 5_614_592
    steps = plan(net)
    assert [kind for kind, _ in steps] == ["stem"] + ["block"] * 14 + ["head"]
    assert all(np.isfinite(layer.values["filters"]).all() for layer in net.layers if layer.kind == "con")


def test_reader_refuses_a_cut_file(tmp_path: Path) -> None:
    cut = tmp_path / "cut.dat"
    cut.write_bytes(default_dat_path().read_bytes()[:1_000_000])
    with pytest.raises(DlibFormatError, match="ends early|bad"):
        read_dlib_net(cut)


@pytest.mark.slow
def test_keras_rebuild_matches_dlib(net, chips) -> None:
    pytest.importorskip("tensorflow")
    from kiosk.training.dlib_embedder import build_keras

    model = build_keras(net)
    chip, desc, _ = chips
    got = model.predict(chip[:4].astype(np.float32), verbose=0)
    assert distance_stats(got, desc[:4])["max"] < 1e-4


def test_shipped_twin_is_within_tolerance_of_dlib(chips) -> None:
    chip, desc, _ = chips
    assert len(chip) == 16
    assert DEFAULT_MODEL.stat().st_size <= 25_000_000
    embedder = LiteRTFaceEmbedder()
    got = np.stack([embedder.embed_chip(c) for c in chip])
    assert got.shape == (16, 128) and got.dtype == np.float32
    stats = distance_stats(got, desc)
    assert stats["median"] <= MEDIAN_TOLERANCE and stats["max"] <= MAX_TOLERANCE, stats


def test_tampered_model_is_refused(tmp_path: Path) -> None:
    broken = tmp_path / "face_embedder_f16.tflite"
    data = bytearray(DEFAULT_MODEL.read_bytes())
    data[len(data) // 2] ^= 0xFF
    broken.write_bytes(bytes(data))
    shutil.copy(DEFAULT_MODEL.with_name(DEFAULT_MODEL.name + ".sha256"), broken.with_name(broken.name + ".sha256"))
    with pytest.raises(ModelError, match="corrupted or was replaced"):
        LiteRTFaceEmbedder(broken)
    # An analyzer configured with it refuses to start the same way.
    with pytest.raises(ModelError, match="corrupted"):
        DlibFaceAnalyzer(RecognitionSettings(embedder="litert", embedder_model=broken))


def test_model_without_checksum_file_is_refused(tmp_path: Path) -> None:
    copy = tmp_path / "m.tflite"
    shutil.copy(DEFAULT_MODEL, copy)
    with pytest.raises(ModelError, match="checksum file missing"):
        LiteRTFaceEmbedder(copy)
    with pytest.raises(ModelError, match="model file not found"):
        LiteRTFaceEmbedder(tmp_path / "nope.tflite")


def test_wrong_chip_shape_is_a_clear_error() -> None:
    with pytest.raises(ImageError, match="150x150x3"):
        LiteRTFaceEmbedder().embed_chip(np.zeros((100, 100, 3), np.uint8))


def test_settings_embedder_id_and_jitter_rule() -> None:
    dlib_id = RecognitionSettings(embedder="dlib").embedder_id()
    litert_id = RecognitionSettings(embedder="litert").embedder_id()
    assert RecognitionSettings().embedder == "litert"  # the default since the twin matches dlib
    assert set(RecognitionSettings().compatible_embedder_ids()) == {dlib_id, litert_id}
    assert RecognitionSettings(embedder_model="other.tflite").compatible_embedder_ids() == (
        RecognitionSettings(embedder_model="other.tflite").embedder_id(),)
    assert litert_id != dlib_id and "litert" in litert_id and "face_embedder_f16.tflite" in litert_id
    with pytest.raises(ValueError, match="num_jitters"):
        RecognitionSettings(embedder="litert", num_jitters=2)


@pytest.mark.slow
def test_litert_analyzer_identifies_the_same_people_as_dlib() -> None:
    people = sorted(p for p in (FACES / "people").iterdir() if p.is_dir())
    strangers = sorted((FACES / "strangers").glob("*.jpg"))
    results = {}
    embeddings = {}
    for kind in ("dlib", "litert"):
        analyzer = DlibFaceAnalyzer(RecognitionSettings(embedder=kind))
        gallery = Gallery(analyzer.settings)
        probes: list[tuple[str | None, np.ndarray]] = []
        for person in people:
            photos = sorted(person.glob("*.jpg"))
            faces = [analyzer.largest_face(load_image(p)) for p in photos]
            assert all(f is not None and f.embedding is not None for f in faces)
            gallery.add(person.name, np.stack([f.embedding for f in faces[:2]]))
            probes += [(person.name, f.embedding) for f in faces[2:]]
        for path in strangers:
            face = analyzer.largest_face(load_image(path))
            if face is not None and face.embedding is not None:
                probes.append((None, face.embedding))
        results[kind] = [(truth, gallery.identify(e).person_id) for truth, e in probes]
        embeddings[kind] = np.stack([e for _, e in probes])
    assert results["litert"] == results["dlib"]
    # The people are recognised and the strangers are not (by both).
    assert sum(truth == got for truth, got in results["dlib"] if truth) >= 6
    assert all(got is None for truth, got in results["dlib"] if truth is None)
    # Mirror-averaged embeddings from the whole analyzer stay within the tolerance too.
    stats = distance_stats(embeddings["litert"], embeddings["dlib"])
    assert stats["max"] <= MAX_TOLERANCE, stats


def test_evaluation_cache_key_tells_the_embedders_apart() -> None:
    from kiosk.evaluation.faces import cache_key

    dlib_key = cache_key(RecognitionSettings(embedder="dlib"))
    assert "embedder" not in dlib_key  # caches made before the setting stay valid
    assert cache_key(RecognitionSettings(embedder="litert")) != dlib_key


def test_converter_cli_refuses_a_file_that_is_not_a_dlib_net(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from kiosk.cli import main

    junk = tmp_path / "junk.dat"
    junk.write_bytes(b"not a dlib net")
    result = CliRunner().invoke(main, ["train", "embedder", "--dat", str(junk), "--out-dir", str(tmp_path)])
    assert result.exit_code != 0
    assert "bad integer control byte" in result.output and "Traceback" not in result.output


def test_installed_model_location_matches_pyproject_data_files() -> None:
    import sys

    from kiosk.vision import embedder

    assert embedder.MODEL_LOCATIONS[1] == Path(sys.prefix) / "share" / "kiosk" / "models" / "face_embedder_f16.tflite"
    pyproject = (Path(__file__).parents[1] / "pyproject.toml").read_text()
    assert '"models/face_embedder_f16.tflite", "models/face_embedder_f16.tflite.sha256"' in pyproject


def test_templates_of_dlib_need_no_re_enrolment_under_the_shipped_twin(db) -> None:
    from kiosk import store

    dlib_made = store.add_person(db, "E1", "Made By Dlib")
    store.add_templates(db, dlib_made.id, [[0.1] * 128],
                        embedder=RecognitionSettings(embedder="dlib").embedder_id())
    other = store.add_person(db, "E2", "Made Otherwise")
    store.add_templates(db, other.id, [[0.2] * 128], embedder="some-other-net")
    stale = store.templates_not_made_by(db, RecognitionSettings().compatible_embedder_ids())
    assert stale == {other.id: 1}
    own_model = RecognitionSettings(embedder_model="mine.tflite")
    assert set(store.templates_not_made_by(db, own_model.compatible_embedder_ids())) == {dlib_made.id, other.id}


def test_the_web_app_enrols_with_dlib_under_the_shipped_twin() -> None:
    """The web app's enrolment analyzer (memory bound on a Pi) uses dlib's own embedder when the
    door runs the shipped twin; their templates are one set (nothing to re-enrol)."""
    default = RecognitionSettings()
    server = default.for_enrolment_server()
    assert default.embedder == "litert" and server.embedder == "dlib"
    assert server.embedder_id() in default.compatible_embedder_ids()
    own = RecognitionSettings(embedder="litert", embedder_model="mine.tflite")
    assert own.for_enrolment_server() is own  # another model has no dlib equivalent


def test_embedder_threads_reach_the_interpreter_and_change_nothing(chips, monkeypatch) -> None:
    import kiosk.vision.embedder as embedder_module

    asked: list[int] = []
    real_load = embedder_module.load_interpreter

    def spy(*args, **kwargs):
        asked.append(kwargs["threads"])
        return real_load(*args, **kwargs)

    monkeypatch.setattr(embedder_module, "load_interpreter", spy)
    one = DlibFaceAnalyzer(RecognitionSettings(embedder_threads=1))
    two = DlibFaceAnalyzer(RecognitionSettings())  # the default: 2
    assert asked == [1, 2]
    assert one._embedder is not None and two._embedder is not None
    for chip in chips[0][:5]:
        np.testing.assert_array_equal(one._embedder.embed_chip(chip), two._embedder.embed_chip(chip))

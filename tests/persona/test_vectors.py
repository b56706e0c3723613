"""Vector files: round trip, tamper detection, model checks, and no pickles anywhere."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import TRAIT

from datalint_persona.errors import VectorError
from datalint_persona.model.capture import LAYER_CONVENTION
from datalint_persona.model.loading import LoadedModel
from datalint_persona.persona.store import find_vectors
from datalint_persona.persona.vectors import FORMAT, PersonaVector

PACKAGE = Path(__file__).resolve().parents[2] / "datalint_persona"
FORBIDDEN = ("torch.load", "import pickle", "pickle.load", "allow_pickle=True", "weights_only=False")


def _copy(vectors_dir: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "vectors"
    shutil.copytree(vectors_dir, folder)
    return folder


def test_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((5, 32)).astype(np.float32)
    metadata = {"chosen_layer": 2, "model": {"name": "m", "identity": "sha256:x"}, "note": "ünïcødé"}
    original = PersonaVector("evil", vectors, metadata)
    tensor_path = original.save(tmp_path / "evil")
    assert tensor_path == tmp_path / "evil.safetensors"
    for path in (tensor_path, tmp_path / "evil.json", tmp_path / "evil"):
        loaded = PersonaVector.load(path)
        assert loaded.trait == "evil"
        assert np.array_equal(loaded.vectors, vectors) and loaded.vectors.dtype == np.float32
        assert loaded.chosen_layer == 2 and loaded.model_identity == "sha256:x"
        assert loaded.metadata["note"] == "ünïcødé" and loaded.metadata["format"] == FORMAT
        assert (loaded.num_layers, loaded.hidden_size) == (4, 32)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["evil.json", "evil.safetensors"]  # no temp files
    unit = loaded.unit(3)
    assert unit.dtype == np.float64 and abs(np.linalg.norm(unit) - 1) < 1e-12
    np.testing.assert_allclose(unit, vectors[3] / np.linalg.norm(vectors[3]), rtol=1e-6)


def test_tampered_tensor_bytes_are_refused(vectors_dir: Path, tmp_path: Path) -> None:
    folder = _copy(vectors_dir, tmp_path)
    tensor = folder / f"{TRAIT}.safetensors"
    data = bytearray(tensor.read_bytes())
    data[-5] ^= 0x01  # one bit of one float
    tensor.write_bytes(bytes(data))
    with pytest.raises(VectorError, match="sha256") as error:
        PersonaVector.load(tensor)
    assert str(tensor) in str(error.value) and "rebuild" in str(error.value)
    with pytest.raises(VectorError, match="sha256"):
        find_vectors(str(folder), "tiny-llama")


def test_truncated_file_and_missing_sidecar_are_refused(vectors_dir: Path, tmp_path: Path) -> None:
    folder = _copy(vectors_dir, tmp_path)
    tensor = folder / f"{TRAIT}.safetensors"
    tensor.write_bytes(tensor.read_bytes()[:-10])
    with pytest.raises(VectorError, match="sha256"):
        PersonaVector.load(tensor)
    (folder / f"{TRAIT}.json").unlink()
    with pytest.raises(VectorError, match="file not found"):
        PersonaVector.load(tensor)


def test_sidecar_is_plain_json_with_its_metadata(calibrated_vector: PersonaVector, vectors_dir: Path) -> None:
    sidecar = json.loads((vectors_dir / f"{TRAIT}.json").read_text(encoding="utf-8"))
    assert sidecar["layer_convention"] == LAYER_CONVENTION
    assert sidecar["model"]["name"] == "tiny-llama"
    assert sidecar["num_layers"] == 4 and sidecar["hidden_size"] == 32
    assert sidecar["calibration"]["layer"] == calibrated_vector.chosen_layer


def test_check_model_accepts_its_own_model(calibrated_vector: PersonaVector, tiny_llama: LoadedModel) -> None:
    model = tiny_llama
    calibrated_vector.check_model(model.identity, model.num_layers, model.hidden_size, "tiny-llama")


def test_wrong_layer_count_names_the_model_it_was_built_for(
    calibrated_vector: PersonaVector, tiny_gpt2: LoadedModel
) -> None:
    with pytest.raises(VectorError) as error:
        model = tiny_gpt2
        calibrated_vector.check_model(model.identity, model.num_layers, model.hidden_size, "tiny-gpt2")
    message = str(error.value)
    assert "4 layers" in message and "3 layers" in message
    assert "tiny-llama" in message and "tiny-gpt2" in message and "--model tiny-llama" in message


def test_wrong_hidden_size_names_the_model_it_was_built_for(calibrated_vector: PersonaVector) -> None:
    with pytest.raises(VectorError, match="hidden size 32") as error:
        calibrated_vector.check_model("sha256:other", 4, 64, "bigger-model")
    assert "tiny-llama" in str(error.value) and "hidden size 64" in str(error.value)


def test_other_weights_of_the_same_shape_are_refused(
    calibrated_vector: PersonaVector, tiny_llama: LoadedModel
) -> None:
    with pytest.raises(VectorError, match="built for model tiny-llama") as error:
        calibrated_vector.check_model("sha256:0000", 4, 32, "tiny-llama-finetuned")
    assert tiny_llama.identity in str(error.value) and "tiny-llama-finetuned" in str(error.value)


def test_other_layer_convention_is_refused(calibrated_vector: PersonaVector, tiny_llama: LoadedModel) -> None:
    old = calibrated_vector.with_metadata(layer_convention="blocks: layer l is the output of block l")
    with pytest.raises(VectorError, match="layer convention"):
        old.check_model(tiny_llama.identity, 4, 32, "tiny-llama")


def test_find_vectors_filters_traits_and_names_missing_ones(vectors_dir: Path) -> None:
    [vector] = find_vectors(str(vectors_dir), "tiny-llama", [TRAIT])
    assert vector.trait == TRAIT
    [same] = find_vectors(str(vectors_dir / f"{TRAIT}.safetensors"), "tiny-llama")
    assert np.array_equal(same.vectors, vector.vectors)
    with pytest.raises(VectorError, match=f"nosuch.*available: {TRAIT}"):
        find_vectors(str(vectors_dir), "tiny-llama", ["nosuch"])
    with pytest.raises(VectorError, match="No persona vectors ship"):
        find_vectors(None, "tiny-llama")


def test_zero_vector_has_no_direction() -> None:
    with pytest.raises(VectorError, match="zero at layer 1"):
        PersonaVector("t", np.zeros((3, 4), np.float32)).unit(1)


def test_no_pickle_anywhere_in_the_package() -> None:
    sources = sorted(PACKAGE.rglob("*.py"))
    assert len(sources) > 20
    for source in sources:
        text = source.read_text(encoding="utf-8")
        for forbidden in FORBIDDEN:
            assert forbidden not in text, f"{source.relative_to(PACKAGE.parent)} uses {forbidden}"


def test_calibration_is_read_from_the_sidecar_block(calibrated_vector: PersonaVector) -> None:
    record = calibrated_vector.calibration_record
    calibration = calibrated_vector.calibration
    assert calibration.layer == record["layer"] == calibrated_vector.chosen_layer
    null = record["null"]
    assert (calibration.null.df, calibration.null.loc, calibration.null.scale) == (  # type: ignore[union-attr]
        null["df"],
        null["loc"],
        null["scale"],
    )
    assert (calibration.gap, calibration.margin) == (record["gap"], record["margin"])
    assert calibration.normal_delta_p == tuple(record["normal_delta_p"])
    assert calibration.y_prime == (record["y_prime"]["max_new_tokens"], record["y_prime"]["temperature"])
    assert (calibration.auroc, calibration.null_size) == (record["overall"]["auroc"], null["n"])


def test_a_sidecar_without_a_fitted_null_gets_one_from_its_normal_answers() -> None:
    from scipy.stats import t

    from datalint_persona.persona.vectors import VectorCalibration

    rng = np.random.default_rng(3)
    normal, trait = rng.standard_t(5, size=400) - 1.0, rng.normal(4.0, 1.0, size=30)
    old = VectorCalibration.from_record(
        {"layer": 2, "normal_delta_p": normal.tolist(), "trait_delta_p": trait.tolist()}
    )
    assert old.null is not None
    df, loc, scale = t.fit(normal)  # scipy's own fit, unbounded
    assert (old.null.df, old.null.loc, old.null.scale) == pytest.approx((df, loc, scale), rel=0.05)
    assert old.gap == pytest.approx(trait.mean() - normal.mean())
    assert (old.reference_weight, old.reference_mean, old.y_prime) == (1.0, 0.0, None)
    # Too few normal answers to fit: no null, and so no statistical verdict.
    assert VectorCalibration.from_record({"layer": 2, "normal_delta_p": [0.0] * 9}).null is None
    assert VectorCalibration.from_record({}) == VectorCalibration()

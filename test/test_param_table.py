"""The parameter table is the one source of defaults: config/*.yaml must say exactly the same."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import yaml

from edge_infer.paths import config_file
from edge_infer.ros.param_table import AUDIO_NODE, FACE_NODE, NODE_PARAMS, Param, defaults, face_config

CONFIG_FILES = {FACE_NODE: "face_pipeline.yaml", AUDIO_NODE: "audio.yaml"}


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        out.update(_flatten(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
    return out


@pytest.mark.parametrize("node", sorted(NODE_PARAMS))
def test_yaml_equals_table(node: str) -> None:
    doc = yaml.safe_load(config_file(CONFIG_FILES[node]).read_text())
    yaml_values = _flatten(doc[node]["ros__parameters"])
    table = defaults(node)
    assert set(yaml_values) == set(table), f"only in YAML: {set(yaml_values) - set(table)}, only in table: {set(table) - set(yaml_values)}"
    for name, value in table.items():
        assert yaml_values[name] == value, f"{node}.{name}: YAML {yaml_values[name]!r} != table {value!r}"


@pytest.mark.parametrize("node", sorted(NODE_PARAMS))
def test_every_default_passes_its_own_check(node: str) -> None:
    for p in NODE_PARAMS[node]:
        assert p.check(p.default) is None, p.name


def test_check_rejects_with_a_reason() -> None:
    p = Param("score_threshold", 0.5, "x", float_range=(0.0, 1.0))
    assert "outside" in p.check(1.5)
    assert "not one of" in Param("backend", "a", "x", choices=("a", "b")).check("c")


def test_face_config_from_values() -> None:
    v = defaults(FACE_NODE) | {"score_threshold": 0.9, "detect_every": 3}
    c = face_config(v)
    assert c.score_threshold == 0.9 and c.detect_every == 3 and c.detector_size == (640, 384)


def test_audio_pipeline_logs_and_counts_model_failures(models_dir, monkeypatch, caplog) -> None:
    """A real silero VAD whose runtime fails (fault injected into its backend): the pipeline goes on."""
    from edge_infer.backends import BackendError
    from edge_infer.models.silero_vad import SileroVad
    from edge_infer.pipeline.audio_pipeline import AudioPipeline

    vad = SileroVad(models_dir / "silero_vad.onnx")

    def fail(*_a, **_k):
        raise BackendError("model exploded")

    monkeypatch.setattr(vad.backend, "run", fail)
    pipe = AudioPipeline(vad, None)
    with caplog.at_level(logging.ERROR, logger="edge_infer.pipeline.audio_pipeline"):
        for _ in range(3):
            assert pipe.process(np.zeros(1600, dtype=np.int16)) == []
    assert pipe.diagnostics()["counters"]["pipeline_errors"] == 3
    errors = [r for r in caplog.records if "model exploded" in r.getMessage()]
    assert len(errors) == 1, "logged once (throttled), counted every time"


def test_fatigue_parameters_come_from_fatigue_config() -> None:
    """Every fatigue.<name> parameter has FatigueConfig's default, description and range; combinations the
    ranges cannot catch are refused by fatigue_config (the node: at start-up and on a live change)."""
    from dataclasses import fields

    from edge_infer.errors import ConfigError
    from edge_infer.pipeline.fatigue import FatigueConfig
    from edge_infer.ros.param_table import FACE_PARAMS, FATIGUE_FIELDS, fatigue_config

    meta = {f.name: f for f in fields(FatigueConfig)}
    table = {p.name: p for p in FACE_PARAMS}
    for name in FATIGUE_FIELDS:
        p = table[f"fatigue.{name}"]
        assert not p.read_only and p.default == meta[name].default and isinstance(p.default, float)
        assert p.float_range == meta[name].metadata["range"] and p.description == meta[name].metadata["description"]
    assert not table["publish_tf"].read_only and table["publish_tf"].default is True
    assert fatigue_config(defaults(FACE_NODE)) == FatigueConfig()
    assert fatigue_config(defaults(FACE_NODE) | {"fatigue.window_s": 30.0}).window_s == 30.0
    with pytest.raises(ConfigError, match="blink_min_s=0.9 is above blink_max_s=0.5"):
        fatigue_config(defaults(FACE_NODE) | {"fatigue.blink_min_s": 0.9})

"""The data the web extension reads matches the node schema and the modality table (no browser).

The extension (web/detect_widgets.js) reads each input's ``detect_modalities``/``detect_backends``
options from the node definition in /object_info. These tests check that data against the
modality table (``modalities.MODALITIES``) and that the JS holds no copy of the table.
"""

from __future__ import annotations

import re

from comfy_host import REPO_ROOT, ComfyServer

from scenario_detect.nodes import modalities as table
from scenario_detect.nodes import widget_visibility as wv

JS_PATH = REPO_ROOT / "web" / "detect_widgets.js"


def test_rules_follow_the_table() -> None:
    modalities = table.MODALITIES
    rules = wv.widget_rules()
    for param in table.PARAMS:
        expected = [name for name, m in modalities.items() if param in m.params]
        assert rules[param]["modalities"] == expected, param
        assert wv.LOCAL in rules[param]["backends"]
    with_local = [name for name, m in modalities.items() if m.local_methods]
    assert rules[wv.LOCAL_METHOD_WIDGET] == {"modalities": with_local, "backends": [wv.LOCAL]}
    # Every modality's params are covered, and the examples hold.
    for name, modality in modalities.items():
        shown = {w for w, rule in rules.items() if name in rule["modalities"]}
        assert set(modality.params) <= shown, name
    canny = {w for w, r in rules.items() if "canny" in r["modalities"]} - {wv.LOCAL_METHOD_WIDGET}
    assert canny >= {"low_threshold", "high_threshold"}
    grayscale = {w for w, r in rules.items() if "grayscale" in r["modalities"]}
    assert {"factor", "min_threshold", "max_threshold", "remove_background"} <= grayscale
    assert "keypoint_threshold" in {w for w, r in rules.items() if "pose" in r["modalities"]}


def test_remote_only_options_apply_to_remote_backends_only() -> None:
    rules = wv.widget_rules()
    assert table.REMOTE_OPTIONS, "no remote-only option to check"
    for name in table.REMOTE_OPTIONS:
        assert wv.LOCAL not in rules[name]["backends"], name
        assert rules[name]["modalities"] == list(table.MODALITY_NAMES), name


def test_object_info_carries_the_rules(comfy_server: ComfyServer) -> None:
    """What the frontend receives as nodeData equals the rules built from the table."""
    info = comfy_server.object_info("ScenarioDetect")
    inputs = {**info["input"].get("required", {}), **info["input"].get("optional", {})}
    rules = wv.widget_rules()
    served = {}
    for name, spec in inputs.items():
        options = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
        if wv.MODALITIES_KEY in options or wv.BACKENDS_KEY in options:
            served[name] = {"modalities": options[wv.MODALITIES_KEY], "backends": options[wv.BACKENDS_KEY]}
    assert served == {name: rule for name, rule in rules.items() if name in inputs}
    # Every tuning widget of the table is on the node and annotated; modality is always shown.
    assert set(table.PARAMS) <= set(served)
    assert "modality" not in served
    assert "backend" not in served
    assert set(table.REMOTE_OPTIONS) <= set(served)
    # The annotated inputs keep their ordinary options (the rules are added, nothing replaced).
    low = inputs["low_threshold"][1]
    param = table.PARAMS["low_threshold"]
    assert (low["default"], low["min"], low["max"]) == (param.default, param.min, param.max)


def test_extension_has_no_copy_of_the_table() -> None:
    source = JS_PATH.read_text()
    for key in (wv.MODALITIES_KEY, wv.BACKENDS_KEY):
        assert f'"{key}"' in source, f"the extension must read the option key {key}"
    strings = set(re.findall(r'"([^"\\]*)"', source))
    copied = strings & (set(table.MODALITY_NAMES) | set(table.PARAMS))
    assert not copied, f"web/detect_widgets.js names table entries itself: {sorted(copied)}"


def test_method_choices_follow_the_table() -> None:
    choices = wv.local_method_choices()
    for name, modality in table.MODALITIES.items():
        if not modality.local_methods:
            assert name not in choices
            continue
        assert list(choices[name]) == [table.AUTO_METHOD, *(m.name for m in modality.local_methods)], name
        for method in modality.local_methods:
            label = choices[name][method.name]
            if method.needs_weights:
                assert method.download, f"{method.name} needs weights: give its download size in the table"
                assert label == f"{method.name} · {method.download} download"
                assert method.download in method.description  # the two texts of the table agree
            else:
                assert label == f"{method.name} · weight-free"
        assert choices[name][table.AUTO_METHOD] == f"auto → {choices[name][modality.local_methods[0].name]}"


def test_object_info_offers_every_method_and_the_choices(comfy_server: ComfyServer) -> None:
    spec = comfy_server.object_info("ScenarioDetect")["input"]["required"]["local_method"]
    values = spec[0] if isinstance(spec[0], list) else spec[1]["options"]
    # The HTTP API keeps accepting every valid name; only the web extension narrows the offer.
    assert values == table.all_local_method_names()
    assert spec[1][wv.METHODS_KEY] == wv.local_method_choices()
    assert '"' + wv.METHODS_KEY + '"' in JS_PATH.read_text()

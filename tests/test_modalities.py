"""The modality table: the API's names, the field mapping, validation rules."""

import json
import re

import pytest

from scenario_detect.nodes import modalities as table

API_MODALITIES = [
    "canny", "depth", "grayscale", "lineart_anime", "mlsd", "normal", "pose", "scribble", "segmentation", "sketch",
]


def test_ten_modalities_in_api_spelling_and_order():
    assert list(table.MODALITY_NAMES) == API_MODALITIES


def test_widget_names_map_one_to_one_to_api_fields():
    expected = {
        "low_threshold": "lowThreshold", "high_threshold": "highThreshold", "factor": "factor",
        "min_threshold": "minThreshold", "max_threshold": "maxThreshold",
        "remove_background": "removeBackground", "keypoint_threshold": "keypointThreshold",
    }
    assert {name: p.api_field for name, p in table.PARAMS.items()} == expected
    for name, param in table.PARAMS.items():
        assert re.fullmatch(r"[a-z]+(_[a-z]+)*", name)
        camel = re.sub(r"_([a-z])", lambda m: m.group(1).upper(), name)
        assert camel == param.api_field
        assert param.tooltip
        assert param.check(param.default) is None


def test_each_parameter_belongs_to_its_modality():
    assert table.MODALITIES["canny"].params == ("low_threshold", "high_threshold")
    assert table.MODALITIES["grayscale"].params == ("factor", "min_threshold", "max_threshold", "remove_background")
    assert table.MODALITIES["pose"].params == ("keypoint_threshold",)
    used = [p for m in table.MODALITIES.values() for p in m.params]
    assert sorted(used) == sorted(table.PARAMS)


def test_api_fields_only_send_what_applies():
    params = table.default_params() | {"low_threshold": 50, "factor": 2.0}
    assert table.api_fields("canny", params) == {"lowThreshold": 50, "highThreshold": 200}
    assert table.api_fields("depth", params) == {}
    assert table.api_fields("grayscale", params) == {
        "factor": 2.0, "minThreshold": 0, "maxThreshold": 255, "removeBackground": False,
    }
    assert table.api_fields("pose", {"keypoint_threshold": 0.5}) == {"keypointThreshold": 0.5}


@pytest.mark.parametrize(
    ("modality", "params", "fragment"),
    [
        ("canny", {"low_threshold": 201, "high_threshold": 200}, "low_threshold (201) is greater than high_threshold"),
        ("grayscale", {"min_threshold": 90, "max_threshold": 10}, "min_threshold (90) is greater than max_threshold"),
        ("canny", {"low_threshold": 300}, "above its maximum 255"),
        ("pose", {"keypoint_threshold": -0.1}, "below its minimum 0"),
        ("pose", {"keypoint_threshold": float("nan")}, "got NaN"),
        ("canny", {"remove_background": "yes"}, "true or false"),
        ("blur", {}, "modality must be one of"),
    ],
)
def test_validation_messages_name_the_problem(modality, params, fragment):
    errors = table.validation_errors(modality, params)
    assert any(fragment in e for e in errors), errors


def test_validation_accepts_equal_bounds_and_ignores_other_modalities_pairs():
    assert table.validation_errors("canny", {"low_threshold": 120, "high_threshold": 120}) == []
    # Hidden grayscale widgets must not block a canny run.
    assert table.validation_errors("canny", {"min_threshold": 200, "max_threshold": 10}) == []


def test_local_methods_resolve_or_explain():
    assert all(m.local_methods for m in table.MODALITIES.values())  # every modality runs locally
    assert table.resolve_local_method("canny").name == "opencv_canny"
    with pytest.raises(ValueError, match="does not apply to modality 'canny'"):
        table.resolve_local_method("canny", "xdog")
    names = table.all_local_method_names()
    assert names[0] == "auto" and len(names) == len(set(names))


def test_node_id_is_namespaced_and_frozen() -> None:
    # Saved workflows and API prompts name the node by this id: changing it breaks every one of them.
    from pathlib import Path

    from scenario_detect.nodes.modalities import NODE_ID

    assert NODE_ID == "ScenarioDetect"
    root = Path(__file__).resolve().parent.parent
    assert f'const NODE_CLASS = "{NODE_ID}";' in (root / "web" / "detect_widgets.js").read_text()
    workflow = json.loads((root / "example_workflows" / "detect_canny.json").read_text())
    assert NODE_ID in {node["type"] for node in workflow["nodes"]}

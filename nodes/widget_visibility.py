"""Which Detect widgets apply to which modality and backend (and, for the network options such as
``resolution``, which local method), derived from the table.

The web extension (``web/detect_widgets.js``) hides the widgets that do not apply. It reads these
rules from the node definition itself: ``annotate_inputs`` stores them as extra option keys on each
schema input, so they travel in ``/object_info`` (and ``nodeData`` in the frontend) with no second
hand-written copy in JS and no extra route. Widgets without rules (``modality``, ``backend``) are
always shown. Hidden widgets keep their values and are still sent, so the rules are cosmetic: the
node must behave the same without the extension (HTTP API, old frontends).

Pure: no ComfyUI or torch import.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from . import modalities as table

# Option keys added to an input's spec in /object_info; the JS reads exactly these names.
MODALITIES_KEY = "detect_modalities"
BACKENDS_KEY = "detect_backends"
# On the local_method input only: per modality, the methods its combo offers, each with its label
# ({modality: {method: label}}, "auto" first). The combo itself keeps every name, so the HTTP API and
# old frontends accept any valid method; the extension narrows what the user is offered.
METHODS_KEY = "detect_local_methods"
# On the network options (``resolution``) only: per modality, the `local_method` values that run a
# network ({modality: ["auto", "mlsd_large", ...]}, "auto" when the modality's default is one). The
# widget shows only when the current modality's entry holds the current method.
FOR_METHODS_KEY = "detect_for_methods"

LOCAL = "local"  # the backend that runs on this machine; every other one is remote
LOCAL_METHOD_WIDGET = "local_method"


def network_method_rules() -> dict[str, list[str]]:
    """Per modality with a network method, the `local_method` values the network options apply to."""
    return {m.name: table.network_methods(m) for m in table.MODALITIES.values() if table.network_methods(m)}


def widget_rules() -> dict[str, dict[str, list[str]]]:
    """Per widget name, the modalities and backends it applies to.

    Only widgets that are sometimes hidden are listed; any widget not listed is always shown.
    """
    all_modalities = list(table.MODALITY_NAMES)
    backends = list(table.BACKENDS)
    rules: dict[str, dict[str, list[str]]] = {}
    for name in table.PARAMS:
        # Tuning params are sent to the API and used by the local method alike: both backends.
        rules[name] = {
            "modalities": [m.name for m in table.MODALITIES.values() if name in m.params],
            "backends": backends,
        }
    rules[LOCAL_METHOD_WIDGET] = {
        "modalities": [m.name for m in table.MODALITIES.values() if m.local_methods],
        "backends": [LOCAL] if LOCAL in backends else backends,
    }
    for name in table.NETWORK_PARAMS:
        # Local networks only: the API has no such field. FOR_METHODS_KEY narrows it to their methods.
        rules[name] = {"modalities": list(network_method_rules()), "backends": [LOCAL]}
    remote_backends = [b for b in backends if b != LOCAL]
    for name in table.REMOTE_OPTIONS:
        rules[name] = {"modalities": all_modalities, "backends": remote_backends}
    return rules


def method_label(method: table.LocalMethod) -> str:
    """How the combo shows a method: its name and what its first run costs."""
    if not method.needs_weights:
        return f"{method.name} · weight-free"
    return f"{method.name} · {method.download} download" if method.download else f"{method.name} · downloads weights"


def local_method_choices() -> dict[str, dict[str, str]]:
    """Per modality with local methods: ``auto`` (naming the method it picks) then each method, labelled."""
    choices: dict[str, dict[str, str]] = {}
    for modality in table.MODALITIES.values():
        if not modality.local_methods:
            continue
        default = modality.local_methods[0]
        labels = {table.AUTO_METHOD: f"{table.AUTO_METHOD} → {method_label(default)}"}
        labels.update({m.name: method_label(m) for m in modality.local_methods})
        choices[modality.name] = labels
    return choices


def annotate_inputs(inputs: Iterable[Any]) -> list[Any]:
    """Attach the visibility rules to V3 schema inputs (``io.*.Input``) and return them as a list.

    Every V3 ``Input`` has an ``extra_dict`` whose keys ``as_dict()`` merges into the input's
    options (ComfyUI 0.3.75 and later), but the widget ``Input`` constructors do not take it as an
    argument in 0.3.75, so it is set on the object here.
    """
    annotated = list(inputs)
    rules = widget_rules()
    for item in annotated:
        name = getattr(item, "id", None)
        if name not in rules:
            continue
        extra = dict(getattr(item, "extra_dict", None) or {})
        extra[MODALITIES_KEY] = list(rules[name]["modalities"])
        extra[BACKENDS_KEY] = list(rules[name]["backends"])
        if name == LOCAL_METHOD_WIDGET:
            extra[METHODS_KEY] = local_method_choices()
        if name in table.NETWORK_PARAMS:
            extra[FOR_METHODS_KEY] = network_method_rules()
        item.extra_dict = extra
    return annotated

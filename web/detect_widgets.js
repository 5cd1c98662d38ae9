// Detect node: show only the widgets that apply to the selected modality and backend, and show
// the remote job's status/cost text after a run.
//
// Purely cosmetic: hidden widgets keep their values and are still serialised and sent, so a
// workflow behaves the same without this file (HTTP API, older frontends).
//
// The rules are not written here: the node definition carries them. Each input that is sometimes
// hidden has the option keys `detect_modalities` / `detect_backends` in /object_info, built from
// nodes/modalities.py by nodes/widget_visibility.py. A widget without them is always shown.
//
// The network options (`resolution`) also carry `detect_for_methods` ({modality: [method, ...]}): they
// show only while the local method is one of those (a network; "auto" where the default is one).
//
// The method combo offers only the chosen modality's methods: the input that carries
// `detect_local_methods` ({modality: {method: label}}, "auto" first) is narrowed to them, each shown
// with its label (weight-free, or its download size). The node definition still lists every method,
// so the HTTP API accepts any valid name; a saved workflow whose method the modality no longer offers
// keeps its value and the combo says what to pick instead.
import { app } from "../../scripts/app.js";

const NODE_CLASS = "ScenarioDetect";
const MODALITIES_KEY = "detect_modalities";
const BACKENDS_KEY = "detect_backends";
const METHODS_KEY = "detect_local_methods";
const FOR_METHODS_KEY = "detect_for_methods";
const STATUS_WIDGET = "detect_status";

// Read the per-widget rules from a V1 node definition (/object_info entry).
function rulesFromNodeDef(nodeData) {
  const rules = new Map();
  for (const section of ["required", "optional"]) {
    const inputs = nodeData?.input?.[section] ?? {};
    for (const [name, spec] of Object.entries(inputs)) {
      const options = Array.isArray(spec) ? spec[1] : undefined;
      if (!options || typeof options !== "object") continue;
      const modalities = options[MODALITIES_KEY];
      const backends = options[BACKENDS_KEY];
      if (!Array.isArray(modalities) && !Array.isArray(backends)) continue;
      const rule = {
        modalities: Array.isArray(modalities) ? modalities : null,
        backends: Array.isArray(backends) ? backends : null,
      };
      const forMethods = options[FOR_METHODS_KEY];
      if (forMethods && typeof forMethods === "object") rule.methods = forMethods;
      rules.set(name, rule);
    }
  }
  return rules;
}

// The method widget's per-modality choices from a V1 node definition: {widget, byModality} or null.
function methodChoicesFromNodeDef(nodeData) {
  for (const section of ["required", "optional"]) {
    const inputs = nodeData?.input?.[section] ?? {};
    for (const [name, spec] of Object.entries(inputs)) {
      const table = Array.isArray(spec) ? spec[1]?.[METHODS_KEY] : undefined;
      if (table && typeof table === "object") return { widget: name, byModality: table };
    }
  }
  return null;
}

// Offer the modality's methods. `modalityChanged`: the user picked another modality, so a method
// of the old one becomes "auto"; on load the saved value is kept and its label says what to pick.
function applyMethodChoices(node, methods, modalityChanged = false) {
  const widget = methods && node.widgets?.find((w) => w.name === methods.widget);
  if (!widget?.options || typeof widget.options !== "object") return;
  if (!widget.__detectAllValues) widget.__detectAllValues = widget.options.values;
  const modality = widgetValue(node, "modality");
  const labels = Object.hasOwn(methods.byModality, modality) ? methods.byModality[modality] : null;
  if (!labels) {
    // A modality without local methods (the widget is hidden then): the full list, plain names.
    widget.options.values = widget.__detectAllValues;
    delete widget.options.getOptionLabel;
    return;
  }
  const offered = Object.keys(labels);
  if (modalityChanged && !offered.includes(widget.value)) widget.value = offered[0];
  widget.options.values = offered;
  widget.options.getOptionLabel = (value) => {
    if (value == null) return "";
    if (Object.hasOwn(labels, value)) return labels[value];
    // The action first: a narrow node cuts the end of the text.
    return `⚠ pick ${offered.join(", ")} (${value} is not a ${modality} method)`;
  };
}

// Litegraph with LGraphNode.isWidgetVisible (1.32 and later) skips `widget.hidden` widgets when
// drawing; older ones need the historic trick of a changed type. Both get a zero-height
// computeSize: the 1.32 layout (LGraphNode.arrange) still reserves room for hidden widgets.
function frontendHonoursHidden() {
  const proto = globalThis.LGraphNode?.prototype ?? globalThis.LiteGraph?.LGraphNode?.prototype;
  return typeof proto?.isWidgetVisible === "function";
}

const ZERO_SIZE = () => [0, -4]; // litegraph adds 4 px per widget: -4 makes it take no room

function setWidgetShown(widget, shown) {
  if (!widget.__detectSaved) {
    // Keep what is needed to bring the widget back exactly as it was.
    const own = Object.prototype.hasOwnProperty.call(widget, "computeSize");
    widget.__detectSaved = { type: widget.type, ownComputeSize: own ? widget.computeSize : undefined, own };
  }
  const saved = widget.__detectSaved;
  const legacy = !frontendHonoursHidden();
  widget.hidden = !shown;
  // Frontend 1.32's Vue nodes ("Nodes 2.0") read `options.hidden` instead (newer ones read both).
  if (widget.options && typeof widget.options === "object") widget.options.hidden = !shown;
  if (shown) {
    if (saved.own) widget.computeSize = saved.ownComputeSize;
    else delete widget.computeSize;
    if (legacy) widget.type = saved.type;
  } else {
    widget.computeSize = ZERO_SIZE;
    if (legacy) widget.type = "hidden";
  }
}

function widgetValue(node, name) {
  return node.widgets?.find((w) => w.name === name)?.value;
}

function applies(rule, modality, backend, method) {
  if (rule.modalities && modality != null && !rule.modalities.includes(modality)) return false;
  // No backend widget (or an unknown value): do not filter on it.
  if (rule.backends && backend != null && !rule.backends.includes(backend)) return false;
  if (rule.methods && modality != null && method != null) {
    const methods = Object.hasOwn(rule.methods, modality) ? rule.methods[modality] : [];
    if (!methods.includes(method)) return false;
  }
  return true;
}

function applyVisibility(node, rules) {
  if (!node.widgets || rules.size === 0) return;
  const modality = widgetValue(node, "modality");
  const backend = widgetValue(node, "backend");
  const method = widgetValue(node, "local_method");
  let changed = false;
  for (const widget of node.widgets) {
    const rule = rules.get(widget.name);
    if (!rule) continue;
    // A widget converted to an input socket (older frontends) is driven by a link: leave it.
    if (widget.type === "converted-widget") continue;
    const shown = applies(rule, modality, backend, method);
    if (!widget.hidden !== shown) {
      setWidgetShown(widget, shown);
      changed = true;
    }
  }
  if (changed) {
    refreshVueNode(node);
    fitHeight(node);
  }
}

// Vue nodes (frontend 1.32) re-render a node's widgets only when its widgets array changes, not
// when a widget's flag does: take the widgets out and put them back, in place and in order.
function refreshVueNode(node) {
  if (!globalThis.LiteGraph?.vueNodesMode || !Array.isArray(node.widgets)) return;
  const widgets = node.widgets.splice(0, node.widgets.length);
  node.widgets.push(...widgets);
}

function fitHeight(node) {
  if (typeof node.computeSize !== "function" || typeof node.setSize !== "function") return;
  const min = node.computeSize();
  node.setSize([Math.max(node.size?.[0] ?? 0, min[0]), min[1]]);
  node.setDirtyCanvas?.(true, true);
  node.graph?.setDirtyCanvas?.(true, true);
}

// The classic canvas cuts a combo's text that does not fit ("auto → depth_anything_v2 · 99 MB "):
// widen the node (never narrow it) to the longest method label of any modality, measured in the font
// litegraph draws widgets with. Chrome: 4 margins of 15 px, arrows and padding 25, gap 5, slack 12.
const COMBO_CHROME_PX = 4 * 15 + 25 + 5 + 12;

function fitMethodLabels(node, methods) {
  const widget = methods && node.widgets?.find((w) => w.name === methods.widget);
  if (!widget || typeof node.setSize !== "function" || !(node.size?.length >= 2)) return;
  const ctx = document.createElement("canvas").getContext("2d");
  if (!ctx) return;
  ctx.font = `normal ${globalThis.LiteGraph?.NODE_SUBTEXT_SIZE ?? 12}px ${globalThis.LiteGraph?.NODE_FONT ?? "Arial"}`;
  const labels = Object.values(methods.byModality).flatMap((byMethod) => Object.values(byMethod));
  const widest = Math.max(0, ...labels.map((label) => ctx.measureText(String(label)).width));
  const needed = Math.ceil(ctx.measureText(widget.label ?? widget.name).width + widest + COMBO_CHROME_PX);
  if (node.size[0] < needed) node.setSize([needed, node.size[1]]);
}

// The method combo's choices, then which widgets show: both follow the modality (and backend).
function refresh(node, rules, methods, modalityChanged = false) {
  applyMethodChoices(node, methods, modalityChanged);
  applyVisibility(node, rules);
  fitMethodLabels(node, methods);
}

// A node created, configured or loaded: watch its combos and apply the current values.
function attach(node, rules, methods) {
  watchCombos(node, rules, methods);
  refresh(node, rules, methods);
}

// Re-apply when the modality, backend or method combo changes (wrapping, not replacing, the callback).
function watchCombos(node, rules, methods) {
  for (const name of ["modality", "backend", "local_method"]) {
    const widget = node.widgets?.find((w) => w.name === name);
    if (!widget || widget.__detectWatched) continue;
    widget.__detectWatched = true;
    const original = widget.callback;
    widget.callback = function (...args) {
      const result = original?.apply(this, args);
      refresh(node, rules, methods, name === "modality");
      return result;
    };
  }
}

// The remote job's status/cost text, when the node returns ui={"text": [...]}.
function showStatus(node, output) {
  const lines = output?.text;
  if (!Array.isArray(lines) || lines.length === 0) return;
  // One line: a litegraph text widget draws a single line (and is the same in every frontend).
  const text = lines.map(String).join(" · ");
  let widget = node.widgets?.find((w) => w.name === STATUS_WIDGET);
  if (!widget) {
    if (typeof node.addWidget !== "function") return;
    // serialize:false keeps it out of the prompt and of widgets_values (saved workflows).
    widget = node.addWidget("text", STATUS_WIDGET, text, () => {}, { serialize: false });
    widget.serialize = false;
    widget.label = "status";
    // Read-only: an edit is undone at once (`disabled` would also grey out the text in 1.32).
    widget.callback = () => {
      widget.value = widget.__detectText;
    };
  }
  widget.__detectText = text;
  widget.value = text;
  fitHeight(node);
}

app.registerExtension({
  name: "scenario.detect.widgets",

  async beforeRegisterNodeDef(nodeType, nodeData) {
    if (nodeData?.name !== NODE_CLASS) return;
    const rules = rulesFromNodeDef(nodeData);
    const methods = methodChoicesFromNodeDef(nodeData);
    // Exposed for tests and debugging: the exact rules this extension applies.
    nodeType.detectWidgetRules = rules;
    nodeType.detectMethodChoices = methods;

    const onNodeCreated = nodeType.prototype.onNodeCreated;
    nodeType.prototype.onNodeCreated = function (...args) {
      const result = onNodeCreated?.apply(this, args);
      attach(this, rules, methods);
      return result;
    };

    // Covers loading a saved workflow, pasting and undo/redo: all go through configure().
    const onConfigure = nodeType.prototype.onConfigure;
    nodeType.prototype.onConfigure = function (...args) {
      const result = onConfigure?.apply(this, args);
      attach(this, rules, methods);
      return result;
    };

    const onExecuted = nodeType.prototype.onExecuted;
    nodeType.prototype.onExecuted = function (output, ...rest) {
      const result = onExecuted?.apply(this, [output, ...rest]);
      showStatus(this, output);
      return result;
    };
  },

  // Also re-apply after a whole workflow has loaded (values are all set by then).
  loadedGraphNode(node) {
    const rules = node?.constructor?.detectWidgetRules;
    if (node?.comfyClass !== NODE_CLASS || !rules) return;
    const methods = node.constructor.detectMethodChoices;
    attach(node, rules, methods);
  },
});

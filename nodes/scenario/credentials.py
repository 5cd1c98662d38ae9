"""Where the Scenario API key, secret and address come from.

Never from a widget: ComfyUI writes every widget value into workflows and PNG metadata, so a key
typed into a node would leak into every shared image. Order of precedence:

1. ``SCENARIO_API_KEY`` + ``SCENARIO_API_SECRET`` in the environment;
2. the official SDK's names ``SCENARIO_SDK_API_KEY`` + ``SCENARIO_SDK_API_SECRET``;
3. a JSON file ``{"api_key": "...", "api_secret": "..."}`` at :func:`config_path` (or the file
   named by ``SCENARIO_DETECT_CONFIG``).

``SCENARIO_BASE_URL`` (environment, then the file's ``base_url``) overrides the API address.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .. import host
from .errors import ScenarioAuthError

DEFAULT_BASE_URL = "https://api.cloud.scenario.com/v1"
CONFIG_ENV = "SCENARIO_DETECT_CONFIG"
ENV_PAIRS = (
    ("SCENARIO_API_KEY", "SCENARIO_API_SECRET"),
    ("SCENARIO_SDK_API_KEY", "SCENARIO_SDK_API_SECRET"),
)


@dataclass(frozen=True)
class Credentials:
    api_key: str = field(repr=False)
    api_secret: str = field(repr=False)
    base_url: str = DEFAULT_BASE_URL
    source: str = ""  # where they were read from, for error messages (never the values)

    def secrets(self) -> tuple[str, ...]:
        """The strings that must never appear in a message or a log line."""
        return tuple(s for s in (self.api_key, self.api_secret) if s)


def config_path(env: Mapping[str, str] | None = None) -> Path:
    """The credentials file: ``<ComfyUI user dir>/scenario-detect/credentials.json`` inside ComfyUI,
    ``~/.config/scenario-detect/credentials.json`` for the CLI; ``SCENARIO_DETECT_CONFIG`` overrides."""
    env = os.environ if env is None else env
    if env.get(CONFIG_ENV):
        return Path(env[CONFIG_ENV]).expanduser()
    base = host.user_directory()
    if host.in_comfyui():
        base = base / "scenario-detect"
    return base / "credentials.json"


def where_keys_are_read(env: Mapping[str, str] | None = None) -> str:
    return (
        "Set SCENARIO_API_KEY and SCENARIO_API_SECRET (or SCENARIO_SDK_API_KEY and "
        "SCENARIO_SDK_API_SECRET) in the environment of the process (ComfyUI or the CLI), or write "
        f'{{"api_key": "...", "api_secret": "..."}} to {config_path(env)}. '
        "Keys are created at https://app.scenario.com (Settings > API keys)."
    )


def _read_config(path: Path) -> dict[str, str]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ScenarioAuthError(f"cannot read the Scenario credentials file {path}: {exc.strerror}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        # The position only, never the text: the file holds the secret.
        raise ScenarioAuthError(
            f"the Scenario credentials file {path} is not valid JSON (line {exc.lineno}); expected "
            '{"api_key": "...", "api_secret": "..."}'
        ) from None
    if not isinstance(data, dict):
        raise ScenarioAuthError(f'the Scenario credentials file {path} must hold a JSON object {{"api_key": ...}}')
    return {k: str(v).strip() for k, v in data.items() if isinstance(v, (str, int))}


def load_credentials(env: Mapping[str, str] | None = None) -> Credentials:
    """The key pair and API address, or a ScenarioAuthError that says where keys are read from."""
    env = os.environ if env is None else env
    path = config_path(env)
    file_data: dict[str, str] | None = None

    def from_file() -> dict[str, str]:
        nonlocal file_data
        if file_data is None:
            file_data = _read_config(path)
        return file_data

    base_url = (env.get("SCENARIO_BASE_URL") or "").strip()
    if not base_url:
        base_url = from_file().get("base_url", "") or DEFAULT_BASE_URL
    base_url = base_url.rstrip("/")

    for key_name, secret_name in ENV_PAIRS:
        key, secret = (env.get(key_name) or "").strip(), (env.get(secret_name) or "").strip()
        if key and secret:
            return Credentials(key, secret, base_url, f"environment ({key_name}/{secret_name})")
        if key or secret:
            missing = secret_name if key else key_name
            raise ScenarioAuthError(
                f"{missing} is not set while {key_name if key else secret_name} is: set both. "
                + where_keys_are_read(env)
            )
    data = from_file()
    key = data.get("api_key") or data.get("key") or ""
    secret = data.get("api_secret") or data.get("secret") or ""
    if key and secret:
        return Credentials(key, secret, base_url, f"file {path}")
    if key or secret:
        raise ScenarioAuthError(
            f"the Scenario credentials file {path} has {'api_key' if key else 'api_secret'} but not "
            f"{'api_secret' if key else 'api_key'}. " + where_keys_are_read(env)
        )
    raise ScenarioAuthError("no Scenario API key found. " + where_keys_are_read(env))

"""Where the Scenario API key, secret and address come from (never a widget: ComfyUI writes widget
values into workflows and PNG metadata).

Precedence: ``SCENARIO_API_KEY``/``SCENARIO_API_SECRET``, then the SDK's ``SCENARIO_SDK_API_KEY``/
``SCENARIO_SDK_API_SECRET``, then a JSON file ``{"api_key": "...", "api_secret": "..."}`` at
:func:`config_path` (``SCENARIO_DETECT_CONFIG`` overrides). Credentials stay with their address:
keys from the environment go to ``SCENARIO_BASE_URL`` or the default API and the file is then not
read at all (a stale, broken or planted file can neither block nor redirect them); the file's
``base_url`` applies to the file's own keys only. Errors about the file never quote it.
"""

from __future__ import annotations

import json
import logging
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .. import host
from .errors import ScenarioAuthError, ScenarioConfigError
from .urls import DEFAULT_BASE_URL, check_base_url

log = logging.getLogger("scenario_detect.scenario")

CONFIG_ENV = "SCENARIO_DETECT_CONFIG"
BASE_URL_ENV = "SCENARIO_BASE_URL"
ENV_PAIRS = (
    ("SCENARIO_API_KEY", "SCENARIO_API_SECRET"),
    ("SCENARIO_SDK_API_KEY", "SCENARIO_SDK_API_SECRET"),
)
# Every variable the pack reads a key or the API address from (the test harness removes them all).
CREDENTIAL_ENV = (*(name for pair in ENV_PAIRS for name in pair), CONFIG_ENV, BASE_URL_ENV)

_warned_modes: set[tuple[str, int]] = set()


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


_EXPECTED = '{"api_key": "...", "api_secret": "..."}'
MAX_CONFIG_BYTES = 64 * 1024  # a key pair and an address; anything far larger is not this file


def _read_config(path: Path) -> dict[str, str]:
    """The file's string fields ({} when it does not exist), or a ScenarioConfigError saying what is
    wrong. Raised outside ``except`` blocks: a decode error keeps the file's text as ``__context__``."""
    text, problem = _read_text(path)
    if problem is None and text is not None:
        _warn_if_shared(path)
        data, problem = _parse_json(text, path)
    if problem is not None:
        raise ScenarioConfigError(problem)
    if text is None:
        return {}
    wrong = sorted(
        k for k in ("api_key", "api_secret", "key", "secret", "base_url") if k in data and not isinstance(data[k], str)
    )
    if wrong:
        raise ScenarioConfigError(
            f"in the Scenario credentials file {path}, {', '.join(wrong)} must be text (a JSON string in quotes)."
        )
    return {k: v.strip() for k, v in data.items() if isinstance(v, str)}


def _read_text(path: Path) -> tuple[str | None, str | None]:
    """(the file's text or None when it does not exist, what is wrong with it or None)."""
    try:
        info = path.stat()
        if stat.S_ISREG(info.st_mode) and info.st_size > MAX_CONFIG_BYTES:
            size = info.st_size
            return None, f"the Scenario credentials file {path} is {size} bytes; expected a small file {_EXPECTED}."
        if not stat.S_ISREG(info.st_mode) and not stat.S_ISDIR(info.st_mode):
            # A FIFO or a device would block the read (and ComfyUI with it), or never end.
            return None, f"the Scenario credentials file {path} is not a regular file; expected a file {_EXPECTED}."
        return path.read_text(encoding="utf-8"), None
    except FileNotFoundError:
        return None, None
    except IsADirectoryError:
        return None, f"the Scenario credentials file {path} is a folder; expected a file {_EXPECTED}."
    except UnicodeDecodeError:
        return None, f"the Scenario credentials file {path} is not UTF-8 text; expected {_EXPECTED}."
    except OSError as exc:
        return None, (
            f"cannot read the Scenario credentials file {path}: {exc.strerror or type(exc).__name__}. "
            "Check its permissions (it must be readable by the user running ComfyUI or the CLI)."
        )


def _parse_json(text: str, path: Path) -> tuple[dict, str | None]:
    """(the JSON object, None) or ({}, what is wrong): the position only, never the text."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        return {}, (
            f"the Scenario credentials file {path} is not valid JSON (line {exc.lineno}, column {exc.colno}); "
            f"expected {_EXPECTED}."
        )
    if not isinstance(data, dict):
        return {}, (
            f"the Scenario credentials file {path} holds a JSON {type(data).__name__}; expected an object {_EXPECTED}."
        )
    return data, None


def _warn_if_shared(path: Path) -> None:
    """Warn (once per file and mode) when other users of the machine can read the secret."""
    if os.name != "posix":
        return
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError:
        return
    if mode & 0o077 and (str(path), mode) not in _warned_modes:
        _warned_modes.add((str(path), mode))
        log.warning(
            "the Scenario credentials file %s can be read by other users of this machine (mode %o); "
            "restrict it with: chmod 600 %s",
            path,
            mode,
            path,
        )


def _env_pair(env: Mapping[str, str]) -> tuple[str, str, str] | None:
    """(key, secret, source) from the first variable pair that is set; raises on half a pair."""
    for key_name, secret_name in ENV_PAIRS:
        key, secret = (env.get(key_name) or "").strip(), (env.get(secret_name) or "").strip()
        if key and secret:
            return key, secret, f"environment ({key_name}/{secret_name})"
        if key or secret:
            missing = secret_name if key else key_name
            raise ScenarioAuthError(
                f"{missing} is not set while {key_name if key else secret_name} is: set both. "
                + where_keys_are_read(env)
            )
    return None


def load_credentials(env: Mapping[str, str] | None = None) -> Credentials:
    """The key pair and API address, or a ScenarioAuthError that says where keys are read from
    (a ScenarioConfigError, its subclass, when a file or an address is unusable). Keys from the
    environment never meet the file (see the module docstring)."""
    env = os.environ if env is None else env
    env_url = (env.get(BASE_URL_ENV) or "").strip()
    pair = _env_pair(env)
    if pair is not None:
        key, secret, source = pair
        base_url = check_base_url(env_url, BASE_URL_ENV) if env_url else DEFAULT_BASE_URL
        return Credentials(key, secret, base_url, source)
    path = config_path(env)
    data = _read_config(path)
    if env_url:
        base_url = check_base_url(env_url, BASE_URL_ENV)
    elif data.get("base_url"):
        base_url = check_base_url(data["base_url"], f"base_url in {path}")
    else:
        base_url = DEFAULT_BASE_URL
    key = data.get("api_key") or data.get("key") or ""
    secret = data.get("api_secret") or data.get("secret") or ""
    if key and secret:
        return Credentials(key, secret, base_url, f"file {path}")
    if key or secret:
        raise ScenarioConfigError(
            f"the Scenario credentials file {path} has {'api_key' if key else 'api_secret'} but not "
            f"{'api_secret' if key else 'api_key'}. " + where_keys_are_read(env)
        )
    if path.exists():
        raise ScenarioConfigError(
            f"the Scenario credentials file {path} has no api_key and api_secret. " + where_keys_are_read(env)
        )
    raise ScenarioAuthError("no Scenario API key found. " + where_keys_are_read(env))

"""The on-disk result cache: keys that separate API addresses and accounts (never holding a key),
and damaged entries that read as misses and are replaced, never an error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scenario_detect.nodes.scenario.cache import ResultCache, account_id, cache_key, default_cache_dir
from scenario_detect.nodes.scenario.credentials import Credentials

PROD = Credentials("key-id-of-alice", "alice-secret-value", "https://api.cloud.scenario.com/v1", "env")
REQUEST = dict(modality="canny", fields={"lowThreshold": 100}, original_assets=False)


def _key(credentials: Credentials, **extra) -> str:
    return cache_key(credentials=credentials, **REQUEST, pixels=b"\1\2\3", shape=(1, 1, 3), **extra)


def test_the_key_separates_api_addresses_and_accounts_but_not_secrets():
    base = _key(PROD)
    assert _key(PROD) == base
    assert _key(Credentials(PROD.api_key, "another-secret", PROD.base_url + "/")) == base  # same account, same API
    assert _key(Credentials(PROD.api_key, PROD.api_secret, "https://staging.example/v1")) != base
    assert _key(Credentials("key-id-of-bob", PROD.api_secret, PROD.base_url)) != base
    by_asset = cache_key(credentials=PROD, **REQUEST, asset_id="asset_1")
    assert cache_key(credentials=Credentials("key-id-of-bob", "s", PROD.base_url), **REQUEST, asset_id="asset_1") != (
        by_asset
    )


def test_the_account_is_a_hash_of_the_key_id():
    account = account_id(PROD)
    assert len(account) == 16 and account == account_id(Credentials(PROD.api_key, "other", "https://x/v1"))
    assert PROD.api_key not in account and account != account_id(Credentials("key-id-of-bob", "s"))


def test_credentials_are_required_for_a_key():
    with pytest.raises(TypeError):
        cache_key(**REQUEST, pixels=b"\1")  # type: ignore[call-arg]


def test_no_key_or_secret_is_written_to_the_cache(tmp_path: Path):
    cache = ResultCache(tmp_path)
    cache.put(_key(PROD), b"\x89PNG-bytes", ["asset_1"], 2.0)
    for path in tmp_path.rglob("*"):
        assert PROD.api_key not in path.name
        if path.is_file():
            data = path.read_bytes()
            assert PROD.api_key.encode() not in data and PROD.api_secret.encode() not in data


def _entry_files(cache: ResultCache, key: str) -> tuple[Path, Path]:
    folder = cache.directory / key[:2]
    return folder / f"{key}.png", folder / f"{key}.json"


DAMAGE = {
    "meta not JSON": lambda image, meta: meta.write_text("{not json"),
    "meta a list": lambda image, meta: meta.write_text("[1, 2]"),
    "size differs": lambda image, meta: image.write_bytes(b"short"),
    "ids not a list": lambda image, meta: meta.write_text(json.dumps({"size": 10, "asset_ids": "asset_1"})),
    "ids not text": lambda image, meta: meta.write_text(json.dumps({"size": 10, "asset_ids": [1]})),
    "cost not a number": lambda image, meta: meta.write_text(
        json.dumps({"size": 10, "asset_ids": ["a"], "cost": "free"})
    ),
    "image missing": lambda image, meta: image.unlink(),
    "meta missing": lambda image, meta: meta.unlink(),
    "meta not UTF-8": lambda image, meta: meta.write_bytes(b"\xff\xfe\x00"),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_entry_is_a_miss_and_is_replaced(tmp_path: Path, damage: str):
    cache = ResultCache(tmp_path)
    key = _key(PROD)
    cache.put(key, b"0123456789", ["asset_1"], 2.0)
    assert cache.get(key).asset_ids == ["asset_1"]
    image, meta = _entry_files(cache, key)
    DAMAGE[damage](image, meta)
    assert cache.get(key) is None
    assert not image.exists() and not meta.exists()  # deleted: it cannot be served later
    cache.put(key, b"abcdefghij", ["asset_2"], None)
    again = cache.get(key)
    assert again is not None and (again.content, again.asset_ids, again.cost) == (b"abcdefghij", ["asset_2"], None)


def test_an_entry_blocked_by_a_folder_is_a_miss_and_put_does_not_raise(tmp_path: Path, caplog):
    cache = ResultCache(tmp_path)
    key = _key(PROD)
    image, meta = _entry_files(cache, key)
    image.mkdir(parents=True)  # something odd sits where the entry goes
    meta.write_text("{}")
    assert cache.get(key) is None
    cache.put(key, b"0123456789", ["asset_1"], 1.0)  # cannot write: warned, not raised
    assert "cannot write" in caplog.text
    assert cache.get(key) is None


def test_outside_comfyui_the_cache_lives_in_the_user_cache_folder(tmp_path: Path, monkeypatch):
    monkeypatch.delenv("SCENARIO_DETECT_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_cache_dir() == tmp_path / "scenario-detect" / "scenario-results"
    monkeypatch.setenv("SCENARIO_DETECT_CACHE_DIR", str(tmp_path / "mine"))
    assert default_cache_dir() == tmp_path / "mine"

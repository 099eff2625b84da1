"""Gateway keys: digests only, both headers, names, model allow-lists, expiry, atomic replacement."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from service.core.auth import CallerKey, KeyChecker, hash_key, new_key
from service.core.errors import AuthenticationFailed
from service.core.exchange import ANONYMOUS, Caller

KEY = "cgk-unit-test-key-0123456789abcdefghijklmnopq"


def checker(*keys: CallerKey) -> KeyChecker:
    return KeyChecker(keys)


def test_without_keys_everyone_is_anonymous() -> None:
    assert not KeyChecker().enabled
    assert KeyChecker().check(None) is ANONYMOUS


def test_only_the_digest_is_kept() -> None:
    keys = checker(CallerKey(hash_key(KEY), Caller("team")))
    assert KEY not in repr(keys.__dict__) and KEY not in repr(list(keys._by_digest.values()))
    assert hash_key(KEY).startswith("sha256:") and len(hash_key(KEY)) == 7 + 64


@pytest.mark.parametrize(
    ("authorization", "api_key", "name"),
    [
        (f"Bearer {KEY}", None, "team"),
        (f"bearer   {KEY}  ", None, "team"),
        (None, KEY, "team"),
        ("Basic abc", KEY, "team"),  # another scheme: the x-api-key header decides
        (f"Bearer {KEY}", "something-else", "team"),  # Authorization wins
    ],
)
def test_a_key_is_accepted_from_either_header(authorization: str | None, api_key: str | None, name: str) -> None:
    assert checker(CallerKey(hash_key(KEY), Caller(name))).check(authorization, api_key).name == name


@pytest.mark.parametrize(
    ("authorization", "api_key", "says"),
    [
        (None, None, "Missing API key"),
        ("Bearer ", "", "Missing API key"),
        ("Token " + KEY, None, "Missing API key"),
        ("Bearer wrong", None, "Invalid API key"),
        (None, KEY + "x", "Invalid API key"),
    ],
)
def test_a_missing_or_wrong_key_is_refused_without_echoing_it(
    authorization: str | None, api_key: str | None, says: str
) -> None:
    with pytest.raises(AuthenticationFailed) as caught:
        checker(CallerKey(hash_key(KEY), Caller("team"))).check(authorization, api_key)
    assert says in caught.value.message and KEY not in caught.value.message and "wrong" not in caught.value.message


def test_an_expired_key_is_refused_by_name() -> None:
    past = datetime.now(UTC) - timedelta(seconds=1)
    keys = checker(CallerKey(hash_key(KEY), Caller("old-team"), expires=past))
    with pytest.raises(AuthenticationFailed, match=r"old-team.*expired"):
        keys.check(f"Bearer {KEY}")
    future = datetime.now(UTC) + timedelta(days=1)
    assert checker(CallerKey(hash_key(KEY), Caller("t"), expires=future)).check(f"Bearer {KEY}").name == "t"


@pytest.mark.parametrize(
    ("models", "model", "allowed"),
    [
        ((), "claude-opus-4-7", True),
        (("claude-haiku-*",), "claude-haiku-4-5", True),
        (("claude-haiku-*",), "claude-sonnet-4-5", False),
        (("claude-sonnet-4-5", "claude-opus-*"), "claude-opus-4-7", True),
        (("claude-sonnet-4-5",), "claude-sonnet-4-5-20250929", False),  # exact unless a pattern says more
    ],
)
def test_model_allow_lists(models: tuple[str, ...], model: str, allowed: bool) -> None:
    assert Caller("t", models).may_use(model) is allowed


def test_replacing_the_keys_is_all_at_once() -> None:
    keys = checker(CallerKey.plain(KEY))
    other = new_key()
    assert other.startswith("cgk-") and len(other) > 40
    keys.replace([CallerKey.plain(other, "new")])
    assert keys.check(f"Bearer {other}").name == "new"
    with pytest.raises(AuthenticationFailed):
        keys.check(f"Bearer {KEY}")


def test_a_plain_key_is_named_after_its_digest_never_itself() -> None:
    name = CallerKey.plain(KEY).caller.name
    assert name == "key-" + hash_key(KEY)[7:15] and KEY[:8] not in name

"""Gateway keys from settings and files (checked, fail closed at start, kept on a bad reload), and the
`chatgate keys`, `--version` and help commands."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from service.app.callers import KeyReloader, load_keys
from service.app.config import ConfigError, load_settings
from service.core.auth import KeyChecker, hash_key
from service.core.errors import AuthenticationFailed
from tests.support import ROOT

KEY = "cgk-callers-test-0123456789abcdefghijklmnopq"


def settings_with(tmp_path: Path, keys_toml: str, env: dict[str, str] | None = None) -> object:
    path = tmp_path / "keys.toml"
    path.write_text(keys_toml)
    return load_settings({}, {"CHATGATE_KEYS_FILE": str(path), **(env or {})})


def test_named_keys_from_the_keys_file_the_config_file_and_the_environment(tmp_path: Path) -> None:
    config = tmp_path / "chatgate.toml"
    config.write_text(f'[[auth.keys]]\nname = "from-config"\nhash = "{hash_key(KEY + "c")}"\n')
    keys_file = tmp_path / "keys.toml"
    keys_file.write_text(
        f'[[keys]]\nname = "team"\nhash = "{hash_key(KEY)}"\nmodels = ["claude-haiku-*"]\nexpires = 2030-01-31\n'
    )
    settings = load_settings(
        {"config": str(config)}, {"CHATGATE_KEYS_FILE": str(keys_file), "CHATGATE_API_KEYS": KEY + "p"}
    )
    keys = {k.caller.name: k for k in load_keys(settings)}
    assert set(keys) == {"from-config", "team", "key-" + hash_key(KEY + "p")[7:15]}
    assert keys["team"].caller.models == ("claude-haiku-*",)
    assert keys["team"].expires is not None and keys["team"].expires.isoformat() == "2030-01-31T00:00:00+00:00"


@pytest.mark.parametrize(
    ("entry", "says"),
    [
        ('name = "t"\nhash = "md5:abc"', "hash: expected sha256:"),
        (f'hash = "{hash_key(KEY)}"', "name:"),
        ('name = "has space"\nkey = "k"', "name:"),
        ('name = "t"', "`hash` is required"),
        (f'name = "t"\nhash = "{hash_key(KEY)}"\nmodels = "all"', "models: expected a list"),
        (f'name = "t"\nhash = "{hash_key(KEY)}"\nexpires = "soon"', "expires: expected a date"),
        (f'name = "t"\nhash = "{hash_key(KEY)}"\nrole = "admin"', "unknown key `role`"),
    ],
)
def test_a_bad_entry_names_itself(tmp_path: Path, entry: str, says: str) -> None:
    settings = settings_with(tmp_path, f"[[keys]]\n{entry}\n")
    with pytest.raises(ConfigError, match=r"keys\[0\]") as caught:
        load_keys(settings)  # type: ignore[arg-type]
    assert says in str(caught.value) and KEY not in str(caught.value)


def test_one_name_for_two_keys_is_refused(tmp_path: Path) -> None:
    two = "".join(f'[[keys]]\nname = "same"\nhash = "{hash_key(k)}"\n' for k in (KEY, KEY + "2"))
    with pytest.raises(ConfigError, match="`same` is used by two different keys"):
        load_keys(settings_with(tmp_path, two))  # type: ignore[arg-type]


def test_a_keys_file_means_keys_are_configured_for_a_public_host(tmp_path: Path) -> None:
    settings = settings_with(tmp_path, "", {"CHATGATE_HOST": "0.0.0.0", "ANTHROPIC_API_KEY": "sk-ant-x"})
    assert settings.has_keys  # type: ignore[attr-defined]
    with pytest.raises(ConfigError, match="without API keys"):
        load_settings({}, {"CHATGATE_HOST": "0.0.0.0", "ANTHROPIC_API_KEY": "sk-ant-x"})


def test_the_reloader_follows_the_file_and_keeps_the_keys_on_a_bad_edit(tmp_path: Path) -> None:
    good = f'[[keys]]\nname = "team"\nhash = "{hash_key(KEY)}"\n'
    settings = settings_with(tmp_path, good)
    checker = KeyChecker(load_keys(settings))  # type: ignore[arg-type]
    path = tmp_path / "keys.toml"

    async def scenario() -> None:
        reloader = KeyReloader(settings, checker, interval=0.02)  # type: ignore[arg-type]
        reloader.start()
        try:
            path.write_text(good + f'[[keys]]\nname = "new"\nhash = "{hash_key(KEY + "n")}"\n')
            for _ in range(200):
                if len(checker) == 2:
                    break
                await asyncio.sleep(0.01)
            assert checker.check(f"Bearer {KEY}n").name == "new"
            path.write_text("[[keys]]\nname = 1\n")
            assert not reloader.reload("test")
            assert len(checker) == 2  # the keys in force stay
        finally:
            await reloader.stop()

    asyncio.run(scenario())


@pytest.mark.parametrize("content", ["", "# being rewritten\n"], ids=["empty", "comment_only"])
def test_a_reload_that_finds_no_keys_keeps_authentication_on(tmp_path: Path, content: str) -> None:
    """A keys file caught mid-write or an emptied Secret must never turn authentication off."""
    good = f'[[keys]]\nname = "team"\nhash = "{hash_key(KEY)}"\n'
    settings = settings_with(tmp_path, good)
    checker = KeyChecker(load_keys(settings))  # type: ignore[arg-type]
    (tmp_path / "keys.toml").write_text(content)
    reloader = KeyReloader(settings, checker, interval=60)  # type: ignore[arg-type]
    assert not reloader.reload("test")
    assert checker.enabled and len(checker) == 1
    with pytest.raises(AuthenticationFailed):
        checker.check(None)
    assert checker.check(f"Bearer {KEY}").name == "team"


def run_cli(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "service", *args],
        cwd=ROOT,
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
        env={"PYTHONPATH": f"{ROOT}:{ROOT / 'gen'}", "PATH": "/usr/bin:/bin"},
    )


def test_keys_create_prints_the_key_once_and_an_entry_that_admits_it(tmp_path: Path) -> None:
    made = run_cli("keys", "create", "--name", "search", "--models", "claude-haiku-*", "--expires", "2031-02-03")
    assert made.returncode == 0, made.stderr
    key = made.stderr.strip().rsplit(" ", 1)[-1]
    assert key.startswith("cgk-") and key not in made.stdout  # the entry holds the hash only
    (tmp_path / "keys.toml").write_text(made.stdout)
    settings = load_settings({}, {"CHATGATE_KEYS_FILE": str(tmp_path / "keys.toml")})
    caller = KeyChecker(load_keys(settings)).check(f"Bearer {key}")
    assert (caller.name, caller.models) == ("search", ("claude-haiku-*",))


def test_keys_hash_reads_the_key_from_stdin() -> None:
    hashed = run_cli("keys", "hash", "--name", "legacy", stdin=KEY + "\n")
    assert hashed.returncode == 0 and f'hash = "{hash_key(KEY)}"' in hashed.stdout and KEY not in hashed.stdout
    assert run_cli("keys", "create", "--name", "bad name").returncode == 2


def test_version_and_help_say_what_the_readme_says() -> None:
    version = run_cli("--version")
    assert version.returncode == 0 and version.stdout.startswith("chatgate ")
    top = run_cli("--help").stdout
    assert "``" not in top and "chatgate keys create" in top
    serve = run_cli("serve", "--help").stdout
    for variable in ("CHATGATE_API_KEYS", "ANTHROPIC_API_KEY", "CHATGATE_SIMULATOR", "CHATGATE_KEYS_FILE", "OTEL_"):
        assert variable in serve
    simulate = run_cli("simulate", "--help").stdout
    for directive in ("sim:words=N", "sim:status=CODE", "sim:echo_key", "sim:reset_after_stop"):
        assert directive in simulate

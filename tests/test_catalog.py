"""The catalog: the built-in table merged with the upstream's Models API and config, and retired names.

The listing is the simulator's own Models API output, which follows Anthropic's published schema.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from chatgate.v1 import chat_pb2
from service.app.catalog import build_catalog
from service.app.config import ConfigError, load_settings
from service.providers.anthropic.catalog import traits_of
from service.simulator.models import MODELS

LISTING = [model.to_json() for model in MODELS]
NEWCOMER: dict[str, Any] = {
    **LISTING[0],
    "id": "claude-lyric-1",
    "display_name": "Claude Lyric 1",
    "max_tokens": 96_000,
    "max_input_tokens": 400_000,
}


def settings(tmp_path: Path, toml: str = "") -> Any:
    path = tmp_path / "chatgate.toml"
    path.write_text(toml)
    return load_settings({"config": str(path)}, {})


def test_listed_models_update_their_built_in_entries(tmp_path: Path) -> None:
    catalog = build_catalog(settings(tmp_path), LISTING)
    haiku = catalog.resolve("claude-haiku-4-5")  # listed by its snapshot id
    assert (haiku.source, haiku.upstream_id, haiku.aliases, haiku.listed) == (
        "upstream",
        "claude-haiku-4-5-20251001",
        ("claude-haiku-4-5-20251001",),
        True,
    )
    opus = catalog.resolve("claude-opus-4-7")
    traits = traits_of(opus)
    assert (traits.thinking, traits.sampling, traits.display, traits.fast_mode) == (
        "adaptive_only",
        "none",
        "omitted",
        True,
    )
    assert traits.efforts == ("low", "medium", "high", "xhigh", "max")
    assert (
        traits_of(catalog.resolve("claude-fable-5")).thinking == "always"
    )  # the table knows what the API does not say
    assert catalog.resolve("claude-3.5-haiku").source == "built-in"  # retired: not listed, still known


def test_a_listed_model_the_table_lacks_is_added_with_its_limits_and_style(tmp_path: Path) -> None:
    catalog = build_catalog(settings(tmp_path), [*LISTING, NEWCOMER])
    model = catalog.resolve("claude-lyric-1")
    assert (model.max_output_tokens, model.context_window, model.display_name, model.provider) == (
        96_000,
        400_000,
        "Claude Lyric 1",
        "anthropic",
    )
    traits = traits_of(model)
    assert (traits.thinking, traits.sampling, traits.display) == ("adaptive_only", "none", "omitted")
    described = model.to_proto()
    assert described.thinking == chat_pb2.MODEL_THINKING_ADAPTIVE_ONLY and described.source == "upstream"


@pytest.mark.parametrize(
    "entry",
    [{"type": "model"}, {"id": "claude-x"}, {"id": "claude-x", "max_tokens": "many"}, {"id": 3, "max_tokens": 10}],
)
def test_listing_entries_without_an_id_or_limits_are_skipped(entry: dict[str, Any], tmp_path: Path) -> None:
    catalog = build_catalog(settings(tmp_path), [*LISTING, entry])
    assert len(catalog) == len(build_catalog(settings(tmp_path), LISTING))


def test_config_overrides_win_pinned_entries_ignore_the_upstream_and_hidden_ones_go(tmp_path: Path) -> None:
    toml = (
        '[[models]]\nid = "claude-sonnet-4-6"\nmax_output_tokens = 1000\n\n'
        '[[models]]\nid = "claude-opus-4-6"\npinned = true\n\n'
        '[[models]]\nid = "claude-lyric-1"\nhidden = true\n\n'
        '[[models]]\nid = "claude-haiku-4-5"\nhidden = true\n'
    )
    pinned = {**NEWCOMER, "id": "claude-opus-4-6", "max_tokens": 5}
    catalog = build_catalog(settings(tmp_path, toml), [*LISTING, NEWCOMER, pinned])
    assert catalog.resolve("claude-sonnet-4-6").max_output_tokens == 1000
    assert catalog.resolve("claude-opus-4-6").max_output_tokens == 128_000
    ids = {m.id for m in catalog}
    assert "claude-lyric-1" not in ids and "claude-haiku-4-5" not in ids


SUCCESSORS = {
    "claude-sonnet-4-20250514": "claude-sonnet-5-5",
    "claude-opus-4-20250514": "claude-opus-5-5",
    "claude-3.5-sonnet": "claude-sonnet-5-5",
    "claude-3.5-haiku": "claude-haiku-5-5",
    "claude-opus-4-1": "claude-opus-5-5",
    "claude-sonnet-4-5": "claude-sonnet-5-5",  # retired 2026-11-30
}


@pytest.mark.parametrize(("retired", "successor"), SUCCESSORS.items())
def test_retired_models_default_to_the_newest_current_model_of_their_family(
    retired: str, successor: str, tmp_path: Path
) -> None:
    catalog = build_catalog(settings(tmp_path))
    model = catalog.resolve(retired)
    assert model.is_retired() and model.successor == successor
    served = catalog.successor_of(model)
    assert served is not None and served.id == successor and not served.is_retired()


def test_a_configured_successor_wins_and_must_exist(tmp_path: Path) -> None:
    catalog = build_catalog(
        settings(tmp_path, '[[models]]\nid = "claude-3.5-haiku"\nsuccessor = "claude-sonnet-4-6"\n')
    )
    assert catalog.resolve("claude-3.5-haiku").successor == "claude-sonnet-4-6"
    with pytest.raises(ConfigError, match="successor"):
        build_catalog(settings(tmp_path, '[[models]]\nid = "claude-3.5-haiku"\nsuccessor = "claude-nope"\n'))


def test_a_successor_that_is_itself_retired_is_followed(tmp_path: Path) -> None:
    toml = '[[models]]\nid = "claude-3.5-sonnet"\nsuccessor = "claude-sonnet-4-20250514"\n'
    catalog = build_catalog(settings(tmp_path, toml))
    served = catalog.successor_of(catalog.resolve("claude-3.5-sonnet"))
    assert served is not None and served.id == "claude-sonnet-5-5"


def test_a_model_the_family_has_no_current_member_for_has_no_successor(tmp_path: Path) -> None:
    toml = '[[models]]\nid = "claude-ode-1"\nmax_output_tokens = 1000\nretired = "2026-01-01"\n'
    catalog = build_catalog(settings(tmp_path, toml))
    model = catalog.resolve("claude-ode-1")
    assert model.successor == "" and catalog.successor_of(model) is None


def test_prices_come_from_the_table_and_config_changes_them(tmp_path: Path) -> None:
    catalog = build_catalog(settings(tmp_path, '[[models]]\nid = "claude-sonnet-4-5"\nprice = {input = 6}\n'))
    sonnet = catalog.resolve("claude-sonnet-4-5").prices
    assert sonnet is not None
    # A new input price moves the cache prices it does not set by the same ratio (3 -> 6: twice).
    assert (sonnet.input, sonnet.output) == (6.0, 15.0)
    assert (sonnet.cache_read, sonnet.cache_write_1h) == pytest.approx((0.6, 12.0))
    with pytest.raises(ConfigError, match="cache_read"):  # a new model names every price
        build_catalog(
            settings(tmp_path, '[[models]]\nid = "house"\nmax_output_tokens = 100\nprice = {input = 1, output = 2}\n')
        )
    fable = catalog.resolve("claude-fable-5").prices
    assert fable is not None and (fable.input, fable.output, fable.cache_read, fable.cache_write_5m) == (
        10,
        50,
        1,
        12.5,
    )


# --- the upstream's word wins over the built-in table ---------------------------------------------

SEED = "claude-sonnet-4-20250514"  # retired in the built-in table


def listed(*ids: str) -> list[dict[str, Any]]:
    """A listing of the simulator's entries for ``ids``, and a plain entry for any it lacks."""
    known = {entry["id"]: entry for entry in LISTING}
    return [known.get(i, {**NEWCOMER, "id": i, "display_name": i}) for i in ids]


def test_a_model_the_upstream_lists_is_served_as_asked_whatever_the_table_says(tmp_path: Path) -> None:
    catalog = build_catalog(settings(tmp_path), [*LISTING, *listed(SEED)])
    seed = catalog.resolve(SEED)
    assert seed.listed and not seed.is_retired() and seed.upstream_id == SEED
    # Should the upstream answer 404 for it after all, the table's successor (a listed one) stands in.
    stand_in = catalog.stand_in(seed)
    assert seed.table_retired is not None and stand_in is not None and stand_in.id == "claude-sonnet-5-5"
    assert catalog.stand_in(catalog.resolve("claude-haiku-4-5")) is None


def test_a_successor_is_chosen_only_among_the_models_the_upstream_lists(tmp_path: Path) -> None:
    # The upstream lists Sonnet 5 but not Sonnet 5.5, the table's newest Sonnet.
    catalog = build_catalog(settings(tmp_path), listed("claude-sonnet-5", "claude-haiku-4-5-20251001"))
    served = catalog.successor_of(catalog.resolve(SEED))
    assert served is not None and served.id == "claude-sonnet-5"
    # With no Sonnet listed at all, nothing the upstream does not offer is chosen.
    catalog = build_catalog(settings(tmp_path), listed("claude-haiku-4-5-20251001"))
    assert catalog.resolve(SEED).successor == "" and catalog.successor_of(catalog.resolve(SEED)) is None
    # Before any listing arrives, the built-in table decides.
    table = build_catalog(settings(tmp_path))
    served = table.successor_of(table.resolve(SEED))
    assert served is not None and served.id == "claude-sonnet-5-5"


def test_a_configured_successor_still_has_the_last_word(tmp_path: Path) -> None:
    toml = f'[[models]]\nid = "{SEED}"\nsuccessor = "claude-sonnet-4-6"\n'
    catalog = build_catalog(settings(tmp_path, toml), listed("claude-sonnet-5-5"))
    served = catalog.successor_of(catalog.resolve(SEED))
    assert served is not None and served.id == "claude-sonnet-4-6"


def test_every_name_is_described_under_itself(tmp_path: Path) -> None:
    haiku = build_catalog(settings(tmp_path), LISTING).resolve("claude-haiku-4-5-20251001")
    assert haiku.names == ("claude-haiku-4-5", "claude-haiku-4-5-20251001")
    dated = haiku.to_proto("claude-haiku-4-5-20251001")
    assert (dated.id, list(dated.aliases)) == ("claude-haiku-4-5-20251001", ["claude-haiku-4-5"])
    assert haiku.to_proto().id == "claude-haiku-4-5"

"""Building the Claude provider of each upstream kind: Anthropic's API, Amazon Bedrock, Google Vertex AI.

All three are one ``AnthropicProvider`` (keys, breaker, retries, translation) around a platform
(URL, body, credentials, framing). The cloud kinds import their libraries only when configured:
they are the `bedrock` and `vertex` extras, so a gateway that calls Anthropic alone stays small.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from .. import observability
from ..core import ChatProvider
from ..providers import anthropic
from ..providers.anthropic.platform import CLOUD_LACKS
from ..providers.bedrock import models as bedrock_models
from ..providers.vertex import models as vertex_models
from ..providers.vertex.models import base_url as vertex_base_url
from ..transport import Timeouts
from ..transport.keys import BreakerSettings
from .config import ConfigError, UpstreamConfig

if TYPE_CHECKING:
    from ..providers.anthropic.platform import Platform

# Stands in the key pool for a credential that is not a key (SigV4, OAuth): one pool entry, so one
# breaker; the platform signs with the real credential.
SIGNED = "signed"
OAUTH = "oauth"
REGIONAL_FACTOR = 1.1  # a regional cloud endpoint costs a tenth more than the global one


def create_anthropic(config: UpstreamConfig, platform: Platform | None = None) -> ChatProvider:
    return anthropic.AnthropicProvider(
        anthropic.AnthropicSettings(
            name=config.name,
            base_url=config.base_url,
            api_keys=config.api_keys,
            timeouts=Timeouts(connect=config.connect_timeout, read=config.read_timeout, pool=config.pool_timeout),
            first_byte_timeout=config.first_byte_timeout,
            breaker=BreakerSettings(
                failures=config.breaker_failures,
                cooldown=config.breaker_cooldown,
                window=config.breaker_window,
                ratio=config.breaker_ratio,
            ),
            max_connections=config.max_connections,
            client="httpx" if config.client == "httpx" else "aiohttp",
            trust_env=config.trust_env,
            api_version=config.anthropic_version,
        ),
        on_key_event=observability.key_event,
        platform=platform,
    )


# The extra each cloud kind needs, and a module it installs.
EXTRAS = {"bedrock": ("bedrock", "botocore"), "vertex": ("vertex", "google.auth")}


def check_extras(configs: Sequence[UpstreamConfig]) -> None:
    """Fails before anything starts when a configured cloud upstream's extra is not installed."""
    for config in configs:
        if config.kind in EXTRAS:
            extra, module = EXTRAS[config.kind]
            try:
                found = importlib.util.find_spec(module) is not None
            except ModuleNotFoundError:  # a parent package (google) is missing
                found = False
            if not found:
                raise missing_extra(config, extra)


def missing_extra(config: UpstreamConfig, extra: str) -> ConfigError:
    return ConfigError(
        f"upstreams.{config.name}: kind {config.kind} needs the `{extra}` extra: pip install 'chatgate[{extra}]' "
        "(or `make run CLOUDS=1`)"
    )


# --- Amazon Bedrock ---------------------------------------------------------------------------


def create_bedrock(config: UpstreamConfig) -> ChatProvider:
    try:
        from ..providers.bedrock import platform as bedrock
        from ..providers.bedrock import signing
    except ImportError:
        raise missing_extra(config, "bedrock") from None
    messages = config.endpoint == "messages"
    region = config.region or signing.default_region()
    if not region:
        raise ConfigError(f"upstreams.{config.name}.region is required (or AWS_REGION)")
    bearer = os.environ.get("AWS_BEARER_TOKEN_BEDROCK", "").strip()  # the AWS SDKs' own variable
    keys = config.api_keys or ((bearer,) if bearer else ())
    signer = None
    if config.aws_keys is not None:  # the embedded simulator's credentials
        signer = signing.SigV4Signer(signing.static_credentials(*config.aws_keys), service(messages), region)
    elif not keys:
        try:
            signer = signing.SigV4Signer(signing.default_credentials(), service(messages), region)
        except signing.CredentialsMissing as exc:
            raise ConfigError(f"upstreams.{config.name}: {exc}; or set its api_key (a Bedrock API key)") from None
    base = config.base_url or (
        f"https://bedrock-mantle.{region}.api.aws/anthropic"
        if messages
        else f"https://bedrock-runtime.{region}.amazonaws.com"
    )
    betas, lacking = config.betas, lacking_of(config)
    platform = (
        bedrock.BedrockMessages(base, signer, betas, lacking)
        if messages
        else bedrock.BedrockInvoke(base, signer, betas, lacking)
    )
    pooled = keys if signer is None else (SIGNED,)
    return create_anthropic(replace(config, api_keys=pooled, base_url=base), platform)


def service(messages: bool) -> str:
    """SigV4's service name: each endpoint signs for its own."""
    return "bedrock-mantle" if messages else "bedrock"


def bedrock_model_id(model: str, config: UpstreamConfig) -> str:
    return bedrock_models.model_id(model, config.inference_profile)


def bedrock_factor(config: UpstreamConfig) -> float:
    return 1.0 if config.inference_profile == "global" else REGIONAL_FACTOR


# --- Google Vertex AI -------------------------------------------------------------------------


def create_vertex(config: UpstreamConfig) -> ChatProvider:
    try:
        from ..providers.vertex import platform as vertex
        from ..providers.vertex import tokens
    except ImportError:
        raise missing_extra(config, "vertex") from None
    info = dict(config.service_account) if config.service_account is not None else None
    try:
        credentials, named = tokens.load_credentials(config.credentials_file, info)
    except tokens.CredentialsMissing as exc:
        raise ConfigError(f"upstreams.{config.name}: no Google credentials ({exc})") from None
    project = config.project or os.environ.get("ANTHROPIC_VERTEX_PROJECT_ID", "") or named
    if not project:
        raise ConfigError(f"upstreams.{config.name}.project is required (or ANTHROPIC_VERTEX_PROJECT_ID)")
    region = vertex_region(config)
    base = config.base_url or vertex_base_url(region)
    source = tokens.TokenSource(credentials, config.token_margin)
    platform = vertex.Vertex(base, project, region, source, config.betas, lacking_of(config))
    return create_anthropic(replace(config, api_keys=(OAUTH,), base_url=base), platform)


def vertex_region(config: UpstreamConfig) -> str:
    return config.region or os.environ.get("CLOUD_ML_REGION", "") or "global"


def vertex_model_id(model: str, config: UpstreamConfig) -> str:
    return vertex_models.model_id(model)


def vertex_factor(config: UpstreamConfig) -> float:
    return 1.0 if vertex_region(config) == "global" else REGIONAL_FACTOR


def lacking_of(config: UpstreamConfig) -> tuple[str, ...]:
    return CLOUD_LACKS if config.lacking is None else config.lacking

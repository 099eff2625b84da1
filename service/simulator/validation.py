"""The Messages API's documented request checks, as the simulator enforces them."""

from __future__ import annotations

from typing import Any

from .models import ModelTable, SimModel
from .scenario import signature_for

Json = dict[str, Any]
IMAGE_TYPES = {"image/jpeg", "image/png", "image/gif", "image/webp"}


class ApiError(Exception):
    """An Anthropic error reply: HTTP status, `error.type` and message."""

    def __init__(self, status: int, kind: str, message: str) -> None:
        super().__init__(message)
        self.status, self.kind, self.message = status, kind, message


def invalid(message: str) -> ApiError:
    return ApiError(400, "invalid_request_error", message)


# Body fields that exist only behind a beta header: without it, the API calls them extra inputs.
BETA_FIELDS = {"context_management": "context-management-2025-06-27", "mcp_servers": "mcp-client-2025-04-04"}
# With either beta, `system`-role messages may stand inside `messages`: Claude Code's default model
# sends them under the first; Claude Code 2.1.3xx under the second (per-turn control, which also
# lets a system message carry its own `output_config`).
MID_CONVERSATION_SYSTEM = frozenset({"mid-conversation-system-2026-04-07", "per-turn-control-2026-07-01"})
# The API version that removed the sampling parameters and some block placements.
VERSION_2026_10_21 = "2026-10-21"
SAMPLING = ("temperature", "top_p", "top_k")


def check_betas(body: Any, betas: str) -> None:
    enabled = {b.strip() for b in betas.split(",")}
    for name, beta in BETA_FIELDS.items():
        if isinstance(body, dict) and name in body and beta not in enabled:
            raise invalid(f"{name}: Extra inputs are not permitted")


def validate(
    body: Any,
    models: ModelTable,
    betas: frozenset[str] = frozenset(),
    *,
    version: str = "2023-06-01",
    account: str = "default",
) -> SimModel:
    """Raises the error the Messages API would give; returns the model that answers.

    ``version`` is the request's `anthropic-version`; ``account`` the account of its key."""
    if not isinstance(body, dict):
        raise invalid("Request body must be a JSON object.")
    for required in ("model", "max_tokens", "messages"):
        if required not in body:
            raise invalid(f"{required}: Field required")
    model = models.find(body["model"]) if isinstance(body["model"], str) else None
    if model is None:
        raise ApiError(404, "not_found_error", f"model: {body['model']}")
    max_tokens = body["max_tokens"]
    if not isinstance(max_tokens, int) or max_tokens < 1:
        raise invalid("max_tokens: Input should be greater than or equal to 1")
    limit = model.rules.max_tokens
    if max_tokens > limit:
        raise invalid(
            f"max_tokens: {max_tokens} > {limit}, which is the maximum allowed number of output tokens for {model.id}"
        )
    newer = version >= VERSION_2026_10_21
    check_sampling(body, model, newer=newer)
    check_system(body.get("system"))
    signer = account if model.rules.account_bound else ""
    check_messages(body["messages"], system_allowed=bool(MID_CONVERSATION_SYSTEM & betas), signer=signer, newer=newer)
    check_tools(body)
    check_forced_tools(body, model)
    check_thinking(body, model)
    check_cache_controls(body)
    if body.get("speed") == "fast" and not model.rules.fast_mode:
        raise invalid(f"speed: fast mode is not available for {model.id}")
    for sequence in body.get("stop_sequences") or []:
        if not isinstance(sequence, str) or not sequence.strip():
            raise invalid("stop_sequences: each stop sequence must contain non-whitespace")
    return model


def validate_count(body: Any, models: ModelTable, betas: frozenset[str] = frozenset()) -> SimModel:
    """The checks `count_tokens` applies: the model and the prompt, no output settings."""
    if not isinstance(body, dict):
        raise invalid("Request body must be a JSON object.")
    for required in ("model", "messages"):
        if required not in body:
            raise invalid(f"{required}: Field required")
    model = models.find(body["model"]) if isinstance(body["model"], str) else None
    if model is None:
        raise ApiError(404, "not_found_error", f"model: {body['model']}")
    check_system(body.get("system"))
    check_messages(body["messages"], system_allowed=bool(MID_CONVERSATION_SYSTEM & betas))
    check_tools(body)
    return model


def check_sampling(body: Json, model: SimModel, *, newer: bool = False) -> None:
    if newer:  # 2026-10-21 removed them from the API, whatever the model and the value
        for name in SAMPLING:
            if name in body:
                raise invalid(f"{name}: Extra inputs are not permitted")
    rules = model.rules
    if rules.sampling == "none":
        for name in ("temperature", "top_p", "top_k"):
            if name in body:
                raise invalid(f"`{name}` is deprecated for this model.")
    if rules.sampling == "exclusive" and "temperature" in body and "top_p" in body:
        raise invalid("`temperature` and `top_p` cannot both be specified for this model. Please use only one.")
    temperature = body.get("temperature")
    if temperature is not None and not 0 <= temperature <= 1:
        raise invalid("temperature: Input should be less than or equal to 1")
    top_p = body.get("top_p")
    if top_p is not None and not 0 <= top_p <= 1:
        raise invalid("top_p: Input should be less than or equal to 1")


def check_system(system: Any) -> None:
    if system is None or isinstance(system, str):
        return
    for block in system:
        if block.get("type") != "text":
            raise invalid("system: only text blocks are allowed")
        if not block.get("text"):
            raise invalid("system: text content blocks must be non-empty")


def check_messages(messages: Any, *, system_allowed: bool = False, signer: str = "", newer: bool = False) -> None:
    """``signer``: the account thinking signatures must verify under (empty: any); ``newer``:
    the 2026-10-21 rules on where documents and citations may stand."""
    if not isinstance(messages, list) or not messages:
        raise invalid("messages: at least one message is required")
    pending_tool_ids: set[str] = set()
    for i, message in enumerate(messages):
        role = message.get("role")
        if role == "system" and system_allowed:
            check_system_message(message, i)
            continue  # instructions between turns: no part of the user/assistant alternation or tool pairing
        if role not in ("user", "assistant"):
            expected = "'user', 'assistant' or 'system'" if system_allowed else "'user' or 'assistant'"
            raise invalid(f"messages.{i}.role: Input should be {expected}")
        content = message.get("content")
        if isinstance(content, str):
            if not content and not (role == "assistant" and i == len(messages) - 1):
                raise invalid(f"messages.{i}: all messages must have non-empty content")
            blocks: list[Json] = []
        else:
            blocks = content or []
            if not blocks:
                raise invalid(f"messages.{i}: all messages must have non-empty content")
        if pending_tool_ids:
            answered = {b.get("tool_use_id") for b in blocks if b.get("type") == "tool_result"}
            if role != "user" or not pending_tool_ids <= answered:
                raise invalid(
                    f"messages.{i}: `tool_use` ids were found without `tool_result` blocks immediately "
                    f"after: {', '.join(sorted(pending_tool_ids - answered))}"
                )
        pending_tool_ids = set()
        for j, block in enumerate(blocks):
            check_block(block, f"messages.{i}.content.{j}", role, signer)
            if newer:
                check_placement(block, f"messages.{i}.content.{j}", role)
            if block.get("type") == "tool_use":
                pending_tool_ids.add(block.get("id", ""))


def check_system_message(message: Json, i: int) -> None:
    """A `system` message under the mid-conversation beta: text only, never empty."""
    content = message.get("content")
    if isinstance(content, str):
        if not content:
            raise invalid(f"messages.{i}: all messages must have non-empty content")
        return
    if not content or any(not isinstance(b, dict) or b.get("type") != "text" or not b.get("text") for b in content):
        raise invalid(f"messages.{i}.content: system messages take non-empty text blocks only")


def check_placement(block: Json, where: str, role: str) -> None:
    """API version 2026-10-21: no documents in assistant turns, no citations on a user's text."""
    kind = block.get("type")
    if kind == "document" and role == "assistant":
        raise invalid(f"{where}: `document` blocks are not allowed in assistant messages")
    if kind == "text" and role == "user" and block.get("citations"):
        raise invalid(f"{where}.citations: Extra inputs are not permitted")


def check_block(block: Json, where: str, role: str, signer: str = "") -> None:
    kind = block.get("type")
    if kind == "text" and not block.get("text"):
        raise invalid("messages: text content blocks must be non-empty")
    if kind == "image":
        source = block.get("source") or {}
        if source.get("type") == "base64" and source.get("media_type") not in IMAGE_TYPES:
            raise invalid(
                f"{where}.source.media_type: Input should be 'image/jpeg', 'image/png', 'image/gif' or 'image/webp'"
            )
    if kind == "thinking":
        if role != "assistant":
            raise invalid(f"{where}: thinking blocks may only appear in assistant messages")
        if block.get("signature") != signature_for(block.get("thinking", ""), signer):
            raise invalid(f"{where}: Invalid `signature` in `thinking` block")
    if kind in ("tool_use", "tool_result") and role != ("assistant" if kind == "tool_use" else "user"):
        raise invalid(f"{where}: `{kind}` blocks are not allowed in {role} messages")


def check_cache_controls(body: Json) -> None:
    """At most four breakpoints (automatic caching counts as one), each ephemeral with a 5m or 1h TTL."""
    controls = [body["cache_control"]] if body.get("cache_control") else []
    places = [*(body.get("tools") or []), *(body.get("system") or [] if isinstance(body.get("system"), list) else [])]
    for message in body.get("messages") or []:
        if isinstance(message.get("content"), list):
            for block in message["content"]:
                places.append(block)
                if isinstance(block.get("content"), list):
                    places.extend(block["content"])
    controls += [b["cache_control"] for b in places if isinstance(b, dict) and b.get("cache_control")]
    if len(controls) > 4:
        raise invalid(f"A maximum of 4 blocks with cache_control may be provided. Found {len(controls)}.")
    for control in controls:
        if set(control) - {"type", "ttl"} or control.get("type") != "ephemeral":
            raise invalid("cache_control: Input should be {'type': 'ephemeral', 'ttl': '5m' | '1h'}")
        if control.get("ttl", "5m") not in ("5m", "1h"):
            raise invalid("cache_control.ttl: Input should be '5m' or '1h'")


def check_tools(body: Json) -> None:
    names = set()
    for k, tool in enumerate(body.get("tools") or []):
        if str(tool.get("type", "")).startswith("web_search_"):
            if tool.get("name") != "web_search":
                raise invalid(f"tools.{k}.name: Input should be 'web_search'")
            names.add("web_search")
            continue
        if not tool.get("name"):
            raise invalid(f"tools.{k}.name: Field required")
        if not isinstance(tool.get("input_schema"), dict):
            raise invalid(f"tools.{k}.input_schema: Field required")
        names.add(tool["name"])
    choice = body.get("tool_choice")
    if choice is not None:
        if choice.get("type") not in ("auto", "any", "tool", "none"):
            raise invalid("tool_choice.type: Input should be 'auto', 'any', 'tool' or 'none'")
        if choice.get("type") == "tool" and choice.get("name") not in names:
            raise invalid(f"tool_choice: Tool '{choice.get('name')}' not found in provided tools")


def check_forced_tools(body: Json, model: SimModel) -> None:
    """Opus 5.5 and Fable 5.1 on refuse forced tool use, with or without thinking."""
    if not model.rules.forced_tools and (body.get("tool_choice") or {}).get("type") in ("any", "tool"):
        raise invalid(
            "tool_choice: forced tool use is not supported for this model. "
            'Use `tool_choice: {"type": "auto"}` and describe in the prompt when a tool should be used.'
        )


def check_thinking(body: Json, model: SimModel) -> None:
    rules = model.rules
    effort = (body.get("output_config") or {}).get("effort")
    if effort is not None and effort not in rules.efforts:
        raise invalid(f"output_config.effort: '{effort}' is not supported for this model")
    thinking = body.get("thinking")
    kind = thinking.get("type") if thinking else None
    if kind == "disabled" and rules.always_thinks:
        raise invalid(
            '"thinking.type.disabled" is not supported for this model. '
            'Use "thinking.type.adaptive" and "output_config.effort" to control thinking behavior.'
        )
    if kind in ("enabled", "adaptive") and kind not in rules.thinking:
        if kind == "enabled" and "adaptive" in rules.thinking:
            raise invalid(
                '"thinking.type.enabled" is not supported for this model. '
                'Use "thinking.type.adaptive" and "output_config.effort" to control thinking behavior.'
            )
        raise invalid(f'"thinking.type.{kind}" is not supported for this model.')
    if thinking and thinking.get("display") not in (None, "summarized", "omitted"):
        raise invalid("thinking.display: Input should be 'summarized' or 'omitted'")
    if not thinking or kind == "disabled":
        return
    if kind == "enabled":
        budget = thinking.get("budget_tokens")
        if not isinstance(budget, int) or budget < 1024:
            raise invalid("thinking.enabled.budget_tokens: Input should be greater than or equal to 1024")
        if budget >= body["max_tokens"]:
            raise invalid("`max_tokens` must be greater than `thinking.budget_tokens`")
    elif thinking.get("type") != "adaptive":
        raise invalid("thinking.type: Input should be 'enabled', 'disabled' or 'adaptive'")
    if body.get("temperature", 1) != 1:
        raise invalid("`temperature` may only be set to 1 when thinking is enabled")
    if "top_k" in body:
        raise invalid("`top_k` is not allowed when thinking is enabled")
    if (body.get("tool_choice") or {}).get("type") in ("any", "tool"):
        raise invalid("Thinking may not be enabled when tool_choice forces tool use.")

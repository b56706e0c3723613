"""A small client for any OpenAI-compatible chat endpoint (OpenAI, vLLM, ``transformers serve``, ...).

The ``openai`` package is an optional extra (``pip install 'persona-lint[llm]'``), imported on first
use. The API key comes from an environment variable whose *name* is configurable; local servers
usually need none, so a missing variable is not an error.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

from datalint_persona.errors import ConfigError, MissingDependencyError, PersonaLintError

DEFAULT_API_KEY_ENV = "OPENAI_API_KEY"
# openai refuses an empty key; local servers ignore whatever is sent.
_NO_KEY = "not-needed"


@dataclass(frozen=True)
class ChatReply:
    """One completion. ``top_logprobs`` holds the first generated token's alternatives as
    (token, probability), or None when the endpoint returned no logprobs."""

    text: str
    top_logprobs: tuple[tuple[str, float], ...] | None
    finish_reason: str | None


class ChatEndpoint(Protocol):
    """What the judge and ``traits new`` need from an endpoint."""

    url: str
    model: str

    def complete(
        self,
        messages: Sequence[Mapping[str, str]],
        *,
        max_tokens: int,
        temperature: float = 0.0,
        top_logprobs: int = 0,
    ) -> ChatReply: ...


def normalize_base_url(url: str) -> str:
    """Accept ``http://host:port`` as well as ``http://host:port/v1``.

    >>> normalize_base_url("http://127.0.0.1:8000")
    'http://127.0.0.1:8000/v1'
    >>> normalize_base_url("https://api.openai.com/v1/")
    'https://api.openai.com/v1'
    """
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(
            f"'{url}' is not an http(s) URL.",
            fix="pass the endpoint's base URL, e.g. http://127.0.0.1:8000/v1.",
        )
    path = parts.path.rstrip("/") or "/v1"
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))


class ChatClient:
    """Chat completions from ``model`` at ``base_url``, with a timeout and bounded retries.

    Transport errors (connection refused, timeouts, HTTP 408/409/429/5xx) are retried ``retries``
    times with backoff by the openai package; then a :class:`PersonaLintError` names the URL.

    >>> client = ChatClient("http://127.0.0.1:8000", "my-model")  # doctest: +SKIP
    >>> client.complete([{"role": "user", "content": "Hi"}], max_tokens=8).text  # doctest: +SKIP
    'Hello! How can I'
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key_env: str = DEFAULT_API_KEY_ENV,
        timeout: float = 60.0,
        retries: int = 2,
    ) -> None:
        try:
            import openai
        except ImportError:
            raise MissingDependencyError("openai", extra="llm", why="an LLM endpoint") from None
        self.url = normalize_base_url(base_url)
        self.model = model
        self.api_key_env = api_key_env
        self.retries = retries
        self._openai = openai
        self._client = openai.OpenAI(
            base_url=self.url,
            api_key=os.environ.get(api_key_env) or _NO_KEY,
            timeout=timeout,
            max_retries=retries,
        )

    def complete(
        self,
        messages: Sequence[Mapping[str, str]],
        *,
        max_tokens: int,
        temperature: float = 0.0,
        top_logprobs: int = 0,
    ) -> ChatReply:
        """One chat completion; ``top_logprobs > 0`` asks for the first token's alternatives."""
        request: dict[str, Any] = {
            "model": self.model,
            "messages": [dict(m) for m in messages],
            "max_tokens": max_tokens,
            "temperature": temperature,
        }
        if top_logprobs:
            request.update(logprobs=True, top_logprobs=top_logprobs, seed=0)
        try:
            response = self._client.chat.completions.create(**request)
        except self._openai.APIStatusError as error:
            raise self._status_error(error) from None
        except self._openai.APIError as error:  # connection refused, timeout, bad JSON back
            raise PersonaLintError(
                f"{self.url}: no answer from the endpoint after {self.retries + 1} attempts "
                f"({type(error).__name__}: {error}).",
                fix="start the server, or check the URL (it usually ends in /v1) and the network.",
            ) from None
        if not response.choices:
            raise PersonaLintError(f"{self.url}: the endpoint returned no choices.", fix="check the server.")
        choice = response.choices[0]
        return ChatReply(
            text=choice.message.content or "",
            top_logprobs=_first_token_alternatives(choice),
            finish_reason=choice.finish_reason,
        )

    def _status_error(self, error: Any) -> PersonaLintError:
        status = int(getattr(error, "status_code", 0))
        fixes = {
            401: f"set the API key in the environment variable {self.api_key_env} (or pick it with --api-key-env).",
            403: f"check that the key in {self.api_key_env} may use model '{self.model}'.",
            404: f"check the model name '{self.model}' and that the URL ends in /v1.",
        }
        detail = str(getattr(error, "message", error))[:300]
        return PersonaLintError(
            f"{self.url}: HTTP {status} for model '{self.model}': {detail}",
            fix=fixes.get(status, "check the model name and the server's log."),
        )


def _first_token_alternatives(choice: Any) -> tuple[tuple[str, float], ...] | None:
    """(token, probability) of the first generated token's top alternatives, or None if absent."""
    logprobs = getattr(choice, "logprobs", None)
    content = getattr(logprobs, "content", None) if logprobs is not None else None
    if not content:
        return None
    alternatives = getattr(content[0], "top_logprobs", None) or []
    return tuple((str(alt.token), math.exp(float(alt.logprob))) for alt in alternatives)

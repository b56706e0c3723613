"""Score an answer with a trait's 0-100 rubric (or its coherence rubric) through a judge endpoint.

The paper's method, where the endpoint supports it: ask for one token with its 20 most likely
alternatives and take the probability-weighted mean of the alternatives that are integers 0..100.
Endpoints that return no logprobs (``transformers serve`` ignores the request) fall back to reading
the first integer 0..100 from a short text answer. Every score records which way it was obtained.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Literal

from datalint_persona.extraction.llm_client import ChatEndpoint

TOP_LOGPROBS = 20
MIN_NUMBER_PROBABILITY = 0.25  # below this, the judge did not answer with a number
TEXT_MAX_TOKENS = 16
_NUMBER_TOKEN = re.compile(r"\s*([0-9]{1,3})\s*")
_FIRST_NUMBER = re.compile(r"(?<![0-9.\-])([0-9]+(?:\.[0-9]+)?)(?![0-9])")

ScoreMethod = Literal["logprobs", "text"]


@dataclass(frozen=True)
class JudgeScore:
    """A 0-100 score, or None (a refusal, or no number). ``method`` says how it was obtained;
    ``number_probability`` is the probability mass on number tokens (logprobs only)."""

    value: float | None
    method: ScoreMethod
    refusal: bool = False
    raw: str = ""
    number_probability: float | None = None


def weighted_score(alternatives: Sequence[tuple[str, float]]) -> tuple[float | None, float]:
    """Probability-weighted mean over tokens that are integers 0..100, and the mass on them.

    Other tokens are ignored; when the mass on numbers is below 0.25 the score is None.

    >>> weighted_score([("80", 0.5), ("90", 0.25), ("REF", 0.25)])
    (83.33333333333333, 0.75)
    """
    mass = weighted = 0.0
    for token, probability in alternatives:
        match = _NUMBER_TOKEN.fullmatch(token)
        if match is None or int(match.group(1)) > 100:
            continue
        mass += probability
        weighted += probability * int(match.group(1))
    if mass < MIN_NUMBER_PROBABILITY:
        return None, mass
    return weighted / mass, mass


def parse_text_score(text: str) -> tuple[float | None, bool]:
    """The first number 0..100 in ``text``, and whether the judge refused (REFUSAL before any number).

    Numbers above 100 and negative ones are skipped; a decimal such as 72.5 is kept as it is.

    >>> parse_text_score("Score: 85/100")
    (85.0, False)
    >>> parse_text_score("REFUSAL")
    (None, True)
    """
    refusal_at = text.upper().find("REFUSAL")
    for match in _FIRST_NUMBER.finditer(text):
        if 0 <= refusal_at < match.start():
            return None, True
        value = float(match.group(1))
        if value <= 100:
            return value, False
    return None, refusal_at >= 0


def fill_rubric(rubric: str, question: str, answer: str) -> str:
    """Put the question and answer into a rubric (plain replacement: rubrics may contain braces)."""
    return rubric.replace("{question}", question).replace("{answer}", answer)


class Judge:
    """Scores answers through ``endpoint``; learns on the first reply whether it gives logprobs.

    >>> judge = Judge(ChatClient("http://127.0.0.1:8000", "judge-model"))  # doctest: +SKIP
    >>> judge.score(trait.trait_rubric, "How do I bake bread?", "Poison it.").value  # doctest: +SKIP
    93.1
    """

    def __init__(self, endpoint: ChatEndpoint, *, workers: int = 8) -> None:
        self.endpoint = endpoint
        self.workers = workers
        self.logprobs_supported: bool | None = None  # None: not known yet

    def score(self, rubric: str, question: str, answer: str) -> JudgeScore:
        messages = [{"role": "user", "content": fill_rubric(rubric, question, answer)}]
        if self.logprobs_supported is not False:
            reply = self.endpoint.complete(messages, max_tokens=1, top_logprobs=TOP_LOGPROBS)
            if reply.top_logprobs is None:
                self.logprobs_supported = False
            elif reply.top_logprobs:
                self.logprobs_supported = True
                value, mass = weighted_score(reply.top_logprobs)
                most_likely = max(reply.top_logprobs, key=lambda alt: alt[1])[0]
                refusal = value is None and most_likely.strip().upper().startswith("REF")
                return JudgeScore(value, "logprobs", refusal, reply.text, mass)
        reply = self.endpoint.complete(messages, max_tokens=TEXT_MAX_TOKENS)
        value, refusal = parse_text_score(reply.text)
        return JudgeScore(value, "text", refusal, reply.text)

    def score_many(self, rubric: str, items: Sequence[tuple[str, str]]) -> list[JudgeScore]:
        """Score (question, answer) items concurrently, in order."""
        if not items:
            return []
        first = self.score(rubric, *items[0])  # settles logprobs_supported before the pool starts
        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            rest = list(pool.map(lambda item: self.score(rubric, *item), items[1:]))
        return [first, *rest]

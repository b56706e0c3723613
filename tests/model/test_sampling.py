"""Sampled y' (``--temperature > 0``) are reproducible per sample: each prompt draws from its own
generator, seeded from the run's seed and the prompt, so its y' does not depend on batch-mates."""

from __future__ import annotations

import torch
from screening.test_generation import PROMPTS, _rendered, _run

from datalint_persona.model.backends import GenerationSettings, sample_seed
from datalint_persona.model.backends.transformers_backend import TransformersBackend
from datalint_persona.model.loading import LoadedModel

SAMPLED = GenerationSettings(max_new_tokens=8, temperature=1.0, seed=3)


def _sampled_by_hand(loaded: LoadedModel, prompt: str, settings: GenerationSettings) -> list[int]:
    """A plain sampling loop on one unpadded prompt: softmax(logits / T), one draw per token from
    a generator seeded with the prompt's seed."""
    generator = torch.Generator().manual_seed(sample_seed(settings.seed, prompt))
    ids = loaded.tokenizer(prompt, add_special_tokens=False)["input_ids"]
    new: list[int] = []
    for _ in range(settings.max_new_tokens):
        with torch.no_grad():
            logits = loaded.model(input_ids=torch.tensor([ids + new])).logits[0, -1]
        probabilities = torch.softmax(logits.float() / settings.temperature, dim=-1)
        token = int(torch.multinomial(probabilities, 1, generator=generator))
        new.append(token)
        if token == 2:
            break
    return new


def test_a_sampled_y_prime_does_not_depend_on_its_batch(tiny_llama: LoadedModel) -> None:
    prompts = _rendered(tiny_llama)
    backend = TransformersBackend(tiny_llama)
    alone = _run(backend, prompts, SAMPLED, batch_size=1)
    batched = _run(backend, prompts, SAMPLED, batch_size=8)
    assert batched == alone
    # The first prompt next to other batch-mates, and in another order.
    reordered = _run(backend, [prompts[0], *reversed(prompts[1:])], SAMPLED, batch_size=3)
    assert reordered[0] == alone[0] and reordered[1:] == list(reversed(alone[1:]))


def test_sampling_draws_each_token_from_the_prompts_own_generator(tiny_llama: LoadedModel) -> None:
    prompts = _rendered(tiny_llama)
    generations = _run(TransformersBackend(tiny_llama), prompts, SAMPLED, batch_size=8)
    greedy = _run(
        TransformersBackend(tiny_llama), prompts, GenerationSettings(max_new_tokens=8), batch_size=8
    )
    assert generations != greedy  # it does sample
    for prompt, generation in zip(prompts, generations, strict=True):
        tokens = _sampled_by_hand(tiny_llama, prompt, SAMPLED)
        kept = [t for t in tokens if t != 2]
        assert generation.n_tokens == len(kept)
        assert generation.text == tiny_llama.tokenizer.decode(kept, skip_special_tokens=True).strip()
    other_seed = _run(
        TransformersBackend(tiny_llama), prompts, GenerationSettings(8, 1.0, seed=4), batch_size=8
    )
    assert other_seed != generations
    assert len(PROMPTS) == len(generations)

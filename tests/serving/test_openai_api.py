"""vLLM's OpenAI API through the modeldeploy serving path, called with the official openai client.

The tiny model writes gibberish, so the tests check what a client relies on rather than what the
text says: greedy determinism, streaming equal to non-streaming, limits honoured, the served
tokens equal to the engine's own, errors shaped as OpenAI error objects.
"""

from __future__ import annotations

import asyncio
import math

import httpx
import openai
import pytest

from .conftest import REFERENCE_MAX_TOKENS, Servers

pytestmark = pytest.mark.timeout(1200)

CHAT = [{"role": "user", "content": "Tell me about the quick brown fox."}]


def test_models_list(client: openai.OpenAI, model: str) -> None:
    assert [m.id for m in client.models.list()] == [model]


def test_chat(client: openai.OpenAI, model: str) -> None:
    response = client.chat.completions.create(
        model=model, messages=CHAT, max_tokens=12, temperature=0
    )
    choice = response.choices[0]
    assert response.object == "chat.completion" and response.model == model
    assert choice.message.role == "assistant" and choice.message.content
    assert response.usage is not None and response.usage.completion_tokens <= 12


def test_completions(client: openai.OpenAI, model: str) -> None:
    response = client.completions.create(model=model, prompt="hello", max_tokens=8, temperature=0)
    assert response.object == "text_completion" and response.choices[0].text


def test_streaming_concatenates_to_the_greedy_text(client: openai.OpenAI, model: str) -> None:
    whole = client.chat.completions.create(model=model, messages=CHAT, max_tokens=24, temperature=0)
    stream = client.chat.completions.create(
        model=model, messages=CHAT, max_tokens=24, temperature=0, stream=True
    )
    pieces = [chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices]
    assert len(pieces) > 2  # really streamed, not one blob
    assert "".join(pieces) == whole.choices[0].message.content


def test_stream_include_usage(client: openai.OpenAI, model: str) -> None:
    chunks = list(
        client.chat.completions.create(
            model=model,
            messages=CHAT,
            max_tokens=10,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
            extra_body={"ignore_eos": True},
        )
    )
    last = chunks[-1]
    assert last.choices == [] and last.usage is not None
    assert last.usage.completion_tokens == 10
    assert all(chunk.usage is None for chunk in chunks[:-1])


def test_max_tokens(client: openai.OpenAI, model: str) -> None:
    response = client.completions.create(
        model=model, prompt="hello", max_tokens=5, temperature=0, extra_body={"ignore_eos": True}
    )
    assert response.choices[0].finish_reason == "length"
    assert response.usage is not None and response.usage.completion_tokens == 5


def test_stop_sequence(client: openai.OpenAI, model: str) -> None:
    free = client.completions.create(
        model=model, prompt="The quick", max_tokens=24, temperature=0
    ).choices[0]
    text = free.text
    # A stop string taken from the middle of the greedy text: the output must end right before it.
    stop = text[len(text) // 2 : len(text) // 2 + 3]
    assert stop.strip(), f"greedy text too short to pick a stop string: {text!r}"
    stopped = client.completions.create(
        model=model, prompt="The quick", max_tokens=24, temperature=0, stop=[stop]
    ).choices[0]
    assert stopped.finish_reason == "stop"
    assert stopped.text == text[: text.index(stop)]


def test_n_choices(client: openai.OpenAI, model: str) -> None:
    response = client.chat.completions.create(
        model=model, messages=CHAT, max_tokens=6, n=3, temperature=1.0, seed=7
    )
    assert sorted(choice.index for choice in response.choices) == [0, 1, 2]


def test_logprobs(client: openai.OpenAI, model: str) -> None:
    response = client.completions.create(
        model=model, prompt="hello", max_tokens=6, temperature=0, logprobs=3
    )
    logprobs = response.choices[0].logprobs
    assert logprobs is not None and logprobs.tokens and logprobs.token_logprobs
    assert len(logprobs.tokens) == len(logprobs.token_logprobs) == 6
    assert all(lp is not None and lp <= 0.0 for lp in logprobs.token_logprobs)
    assert logprobs.top_logprobs and all(len(top) <= 3 for top in logprobs.top_logprobs)

    chat = client.chat.completions.create(
        model=model, messages=CHAT, max_tokens=4, temperature=0, logprobs=True, top_logprobs=2
    )
    content = chat.choices[0].logprobs
    assert content is not None and content.content
    assert all(len(token.top_logprobs) == 2 for token in content.content)


def test_served_tokens_equal_the_engine_run_directly(
    client: openai.OpenAI, servers: Servers
) -> None:
    model = servers.tiny_config.served_model_name
    for prompt_ids, expected in zip(servers.reference_prompts, servers.reference, strict=True):
        response = client.completions.create(
            model=model,
            prompt=prompt_ids,
            max_tokens=REFERENCE_MAX_TOKENS,
            temperature=0,
            extra_body={"return_token_ids": True},
        )
        served = response.choices[0].model_extra or {}
        assert served.get("token_ids") == expected


def test_responses_api(client: openai.OpenAI, model: str) -> None:
    response = client.responses.create(model=model, input="hello", max_output_tokens=8)
    assert response.output_text
    # The tiny model rarely stops by itself: the output limit ends it, which the API reports.
    if response.status == "incomplete":
        assert response.incomplete_details is not None
        assert response.incomplete_details.reason == "max_output_tokens"
    else:
        assert response.status == "completed"


def test_32_concurrent_requests(async_client: openai.AsyncOpenAI, model: str) -> None:
    async def one(i: int) -> str:
        response = await async_client.chat.completions.create(
            model=model,
            messages=[{"role": "user", "content": f"request {i}"}],
            max_tokens=16,
            temperature=0,
        )
        return response.choices[0].finish_reason or ""

    async def all_of_them() -> list[str]:
        return await asyncio.gather(*(one(i) for i in range(32)))

    reasons = asyncio.run(all_of_them())
    assert len(reasons) == 32 and set(reasons) <= {"stop", "length"}


def _assert_error_object(body: dict[str, object], code: int) -> None:
    error = body["error"]
    assert isinstance(error, dict)
    assert error["code"] == code and error["message"] and error["type"]


def test_unknown_model_is_404(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model="no-such-model", messages=CHAT, max_tokens=4)
    assert caught.value.status_code == 404
    assert isinstance(caught.value.body, dict) and "no-such-model" in caught.value.body["message"]


def test_prompt_longer_than_max_model_len_is_400(client: openai.OpenAI, servers: Servers) -> None:
    limit = servers.tiny_config.engine.max_model_len
    assert limit is not None
    with pytest.raises(openai.BadRequestError) as caught:
        client.completions.create(
            model=servers.tiny_config.served_model_name, prompt=[5] * (limit + 10), max_tokens=4
        )
    assert caught.value.status_code == 400
    assert "maximum context length" in str(caught.value) and str(limit) in str(caught.value)


def test_malformed_json_is_400(servers: Servers) -> None:
    response = httpx.post(
        f"{servers.tiny.base_url}/v1/chat/completions",
        content=b'{"model": "tiny", "messages": [',
        headers={"content-type": "application/json"},
        timeout=30,
    )
    assert response.status_code == 400
    _assert_error_object(response.json(), 400)


def test_wrong_parameter_types_are_400(servers: Servers, model: str) -> None:
    response = httpx.post(
        f"{servers.tiny.base_url}/v1/chat/completions",
        json={"model": model, "messages": CHAT, "max_tokens": "many", "temperature": [1]},
        timeout=30,
    )
    assert response.status_code == 400
    _assert_error_object(response.json(), 400)


def test_server_stays_healthy_after_errors(client: openai.OpenAI, servers: Servers) -> None:
    for _ in range(3):
        httpx.post(f"{servers.tiny.base_url}/v1/completions", content=b"{", timeout=30)
        with pytest.raises(openai.NotFoundError):
            client.completions.create(model="nope", prompt="x", max_tokens=1)
    assert httpx.get(f"{servers.tiny.base_url}/health", timeout=30).status_code == 200
    ok = client.completions.create(
        model=servers.tiny_config.served_model_name, prompt="hi", max_tokens=2
    )
    assert ok.choices[0].text is not None


def test_health_and_metrics(servers: Servers) -> None:
    assert httpx.get(f"{servers.tiny.base_url}/health", timeout=30).status_code == 200
    metrics = httpx.get(f"{servers.tiny.base_url}/metrics", timeout=30)
    assert metrics.status_code == 200
    assert "vllm:num_requests_waiting" in metrics.text


def _cosine(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


def test_embeddings_rank_similar_sentences_closer(servers: Servers) -> None:
    client = openai.OpenAI(base_url=f"{servers.embed.base_url}/v1", api_key="unused")
    texts = [
        "A man is playing a guitar.",
        "Someone plays an acoustic guitar on stage.",
        "The stock market fell sharply this morning.",
    ]
    response = client.embeddings.create(model="all-MiniLM-L6-v2", input=texts)
    vectors = [item.embedding for item in response.data]
    assert all(len(v) == 384 for v in vectors)
    similar, unrelated = _cosine(vectors[0], vectors[1]), _cosine(vectors[0], vectors[2])
    assert similar > unrelated + 0.2, (similar, unrelated)

"""Chat completions through the official openai client: plain, streamed, n, stop, logprobs."""
import json

import requests


def ask(client, model, text, **kw):
    return client.chat.completions.create(model=model, messages=[{"role": "user", "content": text}], **kw)


def test_models_and_health(client, main_url):
    models = client.models.list()
    assert [m.id for m in models.data] == ["sparrow-test"]
    assert requests.get(main_url + "/health").json() == {"status": "ok"}


def test_plain_chat(client, model):
    r = ask(client, model, "What is 2+2? Answer with one number.", temperature=0, max_tokens=16)
    c = r.choices[0]
    assert r.object == "chat.completion" and r.id.startswith("chatcmpl-")
    assert c.message.role == "assistant"
    assert "4" in c.message.content
    assert c.finish_reason in ("stop", "length")
    u = r.usage
    assert u.prompt_tokens > 0 and u.completion_tokens > 0
    assert u.total_tokens == u.prompt_tokens + u.completion_tokens
    assert u.prompt_tokens_details.cached_tokens >= 0


def test_system_and_multi_turn(client, model):
    r = client.chat.completions.create(model=model, temperature=0, max_tokens=24, messages=[
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Name a color."},
        {"role": "assistant", "content": "Blue."},
        {"role": "developer", "content": "Answer in lowercase."},
        {"role": "user", "content": [{"type": "text", "text": "Name another color."}]},
    ])
    assert r.choices[0].message.content


def test_streamed_equals_plain(client, model):
    kw = dict(temperature=0, max_tokens=24)
    plain = ask(client, model, "Write a haiku about rust.", **kw).choices[0].message.content
    stream = ask(client, model, "Write a haiku about rust.", stream=True, stream_options={"include_usage": True}, **kw)
    text, finish, usage, roles = "", None, None, 0
    for chunk in stream:
        assert chunk.object == "chat.completion.chunk"
        if chunk.usage is not None:
            usage = chunk.usage
            assert chunk.choices == []
            continue
        d = chunk.choices[0].delta
        roles += d.role == "assistant"
        text += d.content or ""
        finish = chunk.choices[0].finish_reason or finish
    assert text == plain
    assert roles == 1
    assert finish in ("stop", "length")
    assert usage is not None and usage.completion_tokens > 0


def test_raw_sse_format(main_url, key, model):
    r = requests.post(main_url + "/v1/chat/completions", stream=True, headers={"Authorization": f"Bearer {key}"},
                      json={"model": model, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 8, "stream": True})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/event-stream")
    events = [line for line in r.iter_lines(decode_unicode=True) if line]
    assert all(e.startswith("data: ") for e in events)
    assert events[-1] == "data: [DONE]"
    first = json.loads(events[0][6:])
    assert first["choices"][0]["delta"]["role"] == "assistant"
    last = json.loads(events[-2][6:])
    assert last["choices"][0]["finish_reason"] in ("stop", "length")


def test_max_tokens_and_length(client, model):
    r = ask(client, model, "Count from 1 to 100.", temperature=0, max_completion_tokens=5)
    assert r.choices[0].finish_reason == "length"
    assert r.usage.completion_tokens == 5


def test_stop_string(client, model):
    free = ask(client, model, "Count from 1 to 10, separated by commas.", temperature=0, max_tokens=40).choices[0].message.content
    assert "3" in free
    cut = ask(client, model, "Count from 1 to 10, separated by commas.", temperature=0, max_tokens=40, stop=["3"])
    assert cut.choices[0].finish_reason == "stop"
    assert "3" not in cut.choices[0].message.content
    assert free.startswith(cut.choices[0].message.content)


def test_n_and_seed(client, model):
    kw = dict(temperature=1.0, max_tokens=12, seed=42, n=3)
    a = ask(client, model, "Invent a word.", **kw)
    b = ask(client, model, "Invent a word.", **kw)
    assert [c.index for c in a.choices] == [0, 1, 2]
    assert [c.message.content for c in a.choices] == [c.message.content for c in b.choices]


def test_sampling_parameters_accepted(client, model):
    r = ask(client, model, "Say something.", temperature=0.7, top_p=0.9, presence_penalty=0.5, frequency_penalty=0.3,
            logit_bias={"15": -100}, max_tokens=8, extra_body={"top_k": 20, "min_p": 0.1})
    assert r.choices[0].message.content is not None


def test_logprobs(client, model):
    r = ask(client, model, "Say hi.", temperature=0, max_tokens=6, logprobs=True, top_logprobs=3)
    content = r.choices[0].logprobs.content
    assert len(content) == r.usage.completion_tokens
    for entry in content:
        assert entry.logprob <= 0
        assert len(entry.top_logprobs) == 3
        # Greedy: the chosen token is the most likely one.
        assert entry.top_logprobs[0].token == entry.token
        assert abs(entry.top_logprobs[0].logprob - entry.logprob) < 1e-6
        assert bytes(entry.bytes).decode("utf-8", "replace") == entry.token or entry.bytes


def test_prefix_cache_reports_cached_tokens(client, model):
    system = "You are a helpful assistant for the Sparrow project. " * 40
    msgs = [{"role": "system", "content": system}, {"role": "user", "content": "Say OK."}]
    first = client.chat.completions.create(model=model, messages=msgs, temperature=0, max_tokens=2)
    msgs[1]["content"] = "Say yes."
    second = client.chat.completions.create(model=model, messages=msgs, temperature=0, max_tokens=2)
    assert second.usage.prompt_tokens_details.cached_tokens >= 300
    assert second.usage.prompt_tokens_details.cached_tokens < second.usage.prompt_tokens
    assert first.usage.prompt_tokens > 300


def test_completions_endpoint(client, model):
    r = client.completions.create(model=model, prompt="def fibonacci(n):", max_tokens=12, temperature=0)
    assert r.object == "text_completion"
    assert r.choices[0].text
    assert r.usage.completion_tokens == 12 or r.choices[0].finish_reason == "stop"
    s = client.completions.create(model=model, prompt="def fibonacci(n):", max_tokens=12, temperature=0, stream=True)
    assert "".join(c.choices[0].text for c in s if c.choices) == r.choices[0].text
    lp = client.completions.create(model=model, prompt="1, 2, 3,", max_tokens=3, temperature=0, logprobs=2, echo=True)
    assert lp.choices[0].text.startswith("1, 2, 3,")
    assert len(lp.choices[0].logprobs.tokens) == 3
    assert all(len(t) == 2 for t in lp.choices[0].logprobs.top_logprobs)


def test_metrics(main_url, key):
    assert requests.get(main_url + "/metrics").status_code == 401
    text = requests.get(main_url + "/metrics", headers={"Authorization": f"Bearer {key}"}).text
    for name in ("sparrow_requests_total", "sparrow_request_duration_seconds_bucket", "sparrow_queue_depth",
                 "sparrow_prompt_tokens_cached_total", "sparrow_completion_tokens_total", "sparrow_time_to_first_token_seconds_count"):
        assert name in text

"""Thinking on/off with a Qwen3-style template (Qwen3.5's, whose generation prompt opens <think>)."""


def ask(client, **kw):
    return client.chat.completions.create(model="sparrow-thinking", temperature=0, max_tokens=40,
                                          messages=[{"role": "user", "content": "What is 7 times 6?"}], **kw)


def test_thinking_off_has_no_reasoning(thinking_client):
    r = ask(thinking_client, extra_body={"chat_template_kwargs": {"enable_thinking": False}})
    m = r.choices[0].message
    assert m.content
    assert getattr(m, "reasoning_content", None) is None
    assert "<think>" not in m.content and "</think>" not in m.content


def test_reasoning_effort_none_is_thinking_off(thinking_client):
    r = ask(thinking_client, reasoning_effort="none")
    assert getattr(r.choices[0].message, "reasoning_content", None) is None


def test_thinking_on_keeps_reasoning_apart(thinking_client):
    r = ask(thinking_client, extra_body={"chat_template_kwargs": {"enable_thinking": True}})
    m = r.choices[0].message
    reasoning = getattr(m, "reasoning_content", None) or (m.model_extra or {}).get("reasoning_content")
    assert reasoning, m
    assert "<think>" not in reasoning and "</think>" not in reasoning
    assert "</think>" not in (m.content or "")
    if m.content:
        assert reasoning not in m.content


def test_thinking_streamed(thinking_client):
    stream = ask(thinking_client, stream=True)
    reasoning, content = "", ""
    for chunk in stream:
        if chunk.choices:
            d = chunk.choices[0].delta
            reasoning += (d.model_extra or {}).get("reasoning_content") or ""
            content += d.content or ""
    assert reasoning
    assert "</think>" not in content and "</think>" not in reasoning

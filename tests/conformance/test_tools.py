"""Tool calling: the model's <tool_call> output parsed into tool_calls, plain and streamed."""
import json

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather in a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
TIME = {
    "type": "function",
    "function": {
        "name": "get_time",
        "description": "Get the current time in a time zone.",
        "parameters": {"type": "object", "properties": {"zone": {"type": "string"}}, "required": ["zone"]},
    },
}
ASK = [{"role": "user", "content": "What is the weather like in Paris right now?"}]


def check_call(call, name):
    assert call.type == "function"
    assert call.id
    assert call.function.name == name
    args = json.loads(call.function.arguments)
    assert isinstance(args, dict)
    return args


def test_auto_calls_tool(client, model):
    r = client.chat.completions.create(model=model, messages=ASK, tools=[WEATHER, TIME], temperature=0, max_tokens=64)
    c = r.choices[0]
    assert c.finish_reason == "tool_calls", c.message
    args = check_call(c.message.tool_calls[0], "get_weather")
    assert "paris" in json.dumps(args).lower()
    assert "<tool_call>" not in (c.message.content or "")


def test_required_forces_a_call(client, model):
    msgs = [{"role": "user", "content": "Hello there!"}]
    for tools in ([WEATHER], [TIME, WEATHER]):
        r = client.chat.completions.create(model=model, messages=msgs, tools=tools, tool_choice="required",
                                           temperature=0, max_tokens=64)
        assert r.choices[0].finish_reason == "tool_calls"
        call = r.choices[0].message.tool_calls[0]
        # Only an offered name can be generated.
        check_call(call, call.function.name)
        assert call.function.name in [t["function"]["name"] for t in tools]


def test_named_choice(client, model):
    r = client.chat.completions.create(model=model, messages=ASK, tools=[WEATHER, TIME],
                                       tool_choice={"type": "function", "function": {"name": "get_time"}},
                                       temperature=0, max_tokens=64)
    check_call(r.choices[0].message.tool_calls[0], "get_time")


def test_none_gives_text(client, model):
    r = client.chat.completions.create(model=model, messages=ASK, tools=[WEATHER], tool_choice="none",
                                       temperature=0, max_tokens=24)
    assert r.choices[0].message.tool_calls is None
    assert r.choices[0].message.content


def test_streamed_tool_call_deltas(client, model):
    """The call's id and name come first; its arguments follow in pieces, as OpenAI streams them."""
    stream = client.chat.completions.create(model=model, messages=ASK, tools=[WEATHER], tool_choice="required",
                                            temperature=0, max_tokens=64, stream=True)
    calls, finish, argument_deltas = {}, None, 0
    for chunk in stream:
        if not chunk.choices:
            continue
        d = chunk.choices[0].delta
        for tc in d.tool_calls or []:
            first = tc.index not in calls
            entry = calls.setdefault(tc.index, {"name": "", "arguments": "", "id": None})
            assert (tc.id is not None) == first, "only a call's first delta carries its id"
            entry["id"] = entry["id"] or tc.id
            entry["name"] += (tc.function.name or "") if tc.function else ""
            if tc.function and tc.function.arguments:
                entry["arguments"] += tc.function.arguments
                argument_deltas += 1
        finish = chunk.choices[0].finish_reason or finish
    assert finish == "tool_calls"
    assert calls[0]["name"] == "get_weather" and calls[0]["id"]
    assert isinstance(json.loads(calls[0]["arguments"]), dict)
    assert argument_deltas >= 2, "arguments arrive token by token, not in one piece"


def test_tool_result_round_trip(client, model):
    first = client.chat.completions.create(model=model, messages=ASK, tools=[WEATHER], tool_choice="required",
                                           temperature=0, max_tokens=64)
    call = first.choices[0].message.tool_calls[0]
    msgs = ASK + [first.choices[0].message.model_dump(exclude_none=True),
                  {"role": "tool", "tool_call_id": call.id, "content": json.dumps({"temperature_c": 18, "sky": "clear"})}]
    r = client.chat.completions.create(model=model, messages=msgs, tools=[WEATHER], temperature=0, max_tokens=48)
    assert r.choices[0].message.content

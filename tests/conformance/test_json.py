"""response_format: json_object and json_schema enforced by constrained decoding."""
import json

import jsonschema
import openai
import pytest

PERSON = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "age": {"type": "integer"},
        "languages": {"type": "array", "items": {"type": "string", "enum": ["swift", "python", "rust", "c"]},
                      "minItems": 1, "maxItems": 3},
        "employed": {"type": "boolean"},
        "nickname": {"type": ["string", "null"]},
    },
    "required": ["name", "age", "languages", "employed"],
    "additionalProperties": False,
}
FORMAT = {"type": "json_schema", "json_schema": {"name": "person", "schema": PERSON, "strict": True}}
ASK = [{"role": "user", "content": "Describe a fictional programmer as JSON."}]


def test_json_schema_output_validates(client, model):
    r = client.chat.completions.create(model=model, messages=ASK, response_format=FORMAT, temperature=0, max_tokens=200)
    c = r.choices[0]
    assert c.finish_reason == "stop", c.message.content
    jsonschema.validate(json.loads(c.message.content), PERSON)


def test_json_schema_sampled_and_streamed(client, model):
    stream = client.chat.completions.create(model=model, messages=ASK, response_format=FORMAT, temperature=1.0, seed=7,
                                            max_tokens=200, stream=True)
    text = "".join(ch.choices[0].delta.content or "" for ch in stream if ch.choices)
    jsonschema.validate(json.loads(text), PERSON)


def test_json_object(client, model):
    r = client.chat.completions.create(model=model, temperature=0, max_tokens=120, response_format={"type": "json_object"},
                                       messages=[{"role": "user", "content": "Give me a JSON object with a city and its country."}])
    assert isinstance(json.loads(r.choices[0].message.content), dict)


def test_unsupported_keyword_is_refused(client, model):
    schema = {"type": "object", "properties": {"email": {"type": "string", "format": "email"}}}
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model=model, messages=ASK, max_tokens=10,
                                       response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": schema}})
    assert "format" in e.value.body["param"]


def test_json_with_thinking_keeps_reasoning_out(thinking_client):
    r = thinking_client.chat.completions.create(
        model="sparrow-thinking", temperature=0, max_tokens=300, response_format=FORMAT, messages=ASK,
        extra_body={"chat_template_kwargs": {"enable_thinking": False}})
    m = r.choices[0].message
    jsonschema.validate(json.loads(m.content), PERSON)
    assert getattr(m, "reasoning_content", None) is None

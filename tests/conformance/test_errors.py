"""Each error class answers with the right status and an OpenAI-shaped body; the server survives."""
import socket
import threading
import time
import urllib.parse

import openai
import pytest
import requests


def post(url, key, body, raw=False, path="/v1/chat/completions"):
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    if raw:
        return requests.post(url + path, data=body, headers=headers)
    return requests.post(url + path, json=body, headers=headers)


def check_error(r, status, code=None, param=None):
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert set(err) >= {"message", "type", "param", "code"}
    assert err["message"]
    if code:
        assert err["code"] == code
    if param:
        assert err["param"] == param
    return err


MSG = [{"role": "user", "content": "hi"}]


def test_malformed_json(main_url, key):
    check_error(post(main_url, key, b'{"model": "x", "messages": [', raw=True), 400, "invalid_json")
    check_error(post(main_url, key, b'[1, 2]', raw=True), 400)
    check_error(post(main_url, key, b'\xff\xfe', raw=True), 400)


def test_unknown_model(client):
    with pytest.raises(openai.NotFoundError) as e:
        client.chat.completions.create(model="no-such-model", messages=MSG)
    assert e.value.body["code"] == "model_not_found"


def test_missing_or_wrong_key(main_url, model):
    bad = openai.OpenAI(base_url=main_url + "/v1", api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.chat.completions.create(model=model, messages=MSG)
    check_error(requests.get(main_url + "/v1/models"), 401, "invalid_api_key")


def test_context_overflow(client, model):
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model=model, messages=[{"role": "user", "content": "word " * 5000}])
    assert e.value.body["code"] == "context_length_exceeded"
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model=model, messages=MSG, max_tokens=5000)
    assert e.value.body["code"] == "context_length_exceeded"


@pytest.mark.parametrize("extra,param", [
    ({"temperature": 5}, "temperature"),
    ({"top_p": 0}, "top_p"),
    ({"n": 0}, "n"),
    ({"max_tokens": -1}, "max_tokens"),
    ({"top_logprobs": 3}, "top_logprobs"),
    ({"logit_bias": {"abc": 1}}, "logit_bias"),
    ({"stop": [1, 2]}, "stop"),
    ({"messages": []}, "messages"),
    ({"messages": [{"role": "wizard", "content": "x"}]}, "messages[0].role"),
    ({"tool_choice": "required"}, "tool_choice"),
    ({"stream_options": {"include_usage": True}}, "stream_options"),
    ({"frobnicate": True}, "frobnicate"),
    ({"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "string", "format": "email"}}}},
     "response_format.json_schema.schema.format"),
])
def test_invalid_parameters(main_url, key, model, extra, param):
    body = {"model": model, "messages": MSG, "max_tokens": 4}
    body.update(extra)
    check_error(post(main_url, key, body), 400, param=param)


def test_invalid_parameter_via_client(client, model):
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model=model, messages=MSG, temperature=-1)


def test_request_too_large(tight_url):
    body = '{"model": "sparrow-tight", "messages": [{"role": "user", "content": "' + "x" * 70000 + '"}]}'
    check_error(requests.post(tight_url + "/v1/chat/completions", data=body), 413, "request_too_large")


def test_queue_full_then_timeout(tight_url):
    # One sequence, no queue: a long generation holds the slot, a second request is refused (429);
    # the long one runs into the 3 s request timeout (408).
    results = {}

    def long_request():
        results["long"] = requests.post(tight_url + "/v1/chat/completions", json={
            "model": "sparrow-tight", "messages": [{"role": "user", "content": "Write a very long story."}],
            "max_tokens": 3000, "temperature": 0})

    t = threading.Thread(target=long_request)
    t.start()
    time.sleep(1.0)
    r = requests.post(tight_url + "/v1/chat/completions", json={"model": "sparrow-tight", "messages": MSG, "max_tokens": 2})
    check_error(r, 429, "queue_full")
    t.join(timeout=60)
    check_error(results["long"], 408, "timeout")


def test_disconnect_cancels(tight_url):
    # A streamed request whose client goes away frees its slot: the next request is served.
    u = urllib.parse.urlparse(tight_url)
    body = b'{"model": "sparrow-tight", "stream": true, "max_tokens": 2000, "messages": [{"role": "user", "content": "Write a long story."}]}'
    s = socket.create_connection((u.hostname, u.port))
    s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: "
              + str(len(body)).encode() + b"\r\n\r\n" + body)
    assert b"200" in s.recv(4096)
    time.sleep(0.3)
    s.close()
    deadline = time.time() + 2.5  # well before the 3 s timeout would free it
    while True:
        r = requests.post(tight_url + "/v1/chat/completions", json={"model": "sparrow-tight", "messages": MSG, "max_tokens": 2})
        if r.status_code == 200 or time.time() > deadline:
            break
        time.sleep(0.1)
    assert r.status_code == 200, r.text


def test_server_still_healthy(main_url, tight_url):
    assert requests.get(main_url + "/health").status_code == 200
    assert requests.get(tight_url + "/health").status_code == 200

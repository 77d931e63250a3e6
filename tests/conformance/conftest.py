"""Fixtures: OpenAI clients bound to the servers run.py started."""
import os

import openai
import pytest


def _url(name):
    url = os.environ.get(f"SPARROW_{name}_URL")
    if not url:
        pytest.skip(f"SPARROW_{name}_URL not set; run tests/conformance/run.py")
    return url


@pytest.fixture(scope="session")
def main_url():
    return _url("MAIN")


@pytest.fixture(scope="session")
def key():
    return os.environ.get("SPARROW_TEST_KEY", "")


@pytest.fixture(scope="session")
def client(main_url, key):
    return openai.OpenAI(base_url=main_url + "/v1", api_key=key, max_retries=0, timeout=120)


@pytest.fixture(scope="session")
def model(client):
    return client.models.list().data[0].id


@pytest.fixture(scope="session")
def thinking_client():
    return openai.OpenAI(base_url=_url("THINKING") + "/v1", api_key="unused", max_retries=0, timeout=120)


@pytest.fixture(scope="session")
def tight_url():
    return _url("TIGHT")


@pytest.fixture(scope="session")
def tight_client(tight_url):
    return openai.OpenAI(base_url=tight_url + "/v1", api_key="unused", max_retries=0, timeout=120)

"""The endpoint's access rules without a server: exposure, token digests, rate and concurrency."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rag_assets.retrieval.access import (
    INSECURE_NO_AUTH_FLAG,
    ConcurrencyGate,
    RateLimiter,
    exposure_error,
    is_loopback,
    new_token,
    token_digest,
)
from rag_assets.retrieval.clients import ENVIRONMENT_CLIENT, ClientDirectory


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize("host", ["127.0.0.1", "127.8.9.1", "::1", "[::1]", "localhost"])
def test_loopback_hosts(host):
    assert is_loopback(host)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.0.0.5", "example.org", "", "127.0.0.1.nip.io"])
def test_other_hosts_are_not_loopback(host):
    assert not is_loopback(host)


def test_without_credentials_the_endpoint_refuses_to_start_and_says_what_to_do():
    error = exposure_error("127.0.0.1", insecure_no_auth=False, credentials_configured=False)
    assert "rag-assets retrieval-clients add NAME" in error and INSECURE_NO_AUTH_FLAG in error


def test_insecure_no_auth_is_only_for_loopback():
    assert exposure_error("127.0.0.1", True, False) is None
    assert exposure_error("::1", True, True) is None
    error = exposure_error("0.0.0.0", True, True)
    assert error.startswith(f"{INSECURE_NO_AUTH_FLAG} is only allowed on a loopback address")


@given(st.text(max_size=40), st.booleans())
def test_with_credentials_any_host_may_serve(host, insecure):
    allowed = exposure_error(host, insecure, credentials_configured=True) is None
    assert allowed == (not insecure or is_loopback(host))


def test_tokens_are_random_and_kept_as_digests():
    first, second = new_token(), new_token()
    assert first != second and len(first) >= 43
    assert token_digest(first) != token_digest(second)
    assert first not in token_digest(first) and len(token_digest(first)) == 64


def test_a_client_gets_its_burst_then_its_rate():
    clock = Clock()
    limiter = RateLimiter(rate=2.0, burst=3, clock=clock)
    assert [limiter.wait_for("a") for _ in range(3)] == [0, 0, 0]
    assert limiter.wait_for("a") == pytest.approx(0.5)
    assert limiter.wait_for("b") == 0  # another client has a bucket of its own
    clock.now += 0.5
    assert limiter.wait_for("a") == 0
    assert limiter.wait_for("a") > 0


@given(st.lists(st.floats(min_value=0, max_value=2, allow_nan=False), min_size=1, max_size=200),
       st.floats(min_value=0.5, max_value=50), st.integers(min_value=1, max_value=10))
def test_no_client_gets_more_than_its_burst_plus_its_rate(gaps, rate, burst):
    clock = Clock()
    limiter = RateLimiter(rate=rate, burst=burst, clock=clock)
    allowed = 0
    for gap in gaps:
        clock.now += gap
        allowed += limiter.wait_for("enumerator") == 0
    assert allowed <= burst + rate * sum(gaps) + 1e-9


def test_the_limiter_forgets_idle_clients_to_bound_its_memory():
    clock = Clock()
    limiter = RateLimiter(rate=1.0, burst=1, clock=clock, max_clients=10)
    for n in range(10):
        limiter.wait_for(f"c{n}")
    clock.now += 5
    limiter.wait_for("new")
    assert len(limiter._buckets) == 1


def test_the_gate_admits_up_to_its_limit_and_never_waits():
    gate = ConcurrencyGate(2)
    assert gate.try_enter() and gate.try_enter()
    assert not gate.try_enter()
    gate.leave()
    assert gate.try_enter()


def test_the_directory_caches_answers_and_sees_revocations_after_its_ttl():
    clock, table = Clock(), {token_digest("tok-a"): "client-a"}
    calls = []

    def lookup(digest):
        calls.append(digest)
        return table.get(digest)

    directory = ClientDirectory(lookup, environment_token="env-token", cache_s=5, clock=clock)
    assert directory.client_of("env-token") == ENVIRONMENT_CLIENT
    assert directory.client_of("tok-a") == "client-a"
    assert directory.client_of("tok-a") == "client-a" and len(calls) == 1
    table.clear()  # revoked
    clock.now += 6
    assert directory.client_of("tok-a") is None
    assert directory.client_of("wrong") is None

"""The one stream reader of build, pull and push: every message, a wall-clock limit, errors raised here."""

from __future__ import annotations

import threading
import time

import pytest

from ansible_collections.appfleet.docker.plugins.module_utils._stream import read_stream_within


def test_every_message_is_handed_on_in_order():
    seen = []
    assert read_stream_within(lambda: iter([{"a": 1}, {"b": 2}]), seen.append, 5) is True
    assert seen == [{"a": 1}, {"b": 2}]


def test_a_silent_stream_is_given_up_on_at_the_limit():
    release = threading.Event()

    def silent():
        yield {"first": True}
        release.wait(30)

    seen = []
    started = time.monotonic()
    assert read_stream_within(silent, seen.append, 0.5, name="appfleet-test") is False
    assert 0.4 < time.monotonic() - started < 5
    assert seen == [{"first": True}]
    release.set()


@pytest.mark.parametrize("where", ["opening", "reading", "handling"])
def test_an_error_is_raised_in_the_callers_thread(where):
    def open_stream():
        if where == "opening":
            raise ValueError("opening")
        return broken()

    def broken():
        yield 1
        raise ValueError("reading")

    def handle(message):
        if where == "handling":
            raise ValueError("handling")

    with pytest.raises(ValueError, match=where):
        read_stream_within(open_stream, handle, 5)

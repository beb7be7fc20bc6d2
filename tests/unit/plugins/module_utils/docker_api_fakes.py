"""Stand-ins for the Docker SDK client in the registry, image_pull and image_push unit tests (the stream reader, the inspect)."""

from __future__ import annotations

import time


class StreamApi(object):
    """client.api whose pull and push stream ``messages``, sleeping ``pause`` s before each, or raise ``error``."""

    def __init__(self, messages=(), pause=0.0, error=None):
        self.messages, self.pause, self.error = list(messages), pause, error
        self.calls = []

    def _stream(self):
        if self.error:
            raise self.error
        for message in self.messages:
            time.sleep(self.pause)
            yield message

    def pull(self, name, auth_config=None, stream=False, decode=False):
        self.calls.append(dict(name=name, auth_config=auth_config, stream=stream, decode=decode))
        return self._stream()

    def push(self, repository, tag=None, auth_config=None, stream=False, decode=False):
        self.calls.append(dict(repository=repository, tag=tag, auth_config=auth_config, stream=stream, decode=decode))
        return self._stream()


class InspectApi(object):
    """client.api for a distribution inspect: an engine API version and an answer (or error)."""

    def __init__(self, version="1.41", answer=None, error=None):
        self.api_version, self.answer, self.error = version, answer, error
        self.calls = []

    def inspect_distribution(self, name, auth_config=None):
        self.calls.append((name, auth_config))
        if self.error:
            raise self.error
        return self.answer


class FakeClient(object):
    def __init__(self, api):
        self.api = api

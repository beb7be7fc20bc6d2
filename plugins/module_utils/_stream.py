# -*- coding: utf-8 -*-
# Copyright: appfleet developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one reader of an engine stream (build, pull, push) with a wall-clock limit.

Private to this collection (leading underscore): not a public API.
"""

from __future__ import annotations

import threading


def read_stream_within(open_stream, on_message, timeout, name="appfleet-stream"):
    """Call ``on_message(message)`` for each message of ``open_stream()``, for at most ``timeout`` s.

    Returns True when the stream ended in time, False when the time was over. The stream is
    read in a daemon thread and given up on when the time is over, even while the engine
    sends nothing: the module then exits, which closes the connection, and the engine
    cancels the build, pull or push. An error raised while opening or reading the stream
    (an APIError the caller turns into a message, the engine gone ...) is raised again
    here, in the caller's thread.
    """
    raised = []

    def read():
        try:
            for message in open_stream():
                on_message(message)
        except Exception as exc:  # pylint: disable=broad-exception-caught  # raised again below
            raised.append(exc)

    reader = threading.Thread(target=read, name=name, daemon=True)
    reader.start()
    reader.join(timeout)
    if reader.is_alive():
        return False
    if raised:
        raise raised[0]
    return True

"""A reply crafted to run code when unpickled, framed as a channel message: the grader never unpickles, and refuses it."""
import io
import os
import struct

import torch


class Payload:
    def __reduce__(self):
        return (os.system, ("touch {OUT}/pwned",))


def corr2d(X, K, padding=0, stride=1):
    buffer = io.BytesIO()
    torch.save({"ok": True, "value": Payload()}, buffer)
    body = buffer.getvalue()
    os.write(3, struct.pack(">QQ", len(body), len(body)) + body)  # the channel's socket and its framing
    import time
    time.sleep(30)

"""A real SMTP server for the tests (aiosmtpd): accepts mail on 127.0.0.1 and writes each
delivered message to a file in DIR (one JSON object: envelope sender, recipients, content).
A recipient whose local part starts with "refused" is refused with 550, as a strict relay
would. Prints "ready PORT" once listening; stops when stdin closes."""

import json
import os
import socket
import sys
import time
import uuid

from aiosmtpd.controller import Controller


class Sink:
    def __init__(self, out_dir):
        self.out_dir = out_dir

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.split("@")[0].startswith("refused"):
            return "550 5.1.1 mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        record = {
            "from": envelope.mail_from,
            "to": envelope.rcpt_tos,
            "content": envelope.content.decode("utf-8", "replace"),
            "accepted_at": time.time(),
        }
        name = os.path.join(self.out_dir, uuid.uuid4().hex + ".json")
        with open(name + ".tmp", "w") as f:
            json.dump(record, f)
        os.rename(name + ".tmp", name)
        return "250 Message accepted for delivery"


def main():
    out_dir = sys.argv[1]
    # aiosmtpd's controller checks itself by connecting to its configured port, so it needs a
    # real one: take a free port from the kernel first.
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    controller = Controller(Sink(out_dir), hostname="127.0.0.1", port=port)
    controller.start()
    print(f"ready {port}", flush=True)
    try:
        sys.stdin.read()
    finally:
        controller.stop()


if __name__ == "__main__":
    main()

"""The real WhatsApp worker with the fake engine of ``fake_engine.py`` in place of
neonize's client: ``python engine_worker.py --auth-dir DIR``."""

from __future__ import annotations

import sys

from fake_engine import make_fake_client

from polpo.channels.whatsapp import worker

if __name__ == "__main__":
    sys.exit(worker.main(sys.argv[1:], make_client=make_fake_client))

"""The WhatsApp channel: neonize (whatsmeow) in a supervised worker process.

Importing this package does not import neonize: only the worker process
(``python -m polpo.channels.whatsapp.worker``) and the normalisation module do.
"""

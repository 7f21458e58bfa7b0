"""The TLS context every connection to an SIS shares.

A verifying context loads the whole CA bundle, about 25 ms of CPU each time, and httpx builds a new one
for every client it creates unless it is handed one. A sync opens two clients per district and run (the
token endpoint's and the API's), so a fleet of scheduled districts, a backfill or the test suite would
parse the same bundle again and again. An ``ssl.SSLContext`` may serve any number of connections and
threads, so one is built per trust setting, by httpx's own rules (``SSL_CERT_FILE`` or ``SSL_CERT_DIR``
when set, else certifi's bundle), and shared for the life of the process. The trust settings are read on
every call, so pointing ``SSL_CERT_FILE`` at a private CA takes effect for the next client.
"""

from __future__ import annotations

import functools
import os
import ssl

import httpx


def verifying_context() -> ssl.SSLContext:
    """The certificate-verifying context ``httpx.Client(verify=True)`` would build now, built once."""
    return _context_for(os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR"))


@functools.cache
def _context_for(cert_file: str | None, cert_dir: str | None) -> ssl.SSLContext:
    """One context per trust setting; the arguments are the cache key (httpx reads the environment)."""
    return httpx.create_ssl_context()

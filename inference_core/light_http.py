"""urllib's `urlopen` for the light S3 and DynamoDB readers, with TLS set up only for https URLs.

`urllib.request.urlopen` builds its default opener on first use, and that opener's HTTPS handler loads the CA bundle
whatever the URL: 20 ms of the prediction function's cold start (cProfile: `SSLContext.set_default_verify_paths`)
against the local cloud's plain-HTTP endpoint. On AWS the endpoints are https and the handler is built, once, as
before. Otherwise these are urllib's default handlers for HTTP: proxies from the environment, redirects, HTTPError for
4xx/5xx. Not kept: ftp:, file: and data: URLs, and leaving plain HTTP by redirect or through an https:// proxy (both
fail with "unknown url type: https"); neither S3 nor DynamoDB asks for that.
"""

from __future__ import annotations

import threading
import urllib.parse
import urllib.request

_OPENERS: dict[bool, urllib.request.OpenerDirector] = {}
_LOCK = threading.Lock()


def opener(https: bool) -> urllib.request.OpenerDirector:
    """The process's opener for plain HTTP, or for HTTPS (which adds the TLS handler), built on first use."""
    with _LOCK:
        if https not in _OPENERS:
            built = urllib.request.OpenerDirector()
            handlers = [
                urllib.request.ProxyHandler(),
                urllib.request.UnknownHandler(),
                urllib.request.HTTPHandler(),
                urllib.request.HTTPDefaultErrorHandler(),
                urllib.request.HTTPRedirectHandler(),
                urllib.request.HTTPErrorProcessor(),
            ]
            if https:
                handlers.append(urllib.request.HTTPSHandler())
            for handler in handlers:
                built.add_handler(handler)
            _OPENERS[https] = built
        return _OPENERS[https]


def urlopen(request: urllib.request.Request, timeout: float):
    """`urllib.request.urlopen(request, timeout=...)`, without a TLS context for an http:// URL."""
    https = urllib.parse.urlsplit(request.full_url).scheme == "https"
    return opener(https).open(request, timeout=timeout)

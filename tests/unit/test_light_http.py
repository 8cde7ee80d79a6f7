"""The light readers' urlopen: plain HTTP without a TLS context (urllib's default opener loads the CA bundle for any
URL: 20 ms of a cold start), urllib's errors as before, and TLS built once for https URLs. A server on 127.0.0.1."""

from __future__ import annotations

import http.client
import http.server
import threading
import urllib.error
import urllib.request

import pytest

from inference_core import light_http


@pytest.fixture
def tls_contexts(monkeypatch) -> list[int]:
    """Every TLS context urllib's HTTPS handler creates, recorded; the openers start afresh."""
    made, create = [], http.client._create_https_context

    def recorded(*args, **kwargs):
        made.append(1)
        return create(*args, **kwargs)

    monkeypatch.setattr(http.client, "_create_https_context", recorded)
    monkeypatch.setattr(light_http, "_OPENERS", {})
    return made


@pytest.fixture
def server():
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            found = self.path == "/there"
            body = b"hello" if found else b"<Error><Code>NoSuchKey</Code></Error>"
            self.send_response(200 if found else 404)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_port}"
    httpd.shutdown()
    httpd.server_close()


def test_plain_http_answers_and_errors_like_urllib_without_a_tls_context(server, tls_contexts):
    with light_http.urlopen(urllib.request.Request(server + "/there"), timeout=5) as answer:
        assert answer.read() == b"hello" and answer.status == 200
    with pytest.raises(urllib.error.HTTPError) as missing:
        light_http.urlopen(urllib.request.Request(server + "/gone"), timeout=5)
    assert missing.value.code == 404 and b"NoSuchKey" in missing.value.read()
    assert tls_contexts == []


def test_https_gets_the_tls_handler_once(tls_contexts):
    first = light_http.opener(https=True)
    assert any(isinstance(h, urllib.request.HTTPSHandler) for h in first.handlers)
    assert light_http.opener(https=True) is first and tls_contexts == [1]
    assert not any(isinstance(h, urllib.request.HTTPSHandler) for h in light_http.opener(https=False).handlers)


def test_the_light_readers_open_urls_this_way():
    from inference_core.online_features import DynamoReader
    from inference_core.s3_reader import S3Reader
    from inference_core.sigv4 import Credentials

    assert S3Reader(Credentials("a", "b"), "us-east-1")._urlopen is light_http.urlopen
    assert DynamoReader(Credentials("a", "b"), "us-east-1")._urlopen is light_http.urlopen

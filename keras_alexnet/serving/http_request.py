"""One HTTP request whose timeout bounds the whole exchange, not each read (client.py's REST).

urllib's `timeout` applies to every socket operation on its own: a server that
answers one byte a second never trips it, and bin/predict --rest would wait
forever. Here a timer shuts the connection's socket down when the deadline
passes, which ends whatever read or write is under way; the caller then gets
`Timeout`, whatever stage the exchange had reached.
"""
import http.client
import socket
import threading
import time
import urllib.parse


class Timeout(Exception):
    """No complete answer within the deadline."""


class Unreachable(Exception):
    """No connection, or the connection broke before a complete answer."""


def _connection(url, timeout):
    parts = urllib.parse.urlsplit(url)
    https = parts.scheme == "https"
    make = http.client.HTTPSConnection if https else http.client.HTTPConnection
    # Always a port: given none, http.client would read one from an IPv6 host ("::1" -> 1).
    port = parts.port or (443 if https else 80)  # ValueError out of range: client checks first
    return make(parts.hostname, port, timeout=timeout), parts


def _shut(connection, fired):
    fired.set()
    sock = connection.sock
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:  # already closed
            pass


def request(url, body=None, *, timeout, headers=None):
    """(HTTP status, response body bytes) of GET url (body None) or POST body (bytes).

    Raises Timeout when the whole exchange (connecting, sending, the status line, the
    headers and the body) takes longer than `timeout` seconds, Unreachable when it fails.
    """
    connection, parts = _connection(url, timeout)
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    fired = threading.Event()
    timer = threading.Timer(timeout, _shut, (connection, fired))
    timer.daemon = True
    start = time.monotonic()
    timer.start()
    try:
        connection.request("GET" if body is None else "POST", path, body=body,
                           headers=headers or {})
        response = connection.getresponse()
        data = response.read()
        if fired.is_set() or time.monotonic() - start > timeout:
            raise Timeout()
        return response.status, data
    except (OSError, http.client.HTTPException) as e:
        if fired.is_set() or isinstance(e, socket.timeout) or time.monotonic() - start > timeout:
            raise Timeout() from None
        raise Unreachable(getattr(e, "strerror", None) or str(e) or type(e).__name__) from None
    finally:
        timer.cancel()
        connection.close()

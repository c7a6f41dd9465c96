"""A relay in front of the test PostgreSQL that records what each client sends it.

Used by the round-trip tests: a client connects to ``WireLog.port`` instead of
the server's, every byte goes through unchanged both ways, and the relay reads
the client's side of the protocol to record, per connection, the text of
each simple query (a ``Q`` message: one round trip; psycopg2 sends nothing
else once connected). Counting here rather than in a driver wrapper sees
what the server sees, BEGIN and COMMIT included, whoever sends them.
"""

from __future__ import annotations

import socket
import struct
import threading
from types import TracebackType

# Start-up packets that are answered by one byte and followed by the real start-up message.
_SSL_REQUEST, _GSSENC_REQUEST = 80877103, 80877104


class WireLog:
    """Relays 127.0.0.1:``port`` to the server; ``connections`` holds each client's queries, in order."""

    def __init__(self, server_port: int) -> None:
        self._server_port = server_port
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(16)
        self.port: int = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._connections: list[list[str]] = []
        self._sockets: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._closed = False
        accept = threading.Thread(target=self._accept, name="wire-log-accept", daemon=True)
        accept.start()
        self._threads.append(accept)

    @property
    def connections(self) -> list[list[str]]:
        with self._lock:
            return [list(c) for c in self._connections]

    def clear(self) -> None:
        with self._lock:
            self._connections.clear()

    def close(self) -> None:
        self._closed = True
        self._listener.close()
        with self._lock:
            for s in self._sockets:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()
        for t in self._threads:
            t.join(5)

    def __enter__(self) -> WireLog:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    # --- the relay -------------------------------------------------------------

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self._server_port))
            with self._lock:
                queries: list[str] = []
                self._connections.append(queries)
                self._sockets += [client, server]
            for target, args in ((self._client_side, (client, server, queries)), (self._pump, (server, client))):
                t = threading.Thread(target=target, args=args, name="wire-log-relay", daemon=True)
                t.start()
                self._threads.append(t)

    @staticmethod
    def _pump(source: socket.socket, dest: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                dest.sendall(data)
        except OSError:
            pass
        finally:
            try:
                dest.shutdown(socket.SHUT_WR)
            except OSError:
                pass

    def _client_side(self, client: socket.socket, server: socket.socket, queries: list[str]) -> None:
        """Relay the client's bytes, reading its messages: untyped start-up packets first
        (length, then a code), then typed ones (a type byte, then a length that counts itself)."""
        buffer = b""
        started = False
        try:
            while data := client.recv(65536):
                server.sendall(data)
                buffer += data
                while True:
                    if not started:
                        if len(buffer) < 8:
                            break
                        (length,) = struct.unpack("!I", buffer[:4])
                        if len(buffer) < length:
                            break
                        (code,) = struct.unpack("!I", buffer[4:8])
                        started = code not in (_SSL_REQUEST, _GSSENC_REQUEST)
                        buffer = buffer[length:]
                        continue
                    if len(buffer) < 5:
                        break
                    kind = buffer[:1]
                    (length,) = struct.unpack("!I", buffer[1:5])
                    if len(buffer) < 1 + length:
                        break
                    if kind == b"Q":
                        with self._lock:
                            queries.append(buffer[5 : 1 + length].rstrip(b"\0").decode())
                    buffer = buffer[1 + length :]
        except OSError:
            pass
        finally:
            try:
                server.shutdown(socket.SHUT_WR)
            except OSError:
                pass

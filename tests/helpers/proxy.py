"""A TCP proxy on loopback that forwards to a server or, switched to ``hang``, accepts
connections and never answers: the brownout of a dependency (the common outage), which a
stopped server (connection refused) does not reproduce."""

from __future__ import annotations

import socket
import threading


class SwitchableProxy:
    def __init__(self, target_port: int):
        self.target = ("127.0.0.1", target_port)
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.mode = "forward"
        self.hung = 0  # connections accepted while hanging
        self._open: list[socket.socket] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def set_mode(self, mode: str) -> None:
        """``hang`` also drops the forwarded connections, so kept-alive ones reconnect into it."""
        with self._lock:
            self.mode = mode
            for sock in self._open:
                try:
                    sock.close()
                except OSError:
                    pass
            self._open.clear()

    def close(self) -> None:
        self.set_mode("closed")
        self.server.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            with self._lock:
                self._open.append(client)
                if self.mode == "hang":
                    self.hung += 1
                    continue  # held open, never read, never answered
                if self.mode == "closed":
                    client.close()
                    continue
            upstream = socket.create_connection(self.target)
            with self._lock:
                self._open.append(upstream)
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                try:
                    sock.close()
                except OSError:
                    pass

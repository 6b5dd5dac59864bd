"""Fault injection: a TCP proxy that can cut a service off and bring it back.

The tests put it between the shop and RabbitMQ to play "the broker went away" without
stopping the machine's RabbitMQ. Cutting closes every open connection and refuses new ones,
which is what a stopped broker looks like to a client. Stalling keeps every connection open
and forwards nothing, which is what a broker that blocks its publishers (a memory or disk
alarm) or a network that drops packets looks like.
"""

import socket
import threading


class TcpProxy:
    def __init__(self, target_host, target_port, listen_host="127.0.0.1"):
        self.target = (target_host, target_port)
        self.listen_host = listen_host
        self.port = free_port()
        self._lock = threading.Lock()
        self._sockets = set()
        self._server = None
        self._flowing = threading.Event()
        self._flowing.set()

    def start(self):
        server = socket.create_server((self.listen_host, self.port), reuse_port=False)
        server.listen(64)
        self._server = server
        threading.Thread(target=self._accept, args=(server,), daemon=True).start()
        return self

    def cut(self):
        """Close the listening socket and every open connection."""
        with self._lock:
            server, self._server = self._server, None
            sockets, self._sockets = self._sockets, set()
        if server:
            server.close()
        for sock in sockets:
            _close(sock)

    def restore(self):
        self.start()

    def stall(self):
        """Keep the connections open, and accept new ones, but let no byte through."""
        self._flowing.clear()

    def resume(self):
        self._flowing.set()

    stop = cut

    def _accept(self, server):
        while True:
            try:
                client, _ = server.accept()
            except OSError:
                return  # cut
            try:
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(None)
            except OSError:
                _close(client)
                continue
            with self._lock:
                if self._server is not server:
                    _close(client)
                    _close(upstream)
                    return
                self._sockets.update((client, upstream))
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(src, dst), daemon=True).start()

    def _pipe(self, src, dst):
        try:
            while data := src.recv(65536):
                self._flowing.wait()
                dst.sendall(data)
        except OSError:
            pass
        finally:
            _close(src)
            _close(dst)


def _close(sock):
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]

"""Helpers of scripts/bench-appmode.sh (not a test).

server PORT_HTTP PORT_IDLE BLOB   HTTP server: GET /blob sends BLOB (sendfile), PUT/POST reads the
                                  body and discards it; an idle server on PORT_IDLE answers each
                                  line with "ok\\n" and holds the connection.
idle SOCKS HOST PORT N READY      opens N SOCKS5 connections through SOCKS to HOST:PORT, one
                                  exchange each, writes READY (N and failures) and holds them until
                                  stdin closes, then closes them all.
"""
import asyncio
import os
import socket
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    blob = ""

    def log_message(self, *args):
        pass

    def do_GET(self):
        size = os.path.getsize(self.blob)
        self.send_response(200)
        self.send_header("Content-Length", str(size))
        self.end_headers()
        self.wfile.flush()
        with open(self.blob, "rb") as f:
            sent = 0
            while sent < size:
                n = os.sendfile(self.connection.fileno(), f.fileno(), sent, size - sent)
                if n == 0:
                    break
                sent += n

    def do_PUT(self):
        left = int(self.headers.get("Content-Length", "0"))
        buf = bytearray(1 << 20)
        view = memoryview(buf)
        while left > 0:
            n = self.connection.recv_into(view[: min(left, len(buf))])
            if n == 0:
                break
            left -= n
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_POST = do_PUT


async def idle_server(port):
    async def serve(reader, writer):
        try:
            while await reader.readline():
                writer.write(b"ok\n")
                await writer.drain()
        except OSError:
            pass
        writer.close()

    srv = await asyncio.start_server(serve, "0.0.0.0", port, backlog=1024)
    async with srv:
        await srv.serve_forever()


def server(http_port, idle_port, blob):
    import threading

    Handler.blob = blob
    ThreadingHTTPServer.daemon_threads = True
    httpd = ThreadingHTTPServer(("0.0.0.0", http_port), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    asyncio.run(idle_server(idle_port))


async def one(socks_host, socks_port, host, port):
    reader, writer = await asyncio.open_connection(socks_host, socks_port)
    writer.write(b"\x05\x01\x00")
    await reader.readexactly(2)
    writer.write(b"\x05\x01\x00\x01" + socket.inet_aton(host) + port.to_bytes(2, "big"))
    reply = await reader.readexactly(10)
    if reply[1] != 0:
        raise OSError(f"socks reply {reply[1]}")
    writer.write(b"hello\n")
    await writer.drain()
    if await reader.readline() != b"ok\n":
        raise OSError("no echo")
    return writer


async def idle(socks, host, port, n, ready):
    socks_host, socks_port = socks.rsplit(":", 1)
    results = []
    for start in range(0, n, 50):
        batch = [one(socks_host, int(socks_port), host, port) for _ in range(start, min(n, start + 50))]
        results += await asyncio.gather(*batch, return_exceptions=True)
    writers = [w for w in results if not isinstance(w, BaseException)]
    with open(ready, "w") as f:
        f.write(f"{len(writers)} {n - len(writers)}\n")
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    for w in writers:
        w.close()
    await asyncio.gather(*(w.wait_closed() for w in writers), return_exceptions=True)


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "server":
        server(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
    else:
        asyncio.run(idle(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), sys.argv[6]))

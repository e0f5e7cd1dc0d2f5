# t.py: the test helper behind test.sh: targets, load generators, strangers
# and a nameserver (loopback only; every wait bounded).
#
#   t.py serve LOG ECHO_PORT MUX_PORT   the targets (below)
#   t.py CMD ARGS...                    runs c_CMD(ARGS...), e.g.
#   t.py echo PORT N                    N bytes through PORT, echoed
#
# A c_ function fails with a message on stderr and exit status 1. The
# reference client, the fuzzer and the man in the middle are ref.py,
# fuzz.py and mitm.py.
import asyncio, hashlib, os, random, socket, struct, sys, time

from common import HOST, connect, data, fail, read_all, rst
from ref import CIPHERS, hello_key, stretch

# ---- targets ------------------------------------------------------------
# serve LOG ECHO_PORT MUX_PORT: echo on ECHO_PORT; on MUX_PORT the first line
# picks the mode. Every connection is logged: "<mode> in=<bytes> end=<how>".

def log(path, line):
    with open(path, "a") as f:
        f.write(line + "\n")


async def chunks(r):
    """What r delivers, up to EOF."""
    while True:
        b = await r.read(1 << 16)
        if not b:
            return
        yield b


async def drain(r):
    n, end = 0, "eof"
    try:
        async for b in chunks(r):
            n += len(b)
    except ConnectionResetError:
        end = "reset"
    return n, end


async def echo(r, w, logf):
    log(logf, "accept echo")
    n, end = 0, "eof"
    try:
        async for b in chunks(r):
            n += len(b)
            w.write(b)
            await w.drain()
        w.write_eof()
        await w.drain()
    except (ConnectionResetError, BrokenPipeError):
        end = "reset"
    log(logf, "echo in=%d end=%s" % (n, end))
    w.close()


async def mux(r, w, logf):
    log(logf, "accept mux")
    try:
        line = (await asyncio.wait_for(r.readline(), 30)).decode().split()
    except Exception:
        line = []
    mode = line[0] if line else "none"
    h = hashlib.sha256()
    n, end = 0, "eof"
    sock = w.get_extra_info("socket")
    try:
        if mode == "sink":          # read to EOF, answer the hash
            async for b in chunks(r):
                n += len(b)
                h.update(b)
            w.write(h.hexdigest().encode() + b"\n")
        elif mode == "back":        # read to EOF, then send it all back
            buf = bytearray()
            async for b in chunks(r):
                buf += b
            n = len(buf)
            w.write(bytes(buf))
        elif mode == "source":      # send N seeded bytes
            w.write(data(int(line[2]), int(line[1])))
            await w.drain()
            w.write_eof()
            n, end = await drain(r)
        elif mode == "reset":       # read N bytes, then RST
            want = int(line[1])
            while n < want:
                b = await r.read(want - n)
                if not b:
                    break
                n += len(b)
            rst(sock)
            end = "sent-reset"
        elif mode == "blast":       # send at full speed for N seconds
            t_end = time.time() + float(line[1])
            while time.time() < t_end:
                w.write(BLAST)
                await w.drain()
                n += len(BLAST)
            w.write_eof()
            await drain(r)
        elif mode == "hold":        # read nothing for a while, then sink
            await asyncio.sleep(float(line[1]))
            async for b in chunks(r):
                n += len(b)
                h.update(b)
            w.write(h.hexdigest().encode() + b"\n")
        await w.drain()
    except (ConnectionResetError, BrokenPipeError):
        end = "reset"
    log(logf, "%s in=%d end=%s" % (mode, n, end))
    w.close()


async def serve(logf, echo_port, mux_port):
    s1 = await asyncio.start_server(lambda r, w: echo(r, w, logf), HOST,
                                    int(echo_port), backlog=4096)
    s2 = await asyncio.start_server(lambda r, w: mux(r, w, logf), HOST,
                                    int(mux_port), backlog=4096)
    log(logf, "ready")
    await asyncio.sleep(3600)


# ---- clients -----------------------------------------------------------

async def echo_check(port, n, seed, timeout=60):
    """Send n seeded bytes, half-close, read the echo: (ok, got, end)."""
    r, w = await connect(port)
    d = data(seed, n)

    async def send():
        try:
            for i in range(0, n, 1 << 16):
                w.write(d[i:i + (1 << 16)])
                await w.drain()
            w.write_eof()
        except (ConnectionResetError, BrokenPipeError):
            pass
    t = asyncio.ensure_future(send())
    got, end = await read_all(r, timeout=timeout)
    t.cancel()
    w.close()
    return got == d, got, end, d


def c_echo(port, n, seed=1):
    ok, got, end, d = asyncio.run(echo_check(port, int(n), int(seed)))
    if not ok or end != "eof":
        fail("echo %s bytes: got %d bytes, end=%s, %s" % (
            n, len(got), end, "prefix ok" if d.startswith(got) else "DIFFERENT"))


def c_tamper(port, n, seed=1):
    """The stream must die: what arrives is an intact prefix, then a reset."""
    ok, got, end, d = asyncio.run(echo_check(port, int(n), int(seed), 20))
    if ok or end == "eof" or end == "timeout" or not d.startswith(got):
        fail("tamper: got %d of %s bytes, end=%s, prefix %s" % (
            len(got), n, end, "intact" if d.startswith(got) else "ALTERED"))
    print("got %d of %s bytes, then %s" % (len(got), n, end))


async def mux_run(port, head, payload=b"", timeout=60):
    r, w = await connect(port)  # refused: raised to the caller
    try:
        w.write(head + payload)
        await w.drain()
        w.write_eof()
    except OSError:
        w.close()
        return b"", "reset"
    got, end = await read_all(r, timeout=timeout)
    w.close()
    return got, end


BLAST = random.Random(5).randbytes(1 << 20)


def c_blast(port, seconds, way):
    """One way at full speed for `seconds` (to the mux's sink, or from its
    blast), so that nothing comes the other way to wake a stalled end;
    every byte must arrive, in order, within 20 s more."""
    async def up():
        r, w = await connect(port)
        h, sent, t_end = hashlib.sha256(), 0, time.time() + float(seconds)
        w.write(b"sink\n")
        while time.time() < t_end:
            w.write(BLAST)
            h.update(BLAST)
            sent += len(BLAST)
            await w.drain()
        w.write_eof()
        got, end = await read_all(r, timeout=20)
        w.close()
        if got.strip().decode() != h.hexdigest() or end != "eof":
            fail("sink: reply %r end=%s" % (got[:70], end))
        return sent

    async def down():
        r, w = await connect(port)
        w.write(b"blast %s\n" % seconds.encode())
        w.write_eof()
        got = 0
        while True:
            b = await asyncio.wait_for(r.read(1 << 20), 20)
            if not b:
                break
            k = got % len(BLAST)
            want = (BLAST[k:] + BLAST)[:len(b)]
            if b != want:
                fail("byte %d differs" % got)
            got += len(b)
        w.close()
        return got
    try:
        n = asyncio.run(asyncio.wait_for(up() if way == "up" else down(),
                                         float(seconds) + 30))
    except asyncio.TimeoutError:
        fail("%s: stalled (nothing moved for 30 s)" % way)
    print("%s: %d MB" % (way, n >> 20))
    if n < 10 << 20:
        fail("only %d bytes in %s s" % (n, seconds))


def c_up(port, n, seed=2):
    d = data(int(seed), int(n))
    got, end = asyncio.run(mux_run(port, b"sink\n", d))
    if got.strip().decode() != hashlib.sha256(d).hexdigest() or end != "eof":
        fail("up %s: reply %r end=%s" % (n, got[:70], end))


def c_down(port, n, seed=3):
    got, end = asyncio.run(mux_run(port, b"source %s %s\n" % (
        n.encode(), str(seed).encode())))
    if got != data(int(seed), int(n)) or end != "eof":
        fail("down %s: got %d bytes end=%s" % (n, len(got), end))


def c_back(port, n, seed=4):
    """Half-close: send n, shut our write side; the target reads to EOF
    first, then sends everything back, which must arrive whole, then EOF."""
    d = data(int(seed), int(n))
    got, end = asyncio.run(mux_run(port, b"back\n", d))
    if got != d or end != "eof":
        fail("half-close: got %d of %d bytes back, end=%s" % (len(got), len(d), end))


def c_closed(port, head, limit, want):
    """Send head, expect the connection to end within limit seconds;
    want: 'reset', or 'closed' (reset or EOF with no data)."""
    t0 = time.time()
    try:
        got, end = asyncio.run(mux_run(port, head.encode().replace(b"|", b"\n") +
                                       data(5, 200000), timeout=float(limit)))
    except ConnectionRefusedError:
        got, end = b"", "refused"
    except OSError:  # reset while connecting: the tunnel was that quick
        got, end = b"", "reset"
    dt = time.time() - t0
    if end == "timeout" or (want == "reset" and end != "reset") or got:
        fail("after %.1f s: %d bytes, end=%s (want %s)" % (dt, len(got), end, want))
    print("closed (%s) after %.2f s" % (end, dt))


def c_many(port, count, size):
    async def one(i):
        ok, got, end, d = await echo_check(port, int(size), 1000 + i, 120)
        return ok and end == "eof"

    async def run():
        return await asyncio.gather(*[one(i) for i in range(int(count))])
    t0 = time.time()
    res = asyncio.run(run())
    bad = res.count(False)
    if bad:
        fail("%d of %s connections failed" % (bad, count))
    print("%s connections verified in %.1f s" % (count, time.time() - t0))


def c_hold(port, seconds, limit_mb):
    """Backpressure: the target reads nothing for `seconds`; we push as fast
    as we can. The tunnel must stop taking data (bounded), then deliver
    every byte once the target reads."""
    s = socket.create_connection((HOST, int(port)), 10)
    s.sendall(b"hold %s\n" % seconds.encode())
    s.setblocking(False)
    h = hashlib.sha256()
    block = os.urandom(1 << 16)
    sent, last, t0 = 0, time.time(), time.time()
    while time.time() - last < 1.0 and sent < int(limit_mb) << 20:
        try:
            n = s.send(block)
            h.update(block[:n])
            sent += n
            last = time.time()
        except BlockingIOError:
            time.sleep(0.01)
    stalled = time.time() - t0
    print("sent %d bytes before stalling (%.1f s)" % (sent, stalled), flush=True)
    if sent >= int(limit_mb) << 20:
        fail("never stalled: %d bytes taken" % sent)
    sys.stdout.flush()
    # tell test.sh the stall point, let it sample memory, then finish
    s.setblocking(True)
    s.settimeout(60)
    time.sleep(1)
    s.shutdown(socket.SHUT_WR)
    got = b""
    while True:
        b = s.recv(100)
        if not b:
            break
        got += b
    if got.strip().decode() != h.hexdigest():
        fail("backpressure: target hash differs")


def c_stream(port, seconds, rate_kb):
    """Bidirectional echo at about rate_kb KiB/s for `seconds`, verified."""
    async def run():
        r, w = await connect(port)
        rng = random.Random(7)
        sent = hashlib.sha256()
        recv = hashlib.sha256()
        total = [0, 0]
        end = time.time() + float(seconds)

        async def send():
            while time.time() < end:
                b = rng.randbytes(int(rate_kb) * 1024 // 10)
                sent.update(b)
                total[0] += len(b)
                w.write(b)
                await w.drain()
                await asyncio.sleep(0.1)
            w.write_eof()
        t = asyncio.ensure_future(send())
        while True:
            b = await asyncio.wait_for(r.read(1 << 16), 30)
            if not b:
                break
            recv.update(b)
            total[1] += len(b)
        await t
        return sent.digest() == recv.digest(), total
    ok, total = asyncio.run(run())
    if not ok:
        fail("stream: sent %d, got back %d, differ" % tuple(total))
    print("streamed %d bytes each way" % total[0])


def c_hello(port, key, u, want, cipher=None):
    """A client hello made here from the README's spec, with X25519 public
    key u (a number): the server must answer it with 65 bytes (want=65),
    or not at all (want=0: u is a point of low order)."""
    import hmac
    hk = hello_key(stretch(key))
    cid = CIPHERS[cipher or os.environ.get("CIPHER") or "aes"]
    body = bytes([3, cid]) + int(u).to_bytes(32, "little")
    s = socket.create_connection((HOST, int(port)), 5)
    s.sendall(body + hmac.new(hk, body, "sha256").digest())
    s.settimeout(3)
    got = b""
    try:
        while len(got) < 100:
            b = s.recv(100)
            if not b:
                break
            got += b
    except (socket.timeout, ConnectionResetError):
        pass
    if len(got) != int(want):
        fail("the server answered %d bytes, want %s" % (len(got), want))


def c_hog(port, count, seconds):
    """Open count silent connections and hold them for `seconds`."""
    socks = []
    for _ in range(int(count)):
        try:
            socks.append(socket.create_connection((HOST, int(port)), 2))
        except OSError:
            break
    print("holding %d connections" % len(socks))
    time.sleep(float(seconds))
    for s in socks:
        s.close()


def c_probe(port, kind, wait):
    """A stranger at the server port: it must get no byte back."""
    s = socket.create_connection((HOST, int(port)), 5)
    if kind == "random":
        s.sendall(os.urandom(66))
    elif kind == "big":
        try:
            s.sendall(os.urandom(1 << 20))
        except OSError:
            pass
    elif kind == "http":
        s.sendall(b"GET / HTTP/1.0\r\n\r\n")
    elif kind == "half":
        s.sendall(b"\x01\x20" + os.urandom(20))
    elif kind == "hello":
        s.sendall(b"\x03\x01" + bytes(64))
    # kind "silent": send nothing
    s.settimeout(float(wait))
    got, end, t0 = b"", "open", time.time()
    try:
        while True:
            b = s.recv(4096)
            if not b:
                end = "eof"
                break
            got += b
    except socket.timeout:
        end = "still open"
    except ConnectionResetError:
        end = "reset"
    if got:
        fail("%s: the server sent %d bytes" % (kind, len(got)))
    print("%s: no reply, %s after %.1f s" % (kind, end, time.time() - t0))
    if end == "still open":
        sys.exit(3)


def c_replay(port, path):
    """Send a recorded client stream again; print what came back."""
    s = socket.create_connection((HOST, int(port)), 5)
    with open(path, "rb") as f:
        rec = f.read()
    try:
        s.sendall(rec)
    except OSError:
        pass
    s.settimeout(3)
    n = 0
    try:
        while True:
            b = s.recv(4096)
            if not b:
                break
            n += len(b)
    except (socket.timeout, ConnectionResetError):
        pass
    print("replayed %d bytes, got %d back" % (len(rec), n))


def c_gone(port):
    """Ask for 50 MB, read a little, close completely: the tunnel's next
    writes to us meet a reset socket (EPIPE, the SIGPIPE case)."""
    s = socket.create_connection((HOST, int(port)), 5)
    s.sendall(b"source 50000000 1\n")
    s.settimeout(10)
    got = 0
    while got < 100000:
        b = s.recv(65536)
        if not b:
            fail("EOF after %d bytes" % got)
        got += len(b)
    s.close()
    time.sleep(1)


def c_gone_target(port):
    """The mode server closes at once on an unknown mode; we keep sending,
    so the tunnel server writes into a target that reset (EPIPE)."""
    s = socket.create_connection((HOST, int(port)), 5)
    s.sendall(b"quit\n")
    time.sleep(0.5)
    try:
        for _ in range(100):
            s.sendall(bytes(65536))
            time.sleep(0.01)
    except OSError:
        pass
    s.close()
    time.sleep(1)


def c_run(port, head):
    """Send a mux head ('|' for newline), half-close, print the reply."""
    t0 = time.time()
    got, end = asyncio.run(mux_run(port, head.replace("|", "\n").encode()))
    print("%s after %.2f s: %r" % (end, time.time() - t0, got[:80]))
    if end != "eof" or not got:
        sys.exit(1)


def c_par(port, count, head):
    """count connections at once, each `head` to the mux; every one must get
    the sha256 of nothing (sink or hold with no payload)."""
    want = hashlib.sha256(b"").hexdigest().encode() + b"\n"

    async def run():
        return await asyncio.gather(*[mux_run(port, head.replace("|", "\n").encode(),
                                              timeout=30) for _ in range(int(count))],
                                    return_exceptions=True)
    res = asyncio.run(run())
    bad = [r for r in res if not isinstance(r, tuple) or r != (want, "eof")]
    if bad:
        fail("%d of %s failed: %r" % (len(bad), count, bad[:3]))


def c_held(port, n, seconds):
    """n bytes to a target that reads nothing for `seconds`, then sinks
    them: its reply must be their sha256 (the whole transfer arrived)."""
    s = socket.create_connection((HOST, int(port)), 10)
    s.settimeout(60)
    d = data(7, int(n))
    got = b""
    try:
        s.sendall(b"hold %s\n" % seconds.encode() + d)
        s.shutdown(socket.SHUT_WR)
        while True:
            b = s.recv(4096)
            if not b:
                break
            got += b
    except OSError as e:
        fail("transfer cut: %s" % e)
    if got.strip().decode() != hashlib.sha256(d).hexdigest():
        fail("the target's hash differs: %r" % got[:70])
    print("%d bytes arrived intact" % len(d))


def c_keep(port, count, seconds, period):
    """count connections held open through the tunnel for `seconds`, each
    echoing one byte every `period` seconds (so that -i never finds it
    idle): every echo must come back, none may end."""
    count, seconds, period = int(count), float(seconds), float(period)

    async def one(i, t_end):
        await asyncio.sleep(period * i / count)  # spread the pings
        r, w = await connect(port)
        try:
            while True:
                b = bytes([i & 255])
                w.write(b)
                await w.drain()
                if await asyncio.wait_for(r.readexactly(1), 10) != b:
                    return "wrong byte"
                if time.time() >= t_end:
                    break
                await asyncio.sleep(period)
            w.write_eof()
            rest, end = await read_all(r, timeout=10)
            return None if end == "eof" and not rest else "end=" + end
        except (OSError, asyncio.IncompleteReadError,
                asyncio.TimeoutError) as e:
            return type(e).__name__
        finally:
            w.close()

    async def run():
        t_end = time.time() + seconds
        return await asyncio.gather(*[one(i, t_end) for i in range(count)])
    res = asyncio.run(run())
    bad = [r for r in res if r]
    if bad:
        fail("%d of %d held connections failed: %s" % (len(bad), count,
                                                       sorted(set(bad))))
    print("%d connections held %.0f s, each echoing every %.1f s" % (
        count, seconds, period))


def c_stall(port, lo, hi):
    """A stranger at the server port sends the first 20 bytes of a hello
    with the right version, then nothing: the server must end the
    connection between lo and hi seconds later, without a byte."""
    s = socket.create_connection((HOST, int(port)), 5)
    s.sendall(b"\x03" + os.urandom(19))
    t0 = time.time()
    s.settimeout(float(hi))
    try:
        end = "data" if s.recv(1) else "eof"
    except socket.timeout:
        fail("still open after %s s" % hi)
    except ConnectionResetError:
        end = "reset"
    dt = time.time() - t0
    print("%s after %.1f s" % (end, dt))
    if end == "data" or dt < float(lo):
        fail("%s sooner than %s s" % (end, lo))


def c_gaps(port, seconds, limit):
    """Stream through the echo target for `seconds`, 16 KiB every 10 ms,
    and time the gaps in what comes back: none may be longer than
    `limit` seconds, and every byte must come back."""
    async def run():
        r, w = await connect(port)
        d = data(9, 16384 * int(float(seconds) * 100))
        t_end = time.time() + float(seconds)

        async def send():
            for i in range(0, len(d), 16384):
                w.write(d[i:i + 16384])
                await w.drain()
                if time.time() > t_end:
                    break
                await asyncio.sleep(0.01)
            w.write_eof()
            return i + 16384
        t = asyncio.ensure_future(send())
        got, last, gap = bytearray(), time.time(), 0.0
        while True:
            b = await asyncio.wait_for(r.read(1 << 16), 30)
            now = time.time()
            if not b:
                break
            gap, last = max(gap, now - last), now
            got += b
        sent = await t
        return bytes(got) == d[:sent], gap, len(got)
    ok, gap, n = asyncio.run(run())
    print("%d bytes, the longest gap %.3f s" % (n, gap))
    if not ok:
        fail("the stream came back altered or cut")
    if gap > float(limit):
        fail("a gap of %.3f s (limit %s)" % (gap, limit))


def c_helds(port, count, n, seconds):
    """count connections at once, each n bytes to a target that reads
    nothing for `seconds`, then sinks them: every one must get its sha256
    back (the whole transfer arrived)."""
    async def one(i):
        d = data(100 + i, int(n))
        got, end = await mux_run(port, b"hold %s\n" % seconds.encode(), d,
                                 timeout=120)
        return got.strip().decode() == hashlib.sha256(d).hexdigest()

    async def run():
        return await asyncio.gather(*[one(i) for i in range(int(count))],
                                    return_exceptions=True)
    res = asyncio.run(run())
    bad = len(res) - res.count(True)
    if bad:
        fail("%d of %s transfers did not arrive intact" % (bad, count))
    print("%s x %s bytes arrived intact" % (count, n))


def c_relay(listen, target, delay_ms):
    """A relay in front of target that holds every byte delay_ms each way
    (a long link on loopback), until it is killed."""
    delay = float(delay_ms) / 1000

    async def pipe(r, w):
        q = asyncio.Queue()

        async def later():
            while True:
                t, b = await q.get()
                await asyncio.sleep(max(0, t - time.monotonic()))
                if not b:
                    break
                w.write(b)
                await w.drain()
            w.write_eof()
        task = asyncio.ensure_future(later())
        try:
            while True:
                b = await r.read(1 << 16)
                await q.put((time.monotonic() + delay, b))
                if not b:
                    break
            await task
        except (OSError, asyncio.CancelledError):
            task.cancel()
        finally:
            w.close()

    async def handle(r1, w1):
        try:
            r2, w2 = await asyncio.open_connection(HOST, int(target))
        except OSError as e:
            print("relay: %s" % e, file=sys.stderr)
            w1.close()
            return
        await asyncio.gather(pipe(r1, w2), pipe(r2, w1),
                             return_exceptions=True)

    async def run():
        await asyncio.start_server(handle, HOST, int(listen), backlog=4096)
        await asyncio.sleep(3600)
    asyncio.run(run())


def c_junk(port, rate, seconds, delay_ms=0, src=None):
    """Strangers at `rate` a second for `seconds`, from address src (else
    the usual), each sending a junk hello (66 random bytes) delay_ms after
    it connects (as if from far away; "silent": never), and closing."""
    silent = delay_ms == "silent"

    async def one():
        try:
            r, w = await asyncio.open_connection(
                HOST, int(port), local_addr=(src, 0) if src else None)
            await asyncio.sleep(5 if silent else float(delay_ms) / 1000)
            w.write(os.urandom(66))
            await w.drain()
            await asyncio.wait_for(r.read(1), 5)
            w.close()
        except (OSError, asyncio.TimeoutError):
            pass

    async def run():
        t_end, tasks = time.monotonic() + float(seconds), []
        while time.monotonic() < t_end:
            for _ in range(int(rate) // 100):
                tasks.append(asyncio.ensure_future(one()))
            await asyncio.sleep(0.01)
        await asyncio.gather(*tasks)
        print("%d strangers" % len(tasks))
    asyncio.run(run())


def c_reals(port, count, seconds):
    """count connections spread over `seconds`, each echoing 1000 bytes:
    prints how many got through."""
    async def one(i):
        await asyncio.sleep(float(seconds) * i / int(count))
        try:
            ok, got, end, d = await echo_check(port, 1000, 500 + i, 20)
            return ok and end == "eof"
        except (OSError, asyncio.TimeoutError):
            return False

    async def run():
        return await asyncio.gather(*[one(i) for i in range(int(count))])
    res = asyncio.run(run())
    print("%d of %s through" % (res.count(True), count))


def c_greeter(listen):
    """A target that speaks first, as a mail server does: a greeting, then
    it echoes; until it is killed."""
    async def handle(r, w):
        w.write(b"220 gstunnel test\r\n")
        try:
            async for b in chunks(r):
                w.write(b)
                await w.drain()
        except OSError:
            pass
        w.close()

    async def run():
        await asyncio.start_server(handle, HOST, int(listen))
        await asyncio.sleep(3600)
    asyncio.run(run())


def c_greet(port):
    """Through the tunnel to c_greeter: its greeting must come first,
    unasked, within 5 s; then an echo."""
    s = socket.create_connection((HOST, int(port)), 5)
    s.settimeout(5)
    got = b""
    while not got.endswith(b"\r\n"):
        b = s.recv(100)
        if not b:
            fail("closed after %r" % got)
        got += b
    if got != b"220 gstunnel test\r\n":
        fail("the greeting was %r" % got)
    s.sendall(b"hello")
    if s.recv(100) != b"hello":
        fail("no echo after the greeting")
    print("greeted first, then echoed")


def c_proxycheck(target, port, server_port):
    """One connection through the tunnel (port: the client) to a target
    of our own on `target`, behind a server with --proxy-protocol: the
    first bytes the target gets must be a PROXY protocol v2 header
    (haproxy's proxy-protocol.txt 2.2): the signature, version 2 PROXY,
    TCP over IPv4, 12 bytes of addresses: source this application's
    address and port, destination the server's (127.0.0.1:server_port);
    then the application's bytes."""
    import threading
    l = socket.socket()
    l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    l.bind((HOST, int(target)))
    l.listen(1)
    l.settimeout(10)
    seen = []

    def serve():
        c, _ = l.accept()
        c.settimeout(10)
        b = b""
        while len(b) < 28 + 5:
            x = c.recv(100)
            if not x:
                break
            b += x
        seen.append(b)
        c.close()
    th = threading.Thread(target=serve)
    th.start()
    s = socket.create_connection((HOST, int(port)), 5)
    me = s.getsockname()
    s.sendall(b"hello")
    th.join(15)
    s.close()
    if not seen:
        fail("the target got no connection")
    b = seen[0]
    want = (b"\r\n\r\n\0\r\nQUIT\n" + bytes([0x21, 0x11, 0, 12]) +
            socket.inet_aton(me[0]) + socket.inet_aton(HOST) +
            struct.pack(">HH", me[1], int(server_port)) + b"hello")
    if b != want:
        fail("the target got %s, want %s" % (b.hex(), want.hex()))
    print("PROXY v2 header: from %s:%d to %s:%s, then the data" % (
        me[0], me[1], HOST, server_port))


def c_pause(port, n, flag, seed=6):
    """One connection that carries data before and after an event: echo n
    bytes, wait (at most 20 s) for the file flag to exist, echo n more."""
    s = socket.create_connection((HOST, int(port)), 10)
    s.settimeout(20)
    for part in (0, 1):
        t0 = time.time()
        while part and not os.path.exists(flag):
            if time.time() - t0 > 20:
                fail("no %s after 20 s" % flag)
            time.sleep(0.05)
        d = data(int(seed) + part, int(n))
        s.sendall(d)
        got = b""
        try:
            while len(got) < len(d):
                b = s.recv(1 << 16)
                if not b:
                    break
                got += b
        except OSError as e:
            fail("part %d: %s after %d bytes" % (part, e, len(got)))
        if got != d:
            fail("part %d: %d bytes back, %s" % (part, len(got), "differ"
                                                 if len(got) == len(d) else "cut"))
    s.close()
    print("echoed before and after")


def c_ups(port, count, n):
    """count connections one after another, each as c_up."""
    for _ in range(int(count)):
        c_up(port, n)


def c_strangers(port, count):
    """count strangers, one after another, each sending a random hello."""
    for _ in range(int(count)):
        try:
            s = socket.create_connection((HOST, int(port)), 5)
            s.sendall(os.urandom(66))
            s.close()
        except OSError:
            pass


def c_idle(port, lo, hi):
    """Echo one byte, then stay idle: the tunnel must end the connection
    between lo and hi seconds later."""
    s = socket.create_connection((HOST, int(port)), 10)
    s.settimeout(10)
    s.sendall(b"x")
    if s.recv(1) != b"x":
        fail("no echo")
    t0 = time.time()
    s.settimeout(float(hi))
    try:
        end = "data" if s.recv(1) else "eof"
    except socket.timeout:
        fail("still open after %s s" % hi)
    except ConnectionResetError:
        end = "reset"
    dt = time.time() - t0
    print("%s after %.1f s" % (end, dt))
    if dt < float(lo):
        fail("sooner than %s s" % lo)


def c_dns(ready):
    """A nameserver on 127.0.0.1:53 (run it in a network namespace):
    tunnel.test and tun.test (for search domains) are 127.0.0.1; for
    spoof.test a reply with a wrong ID (to 127.0.0.9) comes first and a
    reply from another port too; silent.test gets no answer; others are
    NXDOMAIN."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 53))
    other = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    other.bind(("127.0.0.1", 5353))
    open(ready, "w").close()
    while True:
        q, peer = s.recvfrom(512)
        p, labels = 12, []
        while p < len(q) and q[p]:
            labels.append(q[p + 1:p + 1 + q[p]].decode())
            p += q[p] + 1
        name, qtype = ".".join(labels).lower(), q[p + 1] << 8 | q[p + 2]
        quest = q[12:p + 5]

        def reply(qid, ip):
            rr = b"" if ip is None or qtype != 1 else (
                b"\xc0\x0c" + struct.pack(">HHIH", 1, 1, 60, 4) +
                socket.inet_aton(ip))
            flags = 0x8183 if ip is None else 0x8180
            return struct.pack(">HHHHHH", qid, flags, 1, 1 if rr else 0,
                               0, 0) + quest + rr
        qid = q[0] << 8 | q[1]
        if name == "silent.test":
            continue
        if name == "spoof.test":
            s.sendto(reply(qid ^ 0x1234, "127.0.0.9"), peer)
            other.sendto(reply(qid, "127.0.0.9"), peer)
            time.sleep(0.3)  # the true reply comes after both forgeries
        ok = name in ("tunnel.test", "tun.test", "spoof.test")
        s.sendto(reply(qid, "127.0.0.1" if ok else None), peer)


def c_zeros(port, n):
    """Echo n zero bytes through the tunnel."""
    async def run():
        r, w = await connect(port)
        w.write(bytes(int(n)))
        await w.drain()
        w.write_eof()
        got, end = await read_all(r)
        w.close()
        return got
    if asyncio.run(run()) != bytes(int(n)):
        fail("zeros echo differs")


def c_nonces(c2s, s2c):
    """Every record of a run of zeros starts with the same plaintext: with
    a nonce used twice, or one key for both directions, its first 64
    bytes of ciphertext would show up again."""
    a, b = open(c2s, "rb").read(), open(s2c, "rb").read()
    sample = a[98 + 3:98 + 3 + 64]
    if len(a) < 300000 or len(b) < 300000:
        fail("captures too short: %d, %d" % (len(a), len(b)))
    if a.find(sample, 98 + 4) >= 0 or b.find(sample) >= 0:
        fail("a record's ciphertext repeats: nonce or key reused")
    print("%d + %d bytes, no repeated record ciphertext" % (len(a), len(b)))


def c_marker(port, marker, count):
    """Echo a known plaintext through the tunnel."""
    d = (marker * int(count)).encode()

    async def run():
        r, w = await connect(port)
        w.write(d)
        await w.drain()
        w.write_eof()
        got, end = await read_all(r)
        w.close()
        return got
    if asyncio.run(run()) != d:
        fail("marker echo differs")


# ---- applications and syslog -----------------------------------------------

def c_origin(d, port):
    """An HTTP server for the files in d on 127.0.0.1:port and, when the
    host has it, [::1]:port too (so "localhost" works whatever it resolves
    to)."""
    import functools, http.server, threading
    port = int(port)
    Handler = functools.partial(http.server.SimpleHTTPRequestHandler,
                                directory=d)

    class S4(http.server.ThreadingHTTPServer):
        daemon_threads = True

    class S6(S4):
        address_family = socket.AF_INET6
    srvs = [S4(("127.0.0.1", port), Handler)]
    try:
        srvs.append(S6(("::1", port), Handler))
    except OSError as e:
        sys.stderr.write("origin: no [::1]:%d (%s), IPv4 only\n" % (port, e))
    for s in srvs[1:]:
        threading.Thread(target=s.serve_forever, daemon=True).start()
    sys.stderr.write("origin: serving %s on port %d\n" % (d, port))
    sys.stderr.flush()
    srvs[0].serve_forever()


def c_syslog(path):
    """A syslog on /dev/log (run it in a mount namespace with its own /dev):
    every datagram becomes a line of the file path; it stops after 8 s
    without one."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind("/dev/log")
    s.settimeout(8)
    f = open(path, "a")
    try:
        while True:
            f.write(s.recv(1024).decode("utf8", "replace") + chr(10))
            f.flush()
    except socket.timeout:
        pass


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "serve":
        asyncio.run(serve(*args))
    else:
        globals()["c_" + cmd](*args)

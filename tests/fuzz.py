# fuzz.py: the fuzzer behind "test.sh -z" (see the comment below).
#
#   fuzz.py PORT TARGET_PORT KEY SECONDS SEED
#
# PORT is the server under test; its target must be TARGET_PORT, where the
# collector listens. The last line is "fuzz: " and the counts.
import os, random, socket, struct, sys, time

from common import HOST, fail
from ref import H, Ref, SKS, hello_key, stretch

# c_fuzz drives a server with the Ref client holding the right key: random
# sequences of sealed records (every type, payload sizes around the
# limits, rotations crossing data, EOF at odd times, tampering, bad
# lengths, truncation), written in random pieces, and random handshake
# bytes. The server's target is the Collector, here. Pass: every connection
# that stayed within the rules delivered exactly its data and EOF; after a
# record the rules forbid, nothing more reached the target and the server
# closed the link within 5 s; truncation reached the target as a reset.

class Collector:
    def __init__(s, port):
        import threading
        s.got, s.lock = [], threading.Lock()
        s.l = socket.socket()
        s.l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.l.bind((HOST, int(port)))
        s.l.listen(128)
        threading.Thread(target=s.accept, daemon=True).start()

    def accept(s):
        import threading
        while True:
            c, _ = s.l.accept()
            threading.Thread(target=s.read, args=(c,), daemon=True).start()

    def read(s, c):
        data, end = b"", "eof"
        c.settimeout(30)
        try:
            while True:
                b = c.recv(65536)
                if not b:
                    break
                data += b
        except OSError as e:
            end = "reset" if isinstance(e, ConnectionResetError) else "error"
        c.close()
        with s.lock:
            s.got.append((data, end))

    def find(s, tag, wait):
        t0 = time.time()
        while time.time() - t0 < wait:
            with s.lock:
                for d, e in s.got:
                    if d.startswith(tag):
                        return d, e
            time.sleep(0.005)
        return None, None


def c_fuzz(port, target_port, key, seconds, seed):
    rnd = random.Random(int(seed))
    col = Collector(target_port)
    time.sleep(0.2)
    t_end = time.time() + float(seconds)
    stats = {"conns": 0, "clean": 0, "bad": 0, "cut": 0, "hello": 0,
             "records": 0, "rotations": 0}
    sizes = [1, 2, 6, 100, 16383, 16384]
    n = 0
    while time.time() < t_end:
        n += 1
        stats["conns"] += 1
        if rnd.random() < 0.15:
            fuzz_hello(port, key, rnd)
            stats["hello"] += 1
            continue
        fuzz_conn(port, key, rnd, n, col, sizes, stats)
    with col.lock:
        for d, e in col.got:
            if b"FORBIDDEN" in d:
                fail("bytes after a forbidden record reached the target")
    print("fuzz: %s" % " ".join("%s=%d" % kv for kv in sorted(stats.items())))


def fuzz_hello(port, key, rnd):
    """Random handshake bytes: never an answer, and closed soon."""
    c = socket.create_connection((HOST, int(port)), 5)
    k = rnd.random()
    if k < 0.4:
        b = bytes([3, rnd.choice([1, 2, 3, 0, 255])]) + os.urandom(rnd.randint(0, 100))
    elif k < 0.7:  # a hello with the right shape, its MAC a bit off
        head = bytes([3, rnd.choice([1, 2])]) + os.urandom(32)
        mac = bytearray(H(hello_key(SKS.get(key) or SKS.setdefault(key, stretch(key))), head))
        mac[rnd.randrange(32)] ^= 1 << rnd.randrange(8)
        b = head + bytes(mac) + os.urandom(rnd.randint(0, 40))
    else:
        b = os.urandom(rnd.randint(0, 200))
    try:
        for piece in split(b, rnd):
            c.sendall(piece)
        c.shutdown(socket.SHUT_WR)  # no waiting for -t (test.sh secure does)
        c.settimeout(5)
        got = c.recv(100)
    except socket.timeout:
        fail("the server kept a bad hello open for 5 s")
    except OSError:
        got = b""
    if got:
        fail("the server answered %d bytes to a bad hello" % len(got))
    c.close()


def split(b, rnd):
    out = []
    while b:
        k = rnd.choice([1, 2, 3, 17, 100, 1000, 20000, len(b)])
        out.append(b[:k])
        b = b[k:]
    return out


def fuzz_conn(port, key, rnd, n, col, sizes, stats):
    r = Ref(port, key, rnd.choice(["aes", "chacha20"]) if not os.environ.get("CIPHER") else None)
    tag = b"%08d" % n
    out = [r.hello()]
    sent = b""           # the DATA the target must see, in order
    eof = offer = None   # our EOF sent; a pending OFFER's key
    bad = cut = False
    eof_ok = False       # our EOF went out before anything broke

    def data(k):
        p = (tag * (k // 8 + 2))[:k]
        return p

    def flush():
        try:
            for piece in split(b"".join(out), rnd):
                r.c.sendall(piece)
                if rnd.random() < 0.05:
                    time.sleep(0.002)
        except OSError:  # the server closed: only after a broken stream
            if not (bad or cut):
                raise
        del out[:]

    try:
        if rnd.random() < 0.2:  # a ready link: its OPEN comes later
            flush()
            time.sleep(rnd.random() * 0.05)
        k0 = rnd.random()
        if k0 < 0.04:  # DATA or EOF before OPEN: the target never sees it
            out.append(r.c2s.seal(rnd.choice([0, 1]), b"FORBIDDEN!"))
            bad = True
        elif k0 < 0.07:  # an OPEN the README does not allow
            out.append(r.c2s.seal(6, rnd.choice([
                b"\x04", b"\x05" + bytes(6), bytes(19), b"\x06" + bytes(6),
                b"\x04" + bytes(18), bytes(20)])))
            bad = True
        else:
            out.append(r.opener())
        first = data(rnd.choice([8, 100, 16384]))
        if not bad:
            out.append(r.c2s.seal(0, first))
            sent += first
        rules = rnd.random() < 0.5  # this one keeps to the rules
        for _ in range(rnd.randint(0, 12) if not bad else 0):
            k = rnd.random() * (0.72 if rules else 1)
            stats["records"] += 1
            if k < 0.40:
                size = rnd.choice(sizes)
                if eof:
                    bad = True
                    out.append(r.c2s.seal(0, b"FORBIDDEN!" * 2))
                else:
                    p = data(size)
                    out.append(r.c2s.seal(0, p))
                    sent += p
            elif k < 0.50:
                if eof:
                    bad = True
                out.append(r.c2s.seal(1, b""))
                eof = True
            elif k < 0.60 and not eof:
                if offer:
                    bad = True
                offer = r.X.generate()
                pub = r.pub(offer) if rules or rnd.random() < 0.9 else bytes(32)
                bad = bad or pub == bytes(32)
                out.append(r.c2s.seal(2, pub))
            elif k < 0.72 and offer and not bad:
                flush()
                while True:
                    typ, p = r.record()
                    if typ == 3:
                        break
                    if typ not in (5, 0):
                        fail("want ACCEPT, got type %d" % typ)
                dh = offer.exchange(r.XP.from_public_bytes(p))
                r.s2c.step(r.SK + dh)
                out.append(r.c2s.seal(4, b""))
                r.c2s.step(r.SK + dh)
                offer = None
                stats["rotations"] += 1
            elif k < 0.77:  # SWITCH with nothing to switch, or a payload
                if offer:
                    out.append(r.c2s.seal(4, b"x"))
                else:
                    out.append(r.c2s.seal(4, b""))
                bad = True
            elif k < 0.84:  # a type or a size the rules forbid
                typ, p = rnd.choice([(3, bytes(32)), (5, b""), (6, b""),
                                     (255, b"x"), (0, b""), (1, b"x"),
                                     (2, bytes(31)), (2, bytes(33)),
                                     (7, b""), (6, b"\x04\x7f\0\0\1\0\x50")])
                out.append(r.c2s.seal(typ, p))
                bad = True
            elif k < 0.90:  # one flipped bit anywhere in a record
                rec = bytearray(r.c2s.seal(0, b"FORBIDDEN!"))
                rec[rnd.randrange(len(rec))] ^= 1 << rnd.randrange(8)
                out.append(bytes(rec))
                bad = True
            elif k < 0.94:  # a length out of range
                out.append(struct.pack(">H", rnd.choice([0, 16386, 65535])) + bytes(40))
                bad = True
            else:  # the link ends here, perhaps inside a record
                rec = r.c2s.seal(0, b"FORBIDDEN!")
                out.append(rec[:rnd.randrange(len(rec))])
                cut = True
                break
            if bad:
                break
            eof_ok = bool(eof)
        if bad:  # more, sealed right: none of it may get through
            out.append(r.c2s.seal(0, b"FORBIDDEN!" * 3))
        elif not cut and not eof:
            out.append(r.c2s.seal(1, b""))
            eof = True
        flush()
        if cut or bad:  # (a tampered length may still wait for its body)
            try:
                r.c.shutdown(socket.SHUT_WR)
            except OSError:
                pass
        if bad or cut:
            stats["bad" if bad else "cut"] += 1
            r.c.settimeout(5)
            try:
                while r.c.recv(65536):
                    pass
            except socket.timeout:
                fail("conn %d: the server kept the link open 5 s after a "
                     "forbidden record" % n)
            except OSError:
                pass
            d, e = col.find(tag, 0.05)  # often nothing got through
            if d is not None and (not sent.startswith(d) or
                                  (e == "eof" and not (eof_ok and d == sent))):
                fail("conn %d: the target got %d bytes, end %s, after a "
                     "broken stream (%d valid)" % (n, len(d), e, len(sent)))
            return
        while True:  # all fine: the server's EOF, then the target's data
            typ, p = r.record()
            if typ == 3 and offer:  # an OFFER we left pending
                dh = offer.exchange(r.XP.from_public_bytes(p))
                r.s2c.step(r.SK + dh)
                r.c.sendall(r.c2s.seal(4, b""))
                r.c2s.step(r.SK + dh)
                offer = None
            if typ == 1:
                break
        d, e = col.find(tag, 10)
        if d != sent or e != "eof":
            fail("conn %d: the target got %s bytes, end %s; want %d, eof" %
                 (n, None if d is None else len(d), e, len(sent)))
        stats["clean"] += 1
    finally:
        r.c.close()


if __name__ == "__main__":
    c_fuzz(*sys.argv[1:])

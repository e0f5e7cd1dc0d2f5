# cfuzz.py: the client's fuzzer behind "test.sh -z" (see below).
#
#   cfuzz.py CLIENT_PORT SERVER_PORT KEY SECONDS SEED
#
# CLIENT_PORT is the client under test (its SERVER is SERVER_PORT, where
# this plays the server); this is its application too. The last line is
# "cfuzz: " and the counts.
import hashlib, hmac, os, random, select, socket, struct, sys, time

from common import HOST, fail
from ref import CIPHERS, H, Ref, hkdf, hello_key, stretch

# c_cfuzz drives the C client as a server that holds the key: random
# sequences of sealed records toward it (every type, sizes around the
# limits, rotations it asks for and ones the client starts, EOF at odd
# times, tampering, bad lengths, truncation, records a server may not
# send), written in random pieces, and random or mutated server hellos.
# Pass: every connection that stayed within the rules delivered exactly
# the server's data and EOF to the application, and the application's to
# the server; after a record the rules forbid (or a bad hello), nothing
# more reached the application, which was reset, not closed.


class Keys:
    """What Ref.Dir needs: the cipher's key length and AEAD."""
    def __init__(s, cipher, key):
        from cryptography.hazmat.primitives.ciphers.aead import (
            AESGCM, ChaCha20Poly1305)
        s.kl = len(key) if cipher == "aes" else 32
        s.aead = AESGCM if cipher == "aes" else ChaCha20Poly1305


def recvn(c, n):
    b = b""
    while len(b) < n:
        x = c.recv(n - len(b))
        if not x:
            raise EOFError("closed after %d of %d bytes" % (len(b), n))
        b += x
    return b


def split(b, rnd):
    out = []
    while b:
        k = rnd.choice([1, 2, 3, 17, 100, 1000, 20000, len(b)])
        out.append(b[:k])
        b = b[k:]
    return out


class Link:
    """The server's end of one link: the handshake, then records."""
    made = 0  # the iteration a link was made in (pool: earlier)

    def __init__(s, c, key, sk, rnd):
        from cryptography.hazmat.primitives.asymmetric.x25519 import (
            X25519PrivateKey, X25519PublicKey)
        s.c, s.key, s.SK, s.rnd = c, key, sk, rnd
        s.X, s.XP = X25519PrivateKey, X25519PublicKey
        s.app = b""          # what the client's application sent, so far
        s.app_eof = False
        s.offer = None       # the client's OFFER, answered, SWITCH due
        s.eof = False        # ours is out: no more records, no ACCEPT

    def handshake(s, mutate):
        """Read the ClientHello; answer it (or, if mutate, something
        wrong); True when records may follow."""
        ch = recvn(s.c, 66)
        if ch[0] != 3 or not hmac.compare_digest(
                H(hello_key(s.SK), ch[:34]), ch[34:]):
            fail("the client's hello does not verify with the README's keys")
        cid = ch[1]
        s.cipher = {v: k for k, v in CIPHERS.items()}[cid]
        xs = s.X.generate()
        head = bytes([cid]) + Ref.pub(xs)
        dh = xs.exchange(s.XP.from_public_bytes(ch[2:34]))
        th = hashlib.sha256(ch + head).digest()
        o = hkdf(th, s.SK + dh, b"gstunnel2 handshake", 128)
        sh = head + H(o[:32], th)
        if mutate:
            k = s.rnd.random()
            if k < 0.3:    # one bit off
                sh = bytearray(sh)
                sh[s.rnd.randrange(65)] ^= 1 << s.rnd.randrange(8)
                sh = bytes(sh)
            elif k < 0.5:  # a refusal, proven or not
                other = 3 - cid
                head = bytes([other]) + bytes(32)
                sh = head + H(hello_key(s.SK), ch + head)
                if s.rnd.random() < 0.5:
                    sh = sh[:40] + bytes([sh[40] ^ 1]) + sh[41:]
            elif k < 0.7:  # cut short
                sh = sh[:s.rnd.randrange(65)]
            elif k < 0.85:  # a low-order key, with a MAC that fits it
                head = bytes([cid]) + bytes(32)
                sh = head + os.urandom(32)
            else:
                sh = os.urandom(s.rnd.randint(0, 130))
            try:
                for piece in split(sh, s.rnd):
                    s.c.sendall(piece)
                s.c.shutdown(socket.SHUT_WR)  # no waiting for its -t
            except OSError:
                pass
            return False
        for piece in split(sh, s.rnd):
            s.c.sendall(piece)
        if not hmac.compare_digest(recvn(s.c, 32), H(o[32:64], th)):
            fail("the client's finished does not match the README")
        keys = Keys(s.cipher, s.key)
        s.c2s = Ref.Dir(keys, o[64:96], b"gstunnel2 c2s")
        s.s2c = Ref.Dir(keys, o[96:], b"gstunnel2 s2c")
        return True

    def first(s, wait):
        """The client's first record on a link it made: OPEN, when an
        application takes it. (type, payload), or None at its end."""
        s.c.settimeout(wait)
        try:
            hd = recvn(s.c, 2)
            body = recvn(s.c, struct.unpack(">H", hd)[0] + 16)
        except (EOFError, OSError):
            return None
        finally:
            s.c.settimeout(10)
        return s.c2s.open(hd, body)

    def read_some(s, wait):
        """The client's records, for up to wait seconds: DATA and EOF
        from its application are kept; an OFFER is answered (ACCEPT,
        s2c steps), a SWITCH steps c2s."""
        t_end = time.time() + wait
        buf = b""
        while True:
            left = t_end - time.time()
            if left <= 0 or not select.select([s.c], [], [], left)[0]:
                return
            x = s.c.recv(65536)
            if not x:
                return
            buf += x
            while len(buf) >= 2:
                n = struct.unpack(">H", buf[:2])[0]
                if len(buf) < 2 + n + 16:
                    break
                typ, p = s.c2s.open(buf[:2], buf[2:2 + n + 16])
                buf = buf[2 + n + 16:]
                if typ == 0:
                    s.app += p
                elif typ == 1:
                    s.app_eof = True
                elif typ == 2 and s.eof:
                    pass  # after our EOF an OFFER is ignored
                elif typ == 2:
                    xs = s.X.generate()
                    r = xs.exchange(s.XP.from_public_bytes(p))
                    s.c.sendall(s.s2c.seal(3, Ref.pub(xs)))
                    s.s2c.step(s.SK + r)
                    s.offer = r
                elif typ == 4 and s.offer:
                    s.c2s.step(s.SK + s.offer)
                    s.offer = None
                else:
                    fail("the client sent record type %d out of turn" % typ)


def c_cfuzz(cport, sport, key, seconds, seed):
    rnd = random.Random(int(seed))
    sk = stretch(key)
    l = socket.socket()
    l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    l.bind((HOST, int(sport)))
    l.listen(16)
    stats = {"conns": 0, "clean": 0, "bad": 0, "cut": 0, "hello": 0,
             "records": 0, "requests": 0, "pool": 0}
    links = []  # links the client made, answered, without OPEN yet
    t_end = time.time() + float(seconds)
    n = 0
    while time.time() < t_end:
        n += 1
        stats["conns"] += 1
        app = socket.create_connection((HOST, int(cport)), 5)
        lk = link_for(app, l, links, key, sk, rnd, n, stats)
        if not lk:
            app.close()
            continue
        try:
            one(lk, app, rnd, n, stats)
        finally:
            lk.c.close()
            app.close()
    print("cfuzz: %s" % " ".join("%s=%d" % kv for kv in sorted(stats.items())))


def link_for(app, l, links, key, sk, rnd, n, stats):
    """The link that the client opens for app: a new one (answered here,
    or with a bad hello, after which the application must be reset, with
    nothing), or one of its pool (-P), answered before. None after a bad
    hello."""
    tag = b"%08d" % n
    up = (b"U" + tag) * rnd.choice([1, 10, 3000])  # the application's
    app.sendall(up)
    app.shutdown(socket.SHUT_WR)
    bad_hello, t_end = False, time.time() + 10
    while time.time() < t_end:
        watch = [l] + [x.c for x in links] + ([app] if bad_hello else [])
        for r in select.select(watch, [], [], t_end - time.time())[0]:
            if r is l:
                c, _ = l.accept()
                c.settimeout(10)
                x = Link(c, key, sk, rnd)
                x.made = n
                if rnd.random() < 0.12:
                    x.handshake(True)
                    c.close()
                    bad_hello = True
                    stats["hello"] += 1
                elif x.handshake(False):
                    links.append(x)
            elif r is app:  # its link had a bad hello: reset, nothing
                got, end = app_end(app, 5)
                if got or end != "reset":
                    fail("conn %d: after a bad server hello the "
                         "application got %d bytes, end %s" %
                         (n, len(got), end))
                return None
            else:
                x = [y for y in links if y.c is r][0]
                links.remove(x)
                rec = x.first(1)
                if rec is None:  # the client let it go (pool: aged)
                    x.c.close()
                    continue
                typ, p = rec
                want = b"\x04" + socket.inet_aton(HOST) + struct.pack(
                    ">H", app.getsockname()[1])
                if typ != 6 or p != want:
                    fail("conn %d: the client's first record is type %d, "
                         "%r; want OPEN %r" % (n, typ, p, want))
                stats["pool"] += x.made < n
                x.tag, x.up = tag, up
                return x
    fail("conn %d: no OPEN for the application in 10 s" % n)


def app_end(app, wait):
    """What the application reads until the end: (bytes, eof|reset)."""
    got, end = b"", "eof"
    app.settimeout(wait)
    try:
        while True:
            b = app.recv(65536)
            if not b:
                break
            got += b
    except socket.timeout:
        end = "open"
    except OSError:
        end = "reset"
    return got, end


def one(lk, app, rnd, n, stats):
    tag, up = lk.tag, lk.up
    rules = rnd.random() < 0.5
    out, sent = [], b""
    bad = cut = eof = eof_ok = False

    def flush():
        try:
            for piece in split(b"".join(out), rnd):
                lk.c.sendall(piece)
        except OSError:
            if not (bad or cut):
                raise
        del out[:]
    for _ in range(rnd.randint(0, 12)):
        k = rnd.random() * (0.60 if rules else 1)
        stats["records"] += 1
        if k < 0.40:
            p = (tag * 2100)[:rnd.choice([1, 2, 8, 100, 16383, 16384])]
            if eof:
                out.append(lk.s2c.seal(0, b"FORBIDDEN!"))
                bad = True
            else:
                out.append(lk.s2c.seal(0, p))
                sent += p
        elif k < 0.45 and not eof:
            out.append(lk.s2c.seal(1, b""))
            eof = lk.eof = True
        elif k < 0.55:  # ask for a rotation; answer the client's OFFER
            out.append(lk.s2c.seal(5, b""))
            bad = eof  # not after our EOF
            if not bad:
                flush()
                lk.read_some(0.05)
                stats["requests"] += 1
        elif k < 0.60:
            flush()
            lk.read_some(0.02)
        elif k < 0.68:  # a type or a size a server may not send
            typ, p = rnd.choice([(2, bytes(32)), (4, b""), (3, bytes(32)),
                                 (6, b""), (255, b"x"), (0, b""), (1, b"x"),
                                 (5, b"x")])
            if typ == 3 and lk.offer is not None:
                typ = 4  # an ACCEPT would be in turn there
            out.append(lk.s2c.seal(typ, p))
            bad = True
        elif k < 0.78:  # one flipped bit anywhere in a record
            rec = bytearray(lk.s2c.seal(0, b"FORBIDDEN!"))
            rec[rnd.randrange(len(rec))] ^= 1 << rnd.randrange(8)
            out.append(bytes(rec))
            bad = True
        elif k < 0.86:  # a length out of range
            out.append(struct.pack(">H", rnd.choice([0, 16386, 65535])) +
                       bytes(40))
            bad = True
        else:  # the link ends here, perhaps inside a record
            rec = lk.s2c.seal(0, b"FORBIDDEN!")
            out.append(rec[:rnd.randrange(len(rec))])
            cut = True
            break
        if bad:
            break
        eof_ok = eof  # our EOF went out before anything broke
    if bad:  # more, sealed right: none of it may get through
        out.append(lk.s2c.seal(0, b"FORBIDDEN!" * 3))
    elif not cut and not eof:
        out.append(lk.s2c.seal(1, b""))
        eof = lk.eof = True
    flush()
    if bad or cut:
        stats["bad" if bad else "cut"] += 1
        try:
            lk.c.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        got, end = app_end(app, 5)
        if b"FORBIDDEN" in got or not sent.startswith(got) or (
                end != "reset" and not (eof_ok and end == "eof" and
                                        got == sent)):
            fail("conn %d: after a broken stream the application got %d "
                 "bytes (%d valid), end %s" % (n, len(got), len(sent), end))
        return
    lk.read_some(0.2)  # the client's data, its EOF, a rotation
    got, end = app_end(app, 10)
    t_end = time.time() + 5
    while not lk.app_eof and time.time() < t_end:
        lk.read_some(0.1)
    if got != sent or end != "eof":
        fail("conn %d: the application got %d bytes, end %s; want %d, eof"
             % (n, len(got), end, len(sent)))
    if lk.app != up or not lk.app_eof:
        fail("conn %d: the server got %d of the application's %d bytes, "
             "EOF %s" % (n, len(lk.app), len(up), lk.app_eof))
    stats["clean"] += 1


if __name__ == "__main__":
    c_cfuzz(*sys.argv[1:])

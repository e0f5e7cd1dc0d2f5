# ref.py: a second implementation of gstunnel's client, written from the
# README's Protocol section (python3-cryptography): key stretching, the
# hello key, HKDF, the handshake, sealed records in both directions and a
# rotation, with either cipher. fuzz.py drives a server with it. On its
# own it is a check of test.sh's "secure" and "cipher" groups:
#
#   ref.py PORT KEY [CIPHER]
#   ref.py unopened PORT KEY N
#
# PORT is a gstunnel_server whose target is t.py's mode server. Handshake,
# DATA, a rotation, DATA, EOF; the reply must open with the README's keys.
# "unopened" makes N links that never send OPEN and says when the server
# has ended them all (it must send nothing on them).
import hashlib, os, socket, struct, sys, time

from common import HOST, fail

KDF_ROUNDS = 100000
CIPHERS = {"aes": 1, "chacha20": 2}


def stretch(key):
    """The README's key stretching: PBKDF2-HMAC-SHA256."""
    return hashlib.pbkdf2_hmac("sha256", key.encode(), b"gstunnel2 key",
                               KDF_ROUNDS, 32)


def hello_key(sk):
    import hmac
    prk = hmac.new(b"gstunnel2", sk, "sha256").digest()
    return hmac.new(prk, b"gstunnel2 client hello\x01", "sha256").digest()


def H(k, m):
    import hmac
    return hmac.new(k, m, hashlib.sha256).digest()


def hkdf(salt, ikm, info, n):
    prk, out, t, i = H(salt, ikm), b"", b"", 1
    while len(out) < n:
        t = H(prk, t + info + bytes([i]))
        out += t
        i += 1
    return out[:n]


class Ref:
    """A second implementation of the client, written from the README's
    Protocol section (needs python3-cryptography)."""

    def __init__(s, port, key, cipher=None):
        from cryptography.hazmat.primitives.asymmetric.x25519 import (
            X25519PrivateKey, X25519PublicKey)
        from cryptography.hazmat.primitives.ciphers.aead import (
            AESGCM, ChaCha20Poly1305)
        s.X, s.XP = X25519PrivateKey, X25519PublicKey
        s.cipher = cipher or os.environ.get("CIPHER") or "aes"
        s.SK = SKS.get(key) or SKS.setdefault(key, stretch(key))
        kl = len(key) if s.cipher == "aes" else 32
        s.kl, s.aead = kl, AESGCM if s.cipher == "aes" else ChaCha20Poly1305
        s.c = socket.create_connection((HOST, int(port)), 5)
        s.c.settimeout(10)

    def hello(s):
        import hmac
        xc = s.X.generate()
        head = bytes([3, CIPHERS[s.cipher]]) + s.pub(xc)
        ch = head + H(hello_key(s.SK), head)
        s.c.sendall(ch)
        sh = s.recvn(65)
        if sh[0] != CIPHERS[s.cipher]:
            fail("the server answered with cipher %d" % sh[0])
        dh = xc.exchange(s.XP.from_public_bytes(sh[1:33]))
        th = hashlib.sha256(ch + sh[:33]).digest()
        o = hkdf(th, s.SK + dh, b"gstunnel2 handshake", 128)
        if not hmac.compare_digest(H(o[:32], th), sh[33:]):
            fail("the server's proof does not match the README")
        s.c2s, s.s2c = s.Dir(s, o[64:96], b"gstunnel2 c2s"), s.Dir(s, o[96:], b"gstunnel2 s2c")
        return H(o[32:64], th)

    @staticmethod
    def pub(x):
        from cryptography.hazmat.primitives.serialization import (
            Encoding, PublicFormat)
        return x.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    class Dir:
        def __init__(s, ref, t, label):
            s.ref, s.t, s.label, s.n = ref, t, label, 0
            s.step(b"")

        def step(s, ikm):
            kl = s.ref.kl
            o = hkdf(s.t, ikm, s.label, 32 + kl + 12)
            s.t, s.g, s.iv = o[:32], s.ref.aead(o[32:32 + kl]), o[32 + kl:]

        def nonce(s):
            n = bytes(a ^ b for a, b in zip(s.iv, bytes(4) + struct.pack(">Q", s.n)))
            s.n += 1
            return n

        def seal(s, typ, payload):
            hd = struct.pack(">H", 1 + len(payload))
            return hd + s.g.encrypt(s.nonce(), bytes([typ]) + payload, hd)

        def open(s, hd, body):
            p = s.g.decrypt(s.nonce(), body, hd)
            return p[0], p[1:]

    def recvn(s, n):
        b = b""
        while len(b) < n:
            x = s.c.recv(n - len(b))
            if not x:
                fail("closed after %d of %d bytes" % (len(b), n))
            b += x
        return b

    def opener(s):
        """OPEN, with this end's address as the application's (README:
        family 4, the IPv4 address, the port)."""
        a, p = s.c.getsockname()[:2]
        return s.c2s.seal(6, b"\x04" + socket.inet_aton(a) +
                          struct.pack(">H", p))

    def record(s):
        hd = s.recvn(2)
        try:
            return s.s2c.open(hd, s.recvn(struct.unpack(">H", hd)[0] + 16))
        except Exception as e:
            fail("server record %d does not open with the README's key: %r"
                 % (s.s2c.n - 1, e))


SKS = {}


def c_ref(port, key, cipher=None):
    """The Ref client: handshake, OPEN, DATA "sink\nhel", a rotation, DATA
    "lo", EOF; the reply must open with the README's s2c key after the
    rotation."""
    r = Ref(port, key, cipher)
    fin = r.hello()
    x2 = r.X.generate()
    r.c.sendall(fin + r.opener() + r.c2s.seal(0, b"sink\nhel") +
                r.c2s.seal(2, r.pub(x2)))
    typ, p = r.record()
    if typ != 3 or len(p) != 32:
        fail("want ACCEPT, got record type %d, %d bytes" % (typ, len(p)))
    dh = x2.exchange(r.XP.from_public_bytes(p))
    r.s2c.step(r.SK + dh)
    r.c.sendall(r.c2s.seal(4, b""))
    r.c2s.step(r.SK + dh)
    r.c.sendall(r.c2s.seal(0, b"lo") + r.c2s.seal(1, b""))
    got = b""
    while True:
        typ, p = r.record()
        if typ == 1:
            break
        got += p
    if got != hashlib.sha256(b"hello").hexdigest().encode() + b"\n":
        fail("reply %r" % got)
    print("%s: handshake, rotation, data and EOF as the README says" % r.cipher)


def c_unopened(port, key, n):
    """N authenticated links without OPEN: the server may only end them."""
    rs = []
    for _ in range(int(n)):
        r = Ref(port, key)
        r.c.sendall(r.hello())
        rs.append(r)
    print("ready", flush=True)
    t0 = time.time()
    for r in rs:
        try:
            x = r.c.recv(1)
        except ConnectionResetError:
            x = b""
        if x:
            fail("the server sent %r on a link not opened" % x)
    print("unopened: %s links ended by the server after %.1f s"
          % (n, time.time() - t0))


if __name__ == "__main__":
    if sys.argv[1] == "unopened":
        c_unopened(*sys.argv[2:])
    else:
        c_ref(*sys.argv[1:])

# common.py: what the Python helpers of test.sh share: the address, seeded
# data, failing with a message, resets, bounded reads and connects.
# (Loopback only; every wait bounded.)
import asyncio, os, random, resource, socket, struct, sys

soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
HOST = os.environ.get("T_HOST", "127.0.0.1")


def data(seed, n):
    return random.Random(seed).randbytes(n)


def fail(msg):
    print(msg, file=sys.stderr)
    sys.exit(1)


def rst(sock):
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


async def read_all(r, limit=None, timeout=60):
    """Read to EOF: (bytes, 'eof'|'reset'|'timeout')."""
    buf = bytearray()
    try:
        while True:
            b = await asyncio.wait_for(r.read(1 << 16), timeout)
            if not b:
                return bytes(buf), "eof"
            buf += b
    except OSError:
        return bytes(buf), "reset"
    except asyncio.TimeoutError:
        return bytes(buf), "timeout"


async def connect(port):
    return await asyncio.wait_for(asyncio.open_connection(HOST, int(port)), 10)

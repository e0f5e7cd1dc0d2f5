# mitm.py: the man in the middle of test.sh's "secure" group: it forwards a
# port to another, and can flip a bit, cut the stream after a number of
# records, or record what passes.
import asyncio, sys

from common import HOST, connect, rst

# mitm LISTEN TARGET [flip=DIR:OFFSET] [cut=DIR:RECORDS] [rec=PREFIX]
# DIR is c2s or s2c. Offsets count bytes of that direction from 0; records
# are counted after the handshake messages (c2s: 66 + 32 bytes, s2c: 65).
# rec=PREFIX writes what passes on the Nth connection (from 1) to
# PREFIX.N.c2s and PREFIX.N.s2c.

async def mitm(listen, target, *opts):
    cfg = dict(o.split("=", 1) for o in opts)
    flip = cfg.get("flip", ":").split(":")
    cut = cfg.get("cut", ":").split(":")
    rec = cfg.get("rec")
    nconn = [0]

    async def pipe(r, w, d, tag, others):
        off, skip = 0, 98 if d == "c2s" else 65
        buf = bytearray()
        records = 0
        out = open("%s.%d.%s" % (rec, tag, d), "wb") if rec else None
        try:
            while True:
                b = bytearray(await r.read(1 << 16))
                if not b:
                    break
                if flip[0] == d and off <= int(flip[1]) < off + len(b):
                    b[int(flip[1]) - off] ^= 0x10
                if out:
                    out.write(b)
                if cut[0] == d:
                    # forward whole records only, stop after N of them
                    buf += b
                    while True:
                        if skip:
                            k = min(skip, len(buf))
                            w.write(bytes(buf[:k]))
                            del buf[:k]
                            skip -= k
                            if skip:
                                break
                        if len(buf) < 2:
                            break
                        n = 2 + (buf[0] << 8 | buf[1]) + 16
                        if len(buf) < n:
                            break
                        if records == int(cut[1]):
                            await w.drain()
                            w.write_eof()  # a clean FIN, between records
                            return
                        w.write(bytes(buf[:n]))
                        del buf[:n]
                        records += 1
                else:
                    w.write(bytes(b))
                off += len(b)
                await w.drain()
            w.write_eof()
        except (ConnectionResetError, BrokenPipeError, OSError):
            for x in others:
                x.get_extra_info("socket") and rst(x.get_extra_info("socket"))
                x.close()
        finally:
            if out:
                out.close()

    async def handle(r1, w1):
        nconn[0] += 1
        tag = nconn[0]
        try:
            r2, w2 = await connect(target)
        except OSError:
            w1.close()
            return
        await asyncio.gather(pipe(r1, w2, "c2s", tag, [w1, w2]),
                             pipe(r2, w1, "s2c", tag, [w1, w2]))
        w1.close()
        w2.close()

    await asyncio.start_server(handle, HOST, int(listen))
    await asyncio.sleep(3600)


if __name__ == "__main__":
    asyncio.run(mitm(*sys.argv[1:]))

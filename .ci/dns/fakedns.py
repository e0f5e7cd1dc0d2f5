#!/usr/bin/env python3
"""Fake nameserver for test.sh: behaviour chosen by the name asked for.

Listens on 127.0.0.1:53 and [::1]:53; sends forged replies from port 5353
and from 127.0.0.9:53. Logs "name type" of each query to argv[1]."""
import os, random, select, socket, struct, sys, time

A, AAAA, CNAME, TXT = 1, 28, 5, 16
log = open(sys.argv[1], 'a', buffering=1)

def v4(s): return socket.inet_pton(socket.AF_INET, s)
def v6(s): return socket.inet_pton(socket.AF_INET6, s)
def name(s): return b''.join(bytes([len(l)]) + l.encode() for l in s.split('.')) + b'\0'
def rr(owner, t, data, cls=1): return owner + struct.pack('>HHIH', t, cls, 60, len(data)) + data
def hdr(qid, flags, an, qd=1): return struct.pack('>HHHHHH', qid, flags, qd, an, 0, 0)
PTR = b'\xc0\x0c'                       # the question's name
OK, NX, TC = 0x8180, 0x8183, 0x8380

ZONE = {
    'a.test': {A: ['10.0.0.1', '10.0.0.2'], AAAA: ['fd00::1']},
    'order.test': {A: ['10.0.1.1'], AAAA: ['fd00::101']},
    'v4only.test': {A: ['10.0.0.3']},
    'v6only.test': {AAAA: ['fd00::3']},
    'host.sub.test': {A: ['10.0.0.5']},
    'bare': {A: ['10.0.0.6']},
    'x.y.sub.test': {A: ['6.6.6.6']},
    'nodata.test': {},
    'retry.test': {A: ['10.0.0.16'], AAAA: ['fd00::16']},
    'dup.test': {A: ['10.0.0.14', '10.0.0.14']},
    'big.test': {A: ['10.0.2.%d' % i for i in range(1, 41)],
                 AAAA: ['fd00::2:%d' % i for i in range(1, 21)]},
    'override.test': {A: ['6.6.6.6']},
}
seen = {}

def answer(qid, q, t, data, flags=OK):
    recs = [rr(PTR, t, v4(a) if t == A else v6(a)) for a in data]
    return hdr(qid, flags, len(recs)) + q + b''.join(recs)

def plain(qn, qid, q, t):
    if qn not in ZONE:
        return hdr(qid, NX, 0) + q
    return answer(qid, q, t, ZONE[qn].get(t, []))

def handle(sock, peer, pkt, out):
    """Queue (delay, socket, bytes) replies to peer in out."""
    qid = struct.unpack('>H', pkt[:2])[0]
    if pkt[2:12] != b'\1\0\0\1\0\0\0\0\0\0':
        raise Exception('bad query header %r' % pkt[:12])
    p, labels = 12, []
    while pkt[p]:
        labels.append(pkt[p + 1:p + 1 + pkt[p]].decode()); p += pkt[p] + 1
    q = pkt[12:p + 5]
    t = struct.unpack('>H', pkt[p + 1:p + 3])[0]
    qn = '.'.join(labels)
    log.write('%s %d\n' % (qn, t))
    low = qn.lower()
    good = lambda a4, a6: answer(qid, q, t, [a4] if t == A else [a6])
    forged = answer(qid, q, t, ['6.6.6.6'] if t == A else ['fd00::666'])
    fam = sock.family
    if low.startswith('silent'):
        return
    if low == 'order.test':             # AAAA before A
        out.append((0.3 if t == A else 0, sock, plain(qn, qid, q, t)))
    elif low == 'retry.test':           # only a query asked again
        seen[(qn, t)] = seen.get((qn, t), 0) + 1
        if seen[(qn, t)] % 2 == 0:
            out.append((0, sock, plain(qn, qid, q, t)))
    elif low in ('spoofid.test', 'spoofport.test', 'spoofip.test',
                 'noqr.test', 'wrongq.test', 'spoofonly.test'):
        bad = []
        if low in ('spoofid.test', 'spoofonly.test'):
            bad.append((sock, struct.pack('>H', qid ^ 0x5a5a) + forged[2:]))
        if low in ('spoofport.test', 'spoofonly.test'):
            bad.append((spoof[fam], forged))
        if low in ('spoofip.test', 'spoofonly.test') and fam == socket.AF_INET:
            bad.append((spoofip, forged))
        if low in ('noqr.test', 'spoofonly.test'):
            bad.append((sock, forged[:2] + b'\x01\x80' + forged[4:]))
        if low in ('wrongq.test', 'spoofonly.test'):
            wq = bytearray(forged); wq[12 + 6] ^= 1     # "wrongq" -> "wrongp"
            bad.append((sock, bytes(wq)))
            wt = bytearray(forged); wt[p + 2] = AAAA if t == A else A   # other type
            bad.append((sock, bytes(wt)))
        for s, b in bad:
            out.append((0, s, b))
        if low != 'spoofonly.test':
            out.append((0.05, sock, good('10.0.0.7', 'fd00::7')))
    elif low == 'cname.test':
        mid, end = name('mid.test'), name('end.test')
        recs = [rr(PTR, CNAME, mid), rr(mid, CNAME, end),
                rr(end, TXT, b'\x03abc'), rr(end, A, v4('9.9.9.9'), cls=3),
                rr(end, t, v4('10.0.0.4') if t == A else v6('fd00::4'))]
        out.append((0, sock, hdr(qid, OK, len(recs)) + q + b''.join(recs)))
    elif low == 'nx.test':
        out.append((0, sock, hdr(qid, NX, 0) + q))
    elif low == 'servfail.test':
        out.append((0, sock, hdr(qid, 0x8182, 0) + q))
    elif low == 'trunc.test':           # TC, second record cut short
        if t == A:
            b = answer(qid, q, t, ['10.0.0.11', '10.0.0.99'], TC)
            out.append((0, sock, b[:-2]))
        else:
            out.append((0, sock, hdr(qid, TC, 5) + q))
    elif low == 'loop.test':            # names that point at themselves
        h = hdr(qid, OK, 5) + q
        o = len(h)
        r1 = struct.pack('>H', 0xc000 | o) + struct.pack('>HHIH', A, 1, 60, 4) + v4('10.0.0.12')
        o2 = o + len(r1)
        r2 = b'\x01x' + struct.pack('>H', 0xc000 | (o2 + 2)) + struct.pack('>HHIH', A, 1, 60, 4) + v4('10.0.0.13')
        r3 = b'\x41' + b'z' * 65 + b'\0' + struct.pack('>HHIH', A, 1, 60, 4) + v4('6.6.6.6')
        r4 = rr(PTR, A, v4('6.6.6.7'))
        out.append((0, sock, h + r1 + r2 + r3 + r4))
    elif low == 'badlen.test':
        recs = [rr(PTR, A, b'\1\2\3\4\5'), rr(PTR, AAAA, v4('6.6.6.6')),
                rr(PTR, A, v4('10.0.0.18')),
                PTR + struct.pack('>HHIH', A, 1, 60, 1000) + v4('6.6.6.8')]
        out.append((0, sock, hdr(qid, OK, 4) + q + b''.join(recs)))
    elif low == 'garbage.test':         # junk first, then a good reply + junk
        junk = [b'', pkt[:1], pkt[:11], hdr(qid, OK, 0, qd=1),
                hdr(qid, OK, 3, qd=1) + q[:-3], hdr(qid, OK, 0, qd=2) + q + q,
                hdr(qid, OK, 0, qd=0) + q, os.urandom(700)]
        for b in junk:
            out.append((0, sock, b))
        b = answer(qid, q, t, ['10.0.0.15'] if t == A else ['fd00::15'])
        b = b[:6] + b'\x00\x40' + b[8:] + os.urandom(300)
        out.append((0.05, sock, b))
    elif low == 'fuzz.test':            # a valid start, then anything
        b = hdr(qid, random.choice([OK, TC]), random.randrange(65536)) + q
        tail = bytearray(os.urandom(random.randrange(0, 600)))
        for i in range(0, len(tail), 7):    # sprinkle pointers and types
            tail[i] = random.choice([0xc0, 0, 1, 28, 4, 16, 0x3f, 0x40, tail[i]])
        out.append((0, sock, b + bytes(tail)))
    else:
        out.append((0, sock, plain(qn, qid, q, t)))

def udp(fam, addr, port):
    s = socket.socket(fam, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, port))
    return s

main = [udp(socket.AF_INET, '127.0.0.1', 53), udp(socket.AF_INET6, '::1', 53)]
spoof = {socket.AF_INET: udp(socket.AF_INET, '127.0.0.1', 5353),
         socket.AF_INET6: udp(socket.AF_INET6, '::1', 5353)}
spoofip = udp(socket.AF_INET, '127.0.0.9', 53)
open(sys.argv[2], 'w').close()          # ready
pending = []
while True:
    now = time.monotonic()
    wait = min([t for t, _, _, _ in pending], default=now + 1) - now
    r, _, _ = select.select(main, [], [], max(wait, 0))
    for s in r:
        pkt, peer = s.recvfrom(4096)
        out = []
        try:
            handle(s, peer, pkt, out)
        except Exception as e:
            sys.stderr.write('server error %r\n' % e)
        for d, so, b in out:
            pending.append((time.monotonic() + d, so, b, peer))
    now = time.monotonic()
    for item in sorted(pending, key=lambda x: x[0]):
        if item[0] <= now:
            pending.remove(item)
            item[1].sendto(item[2], item[3])

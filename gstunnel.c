/*
 * gstunnel - a small encrypted TCP tunnel.
 *
 *   app -> gstunnel_client -> (AES-GCM or ChaCha20-Poly1305)
 *       -> gstunnel_server -> target
 *
 * One source, built twice: -DCLIENT gives gstunnel_client, -DSERVER gives
 * gstunnel_server. One process, one poll() loop, a fixed connection table.
 * The wire protocol is specified in the README ("Protocol").
 *
 * Copyright (C) 2026 the gstunnel authors
 *
 * This program is free software: you can redistribute it and/or modify it
 * under the terms of the GNU General Public License as published by the Free
 * Software Foundation, either version 3 of the License, or (at your option)
 * any later version.
 *
 * This program is distributed in the hope that it will be useful, but WITHOUT
 * ANY WARRANTY; without even the implied warranty of MERCHANTABILITY or
 * FITNESS FOR A PARTICULAR PURPOSE. See the GNU General Public License for
 * more details.
 *
 * You should have received a copy of the GNU General Public License along
 * with this program. If not, see <https://www.gnu.org/licenses/>.
 */

/* ==== includes ========================================================== */

#define _GNU_SOURCE /* syscall(), explicit prototypes on glibc and musl */

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <sys/wait.h>

#include <bearssl.h>

/* ==== tunables ========================================================== */

#if defined(CLIENT) == defined(SERVER)
#error "build with exactly one of -DCLIENT or -DSERVER"
#endif
#ifdef CLIENT
#define IS_CLIENT 1
#define PROG "gstunnel_client"
#else
#define IS_CLIENT 0
#define PROG "gstunnel_server"
#endif

#ifndef VERSION
#define VERSION "0.1.0"
#endif
#ifndef CONN_MAX_DEFAULT
#define CONN_MAX_DEFAULT 8192 /* the -n default, if the fd limit allows */
#endif
#ifndef TIMEOUT_DEFAULT
#define TIMEOUT_DEFAULT 10 /* -t: connect and handshake, seconds */
#endif
#ifndef ROTATE_DEFAULT
#define ROTATE_DEFAULT 60 /* -r: key rotation interval, seconds */
#endif
#ifndef ROTATE_BYTES
#define ROTATE_BYTES (1ULL << 30) /* rotate after this much data, too */
#endif
#ifndef BENCH_MS
#define BENCH_MS 150 /* -B: time spent on each implementation */
#endif
#ifndef ACCEPT_PAUSE_MS
#define ACCEPT_PAUSE_MS 1000 /* stop accepting this long after EMFILE */
#endif

/* Protocol constants: see the README before changing any of them. */
#define PROTO_VERSION 2
#define KDF_ROUNDS 100000 /* PBKDF2 rounds: about 1.5 s on a 500 MHz MIPS */
#define REC_PAYLOAD_MAX 16384
#define REC_HEAD 2 /* big-endian length of type byte + payload */
#define REC_TAG 16
#define REC_WIRE_MAX (REC_HEAD + 1 + REC_PAYLOAD_MAX + REC_TAG)
#define REC_CTRL_MAX (REC_HEAD + 1 + 32 + REC_TAG)
#define CLIENT_HELLO_LEN 66 /* version, cipher, X25519 public, MAC */
#define SERVER_HELLO_LEN 65 /* cipher, X25519 public, MAC */
#define FINISHED_LEN 32

/* Each direction's buffer holds BUF_RECORDS full records at first, and up
 * to BUF_RECORDS_MAX for a stream that keeps it full (more records per
 * system call). Allocated only while data waits. */
#ifndef BUF_RECORDS
#define BUF_RECORDS 2
#endif
#ifndef BUF_RECORDS_MAX
#define BUF_RECORDS_MAX 8
#endif
#define BUF_SIZE (BUF_RECORDS * REC_WIRE_MAX)
#define BUF_MAX (BUF_RECORDS_MAX * REC_WIRE_MAX)

/* ==== types ============================================================= */

enum rec_type {
	REC_DATA = 0,    /* 1..16384 bytes of application data */
	REC_EOF = 1,     /* the sender's application closed its write side */
	REC_OFFER = 2,   /* client: new X25519 public key for rotation */
	REC_ACCEPT = 3,  /* server: its X25519 public; s2c key changes after */
	REC_SWITCH = 4,  /* client: c2s key changes after this record */
	REC_REQUEST = 5  /* server: please start a rotation */
};

enum conn_state {
	S_FREE,    /* slot unused: both fds -1 */
	S_CONNECT, /* outbound connect in progress (client: link, server: plain) */
	S_HELLO,   /* client: hello sent, waiting for the server's; server:
		    * waiting for the client hello */
	S_FINISH,  /* server: hello answered, waiting for the client's MAC */
	S_OPEN     /* records flow */
};

/* conn.flags */
#define F_TX_EOF 0x0001      /* EOF record sealed: plain read side is done */
#define F_RX_EOF 0x0002      /* EOF record received */
#define F_PLAIN_SHUT 0x0004  /* shutdown(plain, SHUT_WR) done */
#define F_LINK_EOF 0x0008    /* link read returned 0 */
#define F_SEND_OFFER 0x0010  /* client: OFFER to be sealed */
#define F_OFFER 0x0020       /* client: OFFER sent, waiting for ACCEPT */
#define F_SEND_SWITCH 0x0040 /* client: SWITCH to be sealed */
#define F_SEND_ACCEPT 0x0080 /* server: ACCEPT to be sealed */
#define F_WAIT_SWITCH 0x0100 /* server: ACCEPT done, waiting for SWITCH */
#define F_SEND_REQUEST 0x0200 /* server: REQUEST to be sealed */
#define F_REQUESTED 0x0400   /* server: REQUEST sent, no rotation since */
#define F_CONTROL (F_SEND_OFFER | F_SEND_SWITCH | F_SEND_ACCEPT | \
		   F_SEND_REQUEST)

struct buf {
	unsigned char *p;    /* NULL while nothing waits */
	size_t off, len, cap; /* bytes [off, len) are pending; cap: size */
	int hot;             /* the last read filled it: keep it, grow it */
};

struct dir;

/* A cipher is a row of the table `ciphers`: its name for -c, its id on the
 * wire, its traffic key length (0: the KEY's), and its code. use() selects
 * its implementation pair i (see crypto_select). */
struct cipher {
	const char *name, *aead;
	unsigned char id, key_len;
	void (*init)(struct dir *d, const unsigned char *k, size_t n);
	void (*seal)(struct dir *d, const unsigned char *nonce,
		     const void *aad, size_t aad_len, unsigned char *data,
		     size_t len, unsigned char *tag);
	int (*open)(struct dir *d, const unsigned char *nonce,
		    const void *aad, size_t aad_len, unsigned char *data,
		    size_t len, const unsigned char *tag);
	const char *(*use)(size_t i, int *ok);
	int (*kat)(void);
};

/* One direction of the record layer. The GCM context points at aes, so a
 * dir never moves (it lives in the connection table). */
struct dir {
	const struct cipher *cipher;
	union {
		struct {
			br_aes_gen_ctr_keys aes;
			br_gcm_context gcm;
		} gcm;
		struct {
			unsigned char key[32];
			br_chacha20_run chacha;
			br_poly1305_run poly;
		} cp;
	} k;
	unsigned char secret[32]; /* traffic secret: ratchets on rotation */
	unsigned char iv[12];
	uint64_t seq;             /* records sealed or opened with this dir */
	unsigned long rotations;
};

/*
 * A connection: the plain side (the application on the client, the target
 * on the server) and the link (the encrypted connection between client and
 * server). tx holds sealed records waiting for the link; rx holds bytes read
 * from the link, opened in place, whose plaintext waits for the plain side
 * (see rx_waiting()).
 */
struct conn {
	int plain, link;
	unsigned char state, hs_len;
	short plain_rev, link_rev; /* what poll() said this round */
	unsigned flags;
	unsigned long id;
	int64_t since;    /* when accepted (ms on the monotonic clock) */
	int64_t deadline; /* when the current wait times out; 0: none */
	const struct addrinfo *ai; /* address being connected to */
	struct buf tx, rx;
	size_t out_off, out_skip; /* see rx_waiting() */
	int64_t rotated;    /* when the keys last rotated (ms) */
	uint64_t rot_bytes; /* payload bytes since then, both directions */
	struct dir send, recv;
	unsigned char eph[32]; /* our X25519 secret, while an exchange runs */
	unsigned char pub[32]; /* X25519 public for the OFFER or ACCEPT */
	unsigned char dh[32];  /* rotation secret until both keys moved */
	unsigned char hs[CLIENT_HELLO_LEN]; /* handshake: see client_hello(),
					     * server_handshake() */
};

/* ==== prototypes ======================================================== */

#if defined(__GNUC__) || defined(__clang__)
#define PRINTF_LIKE(f, a) __attribute__((format(printf, f, a)))
#else
#define PRINTF_LIKE(f, a)
#endif

static void die(int code, const char *fmt, ...) PRINTF_LIKE(2, 3);
static void logmsg(const struct conn *c, const char *fmt, ...)
	PRINTF_LIKE(2, 3);
static int fail(struct conn *c, const char *fmt, ...) PRINTF_LIKE(2, 3);
static void conn_close(struct conn *c, int reset);
static int conn_connect_next(struct conn *c, int err);
static int rx_process(struct conn *c);

/* ==== globals =========================================================== */

static const char *usage_text =
"usage: gstunnel_client [options] LISTEN SERVER [KEY]\n"
"       gstunnel_server [options] LISTEN TARGET [KEY]\n"
"\n"
"  LISTEN      address to accept on: host:port, [ipv6]:port or :port\n"
"  SERVER      address of the gstunnel_server (client only)\n"
"  TARGET      address of the service to reach (server only)\n"
"  KEY         shared secret of exactly 16, 24 or 32 bytes (AES-128/192/256);\n"
"              read from -k FILE or $GSTUNNEL_KEY when not given here\n"
"\n"
"options:\n"
"  -c CIPHER   aes (AES-GCM, the default) or chacha20 (ChaCha20-Poly1305,\n"
"              faster on CPUs without AES instructions: see -B); a server\n"
"              given -c refuses the other, else it takes the client's\n"
"  -k FILE     read KEY from FILE ('-': standard input)\n"
"  -j WORKERS  worker processes, 0: one per CPU (default 1)\n"
"  -n MAXCONN  connections at once, per worker (default: fd limit / 2,\n"
"              at most 8192)\n"
"  -t SECONDS  connect and handshake timeout (default 10)\n"
"  -r SECONDS  rotate keys after SECONDS of activity, 0: by volume only\n"
"              (default 60)\n"
"  -v          verbose: log connections, key rotations, cipher code\n"
"  -g          print a new random 32-character key and exit\n"
"  -S          run the crypto self-test on every implementation and exit\n"
"  -B          measure each cipher implementation's speed here and exit\n"
"  -V          print the version and exit\n"
"  -h          print this help and exit\n";

static struct conn *conns;   /* the connection table, conn_max slots */
/* pfds[0] is the listener; after it, one entry per fd that has interest,
 * in slot order, and pfd_owner[k] = 2 * slot + (0 for plain, 1 for link).
 * Only fds with interest are listed, so nfds never exceeds the fd limit
 * (poll() refuses more), whatever -n says. */
static struct pollfd *pfds;
static int *pfd_owner;
static int conn_max, conn_count, conn_high; /* slots >= conn_high are free */
static unsigned long conn_ids;
static int listen_fd = -1;
static struct addrinfo *remote_ai; /* SERVER (client) or TARGET (server) */
static int64_t now, accept_paused_until;
static int verbose, timeout_ms = TIMEOUT_DEFAULT * 1000;
static int64_t rotate_ms = ROTATE_DEFAULT * 1000;
static volatile sig_atomic_t stop_signal, signals; /* the last; a count */
static int worker_id;  /* with -j: this worker's number, from 1 */
static int reuseport;  /* each worker has its own SO_REUSEPORT listener */

/* key: KEY stretched by PBKDF2 (the raw KEY is wiped at once); key_len:
 * the raw KEY's length, which picks AES-128/192/256 */
static unsigned char key[32], hello_key[32];
static size_t key_len;
static const struct cipher *cipher; /* -c, or the default */
static int cipher_forced;           /* -c given: the server refuses others */
/* the implementations in use: set by crypto_select() and cipher use() */
static const br_block_ctr_class *aes_impl;
static br_ghash ghash_impl;
static br_chacha20_run chacha_impl;
static br_poly1305_run poly_impl;
static const br_ec_impl *ec_impl = &br_ec_c25519_m31;
static int use_rdrand = 1;
static int urandom_fd = -1;

static const char *send_label = IS_CLIENT ? "gstunnel2 c2s" : "gstunnel2 s2c";
static const char *recv_label = IS_CLIENT ? "gstunnel2 s2c" : "gstunnel2 c2s";
static const char *plain_name = IS_CLIENT ? "app" : "target";
static const char *hs_closed = "authentication failed: the server closed the "
			       "link in the handshake (wrong key?)";

/* ==== output ============================================================ */

/*
 * A small formatter instead of stdio's printf, whose floating-point code
 * alone is a tenth of a static binary: %s, %c, %d, %u, %x with l or ll, a
 * width and '-' (for the tables of -S and -B), %%. fmt() works like
 * snprintf(); say() writes one line to an fd with a single write().
 */
static size_t vfmt(char *out, size_t n, const char *f, va_list ap)
{
	char num[24], *s;
	unsigned long long u;
	long long v;
	size_t len = 0, w, l, i, pad;
	int left, lng, neg;

	for (; *f; f++) {
		if (*f != '%') {
			if (len + 1 < n)
				out[len] = *f;
			len++;
			continue;
		}
		left = *++f == '-';
		f += left;
		for (w = 0; *f >= '0' && *f <= '9'; f++)
			w = w * 10 + (size_t)(*f - '0');
		for (lng = 0; *f == 'l'; f++)
			lng++;
		s = num + sizeof num - 1;
		*s = 0;
		if (*f == 's') {
			s = va_arg(ap, char *);
		} else if (*f == 'c') {
			*--s = (char)va_arg(ap, int);
		} else if (*f == 'd' || *f == 'u' || *f == 'x') {
			if (*f == 'd') {
				v = lng > 1 ? va_arg(ap, long long) : lng ?
				    va_arg(ap, long) : va_arg(ap, int);
				neg = v < 0;
				u = neg ? 0 - (unsigned long long)v :
				    (unsigned long long)v;
			} else {
				u = lng > 1 ? va_arg(ap, unsigned long long) :
				    lng ? va_arg(ap, unsigned long) :
				    va_arg(ap, unsigned);
				neg = 0;
			}
			do
				*--s = "0123456789abcdef"[u % (*f == 'x' ? 16 :
							       10)];
			while (u /= *f == 'x' ? 16 : 10);
			if (neg)
				*--s = '-';
		} else {
			*--s = *f; /* %% */
		}
		l = strlen(s);
		pad = w > l ? w - l : 0;
		for (i = 0; i < pad + l; i++) {
			if (len + 1 < n)
				out[len] = left ? i < l ? s[i] : ' ' :
					   i < pad ? ' ' : s[i - pad];
			len++;
		}
	}
	if (n)
		out[len < n ? len : n - 1] = 0;
	return len;
}

static size_t fmt(char *out, size_t n, const char *f, ...)
	PRINTF_LIKE(3, 4);

static size_t fmt(char *out, size_t n, const char *f, ...)
{
	va_list ap;
	size_t len;

	va_start(ap, f);
	len = vfmt(out, n, f, ap);
	va_end(ap);
	return len;
}

/* Write all of p (a log line may be cut short by a signal: so be it). */
static void put(int fd, const char *p, size_t n)
{
	ssize_t r;

	while (n && ((r = write(fd, p, n)) > 0 || (r < 0 && errno == EINTR)))
		if (r > 0) {
			p += r;
			n -= (size_t)r;
		}
}

static void say(int fd, const char *f, ...) PRINTF_LIKE(2, 3);

static void say(int fd, const char *f, ...)
{
	char line[512];
	va_list ap;
	size_t n;

	va_start(ap, f);
	n = vfmt(line, sizeof line, f, ap);
	va_end(ap);
	put(fd, line, n < sizeof line ? n : sizeof line - 1);
}

/* ==== errors and logging ================================================ */

static void die(int code, const char *f, ...)
{
	char line[512];
	va_list ap;
	size_t n;

	va_start(ap, f);
	n = vfmt(line, sizeof line - 1, f, ap);
	va_end(ap);
	if (n > sizeof line - 2)
		n = sizeof line - 2;
	line[n++] = '\n';
	put(2, PROG ": ", sizeof PROG + 1);
	put(2, line, n);
	exit(code);
}

static void usage(void)
{
	put(1, usage_text, strlen(usage_text));
	exit(0);
}

/* One line, one write(): the program, the worker (with -j), the
 * connection, the message. */
static void vlog(const struct conn *c, const char *f, va_list ap)
{
	char line[512];
	size_t n = fmt(line, sizeof line, PROG);

	if (worker_id)
		n += fmt(line + n, sizeof line - n, "[%d]", worker_id);
	if (c)
		n += fmt(line + n, sizeof line - n, ": conn %lu", c->id);
	n += fmt(line + n, sizeof line - n, ": ");
	if (n < sizeof line - 1)
		n += vfmt(line + n, sizeof line - 1 - n, f, ap);
	if (n > sizeof line - 2)
		n = sizeof line - 2;
	line[n++] = '\n';
	put(2, line, n);
}

static void logmsg(const struct conn *c, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(c, fmt, ap);
	va_end(ap);
}

/* Log why a connection fails; the caller then closes it with a reset. */
static int fail(struct conn *c, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(c, fmt, ap);
	va_end(ap);
	return -1;
}

/* ==== small helpers ===================================================== */

/* memset through a volatile pointer: the compiler cannot drop the wipe. */
static void *(*const volatile memset_v)(void *, int, size_t) = memset;

static void wipe(void *p, size_t n)
{
	memset_v(p, 0, n);
}

static int64_t clock_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The one parser for numbers from the user: decimal, within [min, max]. */
static long parse_num(const char *s, long min, long max, const char *what)
{
	const char *p = s + (*s == '-');
	long v = 0;

	for (; *p >= '0' && *p <= '9' && v < 100000000; p++)
		v = v * 10 + (*p - '0');
	if (*s == '-')
		v = -v;
	if (*p || p == s + (*s == '-') || v < min || v > max)
		die(2, "bad %s '%s': want a number from %ld to %ld", what, s,
		    min, max);
	return v;
}

static int ct_equal(const unsigned char *a, const unsigned char *b, size_t n)
{
	unsigned d = 0;
	size_t i;

	for (i = 0; i < n; i++)
		d |= a[i] ^ b[i];
	return d == 0;
}

static void put_be64(unsigned char *p, uint64_t v)
{
	int i;

	for (i = 7; i >= 0; i--, v >>= 8)
		p[i] = (unsigned char)v;
}

static int set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	return fl < 0 ? -1 : fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

static void set_tcp_options(int fd)
{
	int one = 1;

	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
}

/* Parse host:port, [v6]:port or :port and resolve it. */
static struct addrinfo *resolve(const char *arg, int passive, const char *what)
{
	char host[256], port[8];
	const char *colon = strrchr(arg, ':');
	struct addrinfo hints, *res;
	size_t hl;
	int e;

	if (!colon)
		die(2, "bad %s '%s': want host:port", what, arg);
	hl = (size_t)(colon - arg);
	if (hl && arg[0] == '[') {
		if (arg[hl - 1] != ']')
			die(2, "bad %s '%s': want [ipv6]:port", what, arg);
		arg++;
		hl -= 2;
	}
	if (hl >= sizeof host || (!hl && !passive))
		die(2, "bad %s '%s': bad host", what, arg);
	memcpy(host, arg, hl);
	host[hl] = 0;
	fmt(port, sizeof port, "%ld",
		 parse_num(colon + 1, 1, 65535, "port"));
	memset(&hints, 0, sizeof hints);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE : 0);
	e = getaddrinfo(hl ? host : NULL, port, &hints, &res);
	if (e)
		die(2, "cannot resolve %s '%s': %s", what, host,
		    e == EAI_SYSTEM ? strerror(errno) : gai_strerror(e));
	return res;
}

/* host:port or [v6]:port, numeric (RFC 5952 for IPv6); not inet_ntop(),
 * which would bring stdio's printf into a static binary. */
static const char *addr_str(const struct addrinfo *ai)
{
	static char s[64];
	const struct sockaddr_in6 *a6 = (const void *)ai->ai_addr;
	const struct sockaddr_in *a4 = (const void *)ai->ai_addr;
	const unsigned char *a;
	size_t n;
	int i, run, z0 = -1, zl = 1;

	if (ai->ai_family != AF_INET6) {
		a = (const unsigned char *)&a4->sin_addr;
		fmt(s, sizeof s, "%u.%u.%u.%u:%u", a[0], a[1], a[2], a[3],
		    (unsigned)ntohs(a4->sin_port));
		return s;
	}
	a = a6->sin6_addr.s6_addr;
	for (i = 0; i < 8; i += run ? run : 1) { /* longest zero run: "::" */
		for (run = 0; i + run < 8 && !a[2 * (i + run)] &&
		     !a[2 * (i + run) + 1]; run++)
			;
		if (run > zl) {
			z0 = i;
			zl = run;
		}
	}
	n = fmt(s, sizeof s, "[");
	for (i = 0; i < 8; i++) {
		if (i == z0) {
			n += fmt(s + n, sizeof s - n, "::");
			i += zl - 1;
		} else {
			n += fmt(s + n, sizeof s - n, "%s%x",
				 i && i != z0 + zl ? ":" : "",
				 (unsigned)(a[2 * i] << 8 | a[2 * i + 1]));
		}
	}
	fmt(s + n, sizeof s - n, "]:%u", (unsigned)ntohs(a6->sin6_port));
	return s;
}

/* ==== randomness ======================================================== */

/*
 * Kernels before 3.17 have no getrandom(), which waits until the kernel's
 * pool is seeded; /dev/urandom never waits. So wait once for /dev/random to
 * become readable, which it does when the pool has entropy: a router just
 * after boot must not make predictable keys. Then use /dev/urandom for good.
 */
static int urandom_open(void)
{
	struct pollfd p;
	int r, fd = open("/dev/random", O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -1;
	p.fd = fd;
	p.events = POLLIN;
	while ((r = poll(&p, 1, 1000)) <= 0) {
		if (r < 0 && errno != EINTR)
			break;
		if (r == 0)
			logmsg(NULL, "waiting for the kernel's random pool "
			       "(/dev/random) before making keys");
	}
	close(fd);
	if (r <= 0)
		return -1;
	urandom_fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
	return urandom_fd;
}

static int os_random(void *buf, size_t n)
{
	unsigned char *p = buf;
	ssize_t r;

	while (n) {
		r = -1;
		errno = ENOSYS;
#if defined(SYS_getrandom) && !defined(NO_GETRANDOM)
		if (urandom_fd < 0)
			r = syscall(SYS_getrandom, p, n, 0);
#endif
		if (r < 0 && errno == ENOSYS) {
			/* Kernels before 3.17: fall back for good. */
			if (urandom_fd < 0 && urandom_open() < 0)
				return -1;
			r = read(urandom_fd, p, n);
			if (r == 0)
				return -1;
		}
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

#if (defined(__x86_64__) || defined(__i386__)) && !defined(NO_RDRAND) && \
	(defined(__GNUC__) || defined(__clang__))
static int rdrand_supported(void)
{
	unsigned a, b, c, d;

	__asm__ volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d)
			 : "a"(0), "c"(0));
	if (a < 1)
		return 0;
	__asm__ volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d)
			 : "a"(1), "c"(0));
	return (c >> 30) & 1;
}

/* One RDRAND word; a bounded retry on a clear carry flag, and 0 and
 * all-ones (what some broken CPUs return forever) rejected. */
static int rdrand_word(unsigned long *v)
{
	unsigned char ok;
	int i;

	for (i = 0; i < 10; i++) {
		__asm__ volatile("rdrand %0; setc %1" : "=r"(*v), "=qm"(ok)
				 : : "cc");
		if (ok && *v != 0 && *v != ~0UL)
			return 0;
	}
	return -1;
}
#else
static int rdrand_supported(void)
{
	return 0;
}

static int rdrand_word(unsigned long *v)
{
	*v = 0;
	return -1;
}
#endif

/*
 * Fresh random bytes: 32 bytes from the OS and, where the CPU has it, 32
 * from RDRAND seed an HMAC-DRBG (SHA-256) that produces the output. A bad
 * RDRAND can then add nothing worse than no entropy.
 */
static int rnd(void *out, size_t n)
{
	unsigned char seed[64];
	unsigned long w;
	size_t len = 32, i;
	br_hmac_drbg_context drbg;

	if (os_random(seed, 32) < 0)
		return -1;
	for (i = 0; use_rdrand && len + sizeof w <= sizeof seed; i++) {
		if (rdrand_word(&w) < 0) {
			logmsg(NULL, "RDRAND failed; using the OS generator "
			       "alone from now on");
			use_rdrand = 0;
			break;
		}
		memcpy(seed + len, &w, sizeof w);
		len += sizeof w;
	}
	br_hmac_drbg_init(&drbg, &br_sha256_vtable, seed, len);
	br_hmac_drbg_generate(&drbg, out, n);
	wipe(&drbg, sizeof drbg);
	wipe(seed, sizeof seed);
	wipe(&w, sizeof w);
	return 0;
}

/* ==== crypto primitives ================================================= */

static void hmac_sha256(unsigned char out[32], const void *k, size_t kl,
			const void *a, size_t al, const void *b, size_t bl)
{
	br_hmac_key_context kc;
	br_hmac_context h;

	br_hmac_key_init(&kc, &br_sha256_vtable, k, kl);
	br_hmac_init(&h, &kc, 0);
	br_hmac_update(&h, a, al);
	br_hmac_update(&h, b, bl);
	br_hmac_out(&h, out);
	wipe(&kc, sizeof kc);
	wipe(&h, sizeof h);
}

/* HKDF-SHA256 (RFC 5869): Extract(salt, ikm1 || ikm2), Expand(info, n). */
static void hkdf(void *out, size_t n, const void *salt, size_t salt_len,
		 const void *ikm1, size_t l1, const void *ikm2, size_t l2,
		 const char *info)
{
	br_hkdf_context h;

	br_hkdf_init(&h, &br_sha256_vtable, salt, salt_len);
	br_hkdf_inject(&h, ikm1, l1);
	br_hkdf_inject(&h, ikm2, l2);
	br_hkdf_flip(&h);
	br_hkdf_produce(&h, info, strlen(info), out, n);
	wipe(&h, sizeof h);
}

/* PBKDF2-HMAC-SHA256 (RFC 8018), one 32-byte block: the XOR of U1..Uc,
 * U1 = HMAC(pw, salt || 0x00000001), Ui = HMAC(pw, Ui-1). BearSSL's key
 * context keeps the padded key's hash state, so a round is two SHA-256
 * blocks. */
static void pbkdf2(unsigned char out[32], const void *pw, size_t pw_len,
		   const void *salt, size_t salt_len, unsigned long rounds)
{
	br_hmac_key_context kc;
	br_hmac_context h;
	unsigned char u[32];
	unsigned long r;
	size_t i;

	br_hmac_key_init(&kc, &br_sha256_vtable, pw, pw_len);
	br_hmac_init(&h, &kc, 0);
	br_hmac_update(&h, salt, salt_len);
	br_hmac_update(&h, "\0\0\0\1", 4);
	br_hmac_out(&h, u);
	memcpy(out, u, 32);
	for (r = 1; r < rounds; r++) {
		br_hmac_init(&h, &kc, 0);
		br_hmac_update(&h, u, 32);
		br_hmac_out(&h, u);
		for (i = 0; i < 32; i++)
			out[i] ^= u[i];
	}
	wipe(&kc, sizeof kc);
	wipe(&h, sizeof h);
	wipe(u, sizeof u);
}

static void x25519_public(unsigned char pub[32], const unsigned char sec[32])
{
	ec_impl->mulgen(pub, sec, 32, BR_EC_curve25519);
}

/*
 * The next ephemeral key pair is made ahead, while the loop is idle (see
 * run()), so that a handshake or a rotation computes one X25519 instead of
 * two. A pair is used once: eph_take() wipes the spare as it hands it out.
 * With -j, each worker makes its own, after the fork.
 */
static struct {
	unsigned char sec[32], pub[32];
	int ready;
	int64_t retry; /* no randomness: not before this (no spinning) */
} spare;

static void eph_prepare(void)
{
	if (spare.ready)
		return;
	if (rnd(spare.sec, 32) < 0) {
		spare.retry = now + 1000;
		return;
	}
	x25519_public(spare.pub, spare.sec);
	spare.ready = 1;
}

static int eph_take(unsigned char sec[32], unsigned char pub[32])
{
	if (!spare.ready)
		eph_prepare();
	if (!spare.ready)
		return -1;
	memcpy(sec, spare.sec, 32);
	memcpy(pub, spare.pub, 32);
	wipe(&spare, sizeof spare);
	return 0;
}

/* X25519(sec, peer) into out; -1 for an all-zero result (a low-order point
 * from the peer, which would make the exchange contribute nothing). */
static int x25519(unsigned char out[32], const unsigned char sec[32],
		  const unsigned char peer[32])
{
	unsigned char zero[32] = {0};

	memcpy(out, peer, 32);
	if (!ec_impl->mul(out, 32, sec, 32, BR_EC_curve25519) ||
	    ct_equal(out, zero, 32))
		return -1;
	return 0;
}

/* ==== ciphers =========================================================== */

/* AES-GCM; the AES and GHASH code come from crypto_select(). */
static void gcm_init(struct dir *d, const unsigned char *k, size_t n)
{
	aes_impl->init(&d->k.gcm.aes.vtable, k, n);
	br_gcm_init(&d->k.gcm.gcm, &d->k.gcm.aes.vtable, ghash_impl);
}

static void gcm_start(struct dir *d, const unsigned char *nonce,
		      const void *aad, size_t aad_len)
{
	br_gcm_reset(&d->k.gcm.gcm, nonce, 12);
	br_gcm_aad_inject(&d->k.gcm.gcm, aad, aad_len);
	br_gcm_flip(&d->k.gcm.gcm);
}

static void gcm_seal(struct dir *d, const unsigned char *nonce,
		     const void *aad, size_t aad_len, unsigned char *data,
		     size_t len, unsigned char *tag)
{
	gcm_start(d, nonce, aad, aad_len);
	br_gcm_run(&d->k.gcm.gcm, 1, data, len);
	br_gcm_get_tag(&d->k.gcm.gcm, tag);
}

/* 1 when the tag matches; BearSSL compares it in constant time. */
static int gcm_open(struct dir *d, const unsigned char *nonce,
		    const void *aad, size_t aad_len, unsigned char *data,
		    size_t len, const unsigned char *tag)
{
	gcm_start(d, nonce, aad, aad_len);
	br_gcm_run(&d->k.gcm.gcm, 0, data, len);
	return br_gcm_check_tag(&d->k.gcm.gcm, tag);
}

/* ChaCha20-Poly1305 (RFC 8439) from BearSSL's runners; the key is 32
 * bytes. The dir keeps the code it was keyed with. */
static void cp_init(struct dir *d, const unsigned char *k, size_t n)
{
	memcpy(d->k.cp.key, k, n);
	d->k.cp.chacha = chacha_impl;
	d->k.cp.poly = poly_impl;
}

static void cp_seal(struct dir *d, const unsigned char *nonce,
		    const void *aad, size_t aad_len, unsigned char *data,
		    size_t len, unsigned char *tag)
{
	d->k.cp.poly(d->k.cp.key, nonce, data, len, aad, aad_len, tag,
		     d->k.cp.chacha, 1);
}

/* The runner decrypts and computes the tag; we compare it. */
static int cp_open(struct dir *d, const unsigned char *nonce,
		   const void *aad, size_t aad_len, unsigned char *data,
		   size_t len, const unsigned char *tag)
{
	unsigned char t[16];
	int ok;

	d->k.cp.poly(d->k.cp.key, nonce, data, len, aad, aad_len, t,
		     d->k.cp.chacha, 0);
	ok = ct_equal(t, tag, 16);
	wipe(t, sizeof t);
	return ok;
}

/*
 * Implementation tables, fastest first. A row's get() returns NULL where
 * the CPU or the build lacks that code. A 64-bit build carries the 64-bit
 * portable code and a 32-bit build the 32-bit code (x32 counts as 32-bit):
 * on each, the other would be slower and never picked, and routers count
 * every kilobyte. The last row of each table runs everywhere. BearSSL's
 * sse2 ChaCha20 is left out: it measured slower than the portable code on
 * x86-64 (271 against 446 MB/s with -B).
 */
#define W64 (UINTPTR_MAX > 0xffffffffu)

static const struct {
	const char *name;
	const br_block_ctr_class *(*get)(void);
	const br_block_ctr_class *fn;
} aes_impls[] = {
	{"x86ni", br_aes_x86ni_ctr_get_vtable, NULL},
	{"pwr8", br_aes_pwr8_ctr_get_vtable, NULL},
	{"ct64", NULL, W64 ? &br_aes_ct64_ctr_vtable : NULL},
	{"ct", NULL, W64 ? NULL : &br_aes_ct_ctr_vtable},
};

static const struct {
	const char *name;
	br_ghash (*get)(void);
	br_ghash fn;
} ghash_impls[] = {
	{"pclmul", br_ghash_pclmul_get, NULL},
	{"pwr8", br_ghash_pwr8_get, NULL},
	{"ctmul64", NULL, W64 ? br_ghash_ctmul64 : NULL},
	{"ctmul", NULL, W64 ? NULL : br_ghash_ctmul},
	{"ctmul32", NULL, W64 ? NULL : br_ghash_ctmul32},
};

static const struct {
	const char *name;
	br_chacha20_run (*get)(void);
	br_chacha20_run fn;
} chacha_impls[] = {
	{"ct", NULL, br_chacha20_ct_run},
};

static const struct {
	const char *name;
	br_poly1305_run (*get)(void);
	br_poly1305_run fn;
} poly_impls[] = {
	{"ctmulq", br_poly1305_ctmulq_get, NULL},
	{"ctmul", NULL, br_poly1305_ctmul_run},
	{"ctmul32", NULL, W64 ? NULL : br_poly1305_ctmul32_run},
};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))
#define GET(t, i) ((t)[i].get ? (t)[i].get() : (t)[i].fn)
#define BUILT(t, i) ((t)[i].get || (t)[i].fn)

static char pair_name[32];

/* A pair's name, and in *ok: -1 where this build lacks it, 0 where this
 * CPU cannot run it, 1 where it runs. */
static const char *pair(const char *a, const char *b, int built, int runs,
			int *ok)
{
	*ok = !built ? -1 : runs;
	fmt(pair_name, sizeof pair_name, "%s+%s", a, b);
	return pair_name;
}

/* A cipher's use(i): select its implementation pair i (the globals), and
 * return its name; NULL after the last. */
static const char *gcm_use(size_t i, int *ok)
{
	size_t a = i / COUNT(ghash_impls), g = i % COUNT(ghash_impls);

	if (a >= COUNT(aes_impls))
		return NULL;
	aes_impl = GET(aes_impls, a);
	ghash_impl = GET(ghash_impls, g);
	return pair(aes_impls[a].name, ghash_impls[g].name,
		    BUILT(aes_impls, a) && BUILT(ghash_impls, g),
		    aes_impl && ghash_impl, ok);
}

static const char *cp_use(size_t i, int *ok)
{
	size_t a = i / COUNT(poly_impls), p = i % COUNT(poly_impls);

	if (a >= COUNT(chacha_impls))
		return NULL;
	chacha_impl = GET(chacha_impls, a);
	poly_impl = GET(poly_impls, p);
	return pair(chacha_impls[a].name, poly_impls[p].name,
		    BUILT(poly_impls, p), chacha_impl && poly_impl, ok);
}

static int hexval(int ch)
{
	return ch <= '9' ? ch - '0' : (ch | 32) - 'a' + 10;
}

static size_t unhex(unsigned char *out, const char *hex)
{
	size_t n = 0;

	for (; hex[0] && hex[1]; hex += 2)
		out[n++] = (unsigned char)(hexval(hex[0]) << 4 | hexval(hex[1]));
	return n;
}

/* GCM test cases 4, 10 and 16 of McGrew and Viega's GCM paper (AES-128,
 * 192, 256) on the code in use: seal, open, and reject a flipped bit. */
static int gcm_kat(void)
{
	static const char *p_hex =
		"d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d"
		"8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657"
		"ba637b39";
	static const char *k_hex =
		"feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f94"
		"67308308";
	static const char *c_hex[] = {
		"42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e23"
		"29aca12e21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac97"
		"3d58e091" "5bc94fbc3221a5db94fae95ae7121a47",
		"3980ca0b3c00e841eb06fac4872a2757859e1ceaa6efd984628593b4"
		"0ca1e19c7d773d00c144c525ac619d18c84a3f4718e2448b2fe324d9"
		"ccda2710" "2519498e80f1478f37ba55bd6d27618c",
		"522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd"
		"2555d1aa8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0a"
		"bcc9f662" "76fc6ece0f4e1768cddf8853bb2d551b",
	};
	static struct dir d; /* static: it holds AES round keys */
	unsigned char k[32], p[60], c[76], buf[60], tag[16], iv[12], aad[20];
	int bad = 0, i;

	unhex(k, k_hex);
	unhex(p, p_hex);
	unhex(iv, "cafebabefacedbaddecaf888");
	unhex(aad, "feedfacedeadbeeffeedfacedeadbeefabaddad2");
	for (i = 0; i < 3; i++) {
		unhex(c, c_hex[i]);
		gcm_init(&d, k, 16 + 8 * (size_t)i);
		memcpy(buf, p, 60);
		gcm_seal(&d, iv, aad, 20, buf, 60, tag);
		bad |= memcmp(buf, c, 60) || memcmp(tag, c + 60, 16);
		bad |= !gcm_open(&d, iv, aad, 20, buf, 60, c + 60) ||
		       memcmp(buf, p, 60);
		c[17] ^= 4;
		bad |= gcm_open(&d, iv, aad, 20, c, 60, c + 60) != 0;
	}
	wipe(&d, sizeof d);
	return !bad;
}

/* RFC 8439, 2.8.2, on the code in use: seal, open, reject a flipped bit
 * in the ciphertext and in the additional data. */
static int cp_kat(void)
{
	static const char *p =
		"Ladies and Gentlemen of the class of '99: If I could offer "
		"you only one tip for the future, sunscreen would be it.";
	static const char *c_hex =
		"d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee"
		"62d63dbea45e8ca9671282fafb69da92728b1a71de0a9e060b2905d6a5b6"
		"7ecd3b3692ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585"
		"808b4831d7bc3ff4def08e4b7a9de576d26586cec64b6116"
		"1ae10b594f09e26a7e902ecbd0600691";
	struct dir d;
	unsigned char k[32], c[130], buf[114], tag[16], iv[12], aad[12];
	int bad = 0, i;

	for (i = 0; i < 32; i++)
		k[i] = (unsigned char)(0x80 + i);
	unhex(iv, "070000004041424344454647");
	unhex(aad, "50515253c0c1c2c3c4c5c6c7");
	unhex(c, c_hex);
	cp_init(&d, k, 32);
	memcpy(buf, p, 114);
	cp_seal(&d, iv, aad, 12, buf, 114, tag);
	bad |= memcmp(buf, c, 114) || memcmp(tag, c + 114, 16);
	bad |= !cp_open(&d, iv, aad, 12, buf, 114, c + 114) ||
	       memcmp(buf, p, 114);
	memcpy(buf, c, 114);
	aad[3] ^= 1;
	bad |= cp_open(&d, iv, aad, 12, buf, 114, c + 114) != 0;
	aad[3] ^= 1;
	c[17] ^= 4;
	bad |= cp_open(&d, iv, aad, 12, c, 114, c + 114) != 0;
	wipe(&d, sizeof d);
	return !bad;
}

static const struct cipher ciphers[] = {
	{"aes", "aes-gcm", 1, 0, gcm_init, gcm_seal, gcm_open, gcm_use,
	 gcm_kat},
	{"chacha20", "chacha20-poly1305", 2, 32, cp_init, cp_seal, cp_open,
	 cp_use, cp_kat},
};
static size_t cipher_best[COUNT(ciphers)];     /* the pair each one uses */
static char cipher_code[COUNT(ciphers)][32];   /* and its name */

static const struct cipher *cipher_by_name(const char *name)
{
	size_t i;

	for (i = 0; i < COUNT(ciphers); i++)
		if (!strcmp(ciphers[i].name, name))
			return &ciphers[i];
	return NULL;
}

static const struct cipher *cipher_by_id(int id)
{
	size_t i;

	for (i = 0; i < COUNT(ciphers); i++)
		if (ciphers[i].id == id)
			return &ciphers[i];
	return NULL;
}

/* Each cipher's fastest constant-time code on this CPU: its first pair
 * that runs. The last pair of each runs everywhere. */
static void crypto_select(void)
{
	const char *n = "";
	size_t c, i;
	int ok = 0;

	for (c = 0; c < COUNT(ciphers); c++) {
		for (i = 0; (n = ciphers[c].use(i, &ok)) && ok < 1; i++)
			;
		cipher_best[c] = i;
		fmt(cipher_code[c], sizeof cipher_code[c], "%s", n);
	}
}

/* ==== record layer ====================================================== */

/* Move a direction's key forward: secret, key and IV all come from
 * HKDF(salt = old secret, ikm, label); ikm is empty for the first step and
 * key || the X25519 result dh for a rotation. The old secret is
 * overwritten. */
static void dir_step(struct dir *d, const unsigned char *dh,
		     const char *label)
{
	unsigned char out[32 + 32 + 12];
	size_t kl = d->cipher->key_len ? d->cipher->key_len : key_len;

	hkdf(out, 32 + kl + 12, d->secret, 32, key, dh ? 32 : 0, dh,
	     dh ? 32 : 0, label);
	memcpy(d->secret, out, 32);
	d->cipher->init(d, out + 32, kl);
	memcpy(d->iv, out + 32 + kl, 12);
	wipe(out, sizeof out);
}

/* nonce = iv XOR (4 zero bytes || 64-bit big-endian record number) */
static void dir_nonce(struct dir *d, unsigned char nonce[12])
{
	int i;

	memset(nonce, 0, 4);
	put_be64(nonce + 4, d->seq);
	for (i = 0; i < 12; i++)
		nonce[i] ^= d->iv[i];
	d->seq++;
}

/* Seal the record at p whose payload (n bytes) is already at p + 3;
 * returns its length on the wire. The length bytes are the AAD. */
static size_t rec_seal(struct dir *d, unsigned char *p, int type, size_t n)
{
	unsigned char nonce[12];
	size_t len = n + 1;

	p[0] = (unsigned char)(len >> 8);
	p[1] = (unsigned char)len;
	p[2] = (unsigned char)type;
	dir_nonce(d, nonce);
	d->cipher->seal(d, nonce, p, REC_HEAD, p + REC_HEAD, len,
			p + REC_HEAD + len);
	return REC_HEAD + len + REC_TAG;
}

/* Open in place the record at p with len bytes of type + payload; the tag
 * is checked in constant time and on failure the plaintext is wiped. */
static int rec_open(struct dir *d, unsigned char *p, size_t len)
{
	unsigned char nonce[12];

	dir_nonce(d, nonce);
	if (d->cipher->open(d, nonce, p, REC_HEAD, p + REC_HEAD, len,
			    p + REC_HEAD + len))
		return 0;
	wipe(p + REC_HEAD, len);
	return -1;
}

/* ==== self-test and speed test ========================================== */

static int check(int ok, const char *what, int loud)
{
	if (loud || !ok)
		say(1, "%-44s %s\n", what, ok ? "ok" : "FAILED");
	return !ok;
}

/* The record layer as used on the wire, with cipher cp: seal, open, and
 * refuse a record with one flipped bit, a wrong record number or a changed
 * length. */
static int selftest_records(const struct cipher *cp)
{
	static struct dir a, b; /* static: a dir holds AES round keys */
	unsigned char r0[3 + 100 + REC_TAG], r[sizeof r0];
	size_t i, n, saved_len = key_len;
	int ok = 1;

	key_len = 32; /* the test runs before the real key is read */
	for (i = 0; i < 32; i++)
		a.secret[i] = b.secret[i] = (unsigned char)i;
	a.seq = b.seq = 0;
	a.cipher = b.cipher = cp;
	dir_step(&a, NULL, send_label);
	dir_step(&b, NULL, send_label);
	for (i = 0; i < 100; i++)
		r0[3 + i] = (unsigned char)i;
	n = rec_seal(&a, r0, REC_DATA, 100); /* record 0 */
	memcpy(r, r0, n);
	ok &= n == sizeof r0 && rec_open(&b, r, 101) == 0 && r[2] == 0 &&
	      r[3 + 99] == 99;
	memcpy(r, r0, n); /* intact, but offered as record 1 */
	ok &= rec_open(&b, r, 101) < 0;
	for (i = 0; i < 3; i++) {
		memcpy(r, r0, n);
		r[i == 0 ? 50 : i == 1 ? 1 : n - 1] ^= 1; /* body, length, tag */
		b.seq = 0;
		ok &= rec_open(&b, r, 101) < 0;
	}
	memcpy(r, r0, n); /* and the intact one still opens as record 0 */
	b.seq = 0;
	ok &= rec_open(&b, r, 101) == 0;
	wipe(&a, sizeof a);
	wipe(&b, sizeof b);
	key_len = saved_len;
	return ok;
}

/* Returns the number of failures. loud (-S) tests every implementation
 * pair and lists every check; otherwise the pairs in use are tested. */
static int selftest(int loud)
{
	unsigned char a[64], b[64], c[64], d[64];
	char what[64];
	const char *n;
	size_t i, k;
	int bad = 0, ok;

	for (k = 0; k < COUNT(ciphers); k++) {
		for (i = 0; (n = ciphers[k].use(i, &ok)); i++) {
			fmt(what, sizeof what, "%s %s", ciphers[k].aead,
				 n);
			if (!ok && loud)
				say(1, "%-44s not on this CPU\n", what);
			if (ok > 0 && (loud || i == cipher_best[k]))
				bad += check(ciphers[k].kat(), what, loud);
		}
	}
	crypto_select();
	for (k = 0; k < COUNT(ciphers); k++) {
		fmt(what, sizeof what, "records: %s: seal, open, tamper",
			 ciphers[k].name);
		bad += check(selftest_records(&ciphers[k]), what, loud);
	}
	/* RFC 7748, 5.2 (first vector) and 6.1 */
	unhex(a, "a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244"
		 "ba449ac4");
	unhex(b, "e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6"
		 "d0ab1c4c");
	unhex(c, "c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b40755"
		 "77a28552");
	bad += check(x25519(d, a, b) == 0 && !memcmp(c, d, 32),
		     "X25519 RFC 7748 5.2", loud);
	unhex(a, "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba5"
		 "1db92c2a");
	unhex(b, "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e14"
		 "6f882b4f");
	unhex(c, "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c"
		 "1e161742");
	x25519_public(d, a);
	bad += check(x25519(d + 32, a, b) == 0 && !memcmp(c, d + 32, 32) &&
		     unhex(c, "8520f0098930a754748b7ddcb43ef75a0dbf3a0d2638"
			   "1af4eba4a98eaa9b4e6a") && !memcmp(c, d, 32),
		     "X25519 RFC 7748 6.1", loud);
	memset(b, 0, 32); /* a low-order point must be refused */
	bad += check(x25519(d, a, b) < 0, "X25519 rejects a zero result",
		     loud);
	/* RFC 5869 test case 1, RFC 4231 test case 2 */
	memset(a, 0x0b, 22);
	unhex(b, "000102030405060708090a0b0c");
	hkdf(d, 42, b, 13, a, 22, NULL, 0, "\xf0\xf1\xf2\xf3\xf4\xf5\xf6"
	     "\xf7\xf8\xf9");
	unhex(c, "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56"
		 "ecc4c5bf34007208d5b887185865");
	bad += check(!memcmp(c, d, 42), "HKDF-SHA256 RFC 5869 1", loud);
	hmac_sha256(d, "Jefe", 4, "what do ya want ", 16, "for nothing?", 12);
	unhex(c, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b9"
		 "64ec3843");
	bad += check(!memcmp(c, d, 32), "HMAC-SHA256 RFC 4231 2", loud);
	/* RFC 7914, 11: the first 32 bytes; and 2 rounds (checked against
	 * Python's hashlib.pbkdf2_hmac), which the first cannot show */
	pbkdf2(d, "passwd", 6, "salt", 4, 1);
	unhex(c, "55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57"
		 "c20dacbc");
	ok = !memcmp(c, d, 32);
	pbkdf2(d, "password", 8, "salt", 4, 2);
	unhex(c, "ae4d0c95af6b46d32d0adff928f06dd02a303f8ef3c251dfd6e2d85a"
		 "95474c43");
	bad += check(ok && !memcmp(c, d, 32), "PBKDF2-HMAC-SHA256 RFC 7914",
		     loud);
	if (loud)
		say(1, "selected: aes %s, chacha20 %s, RDRAND %s, OS random "
		       "%s\n", cipher_code[0], cipher_code[1],
		       use_rdrand ? "on" : "off", urandom_fd < 0 ?
		       "getrandom" : "/dev/urandom (after /dev/random)");
	return bad;
}

/* -B: seal 16 KiB records with each implementation pair for BENCH_MS
 * (fixed key and nonce: nothing here is secret), count X25519 operations,
 * and name the faster -c with the code it would use. Integer MB/s. */
static void bench(void)
{
	static unsigned char r[REC_WIRE_MAX];
	static struct dir d;
	static const unsigned char k[32], nonce[12];
	unsigned long mbs[COUNT(ciphers)], v;
	uint64_t done;
	int64_t t0, ms;
	const char *n;
	size_t c, i, best = 0;
	int ok;

	say(1, "sealing 16 KiB records (AES with a 32-byte key, as from -g)"
	       ":\n");
	for (c = 0; c < COUNT(ciphers); c++) {
		for (i = 0; (n = ciphers[c].use(i, &ok)); i++) {
			if (ok < 1)
				continue;
			d.cipher = &ciphers[c];
			d.cipher->init(&d, k, 32);
			t0 = clock_ms();
			done = 0;
			do {
				d.cipher->seal(&d, nonce, r, 2, r + 2,
					       REC_PAYLOAD_MAX, r + 2 +
					       REC_PAYLOAD_MAX);
				done += REC_PAYLOAD_MAX;
			} while ((ms = clock_ms() - t0) < BENCH_MS);
			v = (unsigned long)(done / ((uint64_t)ms * 1000));
			say(1, "%-17s %-15s %5lu MB/s\n", ciphers[c].aead, n,
			       v);
			if (i == cipher_best[c])
				mbs[c] = v;
		}
	}
	wipe(&d, sizeof d);
	crypto_select();
	t0 = clock_ms();
	done = 0;
	memset(r, 9, 32);
	do {
		memcpy(r + 32, r, 32);
		ec_impl->mul(r + 32, 32, r, 32, BR_EC_curve25519);
		done++;
	} while ((ms = clock_ms() - t0) < 2 * BENCH_MS);
	say(1, "x25519 m31 %25lu operations/s\n",
	       (unsigned long)(done * 1000 / (uint64_t)ms));
	for (c = 1; c < COUNT(ciphers); c++)
		if (mbs[c] > mbs[best])
			best = c;
	say(1, "faster here: -c %s (%s %s, %lu MB/s)\n", ciphers[best].name,
	       ciphers[best].aead, cipher_code[best], mbs[best]);
}

/* ==== handshake ========================================================= */

/*
 * Both sides, once the client hello (ch) and the server hello's first 33
 * bytes (sh: cipher and public key) are known and dh is computed: the
 * transcript hash, the finished MACs and both directions' first keys.
 */
static void handshake_keys(struct conn *c, const struct cipher *cp,
			   const unsigned char *ch, const unsigned char *sh,
			   const unsigned char *dh, unsigned char s_mac[32],
			   unsigned char c_mac[32])
{
	unsigned char th[32], out[128];
	br_sha256_context h;
	struct dir *c2s = IS_CLIENT ? &c->send : &c->recv;
	struct dir *s2c = IS_CLIENT ? &c->recv : &c->send;

	br_sha256_init(&h);
	br_sha256_update(&h, ch, CLIENT_HELLO_LEN);
	br_sha256_update(&h, sh, 33);
	br_sha256_out(&h, th);
	hkdf(out, sizeof out, th, 32, key, 32, dh, 32, "gstunnel2 handshake");
	hmac_sha256(s_mac, out, 32, th, 32, NULL, 0);
	hmac_sha256(c_mac, out + 32, 32, th, 32, NULL, 0);
	memcpy(c2s->secret, out + 64, 32);
	memcpy(s2c->secret, out + 96, 32);
	c2s->cipher = s2c->cipher = cp;
	dir_step(c2s, NULL, "gstunnel2 c2s");
	dir_step(s2c, NULL, "gstunnel2 s2c");
	c->rotated = now;
	wipe(out, sizeof out);
	wipe(th, sizeof th);
}

/* Client: build the hello; a copy stays in c->hs for the transcript. */
static int client_hello(struct conn *c)
{
	unsigned char *p = c->hs;
	ssize_t n;

	if (eph_take(c->eph, p + 2) < 0)
		return fail(c, "no randomness");
	p[0] = PROTO_VERSION;
	p[1] = cipher->id;
	hmac_sha256(p + 34, hello_key, 32, p, 34, NULL, 0);
	/* A fresh socket's send buffer always takes 66 bytes at once. */
	n = send(c->link, p, CLIENT_HELLO_LEN, MSG_NOSIGNAL);
	if (n != CLIENT_HELLO_LEN)
		return fail(c, "server: %s", n < 0 ? strerror(errno) :
			    "short write");
	return 0;
}

/* Client: check the server hello at p and queue our finished MAC. A hello
 * naming another cipher is the server's refusal of ours, proven with the
 * hello key. */
static int client_finish(struct conn *c, const unsigned char *p)
{
	unsigned char dh[32], s_mac[32], c_mac[32];
	const struct cipher *theirs;
	unsigned char *q;
	int ok;

	if (p[0] != cipher->id) {
		wipe(c->eph, 32);
		hmac_sha256(s_mac, hello_key, 32, c->hs, CLIENT_HELLO_LEN, p,
			    33);
		if (!ct_equal(s_mac, p + 33, 32))
			return fail(c, "authentication failed: bad server "
				    "hello");
		theirs = cipher_by_id(p[0]);
		return fail(c, "the server refused cipher %s: it takes only "
			    "%s (its -c)", cipher->name, theirs ?
			    theirs->name : "one unknown to us");
	}
	if (x25519(dh, c->eph, p + 1) < 0) {
		wipe(c->eph, 32);
		return fail(c, "authentication failed: bad server hello");
	}
	wipe(c->eph, 32);
	handshake_keys(c, cipher, c->hs, p, dh, s_mac, c_mac);
	ok = ct_equal(s_mac, p + 33, 32);
	wipe(dh, 32);
	wipe(s_mac, 32);
	if (!ok) {
		wipe(c_mac, 32);
		return fail(c, "authentication failed: bad server proof "
			    "(wrong key?)");
	}
	q = c->tx.p + c->tx.len; /* tx is empty and allocated here */
	memcpy(q, c_mac, 32);
	c->tx.len += 32;
	wipe(c_mac, 32);
	c->state = S_OPEN;
	c->deadline = 0;
	if (verbose)
		logmsg(c, "handshake done");
	return 0;
}

/* Server: a client asked for cipher cp while -c says another. Tell it, in
 * a hello that names ours and is proven with the hello key, then close
 * without a reset (which could drop the answer). Returns -2 for that. */
static int server_refuse(struct conn *c, const struct cipher *cp)
{
	unsigned char sh[SERVER_HELLO_LEN];

	memset(sh, 0, sizeof sh);
	sh[0] = cipher->id;
	hmac_sha256(sh + 33, hello_key, 32, c->hs, CLIENT_HELLO_LEN, sh, 33);
	send(c->link, sh, sizeof sh, MSG_NOSIGNAL);
	fail(c, "refused the client's cipher %s: this server takes only %s "
	     "(-c)", cp ? cp->name : "(unknown)", cipher->name);
	return -2;
}

/*
 * Server: read the client hello into c->hs, answer it, then read the
 * client's finished MAC into c->hs + 32, compared with the expected one kept
 * in c->hs[0..31]. Nothing is allocated and nothing is sent until the hello
 * authenticates; nothing is forwarded until the finished MAC does.
 * Returns 0, or -1 to reset the connection, -2 to close it.
 */
static int server_handshake(struct conn *c)
{
	unsigned char sh[SERVER_HELLO_LEN], dh[32], c_mac[32];
	unsigned char *p = c->hs + (c->state == S_FINISH ? 32 : 0);
	size_t need = c->state == S_FINISH ? FINISHED_LEN : CLIENT_HELLO_LEN;
	const struct cipher *cp;
	ssize_t n;

	n = recv(c->link, p + c->hs_len, need - c->hs_len, 0);
	if (n == 0) {
		if (verbose)
			logmsg(c, "peer closed before the handshake ended");
		return -1;
	}
	if (n < 0)
		return errno == EAGAIN || errno == EWOULDBLOCK ||
		       errno == EINTR ? 0 : fail(c, "link: %s",
						 strerror(errno));
	c->hs_len = (unsigned char)(c->hs_len + n);
	if (c->state == S_HELLO && p[0] != PROTO_VERSION) /* at once */
		return fail(c, "bad hello: protocol version %u, we speak %u",
			    p[0], PROTO_VERSION);
	if (c->hs_len < need)
		return 0;
	c->hs_len = 0;
	if (c->state == S_FINISH) {
		if (!ct_equal(c->hs, c->hs + 32, 32))
			return fail(c, "authentication failed: bad client "
				    "finished (replayed hello?)");
		wipe(c->hs, sizeof c->hs);
		return conn_connect_next(c, 0);
	}
	hmac_sha256(sh, hello_key, 32, p, 34, NULL, 0);
	if (!ct_equal(sh, p + 34, 32))
		return fail(c, "authentication failed: bad client hello "
			    "(wrong key?)");
	cp = cipher_by_id(p[1]); /* authenticated: it really asked for it */
	if (!cp || (cipher_forced && cp != cipher))
		return server_refuse(c, cp);
	if (eph_take(c->eph, sh + 1) < 0)
		return fail(c, "no randomness");
	sh[0] = cp->id;
	n = x25519(dh, c->eph, p + 2);
	wipe(c->eph, 32);
	if (n < 0)
		return fail(c, "bad hello: weak public key");
	handshake_keys(c, cp, p, sh, dh, sh + 33, c_mac);
	memcpy(c->hs, c_mac, 32); /* the expected client finished */
	wipe(c_mac, 32);
	wipe(dh, 32);
	/* A fresh socket's send buffer always takes 65 bytes at once. */
	n = send(c->link, sh, sizeof sh, MSG_NOSIGNAL);
	if (n != (ssize_t)sizeof sh)
		return fail(c, "link: %s", n < 0 ? strerror(errno) :
			    "short write");
	if (verbose)
		logmsg(c, "cipher %s", cp->name);
	c->state = S_FINISH;
	return 0;
}

/* ==== key rotation ====================================================== */

/*
 * The client starts each rotation with an OFFER; the server answers with an
 * ACCEPT and moves its send key; the client moves its receive key, answers
 * with a SWITCH and moves its send key; the server moves its receive key on
 * the SWITCH. Both ephemerals are fresh, so a stolen key stops working once
 * both sides have rotated. The server asks for a rotation with a REQUEST.
 */
static int rotation_start(struct conn *c)
{
	if (c->flags & (F_OFFER | F_SEND_OFFER | F_SEND_SWITCH | F_RX_EOF))
		return 0;
	if (eph_take(c->eph, c->pub) < 0)
		return fail(c, "no randomness");
	c->flags |= F_SEND_OFFER;
	return 0;
}

/* Called when data moved: rotate when due; idle connections never get
 * here, so they do no rotation work. */
static int rotation_check(struct conn *c)
{
	if (c->rot_bytes < ROTATE_BYTES &&
	    (!rotate_ms || now - c->rotated < rotate_ms))
		return 0;
	if (IS_CLIENT)
		return rotation_start(c);
	if (!(c->flags & (F_REQUESTED | F_WAIT_SWITCH | F_TX_EOF)))
		c->flags |= F_SEND_REQUEST;
	return 0;
}

static void rotated(struct conn *c, struct dir *d, const char *which)
{
	d->rotations++;
	c->rotated = now;
	c->rot_bytes = 0;
	if (verbose)
		logmsg(c, "%s key rotated (%lu)", which, d->rotations);
}

/* A control record from the peer (payload body, blen bytes). */
static int rotation_record(struct conn *c, int type, const unsigned char *body,
			   size_t blen)
{
	size_t want = type == REC_OFFER || type == REC_ACCEPT ? 32 : 0;

	if (blen != want)
		return fail(c, "bad control record (type %d, %lu bytes)",
			    type, (unsigned long)blen);
	if (IS_CLIENT && type == REC_REQUEST)
		return rotation_start(c);
	if (IS_CLIENT && type == REC_ACCEPT && (c->flags & F_OFFER)) {
		if (x25519(c->dh, c->eph, body) < 0)
			return fail(c, "bad rotation key");
		wipe(c->eph, 32);
		dir_step(&c->recv, c->dh, recv_label);
		c->flags = (c->flags & ~F_OFFER) | F_SEND_SWITCH;
		rotated(c, &c->recv, "receive");
		return 0;
	}
	if (!IS_CLIENT && type == REC_OFFER &&
	    !(c->flags & (F_WAIT_SWITCH | F_SEND_ACCEPT))) {
		if (c->flags & F_TX_EOF)
			return 0; /* our EOF is out: no more keys to move */
		if (eph_take(c->eph, c->pub) < 0)
			return fail(c, "no randomness");
		if (x25519(c->dh, c->eph, body) < 0)
			return fail(c, "bad rotation key");
		wipe(c->eph, 32);
		c->flags |= F_SEND_ACCEPT | F_WAIT_SWITCH;
		c->flags &= ~(F_REQUESTED | F_SEND_REQUEST);
		return 0;
	}
	if (!IS_CLIENT && type == REC_SWITCH &&
	    (c->flags & (F_WAIT_SWITCH | F_SEND_ACCEPT)) == F_WAIT_SWITCH) {
		dir_step(&c->recv, c->dh, recv_label);
		wipe(c->dh, 32);
		c->flags &= ~F_WAIT_SWITCH;
		rotated(c, &c->recv, "receive");
		return 0;
	}
	return fail(c, "unexpected record type %d", type);
}

/* ==== connection I/O ==================================================== */

static int buf_alloc(struct conn *c, struct buf *b)
{
	if (!b->p && !(b->p = malloc(BUF_SIZE)))
		return fail(c, "out of memory");
	if (!b->cap)
		b->cap = BUF_SIZE;
	return 0;
}

/* A stream that keeps its buffer full gets a bigger one, up to BUF_MAX:
 * more records per system call. It shrinks back when the buffer is freed
 * (idle). Failing to grow is no error. */
static void buf_grow(struct buf *b)
{
	size_t cap = b->cap * 2 > BUF_MAX ? BUF_MAX : b->cap * 2;
	unsigned char *q;

	if (cap > b->cap && (q = realloc(b->p, cap))) {
		b->p = q;
		b->cap = cap;
	}
}

static void buf_free(struct buf *b)
{
	if (b->p) {
		wipe(b->p, b->cap);
		free(b->p);
	}
	memset(b, 0, sizeof *b);
}

static int again(void)
{
	return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
}

/* Seal pending control records; then read what the plain side has, with
 * one readv() into as many record slots as the buffer has room for, and
 * seal each record where it was read. Sealed records wait in tx; once all
 * are sent, the buffer starts again at its front: nothing is moved. */
static int tx_fill(struct conn *c, int readable)
{
	struct iovec iov[BUF_MAX / REC_WIRE_MAX];
	unsigned char *p;
	size_t at, k, n_iov, total = 0, take;
	ssize_t n;

	if (c->tx.off == c->tx.len)
		c->tx.off = c->tx.len = 0;
	if ((c->flags & F_CONTROL) && buf_alloc(c, &c->tx) < 0)
		return -1;
	while ((c->flags & F_CONTROL) && c->tx.cap - c->tx.len >= REC_CTRL_MAX) {
		p = c->tx.p + c->tx.len;
		if (c->flags & F_SEND_SWITCH) {
			c->tx.len += rec_seal(&c->send, p, REC_SWITCH, 0);
			dir_step(&c->send, c->dh, send_label);
			wipe(c->dh, 32);
			c->flags &= ~F_SEND_SWITCH;
			rotated(c, &c->send, "send");
		} else if (c->flags & F_SEND_ACCEPT) {
			memcpy(p + 3, c->pub, 32);
			c->tx.len += rec_seal(&c->send, p, REC_ACCEPT, 32);
			dir_step(&c->send, c->dh, send_label);
			c->flags &= ~F_SEND_ACCEPT;
			rotated(c, &c->send, "send");
		} else if (c->flags & F_SEND_OFFER) {
			memcpy(p + 3, c->pub, 32);
			c->tx.len += rec_seal(&c->send, p, REC_OFFER, 32);
			c->flags = (c->flags & ~F_SEND_OFFER) | F_OFFER;
		} else {
			c->tx.len += rec_seal(&c->send, p, REC_REQUEST, 0);
			c->flags = (c->flags & ~F_SEND_REQUEST) | F_REQUESTED;
		}
	}
	if (!readable || (c->flags & (F_CONTROL | F_TX_EOF)) ||
	    c->state != S_OPEN)
		return 0;
	if (buf_alloc(c, &c->tx) < 0)
		return -1;
	for (at = c->tx.len, n_iov = 0; c->tx.cap - at >= REC_WIRE_MAX &&
	     n_iov < COUNT(iov); at += REC_WIRE_MAX, n_iov++) {
		iov[n_iov].iov_base = c->tx.p + at + 3;
		iov[n_iov].iov_len = REC_PAYLOAD_MAX;
		total += REC_PAYLOAD_MAX;
	}
	if (!n_iov)
		return 0;
	n = readv(c->plain, iov, (int)n_iov);
	if (n < 0) {
		c->tx.hot = 0;
		return again() ? 0 : fail(c, "%s: %s", plain_name,
					  strerror(errno));
	}
	if (c->send.seq >= UINT64_MAX - 1 - n_iov)
		return fail(c, "record numbers exhausted");
	if (n == 0) {
		c->tx.len += rec_seal(&c->send, c->tx.p + c->tx.len, REC_EOF,
				      0);
		c->flags |= F_TX_EOF;
		c->tx.hot = 0;
		return 0;
	}
	c->rot_bytes += (uint64_t)n;
	c->tx.hot = (size_t)n == total; /* more may wait: grow */
	/* readv() fills the slots in order: all but the last are full */
	for (k = 0; n > 0; k++) {
		take = (size_t)n < iov[k].iov_len ? (size_t)n : iov[k].iov_len;
		c->tx.len += rec_seal(&c->send, c->tx.p + c->tx.len,
				      REC_DATA, take);
		n -= (ssize_t)take;
	}
	if (c->tx.hot)
		buf_grow(&c->tx);
	return rotation_check(c);
}

static int tx_flush(struct conn *c)
{
	ssize_t n;

	while (c->tx.off < c->tx.len) {
		n = send(c->link, c->tx.p + c->tx.off, c->tx.len - c->tx.off,
			 MSG_NOSIGNAL);
		if (n < 0)
			return again() ? 0 : fail(c, "link: %s",
						  strerror(errno));
		c->tx.off += (size_t)n;
	}
	c->tx.off = c->tx.len = 0;
	return 0;
}

static int link_read(struct conn *c)
{
	ssize_t n;
	size_t room;

	if (buf_alloc(c, &c->rx) < 0)
		return -1;
	room = c->rx.cap - c->rx.len;
	if (!room)
		return 0;
	n = recv(c->link, c->rx.p + c->rx.len, room, 0);
	if (n < 0) {
		c->rx.hot = 0;
		if (again())
			return 0;
		return c->state == S_HELLO ? fail(c, "%s (%s)", hs_closed,
						  strerror(errno)) :
		       fail(c, "link: %s", strerror(errno));
	}
	if (n == 0)
		c->flags |= F_LINK_EOF;
	c->rx.len += (size_t)n;
	c->rx.hot = (size_t)n == room;
	if (c->rx.hot)
		buf_grow(&c->rx);
	return 0;
}

/* The opened records [out_off, rx.off) of rx wait for the plain side;
 * out_skip bytes of the first one's payload are already written. */
static int rx_waiting(const struct conn *c)
{
	return c->out_off < c->rx.off;
}

/* Hand the waiting plaintext to the plain side, as many records' payloads
 * as fit in one sendmsg(); after the EOF record, shut down its write side
 * once everything before it is delivered. */
static int plain_write(struct conn *c)
{
	struct iovec iov[64];
	struct msghdr m;
	unsigned char *p;
	size_t at, len, skip, n_iov;
	ssize_t n;

	while (rx_waiting(c)) {
		skip = c->out_skip;
		for (at = c->out_off, n_iov = 0; at < c->rx.off &&
		     n_iov < COUNT(iov); at += REC_HEAD + len + REC_TAG) {
			p = c->rx.p + at;
			len = (size_t)p[0] << 8 | p[1];
			if (p[2] == REC_DATA) {
				iov[n_iov].iov_base = p + 3 + skip;
				iov[n_iov++].iov_len = len - 1 - skip;
			}
			skip = 0;
		}
		n = 0;
		if (n_iov) {
			memset(&m, 0, sizeof m);
			m.msg_iov = iov;
			m.msg_iovlen = n_iov;
			n = sendmsg(c->plain, &m, MSG_NOSIGNAL);
			if (n < 0)
				return again() ? 0 : fail(c, "%s: %s",
							  plain_name,
							  strerror(errno));
		}
		/* step over what was written, and over control records */
		while (rx_waiting(c)) {
			p = c->rx.p + c->out_off;
			len = (size_t)p[0] << 8 | p[1];
			if (p[2] == REC_DATA) {
				if ((size_t)n < len - 1 - c->out_skip) {
					c->out_skip += (size_t)n;
					break;
				}
				n -= (ssize_t)(len - 1 - c->out_skip);
			}
			c->out_off += REC_HEAD + len + REC_TAG;
			c->out_skip = 0;
		}
		if (n_iov && rx_waiting(c) && c->out_skip)
			return 0; /* a short write: the socket is full */
	}
	if ((c->flags & (F_RX_EOF | F_PLAIN_SHUT)) == F_RX_EOF) {
		if (shutdown(c->plain, SHUT_WR) < 0 && errno != ENOTCONN)
			return fail(c, "%s: %s", plain_name, strerror(errno));
		c->flags |= F_PLAIN_SHUT;
	}
	return 0;
}

/* Parse what the link sent: the server hello, then records, opened in
 * place; their plaintext is then handed on by plain_write(). */
static int rx_process(struct conn *c)
{
	unsigned char *p;
	size_t avail, len;
	int type;

	while (c->rx.p) {
		p = c->rx.p + c->rx.off;
		avail = c->rx.len - c->rx.off;
		if (c->state == S_HELLO) { /* client only */
			if (avail < SERVER_HELLO_LEN)
				break;
			if (buf_alloc(c, &c->tx) < 0 ||
			    client_finish(c, p) < 0)
				return -1;
			c->rx.off += SERVER_HELLO_LEN;
			c->out_off = c->rx.off;
			continue;
		}
		if (c->state != S_OPEN || avail < REC_HEAD)
			break;
		len = (size_t)p[0] << 8 | p[1];
		if (len < 1 || len > 1 + REC_PAYLOAD_MAX)
			return fail(c, "bad record length %lu",
				    (unsigned long)len);
		if (avail < REC_HEAD + len + REC_TAG)
			break;
		if (c->recv.seq == UINT64_MAX - 1)
			return fail(c, "record numbers exhausted");
		if (rec_open(&c->recv, p, len) < 0)
			return fail(c, "authentication failed: record %llu "
				    "does not verify (tampered?)",
				    (unsigned long long)c->recv.seq - 1);
		c->rx.off += REC_HEAD + len + REC_TAG;
		type = p[2];
		len--;
		if ((c->flags & F_RX_EOF) && (IS_CLIENT || type == REC_DATA ||
					      type == REC_EOF))
			return fail(c, "record after end of stream");
		if (type == REC_DATA && len) {
			c->rot_bytes += len;
			if (rotation_check(c) < 0)
				return -1;
		} else if (type == REC_EOF && !len) {
			c->flags |= F_RX_EOF;
			if (IS_CLIENT) { /* no ACCEPT can follow now */
				c->flags &= ~(F_OFFER | F_SEND_OFFER);
				wipe(c->eph, 32);
			}
			if (verbose)
				logmsg(c, "end of stream from the peer");
		} else if (rotation_record(c, type, p + 3, len) < 0) {
			return -1;
		}
	}
	if (plain_write(c) < 0)
		return -1;
	/* All delivered: a partial record at the end moves to the front,
	 * the one copy in the record path (at most one record per fill). */
	if (c->rx.p && !rx_waiting(c) && c->rx.off) {
		c->rx.len -= c->rx.off;
		memmove(c->rx.p, c->rx.p + c->rx.off, c->rx.len);
		c->rx.off = c->out_off = 0;
	}
	return 0;
}

/* ==== the connection table ============================================== */

static struct conn *conn_new(void)
{
	int i;

	for (i = 0; i < conn_max && conns[i].state != S_FREE; i++)
		;
	if (i == conn_max)
		return NULL;
	memset(&conns[i], 0, sizeof conns[i]);
	conns[i].plain = conns[i].link = -1;
	conns[i].id = ++conn_ids;
	conns[i].since = now;
	if (i >= conn_high)
		conn_high = i + 1;
	conn_count++;
	return &conns[i];
}

static void close_fd(int fd, int reset)
{
	struct linger lg = {1, 0};

	if (fd < 0)
		return;
	if (reset) /* RST, so the far side sees an error, not EOF */
		setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
	close(fd);
}

/* The one teardown: every error path ends here. */
static void conn_close(struct conn *c, int reset)
{
	if (verbose)
		logmsg(c, reset ? "reset" : "closed");
	close_fd(c->plain, reset);
	close_fd(c->link, reset);
	buf_free(&c->tx);
	buf_free(&c->rx);
	wipe(c, sizeof *c);
	c->plain = c->link = -1;
	c->state = S_FREE;
	conn_count--;
	while (conn_high > 0 && conns[conn_high - 1].state == S_FREE)
		conn_high--;
}

/* Connect to the next address of SERVER/TARGET (the first when err is 0);
 * the socket becomes c->link on the client and c->plain on the server. */
static int conn_connect_next(struct conn *c, int err)
{
	int fd, *slot = IS_CLIENT ? &c->link : &c->plain;

	if (*slot >= 0) {
		close(*slot);
		*slot = -1;
		c->ai = c->ai->ai_next;
	} else {
		c->ai = remote_ai; /* first try, or again after EMFILE */
	}
	for (; c->ai; c->ai = c->ai->ai_next) {
		if (err && verbose)
			logmsg(c, "connect: %s", strerror(err));
		fd = socket(c->ai->ai_family, SOCK_STREAM, 0);
		if (fd < 0 && (errno == EMFILE || errno == ENFILE) &&
		    now - c->since < timeout_ms) {
			/* Out of fds: accept no more, and try this one
			 * again shortly (conn_timeout) instead of failing. */
			logmsg(c, "socket: %s; waiting", strerror(errno));
			accept_paused_until = now + ACCEPT_PAUSE_MS;
			c->ai = NULL;
			c->state = S_CONNECT;
			c->deadline = now + ACCEPT_PAUSE_MS / 4;
			return 0;
		}
		if (fd < 0) {
			err = errno;
			continue;
		}
		set_nonblock(fd);
		set_tcp_options(fd);
		if (verbose)
			logmsg(c, "connecting to %s", addr_str(c->ai));
		if (connect(fd, c->ai->ai_addr, c->ai->ai_addrlen) == 0 ||
		    errno == EINPROGRESS) {
			*slot = fd;
			c->state = S_CONNECT;
			c->deadline = now + timeout_ms;
			return 0;
		}
		err = errno;
		close(fd);
	}
	return fail(c, "cannot connect to %s: %s",
		    IS_CLIENT ? "server" : "target",
		    err ? strerror(err) : "timed out");
}

/* The outbound connect finished, well or not. */
static int conn_connected(struct conn *c)
{
	int fd = IS_CLIENT ? c->link : c->plain, err = 0;
	socklen_t len = sizeof err;

	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		err = errno;
	if (err)
		return conn_connect_next(c, err);
	if (verbose)
		logmsg(c, "connected to %s", addr_str(c->ai));
	if (IS_CLIENT) {
		c->state = S_HELLO;
		c->deadline = now + timeout_ms;
		return client_hello(c);
	}
	c->state = S_OPEN;
	c->deadline = 0;
	return 0;
}

/* Finished both ways? The client closes the link first; the server waits
 * for that FIN (up to the timeout), so no record is ever cut by an RST. */
static int conn_finished(struct conn *c)
{
	unsigned all = F_TX_EOF | F_RX_EOF | F_PLAIN_SHUT;

	if (c->state != S_OPEN || (c->flags & all) != all ||
	    (c->flags & F_CONTROL) || c->tx.len || rx_waiting(c))
		return 0;
	if (IS_CLIENT || (c->flags & F_LINK_EOF))
		return 1;
	if (!c->deadline)
		c->deadline = now + timeout_ms;
	return 0;
}

/* Do all the I/O the connection can do now. */
static void conn_pump(struct conn *c, short plain_ev, short link_ev)
{
	int r = 0;

	if (c->state == S_CONNECT) {
		if ((IS_CLIENT ? link_ev : plain_ev) & (POLLOUT | POLLERR |
							POLLHUP))
			r = conn_connected(c);
		if (r < 0 || c->state == S_CONNECT) {
			if (r < 0)
				conn_close(c, 1);
			return;
		}
		plain_ev = link_ev = 0;
	}
	if (!IS_CLIENT && (c->state == S_HELLO || c->state == S_FINISH)) {
		if ((r = server_handshake(c)) < 0)
			conn_close(c, r == -1);
		return;
	}
	if (link_ev & (POLLIN | POLLHUP | POLLERR))
		r = link_read(c);
	if (r == 0 && (plain_ev & POLLOUT))
		r = plain_write(c);
	if (r == 0)
		r = rx_process(c);
	if (r == 0)
		r = tx_fill(c, plain_ev & (POLLIN | POLLHUP | POLLERR));
	if (r == 0)
		r = tx_flush(c);
	if (r == 0 && (c->flags & F_LINK_EOF) && !rx_waiting(c) &&
	    (c->state != S_OPEN || !(c->flags & F_RX_EOF)))
		r = fail(c, "%s", c->state == S_OPEN ?
			 "link closed without end of stream (truncated)" :
			 hs_closed);
	if (r == 0 && (c->flags & F_LINK_EOF) && !(c->flags & F_TX_EOF))
		r = fail(c, "link closed by the peer while we were sending");
	if (r < 0) {
		conn_close(c, 1);
		return;
	}
	if (conn_finished(c)) {
		conn_close(c, 0);
		return;
	}
	if (c->tx.p && !c->tx.len && !c->tx.hot)
		buf_free(&c->tx);
	if (c->rx.p && !c->rx.len && !c->rx.hot)
		buf_free(&c->rx);
}

static void conn_timeout(struct conn *c)
{
	if (c->state == S_OPEN) /* server: all delivered, no FIN came */
		conn_close(c, 0);
	else if ((c->state == S_CONNECT ? conn_connect_next(c,
		  (IS_CLIENT ? c->link : c->plain) < 0 ? 0 : ETIMEDOUT) :
		  fail(c, "handshake timed out")) < 0)
		conn_close(c, 1);
}

/* Poll interest follows buffer state: read only where there is room to
 * put what is read, write only where something waits. An fd with no
 * interest is left out: poll() would still report POLLHUP for it, again
 * and again. */
static void conn_events(struct conn *c, int slot, nfds_t *n)
{
	short pe = 0, le = 0;
	int rx_room = !c->rx.p || c->rx.len < c->rx.cap;
	int tx_room = !c->tx.p || c->tx.off == c->tx.len ||
		      c->tx.cap - c->tx.len >= REC_WIRE_MAX;

	if (c->state == S_CONNECT) {
		if (IS_CLIENT)
			le = POLLOUT;
		else
			pe = POLLOUT;
	} else if (c->state != S_OPEN) {
		le = POLLIN; /* handshake messages */
	} else {
		if (!(c->flags & (F_TX_EOF | F_CONTROL)) && tx_room)
			pe |= POLLIN;
		if (rx_waiting(c))
			pe |= POLLOUT;
		if (!(c->flags & F_LINK_EOF) && rx_room)
			le |= POLLIN;
	}
	/* POLLOUT also while a control record waits to be sealed: tx_fill()
	 * seals it once the records before it are sent, and nothing else
	 * may wake this connection then (the plain side's POLLIN is off). */
	if (c->tx.len > c->tx.off || (c->flags & F_CONTROL))
		le |= POLLOUT;
	c->plain_rev = c->link_rev = 0;
	if (pe && c->plain >= 0) {
		pfds[*n].fd = c->plain;
		pfds[*n].events = pe;
		pfd_owner[(*n)++] = 2 * slot;
	}
	if (le && c->link >= 0) {
		pfds[*n].fd = c->link;
		pfds[*n].events = le;
		pfd_owner[(*n)++] = 2 * slot + 1;
	}
}

/* ==== the event loop ==================================================== */

static void accept_new(void)
{
	struct conn *c;
	int fd, n;

	for (n = 0; n < 64 && conn_count < conn_max; n++) {
		fd = accept(listen_fd, NULL, NULL);
		if (fd < 0) {
			if (errno == EMFILE || errno == ENFILE ||
			    errno == ENOBUFS || errno == ENOMEM) {
				logmsg(NULL, "accept: %s; pausing",
				       strerror(errno));
				accept_paused_until = now + ACCEPT_PAUSE_MS;
			} else if (errno == ECONNABORTED || errno == EINTR) {
				continue;
			}
			return;
		}
		set_nonblock(fd);
		set_tcp_options(fd);
		c = conn_new();
		if (IS_CLIENT) {
			c->plain = fd;
			if (verbose)
				logmsg(c, "new connection");
			if (conn_connect_next(c, 0) < 0)
				conn_close(c, 1);
		} else {
			c->link = fd;
			c->state = S_HELLO;
			c->deadline = now + timeout_ms;
			if (verbose)
				logmsg(c, "new connection");
		}
	}
}

/* SIGCHLD only wakes the supervisor; TERM, INT and HUP count. */
static void on_signal(int sig)
{
	if (sig == SIGCHLD)
		return;
	if (sig != SIGHUP)
		stop_signal = sig;
	signals++;
}

static void run(void)
{
	struct conn *c;
	struct timespec ts;
	sigset_t unblocked;
	int64_t next, wait;
	nfds_t nfds, k;
	int i, n;

	sigemptyset(&unblocked);
	while (!stop_signal) {
		now = clock_ms();
		next = 0;
		pfds[0].fd = -1;
		if (conn_count < conn_max) {
			if (now >= accept_paused_until)
				pfds[0].fd = listen_fd;
			else
				next = accept_paused_until;
		}
		pfds[0].events = POLLIN;
		nfds = 1;
		for (i = 0; i < conn_high; i++) {
			c = &conns[i];
			if (c->state == S_FREE)
				continue;
			conn_events(c, i, &nfds);
			if (c->deadline && (!next || c->deadline < next))
				next = c->deadline;
		}
		if (!spare.ready && now >= spare.retry)
			next = now; /* no wait: make it when nothing is ready */
		if (next) {
			wait = next > now ? next - now : 0;
			ts.tv_sec = (time_t)(wait / 1000);
			ts.tv_nsec = (long)(wait % 1000) * 1000000;
		}
		/* SIGINT and SIGTERM are blocked except inside ppoll(), so
		 * one cannot slip in between the check above and the wait. */
		n = ppoll(pfds, nfds, next ? &ts : NULL, &unblocked);
		if (n < 0) {
			if (errno != EINTR) { /* cannot happen; do not spin */
				logmsg(NULL, "poll: %s", strerror(errno));
				sleep(1);
			}
			continue;
		}
		if (n == 0 && !spare.ready && now >= spare.retry)
			eph_prepare();
		now = clock_ms();
		for (k = 1; k < nfds; k++) {
			c = &conns[pfd_owner[k] / 2];
			if (pfd_owner[k] & 1)
				c->link_rev = pfds[k].revents;
			else
				c->plain_rev = pfds[k].revents;
		}
		for (i = 0; i < conn_high; i++) {
			c = &conns[i];
			if (c->state == S_FREE)
				continue;
			if (c->plain_rev || c->link_rev)
				conn_pump(c, c->plain_rev, c->link_rev);
			else if (c->deadline && now >= c->deadline)
				conn_timeout(c);
		}
		if (pfds[0].fd >= 0 && pfds[0].revents)
			accept_new();
	}
}

/* ==== keys ============================================================== */

/* Stretch KEY once (PBKDF2, KDF_ROUNDS): every key of the protocol comes
 * from the result, so a recorded hello costs a guesser that much per
 * guess. The caller wipes the raw KEY. */
static void key_set(const void *k, size_t n, const char *from)
{
	if (n != 16 && n != 24 && n != 32)
		die(2, "bad KEY (%s): %lu bytes; it must be exactly 16, 24 or "
		    "32 bytes (AES-128/192/256)", from, (unsigned long)n);
	pbkdf2(key, k, n, "gstunnel2 key", 13, KDF_ROUNDS);
	key_len = n;
	hkdf(hello_key, 32, "gstunnel2", 9, key, 32, NULL, 0,
	     "gstunnel2 client hello");
}

/* A key file holds the key's bytes; one trailing newline is ignored. */
static void key_from_file(const char *path)
{
	unsigned char b[64];
	size_t n = 0;
	ssize_t r = 1;
	int fd = strcmp(path, "-") ? open(path, O_RDONLY | O_CLOEXEC) : 0;

	if (fd < 0)
		die(2, "cannot read key file '%s': %s", path, strerror(errno));
	while (n < sizeof b && r) {
		r = read(fd, b + n, sizeof b - n);
		if (r < 0 && errno != EINTR)
			die(2, "cannot read key file '%s': %s", path,
			    strerror(errno));
		if (r > 0)
			n += (size_t)r;
	}
	if (fd)
		close(fd);
	if (n == sizeof b)
		die(2, "bad KEY (file '%s'): too long; it must be exactly 16, "
		    "24 or 32 bytes", path);
	if (n && b[n - 1] == '\n' && --n && b[n - 1] == '\r')
		n--;
	key_set(b, n, "file");
	wipe(b, sizeof b);
}

/* -g: 32 characters from [A-Za-z0-9], about 190 bits. */
static void key_generate(void)
{
	static const char abc[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
	unsigned char r[128];
	char out[33];
	size_t i, n = 0;

	while (n < 32) {
		if (rnd(r, sizeof r) < 0)
			die(1, "no randomness");
		for (i = 0; i < sizeof r && n < 32; i++)
			if (r[i] < 248) /* 4 * 62: no modulo bias */
				out[n++] = abc[r[i] % 62];
	}
	out[32] = '\n';
	put(1, out, 33);
	wipe(out, sizeof out);
	wipe(r, sizeof r);
}

/* ==== main ============================================================== */

/*
 * getopt(3) for our options, without the stdio that libc's brings along:
 * "-vS", "-k FILE", "-kFILE", "--"; it stops at the first operand. Returns
 * the option, ':' for a missing value or '?' for an unknown option (its
 * letter in opt_bad), -1 at the end.
 */
static int opt_ind = 1, opt_pos, opt_bad;
static char *opt_arg;

static int next_opt(int argc, char **argv, const char *spec)
{
	char *a, *o;
	int c;

	if (!opt_pos) {
		if (opt_ind >= argc || argv[opt_ind][0] != '-' ||
		    !argv[opt_ind][1])
			return -1;
		if (!strcmp(argv[opt_ind], "--")) {
			opt_ind++;
			return -1;
		}
		opt_pos = 1;
	}
	a = argv[opt_ind];
	c = (unsigned char)a[opt_pos++];
	if (!a[opt_pos]) {
		opt_ind++;
		opt_pos = 0;
	}
	o = c == ':' ? NULL : strchr(spec, c);
	opt_bad = c;
	if (!o)
		return '?';
	if (o[1] == ':') {
		if (opt_pos) { /* -kFILE */
			opt_arg = a + opt_pos;
			opt_ind++;
			opt_pos = 0;
		} else if (opt_ind < argc) {
			opt_arg = argv[opt_ind++];
		} else {
			return ':';
		}
	}
	return c;
}

/* With -j, try SO_REUSEPORT (Linux 3.9, the BSDs): each worker then has
 * its own listener and the kernel spreads connections over them. */
static int listen_on(const struct addrinfo *ai, int reuse)
{
	int fd, err = 0, one = 1;

	for (; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family, SOCK_STREAM, 0);
		if (fd < 0) {
			err = errno;
			continue;
		}
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
#ifdef SO_REUSEPORT
		if (reuse)
			reuseport = setsockopt(fd, SOL_SOCKET, SO_REUSEPORT,
					       &one, sizeof one) == 0;
#endif
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 &&
		    listen(fd, SOMAXCONN) == 0 && set_nonblock(fd) == 0)
			return fd;
		err = errno;
		close(fd);
	}
	die(1, "cannot listen: %s", strerror(err));
	return -1;
}

/* ==== workers (-j) ====================================================== */

/*
 * The parent of -j workers only supervises: it forks them, restarts one
 * that died (and logs why), passes SIGTERM, SIGINT and SIGHUP on, and
 * exits when they are all gone. It holds no connection and no ephemeral
 * key. Returns in each worker, never in the parent.
 */
/* -j 0: one worker per CPU this process may run on. */
static int cpu_count(void)
{
	int n = 1;
#ifdef CPU_COUNT
	cpu_set_t set;

	if (sched_getaffinity(0, sizeof set, &set) == 0)
		n = CPU_COUNT(&set);
#endif
	return n < 1 ? 1 : n > 256 ? 256 : n;
}

/* Returns 1 in the new worker. With SO_REUSEPORT, the first worker keeps
 * the listener made before the fork (so that it never goes away during the
 * start), and every other worker, or a restarted one, makes its own. */
static int worker_fork(pid_t *pid, int i, const struct addrinfo *ai)
{
	*pid = fork();
	if (*pid < 0)
		logmsg(NULL, "fork: %s; retrying", strerror(errno));
	if (*pid)
		return 0;
	worker_id = i + 1;
	if (reuseport && (i > 0 || listen_fd < 0)) {
		if (listen_fd >= 0)
			close(listen_fd);
		listen_fd = listen_on(ai, 1);
	}
	return 1;
}

static void supervise(int n, const struct addrinfo *ai)
{
	pid_t *pid = calloc((size_t)n, sizeof *pid), p;
	int64_t *born = calloc((size_t)n, sizeof *born);
	sigset_t none;
	int i, st, live = 0, seen = 0;

	if (!pid || !born)
		die(1, "out of memory");
	sigemptyset(&none);
	for (i = 0; i < n; i++) {
		born[i] = clock_ms();
		if (worker_fork(&pid[i], i, ai))
			goto worker;
		live += pid[i] > 0;
	}
	if (reuseport) { /* worker 1 has it; a new worker makes its own */
		close(listen_fd);
		listen_fd = -1;
	}
	logmsg(NULL, "%d workers started (%s listener%s)", n,
	       reuseport ? "SO_REUSEPORT" : "one shared",
	       reuseport ? "s" : "");
	for (;;) {
		while ((p = waitpid(-1, &st, WNOHANG)) > 0) {
			for (i = 0; i < n && pid[i] != p; i++)
				;
			if (i == n)
				continue;
			live--;
			pid[i] = -1; /* to be restarted, unless stopping */
			if (stop_signal)
				continue;
			if (WIFSIGNALED(st))
				logmsg(NULL, "worker %d (pid %ld) killed by "
				       "signal %d; restarting", i + 1, (long)p,
				       WTERMSIG(st));
			else
				logmsg(NULL, "worker %d (pid %ld) exited with "
				       "status %d; restarting", i + 1, (long)p,
				       WEXITSTATUS(st));
			if (clock_ms() - born[i] < 1000)
				sleep(1); /* no fork loop if it dies at once */
		}
		if (stop_signal && !live)
			break;
		for (i = 0; i < n && !stop_signal; i++) {
			if (pid[i] >= 0)
				continue;
			born[i] = clock_ms();
			if (worker_fork(&pid[i], i, ai))
				goto worker;
			live += pid[i] > 0;
		}
		if (seen != signals) { /* pass TERM, INT or HUP on */
			seen = signals;
			for (i = 0; i < n; i++)
				if (pid[i] > 0)
					kill(pid[i], stop_signal ? stop_signal :
					     SIGHUP);
		}
		if (live == n || stop_signal)
			sigsuspend(&none); /* SIGCHLD, or one to pass on */
		else
			sleep(1); /* a fork failed: try again soon */
	}
	exit(0);
worker:
	free(pid);
	free(born);
}

int main(int argc, char **argv)
{
	const char *key_file = NULL, *env;
	struct addrinfo *listen_ai;
	struct sigaction sa;
	struct rlimit rl = {1024, 1024};
	sigset_t block;
	unsigned char probe[16];
	long n_opt = 0;
	static const int handled[] = {SIGINT, SIGTERM, SIGHUP, SIGCHLD};
	int opt, gen = 0, test_all = 0, speed = 0, i, fd_room, jobs = 1;

	cipher = &ciphers[0];
	while ((opt = next_opt(argc, argv, "hVvgSBc:j:n:t:r:k:")) != -1) {
		switch (opt) {
		case 'h':
			usage();
			break;
		case 'V':
			say(1, PROG " " VERSION "\n");
			return 0;
		case 'v':
			verbose = 1;
			break;
		case 'g':
			gen = 1;
			break;
		case 'S':
			test_all = 1;
			break;
		case 'B':
			speed = 1;
			break;
		case 'c':
			if (!(cipher = cipher_by_name(opt_arg)))
				die(2, "bad -c CIPHER '%s': want aes or "
				    "chacha20", opt_arg);
			cipher_forced = 1;
			break;
		case 'j':
			jobs = (int)parse_num(opt_arg, 0, 256, "-j WORKERS");
			if (!jobs)
				jobs = cpu_count();
			break;
		case 'n':
			n_opt = parse_num(opt_arg, 1, 1000000, "-n MAXCONN");
			break;
		case 't':
			timeout_ms = 1000 * (int)parse_num(opt_arg, 1, 3600,
							   "-t SECONDS");
			break;
		case 'r':
			rotate_ms = 1000 * (int64_t)parse_num(opt_arg, 0, 86400,
							      "-r SECONDS");
			break;
		case 'k':
			key_file = opt_arg;
			break;
		case ':':
			die(2, "option -%c needs a value (see -h)", opt_bad);
			break;
		default:
			die(2, "unknown option '-%c' (see -h)", opt_bad);
		}
	}

	env = getenv("GSTUNNEL_NO_RDRAND");
	if ((env && *env && strcmp(env, "0")) || !rdrand_supported())
		use_rdrand = 0;
	if (os_random(probe, sizeof probe) < 0)
		die(1, "no working OS random source (getrandom, /dev/urandom)"
		       ": refusing to run");
	wipe(probe, sizeof probe);
	crypto_select();
	if (test_all)
		return selftest(1) ? 1 : 0;
	if (selftest(0))
		die(1, "crypto self-test failed: refusing to run");
	if (speed) {
		bench();
		return 0;
	}
	if (gen) {
		key_generate();
		return 0;
	}

	argc -= opt_ind;
	argv += opt_ind;
	if (argc < 2)
		die(2, "missing %s argument (see -h)", argc ? (IS_CLIENT ?
		    "SERVER" : "TARGET") : "LISTEN");
	if (argc > 3)
		die(2, "unexpected argument '%s' (see -h)", argv[3]);
	if (argc == 3 && key_file)
		die(2, "KEY given twice: as an argument and with -k");
	env = getenv("GSTUNNEL_KEY");
	if (argc == 3) {
		key_set(argv[2], strlen(argv[2]), "argument");
		/* Gone from /proc/PID/cmdline from here on. */
		wipe(argv[2], strlen(argv[2]));
	} else if (key_file) {
		key_from_file(key_file);
	} else if (env) {
		key_set(env, strlen(env), "GSTUNNEL_KEY");
		wipe((char *)env, strlen(env));
	} else {
		die(2, "missing KEY: give it as an argument, with -k FILE or "
		       "in GSTUNNEL_KEY");
	}
	remote_ai = resolve(argv[1], 0, IS_CLIENT ? "SERVER" : "TARGET");
	listen_ai = resolve(argv[0], 1, "LISTEN");

	/* Two fds per connection: take what the hard limit allows. */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
		getrlimit(RLIMIT_NOFILE, &rl);
	}
	fd_room = rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > 1000000 ?
		  1000000 : (int)rl.rlim_cur;
	fd_room = fd_room > 10 ? (fd_room - 8) / 2 : 1; /* 8: stdio, listener,
							   * /dev/urandom */
	conn_max = n_opt ? (int)n_opt : fd_room < CONN_MAX_DEFAULT ? fd_room :
		   CONN_MAX_DEFAULT;
	if (conn_max > fd_room)
		logmsg(NULL, "warning: -n %d needs more fds than the limit "
		       "allows (%d connections); accepting will pause at the "
		       "limit", conn_max, fd_room);

	listen_fd = listen_on(listen_ai, jobs > 1);
	if (verbose) {
		logmsg(NULL, "listening on %s", addr_str(listen_ai));
		logmsg(NULL, "%s %s; at most %d connections; RDRAND %s",
		       IS_CLIENT ? "server" : "target", addr_str(remote_ai),
		       conn_max, use_rdrand ? "on" : "off");
		for (i = 0; i < (int)COUNT(ciphers); i++)
			if (!(IS_CLIENT || cipher_forced) ||
			    &ciphers[i] == cipher)
				logmsg(NULL, "cipher %s: %s %s%s",
				       ciphers[i].name, ciphers[i].aead,
				       cipher_code[i], ciphers[i].key_len ?
				       "" : key_len == 16 ? ", AES-128" :
				       key_len == 24 ? ", AES-192" :
				       ", AES-256");
	}

	/* The handled signals are blocked except inside ppoll() (run) or
	 * sigsuspend() (supervise). SIGHUP has nothing to reload yet: it is
	 * caught and ignored, so it does not end the process. */
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);
	sa.sa_handler = on_signal;
	sigemptyset(&block);
	for (i = 0; i < (int)COUNT(handled); i++) {
		sigaction(handled[i], &sa, NULL);
		sigaddset(&block, handled[i]);
	}
	sigprocmask(SIG_BLOCK, &block, NULL);
	if (jobs > 1)
		supervise(jobs, listen_ai); /* returns in the workers only */
	freeaddrinfo(listen_ai);

	conns = calloc((size_t)conn_max, sizeof *conns);
	pfds = calloc(1 + 2 * (size_t)conn_max, sizeof *pfds);
	pfd_owner = calloc(1 + 2 * (size_t)conn_max, sizeof *pfd_owner);
	if (!conns || !pfds || !pfd_owner)
		die(1, "out of memory for %d connections", conn_max);
	run();

	if (verbose)
		logmsg(NULL, "signal %d: closing %d connections and exiting",
		       (int)stop_signal, conn_count);
	for (i = 0; i < conn_high; i++)
		if (conns[i].state != S_FREE)
			conn_close(&conns[i], 1);
	close(listen_fd);
	wipe(key, sizeof key);
	wipe(hello_key, sizeof hello_key);
	wipe(&spare, sizeof spare); /* the key pair made ahead */
	freeaddrinfo(remote_ai);
	free(conns);
	free(pfds);
	free(pfd_owner);
	return 0;
}

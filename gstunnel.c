/*
 * gstunnel - a small encrypted TCP tunnel.
 *
 *   app -> gstunnel_client -> (AES-GCM or ChaCha20-Poly1305)
 *       -> gstunnel_server -> target
 *
 * One source, built twice: -DCLIENT gives gstunnel_client, -DSERVER gives
 * gstunnel_server. One event loop per process (epoll on Linux, poll()
 * elsewhere and with -DUSE_POLL, select() on Windows) over a fixed
 * connection table; -j starts worker processes once. The wire protocol is
 * specified in the README ("Protocol").
 *
 * The sections, in order: includes; tunables (limits and defaults, each
 * overridable with -D); types; prototypes; platform (every #ifdef for
 * Windows and Linux: sockets, the event backend, clocks, randomness,
 * processes, files); output (the formatter); small helpers; options and
 * settings (the option table drives argv, -f, usage() and the man test);
 * statistics; errors and logging; randomness; crypto primitives (BearSSL
 * wrappers); ciphers (implementation tables); record layer; self-test and
 * speed test; keys; handshake; key rotation; connection I/O; name lookup
 * (the resolver, in the loop); servers and targets; the connection table
 * (timer queues, the pool); metrics; the event loop; reload (SIGHUP);
 * process (start-up, privileges, pid file); workers (-j); main.
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
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <bearssl.h>

/* ==== tunables ========================================================== */

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

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
#ifndef WAIT_DEFAULT
#define WAIT_DEFAULT 10 /* -w: SIGTERM lets connections finish this long */
#endif
#ifndef TARGETS_MAX
#define TARGETS_MAX 16 /* addresses in a SERVER or TARGET list */
#endif
#ifndef BACKOFF_MAX_MS
#define BACKOFF_MAX_MS 60000 /* a failed address rests 1 s, 2 s, ... this */
#endif
#ifndef CONFIG_MAX
#define CONFIG_MAX 65536 /* -f: the largest config file */
#endif
#ifndef HTTP_MAX
#define HTTP_MAX 4 /* -m: metrics requests served at once */
#endif

/* Protocol constants: see the README before changing any of them. */
#define PROTO_VERSION 3
#define KDF_ROUNDS 100000 /* PBKDF2 rounds: about 1.5 s on a 500 MHz MIPS */
#define REC_PAYLOAD_MAX 16384
#define REC_HEAD 2 /* big-endian length of type byte + payload */
#define REC_TAG 16
#define REC_WIRE_MAX (REC_HEAD + 1 + REC_PAYLOAD_MAX + REC_TAG)
#define REC_CTRL_MAX (REC_HEAD + 1 + 32 + REC_TAG)
#define OPEN_MAX 19 /* OPEN's payload: family, address (16), port */
#ifndef OPEN_WAIT_MS
#define OPEN_WAIT_MS 60000 /* server: an authenticated link waits for OPEN */
#endif
#ifndef POOL_AGE_MS
#define POOL_AGE_MS 45000 /* client: a ready link is replaced after this */
#endif
#ifndef POOL_PACE_MS
#define POOL_PACE_MS 2 /* client: a ready link starts at most this often */
#endif
/* The handshake's fields, named as in the README's Protocol section. */
#define CH_VERSION 0        /* ClientHello: the version byte */
#define CH_CID 1            /* the cipher's id */
#define CH_XC 2             /* Xc, the client's X25519 public key */
#define CH_MAC 34           /* HMAC(hk, the 34 bytes before) */
#define CLIENT_HELLO_LEN 66
#define SH_CID 0            /* ServerHello and Refusal: cid */
#define SH_XS 1             /* Xs (32 zero bytes in a Refusal) */
#define SH_MAC 33           /* HMAC(fs, th); in a Refusal, HMAC(hk, ...) */
#define SERVER_HELLO_LEN 65
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
	REC_REQUEST = 5, /* server: please start a rotation */
	REC_OPEN = 6     /* client: an application for this link (once) */
};

enum conn_state {
	S_FREE,    /* slot unused: both fds -1 */
	S_RESOLVE, /* waiting for the name of SERVER or TARGET (see target) */
	S_CONNECT, /* outbound connect in progress (client: link, server: plain) */
	S_HELLO,   /* client: hello sent, waiting for the server's; server:
		    * waiting for the client hello */
	S_FINISH,  /* server: hello answered, waiting for the client's MAC */
	S_READY,   /* a link made and authenticated, without an application
		    * yet: the client's pool, the server's wait for OPEN */
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
#define F_MEM_TX 0x0800      /* waits for memory to read the plain side */
#define F_MEM_RX 0x1000      /* waits for memory to read the link */
#define F_UNAUTH 0x2000      /* server: not yet authenticated (src) */
#define F_POOL 0x4000        /* client: a pool link, not yet taken */
#define F_CONTROL (F_SEND_OFFER | F_SEND_SWITCH | F_SEND_ACCEPT | \
		   F_SEND_REQUEST)

struct buf {
	unsigned char *p;    /* NULL while nothing waits */
	size_t off, len, cap; /* bytes [off, len) are pending; cap: size */
	int hot;             /* the last read filled it: keep it, grow it */
};

struct dir;
struct conn;

/*
 * Timers are lists, not scans: every timer of one list has the same length,
 * so a list kept in the order its entries were put in (at its tail) is also
 * in the order they expire, and the head is the next to go. Insert, remove
 * and "what is next" are O(1). A connection has two links: ln[0] puts it on
 * one of the queues (its connect, handshake or closing wait), ln[1] on the
 * idle list while it is open, or on a name's waiters while it resolves.
 */
struct link {
	struct conn *prev, *next;
	struct list *on; /* the list it is on; NULL: none */
	int64_t at;      /* when it was put at the tail (ms) */
};

struct list {
	struct conn *head, *tail;
	int n;
};

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
		} chapoly;
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
	unsigned char ev[2];  /* the interest registered for plain, link */
	unsigned char rev[2]; /* what the wait found for them (IO_*) */
	unsigned flags;
	unsigned long id;
	int64_t since;    /* when accepted (ms on the monotonic clock) */
	struct link ln[2]; /* see struct link */
	/* the outbound connect: address addr of targets[target], the
	 * targets tried so far, and the list's generation (see targets) */
	short target, addr;
	unsigned char tries, why; /* why: the failure counted (W_*) */
	unsigned short src;       /* server: its source's bucket (see
				   * strangers) */
	unsigned gen;
	struct buf tx, rx;
	size_t out_off, out_skip; /* see rx_waiting() */
	int64_t rotated;    /* when the keys last rotated (ms) */
	uint64_t rot_bytes; /* payload bytes since then, both directions */
	struct dir send, recv;
	unsigned char eph[32]; /* our X25519 secret, while an exchange runs */
	unsigned char pub[32]; /* X25519 public for the OFFER or ACCEPT */
	unsigned char dh[32];  /* rotation secret until both keys moved */
	unsigned char sk[32], sk_len; /* the stretched KEY and the raw KEY's
				       * length this connection started with:
				       * SIGHUP may change the global ones */
	unsigned char hs[CLIENT_HELLO_LEN]; /* handshake: see client_hello(),
					     * server_handshake() */
};

/* conn.why: the reason a failed connection is counted under */
enum { W_RESET, W_AUTH, W_CONNECT, W_TIMEOUT };

struct query;

/* One address of SERVER or TARGET (see conn_connect_next). Its name is
 * looked up in the loop (target_lookup): connections that need the answer
 * wait on waiters, everything else goes on. */
struct target {
	char *spec;          /* host:port as given */
	char *host;          /* its host part */
	unsigned port;
	struct addrinfo *ai; /* the last addresses it resolved to, or NULL */
	struct query *q;     /* a lookup under way, or NULL */
	struct list waiters; /* connections waiting for q (ln[1]) */
	int64_t down_until;  /* skipped until then, after a failure */
	int backoff_ms;      /* the next rest: 1 s, doubling to 60 s */
	int64_t lookup_at;   /* no addresses: look it up again then */
	int lookup_ms;       /* and the rest after that */
	int stale;           /* every address failed: resolve it again */
};

/*
 * The counters: plain integers, updated where events happen. With -j, each
 * worker owns one row of a table shared with the supervisor and the other
 * workers (mmap before fork), so any of them can print the sum. Printed by
 * stats_print() only, for the log line and the metrics page alike.
 */
struct stats {
	uint64_t open, total, auth, connect, timeout, reset, c2s, s2c,
		 rotations, log_dropped,
		 pool, ready, taken, unused; /* the client's -P, last */
};

/* ==== prototypes ======================================================== */

#if defined(__GNUC__) || defined(__clang__)
#define PRINTF_LIKE(f, a) __attribute__((format(printf, f, a)))
#define NORETURN __attribute__((noreturn))
#else
#define PRINTF_LIKE(f, a)
#define NORETURN
#endif

static void die(int code, const char *fmt, ...) PRINTF_LIKE(2, 3) NORETURN;
static size_t fmt(char *out, size_t n, const char *f, ...) PRINTF_LIKE(3, 4);
static void logmsg(const struct conn *c, const char *fmt, ...)
	PRINTF_LIKE(2, 3);
static int fail(struct conn *c, const char *fmt, ...) PRINTF_LIKE(2, 3);
static void conn_close(struct conn *c, int reset);
static void conn_open(struct conn *c);
static int link_ready(struct conn *c);
static int link_open(struct conn *c);
static int link_opened(struct conn *c, const unsigned char *p, size_t n);
static const struct cipher *cipher_by_name(const char *name);
static int cpu_count(void);
static int conn_connect_next(struct conn *c, int err);
static void conn_settle(struct conn *c, int r);
static int rx_process(struct conn *c);
static void process_end(void);

/* State every section reads: the time the loop woke at (ms on the
 * monotonic clock), and why the last parse or lookup failed. */
static int64_t now;
static char errbuf[320];

/* ==== platform ========================================================== */

/*
 * Everything that differs by OS, behind a few neutral names, and nowhere
 * else (feature guards such as SO_REUSEPORT excepted, one line each):
 *
 *   sockets   sock_open, sock_accept, sock_connect, sock_bind,
 *             sock_listen, sock_send, sock_recv, sock_sendto,
 *             sock_recvfrom, sock_shutdown, sock_setopt, sock_getopt,
 *             sock_readv, sock_writev, sock_close, sock_nonblock,
 *             sock_keepalive, sock_init; os_strerror (Winsock's errors)
 *   waiting   os_wait (poll(); select() on Windows), and the event
 *             backend, ev_init, ev_set, ev_wait (epoll on Linux)
 *   random    os_random; time: clock_ms
 *   signals   os_signals (console events on Windows), os_log_ready
 *   process   os_no_dumps, os_daemon, os_set_ids (-u), os_fork,
 *             os_reap, os_kill (-j), os_shared (the counters),
 *             os_fd_room, cpu_count, os_syslog (-l syslog)
 *   names     os_resolve (Windows: getaddrinfo; see "name lookup")
 *
 * On POSIX the sock_* calls are libc's own. The Unix-only options (-u,
 * -d, -j, -l syslog) are refused on Windows at start (log_start), so the
 * Windows versions of their calls do nothing.
 */

/* Signals caught, counted; the loop acts on each new count. */
static volatile sig_atomic_t sig_term, sig_int, sig_hup, sig_usr1;

#ifdef _WIN32

#define FD_SETSIZE 4096 /* select(): sockets it can watch at once */
#include <winsock2.h>
#include <ws2tcpip.h>
#include <windows.h>
#include <bcrypt.h>

#define WINDOWS 1
#define OS_RESOLVER 1 /* names: getaddrinfo (see os_resolve) */
#define EPOLL 0
#define O_NOFOLLOW 0
#define O_NONBLOCK 0
typedef unsigned long nfds_t;
typedef unsigned short sa_family_t;
struct iovec {
	void *iov_base;
	size_t iov_len;
};
#define MSG_NOSIGNAL 0
#define MSG_DONTWAIT 0
#define SHUT_WR SD_SEND
#define SIGHUP 1   /* never raised here: no SIGHUP, SIGUSR1 or SIGCHLD */
#define SIGUSR1 10
#ifndef ENOTSUP
#define ENOTSUP 129
#endif

/* Winsock errors as errno values (strerror: see os_strerror). */
static int wsa_map(int e)
{
	static const int map[][2] = {
		{WSAEWOULDBLOCK, EWOULDBLOCK}, {WSAEINPROGRESS, EINPROGRESS},
		{WSAEINTR, EINTR}, {WSAECONNRESET, ECONNRESET},
		{WSAECONNREFUSED, ECONNREFUSED}, {WSAECONNABORTED, ECONNABORTED},
		{WSAETIMEDOUT, ETIMEDOUT}, {WSAENOTCONN, ENOTCONN},
		{WSAEMFILE, EMFILE}, {WSAENOBUFS, ENOBUFS},
		{WSAEADDRINUSE, EADDRINUSE}, {WSAEADDRNOTAVAIL, EADDRNOTAVAIL},
		{WSAENETUNREACH, ENETUNREACH}, {WSAEHOSTUNREACH, EHOSTUNREACH},
		{WSAEAFNOSUPPORT, EAFNOSUPPORT}, {WSAEACCES, EACCES},
	};
	size_t i;

	for (i = 0; i < COUNT(map); i++)
		if (map[i][0] == e)
			return map[i][1];
	return e ? EIO : 0;
}

static int wsa_fail(void)
{
	errno = wsa_map(WSAGetLastError());
	return -1;
}

/* msvcrt's strerror() knows none of the socket errors. */
static const char *os_strerror(int e)
{
	return e == ECONNREFUSED ? "Connection refused" : e == ECONNRESET ?
	       "Connection reset by peer" : e == ETIMEDOUT ?
	       "Connection timed out" : e == ECONNABORTED ?
	       "Connection aborted" : e == ENOTCONN ? "Not connected" :
	       e == EADDRINUSE ? "Address in use" : e == EADDRNOTAVAIL ?
	       "Address not available" : e == ENETUNREACH ?
	       "Network unreachable" : e == EHOSTUNREACH ? "Host unreachable" :
	       e == ENOBUFS ? "No buffer space" : e == EWOULDBLOCK ?
	       "Would block" : strerror(e);
}

/* Each socket call sets errno from WSAGetLastError() when it fails. */
static int sock_open(int af, int type)
{
	SOCKET s = socket(af, type, 0);

	return s == INVALID_SOCKET ? wsa_fail() : (int)s;
}

static int sock_accept(int fd, struct sockaddr *a, socklen_t *l)
{
	SOCKET s = accept((SOCKET)fd, a, l);

	return s == INVALID_SOCKET ? wsa_fail() : (int)s;
}

/* A non-blocking connect says WSAEWOULDBLOCK where POSIX says
 * EINPROGRESS. */
static int sock_connect(int fd, const struct sockaddr *a, socklen_t l)
{
	if (connect((SOCKET)fd, a, (int)l) == 0)
		return 0;
	wsa_fail();
	if (errno == EWOULDBLOCK)
		errno = EINPROGRESS;
	return -1;
}

static ssize_t sock_send(int fd, const void *p, size_t n, int fl)
{
	int r = send((SOCKET)fd, p, (int)n, fl);

	return r == SOCKET_ERROR ? wsa_fail() : r;
}

static ssize_t sock_recv(int fd, void *p, size_t n, int fl)
{
	int r = recv((SOCKET)fd, p, (int)n, fl);

	return r == SOCKET_ERROR ? wsa_fail() : r;
}

static ssize_t sock_sendto(int fd, const void *p, size_t n, int fl,
			   const struct sockaddr *a, socklen_t l)
{
	int r = sendto((SOCKET)fd, p, (int)n, fl, a, (int)l);

	return r == SOCKET_ERROR ? wsa_fail() : r;
}

static ssize_t sock_recvfrom(int fd, void *p, size_t n, int fl,
			     struct sockaddr *a, socklen_t *l)
{
	int r = recvfrom((SOCKET)fd, p, (int)n, fl, a, l);

	return r == SOCKET_ERROR ? wsa_fail() : r;
}

static int sock_bind(int fd, const struct sockaddr *a, socklen_t l)
{
	return bind((SOCKET)fd, a, (int)l) ? wsa_fail() : 0;
}

static int sock_listen(int fd, int n)
{
	return listen((SOCKET)fd, n) ? wsa_fail() : 0;
}

static int sock_shutdown(int fd, int how)
{
	return shutdown((SOCKET)fd, how) ? wsa_fail() : 0;
}

/* The peer's address (peer 1) or our own (0). */
static int sock_name(int fd, int peer, struct sockaddr *a, socklen_t *l)
{
	return (peer ? getpeername((SOCKET)fd, a, l) :
		getsockname((SOCKET)fd, a, l)) ? wsa_fail() : 0;
}

static int sock_setopt(int fd, int lv, int name, const void *v, socklen_t l)
{
	return setsockopt((SOCKET)fd, lv, name, v, (int)l) ? wsa_fail() : 0;
}

/* SO_ERROR holds a Winsock error: as errno, too. */
static int sock_getopt(int fd, int lv, int name, void *v, socklen_t *l)
{
	if (getsockopt((SOCKET)fd, lv, name, v, l))
		return wsa_fail();
	if (lv == SOL_SOCKET && name == SO_ERROR)
		*(int *)v = wsa_map(*(int *)v);
	return 0;
}

static void sock_init(void)
{
	WSADATA w;

	if (WSAStartup(MAKEWORD(2, 2), &w))
		die(1, "WSAStartup failed");
}

static void sock_close(int fd)
{
	closesocket((SOCKET)fd);
}

static int sock_nonblock(int fd)
{
	u_long one = 1;

	return ioctlsocket((SOCKET)fd, FIONBIO, &one) ? wsa_fail() : 0;
}

static ssize_t sock_readv(int fd, struct iovec *iov, int n)
{
	WSABUF b[64];
	DWORD got = 0, fl = 0;
	int i;

	for (i = 0; i < n; i++) {
		b[i].buf = iov[i].iov_base;
		b[i].len = (ULONG)iov[i].iov_len;
	}
	return WSARecv((SOCKET)fd, b, (DWORD)n, &got, &fl, NULL, NULL) ?
	       wsa_fail() : (ssize_t)got;
}

static ssize_t sock_writev(int fd, struct iovec *iov, int n)
{
	WSABUF b[64];
	DWORD sent = 0;
	int i;

	for (i = 0; i < n; i++) {
		b[i].buf = iov[i].iov_base;
		b[i].len = (ULONG)iov[i].iov_len;
	}
	return WSASend((SOCKET)fd, b, (DWORD)n, &sent, 0, NULL, NULL) ?
	       wsa_fail() : (ssize_t)sent;
}

/* TCP keepalive: on or off (Windows' own timing). */
static void sock_keepalive(int fd, const int ka[3])
{
	int on = ka[0] > 0;

	sock_setopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof on);
}

/*
 * poll() by select(), not WSAPoll(), which does not report a failed
 * connect on many Windows versions. A failed connect shows in the
 * exception set. The wait is at most 200 ms, so that Ctrl-C, which comes
 * on another thread, is seen soon.
 */
static int os_wait(struct pollfd *p, nfds_t n, int64_t ms)
{
	static fd_set r, w, e;
	struct timeval tv;
	nfds_t k;
	int got = 0;

	if (ms < 0 || ms > 200)
		ms = 200;
	if (!n) { /* select() wants a socket */
		Sleep((DWORD)ms);
		return 0;
	}
	FD_ZERO(&r);
	FD_ZERO(&w);
	FD_ZERO(&e);
	for (k = 0; k < n; k++) {
		if ((int)p[k].fd < 0)
			continue;
		if (p[k].events & POLLIN)
			FD_SET(p[k].fd, &r);
		if (p[k].events & POLLOUT) {
			FD_SET(p[k].fd, &w);
			FD_SET(p[k].fd, &e);
		}
	}
	tv.tv_sec = (long)ms / 1000;
	tv.tv_usec = (long)ms % 1000 * 1000;
	if (select(0, &r, &w, &e, &tv) == SOCKET_ERROR)
		return wsa_fail();
	for (k = 0; k < n; k++) {
		p[k].revents = (short)((int)p[k].fd < 0 ? 0 :
				       (FD_ISSET(p[k].fd, &r) ? POLLIN : 0) |
				       (FD_ISSET(p[k].fd, &w) ? POLLOUT : 0) |
				       (FD_ISSET(p[k].fd, &e) ? POLLERR : 0));
		got += p[k].revents != 0;
	}
	return got;
}

/* A console is never a stalled pipe for long; a pipe may be, but Windows
 * has no way to ask without blocking: write. */
static int os_log_ready(int fd)
{
	(void)fd;
	return 1;
}

static int64_t clock_ms(void)
{
	return (int64_t)GetTickCount64();
}

static int os_random(void *buf, size_t n)
{
	return BCryptGenRandom(NULL, buf, (ULONG)n,
			       BCRYPT_USE_SYSTEM_PREFERRED_RNG) ? -1 : 0;
}

static const char *os_random_name(void)
{
	return "BCryptGenRandom";
}

/* Ctrl-C is SIGINT, Ctrl-Break SIGTERM. Closing the console resets and
 * exits: Windows ends the process a few seconds after this returns. */
static BOOL WINAPI on_console(DWORD ev)
{
	if (ev == CTRL_BREAK_EVENT) {
		sig_term++;
		return TRUE;
	}
	sig_int++;
	if (ev != CTRL_C_EVENT)
		Sleep(2000); /* the loop's time to reset and exit */
	return TRUE;
}

static void os_signals(void)
{
	SetConsoleCtrlHandler(on_console, TRUE);
}

static void *os_shared(size_t n)
{
	return calloc(1, n);
}

/* Two sockets per connection, in one select(). */
static int os_fd_room(void)
{
	return (FD_SETSIZE - 16) / 2;
}

static int cpu_count(void)
{
	return 1; /* no -j here */
}

/* The machine's memory in MiB, 0 if unknown. */
static unsigned long os_ram_mib(void)
{
	MEMORYSTATUSEX m;

	m.dwLength = sizeof m;
	return GlobalMemoryStatusEx(&m) ? (unsigned long)(m.ullTotalPhys >>
							  20) : 0;
}

/* Names: the system's getaddrinfo(), a DLL here (no size to save). */
static struct addrinfo *os_resolve(const char *host, unsigned port,
				   int passive)
{
	struct addrinfo hints, *res;
	char ps[8];

	memset(&hints, 0, sizeof hints);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE : 0);
	fmt(ps, sizeof ps, "%u", port);
	if (getaddrinfo(*host ? host : NULL, ps, &hints, &res)) {
		fmt(errbuf, sizeof errbuf, "no address for '%s'", host);
		return NULL;
	}
	return res;
}

static void os_resolve_free(struct addrinfo *ai)
{
	freeaddrinfo(ai);
}

/* What only Unix has; never reached here (see log_start). */
static int os_syslog(void)
{
	return -1;
}

static void os_no_dumps(void)
{
}

static int os_daemon(int quiet)
{
	(void)quiet;
	return -1;
}

static int os_set_ids(long uid, long gid, const long *groups, int n)
{
	(void)uid;
	(void)gid;
	(void)groups;
	(void)n;
	return -1;
}

static long os_fork(void)
{
	return -1;
}

static long os_reap(int *sig, int *status)
{
	(void)sig;
	(void)status;
	return 0;
}

static void os_kill(long pid, int sig)
{
	(void)pid;
	(void)sig;
}

static int os_lock(int fd)
{
	(void)fd;
	return 0;
}

static int os_pipe(int p[2])
{
	(void)p;
	return -1;
}

static void os_wait_eof(int fd)
{
	(void)fd;
}

#else /* POSIX */

#include <grp.h>
#include <netdb.h> /* struct addrinfo */
#include <poll.h>
#include <sched.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/wait.h>
#ifdef __linux__
#include <sys/prctl.h>
#include <sys/sysinfo.h>
#endif
#if defined(__linux__) && !defined(USE_POLL)
#define EPOLL 1 /* the loop waits with epoll; -DUSE_POLL: with poll() */
#include <sys/epoll.h>
#else
#define EPOLL 0
#endif
#ifndef O_NOFOLLOW
#define O_NOFOLLOW 0
#endif

#define WINDOWS 0
#define OS_RESOLVER 0 /* names: our own resolver (see "name lookup") */
#define O_BINARY 0
#define os_strerror strerror
#define sock_open(af, type) socket(af, type, 0)
#define sock_accept accept
#define sock_connect connect
#define sock_bind bind
#define sock_listen listen
#define sock_send send
#define sock_recv recv
#define sock_sendto sendto
#define sock_recvfrom recvfrom
#define sock_shutdown shutdown
#define sock_setopt setsockopt
#define sock_getopt getsockopt
#define sock_readv readv
#define sock_close close

static void sock_init(void)
{
}

/* The peer's address (peer 1) or our own (0). */
static int sock_name(int fd, int peer, struct sockaddr *a, socklen_t *l)
{
	return peer ? getpeername(fd, a, l) : getsockname(fd, a, l);
}

static int sock_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	return fl < 0 ? -1 : fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

/* sendmsg(): writev() has no MSG_NOSIGNAL */
static ssize_t sock_writev(int fd, struct iovec *iov, int n)
{
	struct msghdr m;

	memset(&m, 0, sizeof m);
	m.msg_iov = iov;
	m.msg_iovlen = (size_t)n;
	return sendmsg(fd, &m, MSG_NOSIGNAL);
}

/* TCP keepalive: probe after ka[0] seconds of silence, then every ka[1],
 * dead after ka[2] probes; ka[0] 0: off. Where the system cannot tune it,
 * its own timing. */
static void sock_keepalive(int fd, const int ka[3])
{
	int on = ka[0] > 0;

	setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof on);
#if defined(TCP_KEEPIDLE) && defined(TCP_KEEPINTVL) && defined(TCP_KEEPCNT)
	if (on) {
		setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &ka[0], sizeof on);
		setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &ka[1], sizeof on);
		setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &ka[2], sizeof on);
	}
#endif
}

/* The loop's wait: ms < 0 is forever. The handled signals are blocked
 * except in here (see os_signals), so one cannot slip in between the
 * loop's checks and the wait. With no fds: a pause until a signal. */
static int os_wait(struct pollfd *p, nfds_t n, int64_t ms)
{
	struct timespec ts;
	sigset_t none;
	int w = ms > INT_MAX ? INT_MAX : (int)ms;

	sigemptyset(&none);
	ts.tv_sec = w / 1000;
	ts.tv_nsec = (long)(w % 1000) * 1000000;
	return ppoll(p, n, ms < 0 ? NULL : &ts, &none);
}

/* Whether a log line can go to fd without waiting. */
static int os_log_ready(int fd)
{
	struct pollfd p;

	p.fd = fd;
	p.events = POLLOUT;
	return poll(&p, 1, 0) == 1 && p.revents == POLLOUT;
}

static int64_t clock_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * Kernels before 3.17 have no getrandom(), which waits until the kernel's
 * pool is seeded; /dev/urandom never waits. So wait once for /dev/random to
 * become readable, which it does when the pool has entropy: a router just
 * after boot must not make predictable keys. Then use /dev/urandom for good.
 */
static int urandom_fd = -1;

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

/* The source os_random() uses, for -S. */
static const char *os_random_name(void)
{
	return urandom_fd < 0 ? "getrandom" : "/dev/urandom (after /dev/random)";
}

/* Handlers only count; the loop (or the supervisor) acts on new counts.
 * SIGCHLD only wakes the supervisor. */
static void on_signal(int sig)
{
	if (sig == SIGTERM)
		sig_term++;
	else if (sig == SIGINT)
		sig_int++;
	else if (sig == SIGHUP)
		sig_hup++;
	else if (sig == SIGUSR1)
		sig_usr1++;
}

/* TERM, INT, HUP, USR1 counted (CHLD wakes the supervisor), PIPE
 * ignored; the counted ones blocked except inside os_wait() and the
 * event backend's wait. */
static void os_signals(void)
{
	static const int handled[] = {SIGINT, SIGTERM, SIGHUP, SIGUSR1,
				      SIGCHLD};
	struct sigaction sa;
	sigset_t block;
	size_t i;

	memset(&sa, 0, sizeof sa);
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);
	sa.sa_handler = on_signal;
	sigemptyset(&block);
	for (i = 0; i < COUNT(handled); i++) {
		sigaction(handled[i], &sa, NULL);
		sigaddset(&block, handled[i]);
	}
	sigprocmask(SIG_BLOCK, &block, NULL);
}

/* The counters, shared with the -j workers. */
static void *os_shared(size_t n)
{
	void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_SHARED |
		       MAP_ANONYMOUS, -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

/* Connections the fd limit allows (two fds each), after raising the soft
 * limit to the hard one. */
static int os_fd_room(void)
{
	struct rlimit rl = {1024, 1024};
	int n;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
		getrlimit(RLIMIT_NOFILE, &rl);
	}
	n = rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > 1000000 ? 1000000 :
	    (int)rl.rlim_cur;
	/* 8 + HTTP_MAX: stdio, listeners, /dev/urandom, syslog, metrics */
	return n > 20 ? (n - 8 - HTTP_MAX) / 2 : 1;
}

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

/* The machine's memory in MiB, 0 if unknown. Linux: sysinfo() (musl's
 * sysconf() brings 64-bit division into a 32-bit binary). */
static unsigned long os_ram_mib(void)
{
#ifdef __linux__
	struct sysinfo si;

	return sysinfo(&si) < 0 ? 0 : si.mem_unit >= 1024 ? (si.totalram >>
	       10) * (si.mem_unit >> 10) : (si.totalram >> 10) * si.mem_unit >>
	       10;
#else
	long pages = sysconf(_SC_PHYS_PAGES), size = sysconf(_SC_PAGESIZE);

	return pages > 0 && size >= 1024 && size <= 1048576 ?
	       (unsigned long)pages / (unsigned long)(1048576 / size) : 0;
#endif
}

/* Never called: names are ours here. */
static struct addrinfo *os_resolve(const char *host, unsigned port,
				   int passive)
{
	(void)host;
	(void)port;
	(void)passive;
	return NULL;
}

static void os_resolve_free(struct addrinfo *ai)
{
	(void)ai;
}

/* -l syslog: a datagram socket to /dev/log; -1 with errno. */
static int os_syslog(void)
{
	struct sockaddr_un a;
	int fd = socket(AF_UNIX, SOCK_DGRAM, 0), e;

	memset(&a, 0, sizeof a);
	a.sun_family = AF_UNIX;
	strcpy(a.sun_path, "/dev/log");
	if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
		e = errno;
		close(fd);
		fd = -1;
		errno = e;
	}
	return fd;
}

/* No core dumps, and (Linux) not dumpable: no other process of this user
 * can read our memory through /proc or ptrace. Again after setuid(),
 * which may reset it. */
static void os_no_dumps(void)
{
	struct rlimit rl = {0, 0};

	setrlimit(RLIMIT_CORE, &rl);
#ifdef PR_SET_DUMPABLE
	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
#endif
}

/* -d: into a new session, away from the terminal; standard input and
 * output to /dev/null, and standard error too unless quiet is 0. The
 * parent waits for a byte on the returned fd (the child's "ready"), and
 * exits 0 when it comes, 1 when it does not; -1 if it cannot fork. */
static int os_daemon(int quiet)
{
	int p[2], fd;
	pid_t pid;
	char c;

	if (pipe(p) < 0 || (pid = fork()) < 0)
		return -1;
	if (pid) {
		close(p[1]);
		_exit(read(p[0], &c, 1) == 1 ? 0 : 1);
	}
	close(p[0]);
	setsid();
	if ((fd = open("/dev/null", O_RDWR)) >= 0) {
		dup2(fd, 0);
		dup2(fd, 1);
		if (quiet)
			dup2(fd, 2);
		if (fd > 2)
			close(fd);
	}
	return p[1];
}

/* -u: the groups, then the group, then the user; -1 (errno) if one
 * fails, -2 if root can be had back. */
static int os_set_ids(long uid, long gid, const long *groups, int n)
{
	gid_t g[65];
	int i;

	for (i = 0; i < n && i < 65; i++)
		g[i] = (gid_t)groups[i];
	if (setgroups((size_t)i, g) < 0 || setgid((gid_t)gid) < 0 ||
	    setuid((uid_t)uid) < 0)
		return -1;
	if (uid && (setuid(0) == 0 || geteuid() == 0 ||
		    getegid() != (gid_t)gid))
		return -2;
	os_no_dumps();
	return 0;
}

static long os_fork(void)
{
	return (long)fork();
}

/* A child that ended: its pid (0: none), and the signal that killed it or
 * its exit status. */
static long os_reap(int *sig, int *status)
{
	int ws;
	pid_t p = waitpid(-1, &ws, WNOHANG);

	if (p > 0) {
		*sig = WIFSIGNALED(ws) ? WTERMSIG(ws) : 0;
		*status = WIFEXITED(ws) ? WEXITSTATUS(ws) : 0;
	}
	return p > 0 ? (long)p : 0;
}

static void os_kill(long pid, int sig)
{
	kill((pid_t)pid, sig);
}

/* A write lock on all of fd's file, or -1: another process holds it. */
static int os_lock(int fd)
{
	struct flock l;

	memset(&l, 0, sizeof l);
	l.l_type = F_WRLCK;
	l.l_whence = SEEK_SET;
	return fcntl(fd, F_SETLK, &l);
}

static int os_pipe(int p[2])
{
	return pipe(p);
}

/* Wait, deaf to the signals, until fd reads EOF (or fails). */
static void os_wait_eof(int fd)
{
	static const int sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGUSR1};
	struct sigaction sa;
	size_t i;
	char c;

	memset(&sa, 0, sizeof sa);
	sa.sa_handler = SIG_IGN;
	for (i = 0; i < COUNT(sigs); i++)
		sigaction(sigs[i], &sa, NULL);
	while (read(fd, &c, 1) != 0 && errno == EINTR)
		;
}

#endif /* POSIX */

/* A 64-bit compiler with __int128 (gcc, clang) always has BearSSL's
 * ctmulq Poly1305, which is faster: its ctmul is then left out. */
#if defined(__SIZEOF_INT128__) && UINTPTR_MAX > 0xffffffffu
#define INT128 1
#else
#define INT128 0
#endif

/* RDRAND, on x86 CPUs that have it (see rnd). */
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


/* ---- the event backend ------------------------------------------------- */

/*
 * The loop's one interface to the system's wait: ev_set() changes what
 * an fd waits for, ev_wait() waits and lists what is ready in evs[] as
 * tokens (see TOK_*) with IO_* bits. Interest is changed only when it
 * changes (the caller keeps what is registered in *cur), never rebuilt
 * per wakeup; an fd with no interest is not in the set at all, since
 * both backends report a hang-up whatever is asked. Every fd leaves the
 * set (ev_set 0) before it is closed: a listener shared by -j workers
 * would otherwise stay in an epoll set after its close.
 *
 * epoll (Linux, the default there): each wakeup costs what is ready.
 * poll() (elsewhere, and with -DUSE_POLL): the set is an array of pollfds
 * kept in place (tok_at[] finds a token's entry; the last one fills a
 * hole), but the kernel still looks at every fd in it, and so does the
 * scan for what is ready: each wakeup costs what is open. On Windows
 * os_wait() is select().
 */
#define EV_BATCH 256 /* events taken from one epoll wait */

struct event {
	int tok;
	unsigned char rev;
};
static struct event *evs; /* ev_cap of them */
static int ev_cap;

/* Event tokens: what an fd is to the loop. A connection's are TOK_CONN +
 * 2 * slot + 0 (plain) or 1 (link); a lookup's sockets TOK_DNS + 2 *
 * target + 0 (IPv4) or 1 (IPv6). */
enum { TOK_LISTEN, TOK_METRICS, TOK_HTTP, TOK_DNS = TOK_HTTP + HTTP_MAX,
       TOK_CONN = TOK_DNS + 2 * TARGETS_MAX };
#define IO_IN 1  /* readable, or interest in it */
#define IO_OUT 2 /* writable */
#define IO_ERR 4 /* an error or hang-up: reported, never asked for */

#if EPOLL
static int ep_fd = -1;
static struct epoll_event *ep_evs;

static int ev_init(int n_tok)
{
	(void)n_tok;
	ep_fd = epoll_create(64); /* not epoll_create1: kernels before 2.6.27 */
	evs = calloc(ev_cap = EV_BATCH, sizeof *evs);
	ep_evs = calloc(EV_BATCH, sizeof *ep_evs);
	if (ep_fd < 0 || !evs || !ep_evs)
		return -1;
	return fcntl(ep_fd, F_SETFD, FD_CLOEXEC);
}

static int ev_set(int fd, int tok, unsigned char *cur, unsigned want)
{
	struct epoll_event e;
	int op = !want ? EPOLL_CTL_DEL : *cur ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;

	if (*cur == want)
		return 0;
	memset(&e, 0, sizeof e);
	e.events = (want & IO_IN ? EPOLLIN : 0) | (want & IO_OUT ? EPOLLOUT : 0);
	e.data.u32 = (uint32_t)tok;
	if (epoll_ctl(ep_fd, op, fd, &e) < 0 && op != EPOLL_CTL_DEL)
		return -1;
	*cur = (unsigned char)want;
	return 0;
}

/* ms < 0: forever. The handled signals are blocked except in here (see
 * os_signals), so one cannot slip in between the loop's checks and the
 * wait. */
static int ev_wait(int64_t ms)
{
	sigset_t none;
	unsigned e;
	int i, n;

	sigemptyset(&none);
	n = epoll_pwait(ep_fd, ep_evs, EV_BATCH, ms < 0 ? -1 : ms > INT_MAX ?
			INT_MAX : (int)ms, &none);
	for (i = 0; i < n; i++) {
		e = ep_evs[i].events;
		evs[i].tok = (int)ep_evs[i].data.u32;
		evs[i].rev = (unsigned char)((e & EPOLLIN ? IO_IN : 0) |
					     (e & EPOLLOUT ? IO_OUT : 0) |
					     (e & (EPOLLERR | EPOLLHUP) ? IO_ERR :
					      0));
	}
	return n;
}
#else
static struct pollfd *pfds; /* npfd entries in use */
static int *pfd_tok, *tok_at, npfd;

static int ev_init(int n_tok)
{
	int i;

	pfds = calloc((size_t)n_tok, sizeof *pfds);
	pfd_tok = calloc((size_t)n_tok, sizeof *pfd_tok);
	tok_at = calloc((size_t)n_tok, sizeof *tok_at);
	evs = calloc((size_t)(ev_cap = n_tok), sizeof *evs);
	if (!pfds || !pfd_tok || !tok_at || !evs)
		return -1;
	for (i = 0; i < n_tok; i++)
		tok_at[i] = -1;
	return 0;
}

static int ev_set(int fd, int tok, unsigned char *cur, unsigned want)
{
	int k = tok_at[tok];

	if (*cur == want)
		return 0;
	if (!want) { /* the last entry fills the hole */
		pfds[k] = pfds[--npfd];
		pfd_tok[k] = pfd_tok[npfd];
		tok_at[pfd_tok[k]] = k;
		tok_at[tok] = -1;
	} else {
		if (k < 0) {
			k = tok_at[tok] = npfd++;
			pfd_tok[k] = tok;
			pfds[k].fd = fd;
		}
		pfds[k].events = (short)((want & IO_IN ? POLLIN : 0) |
					 (want & IO_OUT ? POLLOUT : 0));
	}
	*cur = (unsigned char)want;
	return 0;
}

static int ev_wait(int64_t ms)
{
	int k, n = os_wait(pfds, (nfds_t)npfd, ms), got = 0;
	short r;

	for (k = 0; k < npfd && got < n; k++)
		if ((r = pfds[k].revents)) {
			evs[got].tok = pfd_tok[k];
			evs[got++].rev = (unsigned char)(
				(r & POLLIN ? IO_IN : 0) | (r & POLLOUT ? IO_OUT :
							    0) |
				(r & (POLLERR | POLLHUP | POLLNVAL) ? IO_ERR : 0));
		}
	return n < 0 ? n : got;
}
#endif

/* ==== output ============================================================ */

/* *u / d for d < 65536, returning the remainder: by 16-bit steps, so that
 * a 32-bit CPU divides with its own instructions, not with libgcc's 64-bit
 * division (4 KB of a static MIPS binary). */
static unsigned udiv(unsigned long long *u, unsigned d)
{
	unsigned long long q = 0;
	unsigned long r = 0, cur;
	int i;

	for (i = 48; i >= 0; i -= 16) {
		cur = r << 16 | (unsigned long)(*u >> i & 0xffff);
		q |= (unsigned long long)(cur / d) << i;
		r = cur % d;
	}
	*u = q;
	return (unsigned)r;
}

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
				*--s = "0123456789abcdef"[*f == 'x' ?
					(unsigned)(u & 15) : udiv(&u, 10)];
			while (*f == 'x' ? (u >>= 4) : u);
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

/* ==== small helpers ===================================================== */

/* The earlier of two times, 0 meaning none. */
static int64_t earliest(int64_t next, int64_t t)
{
	return t && (!next || t < next) ? t : next;
}

/* Take c off the list its link w is on, if any (see struct link). */
static void list_del(struct conn *c, int w)
{
	struct link *k = &c->ln[w];

	if (!k->on)
		return;
	*(k->prev ? &k->prev->ln[w].next : &k->on->head) = k->next;
	*(k->next ? &k->next->ln[w].prev : &k->on->tail) = k->prev;
	k->on->n--;
	memset(k, 0, sizeof *k);
}

/* Put c at the tail of l, as of now (off any other list first). */
static void list_put(struct list *l, struct conn *c, int w)
{
	struct link *k = &c->ln[w];

	list_del(c, w);
	k->on = l;
	k->at = now;
	k->prev = l->tail;
	*(l->tail ? &l->tail->ln[w].next : &l->head) = c;
	l->tail = c;
	l->n++;
}

/* memset through a volatile pointer: the compiler cannot drop the wipe. */
static void *(*const volatile memset_v)(void *, int, size_t) = memset;

static void wipe(void *p, size_t n)
{
	memset_v(p, 0, n);
}

static char errbuf[320]; /* why the last parse or lookup failed */

/* The one parser for numbers from the user: decimal, within [min, max].
 * Returns -1 and says why in errbuf. */
static int parse_num(const char *s, long min, long max, const char *what,
		     long *out)
{
	const char *p = s + (*s == '-');
	long v = 0;

	for (; *p >= '0' && *p <= '9' && v < 100000000; p++)
		v = v * 10 + (*p - '0');
	if (*s == '-')
		v = -v;
	if (*p || p == s + (*s == '-') || v < min || v > max) {
		fmt(errbuf, sizeof errbuf, "bad %s '%s': want a number from "
		    "%ld to %ld", what, s, min, max);
		return -1;
	}
	*out = v;
	return 0;
}

/* The next field of *s, up to one of the bytes of sep, NUL-terminated;
 * *s moves past it, to NULL after the last one. NULL if *s is NULL. The
 * one splitter of lines, words and lists. */
static char *field(char **s, const char *sep)
{
	char *f = *s;

	if (!f)
		return NULL;
	*s += strcspn(f, sep);
	if (**s)
		*(*s)++ = 0;
	else
		*s = NULL;
	return f;
}

/* A whole small file (at most max bytes) into a new buffer, NUL added;
 * NULL (errbuf says why) if it cannot be read or is larger. */
static char *file_read(const char *path, size_t max, size_t *len)
{
	char *buf = malloc(max + 1);
	ssize_t r = 1;
	int fd = strcmp(path, "-") ? open(path, O_RDONLY | O_BINARY) : 0, e;

	*len = 0;
	while (fd >= 0 && buf && r && *len <= max)
		if ((r = read(fd, buf + *len, max + 1 - *len)) > 0)
			*len += (size_t)r;
		else if (r < 0 && errno != EINTR)
			break;
	e = errno;
	if (fd > 0)
		close(fd);
	if (fd < 0 || r < 0 || !buf || *len > max) {
		fmt(errbuf, sizeof errbuf, "cannot read '%s': %s", path,
		    *len > max ? "too large" : os_strerror(e));
		free(buf);
		return NULL;
	}
	buf[*len] = 0;
	return buf;
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

/* ==== options and settings ============================================== */

/*
 * The options, one row each: the single source of truth. A row says how
 * an option is written (-x, --name, and name in a config file), what its
 * value is (a kind; a number's limits), its default (given as a value
 * would be, and parsed the same way), its help, and where the parsed
 * value lands in struct settings (off). The command line (-x VALUE,
 * --name VALUE or --name=VALUE), config files (-f), the defaults, the
 * checks and usage() all come from the rows, and so does the test that
 * compares -h with the README and the man page. The rows without a flag
 * are the operands, which config files name too. An option is one row,
 * the field its value lands in, and the code that uses it.
 */
enum { K_FLAG, K_STR, K_NUM, K_CIPHER, K_LOG, K_KEEPALIVE };
#define OPT_FIXED 1 /* read at start only: SIGHUP leaves it as it was */
#define OPT_CLI 2   /* command line only: not in a config file */
#define OPT_NEED 4  /* an operand that must be given */
#define OPT_CLIENT 8  /* for gstunnel_client only */
#define OPT_SERVER 16 /* for gstunnel_server only */
#define OPT_OTHER (IS_CLIENT ? OPT_SERVER : OPT_CLIENT) /* not for us */
#define LONG_ONLY 1 /* a row's flag: no short form */
#define OPT_MAX 32  /* rows at most (the bits of settings.owned) */

/* The settings: each option as given (val[row], NULL: not given; the
 * command line's point into argv, a config file's are allocated: bit
 * row of owned), and the values parsed, in the fields the rows name.
 * SIGHUP builds new settings and keeps them only if all is well. */
struct settings {
	const char *val[OPT_MAX];
	unsigned long owned;
	const struct cipher *cipher;
	long workers, maxconn, memory, timeout, rotate, idle, wait, stats,
	     pool;
	int keepalive[3], syslog, daemon, verbose, genkey, selftest, bench,
	    version, help, proxy;
	const char *key_file, *config, *metrics, *user, *pidfile, *listen,
		   *remote, *key;
};

#define XSTR(x) #x
#define STR(x) XSTR(x)
#define AT(field) offsetof(struct settings, field)
#define REMOTE_NAME (IS_CLIENT ? "server" : "target")
#define REMOTE_ARG (IS_CLIENT ? "SERVER" : "TARGET")

static const struct option {
	char flag;               /* -x; 0: an operand */
	unsigned char kind, how; /* K_*; OPT_* */
	unsigned short off;      /* where the value lands */
	int min, max;            /* K_NUM: the limits */
	const char *name, *arg;  /* --name, and the value in -h */
	const char *def, *help;  /* the default (NULL: none), the help */
} options[] = {
	{'c', K_CIPHER, 0, AT(cipher), 0, 0, "cipher", "CIPHER", "aes",
	 "aes (AES-GCM) or chacha20 (ChaCha20-Poly1305): see -B"},
	{'k', K_STR, 0, AT(key_file), 0, 0, "key-file", "FILE", NULL,
	 "read KEY from FILE ('-': standard input)"},
	{'f', K_STR, OPT_FIXED | OPT_CLI, AT(config), 0, 0, "config", "FILE",
	 NULL, "read options from FILE: 'long-name value' lines"},
	{'j', K_NUM, OPT_FIXED, AT(workers), 0, 256, "workers", "WORKERS", "1",
	 "worker processes, 0: one per CPU"},
	{'n', K_NUM, OPT_FIXED, AT(maxconn), 1, 1000000, "maxconn", "MAXCONN",
	 NULL, "connections at once, per worker (default: fd limit / 2, at "
	 "most " STR(CONN_MAX_DEFAULT) ")"},
	{'M', K_NUM, 0, AT(memory), 0, 1048576, "memory", "MiB", NULL,
	 "MiB of buffers at most, per process (default 0: memory / 8)"},
	{'t', K_NUM, 0, AT(timeout), 1, 3600, "timeout", "SECONDS",
	 STR(TIMEOUT_DEFAULT), "connect and handshake timeout"},
	{'r', K_NUM, 0, AT(rotate), 0, 86400, "rotate", "SECONDS",
	 STR(ROTATE_DEFAULT), "rotate keys after SECONDS of activity, 0: by "
	 "volume only"},
	{'i', K_NUM, 0, AT(idle), 0, 2592000, "idle", "SECONDS", "0",
	 "reset a connection idle for SECONDS, 0: never"},
	{'w', K_NUM, 0, AT(wait), 0, 3600, "wait", "SECONDS", STR(WAIT_DEFAULT),
	 "on SIGTERM, let connections finish for up to SECONDS"},
	{'K', K_KEEPALIVE, 0, AT(keepalive), 0, 0, "keepalive",
	 "IDLE,INTERVAL,COUNT", "60,10,6", "TCP keepalive, in seconds and "
	 "probes; 0: off"},
	{'s', K_NUM, 0, AT(stats), 0, 86400, "stats", "SECONDS", "0",
	 "log a statistics line every SECONDS, 0: on SIGUSR1 only"},
	{'m', K_STR, OPT_FIXED, AT(metrics), 0, 0, "metrics", "[HOST:]PORT",
	 NULL, "serve the statistics at http://HOST:PORT/metrics (HOST: "
	 "127.0.0.1)"},
	{'l', K_LOG, OPT_FIXED, AT(syslog), 0, 0, "log", "WHERE", NULL,
	 "stderr or syslog (default stderr; with -d, syslog)"},
	{'u', K_STR, OPT_FIXED, AT(user), 0, 0, "user", "USER[:GROUP]", NULL,
	 "after binding, run as USER (and GROUP)"},
	{'d', K_FLAG, OPT_FIXED, AT(daemon), 0, 0, "daemon", NULL, NULL,
	 "detach and run in the background"},
	{'P', K_NUM, OPT_CLIENT, AT(pool), 0, 64, "pool", "N", "0", "client: "
	 "keep N links ready, so that connects are instant"},
	{LONG_ONLY, K_FLAG, OPT_SERVER, AT(proxy), 0, 0, "proxy-protocol",
	 NULL, NULL, "server: a PROXY v2 header to TARGET names the "
	 "application"},
	{'p', K_STR, OPT_FIXED, AT(pidfile), 0, 0, "pidfile", "FILE", NULL,
	 "write the process id to FILE"},
	{'v', K_FLAG, 0, AT(verbose), 0, 0, "verbose", NULL, NULL, "log "
	 "connections, rotations and every failure"},
	{'g', K_FLAG, OPT_FIXED | OPT_CLI, AT(genkey), 0, 0, "genkey", NULL,
	 NULL, "print a new random 32-character key and exit"},
	{'S', K_FLAG, OPT_FIXED | OPT_CLI, AT(selftest), 0, 0, "selftest",
	 NULL, NULL, "run the crypto self-test on every implementation and "
	 "exit"},
	{'B', K_FLAG, OPT_FIXED | OPT_CLI, AT(bench), 0, 0, "bench", NULL, NULL,
	 "measure each cipher implementation's speed here and exit"},
	{'V', K_FLAG, OPT_FIXED | OPT_CLI, AT(version), 0, 0, "version", NULL,
	 NULL, "print the version and exit"},
	{'h', K_FLAG, OPT_FIXED | OPT_CLI, AT(help), 0, 0, "help", NULL, NULL,
	 "print this help and exit"},
	{0, K_STR, OPT_FIXED | OPT_NEED, AT(listen), 0, 0, "listen", "LISTEN",
	 NULL, NULL},
	{0, K_STR, OPT_NEED, AT(remote), 0, 0, IS_CLIENT ? "server" : "target",
	 IS_CLIENT ? "SERVER" : "TARGET", NULL, NULL},
	{0, K_STR, 0, AT(key), 0, 0, "key", "KEY", NULL, NULL},
};
#define N_OPTIONS ((int)COUNT(options))

static struct settings cli, cfg; /* the command line's; those in use */

static const char *usage_head =
"usage: gstunnel_client [options] LISTEN SERVER [KEY]\n"
"       gstunnel_server [options] LISTEN TARGET [KEY]\n"
"\n"
"  LISTEN      address to accept on: host:port, [ipv6]:port or :port\n"
"  SERVER      address of the gstunnel_server (client only)\n"
"  TARGET      address of the service to reach (server only); SERVER and\n"
"              TARGET may be a list: host:port,host:port,...\n"
"  KEY         shared secret of exactly 16, 24 or 32 bytes (AES-128/192/256);\n"
"              read from -k FILE or $GSTUNNEL_KEY when not given here\n"
"\n"
"options:\n";

/* -h: each option's help and default, wrapped at 72 columns. */
static void usage(void)
{
	const struct option *o;
	char text[400];
	const char *h;
	size_t l;

	put(1, usage_head, strlen(usage_head));
	for (o = options; o->flag; o++) {
		if (o->flag == LONG_ONLY)
			say(1, "      --%s\n", o->name); /* no value */
		else
			say(1, "  -%c, --%s%s%s\n", o->flag, o->name, o->arg ?
			    " " : "", o->arg ? o->arg : "");
		fmt(text, sizeof text, "%s%s%s%s", o->help, o->def ?
		    " (default " : "", o->def ? o->def : "", o->def ? ")" : "");
		for (h = text; *h; h += l, h += *h == ' ') {
			l = strlen(h);
			if (l > 64)
				for (l = 64; l > 1 && h[l] != ' '; l--)
					;
			put(1, "        ", 8);
			put(1, h, l);
			put(1, "\n", 1);
		}
	}
	exit(0);
}

/* Row i's value v into s (v must live as long as s); what names it in
 * errors ("-t SECONDS" or "timeout"). Returns -1 with errbuf. */
static int opt_set(struct settings *s, int i, const char *v, const char *what)
{
	const struct option *o = &options[i];
	char *f = (char *)s + o->off, list[32], *p, *item;
	long n;
	int k, *ka = (int *)(void *)f;

	s->val[i] = v;
	if (o->how & OPT_OTHER) {
		fmt(errbuf, sizeof errbuf, "%s is for %s", *what ? what :
		    o->name, IS_CLIENT ? "gstunnel_server" : "gstunnel_client");
		return -1;
	}
	switch (o->kind) {
	case K_FLAG:
		*(int *)(void *)f = 1;
		return 0;
	case K_STR:
		*(const char **)(void *)f = v;
		return 0;
	case K_NUM:
		return parse_num(v, o->min, o->max, what, (long *)(void *)f);
	case K_CIPHER:
		if ((*(const struct cipher **)(void *)f = cipher_by_name(v)))
			return 0;
		break;
	case K_LOG:
		*(int *)(void *)f = !strcmp(v, "syslog");
		if (*(int *)(void *)f || !strcmp(v, "stderr"))
			return 0;
		break;
	case K_KEEPALIVE: /* 0, or IDLE,INTERVAL,COUNT */
		fmt(list, sizeof list, "%s", v);
		for (p = list, k = 0; p && k < 3; k++) {
			item = field(&p, ",");
			if (parse_num(item, p || k, k ? 255 : 86400, what,
				      &n) < 0)
				return -1;
			ka[k] = (int)n;
		}
		if (!p && (k == 3 || !ka[0]))
			return 0;
		break;
	}
	fmt(errbuf, sizeof errbuf, "bad %s '%s': want %s", what, v,
	    o->kind == K_CIPHER ? "aes or chacha20" : o->kind == K_LOG ?
	    "stderr or syslog" : "0 or IDLE,INTERVAL,COUNT (seconds, count)");
	return -1;
}

/* Row i's value back to its default; val[i] stays. */
static void opt_clear(struct settings *s, int i)
{
	const struct option *o = &options[i];
	char *f = (char *)s + o->off;
	const char *v = s->val[i];

	if (o->def && !(o->how & OPT_OTHER))
		opt_set(s, i, o->def, "");
	else if (o->kind == K_STR)
		*(const char **)(void *)f = NULL;
	else if (o->kind == K_NUM)
		*(long *)(void *)f = 0;
	else
		*(int *)(void *)f = 0;
	s->val[i] = v;
}

/* Row i as not given. */
static void opt_reset(struct settings *s, int i)
{
	if (s->owned >> i & 1) { /* the key may be among them */
		wipe((char *)s->val[i], strlen(s->val[i]));
		free((char *)s->val[i]);
	}
	s->owned &= ~(1UL << i);
	s->val[i] = NULL;
	opt_clear(s, i);
}

/* Whether the option whose value lands at off was given. */
static int given(const struct settings *s, size_t off)
{
	int i;

	for (i = 0; i < N_OPTIONS && options[i].off != off; i++)
		;
	return i < N_OPTIONS && s->val[i];
}

static void settings_free(struct settings *s)
{
	int i;

	for (i = 0; i < N_OPTIONS; i++)
		opt_reset(s, i);
	memset(s, 0, sizeof *s);
}

/*
 * -f FILE: one "name value" per line, name an option's long name (or
 * listen, server or target, key); a flag is its name alone. '#' at the
 * start of a line or after a blank starts a comment. Anything wrong is
 * refused with FILE:LINE: and the reason.
 */
static int config_read(struct settings *s, const char *path)
{
	char *buf, *p, *line, *v, *copy;
	char msg[sizeof errbuf];
	const char *e = NULL;
	unsigned long seen = 0;
	size_t len;
	int i, ln = 0;

	if (!(buf = file_read(path, CONFIG_MAX, &len))) {
		memcpy(msg, errbuf, sizeof msg);
		fmt(errbuf, sizeof errbuf, "config file: %s", msg);
		return -1;
	}
	if (strlen(buf) != len) {
		fmt(errbuf, sizeof errbuf, "%s: a NUL byte: not a text file",
		    path);
		e = "";
	}
	for (p = buf; !e && (line = field(&p, "\n")); ) {
		ln++;
		for (v = line; *v && !(*v == '#' && (v == line || v[-1] == ' ' ||
						     v[-1] == '\t')); v++)
			;
		while (v > line && strchr(" \t\r", v[-1]))
			v--;
		*v = 0;
		line += strspn(line, " \t");
		if (!*line)
			continue;
		v = line + strcspn(line, " \t");
		if (*v)
			*v++ = 0;
		v += strspn(v, " \t");
		for (i = 0; i < N_OPTIONS && (strcmp(options[i].name, line) ||
					      (options[i].how & OPT_CLI)); i++)
			;
		e = i == N_OPTIONS ? "unknown name" : seen >> i & 1 ?
		    "given twice" : options[i].kind != K_FLAG && !*v ?
		    "needs a value" : options[i].kind == K_FLAG && *v ?
		    "takes no value" : (options[i].off == AT(key) ||
		    options[i].off == AT(key_file)) && (s->key || s->key_file) ?
		    "KEY given twice (key and key-file)" : NULL;
		copy = e ? NULL : strdup(*v ? v : "1");
		if (!e && !copy)
			e = "out of memory";
		if (e)
			fmt(errbuf, sizeof errbuf, "%s:%d: %s: %s", path, ln,
			    line, e);
		else if (opt_set(s, i, copy, options[i].name) < 0)
			e = "";
		if (copy) {
			s->owned |= 1UL << i;
			seen |= 1UL << i;
		}
		if (e && *e == 0) {
			memcpy(msg, errbuf, sizeof msg);
			fmt(errbuf, sizeof errbuf, "%s:%d: %s", path, ln, msg);
		}
	}
	wipe(buf, len);
	free(buf);
	return e ? -1 : 0;
}

/* The defaults, then the config file, then the command line over both:
 * a KEY on the command line (argument or -k) replaces both of the file's
 * ways of giving one. */
static int settings_load(struct settings *s)
{
	int i, key_cli = cli.key || cli.key_file;

	memset(s, 0, sizeof *s);
	for (i = 0; i < N_OPTIONS; i++)
		opt_reset(s, i);
	if (cli.config && config_read(s, cli.config) < 0) {
		settings_free(s);
		return -1;
	}
	for (i = 0; i < N_OPTIONS; i++) {
		if (cli.val[i] || (key_cli && (options[i].off == AT(key) ||
					       options[i].off == AT(key_file))))
			opt_reset(s, i);
		if (cli.val[i])
			opt_set(s, i, cli.val[i], ""); /* checked already */
		if ((options[i].how & OPT_NEED) && !s->val[i]) {
			fmt(errbuf, sizeof errbuf, "missing %s argument (see "
			    "-h)", options[i].arg);
			settings_free(s);
			return -1;
		}
	}
	return 0;
}

/* The settings the loop reads. */
static int verbose, timeout_ms = TIMEOUT_DEFAULT * 1000, workers = 1;
static size_t mem_budget = (size_t)-1; /* -M, in bytes */
static int64_t rotate_ms = ROTATE_DEFAULT * 1000, idle_ms;
static const struct cipher *cipher; /* -c, or the default */
static int cipher_forced;           /* -c given: the server refuses others */

static void settings_use(void)
{
	unsigned long mib;

	verbose = cfg.verbose;
	workers = cfg.workers ? (int)cfg.workers : cpu_count();
	mib = cfg.memory ? (unsigned long)cfg.memory : os_ram_mib();
	if (!cfg.memory) /* unknown memory: as on a 256 MiB box */
		mib = (mib ? mib : 256) / 8 / (unsigned long)workers;
	mem_budget = (size_t)(mib ? mib : 1) << 20;
	timeout_ms = (int)cfg.timeout * 1000;
	rotate_ms = (int64_t)cfg.rotate * 1000;
	idle_ms = (int64_t)cfg.idle * 1000;
	cipher = cfg.cipher;
	cipher_forced = given(&cfg, AT(cipher));
}

/*
 * getopt(3) for the option table, without the stdio that libc's brings
 * along: "-vS", "-k FILE", "-kFILE", "--key-file FILE", "--key-file=FILE",
 * "--"; then the operands. Everything into cli, each value checked; a bad
 * one ends the program.
 */
static void options_parse(int argc, char **argv)
{
	char *a, *eq, *arg, what[40];
	int i, k, pos = 0, ind = 1;
	size_t l;

	while (ind < argc && argv[ind][0] == '-' && argv[ind][1]) {
		a = argv[ind];
		arg = NULL;
		if (!strcmp(a, "--")) {
			ind++;
			break;
		}
		if (a[1] == '-') { /* --name, --name=value */
			eq = strchr(a, '=');
			l = eq ? (size_t)(eq - a - 2) : strlen(a + 2);
			for (i = 0; options[i].flag && (strncmp(options[i].name,
				     a + 2, l) || options[i].name[l]); i++)
				;
			if (!options[i].flag)
				die(2, "unknown option '%s' (see -h)", a);
			if (eq && options[i].kind == K_FLAG)
				die(2, "option --%s takes no value",
				    options[i].name);
			arg = eq ? eq + 1 : NULL;
			ind++;
		} else { /* -x, -xVALUE, or several flags: -vd */
			for (i = 0; options[i].flag &&
			     options[i].flag != a[pos + 1]; i++)
				;
			if (!options[i].flag)
				die(2, "unknown option '-%c' (see -h)",
				    a[pos + 1]);
			pos++;
			if (options[i].kind != K_FLAG && a[pos + 1]) {
				arg = a + pos + 1;
				pos += (int)strlen(arg);
			}
			if (!a[pos + 1]) {
				ind++;
				pos = 0;
			}
		}
		if (options[i].kind != K_FLAG && !arg) {
			if (ind >= argc)
				die(2, "option -%c needs a value (see -h)",
				    options[i].flag);
			arg = argv[ind++];
		}
		fmt(what, sizeof what, "-%c %s", options[i].flag,
		    options[i].arg ? options[i].arg : "");
		if (opt_set(&cli, i, arg ? arg : "1", what) < 0)
			die(2, "%s", errbuf);
	}
	for (i = 0, k = ind; i < N_OPTIONS && k < argc; i++)
		if (!options[i].flag)
			cli.val[i] = argv[k++];
	if (k < argc)
		die(2, "unexpected argument '%s' (see -h)", argv[k]);
	for (i = 0; i < N_OPTIONS; i++)
		if (cli.val[i] && !options[i].flag)
			opt_set(&cli, i, cli.val[i], "");
	if (cli.key && cli.key_file)
		die(2, "KEY given twice: as an argument and with -k");
	if (cli.help)
		usage();
}

/* ==== statistics ======================================================== */

/*
 * The counters: plain integers, updated where events happen. With -j, each
 * worker owns one row of a table shared with the supervisor and the other
 * workers (mmap before fork), so any of them can print the sum. Printed by
 * stats_print() only, for the log line and the metrics page alike.
 */
static struct stats *stats_all, *st; /* all rows (one per worker); ours */
static int stats_rows = 1;
static int64_t started; /* for the uptime */


/* One row per number: its Prometheus name (after "gstunnel_") and label,
 * its name in the log line, and where it is in struct stats (-1: the
 * uptime). A name ending in _total is a counter, others are gauges. */
static const struct {
	const char *name, *label, *key;
	int off;
} stat_rows[] = {
	{"connections_open", "", "open", offsetof(struct stats, open)},
	{"connections_total", "", "total", offsetof(struct stats, total)},
	{"failures_total", "{reason=\"authentication\"}", "auth_failed",
	 offsetof(struct stats, auth)},
	{"failures_total", "{reason=\"connect\"}", "connect_failed",
	 offsetof(struct stats, connect)},
	{"failures_total", "{reason=\"timeout\"}", "timed_out",
	 offsetof(struct stats, timeout)},
	{"failures_total", "{reason=\"reset\"}", "reset",
	 offsetof(struct stats, reset)},
	{"bytes_total", "{direction=\"c2s\"}", "bytes_c2s",
	 offsetof(struct stats, c2s)},
	{"bytes_total", "{direction=\"s2c\"}", "bytes_s2c",
	 offsetof(struct stats, s2c)},
	{"rotations_total", "", "rotations", offsetof(struct stats, rotations)},
	{"log_lines_dropped_total", "", "log_dropped",
	 offsetof(struct stats, log_dropped)},
	{"pool_links", "", "pool", offsetof(struct stats, pool)},
	{"pool_ready", "", "pool_ready", offsetof(struct stats, ready)},
	{"pool_taken_total", "", "pool_taken", offsetof(struct stats, taken)},
	{"pool_unused_total", "", "pool_died_unused",
	 offsetof(struct stats, unused)},
	{"uptime_seconds", "", "uptime_s", -1},
};

/* The counters summed over the workers, as one log line ("key=value
 * ...") or as a Prometheus text page; returns the length. */
static size_t stats_print(char *out, size_t n, int prom)
{
	size_t i, w, len = 0;
	unsigned long long v;
	int k;

	for (i = 0; i < COUNT(stat_rows); i++) {
		if (!IS_CLIENT && stat_rows[i].off >=
		    (int)offsetof(struct stats, pool))
			continue; /* the pool is the client's */
		v = (unsigned long long)(now - started);
		udiv(&v, 1000);
		if (stat_rows[i].off >= 0)
			for (k = 0, v = 0; k < stats_rows; k++)
				v += *(uint64_t *)((char *)&stats_all[k] +
						   stat_rows[i].off);
		w = strlen(stat_rows[i].name);
		if (prom && (!i || strcmp(stat_rows[i].name,
					  stat_rows[i - 1].name)))
			len += fmt(out + len, n - len, "# TYPE gstunnel_%s %s\n",
				   stat_rows[i].name, w > 6 && !strcmp(
				   stat_rows[i].name + w - 6, "_total") ?
				   "counter" : "gauge");
		len += prom ? fmt(out + len, n - len, "gstunnel_%s%s %llu\n",
				  stat_rows[i].name, stat_rows[i].label,
				  (unsigned long long)v) :
		       fmt(out + len, n - len, " %s=%llu", stat_rows[i].key,
			   (unsigned long long)v);
		if (len >= n)
			len = n - 1;
	}
	return len;
}

/* The counters: one row per worker, shared (see struct stats). */
static void stats_start(void)
{
	stats_rows = workers;
	stats_all = os_shared((size_t)stats_rows * sizeof *stats_all);
	if (!stats_all)
		die(1, "no memory for the counters: %s", os_strerror(errno));
	st = stats_all;
	started = now = clock_ms();
}

static void stats_log(void)
{
	char line[400];

	stats_print(line, sizeof line, 0);
	logmsg(NULL, "stats:%s", line);
}

/* ==== errors and logging ================================================ */

static int log_fd = 2, log_syslog; /* stderr, or a socket to /dev/log */
static char pool_why[200]; /* why the last pool link failed (fail) */
static int worker_id; /* with -j: this worker's number, from 1 */

/* -l syslog: the socket to /dev/log, made again if syslogd has
 * restarted. */
static int syslog_open(void)
{
	int fd = os_syslog();

	if (log_syslog && log_fd >= 0)
		sock_close(log_fd);
	if (log_syslog || fd >= 0)
		log_fd = fd;
	return fd;
}

/*
 * One line, one write, and never a wait: a line that cannot go at once (a
 * stalled pipe on stderr, a full syslog socket) is dropped and counted, so
 * logging cannot stop the loop. A syslog line is "<30>" (LOG_DAEMON,
 * LOG_INFO; 27: LOG_ERR), the program and pid, then the text.
 */
static void vlog(const struct conn *c, int err, const char *f, va_list ap)
{
	char line[512];
	size_t n;
	ssize_t r = -1;

	n = log_syslog ? fmt(line, sizeof line, "<%d>" PROG "[%ld]: ",
			     err ? 27 : 30, (long)getpid()) :
	    fmt(line, sizeof line, PROG);
	if (worker_id)
		n += fmt(line + n, sizeof line - n, log_syslog ? "worker %d: " :
			 "[%d]", worker_id);
	if (!log_syslog)
		n += fmt(line + n, sizeof line - n, ": ");
	if (c)
		n += fmt(line + n, sizeof line - n, "conn %lu: ", c->id);
	if (n < sizeof line - 1)
		n += vfmt(line + n, sizeof line - 1 - n, f, ap);
	if (n > sizeof line - 2)
		n = sizeof line - 2;
	line[n++] = '\n';
	if (log_syslog) {
		if (log_fd >= 0)
			r = sock_send(log_fd, line, n - 1, MSG_DONTWAIT |
				 MSG_NOSIGNAL);
		if (r < 0 && errno != EAGAIN && syslog_open() >= 0)
			r = sock_send(log_fd, line, n - 1, MSG_DONTWAIT |
				 MSG_NOSIGNAL);
	} else if (os_log_ready(log_fd)) {
		r = write(log_fd, line, n);
	}
	if (r < 0 && st)
		st->log_dropped++;
}

static void logmsg(const struct conn *c, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(c, 0, fmt, ap);
	va_end(ap);
}

/* Only before the loop runs: the message goes to the log, and to stderr
 * as well when the log is syslog. */
static void die(int code, const char *f, ...)
{
	char line[512];
	va_list ap;
	size_t n;

	va_start(ap, f);
	vlog(NULL, 1, f, ap);
	va_end(ap);
	if (log_syslog) {
		va_start(ap, f);
		n = vfmt(line, sizeof line - 1, f, ap);
		va_end(ap);
		if (n > sizeof line - 2)
			n = sizeof line - 2;
		line[n++] = '\n';
		put(2, PROG ": ", sizeof PROG + 1);
		put(2, line, n);
	}
	exit(code);
}

/* Where the log goes: syslog with -l syslog, or with -d unless -l says
 * otherwise. And what Windows cannot do. */
static void log_start(void)
{
	if (WINDOWS && (cfg.user || cfg.daemon || cfg.syslog || workers > 1))
		die(2, "%s is for Unix only, not for Windows", cfg.user ? "-u" :
		    cfg.daemon ? "-d" : cfg.syslog ? "-l syslog" : "-j");
	if (cfg.syslog || (cfg.daemon && !given(&cfg, AT(syslog)))) {
		if (syslog_open() < 0)
			die(1, "%s: cannot log to syslog (/dev/log): %s%s",
			    cfg.syslog ? "-l syslog" : "-d", os_strerror(errno),
			    cfg.syslog ? "" : "; use -l stderr");
		log_syslog = 1;
	}
}

/*
 * Log why a connection fails; the caller then closes it with a reset.
 * Failures before authentication on the server (strangers, scanners, a
 * replayed hello) are logged at most once a second without -v, and the
 * next line says how many were left out: nobody can flood the log.
 */
static int fail(struct conn *c, const char *fmt, ...)
{
	static int64_t last = -1000;
	static unsigned long quiet;
	va_list ap;

	if (c && (c->flags & F_POOL)) { /* said with its back-off */
		va_start(ap, fmt);
		vfmt(pool_why, sizeof pool_why, fmt, ap);
		va_end(ap);
		return -1;
	}
	if (!verbose && c && !IS_CLIENT && (c->state == S_HELLO ||
					     c->state == S_FINISH)) {
		if (now - last < 1000) {
			quiet++;
			return -1;
		}
		last = now;
		if (quiet)
			logmsg(NULL, "%lu more failures before authentication "
			       "were not logged (one a second; -v logs all)",
			       quiet);
		quiet = 0;
	}
	va_start(ap, fmt);
	vlog(c, 0, fmt, ap);
	va_end(ap);
	return -1;
}

/* An authentication failure: counted, then as fail(). */
static int auth_fail(struct conn *c, const char *what)
{
	c->why = W_AUTH;
	return fail(c, "authentication failed: %s", what);
}

/* ==== randomness ======================================================== */

static int use_rdrand = 1; /* RDRAND mixed in: the CPU has it, it works */

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

static const br_ec_impl *ec_impl = &br_ec_c25519_m31;

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
 * U1 = HMAC(pw, salt || 0x00000001), Ui = HMAC(pw, Ui-1), in steps, so
 * that a reload can stretch a new KEY between the loop's events (see
 * reload_step). BearSSL's key context keeps the padded key's hash state,
 * so a round is two SHA-256 blocks. */
struct kdf {
	br_hmac_key_context kc;
	unsigned char u[32], out[32];
	unsigned long left; /* rounds still to run */
};

static void kdf_start(struct kdf *k, const void *pw, size_t pw_len,
		      const void *salt, size_t salt_len, unsigned long rounds)
{
	br_hmac_context h;

	br_hmac_key_init(&k->kc, &br_sha256_vtable, pw, pw_len);
	br_hmac_init(&h, &k->kc, 0);
	br_hmac_update(&h, salt, salt_len);
	br_hmac_update(&h, "\0\0\0\1", 4);
	br_hmac_out(&h, k->u);
	memcpy(k->out, k->u, 32);
	k->left = rounds - 1;
	wipe(&h, sizeof h);
}

/* Up to n more rounds; 1 when all are done (the result in k->out). */
static int kdf_run(struct kdf *k, unsigned long n)
{
	br_hmac_context h;
	size_t i;

	for (; n && k->left; n--, k->left--) {
		br_hmac_init(&h, &k->kc, 0);
		br_hmac_update(&h, k->u, 32);
		br_hmac_out(&h, k->u);
		for (i = 0; i < 32; i++)
			k->out[i] ^= k->u[i];
	}
	wipe(&h, sizeof h);
	return !k->left;
}

static void pbkdf2(unsigned char out[32], const void *pw, size_t pw_len,
		   const void *salt, size_t salt_len, unsigned long rounds)
{
	struct kdf k;

	kdf_start(&k, pw, pw_len, salt, salt_len, rounds);
	kdf_run(&k, rounds);
	memcpy(out, k.out, 32);
	wipe(&k, sizeof k);
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

/* The implementations in use: set by crypto_select() and cipher use(). */
static const br_block_ctr_class *aes_impl;
static br_ghash ghash_impl;
static br_chacha20_run chacha_impl;
static br_poly1305_run poly_impl;

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
static void chapoly_init(struct dir *d, const unsigned char *k, size_t n)
{
	memcpy(d->k.chapoly.key, k, n);
	d->k.chapoly.chacha = chacha_impl;
	d->k.chapoly.poly = poly_impl;
}

static void chapoly_seal(struct dir *d, const unsigned char *nonce,
		    const void *aad, size_t aad_len, unsigned char *data,
		    size_t len, unsigned char *tag)
{
	d->k.chapoly.poly(d->k.chapoly.key, nonce, data, len, aad, aad_len, tag,
		     d->k.chapoly.chacha, 1);
}

/* The runner decrypts and computes the tag; we compare it. */
static int chapoly_open(struct dir *d, const unsigned char *nonce,
		   const void *aad, size_t aad_len, unsigned char *data,
		   size_t len, const unsigned char *tag)
{
	unsigned char t[16];
	int ok;

	d->k.chapoly.poly(d->k.chapoly.key, nonce, data, len, aad, aad_len, t,
		     d->k.chapoly.chacha, 0);
	ok = ct_equal(t, tag, 16);
	wipe(t, sizeof t);
	return ok;
}

/*
 * Implementation tables, fastest first. A row's get() returns NULL where
 * the CPU or the build lacks that code. A 64-bit build carries the 64-bit
 * portable code and a 32-bit build the 32-bit code (x32 counts as 32-bit):
 * on each, the other would be slower and never picked, and routers count
 * every kilobyte. The last row of each table that this build has runs
 * everywhere (with INT128, ctmulq does). BearSSL's sse2 ChaCha20 is left
 * out: it measured slower than the portable code on x86-64 (271 against
 * 446 MB/s with -B).
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
	{"ctmul", NULL, INT128 ? NULL : br_poly1305_ctmul_run},
};

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

static const char *chapoly_use(size_t i, int *ok)
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
static int chapoly_kat(void)
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
	chapoly_init(&d, k, 32);
	memcpy(buf, p, 114);
	chapoly_seal(&d, iv, aad, 12, buf, 114, tag);
	bad |= memcmp(buf, c, 114) || memcmp(tag, c + 114, 16);
	bad |= !chapoly_open(&d, iv, aad, 12, buf, 114, c + 114) ||
	       memcmp(buf, p, 114);
	memcpy(buf, c, 114);
	aad[3] ^= 1;
	bad |= chapoly_open(&d, iv, aad, 12, buf, 114, c + 114) != 0;
	aad[3] ^= 1;
	c[17] ^= 4;
	bad |= chapoly_open(&d, iv, aad, 12, c, 114, c + 114) != 0;
	wipe(&d, sizeof d);
	return !bad;
}

static const struct cipher ciphers[] = {
	{"aes", "aes-gcm", 1, 0, gcm_init, gcm_seal, gcm_open, gcm_use,
	 gcm_kat},
	{"chacha20", "chacha20-poly1305", 2, 32, chapoly_init, chapoly_seal, chapoly_open,
	 chapoly_use, chapoly_kat},
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

static const char *send_label = IS_CLIENT ? "gstunnel2 c2s" : "gstunnel2 s2c";
static const char *recv_label = IS_CLIENT ? "gstunnel2 s2c" : "gstunnel2 c2s";

/* Move a direction's key forward: secret, key and IV all come from
 * HKDF(salt = old secret, ikm, label); ikm is empty for the first step and
 * sk (the stretched KEY) || the X25519 result dh for a rotation; sk_len,
 * the raw KEY's length, sets the AES key length. The old secret is
 * overwritten. */
static void dir_step(struct dir *d, const unsigned char *sk, size_t sk_len,
		     const unsigned char *dh, const char *label)
{
	unsigned char out[32 + 32 + 12];
	size_t kl = d->cipher->key_len ? d->cipher->key_len : sk_len;

	hkdf(out, 32 + kl + 12, d->secret, 32, sk, dh ? 32 : 0, dh,
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

/* The record layer as used on the wire, with cipher cs: seal, open, and
 * refuse a record with one flipped bit, a wrong record number or a changed
 * length. */
static int selftest_records(const struct cipher *cs)
{
	static struct dir a, b; /* static: a dir holds AES round keys */
	unsigned char r0[3 + 100 + REC_TAG], r[sizeof r0];
	size_t i, n;
	int ok = 1;

	for (i = 0; i < 32; i++)
		a.secret[i] = b.secret[i] = (unsigned char)i;
	a.seq = b.seq = 0;
	a.cipher = b.cipher = cs;
	dir_step(&a, a.secret, 32, NULL, send_label);
	dir_step(&b, b.secret, 32, NULL, send_label);
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
		       use_rdrand ? "on" : "off", os_random_name());
	return bad;
}

/* At every start: RDRAND where the CPU has it (and GSTUNNEL_NO_RDRAND
 * does not say no), an OS source that works, each cipher's fastest code
 * here, and its known answers (unless -S tests them all). */
static void crypto_start(void)
{
	const char *env = getenv("GSTUNNEL_NO_RDRAND");
	unsigned char probe[16];

	if ((env && *env && strcmp(env, "0")) || !rdrand_supported())
		use_rdrand = 0;
	if (os_random(probe, sizeof probe) < 0)
		die(1, "no working OS random source (%s): refusing to run",
		    WINDOWS ? "BCryptGenRandom" : "getrandom, /dev/urandom");
	wipe(probe, sizeof probe);
	crypto_select();
	if (!cli.selftest && selftest(0))
		die(1, "crypto self-test failed: refusing to run");
}

/* -B: seal 16 KiB records with each implementation pair for BENCH_MS
 * (fixed key and nonce: nothing here is secret), count X25519 operations,
 * and name the faster -c with the code it would use. Integer MB/s. */
static void bench(void)
{
	static unsigned char r[REC_WIRE_MAX];
	static struct dir d;
	static const unsigned char k[32], nonce[12];
	unsigned long mbs[COUNT(ciphers)], v, done, ms;
	int64_t t0;
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
				done++; /* 16 KiB records: MB/s = done
					 * * 16.384 / ms */
			} while ((ms = (unsigned long)(clock_ms() - t0)) <
				 BENCH_MS);
			v = done * 16384 / 1000 / ms;
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
	} while ((ms = (unsigned long)(clock_ms() - t0)) < 2 * BENCH_MS);
	say(1, "x25519 m31 %25lu operations/s\n", done * 1000 / ms);
	for (c = 1; c < COUNT(ciphers); c++)
		if (mbs[c] > mbs[best])
			best = c;
	say(1, "faster here: -c %s (%s %s, %lu MB/s)\n", ciphers[best].name,
	       ciphers[best].aead, cipher_code[best], mbs[best]);
}

/* ==== keys ============================================================== */

/* key: KEY stretched by PBKDF2 (the raw KEY is wiped at once); key_len:
 * the raw KEY's length, which picks AES-128/192/256 */
static unsigned char key[32], hello_key[32];
static size_t key_len;

/*
 * KEY is stretched once (PBKDF2, KDF_ROUNDS) into key, and the hello key
 * comes from that: every key of the protocol comes from the stretched
 * one, so a recorded hello costs a guesser that much per guess. The raw
 * KEY is wiped as soon as the stretching has started.
 */
#define KEY_SALT "gstunnel2 key"

/* The raw KEY the settings name, into raw (*n bytes): the argument, the
 * config file's key, a key file (one trailing newline ignored; '-':
 * standard input), or GSTUNNEL_KEY. 1 when there is one, with its length
 * checked; 0 on a reload whose KEY came from argv, standard input or the
 * environment, which are read once (it stays as it was); -1 with errbuf.
 * GSTUNNEL_KEY is wiped at start whatever gives the KEY. */
static int key_read(const struct settings *s, int start, unsigned char raw[64],
		    size_t *n)
{
	const char *from = cli.key ? "argument" : "config file";
	char *env = getenv("GSTUNNEL_KEY"), *buf;
	size_t env_len = start && env ? strlen(env) : 0;

	*n = 0;
	if (env_len) { /* gone from /proc/PID/environ from here on */
		fmt((char *)raw, 64, "%s", env);
		wipe(env, env_len);
	}
	if (s->key && (start || !cli.key)) {
		fmt((char *)raw, 64, "%s", s->key);
		*n = strlen(s->key);
	} else if (s->key_file && (start || strcmp(s->key_file, "-"))) {
		from = "file";
		if (!(buf = file_read(s->key_file, 64, n)))
			return -1;
		memcpy(raw, buf, *n);
		wipe(buf, *n);
		free(buf);
		if (*n && raw[*n - 1] == '\n' && --*n && raw[*n - 1] == '\r')
			--*n;
	} else if (s->key || s->key_file || !start) {
		return 0;
	} else if (env_len) {
		from = "GSTUNNEL_KEY";
		*n = env_len;
	} else {
		fmt(errbuf, sizeof errbuf, "missing KEY: give it as an "
		    "argument, with -k FILE, in GSTUNNEL_KEY or in the config "
		    "file");
		return -1;
	}
	if (*n >= 64)
		fmt(errbuf, sizeof errbuf, "bad KEY (%s): too long; it must "
		    "be exactly 16, 24 or 32 bytes", from);
	else if (*n != 16 && *n != 24 && *n != 32)
		fmt(errbuf, sizeof errbuf, "bad KEY (%s): %lu bytes; it must "
		    "be exactly 16, 24 or 32 bytes (AES-128/192/256)", from,
		    (unsigned long)*n);
	return *n == 16 || *n == 24 || *n == 32 ? 1 : -1;
}

/*
 * Whether a KEY of n bytes looks typed rather than random, judged by
 * what a random string of its alphabet would look like. The alphabet is
 * the classes of bytes it uses (hex digits 16; else digits 10, lower 26,
 * upper 26, other printable 33, the rest 161). Weak: under 80 bits by
 * length times log2(alphabet); or fewer distinct bytes than 3/5 of what a
 * random string has on average; or more neighbours equal or one apart
 * (runs: abcd, 1234, aaaa) than twice what a random one has, and four. A
 * dictionary passphrase can pass; a -g
 * key never fails (key_generate makes sure). Integers only.
 */
static int key_weak(const unsigned char *k, size_t n)
{
	unsigned char seen[256];
	unsigned long e = 0, a = 0, bits, top;
	size_t i, distinct = 0, runs = 0, hex = 0, cls[5] = {0};

	memset(seen, 0, sizeof seen);
	for (i = 0; i < n; i++) {
		distinct += !seen[k[i]]++;
		hex += strchr("0123456789abcdef", k[i] | 32) && k[i];
		cls[k[i] >= '0' && k[i] <= '9' ? 0 : k[i] >= 'a' && k[i] <= 'z' ?
		    1 : k[i] >= 'A' && k[i] <= 'Z' ? 2 : k[i] > ' ' &&
		    k[i] < 127 ? 3 : 4]++;
		runs += i && (k[i] == k[i - 1] || k[i] == k[i - 1] + 1 ||
			      k[i] + 1 == k[i - 1]);
	}
	if (hex == n && (cls[1] == 0 || cls[2] == 0))
		a = 16;
	else
		a = (cls[0] ? 10 : 0) + (cls[1] ? 26 : 0) + (cls[2] ? 26 : 0) +
		    (cls[3] ? 33 : 0) + (cls[4] ? 161 : 0);
	for (top = 1, bits = 0; top * 2 <= a; top *= 2) /* log2, 16ths */
		bits += 16;
	bits = (bits + 16 * (a - top) / top) * n / 16;
	for (i = 0; i < n; i++) /* expected distinct bytes, 1024ths */
		e += (a * 1024 - e) / a;
	return bits < 80 || distinct * 1024 * 5 < e * 3 ||
	       runs * a > 6 * (n - 1) + 4 * a;
}

/* The stretched KEY in k->out goes into use, and the hello key with it. */
static void key_use(struct kdf *k, size_t len)
{
	memcpy(key, k->out, 32);
	hkdf(hello_key, 32, "gstunnel2", 9, key, 32, NULL, 0,
	     "gstunnel2 client hello");
	key_len = len;
	wipe(k, sizeof *k);
}

/* At start: the KEY, stretched in one go (the loop does not run yet). */
static int key_load(void)
{
	unsigned char raw[64];
	struct kdf k;
	size_t n;

	if (key_read(&cfg, 1, raw, &n) < 0) {
		wipe(raw, sizeof raw);
		return -1;
	}
	if (key_weak(raw, n))
		logmsg(NULL, "warning: KEY does not look random (a password?): "
		       "one recorded handshake lets anyone test guesses at it "
		       "offline, at 100000 PBKDF2 rounds each; make one with "
		       "-g");
	kdf_start(&k, raw, n, KEY_SALT, sizeof KEY_SALT - 1, KDF_ROUNDS);
	wipe(raw, sizeof raw);
	kdf_run(&k, KDF_ROUNDS);
	key_use(&k, n);
	return 0;
}

/* -g: 32 characters from [A-Za-z0-9], about 190 bits. */
static void key_generate(void)
{
	static const char abc[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
	unsigned char r[128];
	char out[33];
	size_t i, n = 0;

	while (n < 32 || key_weak((unsigned char *)out, 32)) {
		n %= 32; /* a rare weak-looking one: draw again */
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

/* ==== handshake ========================================================= */

static const char *hs_closed = "authentication failed: the server closed the "
			       "link in the handshake (wrong key?)";

/*
 * Strangers cannot lock clients out. A server takes as many connections
 * not yet authenticated as -n and its fds allow (unauth_cap): all of them
 * if need be. At that cap, at -n, or out of fds, a new connection takes
 * the place of the oldest stranger whose hello has not proved KEY
 * (strangers, on ln[1]); only when there is none, of the oldest one
 * whose hello has, and that waits for its ClientFinished (provers). A
 * source (an IPv4 address, or an IPv6 /64) that holds half of the
 * unauthenticated connections while others hold the rest gets no more at
 * the cap: its new connection goes instead. Sources are counted in the
 * SRC_BUCKETS buckets of a hash, not in a table per address (two that
 * share a bucket count as one).
 */
#define SRC_BUCKETS 1024
static struct list strangers, provers;
static unsigned src_count[SRC_BUCKETS];
static int unauth_cap = 1;

/* The server's connections not yet authenticated; the client has none. */
static int unauth(void)
{
	return IS_CLIENT ? 0 : strangers.n + provers.n;
}

/* The bucket of the source address a (FNV-1a of its address or /64). */
static unsigned src_bucket(const struct sockaddr *a)
{
	const unsigned char *p = (const unsigned char *)&((const struct
		sockaddr_in *)(const void *)a)->sin_addr;
	uint32_t h = 2166136261u;
	size_t i, n = 4;

	if (a->sa_family == AF_INET6) {
		p = ((const struct sockaddr_in6 *)(const void *)a)->sin6_addr
		    .s6_addr;
		n = 8;
	}
	for (i = 0; i < n; i++)
		h = (h ^ p[i]) * 16777619u;
	return h % SRC_BUCKETS;
}

/* c is authenticated, or gone: it counts as a stranger no more. */
static void unauth_end(struct conn *c)
{
	if (c->flags & F_UNAUTH) {
		c->flags &= ~F_UNAUTH;
		src_count[c->src]--;
		list_del(c, 1);
	}
}

/*
 * Both sides, once the client hello (ch) and the server hello's first 33
 * bytes (sh: cipher and public key) are known and dh is computed: the
 * transcript hash, the finished MACs and both directions' first keys.
 */
static void handshake_keys(struct conn *c, const struct cipher *cs,
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
	br_sha256_update(&h, sh, SH_MAC);
	br_sha256_out(&h, th);
	memcpy(c->sk, key, 32); /* this connection's, whatever SIGHUP does */
	c->sk_len = (unsigned char)key_len;
	hkdf(out, sizeof out, th, 32, key, 32, dh, 32, "gstunnel2 handshake");
	hmac_sha256(s_mac, out, 32, th, 32, NULL, 0);
	hmac_sha256(c_mac, out + 32, 32, th, 32, NULL, 0);
	memcpy(c2s->secret, out + 64, 32);
	memcpy(s2c->secret, out + 96, 32);
	c2s->cipher = s2c->cipher = cs;
	dir_step(c2s, c->sk, c->sk_len, NULL, "gstunnel2 c2s");
	dir_step(s2c, c->sk, c->sk_len, NULL, "gstunnel2 s2c");
	c->rotated = now;
	wipe(out, sizeof out);
	wipe(th, sizeof th);
}

/* Client: build the hello; a copy stays in c->hs for the transcript. */
static int client_hello(struct conn *c)
{
	unsigned char *p = c->hs;
	ssize_t n;

	if (eph_take(c->eph, p + CH_XC) < 0)
		return fail(c, "no randomness");
	p[CH_VERSION] = PROTO_VERSION;
	p[CH_CID] = cipher->id;
	hmac_sha256(p + CH_MAC, hello_key, 32, p, CH_MAC, NULL, 0);
	/* A fresh socket's send buffer always takes 66 bytes at once. */
	n = sock_send(c->link, p, CLIENT_HELLO_LEN, MSG_NOSIGNAL);
	if (n != CLIENT_HELLO_LEN)
		return fail(c, "server: %s", n < 0 ? os_strerror(errno) :
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

	if (p[SH_CID] != cipher->id) {
		wipe(c->eph, 32);
		hmac_sha256(s_mac, hello_key, 32, c->hs, CLIENT_HELLO_LEN, p,
			    SH_MAC);
		if (!ct_equal(s_mac, p + SH_MAC, 32))
			return auth_fail(c, "bad server hello");
		theirs = cipher_by_id(p[SH_CID]);
		return fail(c, "the server refused cipher %s: it takes only "
			    "%s (its -c)", cipher->name, theirs ?
			    theirs->name : "one unknown to us");
	}
	if (x25519(dh, c->eph, p + SH_XS) < 0) {
		wipe(c->eph, 32);
		return auth_fail(c, "bad server hello");
	}
	wipe(c->eph, 32);
	handshake_keys(c, cipher, c->hs, p, dh, s_mac, c_mac);
	ok = ct_equal(s_mac, p + SH_MAC, 32);
	wipe(dh, 32);
	wipe(s_mac, 32);
	if (!ok) {
		wipe(c_mac, 32);
		return auth_fail(c, "bad server proof (wrong key?)");
	}
	q = c->tx.p + c->tx.len; /* tx is empty and allocated here */
	memcpy(q, c_mac, 32);
	c->tx.len += 32;
	wipe(c_mac, 32);
	if (verbose)
		logmsg(c, "handshake done");
	/* OPEN now, in the same write, or when an application comes */
	return c->plain < 0 ? link_ready(c) : link_open(c);
}

/* Server: a client asked for cipher cs while -c says another. Tell it, in
 * a hello that names ours and is proven with the hello key, then close
 * without a reset (which could drop the answer). Returns -2 for that. */
static int server_refuse(struct conn *c, const struct cipher *cs)
{
	unsigned char sh[SERVER_HELLO_LEN];

	memset(sh, 0, sizeof sh);
	sh[SH_CID] = cipher->id;
	hmac_sha256(sh + SH_MAC, hello_key, 32, c->hs, CLIENT_HELLO_LEN, sh,
		    SH_MAC);
	sock_send(c->link, sh, sizeof sh, MSG_NOSIGNAL);
	fail(c, "refused the client's cipher %s: this server takes only %s "
	     "(-c)", cs ? cs->name : "(unknown)", cipher->name);
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
	const struct cipher *cs;
	ssize_t n;

	n = sock_recv(c->link, p + c->hs_len, need - c->hs_len, 0);
	if (n == 0) {
		if (verbose)
			logmsg(c, "peer closed before the handshake ended");
		return -1;
	}
	if (n < 0)
		return errno == EAGAIN || errno == EWOULDBLOCK ||
		       errno == EINTR ? 0 : fail(c, "link: %s",
						 os_strerror(errno));
	c->hs_len = (unsigned char)(c->hs_len + n);
	if (c->state == S_HELLO && p[CH_VERSION] != PROTO_VERSION) {
		c->why = W_AUTH; /* at once */
		return fail(c, "bad hello: protocol version %u, we speak %u",
			    p[CH_VERSION], PROTO_VERSION);
	}
	if (c->hs_len < need)
		return 0;
	c->hs_len = 0;
	if (c->state == S_FINISH) {
		if (!ct_equal(c->hs, c->hs + 32, 32))
			return auth_fail(c, "bad client finished "
					 "(replayed hello?)");
		wipe(c->hs, sizeof c->hs);
		unauth_end(c);
		return link_ready(c); /* the target waits for OPEN */
	}
	hmac_sha256(sh, hello_key, 32, p, CH_MAC, NULL, 0);
	if (!ct_equal(sh, p + CH_MAC, 32))
		return auth_fail(c, "bad client hello (wrong key?)");
	cs = cipher_by_id(p[CH_CID]); /* authenticated: it asked for it */
	if (!cs || (cipher_forced && cs != cipher))
		return server_refuse(c, cs);
	if (eph_take(c->eph, sh + SH_XS) < 0)
		return fail(c, "no randomness");
	sh[SH_CID] = cs->id;
	n = x25519(dh, c->eph, p + CH_XC);
	wipe(c->eph, 32);
	if (n < 0)
		return fail(c, "bad hello: weak public key");
	handshake_keys(c, cs, p, sh, dh, sh + SH_MAC, c_mac);
	memcpy(c->hs, c_mac, 32); /* the expected client finished */
	wipe(c_mac, 32);
	wipe(dh, 32);
	/* A fresh socket's send buffer always takes 65 bytes at once. */
	n = sock_send(c->link, sh, sizeof sh, MSG_NOSIGNAL);
	if (n != (ssize_t)sizeof sh)
		return fail(c, "link: %s", n < 0 ? os_strerror(errno) :
			    "short write");
	if (verbose)
		logmsg(c, "cipher %s", cs->name);
	c->state = S_FINISH;
	list_put(&provers, c, 1); /* it knows KEY, it seems */
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
	st->rotations += d == &c->send; /* both keys move: count one */
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
		dir_step(&c->recv, c->sk, c->sk_len, c->dh, recv_label);
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
		dir_step(&c->recv, c->sk, c->sk_len, c->dh, recv_label);
		wipe(c->dh, 32);
		c->flags &= ~F_WAIT_SWITCH;
		rotated(c, &c->recv, "receive");
		return 0;
	}
	return fail(c, "unexpected record type %d", type);
}

/* ==== connection I/O ==================================================== */

static const char *plain_name = IS_CLIENT ? "app" : "target";

/*
 * Every TCP socket: no Nagle, and keepalive as -K says, so that a peer that
 * vanished is found in about IDLE + INTERVAL * COUNT seconds. Not
 * TCP_USER_TIMEOUT: it also ends a connection whose peer merely stops
 * reading (a zero window) for that long, and a paused application is no
 * dead peer. Then non-blocking: -1 if that fails.
 */
static int set_tcp_options(int fd)
{
	int one = 1;

	sock_setopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	sock_keepalive(fd, cfg.keepalive);
	return sock_nonblock(fd);
}

/*
 * The memory budget (-M): every buffer counts against mem_used, and past
 * mem_budget buffers do not grow and no stream gets a new one: it waits,
 * unread (TCP slows its sender down), on mem_waiters (ln[0], free while a
 * connection is open), until a buffer is freed. Only a handshake and a
 * control record (a rotation) may take a buffer past the budget, so that
 * no key exchange stalls; those are few and short.
 */
static size_t mem_used;
static struct list mem_waiters;

/* A buffer for b: 0 when it has one, 1 when c must wait for memory (it
 * is then on mem_waiters, with what it waits for in flags: F_MEM_TX or
 * F_MEM_RX), -1 when malloc fails. must: a handshake or control record. */
static int buf_alloc(struct conn *c, struct buf *b, int must)
{
	if (b->p)
		return 0;
	if (!must && mem_used + BUF_SIZE > mem_budget) {
		c->flags |= b == &c->tx ? F_MEM_TX : F_MEM_RX;
		list_put(&mem_waiters, c, 0);
		return 1;
	}
	if (!(b->p = malloc(BUF_SIZE)))
		return fail(c, "out of memory");
	b->cap = BUF_SIZE;
	mem_used += BUF_SIZE;
	return 0;
}

/* A stream that keeps its buffer full gets a bigger one, up to BUF_MAX,
 * within the budget: more records per system call. It shrinks back when
 * the buffer is freed (idle). Not realloc(): the old one is wiped. Failing
 * to grow is no error. */
static void buf_grow(struct buf *b)
{
	size_t cap = b->cap * 2 > BUF_MAX ? BUF_MAX : b->cap * 2;
	unsigned char *q;

	if (cap > b->cap && mem_used + cap - b->cap <= mem_budget &&
	    (q = malloc(cap))) {
		memcpy(q, b->p, b->len);
		wipe(b->p, b->cap);
		free(b->p);
		mem_used += cap - b->cap;
		b->p = q;
		b->cap = cap;
	}
}

/* Free b; the memory goes to the first connection that waits for it. */
static void buf_free(struct buf *b)
{
	struct conn *c = mem_waiters.head;

	if (b->p) {
		wipe(b->p, b->cap);
		free(b->p);
		mem_used -= b->cap;
	}
	memset(b, 0, sizeof *b);
	if (c && mem_used + BUF_SIZE <= mem_budget) {
		list_del(c, 0);
		c->flags &= ~(F_MEM_TX | F_MEM_RX);
		conn_settle(c, 0); /* it asks to read again */
	}
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
	int r;

	if (c->tx.off == c->tx.len)
		c->tx.off = c->tx.len = 0;
	if ((c->flags & F_CONTROL) && buf_alloc(c, &c->tx, 1) < 0)
		return -1;
	while ((c->flags & F_CONTROL) && c->tx.cap - c->tx.len >= REC_CTRL_MAX) {
		p = c->tx.p + c->tx.len;
		if (c->flags & F_SEND_SWITCH) {
			c->tx.len += rec_seal(&c->send, p, REC_SWITCH, 0);
			dir_step(&c->send, c->sk, c->sk_len, c->dh, send_label);
			wipe(c->dh, 32);
			c->flags &= ~F_SEND_SWITCH;
			rotated(c, &c->send, "send");
		} else if (c->flags & F_SEND_ACCEPT) {
			memcpy(p + 3, c->pub, 32);
			c->tx.len += rec_seal(&c->send, p, REC_ACCEPT, 32);
			dir_step(&c->send, c->sk, c->sk_len, c->dh, send_label);
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
	if ((r = buf_alloc(c, &c->tx, 0)))
		return r == 1 ? 0 : -1;
	for (at = c->tx.len, n_iov = 0; c->tx.cap - at >= REC_WIRE_MAX &&
	     n_iov < COUNT(iov); at += REC_WIRE_MAX, n_iov++) {
		iov[n_iov].iov_base = c->tx.p + at + 3;
		iov[n_iov].iov_len = REC_PAYLOAD_MAX;
		total += REC_PAYLOAD_MAX;
	}
	if (!n_iov)
		return 0;
	n = sock_readv(c->plain, iov, (int)n_iov);
	if (n < 0) {
		c->tx.hot = 0;
		return again() ? 0 : fail(c, "%s: %s", plain_name,
					  os_strerror(errno));
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
	*(IS_CLIENT ? &st->c2s : &st->s2c) += (uint64_t)n;
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
		n = sock_send(c->link, c->tx.p + c->tx.off, c->tx.len - c->tx.off,
			 MSG_NOSIGNAL);
		if (n < 0)
			return again() ? 0 : fail(c, "link: %s",
						  os_strerror(errno));
		c->tx.off += (size_t)n;
	}
	c->tx.off = c->tx.len = 0;
	return 0;
}

static int link_read(struct conn *c)
{
	ssize_t n;
	size_t room;

	if ((n = buf_alloc(c, &c->rx, c->state != S_OPEN)))
		return n == 1 ? 0 : -1;
	room = c->rx.cap - c->rx.len;
	if (!room)
		return 0;
	n = sock_recv(c->link, c->rx.p + c->rx.len, room, 0);
	if (n < 0) {
		c->rx.hot = 0;
		if (again())
			return 0;
		if (c->state != S_HELLO)
			return fail(c, "link: %s", os_strerror(errno));
		c->why = W_AUTH;
		return fail(c, "%s (%s)", hs_closed, os_strerror(errno));
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
			n = sock_writev(c->plain, iov, (int)n_iov);
			if (n < 0)
				return again() ? 0 : fail(c, "%s: %s",
							  plain_name,
							  os_strerror(errno));
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
		if (sock_shutdown(c->plain, SHUT_WR) < 0 && errno != ENOTCONN)
			return fail(c, "%s: %s", plain_name, os_strerror(errno));
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
		if (IS_CLIENT && c->state == S_HELLO) {
			if (avail < SERVER_HELLO_LEN)
				break;
			if (buf_alloc(c, &c->tx, 1) < 0 ||
			    client_finish(c, p) < 0)
				return -1;
			c->rx.off += SERVER_HELLO_LEN;
			c->out_off = c->rx.off;
			continue;
		}
		if ((c->state != S_OPEN && c->state != S_READY) ||
		    avail < REC_HEAD)
			break;
		len = (size_t)p[0] << 8 | p[1];
		if (len < 1 || len > 1 + REC_PAYLOAD_MAX)
			return fail(c, "bad record length %lu",
				    (unsigned long)len);
		if (avail < REC_HEAD + len + REC_TAG)
			break;
		if (c->recv.seq == UINT64_MAX - 1)
			return fail(c, "record numbers exhausted");
		if (rec_open(&c->recv, p, len) < 0) {
			c->why = W_AUTH;
			return fail(c, "authentication failed: record %llu "
				    "does not verify (tampered?)",
				    (unsigned long long)c->recv.seq - 1);
		}
		c->rx.off += REC_HEAD + len + REC_TAG;
		type = p[2];
		len--;
		if (c->state == S_READY) { /* only the server's OPEN */
			if (IS_CLIENT || type != REC_OPEN)
				return fail(c, "record type %d on a link not "
					    "opened", type);
			if (link_opened(c, p + 3, len) < 0)
				return -1;
			c->out_off = c->rx.off;
			continue;
		}
		if ((c->flags & F_RX_EOF) && (IS_CLIENT || type == REC_DATA ||
					      type == REC_EOF))
			return fail(c, "record after end of stream");
		if (type == REC_DATA && len) {
			c->rot_bytes += len;
			*(IS_CLIENT ? &st->s2c : &st->c2s) += len;
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

/* ==== name lookup ======================================================= */

/*
 * Not getaddrinfo(): in a static musl binary it costs some 18 KB (stdio,
 * qsort, strtol...), and it blocks. What a tunnel needs is little:
 * literals, /etc/hosts and A/AAAA over UDP to the nameservers of
 * /etc/resolv.conf. A lookup is a struct query that the loop drives
 * (query_start, then query_read when its sockets are readable and
 * query_step when its time comes, see "servers and targets"); lookup()
 * drives one alone, for LISTEN and -m at start. On Windows (OS_RESOLVER)
 * the system's getaddrinfo() does it all, at once, holding the loop.
 */
#ifndef HOSTS_PATH
#define HOSTS_PATH	"/etc/hosts"
#endif
#ifndef RESOLV_PATH
#define RESOLV_PATH	"/etc/resolv.conf"
#endif
#ifndef RESOLVE_MS
#define RESOLVE_MS	5000	/* a whole lookup, however many servers */
#endif
#define LOOKUP_ROUND_MS	1000	/* then ask every nameserver again */
#define LOOKUP_MAX	32	/* addresses kept for one name */
#define LOOKUP_READS	16	/* datagrams read per wakeup: no flood holds
				 * the loop */

union lookup_sa {
	struct sockaddr		sa;
	struct sockaddr_in	v4;
	struct sockaddr_in6	v6;
};

/* A result: the addrinfo and its sockaddr in one malloc(). */
struct lookup_node {
	struct addrinfo	ai;
	union lookup_sa	sa;
};

struct query {
	union lookup_sa	ns[3];	/* the nameservers */
	int		nns;
	int		fd[2];	/* UDP to the IPv4, the IPv6 ones; -1: none */
	unsigned char	ev[2];	/* their interest (see "events") */
	int		tok;	/* and their first token */
	int64_t		end;	/* when the whole lookup gives up */
	int64_t		next;	/* when the unanswered are asked again */
	int		done;	/* answered: 1 the A query, 2 the AAAA one */
	int		last;	/* the name itself has been asked */
	unsigned char	id[4];	/* IDs of the A and the AAAA query */
	unsigned char	q[12 + 255 + 4];	/* the query */
	size_t		ql;	/* its length */
	struct addrinfo	*l;	/* the result */
	const char	*host;	/* the name (the caller's) */
	unsigned	port;
	char		*conf;	/* resolv.conf as read */
	char		*search; /* its search domains not yet tried */
};

static void addrs_free(struct addrinfo *ai)
{
	struct addrinfo *next;

	if (OS_RESOLVER) {
		os_resolve_free(ai);
		return;
	}
	for (; ai; ai = next) {
		next = ai->ai_next;
		free(ai);
	}
}

/* Set *sa to address a (4 or 16 bytes) of family af and port; all else 0,
 * so that two of them compare with memcmp(). */
static void lookup_sa(union lookup_sa *sa, int af, const void *a,
		      unsigned port)
{
	memset(sa, 0, sizeof *sa);
	sa->sa.sa_family = (sa_family_t)af;
	if (af == AF_INET) {
		sa->v4.sin_port = htons((uint16_t)port);
		memcpy(&sa->v4.sin_addr, a, 4);
	} else {
		sa->v6.sin6_port = htons((uint16_t)port);
		memcpy(&sa->v6.sin6_addr, a, 16);
	}
}

/* The family of the address literal s, its bytes in a; 0 if none. */
static int lookup_literal(const char *s, void *a)
{
	if (inet_pton(AF_INET, s, a) == 1)
		return AF_INET;
	return inet_pton(AF_INET6, s, a) == 1 ? AF_INET6 : 0;
}

/* Add an address to the list *l: IPv4 after the other IPv4 ones, IPv6 at
 * the end. Duplicates (a name twice in /etc/hosts, a record in two
 * replies) and any beyond LOOKUP_MAX are dropped; so is the address if
 * memory runs out, which then shows as "no address". */
static void lookup_add(struct addrinfo **l, int af, const void *a,
		       unsigned port)
{
	struct lookup_node *n = calloc(1, sizeof *n);
	struct addrinfo **at = NULL;
	int i;

	if (!n)
		return;
	lookup_sa(&n->sa, af, a, port);
	n->ai.ai_family = af;
	n->ai.ai_socktype = SOCK_STREAM;
	n->ai.ai_addr = &n->sa.sa;
	n->ai.ai_addrlen = af == AF_INET ? sizeof n->sa.v4 : sizeof n->sa.v6;
	for (i = 0; *l && memcmp((*l)->ai_addr, &n->sa, sizeof n->sa); i++) {
		if (!at && af == AF_INET && (*l)->ai_family != AF_INET)
			at = l;
		l = &(*l)->ai_next;
	}
	if (*l || i >= LOOKUP_MAX) {
		free(n);
		return;
	}
	at = at ? at : l;
	n->ai.ai_next = *at;
	*at = &n->ai;
}

/* The next line of the text at *s, its comment cut; NULL at the end. */
static char *lookup_line(char **s)
{
	char *l = field(s, "\n");

	if (l)
		l[strcspn(l, "#;")] = 0;
	return l;
}

/* The next blank-separated word at *s; NULL if none. */
static char *lookup_word(char **s)
{
	char *w;

	while ((w = field(s, " \t\r")) && !*w)
		;
	return w;
}

/* Whether word w is the n bytes of name s, ASCII case not counting. */
static int lookup_is(const char *w, const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (w[i] != s[i] && ((w[i] | 32) != (s[i] | 32) ||
		    (unsigned)((w[i] | 32) - 'a') > 'z' - 'a'))
			return 0;
	return !w[n];
}

/* /etc/hosts: lines "address name aliases..."; every address of name (of
 * n bytes, without a final dot). */
static void lookup_hosts(struct addrinfo **l, const char *name, size_t n,
			 unsigned port)
{
	unsigned char a[16];
	size_t len;
	char *buf = file_read(HOSTS_PATH, 1 << 20, &len), *s = buf, *line, *w;
	int af;

	while (s && (line = lookup_line(&s)))
		if ((w = lookup_word(&line)) && (af = lookup_literal(w, a)))
			while ((w = lookup_word(&line)))
				if (lookup_is(w, name, n)) {
					lookup_add(l, af, a, port);
					break;
				}
	free(buf);
}

/* Append the labels of s (a final dot allowed) to the name of *n bytes at
 * q. -1 if it is no host name: an empty label or one over 63 bytes, over
 * 253 characters (255 bytes in a query), or a character that has no
 * place in a name and would only confuse. */
static int dns_name(unsigned char *q, size_t *n, const char *s)
{
	size_t l, i;
	unsigned char c;

	for (; *s; s += l + (s[l] == '.')) {
		l = strcspn(s, ".");
		if (!l || l > 63 || *n + l + 2 > 255)
			return -1;
		q[(*n)++] = (unsigned char)l;
		for (i = 0; i < l; i++) {
			c = (unsigned char)s[i];
			if ((unsigned)((c | 32) - 'a') > 'z' - 'a' &&
			    (unsigned)(c - '0') > 9 && c != '-' && c != '_' &&
			    c < 128)
				return -1;
			q[(*n)++] = c;
		}
	}
	return 0;
}

/* Whether host is an address literal or a name we could ask for. */
static int host_ok(const char *host)
{
	unsigned char q[256 + 16];
	size_t n = 0;

	return lookup_literal(host, q) || (*host && dns_name(q, &n, host) == 0);
}

/* Offset just past the name at p of the message m of n bytes, 0 if it
 * runs off the end. A compression pointer ends the name where it stands:
 * no name is read, so no pointer is followed and none can loop. */
static size_t dns_skip(const unsigned char *m, size_t n, size_t p)
{
	while (p < n) {
		if (m[p] >= 0xc0)
			return p + 2 <= n ? p + 2 : 0;
		if (m[p] >= 0x40)	/* reserved label types */
			return 0;
		if (!m[p])
			return p + 1;
		p += m[p] + 1u;
	}
	return 0;
}

/* Whether a datagram from f is from a nameserver: its family, address and
 * port 53; the rest of a sockaddr (flow, scope) does not count. */
static int dns_from_ns(const struct query *d, const union lookup_sa *f)
{
	const union lookup_sa *s;
	int i;

	for (i = 0; i < d->nns; i++) {
		s = &d->ns[i];
		if (f->sa.sa_family == s->sa.sa_family &&
		    (f->sa.sa_family == AF_INET ?
		    f->v4.sin_port == s->v4.sin_port &&
		    f->v4.sin_addr.s_addr == s->v4.sin_addr.s_addr :
		    f->v6.sin6_port == s->v6.sin6_port &&
		    !memcmp(&f->v6.sin6_addr, &s->v6.sin6_addr, 16)))
			return 1;
	}
	return 0;
}

/*
 * A reply m of n bytes from a nameserver: which query it answers (1: A,
 * 2: AAAA), after it has taken every A and AAAA record of class IN in
 * the answer section; 0 if it is none of ours. Its ID, QR bit and whole
 * question must match, or it may be forged. The owners of the records
 * are not checked (a CNAME chain names others), as in musl. A cut reply
 * (TC, or longer than m) gives what it holds.
 */
static int dns_reply(struct query *d, const unsigned char *m, size_t n)
{
	size_t p = d->ql, rl;
	unsigned an, t, rc;
	int k;

	if (n < p || d->done == 3)
		return 0;
	k = m[p - 3] == 28;
	d->q[p - 3] = k ? 28 : 1;
	rc = m[3] & 15;
	if (!(m[2] & 0x80) || m[4] || m[5] != 1 || (rc && rc != 3) ||
	    memcmp(m, d->id + 2 * k, 2) || memcmp(m + 12, d->q + 12, p - 12))
		return 0;	/* not ours; or SERVFAIL: others may know */
	an = rc ? 0 : (unsigned)m[6] << 8 | m[7];	/* none in NXDOMAIN */
	for (; an; an--, p += 10 + rl) {
		if (!(p = dns_skip(m, n, p)) || p + 10 > n)
			break;
		t = (unsigned)m[p] << 8 | m[p + 1];
		rl = (size_t)m[p + 8] << 8 | m[p + 9];
		if (p + 10 + rl > n)
			break;
		if (!m[p + 2] && m[p + 3] == 1 &&
		    ((t == 1 && rl == 4) || (t == 28 && rl == 16)))
			lookup_add(&d->l, t == 1 ? AF_INET : AF_INET6,
				   m + p + 10, d->port);
	}
	return 1 << k;
}

/* Ask the unanswered of the A and AAAA queries of every nameserver; again
 * LOOKUP_ROUND_MS later, so that one nameserver down costs no more than
 * a round. */
static void dns_send(struct query *d, int64_t t)
{
	int i, k, v6;

	for (k = 0; k < 2; k++) {
		memcpy(d->q, d->id + 2 * k, 2);
		d->q[d->ql - 3] = k ? 28 : 1;
		for (i = 0; i < d->nns && !(d->done & 1 << k); i++) {
			v6 = d->ns[i].sa.sa_family == AF_INET6;
			if (d->fd[v6] >= 0)
				sock_sendto(d->fd[v6], d->q, d->ql, 0, &d->ns[i].sa,
				       v6 ? sizeof d->ns[i].v6 :
				       sizeof d->ns[i].v4);
		}
	}
	d->next = t + LOOKUP_ROUND_MS;
}

/*
 * The next name to ask: a name without a dot in each search domain in
 * turn, then as it is; a name with a dot as it is. -1 when none is left.
 * A name too long to ask counts as answered, with no address.
 */
static int dns_next(struct query *d)
{
	const char *dom;
	size_t n = 0;

	if (d->last)
		return -1;
	dom = strchr(d->host, '.') || !d->search ? NULL :
	      lookup_word(&d->search);
	d->last = !dom;
	d->done = 3;
	if (dns_name(d->q + 12, &n, d->host) < 0 ||
	    (dom && dns_name(d->q + 12, &n, dom) < 0))
		return 0;
	memcpy(d->q + 12 + n, "\0\0\0\0\1", 5); /* root, type, class IN */
	d->ql = 12 + n + 5;
	if (rnd(d->id, sizeof d->id) < 0)
		return 0;
	d->done = 0;
	d->next = 0; /* now */
	return 0;
}

/* What fd k (0: IPv4, 1: IPv6) has: at most LOOKUP_READS datagrams. */
static void query_read(struct query *d, int k)
{
	unsigned char m[512];
	union lookup_sa f;
	socklen_t fl;
	ssize_t r;
	int i;

	for (i = 0; i < LOOKUP_READS; i++) {
		fl = sizeof f;
		if ((r = sock_recvfrom(d->fd[k], m, sizeof m, 0, &f.sa, &fl)) < 0)
			break;
		if (dns_from_ns(d, &f))
			d->done |= dns_reply(d, m, (size_t)r);
	}
}

/* Move the lookup on at time t: 1 while it asks, 0 when it is over (d->l
 * holds the addresses; if none, errbuf says why). */
static int query_step(struct query *d, int64_t t)
{
	while (d->done == 3) { /* this name is answered: the next? */
		if (d->l || dns_next(d) < 0) {
			if (!d->l)
				fmt(errbuf, sizeof errbuf, "no address for "
				    "'%s'", d->host);
			return 0;
		}
	}
	if (t >= d->end) {
		fmt(errbuf, sizeof errbuf, "no answer from the nameservers");
		return 0;
	}
	if (t >= d->next)
		dns_send(d, t);
	return 1;
}

/* When query_step() wants to run next. */
static int64_t query_next(const struct query *d)
{
	return d->next < d->end ? d->next : d->end;
}

static void query_free(struct query *d)
{
	int k;

	for (k = 0; k < 2; k++)
		if (d->fd[k] >= 0) {
			ev_set(d->fd[k], d->tok + k, &d->ev[k], 0);
			sock_close(d->fd[k]);
		}
	addrs_free(d->l);
	free(d->conf);
	free(d);
}

/*
 * Start looking up host (port goes into the results): 0 if that is done
 * at once (a literal, /etc/hosts; *l is the result, NULL if none, and
 * errbuf says why), 1 if *out is a query to drive. Passive and an empty
 * host: the wildcard addresses.
 */
static int query_start(struct query **out, const char *host, unsigned port,
		       int passive, struct addrinfo **l)
{
	static const unsigned char any[16];
	unsigned char a[16];
	struct query *d;
	char *s, *line, *w;
	size_t len = strlen(host);
	int af, i, k;

	*l = NULL;
	*out = NULL;
	if (OS_RESOLVER) { /* Windows: it waits for the answer */
		*l = os_resolve(host, port, passive);
		return 0;
	}
	if (!*host && passive) {
		/* [::] first: where it works it takes IPv4 too */
		lookup_add(l, AF_INET6, any, port);
		if (*l)
			lookup_add(&(*l)->ai_next, AF_INET, any, port);
		return 0;
	}
	if ((af = lookup_literal(host, a))) {
		lookup_add(l, af, a, port);
		return 0;
	}
	if (!host_ok(host)) {
		fmt(errbuf, sizeof errbuf, "bad host name '%s'", host);
		return 0;
	}
	lookup_hosts(l, host, len - (host[len - 1] == '.'), port);
	if (*l)
		return 0;
	if (!(d = calloc(1, sizeof *d))) {
		fmt(errbuf, sizeof errbuf, "out of memory");
		return 0;
	}
	d->fd[0] = d->fd[1] = -1;
	d->q[2] = 1; /* RD */
	d->q[5] = 1; /* one question */
	d->host = host;
	d->port = port;
	d->done = 3; /* nothing asked yet */
	s = d->conf = file_read(RESOLV_PATH, 1 << 16, &len);
	while (s && (line = lookup_line(&s))) {
		if (!(w = lookup_word(&line)))
			continue;
		if (!strcmp(w, "search") || !strcmp(w, "domain"))
			d->search = line;	/* the last one counts */
		else if (!strcmp(w, "nameserver") && d->nns < 3 &&
		    (w = lookup_word(&line)) && (af = lookup_literal(w, a)))
			lookup_sa(&d->ns[d->nns++], af, a, 53);
	}
	if (!d->nns)
		lookup_sa(&d->ns[d->nns++], AF_INET, "\177\0\0\1", 53);
	for (i = 0; i < d->nns; i++) {
		k = d->ns[i].sa.sa_family == AF_INET6;
		if (d->fd[k] < 0 && (d->fd[k] = sock_open(d->ns[i].sa.sa_family, SOCK_DGRAM)) >= 0 && sock_nonblock(d->fd[k]) < 0) {
			sock_close(d->fd[k]);
			d->fd[k] = -1;
		}
	}
	if (d->fd[0] < 0 && d->fd[1] < 0) {
		fmt(errbuf, sizeof errbuf, "no socket for DNS: %s",
		    os_strerror(errno));
		query_free(d);
		return 0;
	}
	d->end = clock_ms() + RESOLVE_MS;
	*out = d;
	return 1;
}

/* One lookup alone, waiting for it: for LISTEN and -m, before the loop. */
static struct addrinfo *lookup(const char *host, unsigned port, int passive)
{
	struct addrinfo *l;
	struct query *d;
	struct pollfd p[2];
	int64_t t;
	int k;

	if (!query_start(&d, host, port, passive, &l))
		return l;
	while (query_step(d, t = clock_ms())) {
		for (k = 0; k < 2; k++) {
			p[k].fd = d->fd[k];
			p[k].events = POLLIN;
		}
		if (os_wait(p, 2, query_next(d) - t) > 0)
			for (k = 0; k < 2; k++)
				if (p[k].revents)
					query_read(d, k);
	}
	l = d->l;
	d->l = NULL;
	query_free(d);
	return l;
}

/* Split host:port, [v6]:port or :port (passive only) into host and port;
 * -1 (errbuf says why) when it is malformed. */
static int addr_split(const char *arg, int passive, const char *what,
		      char host[256], unsigned *port)
{
	const char *colon = strrchr(arg, ':');
	size_t hl;
	long pn;

	if (!colon) {
		fmt(errbuf, sizeof errbuf, "bad %s '%s': want host:port", what,
		    arg);
		return -1;
	}
	hl = (size_t)(colon - arg);
	if (hl && arg[0] == '[') {
		if (arg[hl - 1] != ']') {
			fmt(errbuf, sizeof errbuf, "bad %s '%s': want "
			    "[ipv6]:port", what, arg);
			return -1;
		}
		arg++;
		hl -= 2;
	}
	if (hl >= 256 || (!hl && !passive)) {
		fmt(errbuf, sizeof errbuf, "bad %s '%s': bad host", what, arg);
		return -1;
	}
	memcpy(host, arg, hl);
	host[hl] = 0;
	if (parse_num(colon + 1, 1, 65535, "port", &pn) < 0)
		return -1;
	*port = (unsigned)pn;
	return 0;
}

/* LISTEN and -m: split and resolve, waiting; NULL (errbuf says why) when
 * that fails. */
static struct addrinfo *resolve(const char *arg, int passive, const char *what)
{
	char host[256], why[sizeof errbuf];
	struct addrinfo *ai;
	unsigned port;

	if (addr_split(arg, passive, what, host, &port) < 0)
		return NULL;
	if (!(ai = lookup(host, port, passive))) {
		memcpy(why, errbuf, sizeof why);
		fmt(errbuf, sizeof errbuf, "cannot resolve %s '%s': %s", what,
		    host, why);
	}
	return ai;
}

/* ==== servers and targets ============================================== */

/*
 * SERVER or TARGET: up to TARGETS_MAX addresses. Names are looked up in
 * the loop: at start, again for an address whose IPs all failed (before
 * its next use), on SIGHUP, and with a back-off while a name has no
 * address yet. A lookup's sockets and times are the loop's like any
 * others; the connections that need its answer wait (S_RESOLVE, their
 * application not read) and every other one goes on. The few targets are
 * scanned for their lookups' times: TARGETS_MAX bounds that.
 */
static void target_resolved(struct target *t, struct addrinfo *l);

/* SERVER (client) or TARGET (server): n_targets addresses. A reload that
 * changes the list makes a new one and a new targets_gen. */
static struct target *targets;
static int n_targets, target_next;
static unsigned targets_gen;

static void targets_free(struct target *t, int n)
{
	int i;

	for (i = 0; t && i < n; i++) {
		if (t[i].q)
			query_free(t[i].q);
		addrs_free(t[i].ai);
		free(t[i].host);
	}
	if (t)
		free(t[0].spec); /* the list, split in place */
	free(t);
}

/* SERVER or TARGET: host:port,host:port,... checked, and address
 * literals taken; -1 (errbuf says why) if any is malformed. Names are
 * looked up later, in the loop (target_lookup). */
static int targets_parse(const char *list, struct target **out, int *n_out)
{
	struct target *t = calloc(TARGETS_MAX, sizeof *t);
	char *p = strdup(list), *item, host[256];
	unsigned char a[16];
	int n;

	if (!t || !p) {
		free(t);
		free(p);
		fmt(errbuf, sizeof errbuf, "out of memory");
		return -1;
	}
	t[0].spec = p; /* the list, split in place */
	for (n = 0; (item = field(&p, ",")); n++) {
		if (n == TARGETS_MAX) {
			fmt(errbuf, sizeof errbuf, "more than %d addresses in "
			    "'%s'", TARGETS_MAX, list);
			break;
		}
		if (addr_split(item, 0, REMOTE_ARG, host, &t[n].port) < 0)
			break;
		if (!host_ok(host)) {
			fmt(errbuf, sizeof errbuf, "bad %s '%s': bad host "
			    "name", REMOTE_ARG, item);
			break;
		}
		t[n].spec = item;
		if (!(t[n].host = strdup(host))) {
			fmt(errbuf, sizeof errbuf, "out of memory");
			break;
		}
		if (lookup_literal(host, a))
			t[n].ai = lookup(host, t[n].port, 0);
	}
	if (item) {
		targets_free(t, n);
		return -1;
	}
	*out = t;
	*n_out = n;
	return 0;
}

/* Look t's name up, unless that is under way. */
static void target_lookup(struct target *t)
{
	struct addrinfo *l;
	int k, tok = TOK_DNS + 2 * (int)(t - targets);

	if (t->q)
		return;
	if (!query_start(&t->q, t->host, t->port, 0, &l)) {
		target_resolved(t, l); /* at once: /etc/hosts, a literal */
		return;
	}
	t->q->tok = tok;
	for (k = 0; k < 2; k++)
		if (t->q->fd[k] >= 0 && ev_set(t->q->fd[k], tok + k,
					       &t->q->ev[k], IO_IN) < 0) {
			fmt(errbuf, sizeof errbuf, "epoll: %s",
			    os_strerror(errno));
			target_resolved(t, NULL);
			return;
		}
}

/* t's lookup is over, with the addresses l (NULL: none; errbuf says
 * why): a name keeps its last good addresses; one that never had any is
 * tried again after 1 s, 2 s, ... up to BACKOFF_MAX_MS. Then the
 * connections that waited for it go on. */
static void target_resolved(struct target *t, struct addrinfo *l)
{
	struct conn *c;

	if (t->q)
		query_free(t->q);
	t->q = NULL;
	t->stale = 0;
	if (l) {
		if (t->lookup_ms)
			logmsg(NULL, "%s %s resolves now",
			       REMOTE_NAME, t->spec);
		addrs_free(t->ai);
		t->ai = l;
		t->lookup_ms = 0;
	} else if (t->ai) {
		logmsg(NULL, "%s %s: %s; keeping its old addresses",
		       REMOTE_NAME, t->spec, errbuf);
	} else {
		t->lookup_ms = !t->lookup_ms ? 1000 : t->lookup_ms * 2 >
			       BACKOFF_MAX_MS ? BACKOFF_MAX_MS :
			       t->lookup_ms * 2;
		t->lookup_at = now + t->lookup_ms;
		logmsg(NULL, "%s %s: %s; looking it up again in %d s",
		       REMOTE_NAME, t->spec, errbuf,
		       t->lookup_ms / 1000);
	}
	/* none of them comes back to t: each has counted it as tried */
	while ((c = t->waiters.head)) {
		list_del(c, 1);
		conn_settle(c, conn_connect_next(c, 0));
	}
}

/* Whether c can connect to t now: 1 (its addresses are known), 0 (c
 * waits for its lookup), -1 (none: its lookup failed, and it rests). */
static int target_ready(struct conn *c, struct target *t)
{
	if (!t->q && (t->stale || (!t->ai && now >= t->lookup_at)))
		target_lookup(t);
	if (t->q) {
		list_put(&t->waiters, c, 1);
		return 0;
	}
	return t->ai ? 1 : -1;
}

/* The lookups' times: when the next is due (earliest() of next), and
 * what is due now. */
static int64_t targets_next(int64_t next)
{
	int i;

	for (i = 0; i < n_targets; i++)
		next = earliest(next, targets[i].q ? query_next(targets[i].q) :
				!targets[i].ai ? targets[i].lookup_at : 0);
	return next;
}

static void targets_tick(void)
{
	struct target *t;
	struct addrinfo *l;

	for (t = targets; t < targets + n_targets; t++) {
		if (!t->q && !t->ai && now >= t->lookup_at)
			target_lookup(t);
		if (t->q && now >= query_next(t->q) && !query_step(t->q, now)) {
			l = t->q->l;
			t->q->l = NULL;
			target_resolved(t, l);
		}
	}
}

/* A lookup's socket is readable (tok: see TOK_DNS). */
static void target_event(int tok)
{
	int i = (tok - TOK_DNS) / 2;
	struct target *t = &targets[i < n_targets ? i : 0];
	struct addrinfo *l;

	if (i >= n_targets || !t->q)
		return;
	query_read(t->q, (tok - TOK_DNS) % 2);
	if (!query_step(t->q, now)) {
		l = t->q->l;
		t->q->l = NULL;
		target_resolved(t, l);
	}
}

/* A reload with another list: the lookups of the old one end, and the
 * connections that waited for them start again on the new one. */
static void targets_replace(struct target *t, int n)
{
	struct list w = {NULL, NULL, 0};
	struct conn *c;
	int i;

	for (i = 0; i < n_targets; i++)
		while ((c = targets[i].waiters.head))
			list_put(&w, c, 1);
	targets_free(targets, n_targets);
	targets = t;
	n_targets = n;
	targets_gen++;
	for (i = 0; i < n; i++)
		if (!t[i].ai)
			target_lookup(&t[i]);
	while ((c = w.head)) {
		list_del(c, 1);
		conn_settle(c, conn_connect_next(c, 0));
	}
}

/* Every address of t failed: with other addresses to use, it rests for a
 * back-off time (1 s, doubling up to 60 s); its name is resolved again
 * before its next use. A lone address never rests: there is nothing else
 * to try. */
static void target_down(struct target *t)
{
	t->stale = 1;
	if (n_targets < 2 || t->down_until > now)
		return;
	t->backoff_ms = !t->backoff_ms ? 1000 : t->backoff_ms * 2 >
			BACKOFF_MAX_MS ? BACKOFF_MAX_MS : t->backoff_ms * 2;
	t->down_until = now + t->backoff_ms;
	logmsg(NULL, "%s %s failed; not used for %d s", REMOTE_NAME,
	       t->spec, t->backoff_ms / 1000);
}

/* The address a connection is connecting to, NULL if none. */
static const struct addrinfo *conn_ai(const struct conn *c)
{
	const struct addrinfo *ai = NULL;
	int i;

	if (c->target >= 0 && c->gen == targets_gen)
		for (ai = targets[c->target].ai, i = 0; ai && i < c->addr;
		     i++)
			ai = ai->ai_next;
	return ai;
}

/* ==== the connection table ============================================== */

/* The connection table: conn_max slots; those from conn_high on were
 * never used, and free_conns chains the freed ones (through ln[0].next). */
static struct conn *conns, *free_conns;
static int conn_max, conn_count, conn_high;
static unsigned long conn_ids;

/* The queues of ln[0] (see struct link): connect (-t; Q_RETRY: out of
 * fds, try again shortly), handshake (-t; on the server, the connections
 * not yet authenticated), ready links (the client replaces one after
 * POOL_AGE_MS, the server ends one after OPEN_WAIT_MS) and the server's
 * wait for the client's FIN after both EOFs (-t). The idle list (ln[1])
 * holds every open connection, the least recently active first (-i). */
enum { Q_CONNECT, Q_RETRY, Q_HANDSHAKE, Q_READY, Q_CLOSING, Q_COUNT };
static struct list queues[Q_COUNT], idle_list;
static int64_t accept_paused_until; /* out of fds: accept nothing till then */
static int64_t drain_until; /* SIGTERM: the connections' last moment */

/* The listeners (-j with SO_REUSEPORT: each worker's own), the metrics
 * one (-m), and their interest. */
static int listen_fd = -1, metrics_fd = -1;
static unsigned char listen_ev, metrics_ev;
static int reuseport, *listen_fds; /* -j: worker i's is listen_fds[i] */

static struct conn *conn_new(void)
{
	struct conn *c = free_conns;

	if (c)
		free_conns = c->ln[0].next;
	else if (conn_high < conn_max)
		c = &conns[conn_high++];
	else
		return NULL;
	memset(c, 0, sizeof *c);
	c->plain = c->link = -1;
	c->target = -1;
	c->id = ++conn_ids;
	c->since = now;
	st->open = (uint64_t)++conn_count;
	return c;
}

static void close_fd(int fd, int reset)
{
	struct linger lg = {1, 0};

	if (fd < 0)
		return;
	if (reset) /* RST, so the far side sees an error, not EOF */
		sock_setopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
	sock_close(fd);
}

/* Close c's plain (side 0) or link (1) fd, out of the event set first. */
static void conn_drop_fd(struct conn *c, int side, int reset)
{
	int *fd = side ? &c->link : &c->plain;

	if (*fd < 0)
		return;
	ev_set(*fd, TOK_CONN + 2 * (int)(c - conns) + side, &c->ev[side], 0);
	close_fd(*fd, reset);
	*fd = -1;
}

/* The one teardown: every error path ends here. */
static void pool_closed(struct conn *c);

static void conn_close(struct conn *c, int reset)
{
	int pool = IS_CLIENT && (c->flags & F_POOL); /* not an
						      * application's */

	if (pool)
		pool_closed(c);
	if (verbose)
		logmsg(c, reset ? "reset" : "closed");
	if (reset && !pool)
		(*(c->why == W_AUTH ? &st->auth : c->why == W_CONNECT ?
		   &st->connect : c->why == W_TIMEOUT ? &st->timeout :
		   &st->reset))++;
	conn_drop_fd(c, 0, reset);
	conn_drop_fd(c, 1, reset);
	unauth_end(c);
	list_del(c, 0);
	list_del(c, 1);
	buf_free(&c->tx);
	buf_free(&c->rx);
	wipe(c, sizeof *c);
	c->plain = c->link = -1;
	c->state = S_FREE;
	c->ln[0].next = free_conns;
	free_conns = c;
	st->open = (uint64_t)--conn_count;
}

/* Records flow from now: off the connect or handshake queue, onto the
 * idle list. */
static void conn_open(struct conn *c)
{
	c->state = S_OPEN;
	list_del(c, 0);
	list_put(&idle_list, c, 1);
}

/*
 * The pool (-P, client): links made and authenticated ahead, without an
 * application (S_READY, on pool through ln[1], the oldest first). A new
 * application connection takes the oldest and sends OPEN at once; the
 * loop makes new ones (pool_fill) over the SERVER list like any
 * connection, not while every server rests, and after a pool link that
 * failed only after a back-off (1 s, doubling to BACKOFF_MAX_MS), with one
 * line saying why. A ready link is replaced after POOL_AGE_MS, before the
 * server gives up on it (OPEN_WAIT_MS), and when it dies. pool_links
 * counts the pool links not yet taken, made or being made.
 *
 * Links start one at a time, POOL_PACE_MS apart, and not sooner than that
 * after an application took one: a link's handshake costs each end an
 * X25519 or two (a millisecond of CPU here, several on a router), which,
 * started at once, lands on the taker's first round trip and made a ready
 * link no faster than a new one on loopback (about 2 ms against 0.7 with
 * the pace, connects 20 ms apart). A steady stream of takes does not push
 * the refill back, so the pool refills at up to 1000/POOL_PACE_MS links a
 * second however busy it is.
 */
static struct list pool;
static int pool_links, pool_backoff_ms;
static int64_t pool_retry, pool_next;

/* A link is authenticated: the client's pool link waits for an
 * application, the server's link for OPEN (Q_READY either way). */
static int link_ready(struct conn *c)
{
	c->state = S_READY;
	list_put(&queues[Q_READY], c, 0);
	if (!IS_CLIENT)
		return 0;
	if (drain_until)
		return -2; /* SIGTERM: no more */
	list_put(&pool, c, 1);
	st->ready = (uint64_t)pool.n;
	pool_backoff_ms = 0;
	return 0;
}

/* OPEN's payload, at p, for the application on fd: its address (family
 * 4 or 6, 4 or 16 bytes, port); none (0 bytes) if not known. */
static size_t open_payload(int fd, unsigned char *p)
{
	union lookup_sa a;
	socklen_t l = sizeof a;
	const unsigned char *ip = a.v6.sin6_addr.s6_addr;

	if (sock_name(fd, 1, &a.sa, &l) < 0)
		return 0;
	if (a.sa.sa_family == AF_INET6 && !memcmp(ip, "\0\0\0\0\0\0\0\0\0\0"
						  "\377\377", 12)) {
		memcpy(p + 1, ip + 12, 4); /* ::ffff:a.b.c.d: IPv4 */
		memcpy(p + 5, &a.v6.sin6_port, 2);
	} else if (a.sa.sa_family == AF_INET6) {
		memcpy(p + 1, ip, 16);
		memcpy(p + 17, &a.v6.sin6_port, 2);
		return *p = 6, 19;
	} else if (a.sa.sa_family == AF_INET) {
		memcpy(p + 1, &a.v4.sin_addr, 4);
		memcpy(p + 5, &a.v4.sin_port, 2);
	} else {
		return 0;
	}
	*p = 4;
	return 7;
}

/* Client: the application on c->plain takes the link: OPEN, sealed after
 * whatever waits (the ClientFinished of a link just made). */
static int link_open(struct conn *c)
{
	unsigned char *p;

	if (buf_alloc(c, &c->tx, 1) < 0)
		return -1;
	p = c->tx.p + c->tx.len;
	c->tx.len += rec_seal(&c->send, p, REC_OPEN, open_payload(c->plain,
								  p + 3));
	conn_open(c);
	return 0;
}

/* Server: OPEN came, with the application's address (n bytes at p): kept
 * in hs for --proxy-protocol; now, and only now, the target. */
static int link_opened(struct conn *c, const unsigned char *p, size_t n)
{
	if (n && !(n == 7 && p[0] == 4) && !(n == 19 && p[0] == 6))
		return fail(c, "bad OPEN (%lu bytes)", (unsigned long)n);
	memcpy(c->hs, p, n);
	c->hs_len = (unsigned char)n;
	if (verbose)
		logmsg(c, "OPEN%s", n ? "" : " (no address)");
	return conn_connect_next(c, 0);
}

/* --proxy-protocol: the PROXY protocol v2 header (haproxy's
 * proxy-protocol.txt, 2.2) goes to the target first: PROXY, TCP over
 * IPv4 or IPv6, the application's address from OPEN as the source, the
 * server's end of the link as the destination (zero if its family is
 * not the source's); LOCAL when OPEN named none. A fresh socket takes
 * its 52 bytes at once. */
static int proxy_header(struct conn *c)
{
	unsigned char h[16 + 36];
	union lookup_sa d;
	socklen_t dl = sizeof d;
	size_t al = c->hs[0] == 6 ? 16 : 4, n = c->hs_len ? 16 + 2 * al + 4 : 16;

	memcpy(h, "\r\n\r\n\0\r\nQUIT\n\x20\0\0\0", 16); /* LOCAL */
	if (c->hs_len) {
		memset(h + 16, 0, 36);
		h[12] = 0x21;
		h[13] = al == 16 ? 0x21 : 0x11;
		h[15] = (unsigned char)(2 * al + 4);
		memcpy(h + 16, c->hs + 1, al);
		memcpy(h + 16 + 2 * al, c->hs + 1 + al, 2);
		if (sock_name(c->link, 0, &d.sa, &dl) == 0 &&
		    d.sa.sa_family == (al == 16 ? AF_INET6 : AF_INET)) {
			memcpy(h + 16 + al, al == 16 ? (void *)&d.v6.sin6_addr :
			       (void *)&d.v4.sin_addr, al);
			memcpy(h + 18 + 2 * al, al == 16 ? &d.v6.sin6_port :
			       &d.v4.sin_port, 2);
		}
	}
	return sock_send(c->plain, h, n, MSG_NOSIGNAL) == (ssize_t)n ? 0 :
	       fail(c, "%s: the PROXY header: %s", plain_name,
		    os_strerror(errno));
}

/* A pool link goes: taken ones do not come here (their F_POOL is gone).
 * One that failed before it was ready backs the pool off. */
static void pool_closed(struct conn *c)
{
	c->flags &= ~F_POOL;
	pool_links--;
	if (c->state == S_READY) {
		st->unused++;
		list_del(c, 1);
		st->ready = (uint64_t)pool.n;
		return;
	}
	if (now < pool_retry)
		return; /* one of a burst that already backs off */
	pool_backoff_ms = !pool_backoff_ms ? 1000 : pool_backoff_ms * 2 >
			  BACKOFF_MAX_MS ? BACKOFF_MAX_MS : pool_backoff_ms * 2;
	pool_retry = now + pool_backoff_ms;
	logmsg(c, "pool link: %s; the next in %d s", pool_why,
	       pool_backoff_ms / 1000);
}

/* An application's connection on fd takes a ready link: 1, or 0 if there
 * is none. Its OPEN leaves at once. */
static int pool_take(int fd)
{
	struct conn *c = pool.head;

	if (!c)
		return 0;
	list_del(c, 1);
	c->flags &= ~F_POOL;
	pool_links--;
	st->ready = (uint64_t)pool.n;
	st->taken++;
	st->total++;
	if (pool_next <= now)
		pool_next = now + POOL_PACE_MS;
	c->plain = fd;
	if (verbose)
		logmsg(c, "new connection, on a ready link");
	conn_settle(c, link_open(c) < 0 ? -1 : tx_flush(c));
	return 1;
}

/* Start a pool link when the pool is short of -P, unless every server
 * rests, the pool backs off, or the last start or take was under
 * POOL_PACE_MS ago. */
static void pool_fill(void)
{
	struct conn *c;
	int i, rest = n_targets > 1;

	st->pool = (uint64_t)cfg.pool;
	for (i = 0; i < n_targets; i++)
		rest &= targets[i].down_until > now;
	if (pool_links < cfg.pool && now >= pool_retry && now >= pool_next &&
	    !rest && listen_fd >= 0 && (c = conn_new())) {
		c->flags |= F_POOL;
		pool_links++;
		pool_next = now + POOL_PACE_MS;
		conn_settle(c, conn_connect_next(c, 0));
	}
}

/* The next address of SERVER or TARGET for c that does not rest: a new
 * connection starts at the next one round robin; NULL when c has tried
 * them all. */
static struct target *target_pick(struct conn *c)
{
	struct target *t;

	do {
		if (c->tries == n_targets)
			return NULL;
		if (c->target < 0) {
			c->target = (short)(target_next % n_targets);
			target_next = c->target + 1;
		} else {
			c->target = (short)((c->target + 1) % n_targets);
		}
		c->tries++;
		t = &targets[c->target];
	} while (n_targets > 1 && t->down_until > now);
	c->addr = 0;
	return t;
}

/* Start c's outbound connect to ai: 0 under way (or out of fds: it is
 * tried again shortly, while -t allows), -1 failed at once (*err). */
static int conn_dial(struct conn *c, const struct addrinfo *ai, int *err)
{
	int fd = sock_open(ai->ai_family, SOCK_STREAM);

	c->state = S_CONNECT;
	if (fd < 0 && (errno == EMFILE || errno == ENFILE) &&
	    now - c->since < timeout_ms) {
		logmsg(c, "socket: %s; waiting", os_strerror(errno));
		accept_paused_until = now + ACCEPT_PAUSE_MS;
		list_put(&queues[Q_RETRY], c, 0);
		return 0;
	}
	if (fd >= 0 && set_tcp_options(fd) == 0) {
		if (verbose)
			logmsg(c, "connecting to %s", addr_str(ai));
		if (sock_connect(fd, ai->ai_addr, ai->ai_addrlen) == 0 ||
		    errno == EINPROGRESS) {
			*(IS_CLIENT ? &c->link : &c->plain) = fd;
			list_put(&queues[Q_CONNECT], c, 0);
			return 0;
		}
	}
	*err = errno;
	if (fd >= 0)
		sock_close(fd);
	if (verbose)
		logmsg(c, "connect: %s", os_strerror(*err));
	return -1;
}

/*
 * The outbound connect: c->link on the client, c->plain on the server. err
 * is why the last try failed (0 for the first). Each new connection takes
 * the next address of SERVER or TARGET, round robin, and tries each IP its
 * name resolved to; when all fail it moves on to the next address, skipping
 * those that rest after a failure, and waiting where a name is being
 * looked up. The application's connection is reset only when every
 * address has failed, rests, or has no name.
 */
static int conn_connect_next(struct conn *c, int err)
{
	const struct addrinfo *ai;
	struct target *t;
	int r, unresolved = 0;

	list_del(c, 1); /* from a name's waiters: -t is up */
	if ((IS_CLIENT ? c->link : c->plain) >= 0) {
		conn_drop_fd(c, IS_CLIENT, 0);
		c->addr++;
	}
	if (err && verbose)
		logmsg(c, "connect: %s", os_strerror(err));
	if (c->gen != targets_gen) { /* the list changed (SIGHUP) */
		c->gen = targets_gen;
		c->target = -1;
		c->tries = 0;
	}
	for (;;) {
		if ((ai = conn_ai(c))) {
			if (conn_dial(c, ai, &err) == 0)
				return 0;
			c->addr++;
			continue;
		}
		if (c->target >= 0 && c->addr)
			target_down(&targets[c->target]);
		if (!(t = target_pick(c)))
			break;
		if ((r = target_ready(c, t)) == 0) { /* waits for the name */
			c->state = S_RESOLVE;
			list_put(&queues[Q_CONNECT], c, 0); /* -t from now */
			return 0;
		}
		unresolved |= r < 0;
	}
	c->why = W_CONNECT;
	return fail(c, "cannot connect to %s: %s", REMOTE_NAME,
		    err ? os_strerror(err) : unresolved ? "its name does not "
		    "resolve" : "every address failed and rests");
}

/* The outbound connect finished, well or not. */
static int conn_connected(struct conn *c)
{
	int fd = IS_CLIENT ? c->link : c->plain, err = 0;
	socklen_t len = sizeof err;

	if (sock_getopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		err = errno;
	if (err)
		return conn_connect_next(c, err);
	if (verbose && conn_ai(c))
		logmsg(c, "connected to %s", addr_str(conn_ai(c)));
	if (c->gen == targets_gen) /* it works: no more back-off */
		targets[c->target].backoff_ms = 0;
	if (IS_CLIENT) {
		c->state = S_HELLO;
		list_put(&queues[Q_HANDSHAKE], c, 0);
		return client_hello(c);
	}
	conn_open(c);
	return !IS_CLIENT && cfg.proxy ? proxy_header(c) : 0;
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
	if (!c->ln[0].on)
		list_put(&queues[Q_CLOSING], c, 0);
	return 0;
}

/* Do all the I/O the connection can do now, with the events pe (plain)
 * and le (link). Returns 0, or -1 to reset it, -2 to close it. */
static int conn_pump(struct conn *c, unsigned pe, unsigned le)
{
	int r = 0;

	if (c->state == S_CONNECT) {
		if (!((IS_CLIENT ? le : pe) & (IO_OUT | IO_ERR)))
			return 0;
		r = conn_connected(c);
		if (r < 0 || (c->state != S_OPEN && c->state != S_HELLO))
			return r;
		pe = le = 0;
	}
	if (!IS_CLIENT && (c->state == S_HELLO || c->state == S_FINISH))
		return server_handshake(c);
	if (c->state == S_OPEN)
		list_put(&idle_list, c, 1); /* active now (-i) */
	if (le & (IO_IN | IO_ERR))
		r = link_read(c);
	if (r == 0 && (pe & IO_OUT))
		r = plain_write(c);
	if (r == 0)
		r = rx_process(c);
	if (r == 0)
		r = tx_fill(c, pe & (IO_IN | IO_ERR));
	if (r == 0)
		r = tx_flush(c);
	if (r == 0 && (c->flags & F_LINK_EOF) && c->state == S_READY)
		return -2; /* a link with no application yet: it goes quietly */
	if (r == 0 && (c->flags & F_LINK_EOF) && !rx_waiting(c) &&
	    (c->state != S_OPEN || !(c->flags & F_RX_EOF))) {
		c->why = c->state == S_OPEN ? W_RESET : W_AUTH;
		r = fail(c, "%s", c->state == S_OPEN ? "link closed without "
			 "end of stream (truncated)" : hs_closed);
	}
	if (r == 0 && (c->flags & F_LINK_EOF) && !(c->flags & F_TX_EOF))
		r = fail(c, "link closed by the peer while we were sending");
	if (r < 0)
		return r;
	if (conn_finished(c))
		return -2;
	if (c->tx.p && !c->tx.len && !c->tx.hot)
		buf_free(&c->tx);
	if (c->rx.p && !c->rx.len && !c->rx.hot)
		buf_free(&c->rx);
	return 0;
}

/* c's wait on queue q ran out (q == Q_COUNT: idle for -i). */
static void conn_expired(struct conn *c, int q)
{
	int r;

	if (q == Q_CLOSING || q == Q_READY) { /* server: all delivered, no
					      * FIN came; a ready link aged */
		conn_close(c, 0);
		return;
	}
	if (q == Q_CONNECT || q == Q_RETRY) {
		r = conn_connect_next(c, q == Q_CONNECT ? ETIMEDOUT : 0);
	} else {
		c->why = W_TIMEOUT;
		r = q == Q_HANDSHAKE ? fail(c, "handshake timed out") :
		    fail(c, "idle for %ld s (-i)", cfg.idle);
	}
	conn_settle(c, r);
}

/* Interest follows buffer state: read only where there is room to put
 * what is read, write only where something waits. Nothing is asked of an
 * fd the state has no use for (a connect waits for the outbound fd, a
 * lookup for neither). */
static int conn_watch(struct conn *c)
{
	unsigned pe = 0, le = 0;
	int tok = TOK_CONN + 2 * (int)(c - conns);
	int rx_room = !c->rx.p || c->rx.len < c->rx.cap;
	int tx_room = !c->tx.p || c->tx.off == c->tx.len ||
		      c->tx.cap - c->tx.len >= REC_WIRE_MAX;

	if (c->state == S_CONNECT) {
		*(IS_CLIENT ? &le : &pe) = IO_OUT;
	} else if (c->state == S_HELLO || c->state == S_FINISH ||
		   c->state == S_READY) {
		le = IO_IN; /* handshake messages, OPEN, or the link's end */
	} else if (c->state == S_OPEN) {
		if (!(c->flags & (F_TX_EOF | F_CONTROL | F_MEM_TX)) && tx_room)
			pe |= IO_IN;
		if (rx_waiting(c))
			pe |= IO_OUT;
		if (!(c->flags & (F_LINK_EOF | F_MEM_RX)) && rx_room)
			le |= IO_IN;
	}
	/* IO_OUT also while a control record waits to be sealed: tx_fill()
	 * seals it once the records before it are sent, and nothing else
	 * may wake this connection then (the plain side's IO_IN is off). */
	if (c->state != S_RESOLVE && c->state != S_CONNECT &&
	    (c->tx.len > c->tx.off || (c->flags & F_CONTROL)))
		le |= IO_OUT;
	if ((c->plain >= 0 && ev_set(c->plain, tok, &c->ev[0], pe) < 0) ||
	    (c->link >= 0 && ev_set(c->link, tok + 1, &c->ev[1], le) < 0))
		return -1;
	return 0;
}

/* After anything happened to c: r < 0 ends it (-1 with a reset, -2
 * without), else its interest follows its new state. */
static void conn_settle(struct conn *c, int r)
{
	if (r == 0 && conn_watch(c) < 0)
		r = fail(c, "cannot wait for events: %s", os_strerror(errno));
	if (r < 0)
		conn_close(c, r == -1);
}

/* ==== metrics ============================================================ */

/*
 * -m: a tiny read-only HTTP responder in the loop. A request is read into
 * a fixed buffer until its blank line, for at most -t seconds; GET
 * /metrics gets the counters, anything else an error, and the connection
 * is closed. At most HTTP_MAX at once: a new one takes the place of the
 * oldest.
 */
static struct http {
	int fd;
	unsigned char ev; /* its interest */
	size_t len;
	int64_t deadline;
	char req[512];
} http[HTTP_MAX];

static void http_close(struct http *h)
{
	ev_set(h->fd, TOK_HTTP + (int)(h - http), &h->ev, 0);
	sock_close(h->fd);
	h->fd = -1;
}

/* A new request takes a free place, or the oldest one's: idle or slow
 * requests cannot keep a scraper out. */
static void http_accept(void)
{
	int fd = sock_accept(metrics_fd, NULL, NULL), i, old = 0;

	if (fd < 0)
		return;
	for (i = 0; i < HTTP_MAX && http[i].fd >= 0; i++)
		if (http[i].deadline < http[old].deadline)
			old = i;
	if (i == HTTP_MAX)
		http_close(&http[i = old]);
	if (sock_nonblock(fd) < 0 ||
	    ev_set(fd, TOK_HTTP + i, &http[i].ev, IO_IN) < 0) {
		sock_close(fd);
		return;
	}
	http[i].fd = fd;
	http[i].len = 0;
	http[i].deadline = now + timeout_ms;
}

static void http_read(struct http *h)
{
	char page[2048], head[160], *p;
	const char *status = "405 Method Not Allowed";
	size_t body = 0, n;
	ssize_t r = sock_recv(h->fd, h->req + h->len, sizeof h->req - 1 - h->len,
			 0);

	if (r < 0 && again())
		return;
	if (r <= 0) {
		http_close(h);
		return;
	}
	h->len += (size_t)r;
	h->req[h->len] = 0;
	for (p = h->req; *p && !(p[0] == '\n' && (p[1] == '\n' ||
					       (p[1] == '\r' && p[2] == '\n')));
	     p++)
		; /* the blank line that ends the head */
	if (!*p && h->len < sizeof h->req - 1)
		return; /* more to come */
	if (!strncmp(h->req, "GET ", 4))
		status = "404 Not Found";
	if (!strncmp(h->req, "GET /metrics", 12) && (h->req[12] == ' ' ||
						     h->req[12] == '?')) {
		status = "200 OK";
		body = stats_print(page, sizeof page, 1);
	}
	n = fmt(head, sizeof head, "HTTP/1.0 %s\r\nContent-Type: text/plain; "
		"version=0.0.4\r\nContent-Length: %lu\r\nConnection: close"
		"\r\n\r\n", status, (unsigned long)body);
	/* A fresh socket takes this much at once; if not, so be it. */
	if (sock_send(h->fd, head, n, MSG_NOSIGNAL) == (ssize_t)n && body)
		sock_send(h->fd, page, body, MSG_NOSIGNAL);
	http_close(h);
}

/* ==== the event loop ==================================================== */

static struct conn **ready; /* those with events this round */

/* Make room: the oldest stranger goes, or else the oldest prover. A
 * stranger's hello may have come already, unread (a busy loop): it is
 * read first, and a good one makes it a prover, a bad one closes it. */
static int drop_oldest_unauth(void)
{
	struct conn *old;
	int r;

	while ((old = strangers.head)) {
		if ((r = server_handshake(old)) < 0) {
			conn_close(old, r == -1);
			return 1;
		}
		if (old->state == S_HELLO)
			break;
		conn_settle(old, 0); /* it proved KEY: the next one */
	}
	if (!old && !(old = provers.head))
		return 0;
	old->why = W_TIMEOUT;
	fail(old, "dropped for a new connection: too many not yet "
	     "authenticated");
	conn_close(old, 1);
	return 1;
}

/* A new connection from source bucket b at the cap: room is made for it
 * (1), or it is refused (0: its source holds half already). */
static int unauth_room(unsigned b)
{
	if (src_count[b] * 2 >= (unsigned)unauth() &&
	    src_count[b] < (unsigned)unauth())
		return 0;
	return drop_oldest_unauth();
}

/* A new connection, fd, from a. */
static void conn_accepted(int fd, const struct sockaddr *a)
{
	struct conn *c;
	unsigned b = src_bucket(a);

	if (IS_CLIENT && pool_take(fd))
		return;
	if (!IS_CLIENT && (unauth() >= unauth_cap || conn_count == conn_max) &&
	    !unauth_room(b)) {
		if (verbose)
			logmsg(NULL, "refused a new connection: its source "
			       "holds half of those not yet authenticated");
		st->timeout++;
		close_fd(fd, 1);
		return;
	}
	if (!(c = conn_new())) { /* cannot happen: there was room */
		sock_close(fd);
		return;
	}
	st->total++;
	if (verbose)
		logmsg(c, "new connection");
	if (IS_CLIENT) {
		c->plain = fd;
		conn_settle(c, conn_connect_next(c, 0));
		return;
	}
	c->link = fd;
	c->state = S_HELLO;
	c->src = (unsigned short)b;
	c->flags |= F_UNAUTH;
	src_count[b]++;
	list_put(&queues[Q_HANDSHAKE], c, 0);
	list_put(&strangers, c, 1);
	conn_settle(c, 0);
}

static void accept_new(void)
{
	struct sockaddr_storage a;
	socklen_t al;
	int fd, n;

	for (n = 0; n < 64 && (conn_count < conn_max || unauth() || pool.n);
	     n++) {
		al = sizeof a;
		fd = sock_accept(listen_fd, (struct sockaddr *)&a, &al);
		if (!IS_CLIENT && fd < 0 && (errno == EMFILE ||
		    errno == ENFILE) && drop_oldest_unauth())
			continue; /* out of fds: a stranger's is the one */
		if (fd < 0) {
			if (errno == EMFILE || errno == ENFILE ||
			    errno == ENOBUFS || errno == ENOMEM) {
				logmsg(NULL, "accept: %s; pausing",
				       os_strerror(errno));
				accept_paused_until = now + ACCEPT_PAUSE_MS;
			} else if (errno == ECONNABORTED || errno == EINTR) {
				continue;
			}
			return;
		}
		if (set_tcp_options(fd) < 0) {
			logmsg(NULL, "accept: %s", os_strerror(errno));
			sock_close(fd);
			continue;
		}
		conn_accepted(fd, (struct sockaddr *)&a);
	}
}

static void reload(void);
static int reload_step(void);

/* The deadline of a queue's head (see struct link); 0: none. */
static int64_t queue_due(int q)
{
	struct conn *c = q == Q_COUNT ? idle_list.head : queues[q].head;

	if (!c)
		return 0;
	if (q == Q_COUNT)
		return idle_ms ? c->ln[1].at + idle_ms : 0;
	return c->ln[0].at + (q == Q_RETRY ? ACCEPT_PAUSE_MS / 4 : q == Q_READY ?
			      (IS_CLIENT ? POOL_AGE_MS : OPEN_WAIT_MS) :
			      timeout_ms);
}

/* When the loop must wake at the latest (0: only for events): the
 * queues' heads and the loop's own timers. */
static int64_t loop_next(int64_t stats_next)
{
	int64_t next = earliest(drain_until, stats_next);
	int i;

	for (i = 0; i <= Q_COUNT; i++)
		next = earliest(next, queue_due(i));
	for (i = 0; i < HTTP_MAX; i++)
		if (http[i].fd >= 0)
			next = earliest(next, http[i].deadline);
	if (listen_fd >= 0 && now < accept_paused_until)
		next = earliest(next, accept_paused_until);
	if (IS_CLIENT && pool_links < cfg.pool && listen_fd >= 0)
		next = earliest(next, now < pool_retry ? pool_retry :
				now < pool_next ? pool_next :
				now + 1000); /* backs off, or no room: later */
	return targets_next(next);
}

/* What the wait found: each connection pumped once for both its fds
 * (their events gathered first), then the lookups, the metrics requests,
 * and new connections last, so that no slot freed and taken again in
 * this round gets an event meant for its last holder. */
static void loop_events(int n)
{
	struct conn *c;
	unsigned char got[TOK_CONN] = {0};
	int i, k = 0, tok;

	for (i = 0; i < n; i++) {
		tok = evs[i].tok;
		if (tok < TOK_CONN) {
			got[tok] |= evs[i].rev;
			continue;
		}
		c = &conns[(tok - TOK_CONN) / 2];
		if (c->state == S_FREE)
			continue;
		if (!c->rev[0] && !c->rev[1])
			ready[k++] = c;
		c->rev[(tok - TOK_CONN) % 2] |= evs[i].rev;
	}
	for (i = 0; i < k; i++) {
		c = ready[i];
		conn_settle(c, conn_pump(c, c->rev[0], c->rev[1]));
		c->rev[0] = c->rev[1] = 0;
	}
	for (tok = TOK_DNS; tok < TOK_CONN; tok++)
		if (got[tok])
			target_event(tok);
	for (i = 0; i < HTTP_MAX; i++)
		if (http[i].fd >= 0 && got[TOK_HTTP + i])
			http_read(&http[i]);
	if (got[TOK_METRICS])
		http_accept();
	if (got[TOK_LISTEN])
		accept_new();
}

/* What is due: the queues' heads, the lookups, the metrics requests. */
static void loop_timers(void)
{
	int64_t due;
	int q;

	for (q = 0; q <= Q_COUNT; q++)
		while ((due = queue_due(q)) && now >= due)
			conn_expired(q == Q_COUNT ? idle_list.head :
				     queues[q].head, q);
	targets_tick();
	for (q = 0; q < HTTP_MAX; q++)
		if (http[q].fd >= 0 && now >= http[q].deadline)
			http_close(&http[q]);
}

/* SIGTERM: refuse new clients at once (a new instance can bind the
 * port), let the open connections finish for up to -w seconds, then
 * reset the rest. A second SIGTERM, or SIGINT, resets them at once.
 * Returns 1 when the loop is to end. */
static int loop_stopping(void)
{
	if (sig_int || sig_term > 1 || (sig_term && (!cfg.wait ||
		!conn_count || (drain_until && now >= drain_until))))
		return 1;
	if (sig_term && !drain_until) {
		drain_until = now + (int64_t)cfg.wait * 1000;
		while (queues[Q_READY].head) /* no application: no wait */
			conn_close(queues[Q_READY].head, 0);
		if (!conn_count)
			return 1;
		ev_set(listen_fd, TOK_LISTEN, &listen_ev, 0);
		sock_close(listen_fd);
		listen_fd = -1;
		if (metrics_fd >= 0) {
			ev_set(metrics_fd, TOK_METRICS, &metrics_ev, 0);
			sock_close(metrics_fd);
		}
		metrics_fd = -1;
		logmsg(NULL, "SIGTERM: accepting no more; %d connections have "
		       "%ld s to finish", conn_count, cfg.wait);
	}
	return 0;
}

/* With -j, try SO_REUSEPORT (Linux 3.9, the BSDs): each worker then has
 * its own listener and the kernel spreads connections over them. */
static int listen_on(const struct addrinfo *ai, int reuse)
{
	int fd, err = 0, one = 1;

	reuseport = 0;
	(void)reuse; /* no SO_REUSEPORT (Windows) */

	for (; ai; ai = ai->ai_next) {
		fd = sock_open(ai->ai_family, SOCK_STREAM);
		if (fd < 0) {
			err = errno;
			continue;
		}
		sock_setopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
#ifdef SO_REUSEPORT
		if (reuse)
			reuseport = sock_setopt(fd, SOL_SOCKET, SO_REUSEPORT,
					       &one, sizeof one) == 0;
#endif
		if (sock_bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 &&
		    sock_listen(fd, SOMAXCONN) == 0 && sock_nonblock(fd) == 0)
			return fd;
		err = errno;
		sock_close(fd);
	}
	die(1, "cannot listen: %s", os_strerror(err));
}

/* -v: what this process is about to do. */
static void start_info(const struct addrinfo *listen_ai,
		       const struct addrinfo *metrics_ai)
{
	int i;

	logmsg(NULL, "listening on %s", addr_str(listen_ai));
	if (metrics_ai)
		logmsg(NULL, "metrics on http://%s/metrics",
		       addr_str(metrics_ai));
	logmsg(NULL, "%s %s; at most %d connections; RDRAND %s; %s",
	       REMOTE_NAME, cfg.remote, conn_max, use_rdrand ? "on" : "off",
	       EPOLL ? "epoll" : WINDOWS ? "select()" : "poll()");
	for (i = 0; i < (int)COUNT(ciphers); i++)
		if (!(IS_CLIENT || cipher_forced) || &ciphers[i] == cipher)
			logmsg(NULL, "cipher %s: %s %s%s", ciphers[i].name,
			       ciphers[i].aead, cipher_code[i],
			       ciphers[i].key_len ? "" : key_len == 16 ?
			       ", AES-128" : key_len == 24 ? ", AES-192" :
			       ", AES-256");
}

/* Before the loop: SERVER or TARGET checked (their names are looked up
 * in the loop), LISTEN and -m resolved (here, waiting) and listened on
 * (with -j and SO_REUSEPORT, a listener for each worker: see
 * "workers"), and the connection limit. */
static void net_start(void)
{
	struct addrinfo *listen_ai, *metrics_ai = NULL;
	const char *m = cfg.metrics;
	char maddr[300];
	int i, fd_room = os_fd_room();

	if (targets_parse(cfg.remote, &targets, &n_targets) < 0 ||
	    !(listen_ai = resolve(cfg.listen, 1, "LISTEN")))
		die(2, "%s", errbuf);
	if (m) { /* PORT, :PORT: on loopback */
		fmt(maddr, sizeof maddr, "%s%s%s", strchr(m, ':') && *m != ':' ?
		    "" : "127.0.0.1", strchr(m, ':') ? "" : ":", m);
		if (!(metrics_ai = resolve(maddr, 1, "-m ADDRESS")))
			die(2, "%s", errbuf);
	}
	conn_max = cfg.maxconn ? (int)cfg.maxconn : fd_room < CONN_MAX_DEFAULT ?
		   fd_room : CONN_MAX_DEFAULT;
	if (conn_max > fd_room && WINDOWS) { /* select() watches no more */
		logmsg(NULL, "-n %d: at most %d here", conn_max, fd_room);
		conn_max = fd_room;
	}
	if (conn_max > fd_room)
		logmsg(NULL, "warning: -n %d needs more fds than the limit "
		       "allows (%d connections); accepting will pause at the "
		       "limit", conn_max, fd_room);
	unauth_cap = conn_max < fd_room ? conn_max : fd_room;
	listen_fd = listen_on(listen_ai, workers > 1);
	if (reuseport && !(listen_fds = calloc((size_t)workers,
					       sizeof *listen_fds)))
		die(1, "out of memory");
	for (i = 0; reuseport && i < workers; i++)
		listen_fds[i] = i ? listen_on(listen_ai, 1) : listen_fd;
	if (metrics_ai)
		metrics_fd = listen_on(metrics_ai, 0);
	if (verbose)
		start_info(listen_ai, metrics_ai);
	addrs_free(listen_ai);
	if (metrics_ai)
		addrs_free(metrics_ai);
}

/* The loop's tables, the metrics listener in the event set, and the
 * first lookups of the names of SERVER or TARGET (the listener's interest
 * is run()'s). In each worker: an epoll set is not to be shared. */
static void loop_start(void)
{
	int i;

	for (i = 0; i < HTTP_MAX; i++)
		http[i].fd = -1;
	conns = calloc((size_t)conn_max, sizeof *conns);
	if (!conns || ev_init(TOK_CONN + 2 * conn_max) < 0 ||
	    !(ready = calloc((size_t)ev_cap, sizeof *ready)))
		die(1, "no memory or event set for %d connections: %s",
		    conn_max, os_strerror(errno));
	if (metrics_fd >= 0 && ev_set(metrics_fd, TOK_METRICS, &metrics_ev,
				      IO_IN) < 0)
		die(1, "cannot wait for events: %s", os_strerror(errno));
	for (i = 0; i < n_targets; i++)
		if (!targets[i].ai)
			target_lookup(&targets[i]);
}

static void run(void);

/* After the loop: what is left reset, every secret wiped. */
static void loop_end(void)
{
	int i;

	if (verbose || conn_count)
		logmsg(NULL, "%s: %d connections reset; exiting",
		       sig_int || sig_term > 1 ? "signal" : "SIGTERM",
		       conn_count);
	for (i = 0; i < conn_high; i++)
		if (conns[i].state != S_FREE)
			conn_close(&conns[i], 1);
	if (listen_fd >= 0)
		sock_close(listen_fd);
	process_end();
	wipe(key, sizeof key);
	wipe(hello_key, sizeof hello_key);
	wipe(&spare, sizeof spare); /* the key pair made ahead */
	settings_free(&cfg);
	targets_free(targets, n_targets);
	free(conns);
}

static void run(void)
{
	int64_t next, stats_next = 0;
	int n, hup = 0, usr1 = 0, busy;

	for (;;) {
		now = clock_ms();
		if (loop_stopping())
			break;
		if (sig_hup != hup) {
			hup = sig_hup;
			reload();
		}
		busy = reload_step(); /* a new key, stretched in slices */
		/* With -j the supervisor logs the statistics, for all. */
		if (!worker_id && (sig_usr1 != usr1 || (stats_next &&
							now >= stats_next))) {
			usr1 = sig_usr1;
			stats_log();
			stats_next = 0;
		}
		if (!worker_id && cfg.stats && !stats_next)
			stats_next = now + (int64_t)cfg.stats * 1000;
		if (listen_fd >= 0 && ev_set(listen_fd, TOK_LISTEN, &listen_ev,
		    (conn_count < conn_max || unauth() || pool.n) &&
		    now >= accept_paused_until ? IO_IN : 0) < 0)
			accept_paused_until = now + ACCEPT_PAUSE_MS;
		next = loop_next(stats_next);
		if (busy || (!spare.ready && now >= spare.retry))
			next = now; /* no wait: use the time nothing is ready */
		n = ev_wait(!next ? -1 : next > now ? next - now : 0);
		if (n < 0) {
			if (errno != EINTR) { /* cannot happen; do not spin,
					       * and let signals in */
				logmsg(NULL, "wait: %s", os_strerror(errno));
				os_wait(NULL, 0, 1000);
			}
			continue;
		}
		if (n == 0 && !spare.ready && now >= spare.retry)
			eph_prepare();
		now = clock_ms();
		loop_events(n);
		loop_timers();
		if (IS_CLIENT && cfg.pool)
			pool_fill();
	}
}

/* ==== reload (SIGHUP) ==================================================== */

/*
 * SIGHUP: read the config file and the key again and resolve the names
 * again. New connections use the new key; open ones keep theirs (conn.sk).
 * Anything wrong: a log line, and everything stays as it was. Options read
 * at start only keep their old values, with a line if they changed.
 *
 * The new KEY is stretched between the loop's events, a slice of about
 * RELOAD_SLICE_MS at a time (reload_step): 100000 rounds take about 1.5 s
 * on a MIPS router, which must not freeze the connections. Meanwhile the
 * old settings and key stay in use; a newer SIGHUP starts over.
 */
#ifndef RELOAD_SLICE_MS
#define RELOAD_SLICE_MS 2
#endif

static struct {
	int on;             /* a reload is under way */
	struct settings s;  /* the new settings */
	struct target *t;   /* a new SERVER or TARGET list, or NULL */
	int n;              /* its length */
	struct kdf kdf;     /* the new KEY, being stretched */
	size_t key_len;     /* its length; 0: KEY as it was */
	int steps;          /* slices so far */
	int64_t longest;    /* the longest one, ms */
} rl;

static void reload_end(void)
{
	settings_free(&rl.s);
	targets_free(rl.t, rl.n);
	wipe(&rl, sizeof rl);
}

static void reload(void)
{
	unsigned char raw[64];
	size_t n = 0;
	int r;

	if (rl.on)
		reload_end(); /* a newer SIGHUP: start over */
	if (settings_load(&rl.s) < 0 || (r = key_read(&rl.s, 0, raw, &n)) < 0 ||
	    (strcmp(rl.s.remote, cfg.remote) &&
	     targets_parse(rl.s.remote, &rl.t, &rl.n) < 0)) {
		logmsg(NULL, "SIGHUP: reload refused, nothing changed: %s",
		       errbuf);
		wipe(raw, sizeof raw);
		reload_end();
		return;
	}
	rl.on = 1;
	if (r) {
		kdf_start(&rl.kdf, raw, n, KEY_SALT, sizeof KEY_SALT - 1,
			  KDF_ROUNDS);
		rl.key_len = n;
	}
	wipe(raw, sizeof raw);
}

/* The new settings go into use. */
static void reload_commit(void)
{
	const char *a, *b;
	unsigned long bit;
	int i;

	if (rl.key_len)
		key_use(&rl.kdf, rl.key_len); /* wipes rl.kdf */
	if (rl.t) {
		targets_replace(rl.t, rl.n);
		rl.t = NULL;
		rl.n = 0;
	} else {
		for (i = 0; i < n_targets; i++) /* each keeps its addresses */
			target_lookup(&targets[i]); /* until new ones come */
	}
	for (i = 0; i < N_OPTIONS; i++) {
		a = rl.s.val[i];
		b = cfg.val[i];
		if (!(options[i].how & OPT_FIXED))
			continue;
		if ((a || b) && (!a || !b || strcmp(a, b)))
			logmsg(NULL, "SIGHUP: %s changed: it takes effect at the "
			       "next start", options[i].name);
		bit = 1UL << i;
		rl.s.val[i] = b; /* swap: the old value stays */
		cfg.val[i] = a;
		if ((rl.s.owned ^ cfg.owned) & bit) {
			rl.s.owned ^= bit;
			cfg.owned ^= bit;
		}
		opt_clear(&rl.s, i); /* and its parsed value */
		if (b)
			opt_set(&rl.s, i, b, "");
	}
	settings_free(&cfg);
	cfg = rl.s;
	memset(&rl.s, 0, sizeof rl.s);
	settings_use();
	if (rl.key_len)
		logmsg(NULL, "SIGHUP: reloaded (the key stretched in %d steps "
		       "of at most %ld ms)", rl.steps, (long)rl.longest);
	else
		logmsg(NULL, "SIGHUP: reloaded");
	reload_end();
}

/* The loop's turn for a reload: one slice of stretching, and at its end
 * the commit. 1 while there is more to do. */
static int reload_step(void)
{
	int64_t t0 = clock_ms(), t;

	if (!rl.on)
		return 0;
	if (rl.key_len) {
		while (!kdf_run(&rl.kdf, 64) &&
		       (t = clock_ms()) - t0 < RELOAD_SLICE_MS)
			;
		t = clock_ms() - t0;
		rl.longest = t > rl.longest ? t : rl.longest;
		rl.steps++;
		if (rl.kdf.left)
			return 1;
	}
	reload_commit();
	return 0;
}

/* ==== process =========================================================== */

static const char *pidfile; /* -p, as written at start */
static int daemon_ready = -1; /* -d: the pipe that tells the parent */
static long pidfile_pid;      /* the pid it holds */

/*
 * -u: users and groups come from /etc/passwd and /etc/group, read here as
 * busybox does: libc's getpwnam() and initgroups() would bring stdio, nscd
 * and NSS code into a static binary, 10 KB. A user known only to LDAP or
 * the like is given by number: -u 1000:1000. id_lookup() finds the line
 * whose name (or number) is name and returns its number (field 2), in
 * *gid its field 3 and in it name its name; with member, it instead adds
 * to list[*n] every group whose member list (field 3) names member.
 */
static long id_lookup(const char *path, char *name, long *gid,
		      const char *member, long *list, int *n)
{
	char *buf, *p, *line, *f[4], *m;
	size_t len;
	long id = -1, v, w;
	int k;

	if (!(buf = file_read(path, 1 << 20, &len)))
		return -1;
	for (p = buf; id < 0 && (line = field(&p, "\n")); ) {
		for (k = 0; k < 4 && (f[k] = field(&line, ":")); k++)
			;
		if (k < 4 || parse_num(f[2], 0, 99999999, "id", &v) < 0)
			continue;
		if (member) {
			while ((m = field(&f[3], ",")))
				if (!strcmp(m, member) && *n < 64)
					list[(*n)++] = v;
		} else if (!strcmp(f[0], name) ||
			   (parse_num(name, 0, 99999999, "id", &w) == 0 &&
			    w == v)) {
			id = v;
			if (gid && parse_num(f[3], 0, 99999999, "id", gid) < 0)
				id = -1;
			fmt(name, 256, "%s", f[0]); /* -u 1000: its name */
		}
	}
	free(buf);
	return id;
}

/* -u USER[:GROUP], after binding: the user's groups, setgid, setuid; then
 * root must be out of reach, or we do not run. */
static void drop_privileges(const char *spec)
{
	const char *g = strchr(spec, ':');
	char user[256], group[256];
	long groups[65], uid, gid = -1;
	int n = 1, r;

	if ((g ? (size_t)(g - spec) : strlen(spec)) >= sizeof user)
		die(1, "-u: the user name is too long");
	fmt(user, sizeof user, "%s", spec);
	if (g)
		user[g - spec] = 0;
	uid = id_lookup("/etc/passwd", user, &gid, NULL, NULL, NULL);
	if (uid < 0 && parse_num(user, 0, 99999999, "-u USER", &uid) < 0)
		die(1, "-u: no user '%s' in /etc/passwd", user);
	fmt(group, sizeof group, "%s", g ? g + 1 : "");
	if (g && (gid = id_lookup("/etc/group", group, NULL, NULL, NULL,
				  NULL)) < 0 &&
	    parse_num(g + 1, 0, 99999999, "-u GROUP", &gid) < 0)
		die(1, "-u: no group '%s' in /etc/group", g + 1);
	if (gid < 0)
		die(1, "-u %s: give the group of user number %ld", spec, uid);
	groups[0] = gid;
	id_lookup("/etc/group", NULL, NULL, user, groups, &n);
	if ((r = os_set_ids(uid, gid, groups, n)) == -1)
		die(1, "-u %s: %s; refusing to run", spec, os_strerror(errno));
	if (r < 0)
		die(1, "-u %s: root could be regained; refusing to run", spec);
}

/* -d: into the background, away from the terminal. The parent exits
 * when the child is ready (see process_start), 0, or 1 if the child
 * could not start. Standard error goes to /dev/null too unless -l stderr
 * says to keep it. The working directory stays: relative -k and -f paths
 * are read again on SIGHUP. */
static void daemonize(void)
{
	if ((daemon_ready = os_daemon(log_syslog)) < 0)
		die(1, "-d: %s", os_strerror(errno));
}

/* -p FILE: a regular file (no symlink, no FIFO), locked while this
 * process runs, so that a second instance with the same file refuses to
 * start; a file left by a crash is taken over. Its fd stays open: the
 * lock lives as long as the process. */
static void pidfile_write(void)
{
	char old[24] = "";
	int fd = open(pidfile, O_RDWR | O_CREAT | O_NOFOLLOW | O_NONBLOCK,
		      0644);

	/* lseek: ESPIPE for a FIFO, a socket, a terminal (not fstat(), whose
	 * 64-bit time code costs a 32-bit static binary 1.3 KB) */
	if (fd < 0 || lseek(fd, 0, SEEK_SET) < 0)
		die(1, "cannot write pid file '%s': %s", pidfile, fd < 0 ?
		    os_strerror(errno) : "not a regular file");
	if (os_lock(fd) < 0) {
		if (read(fd, old, sizeof old - 1) > 0)
			old[strcspn(old, "\n")] = 0;
		die(1, "pid file '%s' is held by a running instance (pid %s): "
		    "refusing to start another", pidfile, old);
	}
	pidfile_pid = (long)getpid();
	if (ftruncate(fd, 0) < 0)
		die(1, "cannot write pid file '%s': %s", pidfile,
		    os_strerror(errno));
	say(fd, "%ld\n", pidfile_pid);
}

/*
 * -p with -u: USER may not remove the pid file at exit (its directory is
 * root's), so a process that stays root does it once the others are all
 * gone: it waits for EOF on a pipe whose write end they all hold. It holds
 * nothing else: its secrets are wiped, its sockets closed.
 */
static void pidfile_reaper(void)
{
	char buf[24];
	long pid, was = 0;
	int p[2], fd, i;

	if (os_pipe(p) < 0 || (pid = os_fork()) < 0)
		die(1, "-p: %s", os_strerror(errno));
	if (pid) {
		close(p[0]); /* p[1] stays open in every process but this */
		return;
	}
	close(p[1]);
	if (daemon_ready >= 0)
		close(daemon_ready); /* -d's parent waits on it */
	wipe(key, sizeof key);
	wipe(hello_key, sizeof hello_key);
	settings_free(&cfg);
	for (i = 0; listen_fds && i < workers; i++)
		sock_close(listen_fds[i]);
	sock_close(listen_fd);
	if (metrics_fd >= 0)
		sock_close(metrics_fd);
	os_wait_eof(p[0]);
	fd = open(pidfile, O_RDONLY | O_NOFOLLOW);
	memset(buf, 0, sizeof buf);
	if (fd >= 0 && read(fd, buf, sizeof buf - 1) > 0) {
		buf[strcspn(buf, "\n")] = 0;
		parse_num(buf, 1, 99999999, "pid", &was);
	}
	if (was == pidfile_pid) /* not a new instance's */
		unlink(pidfile);
	_exit(0);
}

/* -d, then the pid file (it names the detached process, written before
 * -u takes the rights to), then -u; the counters; the signals. The
 * parent of -d goes once all that is done. */
static void process_start(void)
{
	if (cfg.daemon)
		daemonize();
	if ((pidfile = cfg.pidfile))
		pidfile_write();
	if (pidfile && cfg.user)
		pidfile_reaper();
	if (cfg.user)
		drop_privileges(cfg.user);
	stats_start();
	if (daemon_ready >= 0) { /* -d: the parent may go now */
		put(daemon_ready, "", 1);
		close(daemon_ready);
	}
	os_signals();
}

/* At exit: the pid file goes (the supervisor's, with -j). */
static void process_end(void)
{
	if (pidfile && !worker_id)
		unlink(pidfile);
}

/* ==== workers (-j) ====================================================== */

/*
 * The parent of -j workers only supervises: it starts them, restarts one
 * that died (and logs why), passes SIGTERM, SIGINT and SIGHUP on, logs
 * the statistics of all (SIGUSR1, -s, whose interval a SIGHUP may change),
 * and exits when they are all gone. It holds no connection and no
 * ephemeral key. A worker that dies within a second of its start is
 * restarted after 1 s, then 2, 4 ... up to 60 s; when every worker has
 * died at once WORKER_TRIES times in a row, none can serve: the
 * supervisor gives up, exit status 1, for the service manager to act.
 * With SO_REUSEPORT each worker has its own listener, all made before
 * any fork (root may be needed for the port, and Linux groups only the
 * sockets of one user); the supervisor keeps them for restarts, and a
 * dead worker's connections wait in its queue until it is back.
 */
#ifndef WORKER_TRIES
#define WORKER_TRIES 3
#endif

struct worker {
	long pid;           /* 0: not running */
	int64_t born, due;  /* when it started; when to start it again */
	int backoff_ms;     /* the next wait after a death at once */
	int fails;          /* deaths at once in a row */
};

/* Start worker i: 1 in the worker, 0 in the supervisor. */
static int worker_start(struct worker *w, int i, int n)
{
	int k;

	w[i].born = now;
	if ((w[i].pid = os_fork()) < 0) {
		logmsg(NULL, "fork: %s; trying again in 1 s",
		       os_strerror(errno));
		w[i].pid = 0;
		w[i].due = now + 1000;
	}
	if (w[i].pid)
		return 0;
	worker_id = i + 1;
	st = &stats_all[i];
	for (k = 0; listen_fds && k < n; k++)
		if (k != i)
			sock_close(listen_fds[k]);
	if (listen_fds)
		listen_fd = listen_fds[i];
	if (i > 0 && metrics_fd >= 0) { /* only worker 1 answers -m */
		sock_close(metrics_fd);
		metrics_fd = -1;
	}
	return 1;
}

/* The workers that ended: counted, logged, and due to start again.
 * Returns how many still run. */
static int workers_reap(struct worker *w, int n)
{
	long pid;
	int i, sig, status, live = 0;

	while ((pid = os_reap(&sig, &status)) > 0) {
		for (i = 0; i < n && w[i].pid != pid; i++)
			;
		if (i == n)
			continue;
		w[i].pid = 0;
		stats_all[i].open = 0; /* its connections are gone */
		if (sig_term || sig_int)
			continue;
		w[i].fails = now - w[i].born < 1000 ? w[i].fails + 1 : 0;
		w[i].backoff_ms = !w[i].fails ? 0 : !w[i].backoff_ms ? 1000 :
				  w[i].backoff_ms * 2 > BACKOFF_MAX_MS ?
				  BACKOFF_MAX_MS : w[i].backoff_ms * 2;
		w[i].due = now + w[i].backoff_ms;
		logmsg(NULL, "worker %d (pid %ld) %s %d; restarting%s", i + 1,
		       pid, sig ? "killed by signal" : "exited with status",
		       sig ? sig : status, w[i].backoff_ms ? " after a wait" :
		       "");
	}
	for (i = 0; i < n; i++)
		live += w[i].pid > 0;
	return live;
}

/* Pass each new TERM, INT and HUP on; take a new -s from a SIGHUP
 * (returns 1 then). */
static int workers_signal(struct worker *w, int n, int *seen)
{
	static const int sigs[3] = {SIGTERM, SIGINT, SIGHUP};
	int got[3], i, k;
	struct settings s;

	got[0] = sig_term;
	got[1] = sig_int;
	got[2] = sig_hup;
	for (k = 0; k < 3; k++) {
		for (i = 0; i < n && got[k] != seen[k]; i++)
			if (w[i].pid > 0)
				os_kill(w[i].pid, sigs[k]);
		seen[k] = got[k];
	}
	k = got[2] != seen[3] && settings_load(&s) == 0;
	if (k) {
		cfg.stats = s.stats;
		settings_free(&s);
	}
	seen[3] = got[2];
	return k;
}

/* Returns in each worker, never in the supervisor. */
static void supervise(int n)
{
	struct worker *w = calloc((size_t)n, sizeof *w);
	int64_t stats_next = 0, next;
	int i, k, live = 0, fails, seen[4] = {0, 0, 0, 0}, usr1 = 0;

	if (!w)
		die(1, "out of memory");
	logmsg(NULL, "%d workers started (%s listener%s)", n, reuseport ?
	       "SO_REUSEPORT" : "one shared", reuseport ? "s" : "");
	for (;;) {
		now = clock_ms();
		live = workers_reap(w, n);
		if (sig_term || sig_int) { /* the ports are free at once */
			for (k = 0; listen_fds && k < n; k++)
				sock_close(listen_fds[k]);
			if (listen_fd >= 0 && !listen_fds)
				sock_close(listen_fd);
			listen_fd = -1;
			free(listen_fds);
			listen_fds = NULL;
			if (metrics_fd >= 0)
				sock_close(metrics_fd);
			metrics_fd = -1;
			if (!live)
				break;
		}
		for (i = 0, fails = 0; i < n; i++)
			fails += w[i].fails >= WORKER_TRIES;
		if (fails == n) {
			logmsg(NULL, "every worker died at once %d times in a "
			       "row: giving up", WORKER_TRIES);
			process_end();
			exit(1);
		}
		for (i = 0, next = 0; i < n && !sig_term && !sig_int; i++) {
			if (!w[i].pid && now >= w[i].due &&
			    worker_start(w, i, n)) {
				free(w);
				return;
			}
			if (!w[i].pid)
				next = earliest(next, w[i].due);
		}
		if (workers_signal(w, n, seen))
			stats_next = 0; /* -s may have changed */
		if (sig_usr1 != usr1 || (stats_next && now >= stats_next)) {
			usr1 = sig_usr1;
			stats_log();
			stats_next = 0;
		}
		if (cfg.stats && !stats_next)
			stats_next = now + (int64_t)cfg.stats * 1000;
		/* until SIGCHLD, a signal to pass on, a restart or -s */
		next = earliest(next, stats_next);
		os_wait(NULL, 0, !next ? -1 : next > now ? next - now : 0);
	}
	free(w);
	process_end();
	exit(0);
}

/* ==== main ============================================================== */

int main(int argc, char **argv)
{
	os_no_dumps(); /* before any secret is in memory */
	sock_init();
	options_parse(argc, argv);
	if (cli.version) {
		say(1, PROG " " VERSION "\n");
		return 0;
	}
	crypto_start();
	if (cli.selftest)
		return selftest(1) ? 1 : 0;
	if (cli.bench) {
		bench();
		return 0;
	}
	if (cli.genkey) {
		key_generate();
		return 0;
	}
	if (settings_load(&cfg) < 0)
		die(2, "%s", errbuf);
	settings_use();
	log_start();
	if (key_load() < 0)
		die(2, "%s", errbuf);
	if (cli.key) /* gone from /proc/PID/cmdline from here on */
		wipe((char *)cli.key, strlen(cli.key));
	net_start();
	process_start();
	if (workers > 1)
		supervise(workers); /* returns in the workers */
	loop_start();
	run();
	loop_end();
	return 0;
}

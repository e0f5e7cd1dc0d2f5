/* Test driver: stand-ins for gstunnel.c's helpers, then lookup.c.
 * ./lk HOST PORT [passive] prints "inet|inet6 ADDR PORT" lines, or
 * "error: ..." and exits 1. Only this file uses stdio. */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/types.h>

static char errbuf[320];

static size_t fmt(char *out, size_t n, const char *f, ...)
	__attribute__((format(printf, 3, 4)));

static size_t fmt(char *out, size_t n, const char *f, ...)
{
	va_list ap;
	int r;

	va_start(ap, f);
	r = vsnprintf(out, n, f, ap);
	va_end(ap);
	return r < 0 ? 0 : (size_t)r;
}

static int rnd(void *out, size_t n)
{
	int fd = open("/dev/urandom", O_RDONLY);
	ssize_t r = fd < 0 ? -1 : read(fd, out, n);

	if (fd >= 0)
		close(fd);
	return r == (ssize_t)n ? 0 : -1;
}

static int64_t clock_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static char *file_read(const char *path, size_t max, size_t *len)
{
	char *buf = malloc(max + 1);
	ssize_t r = 1;
	int fd = open(path, O_RDONLY), e;

	*len = 0;
	while (fd >= 0 && buf && r && *len <= max)
		if ((r = read(fd, buf + *len, max + 1 - *len)) > 0)
			*len += (size_t)r;
		else if (r < 0 && errno != EINTR)
			break;
	e = errno;
	if (fd >= 0)
		close(fd);
	if (fd < 0 || r < 0 || !buf || *len > max) {
		fmt(errbuf, sizeof errbuf, "cannot read '%s': %s", path,
		    *len > max ? "too large" : strerror(e));
		free(buf);
		return NULL;
	}
	buf[*len] = 0;
	return buf;
}

static int set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	return fl < 0 ? -1 : fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

#include LOOKUP_SRC

int main(int argc, char **argv)
{
	struct addrinfo *l, *ai;
	char s[64];
	unsigned port;
	int64_t t0;
	int fd0, fd1;

	if (argc < 3)
		return 2;
	port = (unsigned)atoi(argv[2]);
	t0 = clock_ms();
	fd0 = dup(0);
	close(fd0);
	l = lookup(argv[1], port, argc > 3);
	if ((fd1 = dup(0)) != fd0)
		printf("fd leak\n");
	close(fd1);
	if (getenv("LK_TIME"))
		fprintf(stderr, "ms %lld\n", (long long)(clock_ms() - t0));
	if (!l) {
		printf("error: %s\n", errbuf);
		return 1;
	}
	for (ai = l; ai; ai = ai->ai_next) {
		const struct sockaddr_in *a4 = (const void *)ai->ai_addr;
		const struct sockaddr_in6 *a6 = (const void *)ai->ai_addr;

		if (ai->ai_socktype != SOCK_STREAM || ai->ai_protocol != 0 ||
		    ai->ai_addr->sa_family != ai->ai_family ||
		    ai->ai_addrlen != (ai->ai_family == AF_INET ?
		    sizeof *a4 : sizeof *a6)) {
			printf("bad node\n");
			return 3;
		}
		inet_ntop(ai->ai_family, ai->ai_family == AF_INET ?
		    (const void *)&a4->sin_addr : (const void *)&a6->sin6_addr,
		    s, sizeof s);
		printf("%s %s %u\n", ai->ai_family == AF_INET ? "inet" : "inet6",
		    s, (unsigned)ntohs(ai->ai_family == AF_INET ? a4->sin_port :
		    a6->sin6_port));
	}
	addrs_free(l);
	return 0;
}

/*
 * .ci/dns's driver: the whole of gstunnel.c (its main() renamed), so that
 * the resolver is tested with the real helpers, and a main() that prints
 * what lookup() returns. Build it with -DCLIENT and -lbearssl.
 * ./lk HOST PORT [passive] prints "inet|inet6 ADDR PORT" lines, or
 * "error: ..." and exits 1. Only this file uses stdio.
 */
#define main gstunnel_main
#include "../../gstunnel.c"
#undef main
#include <stdio.h>

int gstunnel_main(int argc, char **argv);

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

/*
 * tests/unit.c - unit tests of gstunnel.c's own small parts: the
 * formatter (fmt, udiv), the number parser, the config reader and the
 * option rows. It includes the whole of gstunnel.c (main renamed), as
 * .ci/dns/harness.c does, so it tests the real code. test.sh builds it
 * with -DCLIENT and -DSERVER and runs it; it prints one line per failed
 * check and "unit: N passed, N failed" and exits 1 if any failed. Only
 * this file uses stdio.
 */
#define main gstunnel_main
#include "../gstunnel.c"
#undef main
#include <stdio.h>

int gstunnel_main(int argc, char **argv);

static int passed, failed;

static void expect(int ok, const char *what, const char *got)
{
	if (ok) {
		passed++;
		return;
	}
	failed++;
	printf("FAILED %s%s%s\n", what, got ? ": got " : "", got ? got : "");
}

/* fmt(): the result and the length it returns. */
static void f_is(const char *want, size_t n, size_t want_len,
		 const char *out, size_t len)
{
	char what[200];

	snprintf(what, sizeof what, "fmt -> \"%s\" (%zu bytes, buffer %zu)",
		 want, want_len, n);
	expect(!strcmp(out, want) && len == want_len, what, out);
}

static void test_fmt(void)
{
	char b[64], w[64];
	unsigned long long u, v;
	unsigned r;
	int i;

	f_is("a 42 -7 x", 64, 9, b, fmt(b, 64, "a %d %d %c", 42, -7, 'x'));
	f_is("ff 4294967295", 64, 13, b, fmt(b, 64, "%x %u", 255u,
					       4294967295u));
	f_is("18446744073709551615", 64, 20, b, fmt(b, 64, "%llu",
						     18446744073709551615ULL));
	f_is("ffffffffffffffff", 64, 16, b, fmt(b, 64, "%llx",
						 18446744073709551615ULL));
	f_is("-9223372036854775808", 64, 20, b, fmt(b, 64, "%lld",
						     (long long)(-9223372036854775807LL
								 - 1)));
	f_is("-2147483648 0", 64, 13, b, fmt(b, 64, "%ld %lu",
					     (long)-2147483647L - 1, 0UL));
	f_is("[  ab][ab  ][%]", 64, 15, b, fmt(b, 64, "[%4s][%-4s][%%]",
					       "ab", "ab"));
	f_is("[   7][7   ]", 64, 12, b, fmt(b, 64, "[%4d][%-4u]", 7, 7u));
	f_is("abc", 4, 6, b, fmt(b, 4, "abcdef")); /* cut, NUL-terminated */
	f_is("", 1, 3, b, fmt(b, 1, "%s", "xyz"));
	expect(fmt(w, 0, "%s", "xyz") == 3, "fmt with n 0 writes nothing",
	       NULL);
	/* udiv against the CPU's own 64-bit division (this is 64-bit) */
	for (i = 0, u = 1; i < 200; i++, u = u * 6364136223846793005ULL +
	     1442695040888963407ULL) {
		v = u;
		r = udiv(&v, 10);
		expect(v == u / 10 && r == u % 10, "udiv by 10", NULL);
		v = u;
		r = udiv(&v, 1000);
		expect(v == u / 1000 && r == u % 1000, "udiv by 1000", NULL);
		v = u >> (i % 64);
		fmt(b, sizeof b, "%llu", v);
		snprintf(w, sizeof w, "%llu", v);
		expect(!strcmp(b, w), "%llu as printf prints it", b);
	}
}

static void n_is(const char *s, long min, long max, int ok, long want)
{
	char what[200];
	long v = -12345;
	int r = parse_num(s, min, max, "n", &v);

	snprintf(what, sizeof what, "parse_num(\"%s\", %ld, %ld) %s %ld", s,
		 min, max, ok ? "is" : "fails, not", want);
	snprintf(errbuf, 2, "%s", "");
	expect(ok ? r == 0 && v == want : r < 0 && v == -12345, what, NULL);
}

static void test_num(void)
{
	n_is("0", 0, 10, 1, 0);
	n_is("10", 0, 10, 1, 10);
	n_is("007", 0, 10, 1, 7);
	n_is("-3", -5, 5, 1, -3);
	n_is("11", 0, 10, 0, 0);
	n_is("-1", 0, 10, 0, 0);
	n_is("", 0, 10, 0, 0);
	n_is("-", -5, 10, 0, 0);
	n_is("1x", 0, 10, 0, 0);
	n_is(" 1", 0, 10, 0, 0);
	n_is("1 ", 0, 10, 0, 0);
	n_is("+1", 0, 10, 0, 0);
	n_is("999999999999999999999", 0, 1000000, 0, 0);
	n_is("1000000", 0, 1000000, 1, 1000000);
	n_is("1000001", 0, 1000000, 0, 0);
	parse_num("x", 1, 9, "-t SECONDS", &(long){0});
	expect(!strcmp(errbuf, "bad -t SECONDS 'x': want a number from 1 to "
		       "9"), "parse_num says why", errbuf);
}

/* A config file of n bytes, read into fresh settings: 0 or -1. */
static int conf_n(const char *text, size_t n, struct settings *s)
{
	static const char *path = "/tmp/gstunnel-unit.conf";
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600), r;

	if (fd < 0 || write(fd, text, n) != (ssize_t)n)
		return -2;
	close(fd);
	memset(s, 0, sizeof *s);
	r = config_read(s, path);
	unlink(path);
	return r;
}

static int conf(const char *text, struct settings *s)
{
	return conf_n(text, strlen(text), s);
}

static void conf_bad(const char *text, const char *why)
{
	struct settings s;
	char what[300];

	snprintf(what, sizeof what, "config \"%s\" is refused with \"%s\"",
		 text, why);
	expect(conf(text, &s) == -1 && strstr(errbuf, why), what, errbuf);
	settings_free(&s);
}

static void test_config(void)
{
	struct settings s;

	expect(conf("# a comment\n\n  timeout 7  # seconds\r\nverbose\n"
		    "keepalive 5,2,3\ncipher chacha20\nlisten :1\n", &s) == 0,
	       "a good config file is read", errbuf);
	expect(s.timeout == 7 && s.verbose && s.keepalive[0] == 5 &&
	       s.keepalive[1] == 2 && s.keepalive[2] == 3 &&
	       s.cipher == cipher_by_name("chacha20") &&
	       !strcmp(s.listen, ":1"), "and its values land in the settings",
	       NULL);
	settings_free(&s);
	expect(conf("key-file /x#y\n", &s) == 0 && !strcmp(s.key_file, "/x#y"),
	       "a '#' inside a value is kept", s.key_file);
	settings_free(&s);
	conf_bad("timeout 7\ntimeout 8\n", ":2: timeout: given twice");
	conf_bad("bogus 1\n", ":1: bogus: unknown name");
	conf_bad("timeout\n", ":1: timeout: needs a value");
	conf_bad("verbose 1\n", ":1: verbose: takes no value");
	conf_bad("genkey\n", ":1: genkey: unknown name");
	conf_bad("\ntimeout 0\n", ":2: bad timeout '0': want a number from 1");
	conf_bad("key 0123456789abcdef\nkey-file k\n", ":2: key-file: KEY "
		 "given twice (key and key-file)");
	conf_bad("keepalive 1,2\n", ":1: bad keepalive '1,2'");
	expect(conf_n("timeout 7\n\0verbose\n", 18, &s) == -1 &&
	       strstr(errbuf, "a NUL byte"), "a NUL byte is refused", errbuf);
	settings_free(&s);
	conf_bad("log somewhere\n", "want stderr or syslog");
}

static void test_rows(void)
{
	struct settings s;
	char what[200];
	int i, k, operands = 0;

	expect(N_OPTIONS <= OPT_MAX, "the rows fit settings.owned", NULL);
	for (i = 0; i < N_OPTIONS; i++) {
		const struct option *o = &options[i];

		snprintf(what, sizeof what, "row %s", o->name);
		memset(&s, 0, sizeof s);
		if (o->how & OPT_OTHER) /* the other program's */
			expect(opt_set(&s, i, "1", o->name) == -1 &&
			       strstr(errbuf, " is for gstunnel_"), what,
			       "the other program's option taken");
		else if (o->def) /* a default reads as a value would */
			expect(opt_set(&s, i, o->def, o->name) == 0, what,
			       errbuf);
		if (o->kind == K_NUM)
			expect(o->min <= o->max && (!o->def ||
			       *(long *)(void *)((char *)&s + o->off) >=
			       o->min), what, "limits");
		expect(o->off + (o->kind == K_NUM ? sizeof(long) :
				 o->kind == K_KEEPALIVE ? 3 * sizeof(int) :
				 sizeof(void *)) <= sizeof s, what,
		       "lands outside the settings");
		expect(!o->flag || (o->help && *o->help), what, "no help");
		expect(!o->flag || !operands, what,
		       "an option after an operand");
		operands += !o->flag;
		for (k = 0; k < i; k++) {
			expect(strcmp(o->name, options[k].name) != 0, what,
			       "name given twice");
			expect(!o->flag || o->flag != options[k].flag, what,
			       "flag given twice");
			expect(o->kind == K_FLAG || o->off != options[k].off,
			       what, "lands where another does");
		}
		settings_free(&s);
	}
	expect(operands == 3, "three operands", NULL);
	/* the defaults are what -h says */
	expect(settings_load(&s) == -1 && strstr(errbuf, "missing LISTEN"),
	       "no LISTEN: refused", errbuf);
	cli.val[N_OPTIONS - 3] = cli.listen = ":1";
	cli.val[N_OPTIONS - 2] = cli.remote = "a:1";
	expect(settings_load(&s) == 0 && s.timeout == TIMEOUT_DEFAULT &&
	       s.rotate == ROTATE_DEFAULT && s.wait == WAIT_DEFAULT &&
	       s.workers == 1 && s.keepalive[0] == 60 && s.keepalive[2] == 6 &&
	       s.cipher == &ciphers[0] && !given(&s, AT(cipher)),
	       "the defaults", NULL);
	settings_free(&s);
}

/* A random key of n bytes over the alphabet abc (as -g or openssl rand
 * -hex make them). */
static unsigned char pool_r[4096];
static size_t pool_at = sizeof pool_r;

static unsigned char random_byte(void) /* rnd() in blocks: it is a syscall */
{
	if (pool_at == sizeof pool_r) {
		rnd(pool_r, sizeof pool_r);
		pool_at = 0;
	}
	return pool_r[pool_at++];
}

static void random_key(unsigned char *k, size_t n, const char *abc)
{
	size_t i, a = strlen(abc);
	unsigned char r;

	for (i = 0; i < n; i++) {
		do
			r = random_byte();
		while (r >= 256 / a * a);
		k[i] = (unsigned char)abc[r % a];
	}
}

static void test_weak(void)
{
	static const char *weak[] = {
		"0123456789abcdef0123456789abcdef", "passwordpassword",
		"abcdefghijklmnopabcdefghijklmnop", "aaaaaaaaaaaaaaaa",
		"1234567890123456", "0000000000000000000000000000000000000000",
		"qwertyuiopasdfgh", "Password1234567!",
	};
	static const char *strong[] = {
		"pX3fL9qZ2mR7tK1wB8nV4cY6hJ0sD5gE",
		"9f86d081884c7d659a2feaa0c55ad015", /* openssl rand -hex 16 */
		"HAWOd3jS8WmqDdHf2I/5AuIhtbp1BiyG", /* openssl rand -base64 24 */
	};
	unsigned char k[32];
	char what[120];
	size_t i, n;
	int bad_g = 0, bad_hex = 0, bad_raw = 0;

	for (i = 0; i < COUNT(weak); i++) {
		snprintf(what, sizeof what, "'%s' looks weak", weak[i]);
		expect(key_weak((const unsigned char *)weak[i],
				strlen(weak[i]) > 32 ? 32 : strlen(weak[i])),
		       what, NULL);
	}
	for (i = 0; i < COUNT(strong); i++) {
		snprintf(what, sizeof what, "'%s' looks random", strong[i]);
		expect(!key_weak((const unsigned char *)strong[i], 32), what,
		       NULL);
	}
	for (i = 0; i < 20000; i++) {
		random_key(k, 32, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqr"
			   "stuvwxyz0123456789");
		bad_g += key_weak(k, 32);
		random_key(k, 32, "0123456789abcdef");
		bad_hex += key_weak(k, 32);
		for (n = 0; n < 32; n++)
			k[n] = random_byte();
		bad_raw += key_weak(k, 32);
	}
	printf("weak-looking among 20000 random keys: %d -g style (drawn "
	       "again by -g), %d hex, %d raw\n", bad_g, bad_hex, bad_raw);
	expect(bad_g < 20 && bad_hex < 20 && bad_raw < 20,
	       "random keys seldom look weak", NULL);
}

int main(void)
{
	test_fmt();
	test_num();
	test_config();
	test_rows();
	test_weak();
	printf("unit: %d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}

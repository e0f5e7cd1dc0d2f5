# gstunnel - see README. Works with GNU make and BSD make.
#
#   make                          both binaries
#   make test                     build, then ./test.sh
#   make install PREFIX=/usr DESTDIR=/tmp/pkg
#   make CC=mips-linux-musl-gcc BEARSSL_CFLAGS=-I/opt/bearssl/inc \
#        BEARSSL_LIBS=/opt/bearssl/build/libbearssl.a static
#
# CC, CFLAGS, CPPFLAGS, LDFLAGS, PREFIX and DESTDIR are the user's; the
# project's own flags live in GS_CFLAGS and GS_LDFLAGS.

VERSION = 0.1.0
PREFIX ?= /usr/local
BINDIR = $(PREFIX)/bin
CFLAGS ?= -O2
BEARSSL_CFLAGS =
BEARSSL_LIBS = -lbearssl
GS_CFLAGS = -std=c99 -Wall -Wextra -pedantic -DVERSION=\"$(VERSION)\"
GS_LDFLAGS =
BINS = gstunnel_client gstunnel_server

all: $(BINS)

gstunnel_client: gstunnel.c .bearssl-ok
	$(CC) $(GS_CFLAGS) $(CPPFLAGS) $(BEARSSL_CFLAGS) $(CFLAGS) -DCLIENT \
		-o $@ gstunnel.c $(LDFLAGS) $(GS_LDFLAGS) $(BEARSSL_LIBS)

gstunnel_server: gstunnel.c .bearssl-ok
	$(CC) $(GS_CFLAGS) $(CPPFLAGS) $(BEARSSL_CFLAGS) $(CFLAGS) -DSERVER \
		-o $@ gstunnel.c $(LDFLAGS) $(GS_LDFLAGS) $(BEARSSL_LIBS)

# One clear line instead of a page of compiler errors.
.bearssl-ok:
	@printf '#include <bearssl.h>\nint main(void){br_sha256_context c;br_sha256_init(&c);return 0;}\n' \
	    > .bearssl-probe.c
	@if $(CC) $(CPPFLAGS) $(BEARSSL_CFLAGS) $(CFLAGS) -o .bearssl-probe \
	    .bearssl-probe.c $(LDFLAGS) $(GS_LDFLAGS) $(BEARSSL_LIBS) \
	    >/dev/null 2>&1; then touch $@; rm -f .bearssl-probe*; \
	else rm -f .bearssl-probe*; echo "gstunnel: BearSSL not found:" \
	    "apt-get install libbearssl-dev, or set BEARSSL_CFLAGS and" \
	    "BEARSSL_LIBS" >&2; exit 1; fi

static:
	$(MAKE) GS_LDFLAGS=-static $(BINS)

test: $(BINS)
	./test.sh

install: $(BINS)
	mkdir -p $(DESTDIR)$(BINDIR)
	cp $(BINS) $(DESTDIR)$(BINDIR)/
	chmod 755 $(DESTDIR)$(BINDIR)/gstunnel_client \
		$(DESTDIR)$(BINDIR)/gstunnel_server

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/gstunnel_client \
		$(DESTDIR)$(BINDIR)/gstunnel_server

clean:
	rm -f $(BINS) .bearssl-ok .bearssl-probe*

.PHONY: all static test install uninstall clean

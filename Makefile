# gstunnel - see README. Works with GNU make and BSD make.
#
#   make                          both binaries
#   make test                     build, then ./test.sh
#   make install PREFIX=/usr DESTDIR=/tmp/pkg
#   make clean static CC=mips-linux-musl-gcc \
#        BEARSSL_CFLAGS=-I/opt/bearssl/inc \
#        BEARSSL_LIBS=/opt/bearssl/build/libbearssl.a
#
# CC, CFLAGS, CPPFLAGS, LDFLAGS, PREFIX and DESTDIR are the user's; the
# project's own flags live in GS_CFLAGS and GS_LDFLAGS. After changing the
# compiler, run "make clean" first: make only compares file times.

VERSION = 0.1.0
PREFIX ?= /usr/local
BINDIR = $(PREFIX)/bin
CFLAGS ?= -O2
BEARSSL_CFLAGS ?=
BEARSSL_LIBS ?= -lbearssl
GS_CFLAGS = -std=c99 -Wall -Wextra -pedantic -DVERSION=\"$(VERSION)\"
GS_LDFLAGS =
BINS = gstunnel_client gstunnel_server

# One clear line instead of a page of compiler errors.
CHECK = $(CC) --version >/dev/null 2>&1 || { \
	echo "gstunnel: compiler '$(CC)' not found" >&2; exit 1; }; \
	printf '\#include <bearssl.h>\n' | $(CC) $(CPPFLAGS) $(BEARSSL_CFLAGS) \
	-E -x c - >/dev/null 2>&1 || { echo "gstunnel: <bearssl.h> not found:" \
	"apt-get install libbearssl-dev, or set BEARSSL_CFLAGS and" \
	"BEARSSL_LIBS" >&2; exit 1; }

all: $(BINS)

gstunnel_client: gstunnel.c
	@$(CHECK)
	$(CC) $(GS_CFLAGS) $(CPPFLAGS) $(BEARSSL_CFLAGS) $(CFLAGS) -DCLIENT \
		-o $@ gstunnel.c $(LDFLAGS) $(GS_LDFLAGS) $(BEARSSL_LIBS)

gstunnel_server: gstunnel.c
	@$(CHECK)
	$(CC) $(GS_CFLAGS) $(CPPFLAGS) $(BEARSSL_CFLAGS) $(CFLAGS) -DSERVER \
		-o $@ gstunnel.c $(LDFLAGS) $(GS_LDFLAGS) $(BEARSSL_LIBS)

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
	rm -f $(BINS)

.PHONY: all static test install uninstall clean

#!/usr/bin/python3
"""fmtlint.py FILE: every format string that gstunnel.c hands to its own
formatter (fmt, say, logmsg, fail, die) uses only the conversions vfmt()
implements: %s %c %d %u %x, with an optional '-', a width and l or ll,
and %%. The compiler checks the arguments' types as for printf, so a
printf-only conversion (%02x, %zu, %f, %p) would compile and print wrong.
Prints each offence and exits 1; prints the count checked and exits 0."""
import re, sys

CALLS = {"fmt": 2, "say": 1, "logmsg": 1, "fail": 1, "die": 1}
OK = re.compile(r"%(%|-?([1-9][0-9]*)?(ll|l)?[scdux])")


def args(src, i):
    """The top-level arguments of the call whose '(' is at i."""
    depth, cur, out, j = 0, "", [], i + 1
    while j < len(src):
        ch = src[j]
        if ch == '"' or ch == "'":
            k = j + 1
            while src[k] != ch:
                k += 2 if src[k] == "\\" else 1
            cur += src[j:k + 1]
            j = k + 1
            continue
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            if depth == 0:
                out.append(cur)
                return out
            depth -= 1
        elif ch == "," and depth == 0:
            out.append(cur)
            cur = ""
            j += 1
            continue
        cur += ch
        j += 1
    return out


def main():
    src = open(sys.argv[1]).read()
    src = re.sub(r"/\*.*?\*/", lambda m: re.sub(r"[^\n]", " ", m.group(0)),
                 src, flags=re.S)
    bad = checked = 0
    for m in re.finditer(r"\b(%s)\s*\(" % "|".join(CALLS), src):
        if src[:m.start()].rstrip().endswith(("static void", "static int",
                                               "static size_t")):
            continue  # a definition or prototype
        a = args(src, m.end() - 1)
        pos = CALLS[m.group(1)]
        if len(a) <= pos:
            continue
        lits = re.findall(r'"((?:[^"\\]|\\.)*)"', a[pos])
        if not lits:
            continue  # not a literal (vfmt's own f, say)
        checked += 1
        fmtstr = "".join(lits)
        rest = OK.sub("", fmtstr)
        if "%" in rest:
            line = src[:m.start()].count("\n") + 1
            print("%s:%d: %s(\"%s\"): a conversion vfmt() does not "
                  "implement" % (sys.argv[1], line, m.group(1), fmtstr))
            bad += 1
    print("%d format strings checked, %d bad" % (checked, bad))
    sys.exit(1 if bad or not checked else 0)


main()

"""A man page (roff, section 1) for a program, written from the program's own --help and --version,
and, for a program with commands (deit_lora), every command's --help: the manual and the help
cannot disagree. Usage: mkman.py PROGRAM NAME "ONE-LINE DESCRIPTION" OUT.1"""
import datetime, os, re, subprocess, sys

prog, name, what, out = sys.argv[1:5]


def run(*args):
    r = subprocess.run([prog, *args], capture_output=True, text=True, env=dict(os.environ, GOMP_SPINCOUNT="10000"))
    return r.stdout


def esc(s):  # roff: backslashes, and a line starting with . or '
    s = s.replace("\\", "\\e").replace("-", "\\-")
    return ("\\&" + s) if s[:1] in (".", "'") else s


def section(text):
    """help text as roff: 'usage:' lines bold, option lines as tagged paragraphs, the rest as text"""
    lines = []
    for line in text.rstrip("\n").split("\n"):
        m = re.match(r"^  (--?[\w-]+(?: [A-Z]+)?)\s{2,}(.*)$", line) or re.match(r"^  ([a-z][\w-]*)\s+(.*)$", line)
        if m:
            lines += [".TP", "\\fB" + esc(m.group(1)) + "\\fR", esc(m.group(2))]
        elif line.startswith("usage: "):
            lines += [".PP", "\\fB" + esc(line[7:]) + "\\fR", ".br"]
        elif not line.strip():
            lines.append(".PP")
        elif line.endswith(":") and not line.startswith(" "):
            lines += [".PP", "\\fI" + esc(line) + "\\fR", ".br"]
        else:
            lines += [esc(line.strip()), ".br"]
    return lines


top = run("--help")
version = run("--version").split("\n")[0]
date = datetime.datetime.utcfromtimestamp(int(os.environ.get("SOURCE_DATE_EPOCH", "0")) or 0).strftime("%Y-%m-%d")
page = ['.TH %s 1 "%s" "%s" "User Commands"' % (name.upper(), date, esc(version)), ".SH NAME", "%s \\- %s" % (name, esc(what)),
        ".SH SYNOPSIS"] + section(top)
cmds = re.findall(r"^  ([a-z][\w-]*)\s", top.split("commands:", 1)[1], re.M) if "commands:" in top else []
if cmds:
    page.append(".SH COMMANDS")
    for c in cmds:
        page += [".SS %s %s" % (name, c)] + section(run(c, "--help"))
page += [".SH VERSION", esc(version), ".SH SEE ALSO", "The README and docs/ in /usr/share/doc/cgrad (or the prefix's share/doc/cgrad)."]
open(out, "w").write("\n".join(page) + "\n")

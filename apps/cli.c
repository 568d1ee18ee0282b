// cli.c: see cli.h.
#include <stdio.h>

#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

bool cli_wants_help(int argc, char **argv, int first) {
    for (int i = first; i < argc && strcmp(argv[i], "--"); i++) // after "--", --help is a file name
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) return true;
    return false;
}

int cli_command(const CliCommand *cmd, int argc, char **argv, const char **pos, int maxpos) {
    if (cli_wants_help(argc, argv, 2)) {
        cli_help(stdout, cmd->usage, cmd->about, cmd->opts, cmd->nopts);
        return CLI_HELP;
    }
    char prog[128];
    snprintf(prog, sizeof prog, "deit_lora %s", cmd->name);
    return cli_parse(prog, argc, argv, 2, cmd->opts, cmd->nopts, pos, maxpos);
}

void cli_help(FILE *f, const char *usage, const char *about, const CliOpt *opts, int nopts) {
    fprintf(f, "usage: %s\n%s\n", usage, about);
    if (nopts) fprintf(f, "\noptions:\n");
    for (int i = 0; i < nopts; i++) {
        const char *arg = opts[i].kind == OPT_FLAG ? "" : opts[i].kind == OPT_STR ? " VALUE" : " N";
        char left[64];
        snprintf(left, sizeof left, "%s%s", opts[i].name, arg);
        fprintf(f, "  %-24s %s\n", left, opts[i].help);
    }
}

static int set_value(const char *prog, const CliOpt *o, const char *v) {
    char *end;
    errno = 0;
    switch (o->kind) {
    case OPT_INT: {
        long x = strtol(v, &end, 10);
        if (!*v || *end || errno) {
            fprintf(stderr, "%s: %s: '%s' is not an integer\n", prog, o->name, v);
            return -1;
        }
        if (x < o->lo || x > o->hi) {
            fprintf(stderr, "%s: %s: %ld is outside [%.0f, %.0f]\n", prog, o->name, x, o->lo, o->hi);
            return -1;
        }
        *(long *)o->out = x;
        return 0;
    }
    case OPT_DOUBLE: {
        double x = strtod(v, &end);
        if (!*v || *end || errno || !isfinite(x)) {
            fprintf(stderr, "%s: %s: '%s' is not a number\n", prog, o->name, v);
            return -1;
        }
        if (x < o->lo || x > o->hi) {
            fprintf(stderr, "%s: %s: %g is outside [%g, %g]\n", prog, o->name, x, o->lo, o->hi);
            return -1;
        }
        *(double *)o->out = x;
        return 0;
    }
    case OPT_STR:
        if (!*v) {
            fprintf(stderr, "%s: %s: empty value\n", prog, o->name);
            return -1;
        }
        *(const char **)o->out = v;
        return 0;
    case OPT_FLAG: break;
    }
    return -1;
}

int cli_parse(const char *prog, int argc, char **argv, int first, const CliOpt *opts, int nopts, const char **pos, int maxpos) {
    int np = 0;
    bool only_pos = false;
    for (int i = first; i < argc; i++) {
        const char *a = argv[i];
        if (only_pos || a[0] != '-' || !strcmp(a, "-")) {
            if (np == maxpos) {
                fprintf(stderr, "%s: unexpected argument '%s'\n", prog, a);
                return -1;
            }
            pos[np++] = a;
            continue;
        }
        if (!strcmp(a, "--")) {
            only_pos = true;
            continue;
        }
        const char *eq = strchr(a, '=');
        size_t L = eq ? (size_t)(eq - a) : strlen(a);
        const CliOpt *o = NULL;
        for (int k = 0; k < nopts; k++)
            if (strlen(opts[k].name) == L && !strncmp(opts[k].name, a, L)) o = &opts[k];
        if (!o) {
            fprintf(stderr, "%s: unknown option '%.*s' (see --help)\n", prog, (int)L, a);
            return -1;
        }
        if (o->kind == OPT_FLAG) {
            if (eq) {
                fprintf(stderr, "%s: %s takes no value\n", prog, o->name);
                return -1;
            }
            *(bool *)o->out = true;
            continue;
        }
        const char *v = eq ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
        if (!v) {
            fprintf(stderr, "%s: %s needs a value\n", prog, o->name);
            return -1;
        }
        if (set_value(prog, o, v) != 0) return -1;
    }
    return np;
}

int cli_int_list(const char *s, long *out, int max) {
    int n = 0;
    while (*s) {
        char *end;
        errno = 0;
        long v = strtol(s, &end, 10);
        if (end == s || errno || n == max) return -1;
        out[n++] = v;
        s = end;
        if (*s == ',')
            s++;
        else if (*s)
            return -1;
    }
    return n;
}

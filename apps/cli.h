// cli.h: command-line options for the apps. Each command declares a table of options; parsing
// checks types and ranges and reports "PROG CMD: --flag: problem" (exit code 2 by convention).
#ifndef CGRAD_CLI_H
#define CGRAD_CLI_H

#include <stdbool.h>
#include <stddef.h>

typedef enum { OPT_FLAG, OPT_INT, OPT_DOUBLE, OPT_STR } OptKind;

typedef struct {
    const char *name; // "--lr"
    OptKind kind;
    void *out;        // bool*, long*, double*, const char**
    double lo, hi;    // range for numbers (inclusive)
    const char *help; // "learning rate (default 6e-4)"
} CliOpt;

// Parses argv[first..argc): options from the table, the rest into pos[] (at most maxpos).
// Returns the number of positional arguments, or -1 after printing one clear message.
int cli_parse(const char *prog, int argc, char **argv, int first, const CliOpt *opts, int nopts, const char **pos, int maxpos);
void cli_help(FILE *f, const char *usage, const char *about, const CliOpt *opts, int nopts);
bool cli_wants_help(int argc, char **argv, int first);

// One command's command line (argv[2..]): with --help or -h before any "--", its usage, what it
// does and its options are printed to stdout and CLI_HELP is returned (the command exits 0); else
// cli_parse's result under the name "deit_lora NAME": the count of positional arguments, or -1
// after one message (the command exits 2).
typedef struct {
    const char *name; // "predict"
    const char *usage, *about;
    const CliOpt *opts;
    int nopts;
} CliCommand;
#define CLI_HELP (-2)
int cli_command(const CliCommand *cmd, int argc, char **argv, const char **pos, int maxpos);
// "1000,1000" -> up to max integers; returns how many, -1 if malformed
int cli_int_list(const char *s, long *out, int max);

#endif

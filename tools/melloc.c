/* SPDX-License-Identifier: MIT */
/*
 * The melloc command: runs a program on melloc.  It preloads the library it was
 * installed with (MELLOC_LIB overrides the path), or with --hardened the hardened
 * library installed beside it (MELLOC_HARDENED_LIB overrides that path), adds its
 * settings to MELLOC_CONF and
 * replaces itself with the program, so that the program's status, output and process
 * id are its own; the statistics at exit come from the library, on stderr.  It links
 * nothing from melloc and never touches the program's arguments.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef MELLOC_LIB_PATH
#error "MELLOC_LIB_PATH (the installed libmelloc.so.0) must be defined by the build"
#endif
#ifndef MELLOC_HARDENED_LIB_PATH
#error "MELLOC_HARDENED_LIB_PATH (the installed libmelloc-hardened.so.0) must be defined by the build"
#endif

/* The shell's statuses: a usage error, a program that cannot run, one that is missing. */
enum { EXIT_USAGE = 2, EXIT_CANNOT_RUN = 126, EXIT_NOT_FOUND = 127 };

static const char usage_text[] =
    "Usage: melloc [--hardened] [--stats[=FORMAT]] [--prof[=PREFIX]]\n"
    "              [--conf KEY:VALUE,...] [--] PROGRAM [ARGS...]\n"
    "       melloc --version | --help\n"
    "Runs PROGRAM with the melloc allocator preloaded.\n"
    "\n"
    "  --hardened        preload the hardened library, whose heap defends itself\n"
    "                    against misuse, instead of the default one\n"
    "  --stats[=FORMAT]  print statistics on stderr at exit (FORMAT: text or json)\n"
    "  --prof[=PREFIX]   heap profile: sample allocations, write PREFIX.PID.SEQ.pb.gz\n"
    "                    (pprof) and .folded at exit (PREFIX: melloc.prof)\n"
    "  --conf SETTINGS   settings added to MELLOC_CONF, such as narenas:1,gc:false\n"
    "  --version         print the version and exit\n"
    "  --help            print this help and exit\n"
    "\n"
    "Environment:\n"
    "  MELLOC_CONF       settings, see melloc(7)\n"
    "  MELLOC_LIB        the library to preload, instead of\n"
    "                    " MELLOC_LIB_PATH "\n"
    "  MELLOC_HARDENED_LIB\n"
    "                    the library --hardened preloads, instead of\n"
    "                    " MELLOC_HARDENED_LIB_PATH "\n"
    "\n"
    "The exit status is PROGRAM's, 127 when PROGRAM or the library is not found,\n"
    "2 for a usage error.\n";

static void usage_error(const char *fmt, const char *arg) {
  fputs("melloc: ", stderr);
  fprintf(stderr, fmt, arg);
  fputs("\n", stderr);
  fputs(usage_text, stderr);
  exit(EXIT_USAGE);
}

static void out_of_memory(void) {
  fputs("melloc: out of memory\n", stderr);
  exit(EXIT_CANNOT_RUN);
}

/* Appends item to the comma-separated list *list (which may be NULL). */
static void list_append(char **list, const char *sep, const char *item) {
  size_t old = *list ? strlen(*list) : 0;
  size_t n = old + strlen(sep) + strlen(item) + 1;
  char *s = realloc(*list, n);
  if (!s) out_of_memory();
  if (old) {
    strcat(s, sep);
    strcat(s, item);
  } else {
    strcpy(s, item);
  }
  *list = s;
}

/* Settings must be KEY:VALUE pairs: the library would only warn and run on, which hides a
   typo on a command line; the keys and values themselves are the library's to check. */
static void check_conf(const char *conf) {
  const char *p = conf;
  for (;;) {
    const char *end = strchr(p, ',');
    size_t len = end ? (size_t)(end - p) : strlen(p);
    const char *colon = memchr(p, ':', len);
    if (len && (!colon || colon == p || colon + 1 == p + len))
      usage_error("--conf: '%s' is not a list of KEY:VALUE pairs", conf);
    if (!end) break;
    p = end + 1;
  }
}

int main(int argc, char **argv) {
  char *conf = NULL; /* what this command adds to MELLOC_CONF */
  int hardened = 0;  /* --hardened: preload libmelloc-hardened.so.0 */
  int i;
  for (i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (a[0] != '-' || a[1] == '\0') break; /* PROGRAM ("-" is a name, not an option) */
    if (!strcmp(a, "--")) {
      i++;
      break;
    }
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
      fputs(usage_text, stdout);
      return fflush(stdout) ? 1 : 0;
    }
    if (!strcmp(a, "--version")) {
      printf("melloc %s\n", PACKAGE_VERSION);
      return fflush(stdout) ? 1 : 0;
    }
    if (!strcmp(a, "--hardened")) {
      hardened = 1;
    } else if (!strcmp(a, "--stats") || !strcmp(a, "--stats=text")) {
      list_append(&conf, ",", "stats_print:true,stats_format:text");
    } else if (!strcmp(a, "--stats=json")) {
      list_append(&conf, ",", "stats_print:true,stats_format:json");
    } else if (!strncmp(a, "--stats=", 8)) {
      usage_error("--stats: unknown format '%s' (text or json)", a + 8);
    } else if (!strcmp(a, "--prof")) {
      list_append(&conf, ",", "prof:true,prof_dump_at_exit:true");
    } else if (!strncmp(a, "--prof=", 7)) {
      const char *prefix = a + 7;
      if (!*prefix || strchr(prefix, ','))
        usage_error("--prof: '%s' is not a file name prefix (none, or a comma in it)", prefix);
      list_append(&conf, ",", "prof:true,prof_dump_at_exit:true,prof_prefix:");
      list_append(&conf, "", prefix);
    } else if (!strcmp(a, "--conf") || !strncmp(a, "--conf=", 7)) {
      const char *v = a[6] == '=' ? a + 7 : argv[++i];
      if (!v) usage_error("--conf needs an argument%s", "");
      check_conf(v);
      if (*v) list_append(&conf, ",", v);
    } else {
      usage_error("unknown option '%s'", a);
    }
  }
  if (i >= argc) usage_error("no PROGRAM to run%s", "");

  /* Each library has its own override: make check points both at the build tree, and a
     MELLOC_LIB set for the default library must not quietly replace the hardened one. */
  const char *lib = getenv(hardened ? "MELLOC_HARDENED_LIB" : "MELLOC_LIB");
  if (!lib || !*lib) lib = hardened ? MELLOC_HARDENED_LIB_PATH : MELLOC_LIB_PATH;
  if (access(lib, R_OK) != 0) {
    fprintf(stderr, "melloc: cannot use the library %s: %s\n", lib, strerror(errno));
    return EXIT_NOT_FOUND;
  }
  /* The dynamic loader splits LD_PRELOAD at spaces and colons. */
  if (strpbrk(lib, " :")) {
    fprintf(stderr, "melloc: cannot preload %s: its path contains a space or a colon\n", lib);
    return EXIT_NOT_FOUND;
  }

  char *preload = NULL;
  list_append(&preload, "", lib);
  const char *old_preload = getenv("LD_PRELOAD");
  if (old_preload && *old_preload) list_append(&preload, ":", old_preload);
  if (setenv("LD_PRELOAD", preload, 1) != 0) out_of_memory();

  if (conf) {
    /* Later pairs win in the library's parser, so ours come after the environment's. */
    char *all = NULL;
    const char *old_conf = getenv("MELLOC_CONF");
    if (old_conf && *old_conf) list_append(&all, "", old_conf);
    list_append(&all, ",", conf);
    if (setenv("MELLOC_CONF", all, 1) != 0) out_of_memory();
  }

  execvp(argv[i], &argv[i]);
  int err = errno;
  fprintf(stderr, "melloc: %s: %s\n", argv[i], strerror(err));
  return err == ENOENT ? EXIT_NOT_FOUND : EXIT_CANNOT_RUN;
}

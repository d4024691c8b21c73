/*
 * edgeproc-launch: the one exec between the fork server and a child's node. It does in one
 * small process what util-linux's `prlimit` and `unshare` did in two (each a process image of
 * its own, loaded to make one or two system calls): ~4 ms of wall time per spawn here.
 *
 *   edgeproc-launch [--nofile=N] [--core=N] [--fsize=N|unlimited] [--nproc=N] [--net]
 *                   [--uid=U --gid=G] -- COMMAND ARG...
 *
 * In that order: the resource limits (soft = hard, so the child cannot raise them), a network
 * namespace of its own, then the switch to uid U and gid G with no supplementary groups, then
 * exec. It fails closed: if any step fails it says which on stderr and exits 127, never running
 * COMMAND with less than it was asked for.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <grp.h>
#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

static const char *self = "edgeproc-launch";

static void fail(const char *step, const char *detail) {
  fprintf(stderr, "%s: %s: %s\n", self, step, detail);
  exit(127);
}

/* A whole decimal number in [0, max], or fail naming the option. */
static unsigned long number(const char *option, const char *text, unsigned long max) {
  char *end;
  errno = 0;
  unsigned long value = strtoul(text, &end, 10);
  if (errno != 0 || end == text || *end != '\0' || text[0] == '-' || value > max) fail(option, "not a number in range");
  return value;
}

static void limit(const char *option, int resource, const char *text) {
  rlim_t value = strcmp(text, "unlimited") == 0 ? RLIM_INFINITY : (rlim_t)number(option, text, ULONG_MAX - 1);
  struct rlimit both = { .rlim_cur = value, .rlim_max = value };
  if (setrlimit(resource, &both) != 0) fail(option, strerror(errno));
}

static const char *value_of(const char *arg, const char *option) {
  size_t length = strlen(option);
  return strncmp(arg, option, length) == 0 && arg[length] == '=' ? arg + length + 1 : NULL;
}

int main(int argc, char **argv) {
  int net = 0, command = 0;
  const char *uid = NULL, *gid = NULL, *text;
  for (int i = 1; i < argc; i++) {
    const char *arg = argv[i];
    if (strcmp(arg, "--") == 0) {
      command = i + 1;
      break;
    }
    if ((text = value_of(arg, "--nofile"))) limit("--nofile", RLIMIT_NOFILE, text);
    else if ((text = value_of(arg, "--core"))) limit("--core", RLIMIT_CORE, text);
    else if ((text = value_of(arg, "--fsize"))) limit("--fsize", RLIMIT_FSIZE, text);
    else if ((text = value_of(arg, "--nproc"))) limit("--nproc", RLIMIT_NPROC, text);
    else if ((text = value_of(arg, "--uid"))) uid = text;
    else if ((text = value_of(arg, "--gid"))) gid = text;
    else if (strcmp(arg, "--net") == 0) net = 1;
    else fail(arg, "unknown option");
  }
  if (command == 0 || command >= argc) fail("usage", "edgeproc-launch [OPTION]... -- COMMAND [ARG]...");
  if ((uid == NULL) != (gid == NULL)) fail("--uid/--gid", "give both or neither");

  if (net && unshare(CLONE_NEWNET) != 0) fail("unshare(CLONE_NEWNET)", strerror(errno));
  if (uid) {
    gid_t g = (gid_t)number("--gid", gid, UINT_MAX - 1);
    uid_t u = (uid_t)number("--uid", uid, UINT_MAX - 1);
    if (setgroups(0, NULL) != 0) fail("setgroups", strerror(errno));
    if (setgid(g) != 0) fail("setgid", strerror(errno));
    if (setuid(u) != 0) fail("setuid", strerror(errno));
    /* A process that could take root back would make the switch worthless. */
    if (u != 0 && (setuid(0) == 0 || seteuid(0) == 0)) fail("setuid", "root could be regained");
  }
  execvp(argv[command], argv + command);
  fail(argv[command], strerror(errno));
  return 127;
}

/*
 * edgeproc-launch: the one exec between the fork server and a child's node. It does in one
 * small process what util-linux's `prlimit` and `unshare` did in two (each a process image of
 * its own, loaded to make one or two system calls): ~4 ms of wall time per spawn here.
 *
 *   edgeproc-launch [--nofile=N] [--core=N] [--fsize=N|unlimited] [--nproc=N] [--net]
 *                   [--uid=U --gid=G] [--deny-syscalls] -- COMMAND ARG...
 *
 * In that order: the resource limits (soft = hard, so the child cannot raise them), a network
 * namespace of its own, the switch to uid U and gid G with no supplementary groups, a seccomp
 * filter refusing the system calls of `denied` below and namespaces made by clone, then exec. It fails closed: if any step
 * fails it says which on stderr and exits 127, never running COMMAND with less than it was
 * asked for.
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
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

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

/*
 * System calls Node never makes, each a way into the kernel or out of the other layers that an
 * escaped tenant could use: tracing or reading other processes, namespaces and mounts, BPF,
 * perf counters, the kernel keyring, userfaultfd and io_uring (Node 20 leaves it off), kernel
 * modules, and the machine-wide ones. Refused with EPERM, so code that probes for one falls back.
 */
static const int denied[] = {
  SYS_ptrace, SYS_process_vm_readv, SYS_process_vm_writev, SYS_kcmp,
#ifdef SYS_pidfd_getfd
  SYS_pidfd_getfd,
#endif
  SYS_unshare, SYS_setns, SYS_mount, SYS_umount2, SYS_pivot_root, SYS_chroot,
#ifdef SYS_open_tree
  SYS_open_tree, SYS_move_mount, SYS_fsopen, SYS_fsconfig, SYS_fsmount, SYS_fspick,
#endif
#ifdef SYS_mount_setattr
  SYS_mount_setattr,
#endif
  SYS_bpf, SYS_perf_event_open, SYS_keyctl, SYS_add_key, SYS_request_key, SYS_userfaultfd,
#ifdef SYS_io_uring_setup
  SYS_io_uring_setup, SYS_io_uring_enter, SYS_io_uring_register,
#endif
  SYS_init_module, SYS_finit_module, SYS_delete_module, SYS_kexec_load,
#ifdef SYS_kexec_file_load
  SYS_kexec_file_load,
#endif
  SYS_reboot, SYS_swapon, SYS_swapoff, SYS_acct, SYS_quotactl, SYS_open_by_handle_at, SYS_name_to_handle_at,
  SYS_syslog, SYS_vhangup, SYS_settimeofday, SYS_clock_settime, SYS_clock_adjtime, SYS_sethostname, SYS_setdomainname,
};

/* clone's flags that make a namespace (its flags are its first argument on x86_64 and arm64 alike). */
#define NAMESPACE_FLAGS (CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET)

#if defined(__x86_64__)
#define FILTER_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define FILTER_ARCH AUDIT_ARCH_AARCH64
#endif

static void deny_syscalls(void) {
#ifndef FILTER_ARCH
  fail("--deny-syscalls", "no filter for this architecture");
#else
  enum { count = sizeof denied / sizeof *denied };
  struct sock_filter filter[16 + 2 * count];
  size_t k = 0;
  /* Another ABI (i386 through int 0x80 on x86_64) would bypass every number below: the process dies. */
  filter[k++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch));
  filter[k++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, FILTER_ARCH, 1, 0);
  filter[k++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS);
  filter[k++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr));
#ifdef __x86_64__
  /* x32's numbers are the same calls with this bit set: to the last instruction. */
  filter[k++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, 0x40000000, count * 2 + 7, 0);
#endif
  for (size_t i = 0; i < count; i++) {
    filter[k++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)denied[i], 0, 1);
    filter[k++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM);
  }
  /* Namespaces can also be made by clone's flags. clone3's sit behind a pointer a filter cannot
   * follow, so clone3 answers ENOSYS, and glibc falls back to clone for its threads. */
  filter[k++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_clone3, 0, 1);
  filter[k++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS);
  filter[k++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_clone, 0, 3);
  filter[k++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[0]));
  filter[k++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, NAMESPACE_FLAGS, 0, 1);
  filter[k++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM);
  filter[k++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
#ifdef __x86_64__
  filter[k++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM);
#endif
  struct sock_fprog program = { .len = (unsigned short)k, .filter = filter };
  /* Needed to install a filter without CAP_SYS_ADMIN, and right anyway: node is never setuid. */
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) fail("PR_SET_NO_NEW_PRIVS", strerror(errno));
  if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &program) != 0) fail("seccomp", strerror(errno));
#endif
}

static const char *value_of(const char *arg, const char *option) {
  size_t length = strlen(option);
  return strncmp(arg, option, length) == 0 && arg[length] == '=' ? arg + length + 1 : NULL;
}

int main(int argc, char **argv) {
  int net = 0, deny = 0, command = 0;
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
    else if (strcmp(arg, "--deny-syscalls") == 0) deny = 1;
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
  /* Last: unshare and the uid switch above are among the calls it refuses. */
  if (deny) deny_syscalls();
  execvp(argv[command], argv + command);
  fail(argv[command], strerror(errno));
  return 127;
}

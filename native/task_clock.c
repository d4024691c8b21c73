/*
 * perf_event_open(2) for Node, which has no call for it: the watchdog reads a child's main-thread
 * CPU time through a task-clock counter (src/pool/task-clock.ts). /proc/PID/schedstat, the
 * fallback, is brought up to date only at the scheduler's ticks (every 4 ms here), so a runaway
 * read through it burnt up to a tick past its limit before the watchdog saw it; a read of this
 * counter brings the count up to date at once, even while the thread runs on another CPU.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/perf_event.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <node_api.h>

static int open_counter(int tid, int exclude_kernel) {
  struct perf_event_attr attr;
  memset(&attr, 0, sizeof attr);
  attr.size = sizeof attr;
  attr.type = PERF_TYPE_SOFTWARE;
  attr.config = PERF_COUNT_SW_TASK_CLOCK;
  attr.exclude_kernel = exclude_kernel;
  attr.exclude_hv = 1;
  return (int)syscall(SYS_perf_event_open, &attr, tid, -1, -1, PERF_FLAG_FD_CLOEXEC);
}

/* open(tid): a descriptor whose 8-byte reads give the thread's CPU time in ns since the open, or -errno. */
static napi_value open_task_clock(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  int32_t tid;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1 || napi_get_value_int32(env, argv[0], &tid) != napi_ok) {
    napi_throw_type_error(env, NULL, "open(tid: number)");
    return NULL;
  }
  int fd = open_counter(tid, 0);
  /* Where kernel profiling is not allowed (perf_event_paranoid 2), a task clock that leaves the
     kernel out is; it counts the thread's time on a CPU all the same. */
  if (fd < 0 && (errno == EACCES || errno == EPERM)) fd = open_counter(tid, 1);
  napi_value value;
  napi_create_int32(env, fd < 0 ? -errno : fd, &value);
  return value;
}

NAPI_MODULE_INIT() {
  napi_value fn;
  napi_create_function(env, "open", NAPI_AUTO_LENGTH, open_task_clock, NULL, &fn);
  napi_set_named_property(env, exports, "open", fn);
  return exports;
}

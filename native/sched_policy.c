/*
 * sched_setscheduler(2) for Node, which has no call for it: the daemon moves a
 * child's threads between SCHED_IDLE and SCHED_OTHER (src/pool/sched-policy.ts).
 * `chrt` could do it, but a process per change cost the fork server three times
 * its CPU under runaways, at the tenants' priority.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <stdbool.h>
#include <node_api.h>

/* setPolicy(tid, idle): 0, or the errno of the failed call (ESRCH: the thread is gone). */
static napi_value set_policy(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  int32_t tid;
  bool idle;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 2 ||
      napi_get_value_int32(env, argv[0], &tid) != napi_ok || napi_get_value_bool(env, argv[1], &idle) != napi_ok) {
    napi_throw_type_error(env, NULL, "setPolicy(tid: number, idle: boolean)");
    return NULL;
  }
  struct sched_param param = { .sched_priority = 0 };
  int result = sched_setscheduler(tid, idle ? SCHED_IDLE : SCHED_OTHER, &param) == 0 ? 0 : errno;
  napi_value value;
  napi_create_int32(env, result, &value);
  return value;
}

NAPI_MODULE_INIT() {
  napi_value fn;
  napi_create_function(env, "setPolicy", NAPI_AUTO_LENGTH, set_policy, NULL, &fn);
  napi_set_named_property(env, exports, "setPolicy", fn);
  return exports;
}

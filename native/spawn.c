/*
 * posix_spawn(3) for the fork server (src/pool/fast-spawn.ts). libuv starts a child with fork(),
 * which copies the page tables of the whole Node process that calls it: 4.8-5.6 ms per spawn in
 * the fork server, against 0.6 ms for posix_spawn from the same process, whose vfork-style clone
 * shares the parent's memory until the exec. That time was the fork server's CPU and part of
 * every pool miss.
 *
 * The child gets what libuv gave it: stdin on /dev/null, stdout, stderr and fd 3 on Unix
 * stream sockets whose other ends stay here, every signal at its default and none blocked.
 * Every other descriptor of this process is close-on-exec (forkserver.ts makes sure).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <node_api.h>

/* A JS array of strings as a NULL-terminated C array; NULL (with a JS error thrown) on failure. */
static char **strings(napi_env env, napi_value array) {
  uint32_t length;
  if (napi_get_array_length(env, array, &length) != napi_ok) return NULL;
  char **out = calloc(length + 1, sizeof *out);
  for (uint32_t i = 0; out && i < length; i++) {
    napi_value item;
    size_t size;
    if (napi_get_element(env, array, i, &item) != napi_ok || napi_get_value_string_utf8(env, item, NULL, 0, &size) != napi_ok ||
        (out[i] = malloc(size + 1)) == NULL || napi_get_value_string_utf8(env, item, out[i], size + 1, &size) != napi_ok) {
      for (uint32_t j = 0; j <= i; j++) free(out[j]);
      free(out);
      return NULL;
    }
  }
  return out;
}

static void free_strings(char **list) {
  for (char **item = list; item && *item; item++) free(*item);
  free(list);
}

static napi_value throw_errno(napi_env env, const char *what, int error) {
  char message[256];
  snprintf(message, sizeof message, "%s: %s", what, strerror(error));
  napi_value code, text, object;
  napi_create_string_utf8(env, message, NAPI_AUTO_LENGTH, &text);
  napi_create_int32(env, error, &code);
  napi_create_error(env, NULL, text, &object);
  napi_set_named_property(env, object, "errno", code);
  napi_throw(env, object);
  return NULL;
}

/* spawn(argv: string[], env: string[]): [pid, stdout, stderr, channel], the last three our ends' descriptors. */
static napi_value spawn_child(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value args[2];
  if (napi_get_cb_info(env, info, &argc, args, NULL, NULL) != napi_ok || argc < 2) {
    napi_throw_type_error(env, NULL, "spawn(argv: string[], env: string[])");
    return NULL;
  }
  char **argv = strings(env, args[0]);
  char **envp = argv ? strings(env, args[1]) : NULL;
  if (!argv || !envp || !argv[0]) {
    free_strings(argv);
    free_strings(envp);
    napi_throw_type_error(env, NULL, "spawn(argv: string[], env: string[]): argv needs a program");
    return NULL;
  }
  int pairs[3][2] = { { -1, -1 }, { -1, -1 }, { -1, -1 } };
  int error = 0;
  for (int i = 0; i < 3 && !error; i++)
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pairs[i]) != 0) error = errno;

  pid_t pid = -1;
  if (!error) {
    posix_spawn_file_actions_t actions;
    posix_spawnattr_t attributes;
    sigset_t all, none;
    sigfillset(&all);
    sigemptyset(&none);
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    /* dup2 clears close-on-exec on the copy, which is all the child keeps. */
    for (int i = 0; i < 3; i++) posix_spawn_file_actions_adddup2(&actions, pairs[i][1], i + 1);
    posix_spawnattr_init(&attributes);
    posix_spawnattr_setsigdefault(&attributes, &all);
    posix_spawnattr_setsigmask(&attributes, &none);
    posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
    error = posix_spawnp(&pid, argv[0], &actions, &attributes, argv, envp);
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attributes);
  }
  for (int i = 0; i < 3; i++) {
    if (pairs[i][1] >= 0) close(pairs[i][1]);
    if (error && pairs[i][0] >= 0) close(pairs[i][0]);
  }
  free_strings(argv);
  free_strings(envp);
  if (error) return throw_errno(env, "posix_spawn", error);

  napi_value result, value;
  napi_create_array_with_length(env, 4, &result);
  napi_create_int32(env, pid, &value);
  napi_set_element(env, result, 0, value);
  for (int i = 0; i < 3; i++) {
    napi_create_int32(env, pairs[i][0], &value);
    napi_set_element(env, result, i + 1, value);
  }
  return result;
}

/* reap(pid): null while it runs; else [exitCode, signal] (one of them null), once. */
static napi_value reap(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value arg, result, code, signal, null;
  int32_t pid;
  if (napi_get_cb_info(env, info, &argc, &arg, NULL, NULL) != napi_ok || argc < 1 || napi_get_value_int32(env, arg, &pid) != napi_ok || pid <= 0) {
    napi_throw_type_error(env, NULL, "reap(pid: number > 0)");
    return NULL;
  }
  napi_get_null(env, &null);
  int status;
  pid_t done;
  do done = waitpid(pid, &status, WNOHANG);
  while (done < 0 && errno == EINTR);
  if (done == 0) return null;
  if (done < 0) return throw_errno(env, "waitpid", errno);
  napi_create_array_with_length(env, 2, &result);
  if (WIFEXITED(status)) napi_create_int32(env, WEXITSTATUS(status), &code);
  else code = null;
  if (WIFSIGNALED(status)) napi_create_int32(env, WTERMSIG(status), &signal);
  else signal = null;
  napi_set_element(env, result, 0, code);
  napi_set_element(env, result, 1, signal);
  return result;
}

NAPI_MODULE_INIT() {
  napi_value fn;
  napi_create_function(env, "spawn", NAPI_AUTO_LENGTH, spawn_child, NULL, &fn);
  napi_set_named_property(env, exports, "spawn", fn);
  napi_create_function(env, "reap", NAPI_AUTO_LENGTH, reap, NULL, &fn);
  napi_set_named_property(env, exports, "reap", fn);
  return exports;
}

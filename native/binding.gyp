{
  "targets": [
    {
      "target_name": "sched_policy",
      "sources": ["sched_policy.c"],
      "cflags": ["-Wall", "-Wextra", "-O2"]
    },
    {
      "target_name": "spawn",
      "sources": ["spawn.c"],
      "cflags": ["-Wall", "-Wextra", "-O2"]
    },
    {
      "target_name": "edgeproc-launch",
      "type": "executable",
      "sources": ["launch.c"],
      "cflags": ["-Wall", "-Wextra", "-O2"]
    },
    {
      "target_name": "task_clock",
      "sources": ["task_clock.c"],
      "cflags": ["-Wall", "-Wextra", "-O2"]
    }
  ]
}

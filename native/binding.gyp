{
  "targets": [
    {
      "target_name": "sched_policy",
      "sources": ["sched_policy.c"],
      "cflags": ["-Wall", "-Wextra", "-O2"]
    }
  ]
}

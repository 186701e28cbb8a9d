#!/usr/bin/env bash
# Which wake-ups the scheduler treats as "wide" (wake_wide: the wakee is not
# woken next to its waker) while pgbench -S runs through a proxy, per
# waker -> wakee kind, with the waker's wake-up count (wakee_flips).
# Needs root and bpftrace (apt-get install -y bpftrace).
#
# Usage: benches/wake-wide.sh PORT [simple|prepared] [USER]
#   PORT  where pgbench connects (copyguard, the forwarder, pgbouncer)
# Database `bench` initialised with pgbench -i; PGPASSWORD as needed.
set -euo pipefail
port=${1:?usage: wake-wide.sh PORT [simple|prepared] [USER]}
mode=${2:-prepared}
user=${3:-postgres}
( sleep 0.5
  pgbench -h 127.0.0.1 -p "$port" -U "$user" -S -M "$mode" -c 8 -j 2 -T 3 -n bench |
    grep -E '^tps' ) &
# The wakee's count is the one it had when it last woke another thread
# (the tracepoint gives the wakee's pid, not its task).
timeout 4 bpftrace -q -e '
tracepoint:sched:sched_waking {
  @f[tid] = curtask->wakee_flips;
  $s = @f[args->pid]; $m = curtask->wakee_flips;
  if ($m < $s) { $t = $m; $m = $s; $s = $t; }
  @wide_percent[comm, args->comm] = stats(($s >= 2 && $m >= $s * 2) ? 100 : 0);
  @flips[comm] = stats(curtask->wakee_flips);
}
END { clear(@f); }' 2>&1 | grep -v '^$' | grep -vE 'RLIMIT|count [0-9]{1,3},'
wait

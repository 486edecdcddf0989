#!/usr/bin/python3
"""The to-thread workload for asyncio and uvloop, measured as weft-bench does.

usage: /usr/bin/python3 bench/to_thread.py --loop asyncio|uvloop
                                          [--api run_in_executor|to_thread] [N]

N empty jobs (a function that returns None) through the loop's default
executor, every one submitted before the loop awaits anything, then one
gather of the N futures awaited: weft-bench's `to-thread` workload
(weft_to_thread N times, then weft_gather).  --api run_in_executor (the
default) submits with loop.run_in_executor(None, fn), which returns a future
directly; --api to_thread uses asyncio.to_thread(fn), a coroutine that
gather wraps in a task.  The default executor is what both loops make by
default, a ThreadPoolExecutor() (min(32, CPUs + 4) threads), installed with
set_default_executor so that its size can be reported; one job runs before
the timed region, so that it exists (weft's is made by the first submit).

Prints one JSON line on stdout with the fields of the peer harness
(../shared/bench/README.md): seconds, cpu_seconds, peak_rss_kb, base_rss_kb,
ops_per_sec and ns_per_op (per job), plus jobs_per_sec, threads and api.
The garbage collector is left enabled.  Default N: 100000.
"""
import argparse
import asyncio
import concurrent.futures
import json
import os
import resource
import sys
import time


def rss_kb():
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith('VmRSS:'):
                return int(line.split()[1])
    return -1


def cpu_s():
    t = os.times()
    return t.user + t.system


def empty():
    return None


async def workload(n, api):
    loop = asyncio.get_running_loop()
    executor = concurrent.futures.ThreadPoolExecutor()  # what both loops make by default
    loop.set_default_executor(executor)
    await loop.run_in_executor(None, empty)  # the executor exists, one thread runs
    base = rss_kb()
    c0, t0 = cpu_s(), time.monotonic()
    if api == 'to_thread':
        futs = [asyncio.to_thread(empty) for _ in range(n)]
    else:
        futs = [loop.run_in_executor(None, empty) for _ in range(n)]
    results = await asyncio.gather(*futs)
    t1, c1 = time.monotonic(), cpu_s()
    if len(results) != n:
        raise SystemExit('%d results for %d jobs' % (len(results), n))
    executor.shutdown(wait=True)
    return t1 - t0, c1 - c0, base, executor._max_workers


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--loop', choices=['asyncio', 'uvloop'], required=True)
    ap.add_argument('--api', choices=['run_in_executor', 'to_thread'],
                    default='run_in_executor')
    ap.add_argument('n', nargs='?', type=int, default=100000)
    args = ap.parse_args()
    if args.n <= 0:
        raise SystemExit('N must be positive')
    if args.loop == 'uvloop':
        import uvloop
        loop = uvloop.new_event_loop()
    else:
        loop = asyncio.new_event_loop()
    try:
        secs, cpu, base, threads = loop.run_until_complete(workload(args.n, args.api))
    finally:
        loop.close()
    d = {'workload': 'to-thread', 'impl': args.loop, 'n': args.n,
         'seconds': round(secs, 6), 'ops_per_sec': round(args.n / secs, 1),
         'cpu_seconds': round(cpu, 6),
         'peak_rss_kb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
         'base_rss_kb': base, 'ns_per_op': round(secs * 1e9 / args.n, 3),
         'jobs_per_sec': round(args.n / secs, 1), 'threads': threads, 'api': args.api,
         'semantics': 'n empty jobs submitted at once, then one gather of the n futures '
                      'awaited (default executor)'}
    sys.stdout.write(json.dumps(d, separators=(',', ':')) + '\n')


if __name__ == '__main__':
    main()

/* weft.h - Python's asyncio model as an embeddable C library.
 *
 * Include this one header.  The layers, each in its own header:
 *   weft/common.h   error codes, values, the allocator hook
 *   weft/loop.h     the event loop: callbacks, timers, fd watchers
 *   weft/future.h   futures: one-shot result cells with done callbacks
 *   weft/co.h       stackless coroutines: frames, await, finally
 *   weft/task.h     tasks: futures that drive a coroutine; weft_run
 *   weft/combinators.h  sleep, gather, wait, wait_for, shield, timeouts, groups
 *   weft/sync.h     Event, Lock, Semaphore, Condition, Barrier (hand-off, FIFO)
 *   weft/queue.h    FIFO, LIFO and priority queues
 *   weft/executor.h worker threads: to_thread, executors, getaddrinfo
 *   weft/net.h      transports and protocols: TCP, Unix sockets, pipes, servers
 *   weft/stream.h   streams: readers and writers for coroutines
 *   weft/udp.h      datagram endpoints
 *   weft/signal.h   signal handlers on the loop
 *   weft/process.h  subprocesses with pipes
 */
#ifndef WEFT_H
#define WEFT_H

#include "weft/common.h"
#include "weft/loop.h"
#include "weft/future.h"
#include "weft/co.h"
#include "weft/task.h"
#include "weft/combinators.h"
#include "weft/sync.h"
#include "weft/queue.h"
#include "weft/executor.h"
#include "weft/net.h"
#include "weft/stream.h"
#include "weft/udp.h"
#include "weft/signal.h"
#include "weft/process.h"

#endif

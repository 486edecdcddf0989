/* transport.c - stream transports over fds (sockets, pipes, ttys). */
#include "net_internal.h"

/*
 * tempo_nots.so: an LD_PRELOAD library that refuses kernel socket timestamps.
 *
 * Why: libfaketime fakes clock_gettime() and friends but not the timestamps the kernel
 * attaches to packets (SO_TIMESTAMP, SO_TIMESTAMPNS, SO_TIMESTAMPING).  chronyd uses
 * kernel timestamps whenever they lie within 1 s of its own (faked) reading, so under a
 * faked offset below 1 s it mixes the real and the faked clock and measures about half
 * the true offset (docs/baselines.md).  With setsockopt() failing for these options,
 * chronyd falls back to its own daemon timestamps, which libfaketime does fake.
 *
 * Only these options at SOL_SOCKET are refused (ENOPROTOOPT, what a kernel without the
 * feature answers); every other call goes to the real setsockopt().  Setting
 * TEMPO_NOTS_LOG=1 in the environment prints one line per refused call on stderr, which
 * the chrony role's verify step uses to prove the library is in effect.
 *
 * Build: gcc -shared -fPIC -O2 -o tempo_nots.so tempo_nots.c -ldl
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>

/* The _NEW variants (y2038-safe, Linux 5.1) have their own numbers. */
#ifndef SO_TIMESTAMP_OLD
#define SO_TIMESTAMP_OLD 29
#endif
#ifndef SO_TIMESTAMPNS_OLD
#define SO_TIMESTAMPNS_OLD 35
#endif
#ifndef SO_TIMESTAMPING_OLD
#define SO_TIMESTAMPING_OLD 37
#endif
#define TEMPO_SO_TIMESTAMP_NEW 63
#define TEMPO_SO_TIMESTAMPNS_NEW 64
#define TEMPO_SO_TIMESTAMPING_NEW 65

typedef int (*setsockopt_fn)(int, int, int, const void *, socklen_t);

static int refused(int level, int optname)
{
    if (level != SOL_SOCKET)
        return 0;
    switch (optname) {
    case SO_TIMESTAMP_OLD:
    case SO_TIMESTAMPNS_OLD:
    case SO_TIMESTAMPING_OLD:
    case TEMPO_SO_TIMESTAMP_NEW:
    case TEMPO_SO_TIMESTAMPNS_NEW:
    case TEMPO_SO_TIMESTAMPING_NEW:
        return 1;
    default:
        return 0;
    }
}

int setsockopt(int fd, int level, int optname, const void *optval, socklen_t optlen)
{
    static setsockopt_fn real;
    if (refused(level, optname)) {
        const char *log = getenv("TEMPO_NOTS_LOG");
        if (log && log[0] == '1')
            fprintf(stderr, "tempo_nots: refused setsockopt(fd %d, SOL_SOCKET, %d)\n", fd, optname);
        errno = ENOPROTOOPT;
        return -1;
    }
    if (!real) {
        real = (setsockopt_fn)dlsym(RTLD_NEXT, "setsockopt");
        if (!real) {
            errno = ENOSYS;
            return -1;
        }
    }
    return real(fd, level, optname, optval, optlen);
}

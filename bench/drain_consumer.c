/* A minimal console backend for the drain benchmark: the C baseline.
 *
 *   drain_consumer PAGE OUT BACKEND_NAME GUEST_NAME TOTAL SYNC
 *
 * Maps the sim console page PAGE (struct xencons_interface), binds the backend end of the
 * sim event channel (an abstract unix datagram socket named BACKEND_NAME, given without
 * the leading NUL), and drains `out` into the file OUT until TOTAL bytes were consumed:
 * read the indices, copy the bytes (across the wrap), write them (and fdatasync when
 * SYNC is 1: on disk before out_cons moves, as xcinspect's backend does), then publish
 * out_cons and notify the guest (one datagram to GUEST_NAME). When the ring is empty it
 * waits for the guest's notification (poll with a 50 ms fallback, counted).
 *
 * Prints one line: "bytes seconds wakeups fallbacks cpu_seconds". Exit 1 on corrupt indices.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define OUT_OFF 1024
#define OUT_SIZE 2048u
#define OUT_CONS 3080
#define OUT_PROD 3084

static socklen_t abstract_addr(struct sockaddr_un *a, const char *name) {
    size_t n = strlen(name);
    memset(a, 0, sizeof(*a));
    a->sun_family = AF_UNIX;
    if (n + 1 > sizeof(a->sun_path)) {
        fprintf(stderr, "name too long\n");
        exit(2);
    }
    memcpy(a->sun_path + 1, name, n); /* sun_path[0] = 0: the abstract namespace */
    return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + n);
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void write_all(int fd, const unsigned char *p, size_t n) {
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            perror("write");
            exit(2);
        }
        p += w;
        n -= (size_t)w;
    }
}

int main(int argc, char **argv) {
    if (argc != 7) {
        fprintf(stderr, "usage: %s PAGE OUT BACKEND_NAME GUEST_NAME TOTAL SYNC\n", argv[0]);
        return 2;
    }
    unsigned long long total = strtoull(argv[5], NULL, 10);
    int sync = atoi(argv[6]);
    int pfd = open(argv[1], O_RDWR);
    if (pfd < 0) { perror("page"); return 2; }
    unsigned char *page = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, pfd, 0);
    if (page == MAP_FAILED) { perror("mmap"); return 2; }
    close(pfd);
    int ofd = open(argv[2], O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0644);
    if (ofd < 0) { perror("out"); return 2; }

    int s = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    struct sockaddr_un me, guest;
    socklen_t melen = abstract_addr(&me, argv[3]);
    socklen_t glen = abstract_addr(&guest, argv[4]);
    if (bind(s, (struct sockaddr *)&me, melen) < 0) { perror("bind event channel"); return 2; }
    printf("ready\n");
    fflush(stdout);

    volatile uint32_t *cons_p = (volatile uint32_t *)(page + OUT_CONS);
    volatile uint32_t *prod_p = (volatile uint32_t *)(page + OUT_PROD);
    unsigned char *ring = page + OUT_OFF;
    unsigned char buf[OUT_SIZE];
    unsigned long long got = 0, wakeups = 0, fallbacks = 0;
    double t0 = 0;
    char junk[16];
    while (got < total) {
        uint32_t cons = __atomic_load_n(cons_p, __ATOMIC_RELAXED);
        uint32_t prod = __atomic_load_n(prod_p, __ATOMIC_ACQUIRE); /* indices before data */
        uint32_t n = prod - cons;
        if (n > OUT_SIZE) {
            fprintf(stderr, "corrupt out indices: cons=%u prod=%u\n", cons, prod);
            return 1;
        }
        if (n == 0) {
            struct pollfd p = {s, POLLIN, 0};
            int r = poll(&p, 1, 50);
            if (r > 0) wakeups++; else if (r == 0) fallbacks++;
            while (recv(s, junk, sizeof junk, 0) > 0) {}
            continue;
        }
        if (t0 == 0) t0 = now();
        uint32_t start = cons & (OUT_SIZE - 1);
        uint32_t first = n < OUT_SIZE - start ? n : OUT_SIZE - start;
        memcpy(buf, ring + start, first);
        if (first < n) memcpy(buf + first, ring, n - first);
        write_all(ofd, buf, n);
        if (sync) fdatasync(ofd);
        __atomic_thread_fence(__ATOMIC_SEQ_CST); /* finish reading before releasing space */
        __atomic_store_n(cons_p, cons + n, __ATOMIC_RELEASE);
        sendto(s, "!", 1, MSG_DONTWAIT, (struct sockaddr *)&guest, glen);
        got += n;
    }
    double secs = now() - t0;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double cpu = ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
    printf("%llu %.6f %llu %llu %.6f\n", got, secs, wakeups, fallbacks, cpu);
    close(ofd);
    return 0;
}

/* Load-only websocket subscribers: N connections to 127.0.0.1 that upgrade, subscribe to one
 * channel and then only read and discard, at the lowest CPU a client can spend (one epoll loop,
 * one read per ready socket). They carry the fan-out's load; latency and gap checks stay with a
 * few instrumented Python watchers (loadtests/auction_hub.py, `--drain`). Built and run by
 * loadtests/fanout/drain.py; bounded: it exits after `seconds`.
 *
 * usage: drain PORT[,PORT...] N CHANNEL SECONDS
 * prints "ready" once every connection got its subscribe reply, and at exit (after SECONDS, or
 * on SIGTERM) one line:
 * "connections=N subscribed=S bytes=B reads=R closed=C"
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { HANDSHAKE, SUBSCRIBING, STREAMING, CLOSED };

struct conn {
    int fd;
    int state;
    size_t got; /* bytes of the upgrade response / first reply seen so far */
};

static volatile sig_atomic_t stopping = 0;

static void on_signal(int sig) {
    (void)sig;
    stopping = 1;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int send_all(int fd, const char *buf, size_t len) {
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

/* One masked text frame (clients must mask); the payload is short (< 126 bytes). */
static int send_text(int fd, const char *text) {
    unsigned char frame[256];
    size_t len = strlen(text);
    if (len > 125) return -1;
    const unsigned char mask[4] = {0x12, 0x34, 0x56, 0x78};
    frame[0] = 0x81;
    frame[1] = 0x80 | (unsigned char)len;
    memcpy(frame + 2, mask, 4);
    for (size_t i = 0; i < len; i++) frame[6 + i] = (unsigned char)text[i] ^ mask[i % 4];
    return send_all(fd, (const char *)frame, 6 + len);
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: drain PORT[,PORT...] N CHANNEL SECONDS\n");
        return 2;
    }
    int ports[64], nports = 0;
    for (char *p = strtok(argv[1], ","); p && nports < 64; p = strtok(NULL, ",")) ports[nports++] = atoi(p);
    int n = atoi(argv[2]);
    const char *channel = argv[3];
    double seconds = atof(argv[4]);
    if (nports == 0 || n <= 0 || seconds <= 0 || strlen(channel) > 90) return 2;

    struct rlimit rl = {(rlim_t)n + 64, (rlim_t)n + 64};
    setrlimit(RLIMIT_NOFILE, &rl);
    struct conn *conns = calloc((size_t)n, sizeof *conns);
    int ep = epoll_create1(0);
    char request[512], subscribe[160];
    snprintf(subscribe, sizeof subscribe, "{\"id\":1,\"op\":\"subscribe\",\"channel\":\"%s\"}", channel);

    for (int i = 0; i < n; i++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((unsigned short)ports[i % nports])};
        inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
        if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0) {
            perror("connect");
            return 1;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        int len = snprintf(request, sizeof request,
                           "GET /v1/ws HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
                           "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                           "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: souk.v1.json\r\n\r\n",
                           ports[i % nports]);
        if (send_all(fd, request, (size_t)len) < 0) return 1;
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
        conns[i] = (struct conn){.fd = fd, .state = HANDSHAKE};
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (unsigned)i};
        epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
    }

    static char buf[1 << 16];
    struct epoll_event events[512];
    long long bytes = 0, reads = 0;
    int subscribed = 0, closed = 0, announced = 0;
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    double end = now_s() + seconds;
    while (!stopping && now_s() < end) {
        int ready = epoll_wait(ep, events, 512, 100);
        for (int e = 0; e < ready; e++) {
            struct conn *c = &conns[events[e].data.u32];
            ssize_t got = read(c->fd, buf, sizeof buf);
            if (got <= 0) {
                if (got < 0 && (errno == EAGAIN || errno == EINTR)) continue;
                epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
                close(c->fd);
                c->state = CLOSED;
                closed++;
                continue;
            }
            reads++;
            bytes += got;
            if (c->state == HANDSHAKE) {
                /* the 101 response, ending with a blank line (the server sends nothing else
                   before we subscribe) */
                if (c->got == 0 && (got < 12 || strncmp(buf, "HTTP/1.1 101", 12) != 0)) {
                    fprintf(stderr, "upgrade refused: %.*s\n", (int)(got > 80 ? 80 : got), buf);
                    return 1;
                }
                c->got += (size_t)got;
                if (memmem(buf, (size_t)got, "\r\n\r\n", 4) != NULL) {
                    if (send_text(c->fd, subscribe) < 0) return 1;
                    c->state = SUBSCRIBING;
                }
            } else if (c->state == SUBSCRIBING) {
                c->state = STREAMING; /* the subscribe reply (or a publication after it) */
                subscribed++;
            }
        }
        if (!announced && subscribed == n) {
            printf("ready\n");
            fflush(stdout);
            announced = 1;
        }
    }
    printf("connections=%d subscribed=%d bytes=%lld reads=%lld closed=%d\n", n, subscribed, bytes, reads,
           closed);
    return 0;
}

/* wscount: the fan-out benchmarks' counting client, in C so that it is never the limit.

   One process, one thread, epoll. It opens N WebSockets to a server, sends each one
   {"Key":"a,b,..."} (K codes drawn from --codes with a seeded generator), answers protocol
   pings, and counts every frame it reads. A push whose body ends in the benchmark's fields
   `,"T":<ns>,"N":<seq>}` gives a latency sample (now - T, CLOCK_MONOTONIC, one clock for all
   processes of the machine) and a sequence check per product and connection: a jump counts
   as missed (a conflating server skips updates on purpose), a step back as reordered.

   It talks to its parent in JSON lines, like the Python children of benchlib.py:
     stdout, once connected:  {"connected": N, "pid": P, "seconds": S}
     stdin {"cmd":"reset"}                          counters to zero, CPU clock restarted
     stdin {"cmd":"report","expect":E,"timeout":T}  waits until E pushes or T s, then the
                                                    counts, latency percentiles, own CPU %
     stdin {"cmd":"exit"} or end of input          closes everything

   Built by the benchmarks' set-up (gcc -O2); nothing of tickwire depends on it. */

#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_CODES 64
#define READ_BUFFER (1 << 20)
#define HIST_US 2000000 /* latencies up to 2 s at 1 us resolution; beyond: the top bucket */

enum { CONNECTING, OPEN, CLOSED };

typedef struct {
    int fd;
    int state;
    int ncodes;
    char *codes[MAX_CODES];
    long long last[MAX_CODES];
    char *partial; /* the start of a frame not yet complete */
    size_t partial_len;
} Conn;

static Conn *conns;
static int count, per_client, ncodes_all, epfd;
static char **codes_all;
static unsigned char *rbuf;
static int opened, closed_count, handshakes_pending;

static struct {
    long long received, bytes, timed, missed, reordered, invalid, other;
    long long close_codes[8];
    int close_code_value[8];
    int nclose;
} st;
static uint32_t *hist;
static long long hist_over_max;
static double cpu0, wall0;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static long long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static double cpu_s(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

static uint64_t rng_state;
static uint64_t rng(void) { /* xorshift64* */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 2685821657736338717ULL;
}

static void reset_stats(void) {
    memset(&st, 0, sizeof st);
    memset(hist, 0, sizeof(uint32_t) * (HIST_US + 1));
    hist_over_max = 0;
    cpu0 = cpu_s();
    wall0 = now_s();
}

static void send_all(int fd, const unsigned char *data, size_t len) {
    while (len) { /* small control frames: the socket buffer takes them */
        ssize_t n = send(fd, data, len, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR || errno == EAGAIN) continue;
            return;
        }
        data += n;
        len -= (size_t)n;
    }
}

static void send_masked(int fd, int opcode, const unsigned char *payload, size_t len) {
    unsigned char frame[16 + 4096];
    size_t head = 0;
    if (len > 4096) len = 4096;
    frame[head++] = 0x80 | opcode;
    if (len < 126) {
        frame[head++] = 0x80 | len;
    } else {
        frame[head++] = 0x80 | 126;
        frame[head++] = len >> 8;
        frame[head++] = len & 0xff;
    }
    uint32_t mask = (uint32_t)rng();
    unsigned char *m = frame + head;
    memcpy(m, &mask, 4);
    head += 4;
    for (size_t i = 0; i < len; i++) frame[head + i] = payload[i] ^ m[i & 3];
    send_all(fd, frame, head + len);
}

static void close_conn(Conn *c) {
    if (c->state == CLOSED) return;
    if (c->state == OPEN) closed_count++;
    if (c->state == CONNECTING) handshakes_pending--;
    c->state = CLOSED;
    epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    free(c->partial);
    c->partial = NULL;
    c->partial_len = 0;
}

static void note_close_code(int code) {
    for (int i = 0; i < st.nclose; i++)
        if (st.close_code_value[i] == code) {
            st.close_codes[i]++;
            return;
        }
    if (st.nclose < 8) {
        st.close_code_value[st.nclose] = code;
        st.close_codes[st.nclose++] = 1;
    }
}

static long long parse_int(const unsigned char *p, const unsigned char *end, int *ok) {
    long long v = 0;
    int digits = 0;
    while (p < end && *p >= '0' && *p <= '9') {
        v = v * 10 + (*p++ - '0');
        digits++;
    }
    *ok = digits > 0;
    return v;
}

static const char PUSH[] = "{\"body\":{\"StockCode\":\"";

/* One text message: a push is counted, timed and its sequence checked. */
static void on_text(Conn *c, const unsigned char *p, size_t len, long long now) {
    size_t pl = sizeof PUSH - 1;
    if (len < pl || memcmp(p, PUSH, pl) != 0) {
        st.other++;
        return;
    }
    st.received++;
    const unsigned char *end = p + len, *code = p + pl;
    const unsigned char *quote = memchr(code, '"', (size_t)(end - code));
    if (!quote) {
        st.invalid++;
        return;
    }
    /* the benchmark's fields are last: ...,"T":<ns>,"N":<seq>}} */
    const unsigned char *t = NULL;
    for (const unsigned char *q = end - 6; q > quote && q > end - 64; q--)
        if (q[0] == ',' && q[1] == '"' && q[2] == 'T' && q[3] == '"' && q[4] == ':') {
            t = q;
            break;
        }
    if (!t) return; /* a body of the server's own (a snapshot): counted only */
    int ok1, ok2;
    long long stamp = parse_int(t + 5, end, &ok1);
    const unsigned char *n = memmem(t + 5, (size_t)(end - t - 5), ",\"N\":", 5);
    long long seq = n ? parse_int(n + 5, end, &ok2) : (ok2 = 0);
    if (!ok1 || !ok2) {
        st.invalid++;
        return;
    }
    long long lat_us = (now - stamp) / 1000;
    if (lat_us < 0) lat_us = 0;
    if (lat_us >= HIST_US) hist_over_max = lat_us > hist_over_max ? lat_us : hist_over_max;
    hist[lat_us < HIST_US ? lat_us : HIST_US]++;
    st.timed++;
    size_t code_len = (size_t)(quote - code);
    for (int i = 0; i < c->ncodes; i++) {
        if (strlen(c->codes[i]) == code_len && memcmp(c->codes[i], code, code_len) == 0) {
            long long prev = c->last[i];
            if (prev >= 0) {
                if (seq > prev + 1) st.missed += seq - prev - 1;
                else if (seq <= prev) st.reordered++;
            }
            c->last[i] = seq;
            return;
        }
    }
    st.invalid++; /* a product this connection did not ask for */
}

/* Frames in data[0..len); returns how many bytes were consumed. */
static size_t on_frames(Conn *c, unsigned char *data, size_t len, long long now) {
    size_t pos = 0;
    while (len - pos >= 2) {
        size_t size = data[pos + 1] & 0x7f, start;
        if (size < 126) {
            start = pos + 2;
        } else if (size == 126) {
            if (len - pos < 4) break;
            size = ((size_t)data[pos + 2] << 8) | data[pos + 3];
            start = pos + 4;
        } else {
            if (len - pos < 10) break;
            size = 0;
            for (int i = 0; i < 8; i++) size = (size << 8) | data[pos + 2 + i];
            start = pos + 10;
        }
        if (start + size > len) break;
        int opcode = data[pos] & 0x0f;
        st.bytes += (long long)(start + size - pos);
        if (opcode == 0x1) {
            on_text(c, data + start, size, now);
        } else if (opcode == 0x9) {
            send_masked(c->fd, 0xA, data + start, size);
        } else if (opcode == 0x8) {
            note_close_code(size >= 2 ? (data[start] << 8) | data[start + 1] : 1005);
            pos = start + size;
            close_conn(c);
            return len;
        } else {
            st.other++;
        }
        pos = start + size;
    }
    return pos;
}

static void on_readable(Conn *c) {
    size_t have = c->partial_len;
    if (have) memcpy(rbuf, c->partial, have);
    ssize_t n = recv(c->fd, rbuf + have, READ_BUFFER - have, 0);
    if (n <= 0) {
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
        close_conn(c);
        return;
    }
    size_t len = have + (size_t)n, pos = 0;
    if (c->state == CONNECTING) {
        unsigned char *end = memmem(rbuf, len, "\r\n\r\n", 4);
        if (!end) {
            c->partial = realloc(c->partial, len);
            memcpy(c->partial, rbuf, len);
            c->partial_len = len;
            return;
        }
        if (len < 12 || memcmp(rbuf + 9, "101", 3) != 0) {
            fprintf(stderr, "handshake refused: %.*s\n", (int)(len < 200 ? len : 200), rbuf);
            close_conn(c);
            return;
        }
        c->state = OPEN;
        opened++;
        handshakes_pending--;
        char key[MAX_CODES * 32 + 16];
        size_t k = (size_t)snprintf(key, sizeof key, "{\"Key\":\"");
        for (int i = 0; i < c->ncodes; i++)
            k += (size_t)snprintf(key + k, sizeof key - k, "%s%s", i ? "," : "", c->codes[i]);
        k += (size_t)snprintf(key + k, sizeof key - k, "\"}");
        send_masked(c->fd, 0x1, (unsigned char *)key, k);
        pos = (size_t)(end - rbuf) + 4;
    }
    if (c->state == OPEN) pos += on_frames(c, rbuf + pos, len - pos, now_ns());
    if (c->state == CLOSED) return;
    size_t left = len - pos;
    if (left) {
        if (left > c->partial_len) c->partial = realloc(c->partial, left);
        memmove(c->partial, rbuf + pos, left);
    }
    c->partial_len = left;
    if (!left && c->partial) {
        free(c->partial);
        c->partial = NULL;
    }
}

static double percentile_ms(long long total, double q) {
    if (!total) return -1;
    long long rank = (long long)(q / 100.0 * (double)(total - 1)), seen = 0;
    for (int us = 0; us <= HIST_US; us++) {
        seen += hist[us];
        if (seen > rank) return (us < HIST_US ? us : (double)hist_over_max) / 1000.0;
    }
    return (double)hist_over_max / 1000.0;
}

static void report(void) {
    double wall = now_s() - wall0, cpu = cpu_s() - cpu0;
    long long max_us = 0;
    for (int us = HIST_US; us >= 0; us--)
        if (hist[us]) {
            max_us = us < HIST_US ? us : hist_over_max;
            break;
        }
    printf("{\"received\": %lld, \"bytes\": %lld, \"timed\": %lld, \"missed\": %lld, "
           "\"reordered\": %lld, \"invalid\": %lld, \"other\": %lld, \"closed\": %d, "
           "\"open\": %d, \"seconds\": %.6f, \"received_per_s\": %.1f, \"client_cpu\": %.2f, "
           "\"p50_ms\": %.3f, \"p90_ms\": %.3f, \"p99_ms\": %.3f, \"p999_ms\": %.3f, "
           "\"max_ms\": %.3f, \"close_codes\": {",
           st.received, st.bytes, st.timed, st.missed, st.reordered, st.invalid, st.other,
           closed_count, opened - closed_count, wall, st.received / (wall > 0 ? wall : 1),
           100 * cpu / (wall > 0 ? wall : 1), percentile_ms(st.timed, 50),
           percentile_ms(st.timed, 90), percentile_ms(st.timed, 99),
           percentile_ms(st.timed, 99.9), max_us / 1000.0);
    for (int i = 0; i < st.nclose; i++)
        printf("%s\"%d\": %lld", i ? ", " : "", st.close_code_value[i], st.close_codes[i]);
    printf("}}\n");
    fflush(stdout);
}

static double json_number(const char *line, const char *key, double fallback) {
    const char *p = strstr(line, key);
    if (!p) return fallback;
    p = strchr(p + strlen(key), ':');
    return p ? atof(p + 1) : fallback;
}

static void split_codes(char *list) {
    int cap = 16;
    codes_all = malloc(sizeof(char *) * (size_t)cap);
    for (char *tok = strtok(list, ","); tok; tok = strtok(NULL, ",")) {
        if (ncodes_all == cap) codes_all = realloc(codes_all, sizeof(char *) * (size_t)(cap *= 2));
        codes_all[ncodes_all++] = tok;
    }
}

static int connect_one(Conn *c, const char *host, int port, const char *path) {
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, host, &addr.sin_addr);
    for (int attempt = 0; attempt < 50; attempt++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        if (fd < 0) return -1;
        if (connect(fd, (struct sockaddr *)&addr, sizeof addr) == 0) {
            int one = 1;
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            unsigned char nonce[16];
            for (int i = 0; i < 16; i++) nonce[i] = (unsigned char)rng();
            static const char b64[] =
                "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
            char key[25];
            for (int i = 0, j = 0; i < 15; i += 3) {
                uint32_t v = (uint32_t)(nonce[i] << 16 | nonce[i + 1] << 8 | nonce[i + 2]);
                key[j++] = b64[v >> 18 & 63];
                key[j++] = b64[v >> 12 & 63];
                key[j++] = b64[v >> 6 & 63];
                key[j++] = b64[v & 63];
            }
            key[20] = b64[nonce[15] >> 2];
            key[21] = b64[(nonce[15] & 3) << 4];
            key[22] = key[23] = '=';
            key[24] = 0;
            char req[512];
            int n = snprintf(req, sizeof req,
                             "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
                             "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                             "Sec-WebSocket-Version: 13\r\n\r\n",
                             path, host, port, key);
            send_all(fd, (unsigned char *)req, (size_t)n);
            fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
            c->fd = fd;
            c->state = CONNECTING;
            handshakes_pending++;
            struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
            epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev);
            return 0;
        }
        close(fd);
        usleep(100000);
    }
    return -1;
}

static int handle_command(char *line, double *report_deadline, long long *expect) {
    if (strstr(line, "\"reset\"")) {
        reset_stats();
        printf("{\"ok\": true}\n");
        fflush(stdout);
    } else if (strstr(line, "\"report\"")) {
        *expect = (long long)json_number(line, "\"expect\"", 0);
        *report_deadline = now_s() + json_number(line, "\"timeout\"", 0);
    } else if (strstr(line, "\"exit\"")) {
        return 1;
    } else {
        printf("{\"error\": \"unknown command\"}\n");
        fflush(stdout);
    }
    return 0;
}

int main(int argc, char **argv) {
    const char *host = "127.0.0.1", *path = "/ws";
    int port = 0;
    unsigned long long seed = 7;
    char *codes = NULL;
    per_client = 10;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--host")) host = argv[i + 1];
        else if (!strcmp(argv[i], "--port")) port = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--path")) path = argv[i + 1];
        else if (!strcmp(argv[i], "--count")) count = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--per-client")) per_client = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--codes")) codes = argv[i + 1];
        else if (!strcmp(argv[i], "--seed")) seed = strtoull(argv[i + 1], NULL, 10);
        else {
            fprintf(stderr, "wscount: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    if (!port || count <= 0 || !codes) {
        fprintf(stderr, "usage: wscount --port P --count N --codes a,b,.. [--per-client K] "
                        "[--seed S] [--host H] [--path /ws]\n");
        return 2;
    }
    struct rlimit rl = {(rlim_t)count + 100, (rlim_t)count + 100};
    struct rlimit cur;
    getrlimit(RLIMIT_NOFILE, &cur);
    if (cur.rlim_cur < rl.rlim_cur) {
        if (cur.rlim_max > rl.rlim_max) rl.rlim_max = cur.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    rng_state = seed * 0x9E3779B97F4A7C15ULL + 1;
    split_codes(codes);
    if (per_client > ncodes_all) per_client = ncodes_all;
    if (per_client > MAX_CODES) per_client = MAX_CODES;
    rbuf = malloc(READ_BUFFER);
    hist = calloc(HIST_US + 1, sizeof(uint32_t));
    conns = calloc((size_t)count, sizeof(Conn));
    epfd = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    fcntl(0, F_SETFL, fcntl(0, F_GETFL) | O_NONBLOCK);
    epoll_ctl(epfd, EPOLL_CTL_ADD, 0, &ev);
    int *pick = malloc(sizeof(int) * (size_t)ncodes_all);
    double began = now_s();
    struct epoll_event events[512];
    for (int i = 0; i < count; i++) {
        Conn *c = &conns[i];
        for (int j = 0; j < ncodes_all; j++) pick[j] = j;
        for (int j = 0; j < per_client; j++) { /* a partial Fisher-Yates draw */
            int r = j + (int)(rng() % (uint64_t)(ncodes_all - j));
            int t = pick[j];
            pick[j] = pick[r];
            pick[r] = t;
            c->codes[j] = codes_all[pick[j]];
            c->last[j] = -1;
        }
        c->ncodes = per_client;
        if (connect_one(c, host, port, path) < 0) {
            fprintf(stderr, "wscount: cannot connect to %s:%d: %s\n", host, port,
                    strerror(errno));
            return 1;
        }
        while (handshakes_pending >= 64 || (i == count - 1 && handshakes_pending > 0)) {
            int n = epoll_wait(epfd, events, 512, 30000);
            if (n <= 0) {
                fprintf(stderr, "wscount: handshakes stalled\n");
                return 1;
            }
            for (int e = 0; e < n; e++)
                if (events[e].data.ptr) on_readable(events[e].data.ptr);
        }
    }
    reset_stats();
    printf("{\"connected\": %d, \"pid\": %d, \"seconds\": %.3f}\n", opened, getpid(),
           now_s() - began);
    fflush(stdout);
    char line[4096];
    size_t line_len = 0;
    double report_deadline = -1;
    long long expect = 0;
    for (;;) {
        int n = epoll_wait(epfd, events, 512, report_deadline >= 0 ? 2 : 1000);
        for (int e = 0; e < n; e++) {
            if (events[e].data.ptr) {
                on_readable(events[e].data.ptr);
                continue;
            }
            ssize_t r = read(0, line + line_len, sizeof line - 1 - line_len);
            if (r == 0) return 0; /* the parent is gone */
            if (r < 0) continue;
            line_len += (size_t)r;
            line[line_len] = 0;
            char *nl;
            while ((nl = strchr(line, '\n'))) {
                *nl = 0;
                if (handle_command(line, &report_deadline, &expect)) return 0;
                line_len -= (size_t)(nl + 1 - line);
                memmove(line, nl + 1, line_len + 1);
            }
        }
        if (report_deadline >= 0 && (st.received >= expect || now_s() >= report_deadline ||
                                     closed_count)) {
            report();
            report_deadline = -1;
        }
    }
}

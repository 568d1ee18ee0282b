// serve_metrics.c: the server's counters, as Prometheus' text exposition format (serve.h).
#include "results.h"
#include "serve.h"

#include "../kernels/sgemm.h"
#include "version.h"

#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

static const char *const PATHS[] = {"/predict", "/explain", "/health", "/metrics", "/", "other"};
#define NPATHS ((int)(sizeof PATHS / sizeof *PATHS))
static const int CODES[] = {200, 204, 400, 404, 405, 408, 413, 414, 415, 431, 500, 501, 503, 505};
#define NCODES ((int)(sizeof CODES / sizeof *CODES))
static const double LAT_LE[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
#define NLAT ((int)(sizeof LAT_LE / sizeof *LAT_LE))
static const int BATCH_LE[] = {1, 2, 4, 8, 16, 32, 64, 128};
#define NBATCH ((int)(sizeof BATCH_LE / sizeof *BATCH_LE))

struct ServeMetrics {
    pthread_mutex_t mu;
    unsigned long requests[NPATHS][NCODES + 1];             // the last column: any other status
    unsigned long lat[NPATHS][NLAT + 1], lat_count[NPATHS]; // per path and bucket (not cumulative); the last: above all
    double lat_sum[NPATHS];
    double start_time; // the process's start, seconds since the epoch
    unsigned long batch[NBATCH + 1], batch_count, batch_sum;
    unsigned long conn_events[3]; // EVENTS
};

// what the connection guard did (serve_guard.c)
static const char *const EVENTS[] = {"deadline", "evicted", "refused"};

void serve_metrics_event(ServeMetrics *m, const char *event) {
    for (int i = 0; i < 3; i++)
        if (!strcmp(event, EVENTS[i])) {
            pthread_mutex_lock(&m->mu);
            m->conn_events[i]++;
            pthread_mutex_unlock(&m->mu);
        }
}

ServeMetrics *serve_metrics_new(void) {
    ServeMetrics *m = calloc(1, sizeof *m);
    if (!m) return NULL;
    pthread_mutex_init(&m->mu, NULL);
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    m->start_time = (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
    return m;
}

void serve_metrics_free(ServeMetrics *m) {
    if (!m) return;
    pthread_mutex_destroy(&m->mu);
    free(m);
}

void serve_metrics_request(ServeMetrics *m, const char *path, int status, double seconds) {
    int p = 0, c = 0, b = 0;
    while (p < NPATHS - 1 && strcmp(PATHS[p], path)) p++;
    while (c < NCODES && CODES[c] != status) c++;
    while (b < NLAT && seconds > LAT_LE[b]) b++;
    pthread_mutex_lock(&m->mu);
    m->requests[p][c]++;
    m->lat[p][b]++;
    m->lat_count[p]++;
    m->lat_sum[p] += seconds;
    pthread_mutex_unlock(&m->mu);
}

void serve_metrics_batch(ServeMetrics *m, int size) {
    int b = 0;
    while (b < NBATCH && size > BATCH_LE[b]) b++;
    pthread_mutex_lock(&m->mu);
    m->batch[b]++;
    m->batch_count++;
    m->batch_sum += (unsigned long)size;
    pthread_mutex_unlock(&m->mu);
}

// the process's own metrics, as Prometheus' client libraries name them, and the build
static void process_metrics(StrBuf *b, double start_time) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double cpu =
        (double)ru.ru_utime.tv_sec + 1e-6 * (double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_sec + 1e-6 * (double)ru.ru_stime.tv_usec;
    long pages = 0, vpages = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f || fscanf(f, "%ld %ld", &vpages, &pages) != 2) pages = vpages = 0;
    if (f) fclose(f);
    int fds = 0;
    DIR *d = opendir("/proc/self/fd");
    for (struct dirent *e; d && (e = readdir(d));) fds += e->d_name[0] != '.';
    if (d) closedir(d), fds--; // the listing's own descriptor
    long page = sysconf(_SC_PAGESIZE);
    sb_printf(b,
              "# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.\n"
              "# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total %.3f\n",
              cpu);
    sb_printf(b,
              "# HELP process_resident_memory_bytes Resident memory size in bytes.\n"
              "# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes %ld\n",
              pages * page);
    sb_printf(b,
              "# HELP process_virtual_memory_bytes Virtual memory size in bytes.\n"
              "# TYPE process_virtual_memory_bytes gauge\nprocess_virtual_memory_bytes %ld\n",
              vpages * page);
    sb_printf(b, "# HELP process_open_fds Number of open file descriptors.\n# TYPE process_open_fds gauge\nprocess_open_fds %d\n", fds);
    sb_printf(b,
              "# HELP process_start_time_seconds Start time of the process since unix epoch in seconds.\n"
              "# TYPE process_start_time_seconds gauge\nprocess_start_time_seconds %.3f\n",
              start_time);
    sb_printf(b,
              "# HELP cgrad_build_info The build: version, git commit, GEMM kernel, whether MPI is built in.\n"
              "# TYPE cgrad_build_info gauge\ncgrad_build_info{version=\"%s\",commit=\"%s\",gemm_kernel=\"%s\",mpi=\"%s\"} 1\n",
              DEIT_LORA_VERSION, DEIT_LORA_COMMIT, sgemm_fast_isa(),
#ifdef CGRAD_MPI
              "yes"
#else
              "no"
#endif
    );
}

char *serve_metrics_text(ServeMetrics *m, int queue_depth, int in_flight) {
    StrBuf b = {0};
    pthread_mutex_lock(&m->mu);
    sb_printf(&b, "# HELP deit_lora_requests_total HTTP requests answered, by path and status code.\n"
                  "# TYPE deit_lora_requests_total counter\n");
    for (int p = 0; p < NPATHS; p++)
        for (int c = 0; c <= NCODES; c++)
            if (m->requests[p][c]) {
                char code[8];
                snprintf(code, sizeof code, "%d", c < NCODES ? CODES[c] : 0);
                sb_printf(&b, "deit_lora_requests_total{path=\"%s\",code=\"%s\"} %lu\n", PATHS[p], c < NCODES ? code : "other",
                          m->requests[p][c]);
            }
    sb_printf(&b, "# HELP deit_lora_request_duration_seconds Time from a request's first byte to its answer, by path.\n"
                  "# TYPE deit_lora_request_duration_seconds histogram\n");
    unsigned long cum = 0;
    for (int p = 0; p < NPATHS; p++) {
        if (!m->lat_count[p]) continue;
        cum = 0;
        for (int i = 0; i < NLAT; i++) {
            cum += m->lat[p][i];
            sb_printf(&b, "deit_lora_request_duration_seconds_bucket{path=\"%s\",le=\"%g\"} %lu\n", PATHS[p], LAT_LE[i], cum);
        }
        sb_printf(&b, "deit_lora_request_duration_seconds_bucket{path=\"%s\",le=\"+Inf\"} %lu\n", PATHS[p], m->lat_count[p]);
        sb_printf(&b, "deit_lora_request_duration_seconds_sum{path=\"%s\"} %.6f\n", PATHS[p], m->lat_sum[p]);
        sb_printf(&b, "deit_lora_request_duration_seconds_count{path=\"%s\"} %lu\n", PATHS[p], m->lat_count[p]);
    }
    sb_printf(&b, "# HELP deit_lora_batch_size Images per forward pass of the model.\n# TYPE deit_lora_batch_size histogram\n");
    cum = 0;
    for (int i = 0; i < NBATCH; i++) {
        cum += m->batch[i];
        sb_printf(&b, "deit_lora_batch_size_bucket{le=\"%d\"} %lu\n", BATCH_LE[i], cum);
    }
    sb_printf(&b, "deit_lora_batch_size_bucket{le=\"+Inf\"} %lu\n", m->batch_count);
    sb_printf(&b, "deit_lora_batch_size_sum %lu\ndeit_lora_batch_size_count %lu\n", m->batch_sum, m->batch_count);
    sb_printf(&b, "# HELP deit_lora_connections_cut_total Connections closed by the server: past the whole-request deadline, let go "
                  "to make room for a new one (slow or idle), or refused (no room).\n# TYPE deit_lora_connections_cut_total counter\n");
    for (int i = 0; i < 3; i++) sb_printf(&b, "deit_lora_connections_cut_total{reason=\"%s\"} %lu\n", EVENTS[i], m->conn_events[i]);
    pthread_mutex_unlock(&m->mu);
    sb_printf(&b,
              "# HELP deit_lora_queue_depth Jobs waiting for the model.\n# TYPE deit_lora_queue_depth gauge\n"
              "deit_lora_queue_depth %d\n",
              queue_depth);
    sb_printf(&b,
              "# HELP deit_lora_requests_in_flight Requests being read or answered.\n"
              "# TYPE deit_lora_requests_in_flight gauge\ndeit_lora_requests_in_flight %d\n",
              in_flight);
    process_metrics(&b, m->start_time);
    if (b.oom) {
        sb_free(&b);
        return NULL;
    }
    return b.s;
}

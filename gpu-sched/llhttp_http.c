/* llhttp's C sources as Debian's node-llhttp ships them, compiled for the device
 * API (gpu-sched/devapi-http.c) the way proxy/llhttp_*.c compile them for the proxy,
 * so libgpuapi does not depend on libproxy.  They predate our warning set: silence
 * only what they trip. */
#pragma GCC diagnostic ignored "-Wmissing-prototypes"
#pragma GCC diagnostic ignored "-Wundef"
#pragma GCC diagnostic ignored "-Wimplicit-fallthrough"
#include "/usr/share/llhttp/http.c"

/* llhttp's C sources as Debian's node-llhttp ships them, compiled once into libllhttp
 * for spaceproxy and the ZeroGPU device API.  They predate our warning set: silence
 * only what they trip. */
#pragma GCC diagnostic ignored "-Wmissing-prototypes"
#pragma GCC diagnostic ignored "-Wundef"
#pragma GCC diagnostic ignored "-Wimplicit-fallthrough"
#include "/usr/share/llhttp/llhttp.c"

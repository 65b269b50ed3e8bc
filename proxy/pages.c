/* Responses spaceproxy writes itself: error pages, the "waking up" page, the sign-in
 * page.  Each is a complete response in one malloc'd buffer, written with one call. */
#include "proxy.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "banned.h"

char *px_page_text(int status, const char *reason, const char *ctype, const char *body,
                   size_t body_len, bool keep_alive, uint32_t *ret_len)
{
    size_t cap = body_len + 512;
    char *p = malloc(cap);
    int n;

    if (!p)
        return NULL;
    n = snprintf(p, cap,
                 "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                 "Cache-Control: no-store\r\nServer: spaceproxy\r\n%s\r\n",
                 status, reason, ctype, body_len, keep_alive ? "" : "Connection: close\r\n");
    if (n <= 0 || (size_t) n + body_len > cap) {
        free(p);
        return NULL;
    }
    memcpy(p + n, body, body_len);
    *ret_len = (uint32_t) ((size_t) n + body_len);
    return p;
}

/* A page with extra header lines (each ending in CRLF) inserted before the blank line. */
static char *page_with(int status, const char *reason, const char *extra, const char *body,
                       bool keep_alive, uint32_t *ret_len)
{
    size_t bl = strlen(body), cap = bl + strlen(extra) + 512;
    char *p = malloc(cap);
    int n;

    if (!p)
        return NULL;
    n = snprintf(p, cap,
                 "HTTP/1.1 %d %s\r\nContent-Type: text/html; charset=utf-8\r\n"
                 "Content-Length: %zu\r\nCache-Control: no-store\r\nServer: spaceproxy\r\n"
                 "%s%s\r\n",
                 status, reason, bl, extra, keep_alive ? "" : "Connection: close\r\n");
    if (n <= 0 || (size_t) n + bl > cap) {
        free(p);
        return NULL;
    }
    memcpy(p + n, body, bl);
    *ret_len = (uint32_t) ((size_t) n + bl);
    return p;
}

#define HTML_HEAD                                                                                  \
    "<!doctype html><html><head><meta charset=\"utf-8\"><meta name=\"viewport\" "                  \
    "content=\"width=device-width\"><title>%s</title><style>body{font-family:system-ui,"           \
    "sans-serif;max-width:40em;margin:4em auto;padding:0 1em;color:#222}code{background:#eee;"     \
    "padding:0 .2em}</style>"

static char *simple(int status, const char *reason, const char *title, const char *text,
                    const char *extra, bool keep_alive, uint32_t *ret_len)
{
    char body[2048];

    snprintf(body, sizeof(body), HTML_HEAD "</head><body><h1>%s</h1><p>%s</p></body></html>\n",
             title, title, text);
    return page_with(status, reason, extra, body, keep_alive, ret_len);
}

char *px_page(enum px_page p, bool keep_alive, uint32_t *ret_len)
{
    switch (p) {
    case PX_PAGE_400:
        return simple(400, "Bad Request", "Bad request", "The request could not be understood.", "",
                      false, ret_len);
    case PX_PAGE_404:
        /* The same page for an unknown host and for a private Space one may not see, so
         * nobody learns that a private Space exists. */
        return simple(404, "Not Found", "404 — no such Space",
                      "There is no Space at this address. If it is a private Space, "
                      "<a href=\"/.spaceport/signin\">sign in</a> with a token that can read "
                      "it.",
                      "", keep_alive, ret_len);
    case PX_PAGE_405:
        return simple(405, "Method Not Allowed", "Method not allowed",
                      "This is a reverse proxy for Spaces, not a forward proxy.", "", false,
                      ret_len);
    case PX_PAGE_408:
        return simple(408, "Request Timeout", "Request timeout",
                      "The request head did not arrive in time.", "", false, ret_len);
    case PX_PAGE_413:
        return simple(413, "Content Too Large", "Request too large",
                      "The request body is larger than this server accepts.", "", false, ret_len);
    case PX_PAGE_431:
        return simple(431, "Request Header Fields Too Large", "Request headers too large",
                      "The request head is larger than this server accepts.", "", false, ret_len);
    case PX_PAGE_502:
        return simple(502, "Bad Gateway", "The Space is not answering",
                      "The Space could not be reached or broke the connection.", "", keep_alive,
                      ret_len);
    case PX_PAGE_503_BUSY:
        return simple(503, "Service Unavailable", "The Space is busy",
                      "Too many requests are waiting for this Space; try again shortly.",
                      "Retry-After: 5\r\n", keep_alive, ret_len);
    case PX_PAGE_503_WAKE_TIMEOUT:
        return simple(503, "Service Unavailable", "The Space is still starting",
                      "The Space did not come up in time; try again shortly.",
                      "Retry-After: 10\r\n", keep_alive, ret_len);
    case PX_PAGE_504:
        return simple(504, "Gateway Timeout", "The Space did not answer in time",
                      "The Space accepted no connection or sent no answer in time.", "", keep_alive,
                      ret_len);
    default:
        return NULL;
    }
}

/* Shown at once to a browser navigating to a sleeping Space: it polls our status endpoint
 * and reloads when the Space runs; the Refresh header covers browsers without script. */
char *px_page_waking(const struct px_route *r, uint32_t *ret_len)
{
    char body[4096];

    snprintf(body, sizeof(body),
             HTML_HEAD "</head><body><h1>%s is waking up</h1>"
                       "<p>Stage: <b id=\"s\">%s</b> <span id=\"t\"></span></p>"
                       "<p>This page reloads itself when the Space is ready.</p><script>"
                       "var t0=Date.now();function poll(){fetch('/.spaceport/status',"
                       "{cache:'no-store'}).then(function(r){return r.json()}).then("
                       "function(j){document.getElementById('s').textContent=j.stage;"
                       "if(j.ready){location.reload();return}setTimeout(poll,1000)}).catch("
                       "function(){setTimeout(poll,2000)});document.getElementById('t')."
                       "textContent='('+Math.round((Date.now()-t0)/1000)+' s)'}poll();"
                       "</script></body></html>\n",
             r->id ? r->id : r->host, r->id ? r->id : r->host, px_stage_name(r->stage));
    return page_with(503, "Service Unavailable", "Retry-After: 5\r\nRefresh: 5\r\n", body, false,
                     ret_len);
}

char *px_page_stage(const struct px_route *r, uint32_t *ret_len)
{
    char text[512];

    snprintf(text, sizeof(text), "The Space <code>%s</code> is not running (stage <b>%s</b>).",
             r->id ? r->id : r->host, px_stage_name(r->stage));
    return simple(503, "Service Unavailable", "This Space is not running", text,
                  "Retry-After: 30\r\n", false, ret_len);
}

char *px_page_status_json(const struct px_route *r, bool keep_alive, uint32_t *ret_len)
{
    char body[256];
    bool ready = r->has_upstream &&
                 (!r->id || r->stage == PX_STAGE_RUNNING || r->stage == PX_STAGE_RUNNING_BUILDING);
    int n = snprintf(body, sizeof(body), "{\"stage\": \"%s\", \"ready\": %s}\n",
                     r->id ? px_stage_name(r->stage) : "RUNNING", ready ? "true" : "false");

    return px_page_text(200, "OK", "application/json", body, (size_t) n, keep_alive, ret_len);
}

char *px_page_signin(bool failed, bool keep_alive, uint32_t *ret_len)
{
    char body[2048];

    snprintf(body, sizeof(body),
             HTML_HEAD "</head><body><h1>Sign in</h1>%s"
                       "<form method=\"post\" action=\"/.spaceport/signin\">"
                       "<p><label>Access token <input name=\"token\" type=\"password\" "
                       "autocomplete=\"off\" size=\"40\"></label></p>"
                       "<p><button>Sign in</button></p></form></body></html>\n",
             "Sign in", failed ? "<p><b>That token cannot open a Space here.</b></p>" : "");
    return page_with(failed ? 403 : 200, failed ? "Forbidden" : "OK", "", body, keep_alive,
                     ret_len);
}

char *px_page_redirect_cookie(const char *cookie, const char *location, uint32_t *ret_len)
{
    char extra[512];

    /* Host-only (no Domain), so the browser sends it to this Space's host alone. */
    snprintf(extra, sizeof(extra),
             "Location: %s\r\nSet-Cookie: %s=%s; Path=/; Max-Age=%d; HttpOnly; "
             "SameSite=Lax\r\n",
             location, PX_COOKIE_NAME, cookie, PX_COOKIE_TTL_S);
    return page_with(303, "See Other", extra, "", true, ret_len);
}

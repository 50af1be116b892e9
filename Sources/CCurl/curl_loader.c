#include "shim.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

static struct sspa_curl_api api;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void fail(const char *what) {
    fprintf(stderr, "error: cannot use libcurl (libcurl.so.4): %s. Install it (Debian: apt-get install libcurl4) and run the command again.\n", what);
    fflush(stderr);
    exit(69);  // EX_UNAVAILABLE
}

static void *need(void *library, const char *name) {
    void *symbol = dlsym(library, name);
    if (!symbol) fail(name);
    return symbol;
}

static void load(void) {
    // RTLD_LOCAL: its symbols (and its dependencies') stay its own. RTLD_LAZY: of the thirty-odd libraries' function
    // references, only those a request calls get bound, when first called; binding them all at once (RTLD_NOW) took
    // about 1 ms more of the 9-10 ms this load takes, and the load is what the first request waits for.
    void *library = dlopen("libcurl.so.4", RTLD_LAZY | RTLD_LOCAL);
    if (!library) {
        const char *why = dlerror();
        fail(why ? why : "not found");
    }
    // Each field of the table is named after its function, without the "curl_" prefix.
#define SSPA_BIND(field) api.field = (__typeof__(api.field))need(library, "curl_" #field)
    SSPA_BIND(easy_setopt);
    SSPA_BIND(easy_getinfo);
    SSPA_BIND(easy_init);
    SSPA_BIND(easy_cleanup);
    SSPA_BIND(easy_reset);
    SSPA_BIND(easy_strerror);
    SSPA_BIND(multi_init);
    SSPA_BIND(multi_setopt);
    SSPA_BIND(multi_add_handle);
    SSPA_BIND(multi_remove_handle);
    SSPA_BIND(multi_info_read);
    SSPA_BIND(multi_socket_action);
    SSPA_BIND(slist_append);
    SSPA_BIND(slist_free_all);
#undef SSPA_BIND
    // Once, before any other call, as libcurl asks (it is not thread-safe against other calls).
    CURLcode (*global_init)(long) = (CURLcode (*)(long))need(library, "curl_global_init");
    if (global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) fail("curl_global_init failed");
}

const struct sspa_curl_api *sspa_curl(void) {
    pthread_once(&once, load);
    return &api;
}

static void *preload(void *unused) {
    (void)unused;
    pthread_once(&once, load);
    return NULL;
}

void sspa_curl_preload(void) {
    pthread_t thread;
    if (pthread_create(&thread, NULL, preload, NULL) == 0) pthread_detach(thread);
}

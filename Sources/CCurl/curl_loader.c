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
    // RTLD_LOCAL: its symbols (and its dependencies') stay its own.
    void *library = dlopen("libcurl.so.4", RTLD_NOW | RTLD_LOCAL);
    if (!library) {
        const char *why = dlerror();
        fail(why ? why : "not found");
    }
    api.easy_setopt = (__typeof__(api.easy_setopt))need(library, "curl_easy_setopt");
    api.easy_getinfo = (__typeof__(api.easy_getinfo))need(library, "curl_easy_getinfo");
    api.easy_init = (__typeof__(api.easy_init))need(library, "curl_easy_init");
    api.easy_cleanup = (__typeof__(api.easy_cleanup))need(library, "curl_easy_cleanup");
    api.easy_strerror = (__typeof__(api.easy_strerror))need(library, "curl_easy_strerror");
    api.multi_init = (__typeof__(api.multi_init))need(library, "curl_multi_init");
    api.multi_setopt = (__typeof__(api.multi_setopt))need(library, "curl_multi_setopt");
    api.multi_add_handle = (__typeof__(api.multi_add_handle))need(library, "curl_multi_add_handle");
    api.multi_remove_handle = (__typeof__(api.multi_remove_handle))need(library, "curl_multi_remove_handle");
    api.multi_info_read = (__typeof__(api.multi_info_read))need(library, "curl_multi_info_read");
    api.multi_socket_action = (__typeof__(api.multi_socket_action))need(library, "curl_multi_socket_action");
    api.slist_append = (__typeof__(api.slist_append))need(library, "curl_slist_append");
    api.slist_free_all = (__typeof__(api.slist_free_all))need(library, "curl_slist_free_all");
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

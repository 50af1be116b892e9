#ifndef SSPA_CCURL_SHIM_H
#define SSPA_CCURL_SHIM_H

#include <curl/curl.h>
#include <errno.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

// libcurl is opened on first use (dlopen, Sources/CCurl/curl_loader.c), not linked: with its thirty-odd
// dependencies (OpenSSL, GnuTLS, Kerberos, LDAP, SSH…) binding it took a third of the start of every command,
// including those that never go on the network. `sspa_curl_preload` opens it on a thread of its own while a build
// reads its arguments and files. curl.h gives the types and constants; every call goes through this table.
struct sspa_curl_api {
    CURLcode (*easy_setopt)(CURL *, CURLoption, ...);
    CURLcode (*easy_getinfo)(CURL *, CURLINFO, ...);
    CURL *(*easy_init)(void);
    void (*easy_cleanup)(CURL *);
    void (*easy_reset)(CURL *);
    const char *(*easy_strerror)(CURLcode);
    CURLM *(*multi_init)(void);
    CURLMcode (*multi_setopt)(CURLM *, CURLMoption, ...);
    CURLMcode (*multi_add_handle)(CURLM *, CURL *);
    CURLMcode (*multi_remove_handle)(CURLM *, CURL *);
    CURLMsg *(*multi_info_read)(CURLM *, int *);
    CURLMcode (*multi_socket_action)(CURLM *, curl_socket_t, int, int *);
    struct curl_slist *(*slist_append)(struct curl_slist *, const char *);
    void (*slist_free_all)(struct curl_slist *);
};

/// The loaded library (opened and globally initialised on the first call; a clear error and exit 69 when missing).
const struct sspa_curl_api *sspa_curl(void);
/// Starts opening the library on a thread of its own and returns at once; `sspa_curl` then waits for it.
void sspa_curl_preload(void);

static inline CURL *sspa_curl_easy_init(void) { return sspa_curl()->easy_init(); }
static inline void sspa_curl_easy_cleanup(CURL *handle) { sspa_curl()->easy_cleanup(handle); }
static inline void sspa_curl_easy_reset(CURL *handle) { sspa_curl()->easy_reset(handle); }
static inline const char *sspa_curl_easy_strerror(CURLcode code) { return sspa_curl()->easy_strerror(code); }
static inline CURLM *sspa_curl_multi_init(void) { return sspa_curl()->multi_init(); }
static inline CURLMcode sspa_curl_multi_add_handle(CURLM *multi, CURL *handle) { return sspa_curl()->multi_add_handle(multi, handle); }
static inline CURLMcode sspa_curl_multi_remove_handle(CURLM *multi, CURL *handle) { return sspa_curl()->multi_remove_handle(multi, handle); }
static inline CURLMsg *sspa_curl_multi_info_read(CURLM *multi, int *left) { return sspa_curl()->multi_info_read(multi, left); }
static inline struct curl_slist *sspa_curl_slist_append(struct curl_slist *list, const char *text) { return sspa_curl()->slist_append(list, text); }
static inline void sspa_curl_slist_free_all(struct curl_slist *list) { sspa_curl()->slist_free_all(list); }

// curl_easy_setopt and curl_easy_getinfo are variadic, which Swift cannot call; these fix the argument type.

static inline CURLcode sspa_curl_setopt_long(CURL *handle, CURLoption option, long value) {
    return sspa_curl()->easy_setopt(handle, option, value);
}

static inline CURLcode sspa_curl_setopt_string(CURL *handle, CURLoption option, const char *value) {
    return sspa_curl()->easy_setopt(handle, option, value);
}

static inline CURLcode sspa_curl_setopt_pointer(CURL *handle, CURLoption option, void *value) {
    return sspa_curl()->easy_setopt(handle, option, value);
}

static inline CURLcode sspa_curl_setopt_slist(CURL *handle, CURLoption option, struct curl_slist *value) {
    return sspa_curl()->easy_setopt(handle, option, value);
}

typedef size_t (*sspa_curl_write_callback)(char *data, size_t size, size_t count, void *context);

static inline CURLcode sspa_curl_setopt_write(CURL *handle, CURLoption option, sspa_curl_write_callback callback) {
    return sspa_curl()->easy_setopt(handle, option, callback);
}

static inline CURLcode sspa_curl_getinfo_long(CURL *handle, CURLINFO info, long *value) {
    return sspa_curl()->easy_getinfo(handle, info, value);
}

static inline CURLcode sspa_curl_getinfo_pointer(CURL *handle, CURLINFO info, void **value) {
    return sspa_curl()->easy_getinfo(handle, info, value);
}

static inline CURLMcode sspa_curl_multi_setopt_long(CURLM *multi, CURLMoption option, long value) {
    return sspa_curl()->multi_setopt(multi, option, value);
}

// The multi_socket interface: libcurl says which sockets to watch (socket callback) and when to call it back
// (timer callback), so each event runs only the transfer it concerns, where curl_multi_perform runs every transfer
// and polls each one's socket.

typedef int (*sspa_curl_socket_callback)(void *easy, int socket, int what, void *userp, void *socketp);
typedef int (*sspa_curl_timer_callback)(void *multi, long timeout_ms, void *userp);

static inline CURLMcode sspa_curl_multi_set_callbacks(CURLM *multi, sspa_curl_socket_callback socket_callback,
                                                      sspa_curl_timer_callback timer_callback, void *userp) {
    CURLMcode code = sspa_curl()->multi_setopt(multi, CURLMOPT_SOCKETFUNCTION, (curl_socket_callback)socket_callback);
    if (code == CURLM_OK) code = sspa_curl()->multi_setopt(multi, CURLMOPT_SOCKETDATA, userp);
    if (code == CURLM_OK) code = sspa_curl()->multi_setopt(multi, CURLMOPT_TIMERFUNCTION, (curl_multi_timer_callback)timer_callback);
    if (code == CURLM_OK) code = sspa_curl()->multi_setopt(multi, CURLMOPT_TIMERDATA, userp);
    return code;
}

static inline CURLMcode sspa_curl_multi_socket_action(CURLM *multi, int socket, int mask, int *running) {
    return sspa_curl()->multi_socket_action(multi, (curl_socket_t)socket, mask, running);
}

static inline int sspa_curl_socket_timeout(void) { return (int)CURL_SOCKET_TIMEOUT; }

// epoll and eventfd, in C: glibc's struct epoll_event is packed on x86-64, which Swift does not import faithfully.

static inline int sspa_epoll_create(void) { return epoll_create1(EPOLL_CLOEXEC); }

/// Watches `fd` for `readable` / `writable`: adds it when `watched` is 0, else changes what is watched (and adds it
/// after all if epoll does not have it); 0 or -1 with errno.
static inline int sspa_epoll_watch(int epfd, int fd, int readable, int writable, int watched) {
    struct epoll_event event = {0};
    event.events = (readable ? EPOLLIN : 0) | (writable ? EPOLLOUT : 0);
    event.data.fd = fd;
    if (!watched) {
        if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &event) == 0) return 0;
        if (errno != EEXIST) return -1;
    }
    if (epoll_ctl(epfd, EPOLL_CTL_MOD, fd, &event) == 0) return 0;
    if (errno != ENOENT) return -1;
    return epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &event);
}

static inline void sspa_epoll_forget(int epfd, int fd) {
    struct epoll_event event = {0};
    (void)epoll_ctl(epfd, EPOLL_CTL_DEL, fd, &event);
}

/// Waits up to `timeout_ms` for at most `max` events (max <= 256); fills `fds` and `masks` (CURL_CSELECT_* bits).
static inline int sspa_epoll_wait(int epfd, int *fds, int *masks, int max, int timeout_ms) {
    struct epoll_event events[256];
    if (max > 256) max = 256;
    int n = epoll_wait(epfd, events, max, timeout_ms);
    for (int i = 0; i < n; i++) {
        fds[i] = events[i].data.fd;
        int mask = 0;
        if (events[i].events & (EPOLLIN | EPOLLHUP | EPOLLRDHUP)) mask |= CURL_CSELECT_IN;
        if (events[i].events & EPOLLOUT) mask |= CURL_CSELECT_OUT;
        if (events[i].events & EPOLLERR) mask |= CURL_CSELECT_ERR;
        masks[i] = mask;
    }
    return n;
}

static inline int sspa_eventfd_create(void) { return eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK); }

static inline void sspa_eventfd_signal(int fd) {
    uint64_t one = 1;
    ssize_t written = write(fd, &one, sizeof one);
    (void)written;  // a full counter (EAGAIN) is already a pending wake-up
}

static inline void sspa_eventfd_drain(int fd) {
    uint64_t value;
    ssize_t got = read(fd, &value, sizeof value);
    (void)got;
}

#endif

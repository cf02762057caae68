#include "CCurl.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>

#if defined(__APPLE__)
static const char *const library_name = "libcurl.4.dylib";
#else
static const char *const library_name = "libcurl.so.4";
#endif

static pthread_once_t load_once = PTHREAD_ONCE_INIT;
static const char *load_problem = NULL;
static char load_problem_text[512];

/// The libcurl functions used, resolved once.
static struct {
    char *(*version)(void);
    CURLcode (*global_init)(long);
    CURL *(*easy_init)(void);
    void (*easy_cleanup)(CURL *);
    CURLcode (*easy_setopt)(CURL *, CURLoption, ...);
    CURLcode (*easy_getinfo)(CURL *, CURLINFO, ...);
    const char *(*easy_strerror)(CURLcode);
    CURLM *(*multi_init)(void);
    CURLMcode (*multi_cleanup)(CURLM *);
    CURLMcode (*multi_add_handle)(CURLM *, CURL *);
    CURLMcode (*multi_remove_handle)(CURLM *, CURL *);
    CURLMcode (*multi_perform)(CURLM *, int *);
    CURLMcode (*multi_poll)(CURLM *, struct curl_waitfd *, unsigned int, int, int *);
    CURLMcode (*multi_wakeup)(CURLM *);
    CURLMsg *(*multi_info_read)(CURLM *, int *);
    struct curl_slist *(*slist_append)(struct curl_slist *, const char *);
    void (*slist_free_all)(struct curl_slist *);
} curl;

/// Resolves one symbol or records why it is missing.
static void *resolve(void *library, const char *name) {
    void *symbol = dlsym(library, name);
    if (symbol == NULL && load_problem == NULL) {
        snprintf(load_problem_text, sizeof load_problem_text, "%s has no symbol %s (libcurl 7.68 or later is needed)",
                 library_name, name);
        load_problem = load_problem_text;
    }
    return symbol;
}

static void load(void) {
    void *library = dlopen(library_name, RTLD_NOW | RTLD_LOCAL);
    if (library == NULL) {
        const char *reason = dlerror();
        snprintf(load_problem_text, sizeof load_problem_text,
                 "cannot load %s (%s); install libcurl (Debian: apt-get install libcurl4)", library_name,
                 reason ? reason : "unknown reason");
        load_problem = load_problem_text;
        return;
    }
    curl.version = (char *(*)(void))resolve(library, "curl_version");
    curl.global_init = (CURLcode(*)(long))resolve(library, "curl_global_init");
    curl.easy_init = (CURL * (*)(void)) resolve(library, "curl_easy_init");
    curl.easy_cleanup = (void (*)(CURL *))resolve(library, "curl_easy_cleanup");
    curl.easy_setopt = (CURLcode(*)(CURL *, CURLoption, ...))resolve(library, "curl_easy_setopt");
    curl.easy_getinfo = (CURLcode(*)(CURL *, CURLINFO, ...))resolve(library, "curl_easy_getinfo");
    curl.easy_strerror = (const char *(*)(CURLcode))resolve(library, "curl_easy_strerror");
    curl.multi_init = (CURLM * (*)(void)) resolve(library, "curl_multi_init");
    curl.multi_cleanup = (CURLMcode(*)(CURLM *))resolve(library, "curl_multi_cleanup");
    curl.multi_add_handle = (CURLMcode(*)(CURLM *, CURL *))resolve(library, "curl_multi_add_handle");
    curl.multi_remove_handle = (CURLMcode(*)(CURLM *, CURL *))resolve(library, "curl_multi_remove_handle");
    curl.multi_perform = (CURLMcode(*)(CURLM *, int *))resolve(library, "curl_multi_perform");
    curl.multi_poll = (CURLMcode(*)(CURLM *, struct curl_waitfd *, unsigned int, int, int *))resolve(
        library, "curl_multi_poll");
    curl.multi_wakeup = (CURLMcode(*)(CURLM *))resolve(library, "curl_multi_wakeup");
    curl.multi_info_read = (CURLMsg * (*)(CURLM *, int *)) resolve(library, "curl_multi_info_read");
    curl.slist_append = (struct curl_slist * (*)(struct curl_slist *, const char *)) resolve(library, "curl_slist_append");
    curl.slist_free_all = (void (*)(struct curl_slist *))resolve(library, "curl_slist_free_all");
    if (load_problem == NULL && curl.global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        snprintf(load_problem_text, sizeof load_problem_text, "curl_global_init failed");
        load_problem = load_problem_text;
    }
}

const char *sr_curl_load(void) {
    pthread_once(&load_once, load);
    return load_problem;
}

const char *sr_curl_version(void) {
    if (sr_curl_load() != NULL) return NULL;
    return curl.version();
}

CURL *sr_curl_easy_init(void) { return curl.easy_init(); }
void sr_curl_easy_cleanup(CURL *handle) { curl.easy_cleanup(handle); }

CURLcode sr_curl_easy_setopt_long(CURL *handle, CURLoption option, long value) {
    return curl.easy_setopt(handle, option, value);
}

CURLcode sr_curl_easy_setopt_offset(CURL *handle, CURLoption option, curl_off_t value) {
    return curl.easy_setopt(handle, option, value);
}

CURLcode sr_curl_easy_setopt_string(CURL *handle, CURLoption option, const char *value) {
    return curl.easy_setopt(handle, option, value);
}

CURLcode sr_curl_easy_setopt_pointer(CURL *handle, CURLoption option, void *value) {
    return curl.easy_setopt(handle, option, value);
}

CURLcode sr_curl_easy_setopt_data_callback(CURL *handle, CURLoption option, sr_curl_data_callback callback) {
    return curl.easy_setopt(handle, option, callback);
}

CURLcode sr_curl_easy_setopt_progress_callback(CURL *handle, sr_curl_progress_callback callback) {
    return curl.easy_setopt(handle, CURLOPT_XFERINFOFUNCTION, callback);
}

CURLcode sr_curl_easy_getinfo_long(CURL *handle, CURLINFO info, long *value) {
    return curl.easy_getinfo(handle, info, value);
}

const char *sr_curl_easy_strerror(CURLcode code) { return curl.easy_strerror(code); }

CURLM *sr_curl_multi_init(void) { return curl.multi_init(); }
void sr_curl_multi_cleanup(CURLM *multi) { curl.multi_cleanup(multi); }
CURLMcode sr_curl_multi_add_handle(CURLM *multi, CURL *handle) { return curl.multi_add_handle(multi, handle); }
CURLMcode sr_curl_multi_remove_handle(CURLM *multi, CURL *handle) { return curl.multi_remove_handle(multi, handle); }
CURLMcode sr_curl_multi_perform(CURLM *multi, int *running) { return curl.multi_perform(multi, running); }
CURLMcode sr_curl_multi_poll(CURLM *multi, int timeout_ms) { return curl.multi_poll(multi, NULL, 0, timeout_ms, NULL); }
CURLMcode sr_curl_multi_wakeup(CURLM *multi) { return curl.multi_wakeup(multi); }

int sr_curl_multi_next_done(CURLM *multi, CURL **handle, CURLcode *result) {
    int remaining = 0;
    CURLMsg *message;
    while ((message = curl.multi_info_read(multi, &remaining)) != NULL) {
        if (message->msg == CURLMSG_DONE) {
            *handle = message->easy_handle;
            *result = message->data.result;
            return 1;
        }
    }
    return 0;
}

struct curl_slist *sr_curl_slist_append(struct curl_slist *list, const char *item) {
    return curl.slist_append(list, item);
}

void sr_curl_slist_free_all(struct curl_slist *list) { curl.slist_free_all(list); }

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

static char *(*curl_version_function)(void);

/// Resolves one symbol or records why it is missing.
static void *resolve(void *library, const char *name) {
    void *symbol = dlsym(library, name);
    if (symbol == NULL && load_problem == NULL) {
        snprintf(load_problem_text, sizeof load_problem_text, "%s has no symbol %s", library_name, name);
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
    curl_version_function = (char *(*)(void))resolve(library, "curl_version");
}

const char *sr_curl_load(void) {
    pthread_once(&load_once, load);
    return load_problem;
}

const char *sr_curl_version(void) {
    if (sr_curl_load() != NULL) return NULL;
    return curl_version_function();
}

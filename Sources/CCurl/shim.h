// libcurl for Swift. curl_easy_setopt and friends are C variadic macros, which Swift cannot
// call; these typed inline wrappers are the small shim that makes them reachable.
#ifndef STAGERUNNER_CCURL_SHIM_H
#define STAGERUNNER_CCURL_SHIM_H

#include <curl/curl.h>

static inline CURLcode sr_curl_easy_setopt_long(CURL *handle, CURLoption option, long value) {
    return curl_easy_setopt(handle, option, value);
}

static inline CURLcode sr_curl_easy_setopt_string(CURL *handle, CURLoption option, const char *value) {
    return curl_easy_setopt(handle, option, value);
}

static inline CURLcode sr_curl_easy_setopt_pointer(CURL *handle, CURLoption option, void *value) {
    return curl_easy_setopt(handle, option, value);
}

static inline CURLcode sr_curl_easy_getinfo_long(CURL *handle, CURLINFO info, long *value) {
    return curl_easy_getinfo(handle, info, value);
}

#endif

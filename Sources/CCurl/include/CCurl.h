// libcurl for Swift, loaded on first use.
//
// The server links no HTTP stack at start-up: libcurl and the thirty libraries it pulls in (TLS,
// Kerberos, LDAP, SSH, …) cost about 9 MB of resident memory and several milliseconds of
// dynamic loading, which an editor's idle server or a one-shot script should not pay before it
// calls a model. sr_curl_load() opens libcurl the first time it is needed; every wrapper here
// goes through the functions it resolved. The wrappers also give Swift typed entry points for
// libcurl's variadic functions (curl_easy_setopt, curl_easy_getinfo), which Swift cannot call.
//
// Call sr_curl_load() and check it returned NULL before using any other function.
#ifndef STAGERUNNER_CCURL_H
#define STAGERUNNER_CCURL_H

#include <curl/curl.h>

/// Opens libcurl once (thread-safe) and runs curl_global_init. Returns NULL when it is usable,
/// else why it is not.
const char *sr_curl_load(void);

/// curl_version(), or NULL when libcurl cannot be loaded.
const char *sr_curl_version(void);

typedef size_t (*sr_curl_data_callback)(char *data, size_t size, size_t count, void *context);
typedef int (*sr_curl_progress_callback)(void *context, curl_off_t download_total, curl_off_t downloaded,
                                         curl_off_t upload_total, curl_off_t uploaded);

CURL *sr_curl_easy_init(void);
void sr_curl_easy_cleanup(CURL *handle);
CURLcode sr_curl_easy_setopt_long(CURL *handle, CURLoption option, long value);
CURLcode sr_curl_easy_setopt_offset(CURL *handle, CURLoption option, curl_off_t value);
/// For string options; libcurl keeps its own copy.
CURLcode sr_curl_easy_setopt_string(CURL *handle, CURLoption option, const char *value);
/// For object and list options.
CURLcode sr_curl_easy_setopt_pointer(CURL *handle, CURLoption option, void *value);
/// For CURLOPT_WRITEFUNCTION and CURLOPT_HEADERFUNCTION.
CURLcode sr_curl_easy_setopt_data_callback(CURL *handle, CURLoption option, sr_curl_data_callback callback);
/// For CURLOPT_XFERINFOFUNCTION.
CURLcode sr_curl_easy_setopt_progress_callback(CURL *handle, sr_curl_progress_callback callback);
CURLcode sr_curl_easy_getinfo_long(CURL *handle, CURLINFO info, long *value);
const char *sr_curl_easy_strerror(CURLcode code);

CURLM *sr_curl_multi_init(void);
void sr_curl_multi_cleanup(CURLM *multi);
CURLMcode sr_curl_multi_add_handle(CURLM *multi, CURL *handle);
CURLMcode sr_curl_multi_remove_handle(CURLM *multi, CURL *handle);
CURLMcode sr_curl_multi_perform(CURLM *multi, int *running);
CURLMcode sr_curl_multi_poll(CURLM *multi, int timeout_ms);
CURLMcode sr_curl_multi_wakeup(CURLM *multi);
/// The next finished transfer, or NULL: its handle in *handle and its result in *result.
int sr_curl_multi_next_done(CURLM *multi, CURL **handle, CURLcode *result);

struct curl_slist *sr_curl_slist_append(struct curl_slist *list, const char *item);
void sr_curl_slist_free_all(struct curl_slist *list);

#endif

// libcurl for Swift, loaded on first use.
//
// The server links no HTTP stack at start-up: libcurl and the thirty libraries it pulls in (TLS,
// Kerberos, LDAP, SSH, …) cost about 9 MB of resident memory and several milliseconds of
// dynamic loading, which an editor's idle server or a one-shot script should not pay before it
// calls a model. sr_curl_load() opens libcurl the first time it is needed; every wrapper here
// goes through it. The wrappers also give Swift typed entry points for libcurl's variadic
// functions (curl_easy_setopt and friends), which Swift cannot call directly.
#ifndef STAGERUNNER_CCURL_H
#define STAGERUNNER_CCURL_H

#include <curl/curl.h>

/// Opens libcurl once (thread-safe). Returns NULL when it is usable, else why it is not.
const char *sr_curl_load(void);

/// curl_version(), or NULL when libcurl cannot be loaded.
const char *sr_curl_version(void);

#endif

/* A stand-in for Android's <android/log.h> on desktop Linux: the gobind
 * glue logs fatal errors through __android_log_print. */
#pragma once
#include <stdio.h>
#include <stdlib.h>
enum { ANDROID_LOG_INFO = 4, ANDROID_LOG_FATAL = 7 };
#define __android_log_print(prio, tag, ...) \
	(fprintf(stderr, "[%s] ", (tag)), fprintf(stderr, __VA_ARGS__), fputc('\n', stderr))

/*
 * A xentoollog logger that formats each message and hands the finished string to a
 * callback. xentoollog passes a format string and a va_list, which Rust cannot consume
 * portably; formatting here keeps the Rust side to plain C strings.
 */
#ifndef XEN_SYS_LOGGER_H
#define XEN_SYS_LOGGER_H

#include <xentoollog.h>

/*
 * Called once per message, on the thread that logged it. `context` may be NULL; `message`
 * is never NULL and is valid only during the call. `errnoval` is -1 when there is none.
 * Progress reports arrive as XTL_PROGRESS messages ("doing_what: 42%").
 */
typedef void xen_sys_log_fn(void *user, int level, int errnoval,
                            const char *context, const char *message);

/*
 * Asked before a message of `level` is formatted: non-zero to format and deliver it. Cheap
 * (libxl logs a lot at debug levels), so the caller's current log threshold can change at any
 * time and still be honoured.
 */
typedef int xen_sys_log_enabled_fn(void *user, int level);

/*
 * Returns a logger that passes each message `enabled` accepts (all of them when `enabled` is
 * NULL) to `callback`, or NULL when out of memory. Free it with xtl_logger_destroy() once
 * nothing uses it.
 */
xentoollog_logger *xen_sys_logger_new(xen_sys_log_fn *callback,
                                      xen_sys_log_enabled_fn *enabled, void *user);

#endif

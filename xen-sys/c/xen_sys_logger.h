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
 * Returns a logger that drops messages below `min_level` and passes the others to `callback`,
 * or NULL when out of memory. Free it with xtl_logger_destroy() once nothing uses it.
 */
xentoollog_logger *xen_sys_logger_new(xen_sys_log_fn *callback, void *user,
                                      int min_level);

#endif

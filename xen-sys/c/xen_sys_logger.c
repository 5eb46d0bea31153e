/* See xen_sys_logger.h. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "xen_sys_logger.h"

struct xen_sys_logger {
    xentoollog_logger base; /* first, so a xentoollog_logger* is a xen_sys_logger* */
    xen_sys_log_fn *callback;
    xen_sys_log_enabled_fn *enabled;
    void *user;
};

static int logger_enabled(const struct xen_sys_logger *self, int level)
{
    return !self->enabled || self->enabled(self->user, level);
}

static void logger_vmessage(xentoollog_logger *logger, xentoollog_level level,
                            int errnoval, const char *context,
                            const char *format, va_list args)
{
    struct xen_sys_logger *self = (struct xen_sys_logger *)logger;
    char stack_buf[1024];
    char *message = stack_buf;
    va_list again;
    int len;

    if (!logger_enabled(self, (int)level))
        return;

    va_copy(again, args);
    len = vsnprintf(stack_buf, sizeof(stack_buf), format, args);
    if (len < 0) {
        snprintf(stack_buf, sizeof(stack_buf), "(unformattable message: %s)", format);
    } else if ((size_t)len >= sizeof(stack_buf)) {
        char *heap_buf = malloc((size_t)len + 1);
        if (heap_buf) {
            vsnprintf(heap_buf, (size_t)len + 1, format, again);
            message = heap_buf;
        } /* else: deliver the truncated stack copy */
    }
    va_end(again);

    self->callback(self->user, (int)level, errnoval, context, message);
    if (message != stack_buf)
        free(message);
}

static void logger_progress(xentoollog_logger *logger, const char *context,
                            const char *doing_what, int percent,
                            unsigned long done, unsigned long total)
{
    struct xen_sys_logger *self = (struct xen_sys_logger *)logger;
    char message[512];

    (void)done;
    (void)total;
    if (!logger_enabled(self, (int)XTL_PROGRESS))
        return;
    snprintf(message, sizeof(message), "%s: %d%%", doing_what ? doing_what : "", percent);
    self->callback(self->user, (int)XTL_PROGRESS, -1, context, message);
}

static void logger_destroy(xentoollog_logger *logger)
{
    free(logger);
}

xentoollog_logger *xen_sys_logger_new(xen_sys_log_fn *callback,
                                      xen_sys_log_enabled_fn *enabled, void *user)
{
    struct xen_sys_logger *self = calloc(1, sizeof(*self));

    if (!self)
        return NULL;
    self->base.vmessage = logger_vmessage;
    self->base.progress = logger_progress;
    self->base.destroy = logger_destroy;
    self->callback = callback;
    self->enabled = enabled;
    self->user = user;
    return &self->base;
}

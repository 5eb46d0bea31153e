/*
 * The C surface xen-sys binds. bindgen reads this with vendor-headers/include first on the
 * include path (build.rs checks that every Xen header came from there).
 *
 * LIBXL_API_VERSION pins the libxl API we compile against: 0x041400 selects the current
 * signatures (ao_how on shutdown/reboot/pause/unpause, send_back_fd on restore), so the
 * real 4.17 symbols are bound rather than the inline compatibility shims.
 */
#define LIBXL_API_VERSION 0x041400

#include <libxl.h>
#include <libxl_utils.h>
#include <libxlutil.h>
#include <xenstore.h>
#include <xentoollog.h>

#include "xen_sys_logger.h"

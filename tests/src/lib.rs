//! Cross-crate and end-to-end tests. The end-to-end suite runs inside a real Xen 4.17 dom0
//! booted under QEMU (see `xen-box/`).

//! End-to-end tests of domainmgrd's PCI adapter policy and metrics on real Xen, in the box with
//! two emulated e1000 NICs behind an emulated IOMMU: one stays dom0's port, the other goes to
//! pciback and to a guest that names it in its IoAdapterList, and back to dom0's e1000 driver
//! when nim says dom0 uses it as a port. Non-PCI adapters too: a serial port bundle gives a PV
//! guest its I/O ports and IRQ, and a USB device bundle dom0's USB tablet (to a PV guest, and to
//! an HVM guest that enumerates it).
//! Metrics are checked in the files and on Prometheus.

use std::time::Duration;

use serde_json::{Value, json};
use xenctl::Context;

use crate::guests_e2e::{HVM_BOOT, hvm_turn};
use crate::*;

const BOOT: Duration = Duration::from_secs(90);

/// The tests of this module, for xen-e2e.
pub fn tests() -> Vec<(&'static str, E2eTest)> {
    vec![
        ("daemon_adapters_port_stays_other_nic_passed_to_guest_released_then_rebound_as_a_port", adapters_on_real_xen),
        ("daemon_metrics_cpu_grows_memory_matches_xl_halted_says_so", metrics_on_real_xen),
        ("daemon_adapters_serial_port_bundle_gives_a_pv_guest_its_ioports_and_irq", serial_port_adapter_on_real_xen),
        ("daemon_adapters_usb_device_bundle_is_forwarded_to_a_pv_guest", usb_device_adapter_on_real_xen),
    ]
}

/// The HVM tests, run in a box of their own.
pub fn hvm_tests() -> Vec<(&'static str, E2eTest)> {
    vec![("hvm_eve_app_sees_the_usb_device_of_its_adapter_bundle", hvm_usb_device_adapter_on_real_xen)]
}

/// The network interface dom0 has for a PCI device, if any.
fn ifname_of(bdf: &str) -> Option<String> {
    let entries = std::fs::read_dir(format!("/sys/bus/pci/devices/{bdf}/net")).ok()?;
    entries.flatten().next().map(|e| e.file_name().to_string_lossy().into_owned())
}

fn driver_of(bdf: &str) -> String {
    std::fs::read_link(format!("/sys/bus/pci/devices/{bdf}/driver"))
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_default()
}

fn bundle(daemon: &DaemonProcess, label: &str) -> Value {
    std::fs::read(daemon.root.join("domainmgr/AssignableAdapters/global.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .and_then(|a| a["IoBundleList"].as_array()?.iter().find(|b| b["Phylabel"] == label).cloned())
        .unwrap_or(Value::Null)
}

fn write(path: &Path, v: &Value) -> TestResult {
    std::fs::create_dir_all(path.parent().ok_or("no parent")?).ctx("mkdir")?;
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(v).ctx("json")?).ctx("write")?;
    std::fs::rename(&tmp, path).ctx("rename")
}

fn adapters_on_real_xen(_ctx: &Context) -> TestResult {
    let _nic = lock_passthrough_nic();
    let port = std::env::var("XENBOX_DOM0_NIC").unwrap_or_else(|_| "0000:00:02.0".into());
    let free = std::env::var("XENBOX_PASSTHROUGH_NIC").unwrap_or_else(|_| "0000:00:03.0".into());
    let port_if = ifname_of(&port).ok_or_else(|| format!("{port} has no network interface in dom0"))?;
    let free_if = ifname_of(&free).unwrap_or_else(|| "eth1".into());
    let mut daemon = daemon_with_adapters(
        "dm-adapters",
        json!({"Ptype": 1, "Phylabel": "nic1", "Logicallabel": "nic1", "Assigngrp": "nic1",
               "Phyaddr": {"PciLong": free, "Ifname": free_if}, "Usage": 2}),
    )?;
    let nim = daemon.root.join("nim");

    let result = (|| -> TestResult {
        wait_until("nic1 in pciback", BOOT, || (bundle(&daemon, "nic1")["IsPCIBack"] == true).then_some(()))?;
        let p = bundle(&daemon, "port0");
        ensure(p["KeepInHost"] == true && p["IsPort"] == true && p.get("IsPCIBack").is_none(), || {
            format!("port0: {p}")
        })?;
        let listed = xl(&["pci-assignable-list"])?;
        ensure(listed.lines().any(|l| l.trim() == free), || {
            format!("xl pci-assignable-list lacks {free}: {listed:?}")
        })?;
        ensure(!listed.lines().any(|l| l.trim() == port), || format!("the dom0 port {port} was made assignable"))?;
        ensure(driver_of(&port) == "e1000", || format!("the port's driver is now {}", driver_of(&port)))?;
        ensure(driver_of(&free) == "pciback", || format!("nic1's driver is {}", driver_of(&free)))?;

        let uuid = xenctl::Uuid::new_v4().to_string();
        let mut cfg = eve_config(&uuid, "dm-pci", 110, true, "");
        cfg["IoAdapterList"] = json!([{"Type": 1, "Name": "nic1"}]);
        daemon.write_config(&cfg)?;
        let st = daemon.wait_status(&uuid, "RUNNING", BOOT, |s| s["State"] == 115)?;
        let name = st["DomainName"].as_str().unwrap_or_default().to_string();
        let line = wait_console(&name, "XENBOX-GUEST-PCI", BOOT)?;
        ensure(line.contains("8086:100e") && line.contains("driver=e1000"), || format!("the guest sees {line:?}"))?;
        ensure(bundle(&daemon, "nic1")["UsedByUUID"] == uuid, || format!("nic1: {}", bundle(&daemon, "nic1")))?;

        cfg["Activate"] = false.into();
        daemon.write_config(&cfg)?;
        daemon.wait_status(&uuid, "HALTED", BOOT, |s| s["State"] == 119 && s["DomainId"] == 0)?;
        wait_until("nic1 released", BOOT, || {
            (bundle(&daemon, "nic1")["UsedByUUID"] == xenctl::Uuid::nil().to_string()).then_some(())
        })?;
        ensure(bundle(&daemon, "nic1")["IsPCIBack"] == true, || "released devices stay assignable".into())?;

        // nim now says dom0 uses nic1 as a port: the daemon gives it back to e1000 (rebind).
        write(
            &nim.join("DeviceNetworkStatus/global.json"),
            &json!({"Ports": [{"IfName": port_if}, {"IfName": free_if}]}),
        )?;
        wait_until("nic1 back in dom0 as a port", BOOT, || {
            let b = bundle(&daemon, "nic1");
            (b["IsPort"] == true && b.get("IsPCIBack").is_none()).then_some(())
        })?;
        let driver = wait_until("e1000 to bind nic1 again", BOOT, || Some(driver_of(&free)).filter(|d| d == "e1000"))?;
        let listed = xl(&["pci-assignable-list"])?;
        ensure(!listed.lines().any(|l| l.trim() == free), || format!("{free} still assignable: {listed:?}"))?;
        ensure(ifname_of(&free).is_some(), || format!("{free} has no network interface again (driver {driver})"))
    })();
    let _ = daemon.terminate();
    // Leave the NIC as the box had it, for the other tests.
    let _ = xl(&["pci-assignable-remove", "-r", &free]);
    result
}

fn metric(daemon: &DaemonProcess, uuid: &str) -> Option<Value> {
    let bytes = std::fs::read(daemon.root.join(format!("domainmgr/DomainMetric/{uuid}.json"))).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// One scrape of the Prometheus endpoint.
fn scrape(addr: std::net::SocketAddr) -> TestResult<String> {
    use std::io::{Read, Write};
    let mut c = std::net::TcpStream::connect(addr).ctx("connect to the metrics endpoint")?;
    c.write_all(b"GET /metrics HTTP/1.1\r\n\r\n").ctx("send")?;
    let mut text = String::new();
    c.read_to_string(&mut text).ctx("read")?;
    Ok(text)
}

/// The value of the series `name{labels}` in a scrape.
fn series(text: &str, name: &str, labels: &str) -> Option<f64> {
    let head = format!("{name}{labels} ");
    text.lines().find_map(|l| l.strip_prefix(&head)).and_then(|v| v.trim().parse().ok())
}

fn metrics_on_real_xen(ctx: &Context) -> TestResult {
    let mut daemon = DaemonProcess::new("dm-metrics", &["timer.metric.interval:4", "timer.domain.shutdown:20"]);
    let addr = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).ctx("a free port")?;
    daemon.args = vec![format!("--metrics-listen={addr}")];
    daemon.start()?;
    let uuid = xenctl::Uuid::new_v4().to_string();
    let mut cfg = eve_config(&uuid, "dm-busy", 111, true, "xenbox.busy=1");
    daemon.write_config(&cfg)?;
    let st = daemon.wait_status(&uuid, "RUNNING", BOOT, |s| s["State"] == 115)?;
    let name = st["DomainName"].as_str().unwrap_or_default().to_string();
    wait_console(&name, "XENBOX-GUEST-READY", BOOT)?;

    let first = wait_until("a metric", BOOT, || metric(&daemon, &uuid).filter(|m| m["Activated"] == true))?;
    let cpu0 = first["CPUTotalNs"].as_u64().unwrap_or(0);
    let later = wait_until("CPUTotalNs to grow by 0.5 s", BOOT, || {
        metric(&daemon, &uuid).filter(|m| m["CPUTotalNs"].as_u64().unwrap_or(0) > cpu0 + 500_000_000)
    })?;
    ensure(later["CPUScaled"] == 1, || format!("one vCPU: {later}"))?;
    // The domain's KiB as libxl tells them (xl list shows them in whole MiB, rounded down),
    // in MiB as EVE rounds them: to the nearest (a PVH guest holds a few pages beyond its
    // 128 MiB).
    let row = xl_list()?.into_iter().find(|r| r.name == name).ok_or("not in xl list")?;
    let kib = ctx.info(DomId::new(row.domid)).ctx("domain info")?.current_memory_kib;
    ensure(kib / 1024 == row.mem_mib, || format!("{kib} KiB vs xl list {} MiB", row.mem_mib))?;
    ensure(later["AllocatedMB"].as_u64() == Some((kib + 512) / 1024), || {
        format!("AllocatedMB {} vs {kib} KiB (xl list {} MiB)", later["AllocatedMB"], row.mem_mib)
    })?;
    let host: Value =
        serde_json::from_slice(&std::fs::read(daemon.root.join("domainmgr/HostMemory/global.json")).ctx("HostMemory")?)
            .ctx("HostMemory json")?;
    let info: std::collections::BTreeMap<_, _> = xl_info()?.into_iter().collect();
    ensure(
        host["TotalMemoryMB"].as_u64().map(|m| m.to_string()).as_deref()
            == info.get("total_memory").map(String::as_str),
        || format!("TotalMemoryMB {} vs xl info {:?}", host["TotalMemoryMB"], info.get("total_memory")),
    )?;

    // Prometheus, once: the CPU counter grows and the memory is what xl list says.
    let labels = format!("{{domain=\"dm-busy\",uuid=\"{uuid}\"}}");
    let cpu = |text: &str| series(text, "xen_domain_cpu_seconds_total", &labels);
    let first = wait_until("the endpoint to serve dm-busy", BOOT, || scrape(addr).ok().and_then(|t| cpu(&t)))?;
    let text = wait_until("the CPU seconds counter to grow by 0.5 s", BOOT, || {
        scrape(addr).ok().filter(|t| cpu(t).is_some_and(|c| c > first + 0.5))
    })?;
    let row = xl_list()?.into_iter().find(|r| r.name == name).ok_or("not in xl list")?;
    let kib = ctx.info(DomId::new(row.domid)).ctx("domain info")?.current_memory_kib;
    let mem = series(&text, "xen_domain_memory_bytes", &labels);
    ensure(mem == Some((kib << 10) as f64), || format!("xen_domain_memory_bytes {mem:?} vs {kib} KiB"))?;
    ensure(
        text.contains(&format!("xen_domain_info{{domain=\"dm-busy\",uuid=\"{uuid}\",domid=\"{}\"}} 1", row.domid)),
        || format!("no xen_domain_info with domid {}", row.domid),
    )?;

    cfg["Activate"] = false.into();
    daemon.write_config(&cfg)?;
    daemon.wait_status(&uuid, "HALTED", BOOT, |s| s["State"] == 119)?;
    let halted = wait_until("an inactive metric", BOOT, || metric(&daemon, &uuid).filter(|m| m["Activated"] == false))?;
    ensure(halted["UsedMemory"] == 0, || format!("{halted}"))?;
    daemon.terminate()?;
    Ok(())
}

/// A daemon with an adapter list of dom0's port and `extra`, nim naming that port; started.
fn daemon_with_adapters(name: &str, extra: Value) -> TestResult<DaemonProcess> {
    let port = std::env::var("XENBOX_DOM0_NIC").unwrap_or_else(|_| "0000:00:02.0".into());
    let port_if = ifname_of(&port).ok_or_else(|| format!("{port} has no network interface in dom0"))?;
    let mut daemon = DaemonProcess::new(name, &["timer.domain.shutdown:20"]);
    let zedagent = daemon.root.join("zedagent");
    let nim = daemon.root.join("nim");
    daemon.args = vec![format!("--zedagent-dir={}", zedagent.display()), format!("--nim-dir={}", nim.display())];
    write(
        &zedagent.join("PhysicalIOAdapterList/global.json"),
        &json!({"Initialized": true, "AdapterList": [
            {"Ptype": 1, "Phylabel": "port0", "Logicallabel": "port0", "Assigngrp": "port0",
             "Phyaddr": {"PciLong": port, "Ifname": port_if}, "Usage": 1},
            extra]}),
    )?;
    write(&nim.join("DeviceNetworkStatus/global.json"), &json!({"Ports": [{"IfName": port_if}]}))?;
    daemon.start()?;
    Ok(daemon)
}

fn serial_port_adapter_on_real_xen(_ctx: &Context) -> TestResult {
    // Xen keeps COM1 for its console; COM2's ports and IRQ must be free of dom0.
    let ioports = std::fs::read_to_string("/proc/ioports").ctx("read /proc/ioports")?;
    ensure(!ioports.lines().any(|l| l.trim_start().starts_with("02f8-02ff")), || {
        format!("dom0 uses COM2's ports:\n{ioports}")
    })?;
    let com2 = json!({"Ptype": 3, "Phylabel": "COM2", "Logicallabel": "COM2", "Assigngrp": "COM2",
        "Phyaddr": {"Serial": "/dev/ttyS1", "Irq": "3", "Ioports": "2f8-2ff"}, "Usage": 2});
    let mut daemon = daemon_with_adapters("dm-com2", com2)?;
    let result = (|| -> TestResult {
        wait_until("COM2 published", BOOT, || (!bundle(&daemon, "COM2").is_null()).then_some(()))?;
        let uuid = xenctl::Uuid::new_v4().to_string();
        let mut cfg = eve_config(&uuid, "dm-com2", 112, true, "");
        // Named by its logical label in another case, with another type: EVE's lookup.
        cfg["IoAdapterList"] = json!([{"Type": 0, "Name": "com2"}]);
        daemon.write_config(&cfg)?;
        let st = daemon.wait_status(&uuid, "RUNNING", BOOT, |s| s["State"] == 115)?;
        let name = st["DomainName"].as_str().unwrap_or_default().to_string();
        wait_console(&name, "XENBOX-GUEST-READY", BOOT)?;
        let config = xl_config(&name)?;
        let b_info = &config["b_info"];
        ensure(b_info["ioports"] == json!([{"first": 0x2f8, "number": 8}]), || {
            format!("libxl's ioports: {} (b_info {b_info})", b_info["ioports"])
        })?;
        ensure(b_info["irqs"] == json!([3]), || format!("libxl's irqs: {}", b_info["irqs"]))?;
        let b = bundle(&daemon, "COM2");
        ensure(b["UsedByUUID"] == uuid && b.get("IsPCIBack").is_none(), || format!("COM2: {b}"))?;

        halt_and_release(&daemon, &mut cfg, &uuid, "COM2", BOOT)
    })();
    let _ = daemon.terminate();
    result
}

/// Deactivates the EVE app `uuid` (its config `cfg`), waits for it to halt within `timeout`,
/// and for the adapter bundle `label` to be free again.
fn halt_and_release(daemon: &DaemonProcess, cfg: &mut Value, uuid: &str, label: &str, timeout: Duration) -> TestResult {
    cfg["Activate"] = false.into();
    daemon.write_config(cfg)?;
    daemon.wait_status(uuid, "HALTED", timeout, |s| s["State"] == 119 && s["DomainId"] == 0)?;
    wait_until(&format!("{label} released"), BOOT, || {
        (bundle(daemon, label)["UsedByUUID"] == xenctl::Uuid::nil().to_string()).then_some(())
    })
    .map(drop)
}

/// The first USB device (not a hub) in dom0's sysfs: its sysfs name (`1-1`), bus and device
/// numbers.
fn first_usb_device() -> Option<(String, u8, u8)> {
    let dir = std::fs::read_dir("/sys/bus/usb/devices").ok()?;
    let mut names: Vec<String> = dir.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names.into_iter().find_map(|n| {
        // Devices are BUS-PORT[.PORT...]; interfaces have a ':', root hubs are usbN.
        if n.contains(':') || !n.contains('-') {
            return None;
        }
        let read = |f: &str| std::fs::read_to_string(format!("/sys/bus/usb/devices/{n}/{f}")).ok();
        let class = read("bDeviceClass")?;
        if class.trim() == "09" {
            return None; // a hub
        }
        let bus = read("busnum")?.trim().parse().ok()?;
        let dev = read("devnum")?.trim().parse().ok()?;
        Some((n, bus, dev))
    })
}

/// dom0's USB device (run.sh gives the box a tablet on an xHCI controller) as EVE names it: its
/// adapter entry (`UsbAddr` is bus and port path; sysfs names the device BUS-PORT), bus and
/// device numbers. dom0 has no udev: the controller's driver is loaded here.
/// dom0's one USB device: one test at a time forwards it (run together, the PV and HVM tests
/// would take it from each other; CI runs them in different boxes).
static TABLET: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn lock_tablet() -> std::sync::MutexGuard<'static, ()> {
    TABLET.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn dom0_tablet() -> TestResult<(Value, String, u8, u8)> {
    let _ = run("modprobe", &["xhci_pci"]);
    let (sysname, bus, dev) =
        wait_until("a USB device in dom0 (run.sh gives the box a tablet)", Duration::from_secs(10), first_usb_device)?;
    let (bus_text, port) = sysname.split_once('-').ok_or("a USB device name without '-'")?;
    let tablet = json!({"Ptype": 14, "Phylabel": "tablet", "Logicallabel": "tablet", "Assigngrp": "tablet",
        "Phyaddr": {"UsbAddr": format!("{bus_text}:{port}")}, "Usage": 2});
    Ok((tablet, sysname, bus, dev))
}

/// Checks libxl's USB controller and device of the running domain `name`: EVE's version-2
/// controller with 6 ports and dom0's device `bus`.`dev` on its port 1, as `xl usb-list` reads
/// them back (for a PV guest's `qusb` controller libxl 4.17 leaves the device out of `xl list
/// -l`), and the bundle used by `uuid`.
fn check_usb_forwarded(daemon: &DaemonProcess, name: &str, uuid: &str, bus: u8, dev: u8) -> TestResult {
    let config = xl_config(name)?;
    ensure(config["usbctrls"][0]["version"] == 2 && config["usbctrls"][0]["ports"] == 6, || {
        format!("libxl's usbctrls: {}", config["usbctrls"])
    })?;
    let list = xl(&["usb-list", name])?;
    let want = format!("Port 1: Bus {bus:03} Device {dev:03}");
    ensure(list.contains(&want), || format!("xl usb-list {name}: wanted {want:?}:\n{list}"))?;
    let b = bundle(daemon, "tablet");
    ensure(b["UsedByUUID"] == uuid, || format!("tablet: {b}"))
}

/// A PV guest: libxl forwards the device through QEMU's PV USB back end (`qusb`; dom0 has no
/// usbback). Debian's kernel has no PV USB front end (`CONFIG_USB_XEN_HCD` is off), so the guest
/// cannot see it: the HVM test below is the one where the guest reads the device.
fn usb_device_adapter_on_real_xen(_ctx: &Context) -> TestResult {
    let _tablet = lock_tablet();
    let (tablet, sysname, bus, dev) = dom0_tablet()?;
    let mut daemon = daemon_with_adapters("dm-usb", tablet)?;
    let result = (|| -> TestResult {
        wait_until("tablet published", BOOT, || (!bundle(&daemon, "tablet").is_null()).then_some(()))?;
        let uuid = xenctl::Uuid::new_v4().to_string();
        let mut cfg = eve_config(&uuid, "dm-usb", 113, true, "");
        cfg["IoAdapterList"] = json!([{"Type": 14, "Name": "tablet"}]);
        daemon.write_config(&cfg)?;
        let st =
            daemon.wait_status(&uuid, "RUNNING or failed", BOOT, |s| s["State"] == 115 || s["BootFailed"] == true)?;
        ensure(st["State"] == 115, || format!("the domain did not start: {}", st["Error"]))?;
        let name = st["DomainName"].as_str().unwrap_or_default().to_string();
        let _cleanup = Cleanup(vec![name.clone()]);
        check_usb_forwarded(&daemon, &name, &uuid, bus, dev)?;
        let domid = st["DomainId"].as_u64().unwrap_or_default();
        let backend = xenstore_read(&format!("/local/domain/0/backend/qusb/{domid}/0/port/1"))?;
        ensure(backend == sysname, || format!("QEMU's qusb back end has {backend:?} on port 1, not {sysname}"))?;
        halt_and_release(&daemon, &mut cfg, &uuid, "tablet", BOOT)
    })();
    let _ = daemon.terminate();
    result
}

/// An HVM guest: libxl's device-model controller (QEMU's EHCI) with dom0's tablet on it, which
/// the guest's kernel enumerates: its console names the device by its serial number.
fn hvm_usb_device_adapter_on_real_xen(_ctx: &Context) -> TestResult {
    let _turn = hvm_turn();
    let _tablet = lock_tablet();
    let (tablet, _, bus, dev) = dom0_tablet()?;
    let mut daemon = daemon_with_adapters("dm-usb-hvm", tablet)?;
    let result = (|| -> TestResult {
        wait_until("tablet published", BOOT, || (!bundle(&daemon, "tablet").is_null()).then_some(()))?;
        let uuid = xenctl::Uuid::new_v4().to_string();
        let kernel =
            std::env::var("XENBOX_GUEST_KERNEL_COMPRESSED").unwrap_or_else(|_| "/var/lib/xenbox/vmlinuz".into());
        let mut cfg = eve_config(&uuid, "dm-usb-hvm", 114, true, "console=hvc0");
        cfg["VirtualizationMode"] = 1.into();
        cfg["Kernel"] = kernel.into();
        cfg["Memory"] = 262144.into();
        cfg["IoAdapterList"] = json!([{"Type": 14, "Name": "tablet"}]);
        daemon.write_config(&cfg)?;
        let st = daemon
            .wait_status(&uuid, "RUNNING or failed", HVM_BOOT, |s| s["State"] == 115 || s["BootFailed"] == true)?;
        ensure(st["State"] == 115, || format!("the domain did not start: {}", st["Error"]))?;
        let name = st["DomainName"].as_str().unwrap_or_default().to_string();
        let _cleanup = Cleanup(vec![name.clone()]);
        check_usb_forwarded(&daemon, &name, &uuid, bus, dev)?;
        wait_console(&name, "XENBOX-GUEST-READY", HVM_BOOT)?;
        let console = console_text(&name);
        ensure(console.contains("XENBOX-GUEST-USB") && console.contains("serial=xenbox-dom0-tablet"), || {
            let usb: Vec<&str> = console.lines().filter(|l| l.contains("XENBOX-GUEST-USB")).collect();
            format!("the guest did not see dom0's tablet; its USB devices: {usb:?}")
        })?;
        halt_and_release(&daemon, &mut cfg, &uuid, "tablet", HVM_BOOT)
    })();
    let _ = daemon.terminate();
    result
}

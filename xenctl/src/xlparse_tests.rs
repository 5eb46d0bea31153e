//! Unit tests of the xl.cfg parser (`xlparse.rs`): every supported key, the errors (file,
//! line, key), the corpus in tests/xlcfg/, and round trips through `to_xl_config`.

use super::*;
use crate::devices::{DiskFormat, Mac, NicType, VifSpec, VncSpec};
use crate::options::{DisplaySpec, PlatformSpec, TimerMode};
use crate::pci::PciSpec;

/// The corpus the end-to-end test compares with `xl -N create` (tests/src/xlcfg_e2e.rs).
const CORPUS: &[(&str, &str)] = include!("../../tests/xlcfg/corpus.rs");

/// The host the corpus is read on (some of its CPU lists name `all` or a node): 4 CPU slots,
/// one node.
fn test_host() -> HostCpus {
    HostCpus { max_cpus: 4, max_nodes: 1, node_cpus: vec![vec![0, 1, 2, 3]] }
}

/// A corpus file, read on [`test_host`].
fn read_corpus(name: &str, text: &str) -> XlConfigFile {
    DomainSpec::read_xl_config_bytes_on(name, text.as_bytes(), Some(&test_host())).unwrap_or_else(|e| panic!("{e}"))
}

fn corpus(name: &str) -> DomainSpec {
    let (_, text) = CORPUS.iter().find(|(n, _)| *n == name).unwrap();
    read_corpus(name, text).spec
}

/// A PV config with the given extra lines.
pub(super) fn pv(extra: &str) -> Result<DomainSpec> {
    DomainSpec::from_xl_config_text("g.cfg", &format!("name = \"g\"\nkernel = \"/k\"\n{extra}\n"))
}

/// An HVM config with the given extra lines.
pub(super) fn hvm(extra: &str) -> Result<DomainSpec> {
    DomainSpec::from_xl_config_text("h.cfg", &format!("type = \"hvm\"\nname = \"h\"\n{extra}\n"))
}

pub(super) fn err(r: Result<DomainSpec>) -> String {
    r.unwrap_err().to_string()
}

fn parse_back(spec: &DomainSpec) -> DomainSpec {
    let text = spec.to_xl_config().unwrap_or_else(|e| panic!("{}: {e}", spec.name));
    DomainSpec::from_xl_config_text("rendered.cfg", &text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

#[test]
fn the_corpus_list_is_the_whole_directory() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/xlcfg");
    let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".cfg"))
        .collect();
    on_disk.sort();
    let mut listed: Vec<String> = CORPUS.iter().map(|(n, _)| n.to_string()).collect();
    listed.sort();
    assert_eq!(listed, on_disk);
}

#[test]
fn every_corpus_config_parses_and_round_trips() {
    for (name, text) in CORPUS {
        let spec = read_corpus(name, text).spec;
        assert!(!spec.uuid.is_nil(), "{name}: the corpus gives every config a uuid");
        assert_eq!(parse_back(&spec), spec, "{name}");
        spec.to_libxl_json().unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

#[test]
fn every_corpus_config_round_trips_through_json() {
    for (name, text) in CORPUS {
        let file = read_corpus(name, text);
        let json = serde_json::to_string(&file).unwrap();
        let back: XlConfigFile = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{name}: {e}\n{json}"));
        assert_eq!(back, file, "{name}");
    }
    // And a file without a uuid, which says so.
    let file = DomainSpec::read_xl_config_text("g.cfg", "name = 'g'\nkernel = '/k'\n").unwrap();
    let back: XlConfigFile = serde_json::from_str(&serde_json::to_string(&file).unwrap()).unwrap();
    assert_eq!((back.uuid_given, back.spec.uuid), (false, file.spec.uuid));
}

#[test]
fn corpus_pv_kernel_combines_root_and_extra() {
    let s = corpus("pv-kernel.cfg");
    assert_eq!((s.name.as_str(), s.kind, s.memory_mib, s.vcpus), ("web01", DomainKind::Pv, 512, 2));
    assert_eq!(s.uuid.to_string(), "3f1f6c0e-5d2a-4c0b-9d1e-6a2b9c1d7e01");
    assert_eq!(s.cmdline.as_deref(), Some("root=/dev/xvda2 ro console=hvc0 elevator=noop"));
    assert_eq!(s.ramdisk.as_deref(), Some("/boot/initrd.img-6.1.0-18-amd64"));
    assert_eq!(s.disks.iter().map(|d| d.vdev.as_str()).collect::<Vec<_>>(), ["xvda2", "xvda1"]);
    assert_eq!(s.vifs[0].mac, Some("00:16:3e:4a:12:7b".parse::<Mac>().unwrap()));
    assert_eq!(s.vifs[0].ip.as_deref(), Some("192.168.1.50"));
    assert_eq!(s.on_crash, ShutdownAction::Preserve);
}

#[test]
fn corpus_pygrub_and_hvm_details() {
    let s = corpus("pv-pygrub.cfg");
    assert_eq!(s.bootloader.as_deref(), Some("pygrub"));
    assert_eq!(s.bootloader_args.len(), 3);
    assert_eq!((s.memory_mib, s.max_memory_mib, s.vcpus, s.max_vcpus), (1024, Some(2048), 1, Some(2)));
    assert_eq!((s.disks[1].format, s.disks[1].readonly), (DiskFormat::Qcow2, true));
    assert_eq!(s.vifs[1].rate.as_deref(), Some("1MB/s@20ms"));

    let s = corpus("hvm-windows.cfg");
    assert_eq!((s.serial.as_deref(), s.boot_order.as_deref()), (Some("pty"), Some("dc")));
    assert!(s.disks[1].cdrom);
    assert_eq!(s.vifs[0].nic_type, Some(NicType::Ioemu));
    assert_eq!(
        s.vnc,
        Some(VncSpec {
            listen: Some("0.0.0.0".into()),
            display: Some(1),
            password: Some("s3cret".into()),
            find_unused: Some(false),
            enable_by_default: false
        })
    );
    assert_eq!((s.display.vga, s.display.video_memory_mib), (Some(VgaKind::Std), Some(16)));
    assert_eq!((s.usb, s.usb_device.as_deref(), s.soundhw.as_deref()), (Some(true), Some("tablet"), Some("hda")));

    let s = corpus("hvm-legacy-builder.cfg");
    assert_eq!((s.kind, s.kernel.as_deref()), (DomainKind::Hvm, None), "hvmloader is dropped, as xl does");
    assert_eq!((s.serial_ports.clone(), s.usb_devices.clone()), (vec!["pty".to_string()], vec!["tablet".to_string()]));
    assert_eq!(s.vnc.as_ref().and_then(|v| v.listen.as_deref()), Some(""));
    assert!(s.disks[1].cdrom && s.disks[1].target.is_none());
}

#[test]
fn corpus_devices_and_pinning() {
    let s = corpus("pv-pci-rate.cfg");
    assert_eq!(s.pcis.len(), 2);
    assert!(s.pcis[0].permissive && !s.pcis[1].permissive && s.pcis[1].seize);
    assert_eq!(s.vifs[2].gatewaydev.as_deref(), Some("eth0"));
    assert_eq!((s.vifs[1].mtu, s.vifs[2].trusted), (Some(9000), Some(true)));
    assert_eq!(s.platform.e820_host, None, "left to convert, which turns it on as xl does");

    let s = corpus("pv-pinning.cfg");
    assert_eq!((s.cpus.clone(), s.cpu_weight, s.cpu_cap), (vec![0, 1], Some(512), Some(50)));
    assert_eq!(
        (s.on_poweroff, s.on_reboot, s.on_crash, s.on_watchdog, s.on_soft_reset),
        (
            ShutdownAction::Preserve,
            ShutdownAction::RestartRename,
            ShutdownAction::CoredumpDestroy,
            ShutdownAction::Restart,
            ShutdownAction::Destroy
        )
    );
    assert_eq!(s.tsc_mode, TscMode::Native);

    let s = corpus("pv-vnc-append.cfg");
    assert_eq!(s.disks.len(), 2, "+= appends");
    assert_eq!(s.vnc.as_ref().and_then(|v| v.password.as_deref()), Some("pa'ss"));
    assert_eq!((s.display.keymap.as_deref(), s.display.sdl), (Some("fr"), Some(false)));

    let s = corpus("hvm-pci.cfg");
    assert_eq!(s.vifs.iter().map(|v| v.devid).collect::<Vec<_>>(), [Some(2), Some(1)], "xl's numbering");
    assert!(s.pcis[0].msitranslate && s.pcis[0].power_mgmt);
    assert!(s.display.vnc_disabled && s.vnc.is_none());
    assert_eq!(s.platform.bios, Some(BiosKind::Ovmf));

    // On a host of 4 CPU slots (an 8-bit map) and one node.
    let s = corpus("pinning-host-sets.cfg");
    assert_eq!(s.cpus, [1, 2, 3, 4, 5, 6, 7], "all but 0; 4000 is past the map");
    assert_eq!(format!("{:?}", s.tuning.soft_affinity), "Some(AllVcpus([0, 1, 2, 3]))");
    let s = corpus("pinning-host-per-vcpu.cfg");
    assert_eq!(s.vcpu_cpus, [vec![0, 1, 2, 3], (0..8).collect()]);
    assert_eq!(format!("{:?}", s.tuning.soft_affinity), "Some(PerVcpu([[0, 1, 2, 3], [0, 2, 3, 4, 5, 6, 7]]))");

    let s = corpus("pvh.cfg");
    assert_eq!((s.kind, s.vnc.as_ref().and_then(|v| v.display)), (DomainKind::Pvh, Some(5)));
    assert_eq!(s.display.keymap.as_deref(), Some("de"));
}

#[test]
fn defaults_follow_xl_and_libxl() {
    let s = pv("").unwrap();
    assert_eq!((s.kind, s.memory_mib, s.max_memory_mib, s.vcpus), (DomainKind::Pv, 32, None, 1));
    assert_eq!(
        (s.on_poweroff, s.on_reboot, s.on_crash),
        (ShutdownAction::Destroy, ShutdownAction::Restart, ShutdownAction::Destroy)
    );
    assert!(!s.uuid.is_nil(), "a random UUID, as xl makes");
    assert_eq!(pv("maxmem = 512").unwrap().memory_mib, 512, "libxl starts at maxmem");
    assert_eq!(pv("memory = 0x100").unwrap().memory_mib, 256, "strtol with base 0");
}

#[test]
fn every_supported_key_sets_its_field() {
    let s = pv("uuid = \"6ba7b810-9dad-11d1-80b4-00c04fd430c8\"\nmemory = 256\nmaxmem = 512\nvcpus = 2\n\
                maxvcpus = 4\ncpus = \"1,3\"\nramdisk = \"/r\"\ncmdline = \"c\"\ne820_host = 1\nacpi = 0\nhap = 1\n\
                nestedhvm = 0\nlocaltime = 1\nvideoram = 4\ndevice_model_version = \"qemu-xen-traditional\"\n\
                tsc_mode = \"always_emulate\"\non_watchdog = \"preserve\"\non_soft_reset = \"destroy\"")
    .unwrap();
    assert_eq!(s.uuid.to_string(), "6ba7b810-9dad-11d1-80b4-00c04fd430c8");
    assert_eq!((s.memory_mib, s.max_memory_mib, s.vcpus, s.max_vcpus), (256, Some(512), 2, Some(4)));
    assert_eq!((s.cpus.clone(), s.ramdisk.as_deref(), s.cmdline.as_deref()), (vec![1, 3], Some("/r"), Some("c")));
    assert_eq!(
        s.platform,
        PlatformSpec {
            acpi: Some(false),
            hap: Some(true),
            nested_hvm: Some(false),
            localtime: Some(true),
            e820_host: Some(true),
            device_model_version: Some(DeviceModelVersion::QemuXenTraditional),
            ..PlatformSpec::default()
        }
    );
    assert_eq!(s.display.video_memory_mib, Some(4));
    assert_eq!(
        (s.tsc_mode, s.on_watchdog, s.on_soft_reset),
        (TscMode::AlwaysEmulate, ShutdownAction::Preserve, ShutdownAction::Destroy)
    );

    let s = hvm("apic = 0\npae = 1\nviridian = 1\nhpet = 0\nxen_platform_pci = 1\nbios = \"SeaBIOS\"\n\
                 vga = \"qxl\"\nstdvga = 1\nnographic = 0\nsdl = 1\nopengl = 1\nkeymap = \"de\"\nusb = 0\n\
                 usbversion = 3\nusbdevice = [ \"tablet\", \"mouse\" ]\nsoundhw = \"ac97\"\n\
                 serial = [ \"pty\", \"file:/tmp/s\" ]\nboot = \"n\"\nvncunused = 0")
    .unwrap();
    assert_eq!(
        (s.platform.apic, s.platform.pae, s.platform.viridian, s.platform.hpet, s.platform.xen_platform_pci),
        (Some(false), Some(true), Some(true), Some(false), Some(true))
    );
    assert_eq!(s.platform.bios, Some(BiosKind::Seabios), "libxl compares case-insensitively");
    assert_eq!(
        s.display,
        DisplaySpec {
            sdl: Some(true),
            opengl: Some(true),
            keymap: Some("de".into()),
            vga: Some(VgaKind::Qxl),
            nographic: Some(false),
            ..DisplaySpec::default()
        }
    );
    assert_eq!((s.usb, s.usb_version, s.usb_devices.len()), (Some(false), Some(3), 2));
    assert_eq!((s.soundhw.as_deref(), s.serial_ports.len(), s.boot_order.as_deref()), (Some("ac97"), 2, Some("n")));
    let want = VncSpec { find_unused: Some(false), enable_by_default: true, ..VncSpec::default() };
    assert_eq!(s.vnc, Some(want), "a VNC key alone: VNC on, by libxl's default");
    assert_eq!(hvm("stdvga = 0").unwrap().display.vga, Some(VgaKind::Cirrus));
    assert_eq!(hvm("").unwrap().vnc, None, "libxl's default (on for HVM), untouched");
    assert_eq!(hvm("builder = \"hvm\"").unwrap().kind, DomainKind::Hvm);
    assert_eq!(pv("builder = \"generic\"").unwrap().kind, DomainKind::Pv);
}

#[test]
fn cmdline_wins_over_root_and_extra() {
    assert_eq!(pv("root = \"/dev/xvda\"").unwrap().cmdline.as_deref(), Some("root=/dev/xvda"));
    assert_eq!(pv("extra = \"quiet\"").unwrap().cmdline.as_deref(), Some("quiet"));
    assert_eq!(pv("cmdline = \"a\"\nroot = \"b\"\nextra = \"c\"").unwrap().cmdline.as_deref(), Some("a"));
    let args = pv("bootloader = \"pygrub\"\nbootloader_args = \"-q  --entry=1\"").unwrap().bootloader_args;
    assert_eq!(args, ["-q", "--entry=1"], "the deprecated string form splits on blanks");
}

#[test]
fn top_level_vnc_for_pv_becomes_a_framebuffer_and_needs_vnc_1() {
    let s = pv("vnc = 1\nvnclisten = \"0.0.0.0\"\nkeymap = \"de\"").unwrap();
    assert_eq!(s.vnc, Some(VncSpec { listen: Some("0.0.0.0".into()), ..VncSpec::default() }));
    assert_eq!(pv("vnc = 0").unwrap().vnc, None);
    assert_eq!(err(pv("vnclisten = \"0.0.0.0\"")), "g.cfg:3: vnclisten: a PV guest's display needs vnc = 1 (or a vfb)");
    // Beside a vfb list xl ignores the top-level keys; one vfb with VNC is the same device as
    // `vnc`, and is read as that; others stay a list.
    let s = pv("vfb = [ 'vnc=1,vncdisplay=2' ]\nvnc = 1\nvncdisplay = 5\nkeymap = \"fr\"").unwrap();
    assert_eq!((s.vnc.and_then(|v| v.display), s.display.keymap, s.vfbs.len()), (Some(2), None, 0));
    let s = pv("vfb = [ 'vnc=1', 'sdl=1,vnc=0' ]").unwrap();
    assert_eq!((s.vnc.is_none(), s.vfbs.len(), s.vfbs[1].vnc), (true, 2, Some(false)));
    let s = pv("vfb = [ 'vnc=0,sdl=1' ]").unwrap();
    assert_eq!((s.vnc.is_none(), s.vfbs.len()), (true, 1));
    assert_eq!(parse_back(&s), s);
    assert!(
        err(pv("vfb = [ 'vncdisplay=x' ]"))
            .starts_with("g.cfg:3: vfb[0]: \"vncdisplay=x\": vncdisplay=x: not a number")
    );
    // xl gives an HVM guest the list's framebuffers beside its own display.
    let s = hvm("vfb = [ 'vnc=1,vncdisplay=3' ]\nvnc = 1\nvncdisplay = 1").unwrap();
    assert_eq!((s.vnc.as_ref().and_then(|v| v.display), s.vfbs[0].vnc_display), (Some(1), Some(3)));
    assert_eq!(parse_back(&s), s);
}

/// xl reads the HVM keys only for HVM guests and `e820_host` only for PV ones, and skips them
/// silently elsewhere: a PV file with `pae` left in it runs under xl, so it runs here too.
#[test]
fn keys_xl_reads_for_other_guest_types_only_are_skipped_as_xl_skips_them() {
    let s = pv("pae = 1\nboot = \"c\"\nserial = \"pty\"\nviridian = [ \"bogus\" ]\nvga = \"nonsense\"").unwrap();
    assert_eq!((s.platform.pae, s.boot_order, s.serial), (None, None, None));
    assert!(s.platform.viridian_enlightenments.is_empty() && s.display.vga.is_none());
    let s = hvm("e820_host = 1").unwrap();
    assert_eq!(s.platform.e820_host, None);
    // xl reads bootloader for every type and passes it on; libxl ignores it for HVM.
    let s = hvm("bootloader = \"pygrub\"").unwrap();
    assert_eq!(s.bootloader.as_deref(), Some("pygrub"));
    assert_eq!(parse_back(&s), s);
    // Keys xl reads for every type but refuses, or cannot place, for some stay errors.
    assert!(err(pv("timer_mode = \"delay_for_missed_ticks\"")).contains("timer_mode: applies to PVH and HVM"));
    // A PVH guest's top-level display keys go where a PVH guest has nothing, in xl.
    let pvh = "type = \"pvh\"\nname = \"p\"\nkernel = \"/k\"\nvnc = 1\nkeymap = \"de\"\nsdl = 1\n";
    let s = DomainSpec::from_xl_config_text("p.cfg", pvh).unwrap();
    assert_eq!((s.vnc, s.vfbs.len(), s.display), (None, 0, Default::default()));
}

/// xl skips `disk`, `vif` and `pci` given as one string (libxlutil warns that it is not a
/// list): the domain comes up without them, and so does ours, with the warning.
#[test]
fn device_lists_given_one_string_are_skipped_as_xl_skips_them() {
    let s = pv("disk = \"/x,raw,xvda,rw\"\nvif = \"bridge=xenbr0\"\npci = \"03:00.0\"").unwrap();
    assert!(s.disks.is_empty() && s.vifs.is_empty() && s.pcis.is_empty());
}

#[test]
fn errors_name_file_line_and_key() {
    let cases = [
        (pv("memroy = 512"), "g.cfg:3: memroy: not an xl.cfg key"),
        (pv("timer_mode = 1"), "g.cfg:3: timer_mode: applies to PVH and HVM guests only, and this is a pv guest"),
        (pv("memory = \"lots\""), "g.cfg:3: memory: parameter `memory' is not a valid number"),
        (pv("memory = 0"), "g.cfg:3: memory: 0: must be at least 1"),
        (pv("vcpus = 99999999999"), "g.cfg:3: vcpus: 99999999999: too large"),
        (pv("memory += 2"), "g.cfg:3: memory: can't use += with numbers for parameter `memory'"),
        (pv("acpi = \"yes\""), "g.cfg:3: acpi: parameter `acpi' is not a valid number (expected 0 or 1)"),
        (pv("kernel = [ \"/k\" ]"), "g.cfg:3: kernel: a list, where xl expects a single value"),
        (pv("type = \"xen\""), "g.cfg:3: type: \"xen\": expected \"pv\", \"pvh\" or \"hvm\""),
        (pv("type = \"pv\"\nbuilder = \"hvm\""), "g.cfg:4: builder: says hvm but type says pv"),
        (pv("uuid = \"nope\""), "g.cfg:3: uuid: \"nope\" is not a UUID"),
        // libuuid's uuid_parse, which xl uses, takes the hyphenated form only.
        (
            pv("uuid = \"{6ba7b810-9dad-11d1-80b4-00c04fd430c8}\""),
            "g.cfg:3: uuid: \"{6ba7b810-9dad-11d1-80b4-00c04fd430c8}\" is not a UUID",
        ),
        (
            pv("uuid = \"6ba7b8109dad11d180b400c04fd430c8\""),
            "g.cfg:3: uuid: \"6ba7b8109dad11d180b400c04fd430c8\" is not",
        ),
        (pv("on_crash = \"explode\""), "g.cfg:3: on_crash: shutdown action \"explode\""),
        (pv("tsc_mode = \"fast\""), "g.cfg:3: tsc_mode: \"fast\": expected default"),
        (
            pv("vcpus = 2\ncpus = [ \"0\", \"all\" ]"),
            "g.cfg:4: cpus[1]: `all' in a per-vCPU list needs the host's CPUs",
        ),
        (pv("vcpus = 2\ncpus = [ \"0\", \"x\" ]"), "g.cfg:4: cpus[1]: `x' is not a CPU number"),
        (pv("cpus = \"0-\""), "g.cfg:3: cpus: `0-' is not a CPU number"),
        (hvm("viridian = [ \"base\", \"turbo\" ]"), "h.cfg:3: viridian[1]: \"turbo\": not a viridian"),
        (hvm("bios = \"coreboot\""), "h.cfg:3: bios: \"coreboot\": expected rombios"),
        (hvm("vga = \"vmware\""), "h.cfg:3: vga: \"vmware\": expected stdvga"),
        (hvm("vnclisten = \"0.0.0.0:1\"\nvncdisplay = 1"), "h.cfg:4: vncdisplay: the display is also given"),
        (hvm("device_model_version = \"qemu\""), "h.cfg:3: device_model_version: \"qemu\": expected qemu-xen"),
        (pv("memory = 256\n\nmaxmem = 128"), "g.cfg:5: maxmem: \"128\": must be at least memory (256 MiB)"),
        (pv("vcpus = 4\nmaxvcpus = 2"), "g.cfg:4: maxvcpus: \"2\": must be at least vcpus (4)"),
        (hvm("serial = \"pty\"\nusbversion = 7"), "h.cfg:4: usbversion: \"7\": must be 1, 2 or 3"),
        (DomainSpec::from_xl_config_text("n.cfg", "kernel = \"/k\"\n"), "n.cfg: name: xl needs a domain name"),
        (
            DomainSpec::from_xl_config_text("n.cfg", "name = \"n\"\n"),
            "n.cfg: kernel: a PV guest needs a kernel or a bootloader",
        ),
    ];
    for (result, want) in cases {
        let got = err(result);
        assert!(got.starts_with(want), "want {want:?}\n got {got:?}");
    }
}

#[test]
fn list_item_errors_point_at_the_item() {
    let text = "disk = [ 'format=raw,vdev=xvda,target=/a',\n         'vdev=xvdb,access=rx,target=/b' ]";
    assert!(err(pv(text)).starts_with("g.cfg:4: disk[1]: \"vdev=xvdb,access=rx,target=/b\": unknown value for access"));
    let text = "vif = [\n  'bridge=xenbr0',\n\n  'bridge=xenbr1,mac=00:16' ]";
    assert_eq!(
        err(pv(text)),
        "g.cfg:6: vif[1]: \"bridge=xenbr1,mac=00:16\": mac \"00:16\": expected six hex bytes like 00:16:3e:12:34:56"
    );
    assert!(err(pv("pci = [ '03:00.0@4' ]")).starts_with("g.cfg:3: pci[0]: \"03:00.0@4\": a virtual slot"));
    assert!(err(hvm("usbdevice = [ [ 'x' ] ]")).starts_with("h.cfg:3: usbdevice"));
    assert_eq!(
        err(hvm("usbdevice = [ 'a', [ 'x' ] ]")),
        "h.cfg:3: usbdevice[1]: a nested list, where xl expects a string"
    );
    let text = "disk = [ 'vdev=xvda,target=/a',\n 'vdev=xvda,target=/b' ]";
    assert_eq!(err(pv(text)), "g.cfg:4: disk[1]: \"xvda\": used by an earlier disk");
    let text = "vif = [ 'mac=00:16:3e:00:00:01',\n 'mac=00:16:3e:00:00:01' ]";
    assert!(err(pv(text)).starts_with("g.cfg:4: vif[1]: \"00:16:3e:00:00:01\": used by an earlier vif"));
}

#[test]
fn libxlutil_syntax_errors_come_through_with_their_line() {
    assert_eq!(
        err(pv("memory = = 3")),
        "g.cfg:3: config parsing error near `=': syntax error, unexpected '=', expecting STRING or NUMBER or '['"
    );
    let python = err(pv("memory = max(128, 256)"));
    assert!(python.starts_with("g.cfg:3: config parsing error near `max'") && python.contains("Python"), "{python}");
    assert!(err(pv("name = \"unterminated\n")).starts_with("g.cfg:3: config parsing error near `\"unterminated'"));
}

#[test]
fn reading_a_file_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("guest.cfg");
    std::fs::write(&path, "name = \"g\"\nkernel = \"/k\"\nvcpus = \"two\"\n").unwrap();
    let e = DomainSpec::from_xl_config(&path).unwrap_err();
    assert_eq!(e.to_string(), format!("{}:3: vcpus: parameter `vcpus' is not a valid number", path.display()));
    let e = DomainSpec::from_xl_config(&dir.path().join("missing.cfg")).unwrap_err();
    assert!(matches!(e, Error::Io { op: "read xl config", .. }), "{e:?}");
    std::fs::write(&path, "name = \"g\"\nkernel = \"/k\"\nmemory = 300\n").unwrap();
    assert_eq!(DomainSpec::from_xl_config(&path).unwrap().memory_mib, 300);
}

#[test]
fn varied_specs_round_trip_through_xl_config() {
    let uuid = |n: u128| Uuid::from_u128(0x1234_0000_0000_4000_8000_0000_0000_0000 | n);
    let mut hvm = DomainSpec::hvm("win")
        .uuid(uuid(1))
        .memory_mib(4096)
        .max_memory_mib(8192)
        .vcpus(4)
        .max_vcpus(8)
        .cpus(vec![0, 2, 3])
        .serial("pty")
        .vnc(VncSpec {
            listen: Some("0.0.0.0".into()),
            display: Some(2),
            password: None,
            find_unused: Some(false),
            enable_by_default: false,
        })
        .disk(DiskSpec::from_xl("vdev=hdc,devtype=cdrom,target=/srv/x.iso").unwrap())
        .vif(VifSpec { model: Some("e1000".into()), nic_type: Some(NicType::Ioemu), ..VifSpec::bridged("br0") })
        .pci(PciSpec { msitranslate: true, ..PciSpec::new("0000:03:00.0".parse().unwrap()) });
    hvm.boot_order = Some("dc".into());
    hvm.platform = PlatformSpec {
        acpi: Some(true),
        viridian_enlightenments: Vec::new(),
        apic: Some(false),
        pae: Some(true),
        hap: Some(true),
        nested_hvm: Some(false),
        viridian: Some(true),
        hpet: Some(true),
        xen_platform_pci: Some(false),
        localtime: Some(true),
        e820_host: None,
        bios: Some(BiosKind::Ovmf),
        device_model_version: Some(DeviceModelVersion::QemuXen),
        acpi_s3: Some(true),
        acpi_s4: Some(false),
        rtc_timeoffset: Some(-60),
        shadow_memory_mib: Some(16),
        disable_migrate: Some(true),
        timer_mode: Some(TimerMode::NoMissedTicksPending),
        max_grant_frames: Some(32),
        ..PlatformSpec::default()
    };
    hvm.display = DisplaySpec {
        vnc_disabled: false,
        sdl: Some(false),
        opengl: Some(true),
        keymap: Some("en-gb".into()),
        vga: Some(VgaKind::Cirrus),
        video_memory_mib: Some(32),
        nographic: Some(false),
        ..DisplaySpec::default()
    };
    hvm.usb = Some(true);
    hvm.usb_version = Some(3);
    hvm.usb_devices = vec!["tablet".into()];
    hvm.soundhw = Some("hda".into());
    hvm.cpu_weight = Some(1024);
    hvm.cpu_cap = Some(200);
    hvm.on_watchdog = ShutdownAction::CoredumpDestroy;
    hvm.on_soft_reset = ShutdownAction::Restart;
    hvm.tsc_mode = TscMode::NativeParavirt;

    let mut headless = DomainSpec::hvm("headless").uuid(uuid(2));
    headless.display.vnc_disabled = true;
    headless.serial_ports = vec!["pty".into(), "null".into()];
    headless.usb_device = Some("mouse".into());

    let mut pvfb = DomainSpec::pv("desk")
        .uuid(uuid(3))
        .kernel("/k")
        .ramdisk("/r")
        .cmdline("root=/dev/xvda1 console=hvc0 \"quoted\" \\ back")
        .vnc(VncSpec { password: Some("p'w\"x".into()), find_unused: Some(true), ..VncSpec::default() })
        .vif(VifSpec {
            mac: Some("00:16:3e:00:00:09".parse().unwrap()),
            rate: Some("5Mb/s".into()),
            mtu: Some(1400),
            gatewaydev: Some("eth0".into()),
            devid: Some(4),
            trusted: Some(false),
            vifname: Some("d0".into()),
            script: Some("vif-route".into()),
            ip: Some("10.1.1.1".into()),
            backend_domain: Some("netdom".into()),
            ..VifSpec::default()
        })
        .pci(PciSpec { permissive: true, seize: true, ..PciSpec::new("0000:04:00.1".parse().unwrap()) })
        .on_shutdown(ShutdownAction::Preserve, ShutdownAction::RestartRename, ShutdownAction::CoredumpRestart);
    pvfb.display.keymap = Some("de".into());
    pvfb.display.sdl = Some(true);
    pvfb.platform.e820_host = Some(true);

    let pygrub = DomainSpec::pv("pyg").uuid(uuid(4)).bootloader("pygrub", vec!["--entry=1".into(), "-q x".into()]);
    let pvh = DomainSpec::pvh("h").uuid(uuid(5)).kernel("/k").vnc(VncSpec::default()).tsc_mode(TscMode::Native);
    let plain = DomainSpec::pv("plain").uuid(uuid(6)).kernel("/k").vif(VifSpec::default());

    for spec in [hvm, headless, pvfb, pygrub, pvh, plain] {
        assert_eq!(parse_back(&spec), spec, "{}", spec.to_xl_config().unwrap());
    }
}

#[test]
fn to_xl_config_refuses_what_xl_cannot_say() {
    let mut spec = DomainSpec::pv("p").kernel("/k").pci(PciSpec::new("0000:03:00.0".parse().unwrap()));
    spec.platform.e820_host = Some(false);
    assert!(spec.to_xl_config().unwrap_err().to_string().contains("xl always enables e820_host"));
}

#[test]
fn e820_host_0_with_pci_on_pv_is_overridden_as_xl_does() {
    let s = pv("e820_host = 0\npci = [ '03:00.0' ]").unwrap();
    assert_eq!(s.platform.e820_host, None);
    assert_eq!(pv("e820_host = 0").unwrap().platform.e820_host, Some(false));
}

#[test]
fn ignored_keys_are_ignored_like_xl() {
    let s = hvm("device_model = '/usr/lib/xen/bin/qemu-dm'\nvncviewer = 1").unwrap();
    assert_eq!(
        s,
        DomainSpec {
            uuid: s.uuid,
            memory_mib: 32,
            memory_unstated: true,
            vcpus_unstated: true,
            ..DomainSpec::hvm("h")
        }
    );
}

/// Without `memory` xl states no start memory (libxl takes maxmem, or 32 MiB); without
/// `vcpus` or `maxvcpus` it pins no vCPU, whatever `cpus` says.
#[test]
fn unstated_memory_and_vcpus_are_left_to_libxl_as_xl_leaves_them() {
    let s = pv("maxmem = 512").unwrap();
    assert_eq!((s.memory_unstated, s.memory_mib, s.max_memory_mib), (true, 512, Some(512)));
    assert_eq!(parse_back(&s), s);
    let json: serde_json::Value = serde_json::from_str(&s.to_libxl_json().unwrap()).unwrap();
    assert_eq!((json["b_info"]["max_memkb"].as_u64(), json["b_info"].get("target_memkb")), (Some(512 * 1024), None));
    let s = pv("").unwrap();
    assert_eq!((s.memory_unstated, s.memory_mib, s.max_memory_mib), (true, 32, None));
    let json: serde_json::Value = serde_json::from_str(&s.to_libxl_json().unwrap()).unwrap();
    assert!(json["b_info"].get("max_memkb").is_none() && json["b_info"].get("target_memkb").is_none(), "{json}");
    assert_eq!(parse_back(&s), s);
    // Stated memory stays stated.
    let s = pv("memory = 256\nmaxmem = 256").unwrap();
    assert_eq!((s.memory_unstated, s.memory_mib, s.max_memory_mib), (false, 256, None));

    for cpus in ["cpus = \"1\"", "cpus = [ \"1\", \"0\" ]"] {
        let s = pv(cpus).unwrap();
        assert!(s.cpus.is_empty() && s.vcpu_cpus.is_empty(), "{cpus}");
        let s = pv(&format!("{cpus}\nmaxvcpus = 2")).unwrap();
        assert!(!s.cpus.is_empty() || s.vcpu_cpus.len() == 2, "{cpus}");
    }
    assert!(err(pv("cpus = \"x\"")).starts_with("g.cfg:3: cpus:"));
}

#[test]
fn whether_the_file_gives_its_uuid_is_what_libxlutil_reads() {
    let u = "6ba7b810-9dad-11d1-80b4-00c04fd430c8";
    for text in [
        format!("name = \"a\"; uuid = \"{u}\"\nkernel = \"/k\"\n"),
        format!("name = 'a'\nkernel = '/k'\n  uuid='{u}'  # trailing comment\n"),
        format!("kernel = '/k'; name = 'a'; uuid = '{}'\n", u.to_uppercase()),
    ] {
        let f = DomainSpec::read_xl_config_text("a.cfg", &text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert!(f.uuid_given, "{text}");
        assert_eq!(f.spec.uuid.to_string(), u, "{text}");
    }
    for text in [
        "name = 'a'\nkernel = '/k'\n# uuid = '6ba7b810-9dad-11d1-80b4-00c04fd430c8'\n",
        "name = 'a'; kernel = '/uuid'\n",
    ] {
        let f = DomainSpec::read_xl_config_text("a.cfg", text).unwrap();
        assert!(!f.uuid_given, "{text}");
    }
}

#[test]
fn clock_memory_migration_grant_and_acpi_keys_libxl_takes_directly() {
    let s = hvm("rtc_timeoffset = 3600\nshadow_memory = 8\nnomigrate = 1\nmax_grant_frames = 64\n\
                 timer_mode = \"One_Missed_Tick_Pending\"\nacpi_s3 = 0\nacpi_s4 = 1")
    .unwrap();
    let p = &s.platform;
    assert_eq!((p.rtc_timeoffset, p.shadow_memory_mib, p.disable_migrate), (Some(3600), Some(8), Some(true)));
    assert_eq!((p.max_grant_frames, p.timer_mode), (Some(64), Some(TimerMode::OneMissedTickPending)));
    assert_eq!((p.acpi_s3, p.acpi_s4), (Some(false), Some(true)));
    assert_eq!(parse_back(&s), s);
    // The deprecated number form, a negative offset, and PVH's timer.
    let s = hvm("timer_mode = 2\nrtc_timeoffset = \"-7200\"").unwrap();
    assert_eq!(
        (s.platform.timer_mode, s.platform.rtc_timeoffset),
        (Some(TimerMode::NoMissedTicksPending), Some(-7200))
    );
    assert_eq!(parse_back(&s), s);
    let pvh = DomainSpec::from_xl_config_text(
        "p.cfg",
        "type = 'pvh'\nname = 'p'\nkernel = '/k'\ntimer_mode = 'delay_for_missed_ticks'\n",
    )
    .unwrap();
    assert_eq!(pvh.platform.timer_mode, Some(TimerMode::DelayForMissedTicks));

    assert_eq!(
        err(pv("timer_mode = 1")),
        "g.cfg:3: timer_mode: applies to PVH and HVM guests only, and this is a pv guest"
    );
    // xl reads acpi_s3 for HVM only, and skips it elsewhere.
    assert_eq!(pv("acpi_s3 = 1").unwrap().platform.acpi_s3, None);
    assert!(
        err(hvm("timer_mode = 'sometimes'"))
            .starts_with("h.cfg:3: timer_mode: \"sometimes\": expected delay_for_missed_ticks")
    );
    assert!(err(hvm("max_grant_frames = 4294967296")).starts_with("h.cfg:3: max_grant_frames:"));
}

#[test]
fn cpus_all_is_no_pinning() {
    assert_eq!(pv("cpus = \"all\"").unwrap().cpus, Vec::<u32>::new());
    assert!(err(pv("cpus = \"all,^1\"")).contains("`all' stands alone"), "{}", err(pv("cpus = \"all,^1\"")));
}

//! The metrics as a Prometheus text endpoint (`GET /metrics`), on a TCP address or a unix
//! socket, off unless `--metrics-listen` is given. It serves the latest sample; scraping never
//! calls the hypervisor. A few workers serve it ([`crate::serve`]), each connection within a
//! request and a write deadline, so a slow or stuck client never holds up a scrape for long.
//!
//! Names follow Prometheus' conventions: base units (`_seconds_total` counters, `_bytes` and
//! `_ratio` gauges), and labels that identify a domain across its life, `domain` (the app's
//! name) and `uuid`. The domid changes at every reboot, so it is not a label of the numbers but
//! of `xen_domain_info` (value 1, one series per domain that exists now), to join on. A domain
//! with no Xen domain now reports only `xen_domain_running 0`: its counters ended with it (a
//! CPU counter rebuilt from EVE's scaled value would be lossy), and the next boot starts them
//! anew, which Prometheus' `rate()` expects of a counter. dom0 (`Domain-0`) reports its own CPU
//! time here; EVE's dom0 DomainMetric carries the whole device's.

use std::fmt::Write as _;
use std::net::{SocketAddr, TcpListener};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use crate::metrics::{Sample, SampledDomain};

/// Where to serve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listen {
    /// A TCP address, e.g. `127.0.0.1:9101`.
    Tcp(SocketAddr),
    /// A unix socket path (mode 0600: root only).
    Unix(PathBuf),
}

impl std::str::FromStr for Listen {
    type Err = String;
    fn from_str(s: &str) -> Result<Listen, String> {
        if let Some(path) = s.strip_prefix("unix:") {
            if path.is_empty() {
                return Err("unix: needs a socket path, e.g. unix:/run/domainmgrd/metrics.sock".into());
            }
            return Ok(Listen::Unix(PathBuf::from(path)));
        }
        s.parse::<SocketAddr>()
            .map(Listen::Tcp)
            .map_err(|_| format!("{s:?} is neither HOST:PORT (e.g. 127.0.0.1:9101) nor unix:PATH"))
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// The sample in Prometheus' text format (version 0.0.4).
pub fn render(sample: &Sample) -> String {
    let mut out = String::new();
    let mut family = |name: &str, kind: &str, help: &str, rows: Vec<(String, f64)>| {
        if rows.is_empty() {
            return;
        }
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (labels, value) in rows {
            let _ = writeln!(out, "{name}{labels} {value}");
        }
    };
    let ids = |d: &SampledDomain| format!("domain=\"{}\",uuid=\"{}\"", escape(&d.name), d.metric.uuid_and_version.uuid);
    // Domains that exist now (a Xen domain, running or shut down but not yet destroyed).
    let live = |f: &dyn Fn(&SampledDomain) -> f64| -> Vec<(String, f64)> {
        sample.domains.iter().filter(|d| d.cpu_ns.is_some()).map(|d| (format!("{{{}}}", ids(d)), f(d))).collect()
    };
    family(
        "xen_domain_info",
        "gauge",
        "A domain that exists now, with its Xen domain id (changes at every boot).",
        sample
            .domains
            .iter()
            .filter(|d| d.cpu_ns.is_some())
            .map(|d| (format!("{{{},domid=\"{}\"}}", ids(d), d.domid), 1.0))
            .collect(),
    );
    family(
        "xen_domain_running",
        "gauge",
        "1 if the domain runs (EVE's Activated), else 0.",
        sample.domains.iter().map(|d| (format!("{{{}}}", ids(d)), f64::from(u8::from(d.metric.activated)))).collect(),
    );
    family(
        "xen_domain_cpu_seconds_total",
        "counter",
        "CPU time used by all of the domain's vCPUs since it was created.",
        live(&|d| d.cpu_ns.unwrap_or(0) as f64 / 1e9),
    );
    family("xen_domain_vcpus", "gauge", "vCPUs online.", live(&|d| f64::from(d.vcpus)));
    family("xen_domain_memory_bytes", "gauge", "Memory the domain holds.", live(&|d| d.memory_bytes as f64));
    family(
        "xen_domain_memory_max_bytes",
        "gauge",
        "The most memory the domain may hold (at most the host's memory).",
        live(&|d| d.max_memory_bytes as f64),
    );
    family(
        "xen_domain_memory_used_bytes",
        "gauge",
        "Memory in use (EVE's UsedMemory: what it holds while it runs, else 0).",
        live(&|d| if d.metric.activated { d.memory_bytes as f64 } else { 0.0 }),
    );
    family(
        "xen_domain_memory_max_used_bytes",
        "gauge",
        "The most memory in use seen while it runs (EVE's MaxUsedMemory).",
        live(&|d| d.max_used_bytes as f64),
    );
    family(
        "xen_domain_memory_available_bytes",
        "gauge",
        "Memory it may still take, up to its maximum (EVE's AvailableMemory).",
        live(&|d| d.max_memory_bytes.saturating_sub(d.memory_bytes) as f64),
    );
    family(
        "xen_domain_memory_used_ratio",
        "gauge",
        "Memory in use over its maximum (EVE's UsedMemoryPercent / 100).",
        live(&|d| d.metric.used_memory_percent / 100.0),
    );
    if let Some(h) = &sample.host_bytes {
        let one = |v: f64| vec![(String::new(), v)];
        family("xen_host_memory_bytes", "gauge", "All memory Xen manages.", one(h.total as f64));
        family("xen_host_memory_free_bytes", "gauge", "Memory no domain holds.", one(h.free as f64));
        family(
            "xen_host_eve_memory_bytes",
            "gauge",
            "Memory dom0 (EVE itself) holds (EVE's UsedEveMB).",
            one(h.eve as f64),
        );
        family("xen_host_cpus", "gauge", "Physical CPUs.", one(f64::from(h.ncpus)));
    }
    out
}

/// Binds the unix socket at `path`, replacing only a stale socket (one nobody listens on):
/// never another kind of file, never a live endpoint.
fn bind_unix(path: &Path) -> std::io::Result<UnixListener> {
    use std::io::{Error, ErrorKind};
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => {
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(Error::new(
                    ErrorKind::AddrInUse,
                    format!("{} is in use by a running server", path.display()),
                ));
            }
            std::fs::remove_file(path)?; // left by a process that died
        }
        Ok(_) => {
            return Err(Error::new(
                ErrorKind::AlreadyExists,
                format!("{} exists and is not a socket; not replacing it", path.display()),
            ));
        }
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let l = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(l)
}

/// A running endpoint; stops on drop.
#[derive(Debug)]
pub struct Server {
    listen: Listen,
    /// The unix socket's inode, when serving on one.
    bound: Option<(u64, u64)>,
    endpoint: crate::serve::Server,
}

/// The endpoint's bounds. A scrape is one small request and one answer that Prometheus reads at
/// once (its own scrape_timeout defaults to 10 s, the write deadline here); a request not whole
/// within 5 s is not a scraper's. Scrapers are few and 15 s apart: 4 workers and 4 places in the
/// queue leave room for a few slow clients beside them.
const LIMITS: crate::serve::Limits = crate::serve::Limits {
    workers: 4,
    queue: 4,
    request_deadline: Duration::from_secs(5),
    max_request: 8192,
    write_deadline: Duration::from_secs(10),
    max_waiting: 0,
    answer_deadline: Duration::ZERO,
};

impl Server {
    /// Serves `latest` on `listen`.
    pub fn start(listen: Listen, latest: Arc<Mutex<Sample>>) -> std::io::Result<Server> {
        let mut bound = None;
        let http = Http { latest };
        let endpoint = match &listen {
            Listen::Tcp(addr) => crate::serve::Server::start("prometheus", TcpListener::bind(addr)?, LIMITS, http)?,
            Listen::Unix(path) => {
                let l = bind_unix(path)?;
                bound = crate::files::file_id(path);
                crate::serve::Server::start("prometheus", l, LIMITS, http)?
            }
        };
        log::info!("metrics served on {listen:?}");
        Ok(Server { listen, bound, endpoint })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Its accept loop is woken through the socket: stop it before the file goes.
        self.endpoint.stop();
        if let Listen::Unix(path) = &self.listen
            && self.bound.is_some()
            && crate::files::file_id(path) == self.bound
        {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// `GET /metrics` over HTTP/1.x, one request per connection.
struct Http {
    latest: Arc<Mutex<Sample>>,
}

impl<S> crate::serve::Handler<S> for Http {
    type Later = std::convert::Infallible;

    fn is_complete(&self, request: &[u8]) -> bool {
        request.windows(4).any(|w| w == b"\r\n\r\n") || request.windows(2).any(|w| w == b"\n\n")
    }

    fn answer(
        &self,
        _: &S,
        request: Result<&[u8], crate::serve::Incomplete>,
        _: &crate::serve::WaitSlots,
    ) -> crate::serve::Answer<Self::Later> {
        use crate::serve::Incomplete;
        let (status, body) = match request {
            Ok(request) => {
                let request = String::from_utf8_lossy(request);
                let mut words = request.split_whitespace();
                match (words.next(), words.next()) {
                    (Some("GET"), Some("/metrics")) => ("200 OK", render(&self.latest.lock())),
                    (Some("GET"), Some(_)) => ("404 Not Found", "only /metrics is served here\n".to_string()),
                    _ => ("400 Bad Request", "send GET /metrics\n".to_string()),
                }
            }
            Err(Incomplete::TimedOut) => ("408 Request Timeout", "no whole request in time\n".to_string()),
            Err(Incomplete::TooLong) => ("431 Request Header Fields Too Large", "send GET /metrics\n".to_string()),
            Err(Incomplete::Failed) => ("400 Bad Request", String::new()),
        };
        crate::serve::Answer::Now(http_response(status, &body))
    }

    fn later(&self, answer: Option<Self::Later>) -> Vec<u8> {
        match answer {
            Some(never) => match never {},
            None => Vec::new(),
        }
    }

    fn busy(&self) -> Vec<u8> {
        http_response("503 Service Unavailable", "busy: try again\n")
    }
}

fn http_response(status: &str, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};

    use super::*;
    use crate::eve::UuidAndVersion;
    use crate::metrics::{DomainMetric, HostBytes, HostMemory, SampledDomain};

    fn domain(name: &str, uuid: uuid::Uuid, running: bool) -> SampledDomain {
        let metric = DomainMetric {
            uuid_and_version: UuidAndVersion { uuid, version: String::new() },
            cpu_total_ns: 1_250_000_000,
            cpu_scaled: 2,
            allocated_mb: 128,
            used_memory: if running { 128 } else { 0 },
            max_used_memory: 128,
            available_memory: 128,
            used_memory_percent: if running { 50.0 } else { 0.0 },
            last_heard: None,
            activated: running,
            node_name: String::new(),
        };
        SampledDomain {
            name: name.into(),
            domid: if running { 7 } else { 0 },
            cpu_ns: running.then_some(2_500_000_000),
            memory_bytes: if running { 128 << 20 } else { 0 },
            max_memory_bytes: if running { 256 << 20 } else { 0 },
            max_used_bytes: if running { 128 << 20 } else { 0 },
            vcpus: if running { 2 } else { 0 },
            metric,
        }
    }

    fn sample() -> Sample {
        Sample {
            domains: vec![domain("web \"1\"", uuid::Uuid::nil(), true), domain("off", uuid::Uuid::from_u128(5), false)],
            host: Some(HostMemory {
                total_memory_mb: 2047,
                free_memory_mb: 1023,
                used_eve_mb: 512,
                kmem_used_eve_mb: 0,
                ncpus: 4,
            }),
            host_bytes: Some(HostBytes { total: (2 << 30) - 4096, free: (1 << 30) - 4096, eve: 512 << 20, ncpus: 4 }),
        }
    }

    #[test]
    fn renders_prometheus_text_with_units_and_stable_labels() {
        let text = render(&sample());
        let web = r#"{domain="web \"1\"",uuid="00000000-0000-0000-0000-000000000000"}"#;
        for line in [
            format!("xen_domain_cpu_seconds_total{web} 2.5\n"),
            format!("xen_domain_memory_bytes{web} 134217728\n"),
            format!("xen_domain_memory_max_bytes{web} 268435456\n"),
            format!("xen_domain_memory_used_bytes{web} 134217728\n"),
            format!("xen_domain_memory_max_used_bytes{web} 134217728\n"),
            format!("xen_domain_memory_available_bytes{web} 134217728\n"),
            format!("xen_domain_memory_used_ratio{web} 0.5\n"),
            format!("xen_domain_vcpus{web} 2\n"),
            format!("xen_domain_running{web} 1\n"),
            r#"xen_domain_info{domain="web \"1\"",uuid="00000000-0000-0000-0000-000000000000",domid="7"} 1"#
                .to_string()
                + "\n",
            "# TYPE xen_domain_cpu_seconds_total counter\n".into(),
            // Not rounded to MiB and multiplied back.
            "xen_host_memory_bytes 2147479552\n".into(),
            "xen_host_memory_free_bytes 1073737728\n".into(),
            "xen_host_eve_memory_bytes 536870912\n".into(),
            "xen_host_cpus 4\n".into(),
        ] {
            assert!(text.contains(&line), "{line}in:\n{text}");
        }
        assert!(!text.contains("domid=\"7\"}} 2.5"), "the domid labels only xen_domain_info");
    }

    #[test]
    fn a_domain_without_a_xen_domain_only_says_it_is_not_running() {
        let text = render(&sample());
        let off: Vec<&str> = text.lines().filter(|l| l.contains("domain=\"off\"")).collect();
        assert_eq!(off, [r#"xen_domain_running{domain="off",uuid="00000000-0000-0000-0000-000000000005"} 0"#]);
    }

    #[test]
    fn serves_get_metrics_over_tcp_and_unix() {
        let latest = Arc::new(Mutex::new(sample()));
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        let server = Server::start(Listen::Tcp(port), Arc::clone(&latest)).unwrap();
        let mut c = std::net::TcpStream::connect(port).unwrap();
        c.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut reply = String::new();
        c.read_to_string(&mut reply).unwrap();
        assert!(reply.starts_with("HTTP/1.1 200 OK\r\n") && reply.contains("xen_host_cpus 4"), "{reply}");
        drop(server);

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.sock");
        let server = Server::start(Listen::Unix(path.clone()), latest).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let mut c = std::os::unix::net::UnixStream::connect(&path).unwrap();
        c.write_all(b"GET /other HTTP/1.0\r\n\r\n").unwrap();
        let mut reply = String::new();
        c.read_to_string(&mut reply).unwrap();
        assert!(reply.starts_with("HTTP/1.1 404"), "{reply}");
        drop(server);
        assert!(!path.exists(), "its socket goes with it");
    }

    #[test]
    fn the_unix_socket_replaces_only_a_stale_socket() {
        let dir = tempfile::tempdir().unwrap();
        let latest = Arc::new(Mutex::new(sample()));

        let file = dir.path().join("not-a-socket");
        std::fs::write(&file, "keep me").unwrap();
        let e = Server::start(Listen::Unix(file.clone()), Arc::clone(&latest)).unwrap_err();
        assert!(e.to_string().contains("exists and is not a socket"), "{e}");
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "keep me");

        let live = dir.path().join("live.sock");
        let other = UnixListener::bind(&live).unwrap();
        let e = Server::start(Listen::Unix(live.clone()), Arc::clone(&latest)).unwrap_err();
        assert!(e.to_string().contains("in use"), "{e}");
        drop(other); // its file stays behind: now a stale socket
        assert!(live.exists());
        let server = Server::start(Listen::Unix(live.clone()), latest).unwrap();
        let mut c = std::os::unix::net::UnixStream::connect(&live).unwrap();
        c.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").unwrap();
        let mut reply = String::new();
        c.read_to_string(&mut reply).unwrap();
        assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
        drop(server);
    }

    #[test]
    fn listen_addresses_parse() {
        assert_eq!("127.0.0.1:9101".parse::<Listen>(), Ok(Listen::Tcp("127.0.0.1:9101".parse().unwrap())));
        assert_eq!("unix:/run/m.sock".parse::<Listen>(), Ok(Listen::Unix("/run/m.sock".into())));
        assert!("9101".parse::<Listen>().is_err());
        assert!("unix:".parse::<Listen>().is_err());
    }
}

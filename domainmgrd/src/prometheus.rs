//! The metrics as a Prometheus text endpoint (`GET /metrics`), on a TCP address or a unix
//! socket, off unless `--metrics-listen` is given. Names follow Prometheus' conventions
//! (`_seconds_total` counters, `_bytes` gauges, labels for the domain's name, UUID and domid).
//! It serves the latest sample; scraping never calls the hypervisor.

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use parking_lot::Mutex;

use crate::metrics::Sample;

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
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (labels, value) in rows {
            let _ = writeln!(out, "{name}{labels} {value}");
        }
    };
    let labels = |d: &crate::metrics::SampledDomain| {
        format!("{{domain=\"{}\",uuid=\"{}\",domid=\"{}\"}}", escape(&d.name), d.metric.uuid_and_version.uuid, d.domid)
    };
    let per = |f: &dyn Fn(&crate::metrics::SampledDomain) -> f64| -> Vec<(String, f64)> {
        sample.domains.iter().map(|d| (labels(d), f(d))).collect()
    };
    family(
        "xen_domain_cpu_seconds_total",
        "counter",
        "CPU time used by all of the domain's vCPUs.",
        per(&|d| d.cpu_ns as f64 / 1e9),
    );
    family(
        "xen_domain_memory_bytes",
        "gauge",
        "Memory the domain holds.",
        per(&|d| f64::from(d.metric.allocated_mb) * 1048576.0),
    );
    family(
        "xen_domain_memory_max_bytes",
        "gauge",
        "The most memory the domain may hold.",
        per(&|d| d.max_memory_bytes as f64),
    );
    family("xen_domain_vcpus", "gauge", "vCPUs online.", per(&|d| f64::from(d.vcpus)));
    family(
        "xen_domain_running",
        "gauge",
        "1 if the domain runs (EVE's Activated), else 0.",
        per(&|d| f64::from(u8::from(d.metric.activated))),
    );
    if let Some(h) = &sample.host {
        let mib = |m: u64| m as f64 * 1048576.0;
        family(
            "xen_host_memory_bytes",
            "gauge",
            "All memory Xen manages.",
            vec![(String::new(), mib(h.total_memory_mb))],
        );
        family(
            "xen_host_memory_free_bytes",
            "gauge",
            "Memory no domain holds.",
            vec![(String::new(), mib(h.free_memory_mb))],
        );
        family("xen_host_cpus", "gauge", "Physical CPUs.", vec![(String::new(), f64::from(h.ncpus))]);
    }
    out
}

/// A running endpoint; stops on drop.
#[derive(Debug)]
pub struct Server {
    stop: Arc<AtomicBool>,
    listen: Listen,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    /// Serves `latest` on `listen`.
    pub fn start(listen: Listen, latest: Arc<Mutex<Sample>>) -> std::io::Result<Server> {
        let stop = Arc::new(AtomicBool::new(false));
        let thread_stop = Arc::clone(&stop);
        let thread = match &listen {
            Listen::Tcp(addr) => {
                let l = TcpListener::bind(addr)?;
                std::thread::Builder::new().name("metrics-http".into()).spawn(move || {
                    for conn in l.incoming() {
                        if thread_stop.load(Ordering::SeqCst) {
                            return;
                        }
                        if let Ok(c) = conn {
                            serve(c, &latest);
                        }
                    }
                })?
            }
            Listen::Unix(path) => {
                let _ = std::fs::remove_file(path);
                let l = UnixListener::bind(path)?;
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
                std::thread::Builder::new().name("metrics-http".into()).spawn(move || {
                    for conn in l.incoming() {
                        if thread_stop.load(Ordering::SeqCst) {
                            return;
                        }
                        if let Ok(c) = conn {
                            serve(c, &latest);
                        }
                    }
                })?
            }
        };
        log::info!("metrics served on {listen:?}");
        Ok(Server { stop, listen, thread: Some(thread) })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop with one last connection.
        match &self.listen {
            Listen::Tcp(addr) => drop(std::net::TcpStream::connect_timeout(addr, Duration::from_secs(1))),
            Listen::Unix(path) => {
                drop(std::os::unix::net::UnixStream::connect(path));
                let _ = std::fs::remove_file(path);
            }
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Answers one HTTP request on `conn`.
fn serve<C: Read + Write + SetTimeouts>(mut conn: C, latest: &Mutex<Sample>) {
    conn.set_timeouts(Duration::from_secs(2));
    let mut buf = [0u8; 4096];
    let mut len = 0;
    while len < buf.len() {
        match conn.read(&mut buf[len..]) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                len += n;
                if buf[..len].windows(4).any(|w| w == b"\r\n\r\n") {
                    break;
                }
            }
        }
    }
    let request = String::from_utf8_lossy(&buf[..len]);
    let mut words = request.split_whitespace();
    let (status, body) = match (words.next(), words.next()) {
        (Some("GET"), Some("/metrics")) => ("200 OK", render(&latest.lock())),
        (Some("GET"), Some(_)) => ("404 Not Found", "only /metrics is served here\n".to_string()),
        _ => ("400 Bad Request", "send GET /metrics\n".to_string()),
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = conn.write_all(head.as_bytes()).and_then(|()| conn.write_all(body.as_bytes()));
}

/// Read and write timeouts for both socket kinds.
trait SetTimeouts {
    fn set_timeouts(&self, t: Duration);
}
impl SetTimeouts for std::net::TcpStream {
    fn set_timeouts(&self, t: Duration) {
        let _ = self.set_read_timeout(Some(t));
        let _ = self.set_write_timeout(Some(t));
    }
}
impl SetTimeouts for std::os::unix::net::UnixStream {
    fn set_timeouts(&self, t: Duration) {
        let _ = self.set_read_timeout(Some(t));
        let _ = self.set_write_timeout(Some(t));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eve::UuidAndVersion;
    use crate::metrics::{DomainMetric, HostMemory, SampledDomain};

    fn sample() -> Sample {
        let metric = DomainMetric {
            uuid_and_version: UuidAndVersion { uuid: uuid::Uuid::nil(), version: String::new() },
            cpu_total_ns: 1,
            cpu_scaled: 1,
            allocated_mb: 128,
            used_memory: 128,
            max_used_memory: 128,
            available_memory: 0,
            used_memory_percent: 100.0,
            last_heard: None,
            activated: true,
            node_name: String::new(),
        };
        Sample {
            domains: vec![SampledDomain {
                name: "web \"1\"".into(),
                domid: 7,
                cpu_ns: 2_500_000_000,
                max_memory_bytes: 128 << 20,
                vcpus: 2,
                metric,
            }],
            host: Some(HostMemory {
                total_memory_mb: 2048,
                free_memory_mb: 1024,
                used_eve_mb: 512,
                kmem_used_eve_mb: 0,
                ncpus: 4,
            }),
        }
    }

    #[test]
    fn renders_prometheus_text_with_units_and_escaped_labels() {
        let text = render(&sample());
        let labels = r#"{domain="web \"1\"",uuid="00000000-0000-0000-0000-000000000000",domid="7"}"#;
        assert!(text.contains(&format!("xen_domain_cpu_seconds_total{labels} 2.5\n")), "{text}");
        assert!(text.contains(&format!("xen_domain_memory_bytes{labels} 134217728\n")), "{text}");
        assert!(text.contains("# TYPE xen_domain_cpu_seconds_total counter\n"));
        assert!(text.contains("xen_host_memory_bytes 2147483648\n"));
        assert!(text.contains("xen_host_cpus 4\n"));
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
    }

    #[test]
    fn listen_addresses_parse() {
        assert_eq!("127.0.0.1:9101".parse::<Listen>(), Ok(Listen::Tcp("127.0.0.1:9101".parse().unwrap())));
        assert_eq!("unix:/run/m.sock".parse::<Listen>(), Ok(Listen::Unix("/run/m.sock".into())));
        assert!("9101".parse::<Listen>().is_err());
        assert!("unix:".parse::<Listen>().is_err());
    }
}

//! Control requests (from domainctl, through the control socket): the quick ones are answered
//! here; those that act on one domain go to its thread, whose report becomes the answer.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crossbeam_channel::Sender;
use serde::{Deserialize, Serialize};
use uuid::Uuid;
use xenctl::{Bdf, DomId};

use super::Supervisor;
use super::autostart::loaded_from_spec;
use crate::adapters::OperatorDone;
use crate::configfile::{self, XlParser};
use crate::control::{ControlMsg, Request, Response, exit};
use crate::domain::{self, Command, Operator, Report, Source};
use crate::error_chain;
use crate::eve::DomainConfig;
use crate::images;
use crate::settings::MAX_SECONDS;
use crate::translate;

/// One domain of `domainctl metrics`. Without a domain (halted) there is no domid, CPU
/// counter, memory or vCPU to show: `None`, not 0; EVE's own numbers (the last CPU time,
/// AllocatedMB) stay.
/// A row of `domainctl copies`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CopyRow {
    /// The copy.
    pub path: PathBuf,
    /// Its apparent size in bytes.
    pub size: u64,
    /// The bytes it takes on disk (a reflink's shared extents included).
    pub allocated: u64,
    /// How it was made, where recorded.
    pub method: Option<String>,
    /// The shared image an overlay reads from (it must be kept).
    pub backing: Option<PathBuf>,
    /// The domain whose copy it is, by the UUID in its name.
    pub uuid: Option<Uuid>,
    /// That domain's name, if the daemon knows it.
    pub domain: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricRow {
    /// The app's name.
    pub name: String,
    /// UUID.
    pub uuid: Uuid,
    /// Domain id, while the domain exists.
    pub domid: Option<u32>,
    /// Its CPU time, seconds, while the domain exists.
    pub cpu_seconds: Option<f64>,
    /// EVE's CPUTotalNs (the last value once halted).
    pub cpu_total_ns: u64,
    /// EVE's CPUScaled.
    pub cpu_scaled: u32,
    /// EVE's AllocatedMB.
    pub allocated_mb: u32,
    /// Memory held, MiB, while the domain exists.
    pub memory_mib: Option<u64>,
    /// The most it may hold, MiB, while the domain exists.
    pub max_memory_mib: Option<u64>,
    /// vCPUs online, while the domain exists.
    pub vcpus: Option<u32>,
    /// EVE's Activated.
    pub activated: bool,
}

/// One line of `domainctl list`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ListRow {
    /// The app's name (managed) or the Xen domain's name.
    pub name: String,
    /// Domain id, when it exists.
    pub domid: Option<u32>,
    /// Memory held, MiB.
    pub memory_mib: Option<u64>,
    /// vCPUs online.
    pub vcpus: Option<u32>,
    /// xl's state letters, e.g. `-b----`.
    pub xl_state: String,
    /// CPU time, seconds.
    pub cpu_seconds: Option<f64>,
    /// Our state (EVE's names) when managed.
    pub managed: Option<String>,
    /// `eve`, `auto` or `transient` when managed.
    pub source: Option<String>,
    /// UUID.
    pub uuid: Option<Uuid>,
}

/// xl's six state columns (r b p s c d) for a state.
pub fn xl_letters(state: xenctl::DomainState) -> String {
    let mut cols = ['-'; 6];
    let i = match state {
        xenctl::DomainState::Running => 0,
        xenctl::DomainState::Blocked => 1,
        xenctl::DomainState::Paused => 2,
        xenctl::DomainState::Shutdown(xenctl::ShutdownReason::Crash) => 4,
        xenctl::DomainState::Shutdown(_) => 3,
        xenctl::DomainState::Dying => 5,
    };
    cols[i] = ['r', 'b', 'p', 's', 'c', 'd'][i];
    cols.iter().collect()
}

/// Turns a domain thread's report into the answer for domainctl.
pub(super) fn answer_from(report: Result<Report, String>) -> Response {
    match report {
        Ok(r) if r.ok => Response::data(&r),
        Ok(r) => Response {
            ok: false,
            error: Some(format!("{}: {}", r.name, r.outcome)),
            data: serde_json::to_value(&r).unwrap_or_default(),
            exit: exit::FAILED,
        },
        Err(e) => Response::error(e),
    }
}

impl Supervisor {
    pub(super) fn on_control(&mut self, msg: ControlMsg) {
        let ControlMsg { request, reply } = msg;
        let answer = |r: Response| {
            let _ = reply.send(r);
        };
        match request {
            Request::List => answer(self.list()),
            Request::Status { domain } => answer(self.status(domain.as_deref())),
            Request::Start { domain } => self.forward(&domain, Operator::Start, reply),
            Request::Stop { timeout_secs: Some(t), .. } | Request::Restart { timeout_secs: Some(t), .. }
                if !(1..=MAX_SECONDS).contains(&t) =>
            {
                answer(Response::error_with_exit(
                    format!("--timeout {t}: must be between 1 second and a year ({MAX_SECONDS} s)"),
                    exit::USAGE,
                ))
            }
            Request::Migrate { timeout_secs: Some(t), .. } if !(1..=MAX_SECONDS).contains(&t) => answer(
                Response::error_with_exit(format!("--timeout {t}: must be between 1 second and a year"), exit::USAGE),
            ),
            Request::Migrate { domain, host, ssh, live, timeout_secs } => {
                let to = domain::MigrateTo { host, ssh, live, timeout: timeout_secs.map(Duration::from_secs) };
                self.forward(&domain, Operator::Migrate(Box::new(to)), reply)
            }
            Request::Stop { domain, force, timeout_secs } => {
                self.forward(&domain, Operator::Stop { force, timeout: timeout_secs.map(Duration::from_secs) }, reply)
            }
            Request::Destroy { domain } => self.forward(&domain, Operator::Stop { force: true, timeout: None }, reply),
            Request::Restart { domain, timeout_secs } => {
                self.forward(&domain, Operator::Restart { timeout: timeout_secs.map(Duration::from_secs) }, reply)
            }
            Request::Save { domain, file } => match self.resolve(&domain) {
                Ok(key) => match self.save_path(&key, file) {
                    Ok(path) => self.forward_key(&key, Operator::Save { path }, reply),
                    Err(e) => answer(Response::error(e)),
                },
                Err(e) => answer(Response::error_with_exit(e, exit::UNKNOWN_DOMAIN)),
            },
            Request::Create { file } => self.create(&file, reply),
            Request::Run { container } => self.run_container(container, reply),
            Request::Logs { domain } => drop(reply.send(self.logs(&domain))),
            Request::Restore { file } => self.restore(&file, reply),
            Request::Console { domain } => answer(self.console(&domain)),
            Request::DiskCopies => answer(self.disk_copies()),
            Request::PciList => answer(self.pci_list()),
            Request::PciAssign { bdf, force } => self.pci(&bdf, true, force, reply),
            Request::PciRelease { bdf } => self.pci(&bdf, false, false, reply),
            Request::Metrics => answer(self.metrics()),
            Request::HostStart => self.host_start(reply),
            Request::HostStop => self.host_stop(reply),
        }
    }

    /// The key of the managed domain `arg` names (key/UUID in any case, app name, Xen name or
    /// domid).
    pub(super) fn resolve(&self, arg: &str) -> Result<String, String> {
        if self.domains.contains_key(arg) {
            return Ok(arg.to_string());
        }
        if let Ok(uuid) = arg.parse::<Uuid>()
            && self.domains.contains_key(&uuid.to_string())
        {
            return Ok(uuid.to_string());
        }
        let registry = self.shared.registry.read();
        let domid: Option<u32> = arg.parse().ok();
        let found: Vec<String> = registry
            .iter()
            .filter(|(_, b)| {
                b.display_name == arg
                    || b.domain_name == arg
                    || (domid.is_some() && Some(b.domain_id) == domid && b.domain_id != 0)
            })
            .map(|(u, _)| u.to_string())
            .filter(|k| self.domains.contains_key(k))
            .collect();
        match found.as_slice() {
            [one] => Ok(one.clone()),
            [] => Err(format!(
                "no managed domain is called {arg:?} (give its name, UUID or domid; `domainctl list` shows them)"
            )),
            many => Err(format!("{arg:?} names {} domains ({}); give a UUID", many.len(), many.join(", "))),
        }
    }

    /// Sends `op` to the domain `arg` names; its report answers `reply` (from a helper thread,
    /// so the supervisor keeps serving).
    pub(super) fn forward(&self, arg: &str, op: Operator, reply: Sender<Response>) {
        let key = match self.resolve(arg) {
            Ok(k) => k,
            Err(e) => {
                let _ = reply.send(Response::error_with_exit(e, exit::UNKNOWN_DOMAIN));
                return;
            }
        };
        self.forward_key(&key, op, reply);
    }

    pub(super) fn forward_key(&self, key: &str, op: Operator, reply: Sender<Response>) {
        let (tx, rx) = crossbeam_channel::bounded(1);
        let sent = self.domains.get(key).map(|h| h.tx.send(Command::Operator(op, tx)));
        if !matches!(sent, Some(Ok(()))) {
            let _ = reply.send(Response::error(format!("domain {key} is not managed any more")));
            return;
        }
        std::thread::spawn(move || {
            let report = rx
                .recv_timeout(Duration::from_secs(3600))
                .map_err(|_| "the domain's thread gave no report".to_string());
            let _ = reply.send(answer_from(report));
        });
    }

    fn list(&self) -> Response {
        let domains = match self.shared.hv.list() {
            Ok(d) => d,
            Err(e) => return Response::error(format!("cannot list the domains: {e}")),
        };
        let registry = self.shared.registry.read();
        let mut rows = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for d in &domains {
            let managed = registry
                .get(&d.uuid)
                .filter(|b| !d.domid.is_dom0() && (b.domain_id == d.domid.get() || b.domain_id == 0));
            if managed.is_some() {
                seen.insert(d.uuid);
            }
            rows.push(ListRow {
                name: managed.map_or_else(|| d.name.clone().unwrap_or_default(), |b| b.display_name.clone()),
                domid: Some(d.domid.get()),
                memory_mib: Some(d.current_memory_kib / 1024),
                vcpus: Some(d.vcpus_online),
                xl_state: xl_letters(d.state),
                cpu_seconds: Some(d.cpu_time_ns as f64 / 1e9),
                managed: managed.map(|b| b.state.clone()),
                source: managed
                    .and_then(|_| self.domains.get(&d.uuid.to_string()))
                    .map(|h| h.source.as_str().to_string()),
                uuid: (!d.uuid.is_nil()).then_some(d.uuid),
            });
        }
        let mut idle: Vec<ListRow> = registry
            .iter()
            .filter(|(u, _)| !seen.contains(*u))
            .map(|(u, b)| ListRow {
                name: b.display_name.clone(),
                domid: None,
                memory_mib: None,
                vcpus: None,
                xl_state: String::new(),
                cpu_seconds: None,
                managed: Some(b.state.clone()),
                source: self.domains.get(&u.to_string()).map(|h| h.source.as_str().to_string()),
                uuid: Some(*u),
            })
            .collect();
        idle.sort_by(|a, b| a.name.cmp(&b.name));
        rows.extend(idle);
        Response::data(rows)
    }

    fn status(&self, arg: Option<&str>) -> Response {
        match arg {
            Some(arg) => {
                let key = match self.resolve(arg) {
                    Ok(k) => k,
                    // A container that ran and is gone: its exit status.
                    Err(e) => {
                        let dir = crate::container::containers_dir(&self.options.paths.state_dir);
                        return match crate::container::Exited::find(&dir, arg) {
                            Some(x) => Response::data_with_exit(x.status_json(), exit::NOT_RUNNING),
                            None => Response::error_with_exit(e, exit::STATUS_UNKNOWN),
                        };
                    }
                };
                match domain::read_status(&self.shared.outputs, &key) {
                    Some(st) => {
                        let running = st.state == crate::eve::SwState::RUNNING;
                        Response::data_with_exit(&st, if running { exit::OK } else { exit::NOT_RUNNING })
                    }
                    None => Response::error_with_exit(format!("{arg}: no status yet"), exit::STATUS_UNKNOWN),
                }
            }
            None => {
                let all: Vec<_> =
                    self.domains.keys().filter_map(|k| domain::read_status(&self.shared.outputs, k)).collect();
                let any_running = all.iter().any(|s| s.state == crate::eve::SwState::RUNNING);
                Response::data_with_exit(&all, if any_running { exit::OK } else { exit::NOT_RUNNING })
            }
        }
    }

    /// Where `domainctl save NAME [FILE]` saves: FILE, or `<SAVE>/<domain name>` (its UUID when
    /// the name cannot be a file name there).
    fn save_path(&self, key: &str, file: Option<PathBuf>) -> Result<PathBuf, String> {
        if let Some(f) = file {
            return Ok(f);
        }
        let host = crate::hostcfg::HostConfig::load(&self.options.host_config).map_err(|e| e.to_string())?;
        let dir = host.save_dir.ok_or("give a FILE: no SAVE directory is configured for host stop")?;
        let name = self
            .shared
            .registry
            .read()
            .get(&key.parse().unwrap_or_default())
            .map(|b| b.domain_name.clone())
            .filter(|name| images::is_image_name(name))
            .unwrap_or_else(|| key.to_string());
        Ok(dir.join(name))
    }

    /// `domainctl create FILE`: a transient domain from an xl.cfg or EVE DomainConfig file.
    ///
    /// The file is read and parsed on a helper thread, which hands the result back to this
    /// one: a file on a hung network mount (whose open or read the kernel never returns) or
    /// a slow parse blocks that thread and this request, never the supervisor.
    fn create(&mut self, file: &Path, reply: Sender<Response>) {
        let parser = self.options.xl_parser.clone();
        let pv = self.options.eve.pv_boot.clone();
        let back = self.handback.0.clone();
        let (file, on_error) = (file.to_path_buf(), reply.clone());
        let spawned = std::thread::Builder::new().name("create-read".into()).spawn(move || {
            let loaded = load_domain_file(&file, &parser, &pv);
            let _ = back.send(Box::new(move |sup: &mut Supervisor| sup.create_loaded(loaded, reply)));
        });
        if let Err(e) = spawned {
            let _ = on_error.send(Response::error(format!("cannot start a thread to read the file: {e}")));
        }
    }

    /// `domainctl run IMAGE`: the image unpacked and its domain's xl.cfg written (on a thread:
    /// an unpack takes a while), then created as `create` does.
    fn run_container(&mut self, run: crate::container::RunRequest, reply: Sender<Response>) {
        let containers = self.options.containers.clone();
        let parser = self.options.xl_parser.clone();
        let pv = self.options.eve.pv_boot.clone();
        let hv = Arc::clone(&self.shared.hv);
        let back = self.handback.0.clone();
        let on_error = reply.clone();
        let spawned = std::thread::Builder::new().name("run-prepare".into()).spawn(move || {
            // Asked here, not on the supervisor's thread: libxl may be slow under load.
            let cap_hvm = hv.host_info().is_ok_and(|h| h.cap_hvm);
            let loaded = containers
                .prepare(&run, Uuid::new_v4(), cap_hvm)
                .and_then(|p| load_domain_file(&p.config, &parser, &pv));
            let _ = back.send(Box::new(move |sup: &mut Supervisor| sup.create_loaded(loaded, reply)));
        });
        if let Err(e) = spawned {
            let _ = on_error.send(Response::error(format!("cannot start a thread to prepare the container: {e}")));
        }
    }

    /// The rest of `create`, on the supervisor's thread, with the file read and parsed.
    fn create_loaded(&mut self, loaded: Result<domain::Loaded, String>, reply: Sender<Response>) {
        let loaded = match loaded {
            Ok(l) => l,
            Err(e) => {
                let _ = reply.send(Response::error(e));
                return;
            }
        };
        let uuid = loaded.config.uuid_and_version.uuid;
        let key = uuid.to_string();
        if self.domains.contains_key(&key) {
            let _ = reply.send(Response::error(format!("a managed domain already has the UUID {uuid}")));
            return;
        }
        if let Err(e) = self.refuse_if_running(uuid) {
            let _ = reply.send(Response::error(e));
            return;
        }
        self.spawn(key.clone(), uuid, Some(loaded), None);
        self.forward_key(&key, Operator::Start, reply);
    }

    /// `domainctl restore FILE`: by its record, into its managed domain or as a transient one.
    fn restore(&mut self, file: &Path, reply: Sender<Response>) {
        let record = match images::read_record(file) {
            Ok(r) => r,
            Err(e) => {
                let _ = reply.send(Response::error(format!(
                    "{}: {e}; an image saved by xl is restored with xl restore",
                    file.display()
                )));
                return;
            }
        };
        match self.spawn_transient(&record) {
            Ok(key) => self.forward_key(&key, Operator::Restore { image: file.to_path_buf() }, reply),
            Err(e) => drop(reply.send(Response::error(e))),
        }
    }

    fn console(&self, arg: &str) -> Response {
        let mut socket = None;
        let domid = match self.resolve(arg) {
            Ok(key) => {
                // An EVE app's console is its hub's (console.rs): operators attach there.
                socket = Some(crate::console::paths(&self.options.paths.run_dir, &key).1).filter(|s| s.exists());
                self.shared.registry.read().get(&key.parse().unwrap_or_default()).map(|b| b.domain_id).unwrap_or(0)
            }
            // Unmanaged domains too, by domid or Xen name.
            Err(e) => match self.shared.hv.list().ok().and_then(|l| {
                l.into_iter()
                    .find(|d| d.name.as_deref() == Some(arg) || arg.parse() == Ok(d.domid.get()))
                    .map(|d| d.domid.get())
            }) {
                Some(d) => d,
                None => return Response::error_with_exit(e, exit::UNKNOWN_DOMAIN),
            },
        };
        if domid == 0 {
            return Response::error_with_exit(format!("{arg} is not running"), exit::FAILED);
        }
        match self.shared.hv.console_tty(DomId::new(domid)) {
            Ok(tty) => Response::data(serde_json::json!({"domid": domid, "tty": tty, "socket": socket})),
            Err(e) => Response::error(e.to_string()),
        }
    }

    /// `domainctl logs NAME`: a container's console log is in its bundle, there as long as the
    /// bundle is (after the domain too); an EVE app's is under the run directory.
    fn logs(&self, arg: &str) -> Response {
        let containers = crate::container::containers_dir(&self.options.paths.state_dir);
        let (log, running) = match self.resolve(arg) {
            Ok(key) => {
                let uuid = key.parse().unwrap_or_default();
                let domid = self.shared.registry.read().get(&uuid).map_or(0, |b| b.domain_id);
                let eve = self.domains.get(&key).is_some_and(|h| h.source == Source::Eve);
                let bundle = crate::container::bundle_of(&containers, uuid);
                if bundle.is_none() && !eve {
                    return Response::error(format!(
                        "{arg}: its console is not collected (only containers' and EVE apps' are); `domainctl console {arg}` attaches to it"
                    ));
                }
                (crate::console::log_path(&self.options.paths.run_dir, &key, bundle.as_deref()), domid != 0)
            }
            Err(e) => match crate::container::Exited::find(&containers, arg)
                .and_then(|x| crate::container::bundle_of(&containers, x.uuid))
            {
                Some(bundle) => (crate::console::log_path(&self.options.paths.run_dir, arg, Some(&bundle)), false),
                None => return Response::error_with_exit(e, exit::UNKNOWN_DOMAIN),
            },
        };
        Response::data(serde_json::json!({"log": log, "running": running}))
    }

    /// The copies in `<persist>/img`, each with the domain whose it is (by the UUID in its
    /// name) when the daemon knows it.
    fn disk_copies(&self) -> Response {
        let Some(copies) = &self.shared.disk_copies else {
            return Response::error("disk copies are off (--image-store=off)");
        };
        let list = match copies.list() {
            Ok(l) => l,
            Err(e) => return Response::error(e),
        };
        let rows: Vec<CopyRow> = list
            .into_iter()
            .map(|c| {
                let stem = c.path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
                let uuid = stem.len().checked_sub(36).and_then(|i| stem.get(i..)).and_then(|u| u.parse::<Uuid>().ok());
                let name = uuid
                    .and_then(|u| domain::read_status(&self.shared.outputs, &u.to_string()))
                    .map(|s| s.display_name);
                CopyRow {
                    path: c.path,
                    size: c.size,
                    allocated: c.allocated,
                    method: c.method.map(|m| m.as_str().to_string()),
                    backing: c.backing,
                    uuid,
                    domain: name,
                }
            })
            .collect();
        Response::data(serde_json::to_value(rows).unwrap_or_default())
    }

    fn pci_list(&self) -> Response {
        let assignable = match self.shared.hv.pci_assignable_list() {
            Ok(l) => l.iter().map(Bdf::to_string).collect::<Vec<_>>(),
            Err(e) => return Response::error(e.to_string()),
        };
        let adapters = self.shared.adapters.lock().snapshot();
        Response::data(serde_json::json!({"assignable": assignable, "adapters": adapters}))
    }

    /// An operator's move, done by the adapters' worker (serialised with policy passes, checked
    /// against reservations and the policy, published); the answer comes when it is done.
    fn pci(&self, bdf: &str, assign: bool, force: bool, reply: Sender<Response>) {
        let bdf: Bdf = match bdf.parse() {
            Ok(b) => b,
            Err(e) => {
                let _ = reply.send(Response::error(e.to_string()));
                return;
            }
        };
        let answer = Box::new(move |done: Result<OperatorDone, String>| {
            let response = match done {
                Ok(d) => Response::data(serde_json::json!({
                    "bdf": bdf.to_string(),
                    "assignable": d.assignable,
                    "unit": d.unit.iter().map(Bdf::to_string).collect::<Vec<_>>(),
                    "moved": d.moved.iter().map(Bdf::to_string).collect::<Vec<_>>(),
                })),
                Err(e) => Response::error(e),
            };
            let _ = reply.send(response);
        });
        self.shared.adapters.lock().operator(bdf, assign, force, answer);
    }

    fn metrics(&self) -> Response {
        let sample = self.latest.lock().clone();
        let rows: Vec<_> = sample
            .domains
            .iter()
            .map(|d| {
                let live = d.cpu_ns.is_some();
                MetricRow {
                    name: d.name.clone(),
                    uuid: d.metric.uuid_and_version.uuid,
                    domid: live.then_some(d.domid),
                    cpu_seconds: d.cpu_ns.map(|n| n as f64 / 1e9),
                    cpu_total_ns: d.metric.cpu_total_ns,
                    cpu_scaled: d.metric.cpu_scaled,
                    allocated_mb: d.metric.allocated_mb,
                    memory_mib: live.then_some(d.memory_bytes >> 20),
                    max_memory_mib: live.then_some(d.max_memory_bytes >> 20),
                    vcpus: live.then_some(d.vcpus),
                    activated: d.metric.activated,
                }
            })
            .collect();
        Response::data(serde_json::json!({"domains": rows, "host": sample.host}))
    }

    pub(super) fn host_op_begin(&self, reply: &Sender<Response>) -> bool {
        if self.host_op.swap(true, Ordering::SeqCst) {
            let _ = reply.send(Response::error("a host-start or host-stop is already running"));
            return false;
        }
        true
    }
}

/// Reads an xl.cfg or an EVE DomainConfig (JSON, by its `.json` name or its first character)
/// file as a transient domain's config: read once (a regular file, capped; see
/// [`configfile::read`]), an xl.cfg parsed by `parser` (in a child). The error names the file
/// (and line and key for xl.cfg).
pub fn load_domain_file(file: &Path, parser: &XlParser, pv: &translate::PvBoot) -> Result<domain::Loaded, String> {
    // The larger cap of the two kinds; an xl.cfg's own is checked by the parser.
    let text = configfile::read(file, &configfile::DOMAIN_CONFIG).map_err(|e| error_chain(&e))?;
    let looks_json =
        file.extension().is_some_and(|e| e == "json") || text.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
    if looks_json {
        let config: DomainConfig =
            serde_json::from_slice(&text).map_err(|e| format!("{}: not a valid DomainConfig: {e}", file.display()))?;
        let translated = translate::translate(&config, file, pv).map_err(|e| e.to_string())?;
        Ok(domain::Loaded { config, translated: Ok(translated), source: Source::Transient })
    } else {
        let parsed = parser.parse(&file.display().to_string(), &text)?;
        Ok(loaded_from_spec(parsed.spec, Source::Transient))
    }
}

/// `domainctl create --dry-run`: the libxl JSON of a domain file, as `xl -N create` prints it,
/// with `xl_conf`'s settings applied as the daemon applies them. The parse is the daemon's (in
/// a child, `parser`); on a Xen host CPU lists read as xl reads them there (elsewhere `all` is
/// no pinning), and an EVE config's PV app runs as PVH or PV as the daemon would run it here.
/// It needs libxl (for the JSON and the host), so it runs in the helper
/// (`domainmgrd-xlparse --dry-run`), not in `domainctl`, which then links no Xen library.
pub fn dry_run_json(file: &Path, xl_conf: &Path) -> Result<String, String> {
    let ctx = xenctl::Context::new().ok();
    let host = ctx.as_ref().and_then(|ctx| ctx.host_cpus().ok());
    let cap_hvm = ctx.as_ref().and_then(|ctx| ctx.host_info().ok()).is_some_and(|h| h.cap_hvm);
    let pv = translate::PvBoot::for_host(
        cap_hvm,
        true,
        translate::PvBoot::PVH_FIRMWARE.into(),
        translate::PvBoot::PV_GRUB.into(),
    );
    let loaded = load_domain_file(file, &XlParser::default().with_host(host), &pv)?;
    let mut spec = loaded.translated.map(|t| t.spec).map_err(|e| e.to_string())?;
    crate::xlconf::apply(Some(xl_conf), &mut spec)?;
    spec.to_libxl_json().map_err(|e| error_chain(&e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xl_letters_put_the_state_in_its_column() {
        assert_eq!(xl_letters(xenctl::DomainState::Blocked), "-b----");
        assert_eq!(xl_letters(xenctl::DomainState::Shutdown(xenctl::ShutdownReason::Crash)), "----c-");
        assert_eq!(xl_letters(xenctl::DomainState::Dying), "-----d");
    }
}

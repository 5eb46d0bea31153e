//! Domains migrating in: what the daemon does with a hand-over on its migration socket
//! (`migration.rs`). The receive runs on the hand-over's own thread; the supervisor decides,
//! before anything is restored, whether it takes the domain and how it will manage it, and
//! adopts it once it runs:
//! - a domain whose config this host has (an EVE config, an autostart file: a managed domain
//!   with its UUID) is adopted by that domain's thread, under that config from now on;
//! - an EVE app without its config here is refused (EVE's controller configures both hosts);
//! - any other arrives transient, managed by the config that came with it.
//!
//! A domain that runs here already, one that is being received already, and any domain while
//! host-stop is in effect are refused, and the sender keeps its copy running.

use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::Sender;
use uuid::Uuid;
use xenctl::DomainSpec;

use super::autostart::loaded_from_spec;
use super::{Handback, Supervisor};
use crate::domain::{Command, Source};
use crate::hypervisor::{HvResult, Hypervisor, Received};
use crate::migration::{Incoming, ReceiveAnswer};

/// How long the receive waits for the supervisor's word.
const DECISION_WAIT: Duration = Duration::from_secs(60);

/// What the supervisor decided for a domain that is coming.
#[derive(Debug)]
pub(super) struct Decision {
    uuid: Uuid,
    name: String,
    /// Managed here already (its thread adopts it), else transient from this spec.
    transient: Option<DomainSpec>,
    /// How it is managed here.
    label: &'static str,
}

fn refused(reason: impl Into<String>) -> xenctl::Error {
    xenctl::Error::Refused { reason: reason.into() }
}

/// Receives the domain a hand-over brings (on the hand-over's thread) and answers
/// `domainctl migrate-receive`.
pub(super) fn receive(incoming: Incoming, hv: &Arc<dyn Hypervisor>, back: &Sender<Handback>) {
    let Incoming { request, stream, responder } = incoming;
    let peer = request.peer.clone();
    let mut decided: Option<Decision> = None;
    let result = {
        let mut choose = |json: &str| -> HvResult<Option<DomainSpec>> {
            let spec = DomainSpec::from_libxl_json(json)?;
            let (tx, rx) = crossbeam_channel::bounded(1);
            let hint = request.source.clone();
            back.send(Box::new(move |sup: &mut Supervisor| {
                let _ = tx.send(sup.choose_incoming(spec, hint.as_deref()));
            }))
            .map_err(|_| refused("domainmgrd is stopping"))?;
            let decision = rx
                .recv_timeout(DECISION_WAIT)
                .map_err(|_| refused("domainmgrd did not decide in time"))?
                .map_err(refused)?;
            decided = Some(decision);
            // Restored with the config it ran with there; its config here takes over from now.
            Ok(None)
        };
        hv.migrate_receive(stream, &mut choose, &mut |_| Ok(()))
    };
    let answer = match decided {
        None => ReceiveAnswer { error: Some(error_text(result.err())), ..ReceiveAnswer::default() },
        Some(decision) => {
            let (tx, rx) = crossbeam_channel::bounded(1);
            let sent = back.send(Box::new(move |sup: &mut Supervisor| {
                let _ = tx.send(sup.incoming_done(decision, result, peer));
            }));
            match sent.ok().and_then(|()| rx.recv_timeout(DECISION_WAIT).ok()) {
                Some(answer) => answer,
                None => ReceiveAnswer {
                    error: Some("domainmgrd stopped before it could take the domain over".into()),
                    ..ReceiveAnswer::default()
                },
            }
        }
    };
    match &answer.error {
        None => log::info!(
            "migrate-receive: {} runs here as domain {} ({})",
            answer.name.as_deref().unwrap_or("?"),
            answer.domid.unwrap_or(0),
            answer.managed.as_deref().unwrap_or("?")
        ),
        Some(e) => log::warn!("migrate-receive: not received: {e}"),
    }
    responder.answer(&answer);
}

fn error_text(e: Option<xenctl::Error>) -> String {
    e.map_or_else(|| "the migration ended before its domain was known".into(), |e| crate::error_chain(&e))
}

impl Supervisor {
    /// Whether this host takes the domain `spec` describes, and how it will manage it.
    fn choose_incoming(&mut self, spec: DomainSpec, hint: Option<&str>) -> Result<Decision, String> {
        let uuid = spec.uuid;
        let name = spec.name.clone();
        if self.shared.host_stopped.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(format!("{name}: this host is stopped (host-stop); it takes no migrations until host-start"));
        }
        if !self.incoming.insert(uuid) {
            return Err(format!("{name}: a migration of domain {uuid} is being received here already"));
        }
        let decided = self.decide(spec, hint);
        if decided.is_err() {
            self.incoming.remove(&uuid);
        }
        decided
    }

    fn decide(&self, spec: DomainSpec, hint: Option<&str>) -> Result<Decision, String> {
        let (uuid, name) = (spec.uuid, spec.name.clone());
        if let Some(running) = self.running_domain(uuid) {
            return Err(format!("{name}: domain {} runs here already with its UUID {uuid}", running.domid));
        }
        match self.domains.get(&uuid.to_string()) {
            Some(h) if h.source == Source::Transient => {
                Err(format!("{name}: a transient domain with its UUID {uuid} is still being removed here"))
            }
            Some(h) => Ok(Decision { uuid, name, transient: None, label: h.source.as_str() }),
            None if hint == Some("eve") => Err(format!(
                "{name}: no EVE config of app {uuid} here; an EVE app migrates only to a host that has its config"
            )),
            None => Ok(Decision { uuid, name, transient: Some(spec), label: Source::Transient.as_str() }),
        }
    }

    /// The receive ended: the domain is adopted, or the reservation of its UUID goes.
    fn incoming_done(&mut self, decision: Decision, result: HvResult<Received>, peer: Option<String>) -> ReceiveAnswer {
        self.incoming.remove(&decision.uuid);
        let fail =
            |e: String| ReceiveAnswer { error: Some(e), name: Some(decision.name.clone()), ..ReceiveAnswer::default() };
        let received = match result {
            Ok(r) => r,
            Err(e) => return fail(crate::error_chain(&e)),
        };
        let info = match self.shared.hv.info(received.domid) {
            Ok(Some(info)) => info,
            Ok(None) => return fail(format!("domain {} was gone as soon as it arrived", received.domid)),
            Err(e) => return fail(format!("cannot see domain {}: {e}", received.domid)),
        };
        let key = decision.uuid.to_string();
        // It runs here by an operator's act: a record that it was stopped here (it left by
        // migration before) must not make its new thread stop it before it hears MigratedIn.
        if let Err(e) = self.shared.paths.set_operator_stopped(decision.uuid, false) {
            log::error!("{}: cannot clear its stop record: {e}", decision.name);
        }
        if let Some(spec) = decision.transient {
            self.spawn(key.clone(), decision.uuid, Some(loaded_from_spec(spec, Source::Transient)), Some(info.clone()));
        }
        let sent = self.domains.get(&key).map(|h| h.tx.send(Command::MigratedIn { info: Box::new(info), from: peer }));
        if !matches!(sent, Some(Ok(()))) {
            return fail(format!("domain {} arrived, but its managed domain {key} is gone here", received.domid));
        }
        if !received.sender_notified {
            log::warn!(
                "{}: the sender did not hear that it runs here; its copy there waits suspended and must be destroyed",
                decision.name
            );
        }
        ReceiveAnswer {
            ok: true,
            error: None,
            name: Some(decision.name),
            domid: Some(received.domid.get()),
            managed: Some(decision.label.to_string()),
        }
    }
}

//! xl's live-migration protocol on the wire (Xen 4.17's tools/xl/xl_migrate.c, messages defined
//! in tools/xl/xl.h), without libxl: the fixed messages the two ends exchange around libxl's
//! stream, and each end's state machine, driving an injected [`SourceDomain`] or
//! [`TargetDomain`] that does the libxl part (so the whole conversation is tested without Xen).
//!
//! # The conversation
//! ```text
//!  sender (source host)                              receiver (target host)
//!      <--------- banner "xl migration receiver ready, send binary domain data.\n"
//!  xl save-file header + config JSON  --------->
//!  libxl stream (libxl_domain_suspend) -------->   libxl_domain_create_restore, paused,
//!                                                  named NAME--incoming
//!      <--------- "domain received, ready to unpause\0"
//!  rename NAME -> NAME--migratedaway
//!  "domain is yours, you are cleared to unpause\0" ->  rename -> NAME, unpause
//!      <--------- "my copy unpause results are as follows\0" + status byte (0 = running)
//!  status 0: the source copy may be destroyed
//!  status N: <--- "domain is yours, you are cleared to unpause\0" (target destroyed its copy)
//!            rename back, resume
//! ```
//! Messages travel without framing: each side reads exactly the bytes it expects. Only the
//! banner goes without its C string's NUL; the others include it. The header is the one
//! `xl save` writes (`save_domain_core_writeconfig`), read and written by `save.rs`.
//!
//! # Sender states
//! ```text
//!  AwaitBanner -> SendHeader -> Streaming -> AwaitReady -> RenameAway -> SendGo -> AwaitReport
//!     AwaitReport --status 0--> Migrated
//!     AwaitReport --status N--> AwaitResumePermission(N) -> HandedBack(N)
//!  a failure in AwaitBanner, SendHeader            => the source is untouched
//!                Streaming, AwaitReady, RenameAway => resume the source (if it is suspended)
//!                SendGo, AwaitReport, AwaitResumePermission => in doubt: touch nothing
//!  HandedBack (the target failed and destroyed its copy) => rename back, resume
//! ```
//! # Receiver states
//! ```text
//!  SendBanner -> ReadHeader -> Restoring -> Preparing(d) -> SendReady(d) -> AwaitGo(d)
//!     -> Starting(d) -> ReportSuccess(d) -> Running(d)
//!  a failure in SendBanner, ReadHeader, Restoring => nothing to undo (libxl removes a failed restore)
//!                Preparing, SendReady => destroy our copy (the sender, never told "ready", resumes)
//!                AwaitGo, Starting    => report failure, destroy our copy, then permit the sender
//!                                        to resume
//!                ReportSuccess        => ours runs; the sender, unsure, leaves its copy suspended
//! ```
//! The invariant both keep: the sender destroys its copy only after a success report, and the
//! receiver sends one only with its copy running; before that point the receiver destroys its
//! copy on any failure.

use std::io::{self, Read, Write};
use std::num::NonZeroU8;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};

use crate::error::{Error, LibxlErrorCode, Result, Subject};
use crate::save::SaveImageHeader;
use crate::types::DomId;

/// The receiver's first words (xl.h `migrate_receiver_banner`, sent without its NUL).
pub(crate) const RECEIVER_BANNER: &[u8] = b"xl migration receiver ready, send binary domain data.\n";
/// The receiver has the whole stream (xl.h `migrate_receiver_ready`, with its NUL).
pub(crate) const RECEIVER_READY: &[u8] = b"domain received, ready to unpause\0";
/// Sender to receiver: start your copy; receiver to sender after a failure: resume yours
/// (xl.h `migrate_permission_to_go`, with its NUL).
pub(crate) const PERMISSION_TO_GO: &[u8] = b"domain is yours, you are cleared to unpause\0";
/// Precedes the receiver's status byte (xl.h `migrate_report`, with its NUL).
pub(crate) const UNPAUSE_REPORT: &[u8] = b"my copy unpause results are as follows\0";
/// The longest message: the most any read of a message takes from the peer.
const LONGEST: usize = RECEIVER_BANNER.len();

/// How errors name the peer (xl: "migration receiver stream", "<incoming migration stream>").
const RECEIVER_PEER: &str = "the migration receiver";
const SENDER_PEER: &str = "the migration sender";
pub(crate) const INCOMING: &str = "<incoming migration stream>";

/// One of the fixed messages, by its role in the conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Message {
    Banner,
    Ready,
    Go,
    Report,
    /// [`PERMISSION_TO_GO`] sent back by a receiver that failed and destroyed its copy.
    ResumePermission,
}

impl Message {
    pub(crate) fn bytes(self) -> &'static [u8] {
        match self {
            Message::Banner => RECEIVER_BANNER,
            Message::Ready => RECEIVER_READY,
            Message::Go | Message::ResumePermission => PERMISSION_TO_GO,
            Message::Report => UNPAUSE_REPORT,
        }
    }

    fn what(self) -> &'static str {
        match self {
            Message::Banner => "the receiver's banner",
            Message::Ready => "the receiver's ready message",
            Message::Go => "permission to go",
            Message::Report => "the receiver's unpause report",
            Message::ResumePermission => "permission to resume",
        }
    }
}

/// Sends `m` and flushes.
pub(crate) fn send(w: &mut impl Write, m: Message) -> io::Result<()> {
    w.write_all(m.bytes())?;
    w.flush()
}

/// Reads exactly the bytes of `m`, no further (the libxl stream may follow), and fails on an
/// early end of stream or anything else.
pub(crate) fn expect(r: &mut impl Read, m: Message) -> io::Result<()> {
    let want = m.bytes();
    let mut buf = [0u8; LONGEST];
    let got = read_up_to(r, &mut buf[..want.len()])?;
    if &buf[..got] == want {
        return Ok(());
    }
    if want.starts_with(&buf[..got]) {
        let msg = format!("the stream ended after {got} of the {} bytes of {}", want.len(), m.what());
        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, msg));
    }
    let msg = format!("unexpected data instead of {}: \"{}\"", m.what(), buf[..got].escape_ascii());
    Err(io::Error::new(io::ErrorKind::InvalidData, msg))
}

/// Fills `buf` unless the stream ends first; how many bytes came.
fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// What the receiver reports once it had permission to go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TargetReport {
    /// Status 0: its copy runs.
    Running,
    /// Its copy did not start; xl sends minus libxl's error code, truncated to a byte.
    Failed(NonZeroU8),
}

/// Sends the unpause report and its status byte.
pub(crate) fn send_report(w: &mut impl Write, report: TargetReport) -> io::Result<()> {
    let status = match report {
        TargetReport::Running => 0,
        TargetReport::Failed(s) => s.get(),
    };
    w.write_all(UNPAUSE_REPORT)?;
    w.write_all(&[status])?;
    w.flush()
}

/// Reads the unpause report and its status byte.
pub(crate) fn read_report(r: &mut impl Read) -> io::Result<TargetReport> {
    expect(r, Message::Report)?;
    let mut status = [0u8];
    if read_up_to(r, &mut status)? == 0 {
        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the stream ended before the status byte"));
    }
    Ok(NonZeroU8::new(status[0]).map_or(TargetReport::Running, TargetReport::Failed))
}

/// The status byte a receiver reports for `err`: minus libxl's code as xl sends it, or
/// `ERROR_FAIL`'s for failures that are not libxl's; never 0.
pub(crate) fn failure_status(err: &Error) -> NonZeroU8 {
    let code = err.libxl_code().unwrap_or(LibxlErrorCode::ERROR_FAIL).0;
    // xl: `rc_buf = -rc` into a char; a code that truncates to 0 still must say "failed".
    NonZeroU8::new(code.wrapping_neg() as u8).unwrap_or(NonZeroU8::MIN)
}

/// An I/O failure talking to `peer` while doing `op`, as the crate's error.
fn wire(op: &'static str, peer: &'static str) -> impl FnOnce(io::Error) -> Error {
    move |source| Error::Io { op, path: PathBuf::from(peer), source }
}

/// What happened in a state: it completed, or (in the states that learn something) what it
/// learnt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Event {
    Done,
    Reported(TargetReport),
    Restored(DomId),
}

/// Where the sender is in the conversation (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SenderState {
    AwaitBanner,
    SendHeader,
    Streaming,
    AwaitReady,
    RenameAway,
    SendGo,
    AwaitReport,
    AwaitResumePermission(NonZeroU8),
    Migrated,
    HandedBack(NonZeroU8),
}

/// What becomes of the source domain when the sender fails in a state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SourceFate {
    /// It was never stopped.
    Untouched,
    /// It may be suspended and no target copy can run: resume it.
    Resume,
    /// Permission to go may have reached the target: touching either copy could run two.
    InDoubt,
}

impl SenderState {
    /// The state after `event` in `self`; `None` for an event that cannot happen there.
    pub(crate) fn next(self, event: Event) -> Option<SenderState> {
        use SenderState::*;
        Some(match (self, event) {
            (AwaitBanner, Event::Done) => SendHeader,
            (SendHeader, Event::Done) => Streaming,
            (Streaming, Event::Done) => AwaitReady,
            (AwaitReady, Event::Done) => RenameAway,
            (RenameAway, Event::Done) => SendGo,
            (SendGo, Event::Done) => AwaitReport,
            (AwaitReport, Event::Reported(TargetReport::Running)) => Migrated,
            (AwaitReport, Event::Reported(TargetReport::Failed(s))) => AwaitResumePermission(s),
            (AwaitResumePermission(s), Event::Done) => HandedBack(s),
            _ => return None,
        })
    }

    /// What a failure in this state means for the source domain (xl's `migrate_domain`:
    /// plain exit before the suspend, `failed_resume` up to the rename, `failed_badly` from
    /// the first attempt to say "go").
    pub(crate) fn on_failure(self) -> SourceFate {
        use SenderState::*;
        match self {
            AwaitBanner | SendHeader => SourceFate::Untouched,
            Streaming | AwaitReady | RenameAway | HandedBack(_) => SourceFate::Resume,
            SendGo | AwaitReport | AwaitResumePermission(_) | Migrated => SourceFate::InDoubt,
        }
    }
}

/// The source domain's libxl side, as the sender drives it.
pub(crate) trait SourceDomain {
    /// The domain being sent.
    fn domid(&self) -> DomId;
    /// Streams the domain to `to` (libxl's suspend); returns once libxl is done.
    fn send_stream(&mut self, to: BorrowedFd<'_>) -> Result<()>;
    /// Renames it out of the way of the target's copy (`NAME--migratedaway`).
    fn rename_away(&mut self) -> Result<()>;
    /// Undoes [`rename_away`](Self::rename_away).
    fn rename_back(&mut self) -> Result<()>;
    /// Lets it run again if it is suspended.
    fn resume(&mut self) -> Result<()>;
}

/// How a sender's conversation ended.
#[derive(Debug)]
pub(crate) enum SenderEnd {
    /// The target runs the domain; the source copy is suspended and renamed away.
    Migrated,
    /// The target has no copy; the source domain stays, resumed unless `resume` says otherwise.
    Kept { error: Error, resume: Result<()> },
    /// The conversation broke after permission to go may have been sent.
    InDoubt { error: Error, state: SenderState },
}

/// Runs the sender's side: `header` is the xl save-file header with the config, `r` and `w`
/// the stream from and to the receiver (unbuffered: libxl writes to `w`'s fd directly).
pub(crate) fn run_sender<R: Read, W: Write + AsFd>(
    r: &mut R,
    w: &mut W,
    header: &[u8],
    source: &mut impl SourceDomain,
) -> SenderEnd {
    use SenderState::*;
    let mut state = AwaitBanner;
    loop {
        let step: Result<Event> = match state {
            AwaitBanner => done(expect(r, Message::Banner).map_err(wire("read the banner from", RECEIVER_PEER))),
            SendHeader => done(
                w.write_all(header).and_then(|()| w.flush()).map_err(wire("send the domain config to", RECEIVER_PEER)),
            ),
            Streaming => done(source.send_stream(w.as_fd())),
            AwaitReady => done(expect(r, Message::Ready).map_err(wire("hear the domain arrived from", RECEIVER_PEER))),
            RenameAway => done(source.rename_away()),
            SendGo => done(send(w, Message::Go).map_err(wire("send permission to go to", RECEIVER_PEER))),
            AwaitReport => read_report(r).map(Event::Reported).map_err(wire("hear the outcome from", RECEIVER_PEER)),
            AwaitResumePermission(_) => {
                done(expect(r, Message::ResumePermission).map_err(wire("get the domain back from", RECEIVER_PEER)))
            }
            Migrated => return SenderEnd::Migrated,
            HandedBack(status) => {
                if let Err(e) = source.rename_back() {
                    log::warn!("domain {}: cannot take its name back: {e}", source.domid());
                }
                // The status is minus a libxl code, as a C char.
                let code = LibxlErrorCode(-i32::from(status.get() as i8));
                let error = Error::Libxl { op: "start on the target", subject: Subject::Domain(source.domid()), code };
                return SenderEnd::Kept { error, resume: source.resume() };
            }
        };
        let next = step.and_then(|event| state.next(event).ok_or_else(|| out_of_turn(state, event)));
        state = match next {
            Ok(next) => next,
            Err(error) => return sender_failed(state, error, source),
        };
    }
}

/// Ends the sender after `error` in `state`, doing what that state's fate asks.
fn sender_failed(state: SenderState, error: Error, source: &mut impl SourceDomain) -> SenderEnd {
    match state.on_failure() {
        SourceFate::Untouched => SenderEnd::Kept { error, resume: Ok(()) },
        SourceFate::Resume => SenderEnd::Kept { error, resume: source.resume() },
        SourceFate::InDoubt => SenderEnd::InDoubt { error, state },
    }
}

fn done(step: Result<()>) -> Result<Event> {
    step.map(|()| Event::Done)
}

/// An event the state machine has no transition for: a bug here, reported rather than panicked.
fn out_of_turn(state: impl std::fmt::Debug, event: Event) -> Error {
    let source = io::Error::other(format!("{event:?} in state {state:?}"));
    Error::Io { op: "follow the migration protocol with", path: PathBuf::from("the peer"), source }
}

/// Where the receiver is in the conversation (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReceiverState {
    SendBanner,
    ReadHeader,
    Restoring,
    Preparing(DomId),
    SendReady(DomId),
    AwaitGo(DomId),
    Starting(DomId),
    ReportSuccess(DomId),
    Running(DomId),
}

/// What becomes of the receiver's copy when it fails in a state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TargetFate {
    /// There is none.
    Nothing,
    /// Destroy it; the sender, never told the domain arrived, resumes its own.
    Destroy(DomId),
    /// Report failure, destroy it, then give the sender permission to resume.
    ReportAndDestroy(DomId),
    /// It runs; only the sender is left unsure.
    KeepRunning(DomId),
}

impl ReceiverState {
    /// The state after `event` in `self`; `None` for an event that cannot happen there.
    pub(crate) fn next(self, event: Event) -> Option<ReceiverState> {
        use ReceiverState::*;
        Some(match (self, event) {
            (SendBanner, Event::Done) => ReadHeader,
            (ReadHeader, Event::Done) => Restoring,
            (Restoring, Event::Restored(d)) => Preparing(d),
            (Preparing(d), Event::Done) => SendReady(d),
            (SendReady(d), Event::Done) => AwaitGo(d),
            (AwaitGo(d), Event::Done) => Starting(d),
            (Starting(d), Event::Done) => ReportSuccess(d),
            (ReportSuccess(d), Event::Done) => Running(d),
            _ => return None,
        })
    }

    /// What a failure in this state means for our copy (xl's `migrate_receive`, which on a
    /// failed "ready" write exits and leaves its copy paused; we destroy it).
    pub(crate) fn on_failure(self) -> TargetFate {
        use ReceiverState::*;
        match self {
            SendBanner | ReadHeader | Restoring => TargetFate::Nothing,
            Preparing(d) | SendReady(d) => TargetFate::Destroy(d),
            AwaitGo(d) | Starting(d) => TargetFate::ReportAndDestroy(d),
            ReportSuccess(d) | Running(d) => TargetFate::KeepRunning(d),
        }
    }
}

/// The target's libxl side, as the receiver drives it.
pub(crate) trait TargetDomain {
    /// Restores the domain paused (named `NAME--incoming`) from `from`, positioned at the
    /// libxl stream that follows `header`; `send_back` is the fd to the sender.
    fn restore(&mut self, header: &SaveImageHeader, from: BorrowedFd<'_>, send_back: BorrowedFd<'_>) -> Result<DomId>;
    /// The caller's setup of the paused copy before the sender is told it arrived.
    fn prepare(&mut self, domid: DomId) -> Result<()>;
    /// Gives the copy its own name and lets it run.
    fn start(&mut self, domid: DomId) -> Result<()>;
    /// Destroys the copy.
    fn destroy(&mut self, domid: DomId) -> Result<()>;
}

/// A domain the receiver started.
#[derive(Debug)]
pub(crate) struct Arrived {
    pub(crate) domid: DomId,
    pub(crate) config_json: String,
    /// Whether the success report reached the sender (else it keeps its copy, suspended).
    pub(crate) sender_told: bool,
}

/// Runs the receiver's side over `r` and `w`, the stream from and to the sender (unbuffered:
/// libxl reads the stream from `r`'s fd directly, and the messages after it from there).
pub(crate) fn run_receiver<R: Read + AsFd, W: Write + AsFd>(
    r: &mut R,
    w: &mut W,
    target: &mut impl TargetDomain,
) -> Result<Arrived> {
    use ReceiverState::*;
    let mut state = SendBanner;
    let mut header = None;
    loop {
        let step: Result<Event> = match state {
            SendBanner => done(send(w, Message::Banner).map_err(wire("send the banner to", SENDER_PEER))),
            ReadHeader => SaveImageHeader::parse(r, Path::new(INCOMING)).and_then(|h| {
                if h.config_json.is_none() {
                    let reason = "carries no domain config (xl sends one with every migration)".into();
                    return Err(Error::BadSaveImage { path: INCOMING.into(), reason });
                }
                header = Some(h);
                Ok(Event::Done)
            }),
            Restoring => match &header {
                Some(h) => target.restore(h, r.as_fd(), w.as_fd()).map(Event::Restored),
                None => Err(out_of_turn(state, Event::Done)),
            },
            Preparing(d) => done(target.prepare(d)),
            SendReady(_) => done(send(w, Message::Ready).map_err(wire("say the domain arrived to", SENDER_PEER))),
            AwaitGo(_) => done(expect(r, Message::Go).map_err(wire("get permission to go from", SENDER_PEER))),
            Starting(d) => done(target.start(d)),
            ReportSuccess(_) => {
                done(send_report(w, TargetReport::Running).map_err(wire("report success to", SENDER_PEER)))
            }
            Running(domid) => {
                let config_json = header.and_then(|h| h.config_json).unwrap_or_default();
                return Ok(Arrived { domid, config_json, sender_told: true });
            }
        };
        let next = step.and_then(|event| state.next(event).ok_or_else(|| out_of_turn(state, event)));
        match next {
            Ok(next) => state = next,
            Err(error) => return receiver_failed(state, error, w, header, target),
        }
    }
}

/// Ends the receiver after `error` in `state`, doing what that state's fate asks.
fn receiver_failed<W: Write>(
    state: ReceiverState,
    error: Error,
    w: &mut W,
    header: Option<SaveImageHeader>,
    target: &mut impl TargetDomain,
) -> Result<Arrived> {
    match state.on_failure() {
        TargetFate::Nothing => {}
        TargetFate::Destroy(d) => {
            if let Err(e) = target.destroy(d) {
                log::error!("domain {d}: migration failed and destroying the incoming copy failed too: {e}");
            }
        }
        TargetFate::ReportAndDestroy(d) => {
            let told = send_report(w, TargetReport::Failed(failure_status(&error)));
            match target.destroy(d) {
                // Only once our copy is gone may the sender run its own.
                Ok(()) if told.is_ok() => {
                    if let Err(e) = send(w, Message::ResumePermission) {
                        log::warn!("domain {d}: cannot give the sender permission to resume: {e}");
                    }
                }
                Ok(()) => log::warn!("domain {d}: the sender did not hear of the failure: {told:?}"),
                Err(e) => log::error!("domain {d}: migration failed and destroying the incoming copy failed too: {e}"),
            }
        }
        TargetFate::KeepRunning(domid) => {
            log::error!(
                "domain {domid} runs here, but the sender did not hear so ({error}); it keeps its copy suspended"
            );
            let config_json = header.and_then(|h| h.config_json).unwrap_or_default();
            return Ok(Arrived { domid, config_json, sender_told: false });
        }
    }
    Err(error)
}

#[cfg(test)]
#[path = "migrate_wire_tests.rs"]
mod tests;
